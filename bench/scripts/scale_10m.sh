#!/usr/bin/env bash
# The 10 M-command scale (BENCHMARKS.md): ingest the `10m` workload once, compact it, then time
# session-id lookups (cold: the lake's page cache dropped first; warm) before and after a
# checkpoint, and one regex search.
# Usage: bench/scripts/scale_10m.sh WORKLOAD WORKDIR [RUNS]   (release binaries, the test venv)
set -euo pipefail
workload=$1 work=$2 runs=${3:-5}
bin=${BIN:-target/release}
python=${PYTHON:-.venv/bin/python}
# What the folder held is moved aside and deleted at the end, not before ingest: on ext4
# without a journal, creating files soon after deleting many steps over every recently deleted
# inode (bench/src/run.rs, `set_aside`).
work=${work%/}
stale=$work/stale.$$
mkdir -p "$stale"
trap 'rm -rf "$stale"' EXIT
find "$work" -mindepth 1 -maxdepth 1 ! -name "stale.$$" -exec mv -t "$stale" {} +
lake=$work/lake keyring=$work/keyring.json
timed() { /usr/bin/time -f "%e s wall, %U s user, %S s sys, %M KiB peak" "$@"; }
evict() {
  "$python" - "$lake" <<'PY'
import os, sys
for root, _, files in os.walk(sys.argv[1]):
    for name in files:
        fd = os.open(os.path.join(root, name), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
PY
}
echo "== ingest ($(du -sb "$workload" | cut -f1) bytes)"
timed "$bin/sessionlake-ingest" --local "$workload" --lake "$lake" --keyring "$keyring" --once
echo "== lake: $(find "$lake" -type f | wc -l) files, $(du -sb "$lake" | cut -f1) bytes"
cli=("$bin/sessionlake" --lake "$lake" --keyring "$keyring")
session=$(ls "$workload/s3/ssm-logs" | sed -n 1000p | sed 's/\.log$//')
lookup() { "${cli[@]}" search --session "$session" --format csv | wc -l; }
echo "== lookup of $session before compaction (cold, then warm), $runs runs each"
for i in $(seq "$runs"); do evict; timed bash -c "$(declare -f lookup); cli=(${cli[*]}); session=$session; lookup"; done
echo "== compact"
timed "${cli[@]}" compact --min-age 0s --json
echo "== lake: $(find "$lake" -type f | wc -l) files, $(du -sb "$lake" | cut -f1) bytes"
echo "== lookup after compaction: cold, $runs runs"
for i in $(seq "$runs"); do evict; timed bash -c "$(declare -f lookup); cli=(${cli[*]}); session=$session; lookup"; done
echo "== lookup after compaction: warm, $runs runs"
for i in $(seq "$runs"); do timed bash -c "$(declare -f lookup); cli=(${cli[*]}); session=$session; lookup"; done
echo "== checkpoint (readers start from it: the chain before it is not read)"
timed "${cli[@]}" checkpoint --json
echo "== lookup after compaction and a checkpoint: cold, $runs runs"
for i in $(seq "$runs"); do evict; timed bash -c "$(declare -f lookup); cli=(${cli[*]}); session=$session; lookup"; done
echo "== lookup after compaction and a checkpoint: warm, $runs runs"
for i in $(seq "$runs"); do timed bash -c "$(declare -f lookup); cli=(${cli[*]}); session=$session; lookup"; done
echo "== who ran X after compaction: cold, 3 runs"
for i in 1 2 3; do evict; timed bash -c "${cli[*]} search --command 'rm\\s+-rf\\s+/var/tmp/build-' --format csv | wc -l"; done
