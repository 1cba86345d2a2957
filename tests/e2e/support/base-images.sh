#!/usr/bin/env bash
# Make the base images of the stacks available to the end-to-end tests.
#
# usage: tests/e2e/support/base-images.sh [OUTPUT_FILE]
#
# For each of PYTHON_IMAGE, POSTGRES_IMAGE and NGINX_IMAGE (defaults: the images
# the project uses, python:3.13-slim, postgres:17-alpine, nginx:1.27-alpine) and of
# PYTHON_IMAGE_3_11 and PYTHON_IMAGE_3_13 (python:3.11-slim, python:3.13-slim: the
# images of the other Python versions a project may describe) the image is used as
# is when it is present locally or can be pulled. Otherwise a local stand-in is built
# from a Debian root filesystem, of the suite whose python3 is the version wanted:
#
#   xtask-e2e/python:trixie      python/pip (3.13), useradd/adduser, pip may
#                                install into the system interpreter (trixie)
#   xtask-e2e/python:bookworm    the same with Python 3.11 (bookworm)
#   xtask-e2e/postgres:bookworm  PostgreSQL 15 with the official image's
#                                entrypoint contract (POSTGRES_USER/PASSWORD/DB,
#                                PGDATA=/var/lib/postgresql/data, pg_isready)
#   xtask-e2e/nginx:bookworm     nginx 1.22, daemon off, conf.d/*.conf, logs to
#                                stdout/stderr, wget and curl for healthchecks
#   xtask-e2e/redis:bookworm     redis-server 7 as the user redis, data in /data
#
# Prints the KEY=image assignments to use (one per line) on stdout, or writes
# them to OUTPUT_FILE. Progress goes to stderr.
#
# The debootstrap output is cached as target/e2e-cache/rootfs-<suite>-<key>.tar
# and imported once as xtask-e2e/rootfs:<suite>; standin/Dockerfile adds the
# shared files to bookworm's (xtask-e2e/standin-common:bookworm, classic builder)
# and each stand-in is a `docker commit` of it (trixie's python: of its root
# filesystem) with its own config. Images are rebuilt
# only when their recipe (standin/ and the config below) changes; a warm run
# takes well under a second. Needs root for debootstrap (installed with apt-get
# when missing).
#
# Environment:
#   E2E_FORCE_STANDINS=1   use the stand-ins even when the images are available
#   E2E_DEBIAN_MIRROR=URL  Debian mirror (default: the one apt uses on this host)
#   E2E_CACHE_DIR=DIR      cache directory (default: <repo>/target/e2e-cache)
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cache="${E2E_CACHE_DIR:-$repo/target/e2e-cache}"
out_file="${1:-}"

SUITE=bookworm
# Bump when the way the root filesystem is made changes (invalidates the cache).
ROOTFS_RECIPE=1
# python3-dev: python:*-slim ships Python's headers, which a requirement built from source needs.
PYTHON_PACKAGES=(ca-certificates adduser procps python3 python3-venv python3-pip python-is-python3 python3-dev)
PACKAGES=(
    "${PYTHON_PACKAGES[@]}"
    postgresql
    nginx gettext-base wget curl
    redis-server
    # restic and ssh: the backup service (docker/backup) finds them in the postgres image.
    restic openssh-client
)
# The suite whose python3 is Python 3.13: its root filesystem holds Python only.
PYTHON_SUITE=trixie
declare -A STANDIN=(
    [PYTHON_IMAGE]="xtask-e2e/python:$PYTHON_SUITE"
    [PYTHON_IMAGE_3_11]="xtask-e2e/python:$SUITE"
    [PYTHON_IMAGE_3_13]="xtask-e2e/python:$PYTHON_SUITE"
    [POSTGRES_IMAGE]="xtask-e2e/postgres:$SUITE"
    [NGINX_IMAGE]="xtask-e2e/nginx:$SUITE"
    [REDIS_IMAGE]="xtask-e2e/redis:$SUITE"
)
declare -A TARGET=(
    [PYTHON_IMAGE]=python-3.13 [PYTHON_IMAGE_3_11]=python [PYTHON_IMAGE_3_13]=python-3.13
    [POSTGRES_IMAGE]=postgres [NGINX_IMAGE]=nginx [REDIS_IMAGE]=redis
)
declare -A DEFAULT=(
    [PYTHON_IMAGE]="python:3.13-slim"
    [PYTHON_IMAGE_3_11]="python:3.11-slim"
    [PYTHON_IMAGE_3_13]="python:3.13-slim"
    [POSTGRES_IMAGE]="postgres:17-alpine"
    [NGINX_IMAGE]="nginx:1.27-alpine"
    [REDIS_IMAGE]="redis:7-alpine"
)
KEYS=(PYTHON_IMAGE PYTHON_IMAGE_3_11 PYTHON_IMAGE_3_13 POSTGRES_IMAGE NGINX_IMAGE REDIS_IMAGE)
LABEL=org.xtask-e2e

start=$SECONDS
log() { echo "base-images: $*" >&2; }
die() { log "error: $*"; exit 1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
image_label() { docker image inspect --format "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
sha() { sha256sum | cut -c1-16; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable"
mkdir -p "$cache"

# One run at a time (tests may call this concurrently).
exec 9>"$cache/base-images.lock"
flock 9

# --- which images need a stand-in -------------------------------------------
declare -A RESULT=()
needed=()
for key in "${KEYS[@]}"; do
    want="${!key:-${DEFAULT[$key]}}"
    if [ "${E2E_FORCE_STANDINS:-0}" != 1 ]; then
        if have_image "$want"; then
            RESULT[$key]="$want"; continue
        fi
        log "pulling $want"
        if timeout 300 docker pull -q "$want" >/dev/null 2>&1; then
            RESULT[$key]="$want"; continue
        fi
        log "$want is not available; using a local stand-in"
    fi
    needed+=("$key")
done

# --- Debian root filesystem --------------------------------------------------
# shellcheck source=tests/e2e/support/debian.sh
source "$here/debian.sh"

# build_rootfs_tar TAR SUITE PACKAGE...
build_rootfs_tar() {
    local tar=$1 suite=$2 work
    shift 2
    [ "$(id -u)" = 0 ] || die "building the root filesystem needs root (debootstrap)"
    ensure_debootstrap
    work=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'unmount_under "'"$work"'"; rm -rf "'"$work"'"' EXIT
    local mirror="${E2E_DEBIAN_MIRROR:-$(host_mirror)}"
    log "debootstrap $suite from $mirror (log: $work/debootstrap.log)"
    local t0=$SECONDS
    if ! debootstrap --variant=minbase --components=main \
            --include="$(IFS=,; echo "$*")" \
            "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1; then
        tail -n 30 "$work/debootstrap.log" >&2
        cat "$work/root/debootstrap/debootstrap.log" 2>/dev/null | tail -n 30 >&2 || true
        die "debootstrap failed"
    fi
    unmount_under "$work/root"
    log "debootstrap took $((SECONDS - t0))s"
    local r="$work/root"
    # Slim down: package caches, docs, translations; Debian's default cluster
    # (the postgres stand-in creates its own in PGDATA); the LLVM JIT provider
    # (PostgreSQL runs without it, ~120 MB).
    rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/* \
        "$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/* \
        "$r"/etc/postgresql/*/main "$r"/var/lib/postgresql/*/main \
        "$r"/usr/lib/postgresql/*/lib/llvmjit* "$r"/usr/lib/postgresql/*/lib/bitcode \
        "$r"/usr/lib/x86_64-linux-gnu/libLLVM-* \
        "$r"/etc/hostname "$r"/etc/resolv.conf "$r"/var/log/*.log "$r"/var/log/apt/*
    write_rootfs_tar "$r" "$tar"
    rm -rf "$work"
    trap - EXIT
}

# ensure_rootfs_image SUITE PACKAGE...: xtask-e2e/rootfs:SUITE holding PACKAGE...; sets ROOTFS_KEY.
ensure_rootfs_image() {
    local suite=$1 key tar tag="xtask-e2e/rootfs:$1"
    shift
    key=$(printf '%s\n' "$suite" "$ROOTFS_RECIPE" "$@" | sha)
    if have_image "$tag" && [ "$(image_label "$tag" "$LABEL.rootfs")" = "$key" ]; then
        ROOTFS_KEY=$key; return
    fi
    tar="$cache/rootfs-$suite-$key.tar"
    if [ -s "$tar" ]; then
        log "using cached $tar"
    else
        find "$cache" -maxdepth 1 -name "rootfs-$suite-*.tar*" -delete
        build_rootfs_tar "$tar" "$suite" "$@"
    fi
    log "importing $tar as $tag"
    local old t0=$SECONDS
    old=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    docker import \
        --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV LANG=C.UTF-8" \
        --change "LABEL $LABEL.rootfs=$key" \
        --change 'CMD ["bash"]' \
        --message "Debian $suite root filesystem for the end-to-end tests" \
        "$tar" "$tag" >/dev/null
    log "import took $((SECONDS - t0))s"
    [ -z "$old" ] || docker rmi "$old" >/dev/null 2>&1 || true
    ROOTFS_KEY=$key
}

# Image config of each stand-in, after the official image it replaces: docker
# commit --change lines, the stop signal (commit cannot set it: it is taken from
# the container) and a shell command run in the container before the commit.
CHANGES_python=(
    'CMD ["python3"]'
)
# python:*-slim has neither wget nor curl: a healthcheck relying on them must fail
# with the stand-in too.
PREP_python='rm -f /usr/bin/wget /usr/bin/curl'
STOP_python=''
# trixie's python, made from its root filesystem: what the common layer does for bookworm's
# (pip may install into the system interpreter), without the postgres and nginx parts.
CHANGES_python_3_13=("${CHANGES_python[@]}")
PREP_python_3_13='rm -f /usr/bin/wget /usr/bin/curl /usr/lib/python3*/EXTERNALLY-MANAGED'
STOP_python_3_13=''
CHANGES_postgres=(
    'ENV PG_MAJOR=15'
    'ENV PGDATA=/var/lib/postgresql/data'
    'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    'VOLUME /var/lib/postgresql/data'
    'ENTRYPOINT ["docker-entrypoint.sh"]'
    'EXPOSE 5432'
    'CMD ["postgres"]'
)
STOP_postgres=SIGINT
PREP_postgres=''
CHANGES_nginx=(
    'ENTRYPOINT ["/docker-entrypoint.sh"]'
    'EXPOSE 80'
    'CMD ["nginx", "-g", "daemon off;"]'
)
STOP_nginx=SIGQUIT
PREP_nginx=''
# redis:7-alpine runs redis-server as the user redis, its data in /data.
CHANGES_redis=(
    'WORKDIR /data'
    'VOLUME /data'
    'EXPOSE 6379'
    'CMD ["redis-server"]'
)
PREP_redis='mkdir -p /data && chown redis:redis /data && redis-server --version'
STOP_redis=''

COMMON_TAG="xtask-e2e/standin-common:$SUITE"
recipe_hash() {
    (
        echo "$ROOTFS_KEY"
        declare -p CHANGES_python PREP_python STOP_python CHANGES_postgres PREP_postgres \
            STOP_postgres CHANGES_nginx PREP_nginx STOP_nginx CHANGES_python_3_13 PREP_python_3_13 \
            STOP_python_3_13 CHANGES_redis PREP_redis STOP_redis
        cd "$here/standin" && find . -type f | LC_ALL=C sort | xargs sha256sum
    ) | sha
}

ensure_common_image() {
    if have_image "$COMMON_TAG" && [ "$(image_label "$COMMON_TAG" "$LABEL.recipe")" = "$RECIPE" ]; then
        return
    fi
    log "building $COMMON_TAG"
    local old t0=$SECONDS
    old=$(docker image inspect --format '{{.Id}}' "$COMMON_TAG" 2>/dev/null || true)
    # The classic builder works with every engine and needs no buildx plugin.
    DOCKER_BUILDKIT=0 docker build --force-rm -q \
        --build-arg "ROOTFS=xtask-e2e/rootfs:$SUITE" --label "$LABEL.recipe=$RECIPE" \
        -t "$COMMON_TAG" "$here/standin" >/dev/null 2>"$cache/build-standin.log" \
        || { cat "$cache/build-standin.log" >&2; die "building $COMMON_TAG failed"; }
    remove_if_replaced "$old" "$COMMON_TAG"
    log "build took $((SECONDS - t0))s"
}

remove_if_replaced() {
    local old=$1 tag=$2
    if [ -n "$old" ] && [ "$old" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
        docker rmi "$old" >/dev/null 2>&1 || true
    fi
}

build_standin() {
    local key=$1 tag=${STANDIN[$1]} target=${TARGET[$1]} old container from="$COMMON_TAG"
    if have_image "$tag" && [ "$(image_label "$tag" "$LABEL.recipe")" = "$RECIPE" ]; then
        log "$tag is up to date"
        return
    fi
    if [ "$target" = python-3.13 ]; then
        from="xtask-e2e/rootfs:$PYTHON_SUITE"
    else
        ensure_common_image
    fi
    log "creating $tag"
    old=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    local -n changes="CHANGES_${target//[.-]/_}"
    local prep_var="PREP_${target//[.-]/_}" stop_var="STOP_${target//[.-]/_}"
    local args=() create=(--name "xtask-e2e-standin-$target-$$" --network none --entrypoint "") c
    for c in "${changes[@]}" "LABEL $LABEL.recipe=$RECIPE"; do args+=(--change "$c"); done
    [ -z "${!stop_var}" ] || create+=(--stop-signal "${!stop_var}")
    container="xtask-e2e-standin-$target-$$"
    # The container's entrypoint (none) and command are replaced by the --change lines.
    if [ -n "${!prep_var}" ]; then
        docker run "${create[@]}" "$from" /bin/sh -c "${!prep_var}" >&2 \
            || { docker rm -f "$container" >/dev/null 2>&1; die "preparing $tag failed"; }
    else
        docker create "${create[@]}" "$from" true >/dev/null
    fi
    docker commit "${args[@]}" "$container" "$tag" >/dev/null \
        || { docker rm -f "$container" >/dev/null 2>&1; die "committing $tag failed"; }
    docker rm -f "$container" >/dev/null
    remove_if_replaced "$old" "$tag"
}

if [ "${#needed[@]}" -gt 0 ]; then
    # The recipe names both root filesystems, so a change of either rebuilds the stand-ins.
    ensure_rootfs_image "$PYTHON_SUITE" "${PYTHON_PACKAGES[@]}"
    PYTHON_ROOTFS_KEY=$ROOTFS_KEY
    ensure_rootfs_image "$SUITE" "${PACKAGES[@]}"
    ROOTFS_KEY="$ROOTFS_KEY $PYTHON_ROOTFS_KEY"
    RECIPE=$(recipe_hash)
    for key in "${needed[@]}"; do
        build_standin "$key"
        RESULT[$key]=${STANDIN[$key]}
    done
fi

output=""
for key in "${KEYS[@]}"; do
    output+="$key=${RESULT[$key]}"$'\n'
done
if [ -n "$out_file" ]; then
    printf '%s' "$output" > "$out_file.tmp.$$"
    mv "$out_file.tmp.$$" "$out_file"
else
    printf '%s' "$output"
fi
log "done in $((SECONDS - start))s"
