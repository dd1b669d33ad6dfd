#!/usr/bin/env python3
"""Compares the parse speed of two sessionlake-indexer binaries, interleaved.

    scripts/parse-speed-compare.py OLD NEW --corpus DIR [--rounds 5] [--mib 16] [--runs 3]

Each round runs `OLD bench` and `NEW bench` on the same corpus, alternating which goes first,
so both see the same load on a shared host. Prints, per workload and form, the median over the
rounds of each binary's per-core and wall MB/s (each round's figure is `bench`'s own median of
`--runs`), and NEW / OLD. Speed figures belong in BENCHMARKS.md, never in tests.
"""

import argparse
import collections
import statistics
import subprocess


def bench(binary: str, corpus: str, mib: int, runs: int) -> dict[tuple[str, str], tuple[float, float]]:
    out = subprocess.run(
        [binary, "bench", "--corpus", corpus, "--mib", str(mib), "--runs", str(runs)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {}
    for line in out.splitlines()[1:]:
        fields = line.split()
        # workload form input-MB commands wall-MB/s per-core-MB/s ...
        rows[(fields[0], fields[1])] = (float(fields[4]), float(fields[5]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mib", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    binaries = {"old": args.old, "new": args.new}
    results = collections.defaultdict(lambda: collections.defaultdict(list))
    for round_index in range(args.rounds):
        order = ["old", "new"] if round_index % 2 == 0 else ["new", "old"]
        for name in order:
            for key, figures in bench(binaries[name], args.corpus, args.mib, args.runs).items():
                results[key][name].append(figures)
    print(f"{'workload':9} {'form':18} {'old per-core':>12} {'new per-core':>12} {'ratio':>6} "
          f"{'old wall':>9} {'new wall':>9} {'ratio':>6}")
    for (workload, form), by in results.items():
        old_core = statistics.median(wall_core[1] for wall_core in by["old"])
        new_core = statistics.median(wall_core[1] for wall_core in by["new"])
        old_wall = statistics.median(wall_core[0] for wall_core in by["old"])
        new_wall = statistics.median(wall_core[0] for wall_core in by["new"])
        print(f"{workload:9} {form:18} {old_core:12.1f} {new_core:12.1f} {new_core / old_core:6.3f} "
              f"{old_wall:9.1f} {new_wall:9.1f} {new_wall / old_wall:6.3f}")


if __name__ == "__main__":
    main()
