#!/usr/bin/env bash
# Interleaved ingest of one workload into a fresh lake by two or more builds of
# `sessionlake-ingest` (BENCHMARKS.md, "jemalloc for `sessionlake`").
# Usage: bench/scripts/ingest_ab.sh WORKLOAD SCRATCH ROUNDS BIN...
#   WORKLOAD is a folder `sessionlake-bench generate` wrote; each run ingests all of it once
#   (`--once --local`) into SCRATCH/lake with a fresh keyring, removed after the run. Each build
#   runs with the allocator settings it gives itself; the environment passes through.
#   Prints, per build, the median wall, user and system seconds and peak RSS (medians.py).
set -euo pipefail
workload=${1%/} scratch=${2%/} rounds=$3; shift 3
mkdir -p "$scratch"
trap 'rm -rf "$scratch/lake" "$scratch/keyring.json"' EXIT
for _ in $(seq "$rounds"); do
  for bin in "$@"; do
    rm -rf "$scratch/lake" "$scratch/keyring.json"
    /usr/bin/time -f "$(basename "$bin") %e %U %S %M" "$bin" --once --quiet --local "$workload" \
      --lake "$scratch/lake" --keyring "$scratch/keyring.json" 2>&1 >/dev/null | tail -1
  done
done | python3 "$(dirname "$0")/medians.py"
