# shellcheck shell=bash
# Sourced by nginx-t.sh and nginx-smoke.sh, after `set -euo pipefail`, with the
# script's arguments:
#   source "$(dirname "${BASH_SOURCE[0]}")/nginx-prefix.sh" "$@"
#
# Sets `root` (the repository root) and `conf` (the first argument, default
# docker/nginx/default.conf), defines `die`, makes sure nginx is there (as root,
# installed with apt-get when missing) and defines `nginx_prefix PREFIX ERROR_LOG`.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
conf=${1:-$root/docker/nginx/default.conf}

die() {
    echo "$(basename "$0"): $*" >&2
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

# Fills the directory PREFIX with a minimal nginx.conf shaped like the official image's
# (http {} including PREFIX/conf.d/*.conf) with its pid file and temp paths inside PREFIX,
# so nginx runs as any user, and the directories it names. Errors go to ERROR_LOG (a
# path, or stderr). Run by root, the workers run as nobody, as the image's run as nginx.
nginx_prefix() {
    local prefix=$1 error_log=$2
    mkdir -p "$prefix/conf.d" "$prefix/logs" "$prefix/temp"
    local user=""
    if [ "$(id -u)" -eq 0 ]; then
        user="user nobody $(id -gn nobody 2>/dev/null || echo nogroup);"
    fi
    cat >"$prefix/nginx.conf" <<EOF
$user
worker_processes 1;
pid $prefix/nginx.pid;
error_log $error_log notice;

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
}

# Writes a throwaway self-signed certificate for localhost and 127.0.0.1 to
# DIR/fullchain.pem and DIR/privkey.pem (the names the conf mounts).
self_signed() {
    local dir=$1
    command -v openssl >/dev/null || die "openssl is not installed"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
        -keyout "$dir/privkey.pem" -out "$dir/fullchain.pem" 2>/dev/null \
        || die "openssl cannot make a test certificate"
}

# Copies CONF to DEST as the image's entrypoint renders it, with ${HTTPS_PORT} set to
# HTTPS_PORT and the certificate read from CERT_DIR (for ${TLS_DIR}), the production stack's
# backends (an upstream block naming web:8000 where `cargo xtask prod` writes one, no static
# service), and with its two listen sockets on HTTP_LISTEN and HTTPS_LISTEN ("80",
# "127.0.0.1:8080", ...). The rest is unchanged.
site_copy() {
    local dest=$1 http_listen=$2 https_listen=$3 https_port=$4 cert_dir=$5
    sed -E \
        -e "s/\\\$\\{HTTPS_PORT\\}/$https_port/g" \
        -e "s#\\\$\\{TLS_DIR\\}/#$cert_dir/#g" \
        -e "s/^([[:space:]]*listen[[:space:]]+)80([[:space:];])/\\1$http_listen\\2/" \
        -e "s/^([[:space:]]*listen[[:space:]]+)443([[:space:];])/\\1$https_listen\\2/" \
        -e "s#^include /etc/nginx/upstream/\\*\\.conf;#upstream django_web {\\n    server web:8000;\\n}#" \
        -e "s#\\\$\\{WEB_BACKEND\\}#http://django_web#g" \
        -e "s#\\\$\\{STATIC_BACKEND\\}##g" \
        "$conf" >"$dest"
    grep -q -E "^[[:space:]]*listen[[:space:]]+$https_listen ssl" "$dest" \
        || die "expected a 'listen 443 ssl ...' line in $conf"
}
