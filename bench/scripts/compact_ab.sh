#!/usr/bin/env bash
# Interleaved `compact` of one uncompacted lake by two or more builds of `sessionlake`
# (BENCHMARKS.md, "Compaction at 10 M commands without the chain's manifests" and "jemalloc
# for `sessionlake`").
# Usage: bench/scripts/compact_ab.sh LAKE KEYRING ROUNDS BIN...
#   Each run compacts a fresh hard-link copy of LAKE (writers replace files, never change them
#   in place). Each build runs with the allocator settings it gives itself (two glibc arenas
#   since d06d99a, compact's mmap threshold from b39f716, jemalloc from "jemalloc for
#   `sessionlake`"); the environment of this script passes through, and a variable set there
#   overrides them (MALLOC_ARENA_MAX stops a glibc build's own settings, _RJEM_MALLOC_CONF
#   changes a jemalloc build's).
#   Prints, per build, the median wall, user and system seconds and peak RSS (medians.py).
set -euo pipefail
lake=${1%/} keyring=$2 rounds=$3; shift 3
copy=$lake.ab.$$
trap 'rm -rf "$copy"' EXIT
for _ in $(seq "$rounds"); do
  for bin in "$@"; do
    rm -rf "$copy" && cp -al "$lake" "$copy"
    /usr/bin/time -f "$(basename "$bin") %e %U %S %M" \
      "$bin" --lake "$copy" --keyring "$keyring" compact --min-age 0s 2>&1 >/dev/null | tail -1
  done
done | python3 "$(dirname "$0")/medians.py"
