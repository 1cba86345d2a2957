#!/usr/bin/env bash
# Local Python package index for image builds that cannot reach PyPI.
#
# usage: tests/e2e/support/wheelhouse.sh start [options]   download + index + serve
#        tests/e2e/support/wheelhouse.sh build [options]   download + index only
#        tests/e2e/support/wheelhouse.sh stop  [--dir DIR] stop the server
#
# options:
#   -r FILE           requirements (default: project-template/requirements.txt);
#                     repeat it for more files
#   --image IMAGE     take the target Python version and glibc from this image
#                     (e.g. the PYTHON_IMAGE printed by base-images.sh)
#   --python-version X.Y, --glibc X.Y
#                     target explicitly (default 3.11 and glibc 2.36, i.e. Debian
#                     bookworm's python3, the python stand-in); wheels tagged
#                     manylinux for that glibc or older are accepted
#   --target X.Y:GLIBC
#                     one more target (Python X.Y on glibc GLIBC): the index serves
#                     the wheels of every target
#   --sdist SPEC      a source distribution to serve too (e.g. psycopg2==2.9.10), for
#                     a build that compiles it
#   --dir DIR         wheelhouse directory
#                     (default: target/e2e-cache/wheelhouse-py<X.Y>[-...])
#   --out FILE        write the KEY=value lines to FILE instead of stdout
#   --owner PID       "start": the server also ends by itself once process PID has
#                     ended (a test run serving one index to all its scenarios)
#
# Wheels are downloaded on the host with pip (--only-binary=:all: for the target
# interpreter and platform), together with pip, setuptools, wheel and uv, into
# DIR/files, and a PEP 503 index is written to DIR/simple. "start" serves DIR on
# 127.0.0.1 on a free port (a server already running for DIR is reused) and
# prints
#     PIP_INDEX_URL=http://127.0.0.1:<port>/simple/
#     WHEELHOUSE_PID=<pid>
# The pid is also in DIR/server.pid; "stop" (or kill <pid>) ends the server.
#
# The index is on the host's loopback, so an image build reaches it only with
# host networking: the classic builder with `docker build --network host`, or
# Compose with `build: { network: host }` on the service (Compose v2 with
# BuildKit and Compose v1 both honour it on Docker Engine 20.10).
# Downloads are redone only when the requirements or the target change.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cache="${E2E_CACHE_DIR:-$repo/target/e2e-cache}"
PY=${WHEELHOUSE_HOST_PYTHON:-python3}
# uv exports a project's uv.lock in the image build (docker/Dockerfile pins its version).
uv_version=$(sed -n 's/^ARG UV_VERSION=//p' "$repo/docker/Dockerfile")
[ -n "$uv_version" ] || { echo "wheelhouse: no ARG UV_VERSION in docker/Dockerfile" >&2; exit 1; }
EXTRAS=(pip setuptools wheel "uv==$uv_version")

log() { echo "wheelhouse: $*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

cmd=${1:-}; [ $# -gt 0 ] && shift
case "$cmd" in start|build|stop) ;; *) usage ;; esac

reqs=()
targets=()
sdists=()
image="" pyver="" glibc="" dir="" out="" owner=""
while [ $# -gt 0 ]; do
    case "$1" in
        -r|--requirements) reqs+=("$2"); shift 2 ;;
        --target) targets+=("$2"); shift 2 ;;
        --sdist) sdists+=("$2"); shift 2 ;;
        --image) image=$2; shift 2 ;;
        --python-version) pyver=$2; shift 2 ;;
        --glibc) glibc=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --owner) owner=$2; shift 2 ;;
        -h|--help) usage ;;
        *) die "unknown argument: $1" ;;
    esac
done
[ "${#reqs[@]}" -gt 0 ] || reqs=("$repo/project-template/requirements.txt")

emit() {
    if [ -n "$out" ]; then
        printf '%s' "$1" > "$out.tmp.$$" && mv "$out.tmp.$$" "$out"
    else
        printf '%s' "$1"
    fi
}

server_alive() {
    local pid
    [ -s "$dir/server.pid" ] && [ -s "$dir/server.port" ] || return 1
    pid=$(cat "$dir/server.pid")
    kill -0 "$pid" 2>/dev/null && grep -q wheelhouse.py "/proc/$pid/cmdline" 2>/dev/null
}

stop_server() {
    server_alive || { log "no server running for $dir"; rm -f "$dir/server.pid" "$dir/server.port"; return 0; }
    local pid; pid=$(cat "$dir/server.pid")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/server.pid" "$dir/server.port"
    log "stopped server $pid"
}

# --- target interpreter ------------------------------------------------------
if [ -n "$image" ]; then
    info=$(docker run --rm --network none --entrypoint python3 "$image" -c \
        'import platform, sys; print("%d.%d" % sys.version_info[:2]); print(platform.libc_ver()[1])') \
        || die "cannot run python3 in $image"
    img_ver=$(sed -n 1p <<<"$info"); img_glibc=$(sed -n 2p <<<"$info")
    : "${pyver:=$img_ver}"
    if [ -z "$glibc" ]; then
        [ -n "$img_glibc" ] || die "$image has no glibc python (musl is not supported)"
        glibc=$img_glibc
    fi
fi
if [ -n "$pyver$glibc" ] || [ "${#targets[@]}" -eq 0 ]; then
    targets=("${pyver:-3.11}:${glibc:-2.36}" "${targets[@]}")
fi
# pip does not widen --platform to older manylinux tags: list them all.
platforms_for() {
    local glibc=$1 minor
    for ((minor = ${glibc#*.}; minor >= 5; minor--)); do
        printf '%s\n' --platform "manylinux_2_${minor}_x86_64"
    done
    printf '%s\n' --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64
}
versions=$(printf '%s\n' "${targets[@]}" | cut -d: -f1 | tr '\n' '-')
: "${dir:=$cache/wheelhouse-py${versions%-}}"
mkdir -p "$dir"

if [ "$cmd" = stop ]; then
    stop_server
    exit 0
fi

exec 9>"$dir.lock"
flock 9

# --- download + index ----------------------------------------------------------
for req in "${reqs[@]}"; do [ -f "$req" ] || die "requirements file not found: $req"; done
stamp=$( (printf '%s\n' "${targets[@]}" "${EXTRAS[@]}" "${sdists[@]}"; cat "${reqs[@]}" "$here/wheelhouse.py") \
    | sha256sum | cut -c1-16)
if [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ] && [ -s "$dir/simple/index.html" ]; then
    log "up to date: $dir ($(find "$dir/files" -type f | wc -l) files)"
else
    t0=$SECONDS
    rm -rf "$dir/files" "$dir/simple" "$dir/.stamp"
    mkdir -p "$dir/files"
    requirements=()
    for req in "${reqs[@]}"; do requirements+=(-r "$req"); done
    for target in "${targets[@]}"; do
        log "downloading wheels for Python ${target%%:*}, glibc ${target#*:}, from ${reqs[*]}"
        mapfile -t platforms < <(platforms_for "${target#*:}")
        wanted=(--only-binary=:all: --implementation cp --python-version "${target%%:*}" "${platforms[@]}")
        "$PY" -m pip download --quiet --disable-pip-version-check --dest "$dir/files" "${wanted[@]}" \
            "${requirements[@]}" >&2 || die "pip download failed for ${reqs[*]}"
        "$PY" -m pip download --quiet --disable-pip-version-check --dest "$dir/files" "${wanted[@]}" \
            "${EXTRAS[@]}" >&2 || die "pip download failed for ${EXTRAS[*]}"
    done
    if [ "${#sdists[@]}" -gt 0 ]; then
        "$PY" -m pip download --quiet --disable-pip-version-check --dest "$dir/files" --no-deps \
            --no-binary :all: "${sdists[@]}" >&2 || die "pip download failed for ${sdists[*]}"
    fi
    "$PY" "$here/wheelhouse.py" index "$dir"
    echo "$stamp" > "$dir/.stamp"
    log "downloaded $(find "$dir/files" -type f | wc -l) files in $((SECONDS - t0))s"
fi

if [ "$cmd" = build ]; then
    emit "WHEELHOUSE_DIR=$dir"$'\n'
    exit 0
fi

# --- serve ----------------------------------------------------------------------
if server_alive; then
    log "reusing server $(cat "$dir/server.pid")"
else
    rm -f "$dir/server.pid" "$dir/server.port"
    setsid "$PY" "$here/wheelhouse.py" serve "$dir" "$dir/server.pid" "$dir/server.port" ${owner:+"$owner"} \
        </dev/null >>"$dir/server.log" 2>&1 9>&- &
    for _ in $(seq 100); do
        [ -s "$dir/server.port" ] && break
        kill -0 $! 2>/dev/null || { tail -n 20 "$dir/server.log" >&2; die "server did not start"; }
        sleep 0.1
    done
    if [ ! -s "$dir/server.port" ]; then
        kill "$!" 2>/dev/null || true
        die "server did not report its port"
    fi
    log "started server $(cat "$dir/server.pid") (log: $dir/server.log)"
fi
port=$(cat "$dir/server.port")
emit "PIP_INDEX_URL=http://127.0.0.1:$port/simple/"$'\n'"WHEELHOUSE_PID=$(cat "$dir/server.pid")"$'\n'
