# shellcheck shell=bash
# Sourced by base-images.sh and certbot-image.sh, which define `log` first: where
# debootstrap fetches from, installing it, and unmounting what it left mounted.

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
