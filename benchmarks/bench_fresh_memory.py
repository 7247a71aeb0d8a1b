"""What first-touching memory costs on this machine: the reason a large run's peak costs time.

On the benchmark machine (a virtual machine with a memory balloon that reports free pages to
its host) memory the guest has not used for a couple of seconds goes back to the host, and
touching it again makes the host supply and clear every page. This script allocates and fills
1 GiB (``numpy.ones``), frees it, waits, and does it again, in one process:

* ``wait 0 s``: the pages freed a moment ago are handed out again by the guest (cheap);
* ``wait 3 s`` / ``6 s``: the guest has returned them to the host by then (expensive).

Usage::

    .venv/bin/python benchmarks/bench_fresh_memory.py            # 3 rounds of each wait
    .venv/bin/python benchmarks/bench_fresh_memory.py --gib 2 --rounds 5

Each row reports the median seconds per GiB of the rounds. A machine without that balloon
shows the same small number for every wait.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def fill_seconds(gib: float) -> float:
    t = time.perf_counter()
    block = np.ones(int(gib * 2**30) // 8)
    seconds = time.perf_counter() - t
    del block
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gib", type=float, default=1.0, help="memory allocated and filled per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per wait (median reported)")
    args = ap.parse_args(argv)
    fill_seconds(args.gib)  # the first touch of the process: not counted
    print(f"| wait after freeing | seconds per GiB (median of {args.rounds}) | all rounds |")
    print("|---:|---:|---|")
    for wait in (0.0, 1.0, 3.0, 6.0):
        rounds = []
        for _ in range(args.rounds):
            fill_seconds(args.gib)          # memory just used by this process ...
            time.sleep(wait)                # ... left free for `wait` seconds ...
            rounds.append(fill_seconds(args.gib) / args.gib)   # ... then touched again
        print(f"| {wait:.0f} s | {statistics.median(rounds):.2f} | {', '.join(f'{r:.2f}' for r in rounds)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
