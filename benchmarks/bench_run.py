"""Benchmark of ``kpi-audit run`` end to end, with the per-step times and the peak memory.

For each size (the bundled demo, and demo clients with N generated contacts cached in
``benchmarks/data/`` like ``bench_validate.py``) it runs ``kpi-audit run PARAMS --quiet`` in a
fresh process ``--repeat`` times and reports medians of

* the wall time (process start to exit, imports included),
* the steps recorded in the report's ``run.json`` (validate, prepare, notebooks, index),
* the peak resident memory of the whole process tree (runner + notebook kernels, sampled from
  ``/proc`` every 50 ms with psutil) and of the runner alone (``ru_maxrss`` from ``wait4``).

The floor: an empty notebook and an imports-only notebook (the modules the report notebooks
import) executed with papermill, each in a fresh kernel; the ratio of the notebook step to
(number of notebooks x floor) says how much of the notebook time is fixed cost.

With ``--baseline DIR`` (a checkout of another revision, e.g. ``git worktree add /tmp/base
<rev>``) every run of this code is paired with a run of that code on the same inputs (the
baseline's own ``params/demo.yaml`` for the demo), the baseline first in odd pairs and second
in even ones (a run that starts right after another gets memory just freed, which is cheaper
on the benchmark machine: ``bench_fresh_memory.py``), and the table gets the median
baseline / this-code ratio of the pairs: on a noisy machine a ratio measured in one session
says more than wall times measured at different times of day.

Usage::

    .venv/bin/python benchmarks/bench_run.py                       # demo, 3 runs + floor
    .venv/bin/python benchmarks/bench_run.py --baseline /tmp/base --repeat 5 --floor-repeat 0
    .venv/bin/python benchmarks/bench_run.py --sizes 1000000 --format parquet
    .venv/bin/python benchmarks/bench_run.py --sizes 10000000 --repeat 1 --format parquet
    ... --readme   # also rewrite the table between the bench_run markers in benchmarks/README.md

Raw results go to ``benchmarks/results/run-<time>.json`` (git-ignored).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "benchmarks" / "README.md"
START, END = "<!-- bench_run:start -->", "<!-- bench_run:end -->"

# the imports-only notebook imports exactly what the runner's kernels import before the first
# notebook (the libraries and every audit_lib module the notebooks use)
sys.path.insert(0, str(ROOT))
from audit_lib.report import _WARM as IMPORTS  # noqa: E402


def dataset(size: str, fmt: str) -> Path:
    """Params file for ``size`` ("demo" = params/demo.yaml; N = a cached demo client with N contacts)."""
    if size == "demo":
        return ROOT / "params" / "demo.yaml"
    n = int(size)
    folder = DATA / f"demo-{n}-{fmt}"
    params = folder / "params.yaml"
    if params.is_file() and (folder / f"contacts.{fmt}").is_file():
        return params
    print(f"generating {n:,} contacts ({fmt}) in {folder} ...", flush=True)
    subprocess.run([sys.executable, "-m", "audit_lib.cli", "demo", "--out", str(folder), "--contacts", str(n),
                    "--format", fmt], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return params


def _tree_rss(proc) -> int:
    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except Exception:  # noqa: BLE001 - the process ended between two samples
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except Exception:  # noqa: BLE001
            pass
    return total


def run_once(params: Path, code: Path = ROOT) -> dict:
    """One ``kpi-audit run`` in a fresh process: wall time, run.json timings, peak memory.

    ``code``: the checkout whose ``audit_lib`` runs (first on the path of the runner and, by
    inheritance, of its kernels).
    """
    import psutil
    cmd = [sys.executable, "-m", "audit_lib.cli", "run", str(params), "--quiet"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=code, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    stop = threading.Event()

    def sample():
        proc = psutil.Process(child.pid)
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(proc))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    out, err = child.stdout.read(), child.stderr.read()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"kpi-audit run failed ({child.returncode}):\n{out[-2000:]}\n{err[-3000:]}")
    report = Path(out.strip().splitlines()[-1].split("Report: ", 1)[1]).parent
    meta = json.loads((report / "run.json").read_text(encoding="utf-8"))
    t = meta["timings"]
    return {"wall_s": wall, "validate_s": t["validate"], "prepare_s": t["prepare"], "notebooks_s": t["notebooks"],
            "index_s": t["index"], "total_s": t["total"], "per_notebook": t.get("per_notebook", {}),
            "peak_tree_mb": peak[0] / 2**20, "peak_runner_mb": usage.ru_maxrss / 1024,
            "notebooks": len(t.get("per_notebook", {}))}


FLOOR_CHILD = r"""
import json, os, sys, time, tempfile, statistics
import nbformat, papermill as pm
from nbformat.v4 import new_code_cell, new_notebook
from audit_lib import report
report._register_engine()
def make(src):
    nb = new_notebook(cells=[new_code_cell(src)] if src else [])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tempfile.mktemp(suffix=".ipynb"); nbformat.write(nb, path); return path
out = {}
for name, src in (("empty", ""), ("imports", sys.argv[2])):
    path, times = make(src), []
    for _ in range(int(sys.argv[1])):
        km = report._KM_CLASS(kernel_name="python3")
        with open(os.devnull, "w") as log:
            t0 = time.perf_counter()
            pm.execute_notebook(path, tempfile.mktemp(suffix=".ipynb"), progress_bar=False, engine_name="kpi-audit",
                                km=km, launch={"stdout": log, "stderr": log})
            times.append(time.perf_counter() - t0)
        from jupyter_core.utils import run_sync
        run_sync(km.shutdown_kernel)(now=True)
    out[name] = statistics.median(times)
print("BENCH " + json.dumps(out))
"""


def floor(repeat: int) -> dict:
    """Median seconds to execute an empty and an imports-only notebook with papermill (fresh kernel each)."""
    out = subprocess.run([sys.executable, "-c", FLOOR_CHILD, str(repeat), IMPORTS], cwd=ROOT,
                         capture_output=True, text=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("BENCH ")]
    if not line:
        raise SystemExit(f"floor benchmark failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return json.loads(line[-1][6:])


def median_of(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def baseline_table(rows: list[dict], baseline: Path) -> str:
    lines = [f"| contacts | pairs | baseline ({_revision(baseline)}), median | this code ({_revision(ROOT)}), "
             "median | baseline / this code, median of pairs |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        pairs = list(zip(r["baseline"], r["raw"]))
        ratio = statistics.median(b["wall_s"] / n["wall_s"] for b, n in pairs)
        lines.append(f"| {r['label']} | {len(pairs)} | {statistics.median(b['wall_s'] for b, _ in pairs):.1f} s | "
                     f"{statistics.median(n['wall_s'] for _, n in pairs):.1f} s | **{ratio:.2f}** |")
    return "\n".join(lines)


def _revision(checkout: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True)
    return done.stdout.strip() or checkout.name


def table(rows: list[dict], fl: dict | None) -> str:
    lines = ["| contacts | format | runs | wall (median) | validate | prepare | notebooks | index | "
             "peak RSS, all processes | peak RSS, runner | load avg |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = r["median"]
        load = f"{r['load']:.1f}" if r.get("load") is not None else ""
        lines.append(f"| {r['label']} | {r['format']} | {r['runs']} | **{m['wall_s']:.1f} s** | {m['validate_s']:.1f} s | "
                     f"{m['prepare_s']:.1f} s | {m['notebooks_s']:.1f} s | {m['index_s']:.1f} s | "
                     f"**{m['peak_tree_mb']:,.0f} MB** | {m['peak_runner_mb']:,.0f} MB | {load} |")
    if fl:
        lines += ["", "| floor (papermill, fresh kernel) | median |", "|---|---:|",
                  f"| empty notebook | {fl['empty']:.2f} s |", f"| imports-only notebook | {fl['imports']:.2f} s |"]
        for r in rows:
            n, nb = r["median"]["notebooks"], r["median"]["notebooks_s"]
            lines.append(f"| {r['label']}: notebook step / ({n:.0f} × imports-only) | "
                         f"{nb / (n * fl['imports']):.2f} |")
    return "\n".join(lines)


def update_readme(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    block = f"{START}\n{text}\n{END}"
    if START in readme and END in readme:
        head, rest = readme.split(START, 1)
        readme = head + block + rest.split(END, 1)[1]
    else:
        readme = readme.rstrip() + "\n\n## Run\n\n" + block + "\n"
    README.write_text(readme, encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="demo", help="comma list: demo and/or contact counts (default: demo)")
    ap.add_argument("--format", default="csv", choices=("csv", "parquet"), help="contacts format of generated clients")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size (median reported)")
    ap.add_argument("--floor-repeat", type=int, default=3, help="runs of each floor notebook (0 = skip)")
    ap.add_argument("--readme", action="store_true", help="rewrite the bench_run table in benchmarks/README.md")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="checkout of another revision: pair every run with a run of that code, alternately")
    args = ap.parse_args(argv)
    baseline = args.baseline.resolve() if args.baseline else None
    if baseline is not None and not (baseline / "audit_lib" / "report.py").is_file():
        raise SystemExit(f"--baseline {baseline}: not a checkout of this project (no audit_lib/report.py)")

    rows = []
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        params = dataset(size, args.format)
        base_params = (baseline / "params" / "demo.yaml" if size == "demo" else params) if baseline else None
        runs, base_runs = [], []
        for i in range(args.repeat):
            # the pair's order alternates: a run that starts right after another one gets memory
            # the machine has just freed, which is cheaper to touch (bench_fresh_memory.py)
            if baseline is not None and i % 2 == 0:
                base_runs.append(run_once(base_params, baseline))
                print(f"{size} baseline run {i + 1}/{args.repeat}: {base_runs[-1]['wall_s']:.1f} s wall", flush=True)
            r = run_once(params)
            runs.append(r)
            if baseline is not None and i % 2 == 1:
                base_runs.append(run_once(base_params, baseline))
                print(f"{size} baseline run {i + 1}/{args.repeat}: {base_runs[-1]['wall_s']:.1f} s wall", flush=True)
            print(f"{size} run {i + 1}/{args.repeat}: {r['wall_s']:.1f} s wall, peak {r['peak_tree_mb']:,.0f} MB "
                  f"(validate {r['validate_s']:.1f}, prepare {r['prepare_s']:.1f}, notebooks {r['notebooks_s']:.1f})",
                  flush=True)
        label = "demo (150,000)" if size == "demo" else f"{int(size):,}"
        fmt = "CSV" if size == "demo" else args.format.replace("csv", "CSV").replace("parquet", "Parquet")
        rows.append({"size": size, "label": label, "format": fmt, "runs": len(runs), "median": median_of(runs),
                     "raw": runs, "baseline": base_runs, "load": os.getloadavg()[1]})  # 5-minute load average
    fl = floor(args.floor_repeat) if args.floor_repeat else None
    text = table(rows, fl)
    if baseline is not None:
        text += "\n\n" + baseline_table(rows, baseline)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"run-{stamp}.json").write_text(json.dumps({"rows": rows, "floor": fl, "load": os.getloadavg()},
                                                          indent=1, default=str) + "\n", encoding="utf-8")
    if args.readme:
        update_readme(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
