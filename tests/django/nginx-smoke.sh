#!/usr/bin/env bash
# Serves the production nginx conf on 127.0.0.1 and checks what it answers.
#
# usage: tests/django/nginx-smoke.sh [CONF]   (default: docker/nginx/default.conf)
#
# Runs nginx (in a throwaway prefix with a minimal nginx.conf, see nginx-prefix.sh)
# on a free loopback port, with /srv replaced by a temporary tree holding a static
# file, its hashed copy and .gz sibling, and an uploaded HTML file, and with the `web`
# upstream replaced by a stub on another loopback port that echoes the request headers
# it got. Then checks caching, gzip_static, inert media, dotfile denial, the proxy
# headers, the body size limit and server_tokens with curl. Needs nginx (installed
# with apt-get when missing and run as root), curl and python3.
# Ends with "nginx-smoke: N passed, N failed".
set -euo pipefail

# shellcheck source=tests/django/nginx-prefix.sh
source "$(dirname "${BASH_SOURCE[0]}")/nginx-prefix.sh" "$@"

for tool in curl python3; do
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
    if [ -f "$work/nginx.pid" ]; then
        kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
nginx_prefix "$work" "$work/error.log"
mkdir -p "$work/srv/static/core" "$work/srv/media/uploads"

# Content to serve.
css='body { color: #123456; margin: 0; padding: 0; }'
for _ in 1 2 3 4 5 6; do css="$css$css"; done
printf '%s\n' "$css" >"$work/srv/static/core/site.css"
cp "$work/srv/static/core/site.css" "$work/srv/static/core/site.0123456789ab.css"
gzip -9 -n -k "$work/srv/static/core/site.0123456789ab.css"
printf '<script>alert(1)</script>\n' >"$work/srv/media/uploads/evil.html"
printf 'secret\n' >"$work/srv/static/.hidden"
chmod -R a+rX "$work/srv"

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
copy="$work/conf.d/default.conf"
sed -E \
    -e "s/^([[:space:]]*server[[:space:]]+)web:8000/\\1127.0.0.1:$upstream_port/" \
    -e "s/^([[:space:]]*listen[[:space:]]+)80([[:space:];])/\\1127.0.0.1:$port\\2/" \
    -e "s#^([[:space:]]*root[[:space:]]+)/srv;#\\1$work/srv;#" \
    "$conf" >"$copy"

nginx -p "$work/" -c "$work/nginx.conf" -e "$work/error.log" || {
    cat "$work/error.log" >&2
    die "nginx did not start"
}
base="http://127.0.0.1:$port"
ready=0
for _ in $(seq 50); do
    if curl -s -o /dev/null "$base/nginx-healthz" && curl -s -o /dev/null "http://127.0.0.1:$upstream_port/"; then
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
check "missing static is a 404" "$out" '^HTTP/1.1 404'
check_not "a 404 is not cached for a year" "$out" 'immutable'

out=$(headers "$base/media/uploads/evil.html")
check "uploaded HTML is served" "$out" '^HTTP/1.1 200'
check "uploaded HTML is not text/html" "$out" '^content-type: application/octet-stream'
check "uploads are downloads" "$out" '^content-disposition: attachment'
check "uploads get nosniff" "$out" '^x-content-type-options: nosniff'
check "uploads are sandboxed" "$out" "^content-security-policy: default-src 'none'; sandbox"

check "dotfiles at the root are denied" "$(headers "$base/.env")" '^HTTP/1.1 403'
check "dotfiles under /static/ are denied" "$(headers "$base/static/.hidden")" '^HTTP/1.1 403'
check "server_tokens off" "$(headers "$base/nginx-healthz")" '^server: nginx.?$'

body=$(curl -s -H 'Host: www.example.com:8443' "$base/uploads/")
check "Host (with port) reaches the app" "$body" '"host": "www.example.com:8443"'
check "scheme of a direct request is http" "$body" '"x-forwarded-proto": "http"'
check "client address is forwarded" "$body" '"x-forwarded-for": "127.0.0.1"'
body=$(curl -s -H 'X-Forwarded-Proto: https' "$base/")
check "scheme from the TLS terminator is kept" "$body" '"x-forwarded-proto": "https"'
body=$(curl -s -H 'X-Forwarded-Proto: javascript' "$base/")
check "any other reported scheme is replaced" "$body" '"x-forwarded-proto": "http"'

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
