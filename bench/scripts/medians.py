#!/usr/bin/env python3
"""Summarises timed runs for compact_ab.sh and ingest_ab.sh: reads lines `NAME WALL USER SYSTEM
KIB` (what `/usr/bin/time -f "NAME %e %U %S %M"` prints) and prints, per name in the order first
seen, the median wall, user and system seconds, the median and largest peak RSS, and the runs."""
import collections
import statistics
import sys

runs = collections.defaultdict(list)
for line in sys.stdin:
    name, wall, user, system, rss = line.split()
    runs[name].append((float(wall), float(user), float(system), int(rss)))
for name, taken in runs.items():
    med = [statistics.median(run[i] for run in taken) for i in range(4)]
    most = max(run[3] for run in taken)
    print(f"{name:16} wall {med[0]:.2f} s  user {med[1]:.2f} s  sys {med[2]:.2f} s  "
          f"peak {med[3] / 1024:.0f} MiB (most {most / 1024:.0f})  runs {len(taken)}")
