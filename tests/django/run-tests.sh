#!/usr/bin/env bash
# Runs the Django project's tests in a virtualenv at target/django-venv.
#
# usage: tests/django/run-tests.sh [sqlite|postgres|layer|all]   (default: sqlite)
#
# sqlite   POSTGRES_HOST is removed from the environment, so the settings use SQLite.
# postgres A throwaway PostgreSQL server is started on 127.0.0.1 (random free port,
#          temporary data directory, password auth), the tests run against it, and the
#          server is stopped and deleted on exit. Needs Debian's PostgreSQL server
#          binaries (initdb, pg_ctl); as root they are installed with apt-get when
#          missing, and the server runs as the `postgres` user because initdb refuses root.
#          PG_BIN overrides where the binaries are looked up.
# layer    The settings layer (docker/stack_settings) over a project that Django's own
#          startproject makes in a temporary directory: tests/django/test_layer.py.
#
# docker/ is on PYTHONPATH, as /opt/stack is in the image, for the stack_settings package.
# The project's settings require REDIS_URL (Celery's broker); its tests run their tasks
# eagerly, so an address nothing listens on is enough unless REDIS_URL is set.
# The venv is reused while project-template/requirements.txt is unchanged. PYTHON picks
# the interpreter that creates it (default python3). Each run ends with a line
# "django-<db>: N passed, N failed, N skipped".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
project="$root/project-template"
venv="$root/target/django-venv"
mode=${1:-sqlite}

die() {
    echo "run-tests.sh: $*" >&2
    exit 1
}

ensure_venv() {
    local stamp="$venv/.requirements.sha256" want
    want=$(sha256sum "$project/requirements.txt" | cut -d' ' -f1)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return
    fi
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$project/requirements.txt"
    echo "$want" >"$stamp"
}

# Runs the project's suite with the current environment, or with $2 set the settings
# layer's; prints the summary line for label $1.
run_suite() {
    local label=$1 log status ran failures errors skipped
    log=$(mktemp)
    set +e
    if [ "${2:-}" = layer ]; then
        PYTHONPATH="$root/docker" "$venv/bin/python" -m unittest -v "$root/tests/django/test_layer.py" 2>&1 | tee "$log"
    else
        # manage.py picks the development settings of whatever the package is called.
        (cd "$project" && unset DJANGO_SETTINGS_MODULE && export REDIS_URL=${REDIS_URL:-redis://:unused@127.0.0.1:9/0} &&
            PYTHONPATH="$root/docker" \
            "$venv/bin/python" manage.py test --noinput -v 2) 2>&1 | tee "$log"
    fi
    status=${PIPESTATUS[0]}
    set -e
    ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' "$log" | tail -n1)
    failures=$(grep -o 'failures=[0-9]*' "$log" | tail -n1 | cut -d= -f2 || true)
    errors=$(grep -o 'errors=[0-9]*' "$log" | tail -n1 | cut -d= -f2 || true)
    skipped=$(grep -o 'skipped=[0-9]*' "$log" | tail -n1 | cut -d= -f2 || true)
    rm -f "$log"
    ran=${ran:-0} failures=${failures:-0} errors=${errors:-0} skipped=${skipped:-0}
    local failed=$((failures + errors))
    if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1
    fi
    echo "django-$label: $((ran - failed - skipped)) passed, $failed failed, $skipped skipped"
    return "$status"
}

run_sqlite() {
    (
        unset POSTGRES_HOST POSTGRES_PORT POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB
        run_suite sqlite
    )
}

find_pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then
        echo "$PG_BIN"
        return
    fi
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return
        fi
    done
}

ensure_pg_bin() {
    local bin
    bin=$(find_pg_bin)
    if [ -z "$bin" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "installing the PostgreSQL server with apt-get" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        bin=$(find_pg_bin)
    fi
    [ -n "$bin" ] || die "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql, or set PG_BIN"
    echo "$bin"
}

free_port() {
    "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# initdb and postgres refuse to run as root: use the postgres account then.
as_db_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_bin=""
pg_tmp=""

stop_postgres() {
    if [ -n "$pg_tmp" ]; then
        as_db_user "$pg_bin/pg_ctl" -D "$pg_tmp/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$pg_tmp"
        pg_tmp=""
    fi
}

run_postgres() {
    local port password status=0
    pg_bin=$(ensure_pg_bin)
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        die "running as root needs a 'postgres' user to own the server"
    fi
    pg_tmp=$(mktemp -d /tmp/django-pg.XXXXXX)
    trap stop_postgres EXIT
    chmod 755 "$pg_tmp"
    port=$(free_port)
    password=$("$venv/bin/python" -c 'import secrets; print(secrets.token_hex(16))')
    printf '%s\n' "$password" >"$pg_tmp/pwfile"
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres "$pg_tmp"
    fi

    as_db_user "$pg_bin/initdb" -D "$pg_tmp/data" -U django --pwfile="$pg_tmp/pwfile" \
        --auth=scram-sha-256 --encoding=UTF8 --no-locale >"$pg_tmp/initdb.log" 2>&1 \
        || { cat "$pg_tmp/initdb.log" >&2; die "initdb failed"; }
    as_db_user "$pg_bin/pg_ctl" -D "$pg_tmp/data" -l "$pg_tmp/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $pg_tmp -c fsync=off" start >/dev/null \
        || { cat "$pg_tmp/server.log" >&2; die "PostgreSQL did not start"; }
    PGPASSWORD=$password "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U django django

    POSTGRES_HOST=127.0.0.1 POSTGRES_PORT=$port POSTGRES_USER=django \
        POSTGRES_PASSWORD=$password POSTGRES_DB=django run_suite postgres || status=$?
    stop_postgres
    return "$status"
}

ensure_venv
case "$mode" in
    sqlite) run_sqlite ;;
    postgres) run_postgres ;;
    layer) run_suite layer layer ;;
    all)
        status=0
        run_sqlite || status=$?
        run_suite layer layer || status=$?
        run_postgres || status=$?
        exit "$status"
        ;;
    *) die "unknown mode '$mode' (expected sqlite, postgres, layer or all)" ;;
esac
