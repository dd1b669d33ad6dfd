#!/usr/bin/env bash
# The cost of reading every delivery of sessions delivered twice (BENCHMARKS.md, "Searching
# sessions delivered twice"): a workload ingested as generated (lake a), and the same workload
# with every S3 transcript delivered again as a CloudWatch upload of it (lake b: `\r\n` as `\n`,
# 200,000-byte events, the agent's upload form); both compacted, then the regex search and
# every command, interleaved, three rounds.
# Usage: bench/scripts/double_delivery.sh WORKLOAD WORK [BIN_DIR]
set -euo pipefail
workload=$1 work=$2 bin=${3:-target/release}
bin=$(cd "$bin" && pwd)
rm -rf "$work" && mkdir -p "$work"
cp -r "$workload" "$work/a" && cp -r "$workload" "$work/b"
python3 - "$work/b" <<'PY'
import glob, json, os, sys
root = sys.argv[1]
out = os.path.join(root, "cloudwatch", "double")
os.makedirs(out, exist_ok=True)
for path in glob.glob(os.path.join(root, "s3", "ssm-logs", "*.log")):
    data = open(path, "rb").read().replace(b"\r\n", b"\n")
    events, start = [], 1773480438974
    for i in range(0, len(data), 200000):
        message = data[i:i + 200000].decode("utf-8", "replace")
        events.append({"timestamp": start + i, "message": message, "ingestionTime": start + i})
    name = os.path.basename(path)[:-len(".log")]
    with open(os.path.join(out, name + ".json"), "w") as file:
        json.dump({"events": events}, file)
PY
for lake in a b; do
  (cd "$work/$lake" && "$bin/sessionlake-ingest" --quiet --once --local . >/dev/null \
    && "$bin/sessionlake" compact --min-age 0s >/dev/null 2>&1)
  echo "$lake: $(find "$work/$lake/lake/commands" -name '*.parquet' | wc -l) commands files"
done
for round in 1 2 3; do
  for lake in a b; do
    cd "$work/$lake"
    /usr/bin/time -f "round $round $lake regex %e s %M KB" "$bin/sessionlake" search \
      --command 'rm\s+-rf\s+/var/tmp/build-' --format csv 2>&1 >/dev/null | tail -1
    /usr/bin/time -f "round $round $lake every-command %e s %M KB" "$bin/sessionlake" search \
      --format csv 2>&1 >/dev/null | tail -1
  done
done
