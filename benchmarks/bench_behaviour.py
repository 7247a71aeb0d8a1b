"""Calibration and timing of the behaviour lens.

Three measurements:

* **False-positive rate** on the null demo client (nothing planted): for each seed,
  ``demo.generate(tmp, null=True, seed=s)``, prepare, run the lens at default settings; a
  detector has a false positive in that seed when it flags (medium/high) any row. Target:
  at most 5 % of seeds per detector, over at least 20 seeds.
* **Detection rate** on the planted demo: the share of seeds in which each planted
  behaviour finding of ``expected_findings.json`` (lens ``behaviour``) is found.
* **Time of the lens** (reading the prepared tables + ``behaviour.assess``) on a demo client
  with many contacts, median of ``--repeat`` runs. The lens reads compact tables, so its time
  should barely depend on the number of contacts. The large client is generated and prepared
  once into ``benchmarks/data/`` (cached, git-ignored).

Usage::

    .venv/bin/python benchmarks/bench_behaviour.py                         # 20 null, 5 planted seeds
    .venv/bin/python benchmarks/bench_behaviour.py --null-seeds 30 --planted-seeds 10
    .venv/bin/python benchmarks/bench_behaviour.py --timing-contacts 10000000 --repeat 3

Raw results go to ``benchmarks/results/behaviour-<time>.json`` (git-ignored).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results"


def _lens(params_path: Path, run_dir: Path):
    from audit_lib import behaviour
    from audit_lib.context import open_audit
    audit = open_audit(str(params_path), str(run_dir))
    return audit, behaviour.audit_findings(audit)


def _found(audit, flagged, entry) -> bool:
    from audit_lib.columns import Finding as F
    hit = flagged[(flagged[F.METRIC_ID] == entry["metric_id"]) & (flagged[F.CHECK] == entry["check"])]
    scope = entry.get("scope")
    if scope:
        if scope.startswith("agent:"):
            scope = "agent:" + audit.pseudonym(scope.split(":", 1)[1])
        hit = hit[hit[F.SCOPE] == scope]
    return len(hit) > 0


def calibrate(null_seeds: list[int], planted_seeds: list[int], contacts: int) -> dict:
    """False-positive rate per detector (null) and detection rate per planted finding."""
    from audit_lib import demo
    from audit_lib import findings as fd
    from audit_lib.behaviour import CHECKS
    from audit_lib.columns import Finding as F
    fp = {c: 0 for c in CHECKS}
    fp_rows: list[dict] = []
    found: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-behaviour-") as tmp:
        for s in null_seeds:
            t0 = time.perf_counter()
            params = demo.generate(Path(tmp) / f"null-{s}", null=True, seed=s, contacts=contacts)
            audit, out = _lens(params, Path(tmp) / f"null-{s}-run")
            flagged = fd.flagged(out)
            for c in set(flagged[F.CHECK]):
                fp[c] += 1
            fp_rows += [{"seed": s, **{k: r[k] for k in (F.METRIC_ID, F.CHECK, F.SCOPE, F.VALUE, F.EVIDENCE)}}
                        for r in flagged.to_dict("records")]
            print(f"null seed {s}: {len(flagged)} flagged ({time.perf_counter() - t0:.1f} s)", flush=True)
        for s in planted_seeds:
            t0 = time.perf_counter()
            params = demo.generate(Path(tmp) / f"planted-{s}", null=False, seed=s, contacts=contacts)
            audit, out = _lens(params, Path(tmp) / f"planted-{s}-run")
            flagged = fd.flagged(out)
            doc = json.loads((Path(params).parent / "expected_findings.json").read_text())
            for e in (e for e in doc["findings"] if e["lens"] == "behaviour"):
                key = f"{e['metric_id']}/{e['check']}/{e.get('scope', 'any')}"
                found[key] = found.get(key, 0) + int(_found(audit, flagged, e))
            print(f"planted seed {s}: {len(flagged)} flagged ({time.perf_counter() - t0:.1f} s)", flush=True)
    n0, n1 = max(len(null_seeds), 1), max(len(planted_seeds), 1)
    return {"null_seeds": null_seeds, "planted_seeds": planted_seeds, "contacts": contacts,
            "false_positive_rate": {c: fp[c] / n0 for c in CHECKS}, "false_positives": fp_rows,
            "detection_rate": {k: v / n1 for k, v in sorted(found.items())}}


def timing(contacts: int, repeat: int) -> dict:
    """Median time of the lens on prepared tables of a demo with ``contacts`` contacts."""
    from audit_lib import behaviour, demo
    from audit_lib.columns import Prepared as P
    from audit_lib.context import Audit, open_audit
    # the prepared tables do not depend on the export's format: reuse whichever client is cached
    cached = [DATA / f"demo-{contacts}-{fmt}" for fmt in ("parquet", "csv")]
    folder = next((f for f in cached if (f / "params.yaml").exists()), cached[0])
    params = folder / "params.yaml"
    if not params.exists():
        demo.generate(folder, contacts=contacts, fmt="parquet")
    run_dir = folder / "bench-behaviour-run"
    t0 = time.perf_counter()
    audit = open_audit(str(params), str(run_dir))            # validates and prepares once (cached)
    prepare_s = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        fresh = Audit(audit.params, audit.run_dir)             # no cached tables: reads included
        t = time.perf_counter()
        behaviour.audit_findings(fresh)
        times.append(time.perf_counter() - t)
    rows = {name: len(audit.table(name)) for name in (P.HISTOGRAMS, P.AGENT_SIGNATURES, P.TEAM_DAY,
                                                         P.CALLBACKS, P.FIRST_REPLIES)}
    return {"contacts": contacts, "repeat": repeat, "median_s": statistics.median(times), "runs_s": times,
            "prepared_rows": rows, "open_audit_s (first run prepares)": prepare_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--null-seeds", type=int, default=20)
    ap.add_argument("--planted-seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--contacts", type=int, default=150_000, help="contacts of each calibration demo")
    ap.add_argument("--timing-contacts", type=int, default=0, help="0 = skip the timing")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    out = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    seeds = list(range(a.first_seed, a.first_seed + max(a.null_seeds, a.planted_seeds)))
    if a.null_seeds or a.planted_seeds:
        out["calibration"] = calibrate(seeds[:a.null_seeds], seeds[:a.planted_seeds], a.contacts)
        cal = out["calibration"]
        print("\nfalse-positive rate per detector (null demo, %d seeds):" % len(cal["null_seeds"]))
        for c, r in cal["false_positive_rate"].items():
            print(f"  {c:22s} {r:6.1%}")
        print("detection rate per planted finding (%d seeds):" % len(cal["planted_seeds"]))
        for k, r in cal["detection_rate"].items():
            print(f"  {k:45s} {r:6.1%}")
    if a.timing_contacts:
        out["timing"] = timing(a.timing_contacts, a.repeat)
        t = out["timing"]
        print(f"\nlens on {t['contacts']:,} prepared contacts: median {t['median_s']:.2f} s over {t['repeat']} runs "
              f"({', '.join(f'{x:.2f}' for x in t['runs_s'])}); prepared rows {t['prepared_rows']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"behaviour-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
