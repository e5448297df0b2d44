#!/usr/bin/env bash
# Refresh the dashboard's vendored client libraries from the npm registry (`npm pack`), at the
# pinned versions below, with their licence files. Nothing is fetched at run time: the files
# ship inside the Python package (src/llmdispatcher/gateway/ui/static/vendor/), and
# tests/gateway/test_ui_assets.py checks them against MANIFEST.txt. Run after changing a pin.
set -euo pipefail

HTMX_VERSION=2.0.11
UPLOT_VERSION=1.6.32
DEST="$(cd "$(dirname "$0")/.." && pwd)/src/llmdispatcher/gateway/ui/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$WORK"
npm pack --silent "htmx.org@$HTMX_VERSION" "uplot@$UPLOT_VERSION" >/dev/null
mkdir htmx uplot
tar xzf "htmx.org-$HTMX_VERSION.tgz" -C htmx
tar xzf "uplot-$UPLOT_VERSION.tgz" -C uplot

mkdir -p "$DEST"
rm -f "$DEST"/*
cp htmx/package/dist/htmx.min.js "$DEST/htmx-$HTMX_VERSION.min.js"
cp htmx/package/LICENSE "$DEST/LICENSE-htmx.txt"
cp uplot/package/dist/uPlot.iife.min.js "$DEST/uPlot-$UPLOT_VERSION.iife.min.js"
cp uplot/package/dist/uPlot.min.css "$DEST/uPlot-$UPLOT_VERSION.min.css"
cp uplot/package/LICENSE "$DEST/LICENSE-uplot.txt"
(cd "$DEST" && sha256sum -- * | grep -v MANIFEST > MANIFEST.txt)
echo "vendored htmx $HTMX_VERSION and uPlot $UPLOT_VERSION into $DEST"
