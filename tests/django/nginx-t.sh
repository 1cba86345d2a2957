#!/usr/bin/env bash
# Checks the production nginx conf with `nginx -t`, the way the nginx image includes it.
#
# usage: tests/django/nginx-t.sh [CONF]   (default: docker/nginx/default.conf)
#
# Builds a throwaway prefix holding a minimal nginx.conf shaped like the official
# image's (http {} including conf.d/*.conf, with every log, pid and temp path inside
# the prefix, so it runs as any user), copies CONF into its conf.d/ and runs
# `nginx -t -p PREFIX -c PREFIX/nginx.conf -e stderr`.
#
# The conf proxies to `server web:8000`, a name only Compose's network resolves, and
# nginx resolves upstream names while checking. When `web` does not resolve here, the
# copy (never the original) gets 127.0.0.1 in its place on that one line; the rest of
# the conf is checked unchanged. `nginx -t` also binds the listen sockets: run by a
# user other than root, the copy listens on 127.0.0.1 at an unprivileged port instead
# of port 80. As root, nginx is installed with apt-get when missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
conf=${1:-$root/docker/nginx/default.conf}

die() {
    echo "nginx-t.sh: $*" >&2
    exit 1
}

[ -f "$conf" ] || die "no such file: $conf"
if ! command -v nginx >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "installing nginx with apt-get" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >&2 \
            || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >&2
    fi
    command -v nginx >/dev/null || die "nginx is not installed (apt-get install nginx)"
fi

mime_types=""
for candidate in /etc/nginx/mime.types /usr/local/etc/nginx/mime.types; do
    if [ -f "$candidate" ]; then
        mime_types=$candidate
        break
    fi
done
[ -n "$mime_types" ] || die "no mime.types found next to the nginx installation"

prefix=$(mktemp -d /tmp/nginx-t.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
mkdir -p "$prefix/conf.d" "$prefix/logs" "$prefix/temp"

cat >"$prefix/nginx.conf" <<EOF
# Shaped like the nginx image's /etc/nginx/nginx.conf, with every path in the prefix.
worker_processes 1;
pid $prefix/nginx.pid;
error_log stderr notice;

events {
    worker_connections 64;
}

http {
    include $mime_types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    keepalive_timeout 65;

    client_body_temp_path $prefix/temp/client_body;
    proxy_temp_path $prefix/temp/proxy;
    fastcgi_temp_path $prefix/temp/fastcgi;
    uwsgi_temp_path $prefix/temp/uwsgi;
    scgi_temp_path $prefix/temp/scgi;

    include $prefix/conf.d/*.conf;
}
EOF

copy="$prefix/conf.d/$(basename "$conf")"
cp "$conf" "$copy"
if ! getent hosts web >/dev/null 2>&1; then
    sed -i -E 's/^([[:space:]]*server[[:space:]]+)web(:[0-9]+)/\1127.0.0.1\2/' "$copy"
    grep -q -E '^[[:space:]]*server[[:space:]]+127\.0\.0\.1:' "$copy" \
        || die "expected an upstream 'server web:PORT;' line in $conf"
fi

if [ "$(id -u)" -ne 0 ]; then
    port=$(( 20000 + $$ % 20000 ))
    sed -i -E "s/^([[:space:]]*listen[[:space:]]+)80([[:space:];])/\\1127.0.0.1:$port\\2/" "$copy"
fi

nginx -t -q -p "$prefix/" -c "$prefix/nginx.conf" -e stderr
echo "nginx -t: $conf is valid"
