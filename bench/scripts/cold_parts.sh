#!/usr/bin/env bash
# Where a cold search's extra time goes: the principal + 14-day search of search_ab.sh timed
# with the whole lake's page cache dropped, with only one folder's dropped (the checkpoint and
# manifests, the table files, the key records), and warm; interleaved rounds, medians
# (BENCHMARKS.md, "jemalloc for `sessionlake`").
# Usage: bench/scripts/cold_parts.sh WORK ROUNDS BIN   (WORK holds `lake` and `keyring.json`)
set -euo pipefail
work=${1%/} rounds=$2 bin=$3
python=${PYTHON:-.venv/bin/python}
lake=(--lake "$work/lake" --keyring "$work/keyring.json")
principal=$("$bin" "${lake[@]}" sql --format csv 2>/dev/null \
  "SELECT principal FROM sessions GROUP BY principal ORDER BY count(*) DESC, principal LIMIT 1" | sed -n 2p)
evict() {
  "$python" - "$@" <<'PY'
import os, sys
for top in sys.argv[1:]:
    for root, _, files in os.walk(top):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
PY
}
run() {
  /usr/bin/time -f "$1 %e %U %S %M" "$bin" "${lake[@]}" search --principal "$principal" \
    --since 2026-02-01 --until 2026-02-15 --format csv --color never 2>&1 >/dev/null | tail -1
}
for _ in $(seq "$rounds"); do
  evict "$work/lake"; run whole-lake
  evict "$work/lake/checkpoint" "$work/lake/manifest"; run checkpoint
  evict "$work/lake/commands" "$work/lake/sessions"; run tables
  evict "$work/lake/keys"; run keys
  run warm
done | python3 "$(dirname "$0")/medians.py"
