#!/usr/bin/env bash
# Serves the production nginx conf on 127.0.0.1 and checks what it answers.
#
# usage: tests/django/nginx-smoke.sh [CONF]   (default: docker/nginx/default.conf)
#
# Runs nginx (in a throwaway prefix with a minimal nginx.conf, see nginx-prefix.sh)
# on two free loopback ports (plain HTTP and TLS, with a throwaway certificate), with /srv replaced by a temporary tree holding a static
# file, its hashed copy and .gz sibling, and an uploaded HTML file, and with the `web`
# upstream replaced by a stub on another loopback port that echoes the request headers
# it got. Then checks with curl and openssl: the redirect to https and the ACME path on
# plain HTTP, the TLS versions, HTTP/2 and session tickets, caching, gzip_static, inert
# media, dotfile denial, the proxy headers, the body size limit and server_tokens. Needs
# nginx (installed with apt-get when missing and run as root), curl, openssl and python3.
# Ends with "nginx-smoke: N passed, N failed".
set -euo pipefail

# shellcheck source=tests/django/nginx-prefix.sh
source "$(dirname "${BASH_SOURCE[0]}")/nginx-prefix.sh" "$@"

for tool in curl openssl python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

work=$(mktemp -d /tmp/nginx-smoke.XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    local prefix
    for prefix in "$work" "$work/default-port"; do
        if [ -f "$prefix/nginx.pid" ]; then
            kill "$(cat "$prefix/nginx.pid")" 2>/dev/null || true
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
nginx_prefix "$work" "$work/error.log"
mkdir -p "$work/srv/static/core" "$work/srv/media/uploads" "$work/acme/.well-known/acme-challenge" "$work/tls"
self_signed "$work/tls"
printf 'token-body\n' >"$work/acme/.well-known/acme-challenge/token-1"

# Content to serve.
css='body { color: #123456; margin: 0; padding: 0; }'
for _ in 1 2 3 4 5 6; do css="$css$css"; done
printf '%s\n' "$css" >"$work/srv/static/core/site.css"
cp "$work/srv/static/core/site.css" "$work/srv/static/core/site.0123456789ab.css"
gzip -9 -n -k "$work/srv/static/core/site.0123456789ab.css"
printf '<script>alert(1)</script>\n' >"$work/srv/media/uploads/evil.html"
printf 'secret\n' >"$work/srv/static/.hidden"
chmod -R a+rX "$work/srv" "$work/acme"

# Upstream stub: answers every request with the headers it received, as JSON.
upstream_port=$(free_port)
python3 - "$upstream_port" >"$work/upstream.log" 2>&1 <<'EOF' &
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Echo(BaseHTTPRequestHandler):
    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = answer

HTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
EOF
pids+=($!)

port=$(free_port)
tls_port=$(free_port)
copy="$work/conf.d/default.conf"
site_copy "$copy" "127.0.0.1:$port" "127.0.0.1:$tls_port" "$tls_port" "$work/tls"
sed -i -E \
    -e "s/^([[:space:]]*server[[:space:]]+)web:8000/\\1127.0.0.1:$upstream_port/" \
    -e "s#^([[:space:]]*root[[:space:]]+)/srv;#\\1$work/srv;#" \
    -e "s#^([[:space:]]*root[[:space:]]+)/var/www/acme;#\\1$work/acme;#" \
    "$copy"

nginx -p "$work/" -c "$work/nginx.conf" -e "$work/error.log" || {
    cat "$work/error.log" >&2
    die "nginx did not start"
}
plain="http://127.0.0.1:$port"
base="https://localhost:$tls_port"
# Every https request names localhost (the certificate's name) and reaches 127.0.0.1.
curl() { command curl --cacert "$work/tls/fullchain.pem" --resolve "localhost:$tls_port:127.0.0.1" "$@"; }
ready=0
for _ in $(seq 50); do
    if curl -s -o /dev/null "$plain/nginx-healthz" && curl -s -o /dev/null "$base/" && curl -s -o /dev/null "http://127.0.0.1:$upstream_port/"; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ "$ready" -ne 1 ]; then
    cat "$work/error.log" "$work/upstream.log" >&2
    die "nginx or the upstream stub did not answer within 5s"
fi

passed=0
failed=0
check() {
    local name=$1 haystack=$2 needle=$3
    if grep -q -i -E -- "$needle" <<<"$haystack"; then
        passed=$((passed + 1))
        echo "ok: $name"
    else
        failed=$((failed + 1))
        echo "FAILED: $name: expected /$needle/ in:" >&2
        printf '%s\n' "$haystack" | sed 's/^/    /' >&2
    fi
}
check_not() {
    local name=$1 haystack=$2 needle=$3
    if grep -q -i -E -- "$needle" <<<"$haystack"; then
        failed=$((failed + 1))
        echo "FAILED: $name: did not expect /$needle/ in:" >&2
        printf '%s\n' "$haystack" | sed 's/^/    /' >&2
    else
        passed=$((passed + 1))
        echo "ok: $name"
    fi
}
headers() { curl -s -o /dev/null -D - "$@"; }
# The TLS handshake as openssl sees it, offering only the given protocol.
handshake() { openssl s_client -connect "127.0.0.1:$tls_port" -servername localhost "$@" </dev/null 2>&1 || true; }

out=$(headers -H "Host: Shop.Example:$port" "$plain/admin/login/?next=/admin/")
check "plain HTTP redirects permanently" "$out" '^HTTP/1.1 301'
check "to https on the same host, path and query, on the HTTPS port" "$out" \
    "^location: https://shop.example:$tls_port/admin/login/\\?next=/admin/"
check "the ACME challenge is served over plain HTTP" "$(curl -s "$plain/.well-known/acme-challenge/token-1")" '^token-body$'
out=$(headers "$plain/.well-known/acme-challenge/missing")
check "a missing challenge is a 404, not a redirect" "$out" '^HTTP/1.1 404'

# A second nginx, rendered for HTTPS_PORT=443: its redirect names no port.
other="$work/default-port"
mkdir -p "$other"
nginx_prefix "$other" "$other/error.log"
other_port=$(free_port)
site_copy "$other/conf.d/default.conf" "127.0.0.1:$other_port" "127.0.0.1:$(free_port)" 443 "$work/tls"
sed -i -E "s/^([[:space:]]*server[[:space:]]+)web:8000/\\1127.0.0.1:$upstream_port/" "$other/conf.d/default.conf"
nginx -p "$other/" -c "$other/nginx.conf" -e "$other/error.log" || die "the second nginx did not start"
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$other_port/nginx-healthz" && break
    sleep 0.1
done
out=$(headers -H "Host: shop.example:$other_port" "http://127.0.0.1:$other_port/a/b")
check "with HTTPS on 443 the redirect names no port" "$out" '^location: https://shop.example/a/b'

check "HTTP/2 over TLS" "$(curl -s -o /dev/null -w '%{http_version}' --http2 "$base/")" '^2$'
check "TLS 1.3 is accepted" "$(handshake -tls1_3)" '^New, TLSv1.3, Cipher is TLS_'
out=$(handshake -tls1_2)
check "TLS 1.2 is accepted" "$out" '^New, TLSv1.2, Cipher is ECDHE-'
check_not "no session ticket is issued" "$out" 'TLS session ticket'
# SECLEVEL=0 lets the client offer TLS 1.1, so a refusal is the server's.
out=$(handshake -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0')
check "TLS 1.1 is refused" "$out" 'alert protocol version|no protocols available|wrong version number|unsupported protocol'
check "TLS 1.1 completes no handshake" "$out" '^New, \(NONE\), Cipher is \(NONE\)'

out=$(headers "$base/static/core/site.0123456789ab.css")
check "hashed static is cached for a year" "$out" '^cache-control: public, max-age=31536000, immutable'
check "static gets nosniff" "$out" '^x-content-type-options: nosniff'
check "static has its MIME type" "$out" '^content-type: text/css'

out=$(headers -H 'Accept-Encoding: gzip' "$base/static/core/site.0123456789ab.css")
check "gzip_static serves the .gz sibling" "$out" '^content-encoding: gzip'
gz_length=$(sed -n 's/^content-length: *\([0-9]*\).*/\1/Ip' <<<"$out")
check "the precompressed file is the one served" "$gz_length" "^$(stat -c %s "$work/srv/static/core/site.0123456789ab.css.gz")\$"

out=$(headers -H 'Accept-Encoding: gzip' "$base/static/core/site.css")
check "unhashed static is cached briefly" "$out" '^cache-control: public, max-age=300'
check "gzip compresses on the fly without a sibling" "$out" '^content-encoding: gzip'

out=$(headers "$base/static/core/missing.0123456789ab.css")
check "missing static is a 404" "$out" '^HTTP/[12](.1)? 404'
check_not "a 404 is not cached for a year" "$out" 'immutable'

out=$(headers "$base/media/uploads/evil.html")
check "uploaded HTML is served" "$out" '^HTTP/[12](.1)? 200'
check "uploaded HTML is not text/html" "$out" '^content-type: application/octet-stream'
check "uploads are downloads" "$out" '^content-disposition: attachment'
check "uploads get nosniff" "$out" '^x-content-type-options: nosniff'
check "uploads are sandboxed" "$out" "^content-security-policy: default-src 'none'; sandbox"

check "dotfiles at the root are denied" "$(headers "$base/.env")" '^HTTP/[12](.1)? 403'
check "dotfiles under /static/ are denied" "$(headers "$base/static/.hidden")" '^HTTP/[12](.1)? 403'
check "/.well-known/ reaches the app" "$(curl -s "$base/.well-known/security.txt")" '"host": "localhost:'"$tls_port"'"'
check "server_tokens off" "$(headers "$base/static/core/site.css")" '^server: nginx.?$'
check "server_tokens off on plain HTTP" "$(headers "$plain/")" '^server: nginx.?$'
check "nginx's probe answers loopback on plain HTTP" "$(curl -s "$plain/nginx-healthz")" '^ok$'


body=$(curl -s -H 'Host: www.example.com:8443' "$base/uploads/")
check "Host (with port) reaches the app" "$body" '"host": "www.example.com:8443"'
check "the scheme passed on is https" "$body" '"x-forwarded-proto": "https"'
check "client address is forwarded" "$body" '"x-forwarded-for": "127.0.0.1"'
body=$(curl -s -H 'X-Forwarded-Proto: http' "$base/")
check "a client's X-Forwarded-Proto is replaced" "$body" '"x-forwarded-proto": "https"'

big="$work/big.bin"
head -c $((26 * 1024 * 1024)) /dev/zero >"$big"
status=$(curl -s -o /dev/null -w '%{http_code}' -F "file=@$big" "$base/uploads/")
check "bodies over client_max_body_size are refused" "$status" '^413$'
small="$work/small.bin"
head -c $((1024 * 1024)) /dev/zero >"$small"
status=$(curl -s -o /dev/null -w '%{http_code}' -F "file=@$small" "$base/uploads/")
check "bodies under the limit reach the app" "$status" '^200$'

echo "nginx-smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
