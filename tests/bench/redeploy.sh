#!/usr/bin/env bash
# Benchmark of a redeploy under load, both ways in the same run, on the real engine:
#   (a) classic: `docker compose ... up --build --detach` (web recreated in place)
#   (b) `cargo xtask prod --with-db` (start first, switch nginx, drain)
# each shipping a code-only change (a template edit) to a running production stack. Then,
# without load: `prod` with nothing changed (three runs), and a restart of the stopped stack
# on its kept volumes (`down --prod`, then `prod`) against Compose's own
# `up --detach --wait` of the same files.
#
#   bash tests/bench/redeploy.sh            (BENCH_CLIENTS=6 page clients, 1 slow uploader)
#
# A bounded request loop (tests/bench/redeploy_load.py, 127.0.0.1 only, HTTPS trusting the
# project's CA) keeps several clients on the home page and its stylesheet, and one client
# sending 4 MiB uploads slowly (about 4 s each), from before a deploy starts until the page
# has shown the new version for 5 s. For each method it prints: requests, failed requests,
# the longest gap without a successful response, p99 latency, and the wall times from the
# command's start to the new version being served (watched while the command runs) and to the
# command's return (for the xtask, after the old containers drained). The classic run goes
# first, while nginx still names the web service; a switch leaves it naming containers, which
# a recreate in place would not update.
#
# Without a registry it uses the end-to-end suite's stand-in base images and wheelhouse
# (tests/e2e/support). Everything it makes (a scratch copy of the repository under
# target/bench-redeploy/, a Compose project bench-redeploy-prod, its volumes and images) is
# removed at the end. It is not a test: it prints, never fails on a figure.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
clients=${BENCH_CLIENTS:-6}
name=bench-redeploy
# shellcheck source=tests/bench/prepare.sh
. "$root/tests/bench/prepare.sh"

cleanup() {
    docker compose --project-name "$name-prod" logs --no-color nginx >"$work/nginx.log" 2>&1 || true
    "$xtask" down --prod --volumes >/dev/null 2>&1 || true
    docker image rm "$name-web" "$name-web:previous" >/dev/null 2>&1 || true
    "$root/tests/e2e/support/wheelhouse.sh" stop --dir "$work/wheelhouse" >/dev/null 2>&1 || true
    [ -z "${load_pid:-}" ] || kill "$load_pid" 2>/dev/null || true
}
trap cleanup EXIT
# A signal ends the script through its EXIT trap too.
trap "exit 130" INT
trap "exit 143" TERM

"$xtask" init --prod --host localhost >/dev/null
https=$(free_port)
set_env ALLOWED_HOSTS localhost,127.0.0.1
set_env HTTP_PORT "$(free_port)"
set_env HTTPS_PORT "$https"
set_env GUNICORN_WORKERS 4
echo "starting the stack" >&2
"$xtask" prod --with-db >"$work/first-start.log" 2>&1

home=$site/project-template/core/templates/core/home.html
marks=$work/marks
: >"$marks"
python3 "$root/tests/bench/redeploy_load.py" run --port "$https" --ca "$site/certs/ca.pem" \
    --clients "$clients" --out "$work/requests" --stop "$work/stop" &
load_pid=$!
sleep 5

# One deploy: edit the page to $1, run the rest of the arguments, note when the new page is
# first served (watched while the command runs: a start-first deploy serves it before it has
# drained and stopped the old containers) and when the command returned.
deploy() {
    local text=$1 label=$2
    shift 2
    sed -i -E "s#<h1>[^<]*</h1>#<h1>$text</h1>#" "$home"
    local start command served returned
    start=$(date +%s.%N)
    # Each line of its output stamped with the time it came, to see where the time went.
    "$@" 2>&1 | while IFS= read -r line; do printf '%s %s\n' "$(date +%T.%3N)" "$line"; done >"$work/$label.log" &
    command=$!
    local deadline=$((SECONDS + 180))
    until curl -s --cacert "$site/certs/ca.pem" --resolve "localhost:$https:127.0.0.1" "https://localhost:$https/" | grep -q "$text"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "$label: the new page was not served within 180 s" >&2
            break
        fi
        sleep 0.1
    done
    served=$(date +%s.%N)
    wait "$command" || { echo "$label failed: see $work/$label.log" >&2; tail -20 "$work/$label.log" >&2; }
    returned=$(date +%s.%N)
    sleep 5
    echo "$label $start $served $returned $(date +%s.%N)" >>"$marks"
}

# The classic way: the compose command prod runs, with `up --build --detach`.
# Compose builds from the context the xtask fills (.stack/build/prod): `check --prod` fills
# it (and builds, and runs Django's checks in a one-off) inside the classic run's time.
# nginx resolved `web` when it started and keeps the old container's address, so the classic
# way ends as its users must: `restart nginx`.
compose_prod=$(prod_compose)
classic="$xtask check --prod && $compose_prod up --build --detach && $compose_prod restart nginx"
deploy "Classic redeploy" classic bash -c "$classic"
deploy "Start-first redeploy" xtask "$xtask" prod --with-db

touch "$work/stop"
wait "$load_pid"
load_pid=
python3 "$root/tests/bench/redeploy_load.py" report --out "$work/requests" --marks "$marks"

# Milliseconds the command takes; its output goes to $work/timed.log.
timed() {
    local start=$(date +%s%N)
    "$@" >"$work/timed.log" 2>&1 || { echo "failed: $*" >&2; tail -20 "$work/timed.log" >&2; }
    echo $((($(date +%s%N) - start) / 1000000))
}
seconds() { printf '%d.%02d s' $(($1 / 1000)) $(($1 % 1000 / 10)); }

echo
echo "prod with nothing changed:"
for run in 1 2 3; do
    ms=$(timed "$xtask" prod --with-db)
    said=$(grep -o 'nothing to deploy' "$work/timed.log" || echo 'DEPLOYED')
    echo "  run $run: $(seconds "$ms") ($said)"
done

# The restart: the xtask's first, which names the web service in nginx's upstream again
# (a switch left it naming containers), then Compose's own on the same files.
compose=$(prod_compose)
"$xtask" down --prod >/dev/null 2>&1
xtask_ms=$(timed "$xtask" prod --with-db)
"$xtask" down --prod >/dev/null 2>&1
compose_ms=$(timed bash -c "$compose up --detach --no-build --wait")
echo "restart of the stopped stack on its kept volumes, to healthy:"
echo "  docker compose up --detach --wait: $(seconds "$compose_ms")"
echo "  cargo xtask prod --with-db:        $(seconds "$xtask_ms")"
