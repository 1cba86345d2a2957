# Sourced by the benchmarks (tests/bench/*.sh) with $root (the repository) and $name (the
# Compose project's name) set: a scratch copy of the repository under target/$name/site that
# builds from the end-to-end suite's stand-in base images and wheelhouse (no registry is
# needed), and the xtask built once. Sets work, site, xtask, PIP_INDEX_URL, XTASK_ROOT.

work=$root/target/$name
rm -rf "$work" && mkdir -p "$work"

if ! docker compose version >/dev/null 2>&1 && [ -x "$root/target/tools/pip/docker/cli-plugins/docker-compose" ]; then
    export DOCKER_CONFIG=$root/target/tools/pip/docker
fi
docker compose version >/dev/null || { echo "needs Compose v2 (docker compose)" >&2; exit 1; }

cargo build --quiet --package xtask --manifest-path "$root/Cargo.toml"
xtask=$root/target/debug/xtask

eval "$("$root/tests/e2e/support/base-images.sh" | grep -E '^[A-Z_]+=' | sed 's/^/export /')"
mkdir -p "$work/wheelhouse"
"$root/tests/e2e/support/wheelhouse.sh" build --image "$PYTHON_IMAGE" >"$work/wheels.env"
cache=$(sed -n 's/^WHEELHOUSE_DIR=//p' "$work/wheels.env")
ln -s "$cache/files" "$cache/simple" "$work/wheelhouse/" && cp "$cache/.stamp" "$work/wheelhouse/"
export PIP_INDEX_URL
PIP_INDEX_URL=$("$root/tests/e2e/support/wheelhouse.sh" start --dir "$work/wheelhouse" --image "$PYTHON_IMAGE" | sed -n 's/^PIP_INDEX_URL=//p')
export BUILD_NETWORK=host XTASK_PROJECT_NAME=$name

site=$work/site
mkdir -p "$site"
git -C "$root" ls-files -z --cached --others --exclude-standard | (cd "$root" && xargs -0 cp --parents -t "$site" 2>/dev/null || true)
export XTASK_ROOT=$site

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
set_env() { sed -i "/^$1=/d" "$site/.env.prod"; echo "$1=$2" >>"$site/.env.prod"; }

# The production stack's compose command (no subcommand), as `prod` runs it: the build line
# of its dry run.
prod_compose() { "$xtask" --dry-run prod --with-db | grep -E '^cd .* build$' | head -1 | sed 's/ build$//'; }
