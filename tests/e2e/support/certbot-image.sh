#!/usr/bin/env bash
# Make a certbot image available to the acme end-to-end scenario.
#
# usage: tests/e2e/support/certbot-image.sh
#
# Prints CERTBOT_IMAGE=<the image to use> on stdout: CERTBOT_IMAGE itself (default
# certbot/certbot) when it is present locally or can be pulled, else a local stand-in,
# xtask-e2e/certbot:bookworm: a Debian bookworm root filesystem with Debian's certbot
# package (debootstrap, imported with `docker import`), with the official image's
# contract (entrypoint `certbot`, configuration in /etc/letsencrypt). It has its own tag
# and cache key (target/e2e-cache/certbot-bookworm-<key>.tar), apart from the stand-ins
# of base-images.sh, and is rebuilt only when its recipe below changes. Progress goes to
# stderr. Needs root for debootstrap (installed with apt-get when missing).
#
# Environment:
#   E2E_FORCE_STANDINS=1   use the stand-in even when the image is available
#   E2E_DEBIAN_MIRROR=URL  Debian mirror (default: the one apt uses on this host)
#   E2E_CACHE_DIR=DIR      cache directory (default: <repo>/target/e2e-cache)
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cache="${E2E_CACHE_DIR:-$repo/target/e2e-cache}"

SUITE=bookworm
# Bump when the way the image is made changes (invalidates the cache).
RECIPE=1
# python3-cffi-backend: debootstrap does not resolve the virtual package python3-cryptography
# depends on (python3-cffi-backend-api-*), so it is named.
PACKAGES=(ca-certificates certbot python3-cffi-backend)
TAG="xtask-e2e/certbot:$SUITE"
LABEL=org.xtask-e2e.certbot
WANT="${CERTBOT_IMAGE:-certbot/certbot}"

log() { echo "certbot-image: $*" >&2; }
die() { log "error: $*"; exit 1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

mkdir -p "$cache"
exec 9>"$cache/certbot-image.lock"
flock 9

if [ "${E2E_FORCE_STANDINS:-0}" != 1 ]; then
    if have_image "$WANT" || timeout 120 docker pull -q "$WANT" >/dev/null 2>&1; then
        echo "CERTBOT_IMAGE=$WANT"
        exit 0
    fi
    log "$WANT is not available; using a local stand-in"
fi

key=$(printf '%s\n' "$SUITE" "$RECIPE" "${PACKAGES[@]}" | sha256sum | cut -c1-16)
if have_image "$TAG" && [ "$(docker image inspect --format "{{index .Config.Labels \"$LABEL\"}}" "$TAG")" = "$key" ]; then
    echo "CERTBOT_IMAGE=$TAG"
    exit 0
fi

# shellcheck source=tests/e2e/support/debian.sh
source "$here/debian.sh"

tar="$cache/certbot-$SUITE-$key.tar"
if [ ! -s "$tar" ]; then
    [ "$(id -u)" = 0 ] || die "building the certbot stand-in needs root (debootstrap)"
    ensure_debootstrap
    find "$cache" -maxdepth 1 -name "certbot-$SUITE-*.tar*" -delete
    work=$(mktemp -d "$cache/certbot.XXXXXX")
    trap 'unmount_under "'"$work"'"; rm -rf "'"$work"'"' EXIT
    mirror="${E2E_DEBIAN_MIRROR:-$(host_mirror)}"
    log "debootstrap $SUITE with ${PACKAGES[*]} from $mirror"
    t0=$SECONDS
    if ! debootstrap --variant=minbase --components=main \
            --include="$(IFS=,; echo "${PACKAGES[*]}")" \
            "$SUITE" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1; then
        cp "$work/root/debootstrap/debootstrap.log" "$cache/certbot-debootstrap.log" 2>/dev/null || true
        tail -n 30 "$work/debootstrap.log" >&2
        die "debootstrap failed (log: $cache/certbot-debootstrap.log)"
    fi
    unmount_under "$work/root"
    log "debootstrap took $((SECONDS - t0))s"
    r="$work/root"
    rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/* \
        "$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/* \
        "$r"/etc/hostname "$r"/etc/resolv.conf "$r"/var/log/*.log "$r"/var/log/apt/*
    # Debian's package renews through a systemd timer or cron; the stack's service does it.
    rm -f "$r"/etc/cron.d/certbot
    write_rootfs_tar "$r" "$tar"
    rm -rf "$work"
    trap - EXIT
fi

log "importing $tar as $TAG"
old=$(docker image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)
docker import \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    --change "LABEL $LABEL=$key" \
    --change 'ENTRYPOINT ["certbot"]' \
    --change 'VOLUME /etc/letsencrypt /var/lib/letsencrypt' \
    --message "Debian $SUITE with certbot, a stand-in for certbot/certbot" \
    "$tar" "$TAG" >/dev/null
[ -z "$old" ] || [ "$old" = "$(docker image inspect --format '{{.Id}}' "$TAG")" ] || docker rmi "$old" >/dev/null 2>&1 || true
echo "CERTBOT_IMAGE=$TAG"
