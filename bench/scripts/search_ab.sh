#!/usr/bin/env bash
# Interleaved warm timings of the bench's four searches on one lake, for two or more builds of
# `sessionlake` (BENCHMARKS.md, "Searches read in one pass, joins built on the sessions").
# Usage: bench/scripts/search_ab.sh WORK ROUNDS BIN...
#   WORK holds `lake` and `keyring.json` (a workload ingested and compacted); the principal is
#   the one with the most sessions, the session $SESSION (else the first by id), the range
#   2026-02-01 to 2026-02-15 (the generated workloads' months). SESSIONLAKE_CHUNK_ROWS passes
#   through.
#   To compare lakes (a layout change) rather than builds: WORKS="A B" (folders like WORK, each
#   holding the same sessions) runs every build over each of them, named build@folder.
# Prints, per query and build, the median wall and user seconds and the largest peak RSS.
set -euo pipefail
work=$1 rounds=$2; shift 2
works=${WORKS:-$work}
first=$1
in_first=(--lake "${works%% *}/lake" --keyring "${works%% *}/keyring.json")
principal=$("$first" "${in_first[@]}" sql --format csv 2>/dev/null \
  "SELECT principal FROM sessions GROUP BY principal ORDER BY count(*) DESC, principal LIMIT 1" | sed -n 2p)
session=${SESSION:-$("$first" "${in_first[@]}" sql --format csv 2>/dev/null \
  "SELECT session_id FROM sessions ORDER BY session_id LIMIT 1" | sed -n 2p)}
for _ in $(seq "$rounds"); do
  for bin in "$@"; do
    for folder in $works; do
      name=$(basename "$bin")
      [ -n "${WORKS:-}" ] && name="$name@$(basename "$folder")"
      lake=(--lake "$folder/lake" --keyring "$folder/keyring.json")
      run() {
        /usr/bin/time -f "$name $1 %e %U %M" "$bin" "${lake[@]}" search "${@:2}" \
          --format csv --color never 2>&1 >/dev/null | tail -1
      }
      run regex --command 'rm\s+-rf\s+/var/tmp/build-'
      run principal --principal "$principal" --since 2026-02-01 --until 2026-02-15
      run session --session "$session"
      run every --since 2020-01-01
    done
  done
done | python3 -c '
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in sys.stdin:
    name, query, wall, user, rss = line.split()
    runs[(query, name)].append((float(wall), float(user), int(rss)))
for (query, name), v in sorted(runs.items()):
    print(f"{query:10} {name:16} wall {statistics.median(x[0] for x in v):.3f} s  "
          f"user {statistics.median(x[1] for x in v):.3f} s  "
          f"peak {max(x[2] for x in v) // 1024} MiB  runs {len(v)}")
'
