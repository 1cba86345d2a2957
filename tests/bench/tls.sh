#!/usr/bin/env bash
# Benchmark of static files and the page over HTTPS against plain HTTP from the same nginx
# of the production stack, in one run, on the real engine.
#
#   bash tests/bench/tls.sh [ROUNDS]     (default 3 rounds of 10 s per case)
#
# The stack is `cargo xtask prod --with-db` of a scratch copy of the repository. For the
# benchmark only, nginx gets a second server block on plain HTTP (port 8081, published on
# 127.0.0.1), with the same /static/ location and the page proxied to gunicorn as the
# HTTPS server has (X-Forwarded-Proto https, so Django answers rather than redirects).
# wrk (Debian's package, installed with apt when missing) keeps 16 keep-alive connections
# on two threads; the cases alternate within each round. It prints requests per second of
# each case and round, the medians, and the HTTPS/HTTP ratio of each path.
#
# Without a registry it uses the end-to-end suite's stand-in base images and wheelhouse.
# Everything it makes (target/bench-tls/, the Compose project bench-tls-prod, its volumes
# and image) is removed at the end. It is not a test: it prints, never fails on a figure.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
rounds=${1:-3}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
name=bench-tls
# shellcheck source=tests/bench/prepare.sh
. "$root/tests/bench/prepare.sh"

cleanup() {
    "$xtask" down --prod --volumes >/dev/null 2>&1 || true
    docker image rm "$name-web" >/dev/null 2>&1 || true
    "$root/tests/e2e/support/wheelhouse.sh" stop --dir "$work/wheelhouse" >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$xtask" init --prod --host localhost >/dev/null
https=$(free_port)
plain=$(free_port)
set_env ALLOWED_HOSTS localhost,127.0.0.1
set_env HTTP_PORT "$(free_port)"
set_env HTTPS_PORT "$https"
echo "starting the stack" >&2
"$xtask" prod --with-db >"$work/start.log" 2>&1 || { tail -30 "$work/start.log" >&2; exit 1; }

# The plain-HTTP server block: default.conf's /static/ location (the same file cache and
# lookup, without the fallback to a static service) and proxy, without TLS.
cat >"$work/plain.conf.template" <<'EOF'
server {
    listen 8081;
    server_tokens off;
    gzip on;
    gzip_static on;
    gzip_vary on;
    location /static/ {
        root /srv;
        open_file_cache max=10000 inactive=60s;
        open_file_cache_valid 5s;
        try_files $uri =404;
        add_header Cache-Control $static_cache_control;
        add_header X-Content-Type-Options nosniff always;
    }
    location / {
        proxy_pass http://django_web;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-Proto https;
    }
}
EOF
cat >"$work/plain.yml" <<EOF
services:
  nginx:
    ports:
      - "127.0.0.1:$plain:8081"
    volumes:
      - $work/plain.conf.template:/etc/nginx/templates/zz-bench-plain.conf.template:ro
EOF
compose=$(prod_compose)
bash -c "$compose -f $work/plain.yml up --detach --no-build --no-deps nginx" >"$work/plain.log" 2>&1
for _ in $(seq 1 60); do curl -s -o /dev/null "http://127.0.0.1:$plain/static/" && break; sleep 0.5; done

ca=$site/certs/ca.pem
page=$(curl -s --cacert "$ca" --resolve "localhost:$https:127.0.0.1" "https://localhost:$https/")
css=$(printf '%s' "$page" | grep -o '/static/[^"]*\.[0-9a-f]\{12\}\.css' | head -1)
[ -n "$css" ] || { echo "no hashed stylesheet on the page" >&2; exit 1; }
for url in "http://localhost:$plain$css" "https://localhost:$https$css" "http://localhost:$plain/" "https://localhost:$https/"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" --resolve "localhost:$https:127.0.0.1" --resolve "localhost:$plain:127.0.0.1" "$url")
    [ "$code" = 200 ] || { echo "$url answered $code" >&2; exit 1; }
done

# Requests per second of wrk on $1 (wrk resolves localhost itself; the certificate is not
# verified by wrk, whose TLS costs the same either way).
rate() { wrk -t2 -c16 -d10s "$1" | awk '/^Requests\/sec/ {print int($2)}'; }
declare -A results
cases=("stylesheet http://localhost:$plain$css" "stylesheet https://localhost:$https$css" "page http://localhost:$plain/" "page https://localhost:$https/")
for round in $(seq 1 "$rounds"); do
    for case in "${cases[@]}"; do
        read -r what url <<<"$case"
        scheme=${url%%:*}
        r=$(rate "$url")
        results[$what-$scheme]+="$r "
        echo "round $round: $what over $scheme: $r req/s"
    done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "medians of $rounds rounds (wrk -t2 -c16 -d10s, $css is $(curl -s "http://127.0.0.1:$plain$css" | wc -c) bytes):"
for what in stylesheet page; do
    h=$(echo "${results[$what-http]}" | median)
    s=$(echo "${results[$what-https]}" | median)
    ratio=$(python3 -c "print(f'{$s / $h:.2f}')")
    echo "  $what: http $h req/s, https $s req/s, https/http $ratio"
done
