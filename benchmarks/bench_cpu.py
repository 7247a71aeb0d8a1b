"""CPU budget of ``kpi-audit run``: how many cores each step keeps busy, and the work in core-seconds.

A wall-time target on a 2-core machine is also a CPU budget: a run that needs C core-seconds
cannot finish in less than C / 2 seconds, however well its steps overlap. This script runs
``kpi-audit run PARAMS`` (not quiet: the progress lines time the steps) in a fresh process,
samples the whole machine's CPU use from ``/proc/stat`` every 0.25 s, and reports per run

* the wall time, the CPU used (core-seconds, whole machine: runner, fork server, kernels and
  anything else running) and the average number of busy cores;
* per step (validate, prepare, notebooks, index, publish: from the arrival times of the
  progress lines, the notebook step ending with its last notebook) the seconds, core-seconds
  and busy cores;
* the lower bound ``core-seconds / cores``, the wall time the same work would take with every
  core busy all the time.

Counting from ``/proc/stat`` sees the kernels, which run as children of the fork server after
it has exited and so escape ``wait4``'s accounting. On a shared machine other jobs count too:
the idle load before the run is printed so that such runs can be discarded.

Usage (Linux only)::

    .venv/bin/python benchmarks/bench_cpu.py benchmarks/data/demo-10000000-csv/params.yaml --repeat 3
    .venv/bin/python benchmarks/bench_cpu.py params/demo.yaml
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("validate", "prepare", "notebooks", "index", "publish")
_STEP_LINE = re.compile(r"^\[(\d)/5\]\s+(\w+)")
_NOTEBOOK_DONE = re.compile(r"^[✓✗]\s")


def _cpu() -> tuple[int, int]:
    """(total, idle) jiffies of all cores since boot."""
    with open("/proc/stat", encoding="ascii") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    return sum(values), values[3] + values[4]          # idle + iowait


def _busy_between(samples: list[tuple[float, float]], t0: float, t1: float) -> float:
    """Core-seconds of the samples (time, busy cores over the preceding interval) in (t0, t1]."""
    out, prev = 0.0, None
    for t, busy in samples:
        if prev is not None and t0 < t <= t1:
            out += busy * (t - prev)
        prev = t
    return out


def run_once(params: Path, interval: float = 0.25) -> dict:
    cores = os.cpu_count() or 1
    # the machine's load just before the run (another job would inflate every figure)
    a = _cpu()
    time.sleep(1.0)
    b = _cpu()
    idle_before = cores * (1 - (b[1] - a[1]) / max(1, b[0] - a[0]))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "audit_lib.cli", "run", str(params)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    marks: dict[str, float] = {}

    def read():
        for line in proc.stdout:
            text = line.strip()
            m = _STEP_LINE.match(text)
            if m:
                marks[m.group(2)] = time.perf_counter() - start
            elif _NOTEBOOK_DONE.match(text):
                marks["last notebook"] = time.perf_counter() - start
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    samples, last = [(0.0, 0.0)], _cpu()
    while proc.poll() is None:
        time.sleep(interval)
        now = _cpu()
        total, idle = now[0] - last[0], now[1] - last[1]
        samples.append((time.perf_counter() - start, cores * (total - idle) / total if total else 0.0))
        last = now
    reader.join()
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"kpi-audit run {params} failed (exit {proc.returncode})")
    # "[3/5] notebooks" is printed when the notebooks start, a "✓ name" line when each one ends,
    # the other step lines when their step ends; "publish" runs to the process's exit
    nb_end = marks.get("last notebook", marks.get("index", wall))
    bounds = {"validate": (0.0, marks.get("validate", 0.0)),
              "prepare": (marks.get("validate", 0.0), marks.get("prepare", 0.0)),
              "notebooks": (marks.get("prepare", 0.0), nb_end),
              "index": (nb_end, marks.get("index", wall)),
              "publish": (marks.get("index", wall), wall)}
    steps = {}
    for name in STEPS:
        t0, t1 = bounds[name]
        work = _busy_between(samples, t0, t1)
        steps[name] = {"seconds": t1 - t0, "core_seconds": work, "cores": work / (t1 - t0) if t1 > t0 else 0.0}
    work = _busy_between(samples, 0.0, wall + 1)
    return {"wall": wall, "core_seconds": work, "cores": work / wall, "bound": work / cores,
            "idle_load_before": idle_before, "steps": steps}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("params", type=Path, help="params file of the audit to run")
    ap.add_argument("--repeat", type=int, default=1, help="runs (medians reported)")
    args = ap.parse_args(argv)
    if not Path("/proc/stat").is_file():
        raise SystemExit("bench_cpu.py reads /proc/stat: Linux only")
    runs = []
    for i in range(args.repeat):
        r = run_once(args.params.resolve())
        runs.append(r)
        print(f"run {i + 1}/{args.repeat}: {r['wall']:.1f} s wall, {r['core_seconds']:.1f} core-s, "
              f"{r['cores']:.2f} cores busy on average (load before the run {r['idle_load_before']:.2f}); "
              + ", ".join(f"{k} {v['seconds']:.1f} s × {v['cores']:.2f}" for k, v in r["steps"].items()),
              flush=True)

    def med(f):
        return statistics.median(f(r) for r in runs)
    cores = os.cpu_count() or 1
    print(f"\n| step | seconds | core-seconds | busy cores (of {cores}) |\n|---|---:|---:|---:|")
    for name in STEPS:
        print(f"| {name} | {med(lambda r: r['steps'][name]['seconds']):.1f} | "
              f"{med(lambda r: r['steps'][name]['core_seconds']):.1f} | {med(lambda r: r['steps'][name]['cores']):.2f} |")
    print(f"| **whole run** | **{med(lambda r: r['wall']):.1f}** | **{med(lambda r: r['core_seconds']):.1f}** | "
          f"{med(lambda r: r['cores']):.2f} |")
    print(f"\nLower bound with every core busy throughout: {med(lambda r: r['bound']):.1f} s "
          f"(median of {len(runs)} run{'s' if len(runs) != 1 else ''}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
