#!/usr/bin/env bash
# Benchmark of `cargo xtask release` against the reproducible tar + gzip pipeline it replaces,
# on a realistic tree: the static files of Django's admin, Django REST framework and Wagtail,
# from their wheels, replicated to about 300 MB and 11k files.
#
#   bash tests/bench/release.sh [REPETITIONS]      (default 5; BENCH_COPIES=44 sets the size)
#
# Prints per-run figures and the medians: wall time, peak memory (max RSS) and output size.
# Everything it makes lives in target/bench-release/. It is not a test: it prints, never fails
# on a figure.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
reps=${1:-5}
copies=${BENCH_COPIES:-44}
# Pinned so that every run measures the same bytes.
wheels=(django==5.2.19 djangorestframework==3.18.3 wagtail==8.0.1)

if [ ! -x /usr/bin/time ]; then
    echo "installing GNU time (for peak memory)" >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -qq time >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
    else
        sudo apt-get install -y -qq time >/dev/null
    fi
fi

# The xtask runs in the dev profile (`cargo xtask`), so that is what is measured. Built once,
# before any timing.
cargo build --quiet --package xtask --manifest-path "$root/Cargo.toml"
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
xtask=$target/debug/xtask
work=$target/bench-release
mkdir -p "$work"

# The input tree: each wheel's `<app>/static/` directories merged as collectstatic would,
# then copied $copies times side by side.
tree=$work/tree
stamp="$copies ${wheels[*]}"
if [ "$(cat "$work/tree.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$tree" "$work/wheels"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/wheels" "${wheels[@]}"
    python3 - "$work/wheels" "$tree" "$copies" <<'EOF'
import pathlib, shutil, sys, zipfile
wheels, tree, copies = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
base = tree / "copy-00"
for wheel in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            parts = info.filename.split("/")
            if "static" not in parts[:-1] or info.is_dir():
                continue
            rest = parts[parts.index("static") + 1:]
            target = base.joinpath(*rest)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))
for i in range(1, copies):
    shutil.copytree(base, tree / f"copy-{i:02}")
EOF
    echo "$stamp" >"$work/tree.stamp"
fi
files=$(find "$tree" -type f | wc -l)
bytes=$(find "$tree" -type f -printf '%s\n' | awk '{s += $1} END {print s}')

ours() {
    rm -rf "$work/out"
    SOURCE_DATE_EPOCH=0 XTASK_ROOT=$root XTASK_PROJECT_NAME=site "$xtask" release --static-dir "$tree" --out "$work/out" \
        --version bench --allow-dirty >/dev/null
}
theirs() {
    (cd "$work" && tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - tree |
        gzip -n -6 >ref.tar.gz && sha256sum ref.tar.gz >/dev/null)
}
export -f ours theirs
export work tree root xtask

# One untimed run each, so both read the tree from the page cache.
bash -c ours
bash -c theirs
: >"$work/ours.txt"
: >"$work/theirs.txt"
for i in $(seq "$reps"); do
    /usr/bin/time -f '%e %M' -a -o "$work/ours.txt" bash -c ours
    /usr/bin/time -f '%e %M' -a -o "$work/theirs.txt" bash -c theirs
    sha256sum "$work/out/site-bench-static.tar.gz"
done | awk '{print $1}' | sort -u >"$work/digests.txt"

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ours_wall=$(awk '{print $1}' "$work/ours.txt" | median)
theirs_wall=$(awk '{print $1}' "$work/theirs.txt" | median)
ours_rss=$(awk '{print $2}' "$work/ours.txt" | median)
theirs_rss=$(awk '{print $2}' "$work/theirs.txt" | median)
ours_size=$(stat -c %s "$work/out/site-bench-static.tar.gz")
theirs_size=$(stat -c %s "$work/ref.tar.gz")
same=$([ "$(wc -l <"$work/digests.txt")" = 1 ] && echo yes || echo no)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "input: $files files, $bytes bytes (${wheels[*]} static files x $copies)"
echo "runs (wall s, max RSS KiB), xtask release:         $(tr '\n' ' ' <"$work/ours.txt")"
echo "runs (wall s, max RSS KiB), tar|gzip -6|sha256sum: $(tr '\n' ' ' <"$work/theirs.txt")"
awk -v reps="$reps" -v ow="$ours_wall" -v tw="$theirs_wall" -v orss="$ours_rss" -v trss="$theirs_rss" \
    -v os="$ours_size" -v ts="$theirs_size" -v same="$same" 'BEGIN {
    printf "%-30s %8s %13s %14s\n", "median of " reps " runs", "wall s", "max RSS MiB", "output bytes"
    printf "%-30s %8.2f %13.1f %14d\n", "xtask release", ow, orss / 1024, os
    printf "%-30s %8.2f %13.1f %14d\n", "tar | gzip -n -6 && sha256sum", tw, trss / 1024, ts
    printf "speed-up: %.2fx   size vs gzip -6: %+.2f%%   same bytes in every xtask run: %s\n", tw / ow, (os - ts) * 100 / ts, same
}'
