#!/usr/bin/env python3
# Usage: .venv/bin/python bench/scripts/layout_per_day.py <run>/plain <run>/per-day
# (<run> is the --work folder of `sessionlake-bench run`, which keeps the plaintext copy).
# Layout alternative, measured with DuckDB on the benchmark's plaintext copy: the lake's one
# file per session against the same rows compacted into one file per day (same row-group
# size, zstd, sorted by time, session, seq). Prints medians of 5 warm runs per query.
import duckdb, statistics, sys, time, os, glob
plain, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
src = f"read_parquet('{plain}/commands/**/*.parquet', hive_partitioning = true)"
if not os.path.isdir(out):
    con.execute(f"COPY (SELECT * FROM {src} ORDER BY dt, started_at, session_id, seq) TO '{out}' "
                "(FORMAT parquet, PARTITION_BY (dt), COMPRESSION zstd, ROW_GROUP_SIZE 131072)")
compacted = f"read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
probe = con.execute(f"SELECT session_id FROM {src} ORDER BY session_id LIMIT 1 OFFSET 2500").fetchone()[0]
queries = {
    "who ran X": "regexp_matches(command, 'rm\\s+-rf\\s+/var/tmp/build-')",
    "session-id lookup": f"session_id = '{probe}'",
    "every command": "true",
}
def size(pattern):
    return sum(os.path.getsize(p) for p in glob.glob(pattern, recursive=True))
print(f"files: per session {len(glob.glob(plain + '/commands/**/*.parquet', recursive=True))}, "
      f"per day {len(glob.glob(out + '/**/*.parquet', recursive=True))}; "
      f"bytes {size(plain + '/commands/**/*.parquet')/2**20:.1f} MiB vs {size(out + '/**/*.parquet')/2**20:.1f} MiB")
for name, condition in queries.items():
    figures = {}
    for label, table in (("per session", src), ("per day", compacted)):
        sql = f"SELECT session_id, seq, principal, command FROM {table} WHERE {condition}"
        con.execute(f"SELECT count(*) FROM ({sql})").fetchall()
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            rows = con.execute(f"SELECT count(*), sum(length(command)) FROM ({sql})").fetchall()
            runs.append(time.perf_counter() - started)
        figures[label] = statistics.median(runs)
    print(f"{name}: per session {figures['per session']:.3f} s, per day {figures['per day']:.3f} s, "
          f"ratio {figures['per session']/figures['per day']:.1f}x ({rows[0][0]} rows)")
