#!/usr/bin/env python3
"""Interleaved warm timings, in milliseconds, of the bench's three short searches (principal +
14 days, regex, one session) for two or more builds of `sessionlake` on one lake: the wall
time of each process measured around it (`/usr/bin/time`, which `search_ab.sh` uses, counts
in 10 ms steps). BENCHMARKS.md, "jemalloc for `sessionlake`".

Usage: bench/scripts/search_ms.py WORK ROUNDS BIN...
  WORK holds `lake` and `keyring.json`; the principal is the one with the most sessions, the
  session $SESSION (else the first by id), as in search_ab.sh.
Prints, per query and build, the median and the least milliseconds.
"""
import collections
import os
import statistics
import subprocess
import sys
import time


def main():
    work, rounds, bins = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    lake = ["--lake", os.path.join(work, "lake"), "--keyring", os.path.join(work, "keyring.json")]

    def first(sql):
        out = subprocess.run([bins[0], *lake, "sql", "--format", "csv", sql],
                             capture_output=True, text=True, check=True).stdout
        return out.splitlines()[1]

    principal = first("SELECT principal FROM sessions GROUP BY principal "
                      "ORDER BY count(*) DESC, principal LIMIT 1")
    session = os.environ.get("SESSION") or first(
        "SELECT session_id FROM sessions ORDER BY session_id LIMIT 1")
    out = ["--format", "csv", "--color", "never"]
    queries = {
        "principal": ["search", "--principal", principal, "--since", "2026-02-01",
                      "--until", "2026-02-15", *out],
        "regex": ["search", "--command", r"rm\s+-rf\s+/var/tmp/build-", *out],
        "session": ["search", "--session", session, *out],
    }
    taken = collections.defaultdict(list)
    for _ in range(rounds):
        for name, args in queries.items():
            for binary in bins:
                start = time.perf_counter()
                subprocess.run([binary, *lake, *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=False)
                taken[(name, binary)].append(time.perf_counter() - start)
    for (name, binary), seconds in sorted(taken.items()):
        print(f"{name:10} {os.path.basename(binary):16} median "
              f"{statistics.median(seconds) * 1000:7.1f} ms  least {min(seconds) * 1000:7.1f} ms"
              f"  runs {len(seconds)}")


if __name__ == "__main__":
    main()
