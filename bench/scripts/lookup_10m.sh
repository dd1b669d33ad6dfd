#!/usr/bin/env bash
# Session lookups, cold (the lake's page cache dropped first) and warm, 5 each, with
# millisecond times, on a lake that bench/scripts/scale_10m.sh left (compacted, checkpointed).
# Usage: bench/scripts/lookup_10m.sh WORKDIR SESSION   (release binaries, the test venv)
set -euo pipefail
work=$1 s=$2
lake=$work/lake keyring=$work/keyring.json bin=${BIN:-target/release}
python=${PYTHON:-.venv/bin/python}
evict() { "$python" - "$lake" <<'PY'
import os, sys
for root, _, files in os.walk(sys.argv[1]):
    for name in files:
        fd = os.open(os.path.join(root, name), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
PY
}
for mode in cold warm; do
  for i in 1 2 3 4 5; do
    if [ "$mode" = cold ]; then evict; fi
    TIMEFORMAT="$mode %3R s wall, %3U s user, %3S s sys"
    time "$bin/sessionlake" --lake "$lake" --keyring "$keyring" search --session "$s" \
      --format csv >/dev/null 2>&1
  done
done
