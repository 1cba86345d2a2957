#!/bin/sh
# Run by the nginx image's entrypoint (from /docker-entrypoint.d/) with TLS_MODE=acme
# (docker/compose.acme.yml). nginx reads the certificate through links in /etc/nginx/acme/
# (TLS_DIR): certbot's files once they exist, else the self-signed bootstrap pair the
# stack mounts at /etc/nginx/tls/. A background loop compares the hash of certbot's files
# every few seconds and, when it changed and `nginx -t` accepts the new pair, reloads
# nginx: old workers finish their connections, none is dropped. A pair certbot is still
# writing fails `nginx -t` and is taken on the next round.
set -eu

live=/etc/letsencrypt/live/site
links=/etc/nginx/acme
every=5

point_at() {
    ln -sfn "$1/fullchain.pem" "$links/fullchain.pem"
    ln -sfn "$1/privkey.pem" "$links/privkey.pem"
}

state() {
    cat "$live/fullchain.pem" "$live/privkey.pem" 2>/dev/null | sha256sum
}

mkdir -p "$links"
if [ -s "$live/fullchain.pem" ] && [ -s "$live/privkey.pem" ]; then
    point_at "$live"
    served=$(state)
else
    point_at /etc/nginx/tls
    served=none
fi

watch() {
    while sleep "$every"; do
        [ -s "$live/fullchain.pem" ] && [ -s "$live/privkey.pem" ] || continue
        now=$(state)
        [ "$now" != "$served" ] || continue
        point_at "$live"
        if nginx -t -q 2>/dev/null && nginx -s reload; then
            served=$now
            echo "acme-watch: new certificate in $live, nginx reloaded" >&2
        fi
    done
}

watch </dev/null >/dev/null &
echo "acme-watch: serving $(readlink "$links/fullchain.pem"), watching $live every ${every}s" >&2
