#!/usr/bin/env bash
# Checks the production nginx conf with `nginx -t`, the way the nginx image includes it.
#
# usage: tests/django/nginx-t.sh [CONF]   (default: docker/nginx/default.conf)
#
# Builds a throwaway prefix holding a minimal nginx.conf shaped like the official
# image's (nginx-prefix.sh: http {} including conf.d/*.conf, with every log, pid and
# temp path inside the prefix, so it runs as any user), copies CONF into its conf.d/
# and runs `nginx -t -p PREFIX -c PREFIX/nginx.conf -e stderr`.
#
# The conf is the template the image's entrypoint renders: the copy gets ${HTTPS_PORT}
# replaced and a throwaway self-signed certificate where the stack mounts its own
# (nginx -t loads it).
#
# The conf proxies to `server web:8000`, a name only Compose's network resolves, and
# nginx resolves upstream names while checking. When `web` does not resolve here, the
# copy (never the original) gets 127.0.0.1 in its place on that one line; the rest of
# the conf is checked unchanged. `nginx -t` also binds the listen sockets: run by a
# user other than root, the copy listens on 127.0.0.1 at unprivileged ports instead
# of ports 80 and 443. As root, nginx is installed with apt-get when missing.
set -euo pipefail

# shellcheck source=tests/django/nginx-prefix.sh
source "$(dirname "${BASH_SOURCE[0]}")/nginx-prefix.sh" "$@"

prefix=$(mktemp -d /tmp/nginx-t.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
nginx_prefix "$prefix" stderr

mkdir "$prefix/tls"
self_signed "$prefix/tls"
copy="$prefix/conf.d/$(basename "$conf")"
http_listen=80 https_listen=443
if [ "$(id -u)" -ne 0 ]; then
    port=$(( 20000 + $$ % 20000 ))
    http_listen="127.0.0.1:$port" https_listen="127.0.0.1:$((port + 1))"
fi
site_copy "$copy" "$http_listen" "$https_listen" 443 "$prefix/tls"
if ! getent hosts web >/dev/null 2>&1; then
    sed -i -E 's/^([[:space:]]*server[[:space:]]+)web(:[0-9]+)/\1127.0.0.1\2/' "$copy"
    grep -q -E '^[[:space:]]*server[[:space:]]+127\.0\.0\.1:' "$copy" \
        || die "expected an upstream 'server web:PORT;' line in $conf"
fi

nginx -t -q -p "$prefix/" -c "$prefix/nginx.conf" -e stderr
echo "nginx -t: $conf is valid"
