#!/usr/bin/env bash
# Start the services the test suite needs, installing them when missing. Idempotent: a service
# that already answers is left alone. Called by `make test` (and so by CI through .ci/run).
#
#   Redis on 127.0.0.1:6379 (override with REDIS_HOST / REDIS_PORT): the shared-state tests
#   (tests/state) run against a real server and fail in CI when there is none.
#   tinyproxy (the binary only): the HTTP client's proxy tests (tests/test_http_proxy_tls.py)
#   start one per test on a free 127.0.0.1 port with a generated config; installed, not run.
#   chromium (Debian's): the dashboard's browser tests (tests/gateway/test_ui_browser.py) drive
#   it with Playwright for Python; Playwright's own browser download is never used.
#   haproxy: the cluster proof (tests/cluster, bench/cluster.py) runs one in front of gateway
#   replicas on free 127.0.0.1 ports with a generated config; installed, not run (the Debian
#   package's own service is stopped if it started one).
#   wrk (the binary only): the load generator of bench/ and of its CI smoke
#   (tests/unit/test_bench_gateway.py); installed, not run.
set -euo pipefail

REDIS_HOST="${REDIS_HOST:-127.0.0.1}"
REDIS_PORT="${REDIS_PORT:-6379}"
WAIT_SECONDS="${SERVICES_WAIT_SECONDS:-20}"

log() { echo "services: $*" >&2; }

# Root runs apt-get directly; anyone else needs passwordless sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else log "need root to run: $*"; return 1
    fi
}

redis_answers() {
    command -v redis-cli >/dev/null 2>&1 \
        && [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
}

# apt_install COMMAND PACKAGE...: install PACKAGE(s) unless COMMAND is on the PATH. Another
# apt-get may hold the lock for a while (a fresh machine's unattended upgrades): wait for it.
apt_install() {
    local command=$1
    shift
    command -v "$command" >/dev/null 2>&1 && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        log "$command is missing and apt-get is unavailable: install $* and rerun"
        return 1
    fi
    log "installing $* (apt-get)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o DPkg::Lock::Timeout=300 "$@" >/dev/null
}

install_redis() {
    command -v redis-cli >/dev/null 2>&1 || apt_install redis-cli redis-server redis-tools
    apt_install redis-server redis-server
}

start_redis() {
    log "starting redis-server on $REDIS_HOST:$REDIS_PORT"
    # No persistence: test data only. --daemonize returns once the server has forked.
    redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" \
        --save "" --appendonly no --logfile "${TMPDIR:-/tmp}/llmd-redis-$REDIS_PORT.log"
}

wait_for_redis() {
    local deadline=$((SECONDS + WAIT_SECONDS))
    until redis_answers; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "Redis did not answer on $REDIS_HOST:$REDIS_PORT within ${WAIT_SECONDS}s"
            return 1
        fi
        sleep 0.2
    done
}

# Debian 12 splits the binary (tinyproxy-bin) from the package that runs a system-wide daemon
# (tinyproxy, listening on every interface): take the binary alone where it exists.
install_tinyproxy() {
    local package=tinyproxy-bin
    command -v apt-cache >/dev/null 2>&1 && apt-cache show tinyproxy-bin >/dev/null 2>&1 \
        || package=tinyproxy
    apt_install tinyproxy "$package"
}

install_haproxy() {
    command -v haproxy >/dev/null 2>&1 && return 0
    apt_install haproxy haproxy
    # A service manager may have started the packaged one (it listens on nothing by default).
    if command -v service >/dev/null 2>&1; then as_root service haproxy stop >/dev/null 2>&1 || true; fi
}

install_tinyproxy
apt_install chromium chromium
install_haproxy
apt_install wrk wrk

if redis_answers; then
    log "Redis already answers on $REDIS_HOST:$REDIS_PORT"
else
    install_redis
    # The Debian package may have started its own service already.
    redis_answers || start_redis
    wait_for_redis
    log "Redis is up on $REDIS_HOST:$REDIS_PORT"
fi
