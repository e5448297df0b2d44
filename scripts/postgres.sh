#!/usr/bin/env bash
# Make a local PostgreSQL answer at the URL the ledger tests use (tests/ledger), then print it:
#   postgresql://postgres:postgres@127.0.0.1:5432/test
# Idempotent, every wait bounded. In order, only as far as needed:
#   1. install Debian's postgresql with apt-get if no cluster is installed;
#   2. start the newest installed cluster if nothing answers on 127.0.0.1:5432;
#   3. create the database "test" if it is missing;
#   4. give the postgres role the password "postgres" if a password login fails (a fresh install
#      asks for one over TCP; a machine that trusts local connections is left as it is).
# Run as root (it uses apt-get and runuser); CI runs it before the tests. PG_CLUSTER and PG_PORT
# (default main and 5432) name another cluster, e.g. a throwaway one to try this script on.
set -euo pipefail

DB=test
PASSWORD=postgres
CLUSTER="${PG_CLUSTER:-main}"
PORT="${PG_PORT:-5432}"
URL="postgresql://postgres:${PASSWORD}@127.0.0.1:${PORT}/${DB}"
START_WAIT_S=60

say() { echo "postgres.sh: $*" >&2; }
ready() { pg_isready -q -h 127.0.0.1 -p "$PORT" -t 2 >/dev/null 2>&1; }
as_postgres() { (cd / && runuser -u postgres -- "$@" -p "$PORT"); }
login_works() { PGCONNECT_TIMEOUT=5 psql "$URL" -qtAc 'SELECT 1' >/dev/null 2>&1; }

if ! compgen -G "/etc/postgresql/*/${CLUSTER}" >/dev/null || ! command -v pg_ctlcluster >/dev/null; then
    say "no PostgreSQL cluster installed: installing Debian's postgresql"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq
    timeout 600 apt-get install -y -qq postgresql >/dev/null
fi

if ! ready; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "starting cluster ${version}/${CLUSTER}"
    pg_ctlcluster --skip-systemctl-redirect "$version" "$CLUSTER" start || true
    for _ in $(seq "$START_WAIT_S"); do
        ready && break
        sleep 1
    done
    ready || { say "PostgreSQL did not answer within ${START_WAIT_S}s"; exit 1; }
fi

if [ "$(as_postgres psql -qtAc "SELECT 1 FROM pg_database WHERE datname = '${DB}'")" != 1 ]; then
    say "creating database ${DB}"
    as_postgres createdb "$DB"
fi

if ! login_works; then
    say "setting the postgres role's password for TCP logins"
    as_postgres psql -qc "ALTER ROLE postgres PASSWORD '${PASSWORD}'"
fi
login_works || { say "cannot log in at ${URL}"; exit 1; }
echo "$URL"
