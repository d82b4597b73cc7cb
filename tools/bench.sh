#!/usr/bin/env bash
# `make bench`: every benchmark under benchmarks/, one after another (they measure wall
# time, so they must not share the two cores). Each prints its own figures; pass a
# benchmark's file name to run only that one.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bash tools/bootstrap.sh

export PATH="$repo/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$repo/.cache/collections"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

if [ $# -gt 0 ]; then
    benches=("$@")
else
    benches=(benchmarks/*_bench.py)
fi
for bench in "${benches[@]}"; do
    echo "================ $bench ================"
    python "$bench"
done
