"""Validation benchmark: wall time and peak memory of `kpi-audit validate` on large contacts exports.

Generates the demo client with 1M and 10M contacts (CSV and Parquet) under
``benchmarks/data/`` (git-ignored, reused on later runs), then runs ``kpi-audit validate``
in a fresh process several times per case and reports the median wall time and the peak
resident memory of the process (``getrusage`` of the child, i.e. what ``/usr/bin/time -v``
calls "Maximum resident set size").

``--pandera`` also measures validating the already-parsed canonical contacts with the
pandera schema built from the same declaration (``schemas.pandera_schema``), the way the
small tables are checked, to decide whether pandera could check contacts too.

Usage::

    .venv/bin/python benchmarks/bench_validate.py                       # 1M, csv + parquet, 3 runs each
    .venv/bin/python benchmarks/bench_validate.py --sizes 10000000 --repeat 1
    .venv/bin/python benchmarks/bench_validate.py --sizes 1000000 --pandera

The machine is shared: keep 10M runs to one or two.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"

# The child validates through the CLI entry point and reports its own peak RSS (Linux: KiB).
CHILD_VALIDATE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from audit_lib import cli
code = cli.main(["validate", sys.argv[1]])
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("BENCH " + json.dumps({"exit": code, "in_process_s": wall, "peak_rss_mb": peak}))
"""

# Pandera on the canonical contacts (already parsed by audit_lib.io): value checks only.
CHILD_PANDERA = r"""
import json, resource, sys, time
from audit_lib import io, params, schemas
p = params.load_params(sys.argv[1])
contacts = io.load_contacts(p)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
df = contacts.to_pandas(types_mapper=None)
t1 = time.perf_counter()
schema = schemas.pandera_schema(schemas.CONTACTS, df.columns)
schema.validate(df, lazy=True)
t2 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("BENCH " + json.dumps({"rows": contacts.num_rows, "to_pandas_s": t1 - t0, "pandera_s": t2 - t1,
                             "peak_rss_mb": peak, "peak_before_pandas_mb": before}))
"""


def dataset(n: int, fmt: str) -> Path:
    """The demo client with ``n`` contacts in ``fmt``; generated once and cached."""
    folder = DATA / f"demo-{n}-{fmt}"
    params = folder / "params.yaml"
    contacts = folder / f"contacts.{fmt}"
    if params.is_file() and contacts.is_file():
        return params
    print(f"generating {n:,} contacts ({fmt}) in {folder} ...", flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "audit_lib.cli", "demo", "--out", str(folder), "--contacts", str(n),
                    "--format", fmt], check=True, stdout=subprocess.DEVNULL)
    print(f"  generated in {time.perf_counter() - t0:.0f} s", flush=True)
    return params


def run_child(code: str, params: Path) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(params)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    line = [x for x in out.stdout.splitlines() if x.startswith("BENCH ")]
    if not line:
        raise SystemExit(f"benchmark child failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    result = json.loads(line[-1][6:])
    result["wall_s"] = wall
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--formats", nargs="+", default=["csv", "parquet"], choices=["csv", "parquet"])
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (median reported)")
    ap.add_argument("--pandera", action="store_true", help="also time pandera on the parsed contacts (once)")
    args = ap.parse_args(argv)

    rows = []
    for n in args.sizes:
        for fmt in args.formats:
            params = dataset(n, fmt)
            size_mb = (params.parent / f"contacts.{fmt}").stat().st_size / 2**20
            runs = []
            for i in range(args.repeat):
                r = run_child(CHILD_VALIDATE, params)
                if r["exit"] != 0:
                    raise SystemExit(f"validate exited {r['exit']} on {params}")
                runs.append(r)
                print(f"  {n:>11,} {fmt:<8} run {i + 1}: {r['wall_s']:.1f} s, peak {r['peak_rss_mb']:.0f} MB",
                      flush=True)
            row = {"contacts": n, "format": fmt, "file_mb": round(size_mb), "runs": len(runs),
                   "median_wall_s": round(statistics.median(r["wall_s"] for r in runs), 1),
                   "max_peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs))}
            if args.pandera and fmt == args.formats[-1]:   # the cheaper load when both formats run
                pr = run_child(CHILD_PANDERA, params)
                row.update({"pandera_s": round(pr["pandera_s"], 1), "to_pandas_s": round(pr["to_pandas_s"], 1),
                            "pandera_peak_rss_mb": round(pr["peak_rss_mb"]),
                            "before_pandas_peak_rss_mb": round(pr["peak_before_pandas_mb"])})
            rows.append(row)
            print(json.dumps(row), flush=True)

    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"validate-{stamp}.json").write_text(json.dumps(rows, indent=2))
    print("\n| contacts | format | file | runs | median wall | peak RSS |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['contacts']:,} | {r['format']} | {r['file_mb']} MB | {r['runs']} | {r['median_wall_s']} s "
              f"| {r['max_peak_rss_mb']:,} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
