#!/bin/sh
# The certbot service of docker/compose.acme.yml (TLS_MODE=acme): obtains the certificate
# for ACME_DOMAINS (comma-separated) on first start, then checks twice a day whether it
# needs renewing (certbot renews within 30 days of expiry). Challenges go into the webroot
# nginx serves on port 80; nginx notices a new certificate by itself and reloads.
#
# `certbot-service.sh renew [ARGS]` renews now instead (`cargo xtask tls renew` runs it with
# `compose exec`), with the same trust as the service.
set -eu

# A private ACME CA's root, for the HTTPS of its API: requests (certbot's HTTP client)
# reads REQUESTS_CA_BUNDLE. The overlay mounts /dev/null here when there is none.
if [ -s /etc/ssl/acme-ca.pem ]; then
    export REQUESTS_CA_BUNDLE=/etc/ssl/acme-ca.pem
fi
if [ "${1:-}" = renew ]; then
    shift
    exec certbot renew --non-interactive --no-random-sleep-on-renew "$@"
fi

: "${ACME_EMAIL:?}" "${ACME_DOMAINS:?}" "${ACME_DIRECTORY_URL:?}"
# Let's Encrypt allows 5 failed validations per name and hour: retry four times an hour.
RETRY_SECONDS=900
RENEW_SECONDS=43200

# `sleep` in the background, so a stop signal ends the wait at once.
trap 'exit 0' TERM INT
pause() {
    sleep "$1" &
    wait $!
}

set --
for name in $(echo "$ACME_DOMAINS" | tr ',' ' '); do
    set -- "$@" --domain "$name"
done

# --cert-name keeps the files under /etc/letsencrypt/live/site/, where nginx looks;
# --expand and --keep-until-expiring make a restart with the same names a no-op.
until certbot certonly --non-interactive --agree-tos --no-eff-email \
    --email "$ACME_EMAIL" --server "$ACME_DIRECTORY_URL" \
    --webroot --webroot-path /var/www/acme \
    --cert-name site --keep-until-expiring --expand "$@"; do
    echo "certbot-service: no certificate yet; next try in ${RETRY_SECONDS}s" >&2
    pause "$RETRY_SECONDS"
done

while :; do
    pause "$RENEW_SECONDS"
    certbot renew --non-interactive || echo "certbot-service: renewal failed; next check in ${RENEW_SECONDS}s" >&2
done
