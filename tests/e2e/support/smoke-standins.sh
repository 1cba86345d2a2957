#!/usr/bin/env bash
# Smoke test of the base images and the local wheelhouse, outside of any stack.
#
# usage: tests/e2e/support/smoke-standins.sh
#
# 1. base-images.sh (stand-ins where the official images are unavailable) and
#    wheelhouse.sh start (index for the python image's interpreter);
# 2. builds a throwaway image FROM $PYTHON_IMAGE that pip-installs django,
#    gunicorn and psycopg[binary] from the wheelhouse (classic builder,
#    --network host);
# 3. on a user network: the postgres image with POSTGRES_USER/PASSWORD/DB,
#    pg_isready, a psql query from another container, a wrong password refused,
#    a restart on the same volume keeping the data, a clean stop;
# 4. the nginx image serving a file from a conf.d site, probed with wget inside
#    and from the host through a port published on 127.0.0.1.
# Everything it creates (containers, network, volume, image) is removed on exit;
# the wheelhouse server is stopped only if this script started it.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
id="xtask-e2e-smoke-$$"
tmp=$(mktemp -d)
started_server=0
log() { echo "smoke: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

cleanup() {
    docker rm -f -v "$id-db" "$id-nginx" >/dev/null 2>&1 || true
    docker volume rm "$id-pgdata" >/dev/null 2>&1 || true
    docker network rm "$id" >/dev/null 2>&1 || true
    docker rmi "$id:app" >/dev/null 2>&1 || true
    if [ "$started_server" = 1 ]; then "$here/wheelhouse.sh" stop --dir "$wheeldir" >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

"$here/base-images.sh" "$tmp/images.env"
# shellcheck disable=SC1091
. "$tmp/images.env"
log "images: $PYTHON_IMAGE $POSTGRES_IMAGE $NGINX_IMAGE"

wheeldir="$tmp/wheelhouse"
"$here/wheelhouse.sh" start --image "$PYTHON_IMAGE" --dir "$wheeldir" --out "$tmp/wheelhouse.env"
started_server=1
# shellcheck disable=SC1091
. "$tmp/wheelhouse.env"
log "index: $PIP_INDEX_URL (pid $WHEELHOUSE_PID)"

# --- python + wheelhouse ------------------------------------------------------------
mkdir -p "$tmp/app"
cat > "$tmp/app/Dockerfile" <<'EOF'
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}
ARG PIP_INDEX_URL
RUN pip install --no-cache-dir django gunicorn "psycopg[binary]" \
 && python -c "import django, gunicorn, psycopg; print('installed django', django.get_version(), 'gunicorn', gunicorn.__version__, 'psycopg', psycopg.__version__, psycopg.pq.__impl__)"
RUN useradd --uid 10001 --no-log-init app
EOF
DOCKER_BUILDKIT=0 docker build --network host -q \
    --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" --build-arg "PIP_INDEX_URL=$PIP_INDEX_URL" \
    -t "$id:app" "$tmp/app" >/dev/null 2>"$tmp/build.log" || { cat "$tmp/build.log" >&2; fail "image build"; }
docker run --rm --user 10001 "$id:app" python -c 'import django, psycopg; print("python", __import__("sys").version.split()[0], "django", django.get_version(), "psycopg", psycopg.pq.__impl__)'

# --- postgres -------------------------------------------------------------------------
docker network create "$id" >/dev/null
docker volume create "$id-pgdata" >/dev/null
run_db() {
    docker run -d --name "$id-db" --network "$id" --network-alias db \
        -e POSTGRES_USER=app -e POSTGRES_PASSWORD=s3cret -e POSTGRES_DB=appdb \
        -v "$id-pgdata:/var/lib/postgresql/data" "$POSTGRES_IMAGE" >/dev/null
}
wait_db() {
    for _ in $(seq 60); do
        docker exec "$id-db" pg_isready -q -h 127.0.0.1 -U app -d appdb && return 0
        sleep 1
    done
    docker logs "$id-db" >&2; fail "postgres not ready"
}
psql_remote() {
    docker run --rm --network "$id" -e PGPASSWORD="$1" "$POSTGRES_IMAGE" \
        psql -h db -U app -d appdb -v ON_ERROR_STOP=1 -tAc "$2"
}
run_db; wait_db
docker exec "$id-db" pg_isready -h 127.0.0.1 -U app -d appdb
psql_remote s3cret "create table t (v text); insert into t values ('kept'); select current_user, current_database();"
if psql_remote wrong 'select 1' 2>/dev/null; then fail "wrong password accepted"; fi
# A psycopg client from the app image, as Django would connect.
docker run --rm --network "$id" "$id:app" python -c \
    'import psycopg; print("psycopg says", psycopg.connect("host=db user=app password=s3cret dbname=appdb").execute("select v from t").fetchone()[0])'
docker stop "$id-db" >/dev/null
[ "$(docker inspect -f '{{.State.ExitCode}}' "$id-db")" = 0 ] || { docker logs "$id-db" >&2; fail "postgres stop"; }
docker rm "$id-db" >/dev/null
run_db; wait_db
[ "$(psql_remote s3cret 'select v from t')" = kept ] || fail "data lost across restart"
docker kill -s TERM "$id-db" >/dev/null
for _ in $(seq 30); do [ "$(docker inspect -f '{{.State.Running}}' "$id-db")" = false ] && break; sleep 0.5; done
[ "$(docker inspect -f '{{.State.ExitCode}}' "$id-db")" = 0 ] || fail "postgres SIGTERM"
log "postgres: ok"

# --- nginx ----------------------------------------------------------------------------
mkdir -p "$tmp/site"
echo "hello from $NGINX_IMAGE" > "$tmp/site/hello.txt"
cat > "$tmp/site.conf" <<'EOF'
server {
    listen 80 default_server;
    location /files/ { alias /srv/site/; }
}
EOF
chmod -R a+rX "$tmp"
docker run -d --name "$id-nginx" --network "$id" -p 127.0.0.1::80 \
    -v "$tmp/site.conf:/etc/nginx/conf.d/default.conf:ro" -v "$tmp/site:/srv/site:ro" \
    "$NGINX_IMAGE" >/dev/null
port=$(docker port "$id-nginx" 80/tcp | sed -n 's/^127\.0\.0\.1://p' | head -n1)
for _ in $(seq 30); do
    docker exec "$id-nginx" wget -q -O - http://127.0.0.1/files/hello.txt >/dev/null 2>&1 && break
    sleep 0.5
done
docker exec "$id-nginx" wget -q -O - http://127.0.0.1/files/hello.txt
body=$(python3 -c "import urllib.request as u; print(u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:$port/files/hello.txt', timeout=5).read().decode().strip())")
[ "$body" = "hello from $NGINX_IMAGE" ] || fail "nginx from the host: $body"
docker logs "$id-nginx" 2>&1 | grep -q 'GET /files/hello.txt' || fail "nginx access log not on stdout"
docker stop "$id-nginx" >/dev/null
log "nginx: ok"
echo "smoke: 3 passed, 0 failed"
