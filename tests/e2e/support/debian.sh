# shellcheck shell=bash
# Sourced by base-images.sh and certbot-image.sh, which define `log` first: where
# debootstrap fetches from, installing it, unmounting what it left mounted, and the
# root filesystem it made written as a tar for `docker import`.

host_mirror() {
    local uri
    uri=$(awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) print $i }' \
            /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -E '/debian/?$' | head -n1 || true)
    if [ -z "$uri" ]; then
        uri=$(grep -hsE '^deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                | sed -E 's/^deb\s+(\[[^]]*\]\s+)?//' | awk '{print $1}' \
                | grep -E '/debian/?$' | head -n1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

ensure_debootstrap() {
    command -v debootstrap >/dev/null && return
    log "installing debootstrap"
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install debootstrap >&2 \
        || { "${apt[@]}" update >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install debootstrap >&2; }
}

unmount_under() {
    local dir=$1 m
    # Deepest first.
    for m in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
}

# Writes the root filesystem ROOT as TAR (complete or not at all), without what a
# container gets from its runtime (/dev, /proc, /sys, /run, /tmp) and debootstrap's own files.
write_rootfs_tar() {
    local root=$1 tar=$2
    tar --numeric-owner --one-file-system -C "$root" \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*' \
        --exclude='./tmp/*' --exclude='./debootstrap' \
        -cf "$tar.partial" .
    mv "$tar.partial" "$tar"
}
