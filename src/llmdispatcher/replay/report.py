"""A replay's report, side by side (baseline, proposal): a terminal table, JSON, and one
self-contained HTML page with inline SVG charts (no script, no external asset)."""

from __future__ import annotations

import html
from typing import Any

Side = dict[str, Any]


def _money(value: float) -> str:
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, baseline, proposal) lines of the comparison."""
    base, new = report["baseline"], report["proposal"]
    lines: list[tuple[str, str, str]] = [
        ("requests", f"{base['requests']:,}", f"{new['requests']:,}"),
        ("cost", _money(base["cost_usd"]), _money(new["cost_usd"])),
    ]
    for q in ("p50", "p95", "p99"):
        lines.append((f"latency {q}", _ms(base["latency_s"][q]), _ms(new["latency_s"][q])))
    for q in ("p50", "p95"):
        lines.append((f"TTFT {q}", _ms(base["ttft_s"][q]), _ms(new["ttft_s"][q])))
    for name, key in (("error rate", "error_rate"), ("fallback rate", "fallback_rate"),
                      ("hedge rate", "hedge_rate")):  # fmt: skip
        lines.append((name, _pct(base[key]), _pct(new[key])))
    for what in ("cost_by_group_usd", "vendors", "refused", "rules"):
        for name in dict.fromkeys([*base[what], *new[what]]):
            show = _money if what == "cost_by_group_usd" else (lambda v: f"{v:,}")
            label = {"cost_by_group_usd": "cost of", "vendors": "vendor", "refused": "refused",
                     "rules": "rule"}[what]  # fmt: skip
            lines.append((f"{label} {name}", show(base[what].get(name, 0)),
                          show(new[what].get(name, 0))))  # fmt: skip
    for name in new["rules_never_matched"]:
        lines.append((f"rule {name}", "-", "never matched"))
    return lines


def text(report: dict[str, Any]) -> str:
    lines = rows(report)
    header = ("", report["baseline_label"], "proposal")
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(3)]
    out = [f"{header[0]:<{widths[0]}}  {header[1]:>{widths[1]}}  {header[2]:>{widths[2]}}"]
    out += [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}" for a, b, c in lines]
    notes = report["notes"]
    out.append("")
    out.append(
        f"{notes['replayed']:,} requests replayed; {notes['elsewhere']:,} tries went to a "
        f"deployment the recorded request never reached (drawn from that deployment's record); "
        f"{notes['thin']:,} tries had too few recorded neighbours in time and used the "
        "deployment's whole record."
    )
    return "\n".join(out)


def _chart(title: str, unit: str, base: list[float | None], new: list[float | None]) -> str:
    """A two-line SVG chart of one measure over the replayed span, with its axis labelled."""
    width, height, pad = 640, 200, 40
    values = [v for v in (*base, *new) if v is not None]
    top = max(values, default=0.0) or 1.0
    points = max(len(base), len(new), 2)

    def line(series: list[float | None], colour: str) -> str:
        xy = [
            f"{pad + i * (width - 2 * pad) / (points - 1):.1f},"
            f"{height - pad - v / top * (height - 2 * pad):.1f}"
            for i, v in enumerate(series)
            if v is not None
        ]
        return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(xy)}"/>'

    return (
        f"<figure><figcaption>{html.escape(title)}</figcaption>"
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#888"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>'
        f'<text x="{pad}" y="{pad - 8}" font-size="11">{html.escape(f"{top:,.4g} {unit}")}</text>'
        f'<text x="{pad}" y="{height - pad + 14}" font-size="11">start</text>'
        f'<text x="{width - pad}" y="{height - pad + 14}" font-size="11" '
        'text-anchor="end">end</text>'
        f"{line(base, '#1f77b4')}{line(new, '#d62728')}</svg></figure>"
    )


def _series(side: Side, key: str) -> list[float | None]:
    by_bucket = {p["bucket"]: p[key] for p in side["series"]}
    last = max(by_bucket, default=-1)
    return [by_bucket.get(b) for b in range(last + 1)]


def page(report: dict[str, Any]) -> str:
    """The report as one HTML page: the table and two charts, everything inline."""
    cells = "".join(
        f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td><td>{html.escape(c)}</td></tr>"
        for a, b, c in rows(report)
    )
    base, new = report["baseline"], report["proposal"]
    charts = _chart("Cost per interval", "USD", _series(base, "cost_usd"),
                    _series(new, "cost_usd"))  # fmt: skip
    charts += _chart("Latency p95 per interval", "s", _series(base, "latency_p95_s"),
                     _series(new, "latency_p95_s"))  # fmt: skip
    label = html.escape(report["baseline_label"])
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>llmdispatcher replay</title><style>"
        "body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}"
        "table{border-collapse:collapse}th,td{padding:.2em .8em;border-bottom:1px solid #ddd}"
        "td{text-align:right;font-variant-numeric:tabular-nums}th{text-align:left}"
        "figure{margin:1.5em 0}svg{width:100%;max-width:640px}"
        ".b{color:#1f77b4}.p{color:#d62728}</style></head><body>"
        f"<h1>Replay: {label} vs proposal</h1>"
        f"<p>{html.escape(text(report).splitlines()[-1])}</p>"
        f"<table><tr><th></th><th class=b>{label}</th><th class=p>proposal</th></tr>"
        f"{cells}</table>{charts}</body></html>"
    )
