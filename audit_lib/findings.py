"""The Findings table: the one shape every lens returns.

A finding is a row ``(lens, metric_id, check, scope, severity, label, value,
threshold, ci_low, ci_high, n, evidence, detail)``. The scorecard, the
quarter-over-quarter comparison, the report and the tests all read this table.

Severity
    ``ok`` (check passed), ``info`` (descriptive, no judgement), ``low``,
    ``medium``, ``high`` (a problem; medium and high are *flagged*), and
    ``not_assessable`` (the data cannot answer; ``detail`` says why).
Scope
    ``overall``, ``team:<team>``, ``agent:<pseudonym>``, ``outcome:<id>``, or a
    combination joined with ``|`` (``team:Beacon|outcome:csat``).
"""
from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path
from typing import Iterable

import pandas as pd

from .columns import Finding as F

__all__ = [
    "SEVERITIES", "FLAGGED", "LENS_ORDER", "finding", "make_findings", "empty_findings",
    "flagged", "sort_findings", "to_records", "write_json", "read_json", "concat",
]

SEVERITIES = ("ok", "info", "low", "medium", "high", "not_assessable")
FLAGGED = ("medium", "high")
LENS_ORDER = ("overview", "register", "behaviour", "perception", "linkage", "scorecard")

_TEXT = (F.LENS, F.METRIC_ID, F.CHECK, F.SCOPE, F.SEVERITY, F.LABEL, F.EVIDENCE, F.DETAIL)
_FLOAT = (F.VALUE, F.THRESHOLD, F.CI_LOW, F.CI_HIGH)
_DTYPES = {**{c: "str" for c in _TEXT}, **{c: "float64" for c in _FLOAT}, F.N: "Int64"}


def finding(lens: str, metric_id: str, check: str, severity: str, *, scope: str = "overall",
            label: str = "", value: float | None = None, threshold: float | None = None,
            ci_low: float | None = None, ci_high: float | None = None, n: int | None = None,
            evidence: str = "", detail: str = "") -> dict:
    """Build one findings row (a dict), checking the severity.

    Examples
    --------
    >>> finding("register", "AHT", "purpose_missing", "high", detail="No purpose stated.")["severity"]
    'high'
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    if lens not in LENS_ORDER:
        raise ValueError(f"lens {lens!r} is not one of {', '.join(LENS_ORDER)}")
    return {F.LENS: lens, F.METRIC_ID: metric_id or "", F.CHECK: check, F.SCOPE: scope or "overall",
            F.SEVERITY: severity, F.LABEL: label or "", F.VALUE: _num(value),
            F.THRESHOLD: _num(threshold), F.CI_LOW: _num(ci_low), F.CI_HIGH: _num(ci_high),
            F.N: None if n is None or (isinstance(n, float) and math.isnan(n)) else int(n),
            F.EVIDENCE: evidence or "", F.DETAIL: detail or ""}


def _num(x) -> float:
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def empty_findings() -> pd.DataFrame:
    """An empty Findings table with the right columns and dtypes."""
    return make_findings([])


def make_findings(rows: Iterable[dict]) -> pd.DataFrame:
    """Turn finding dicts into a sorted Findings DataFrame with fixed dtypes."""
    df = pd.DataFrame(list(rows), columns=list(F.ALL))
    for col, dtype in _DTYPES.items():
        if dtype == "str":
            df[col] = df[col].fillna("").astype(str)
        else:
            df[col] = df[col].astype(dtype)
    bad = set(df[F.SEVERITY]) - set(SEVERITIES)
    if bad:
        raise ValueError(f"unknown severities {sorted(bad)}; use one of {SEVERITIES}")
    return sort_findings(df)


def concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate Findings tables and re-sort them."""
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return empty_findings()
    return make_findings(pd.concat(frames, ignore_index=True).to_dict("records"))


def sort_findings(df: pd.DataFrame) -> pd.DataFrame:
    """Stable order: lens (report order), metric, check, scope."""
    order = {name: i for i, name in enumerate(LENS_ORDER)}
    key = df[F.LENS].map(order).fillna(len(order))
    out = df.assign(_k=key).sort_values(["_k", F.METRIC_ID, F.CHECK, F.SCOPE], kind="mergesort")
    return out.drop(columns="_k").reset_index(drop=True)


def flagged(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose severity is medium or high."""
    return df[df[F.SEVERITY].isin(FLAGGED)]


def to_records(df: pd.DataFrame) -> list[dict]:
    """JSON-ready rows: NaN becomes null, floats rounded to 10 significant digits."""
    records = []
    for row in sort_findings(make_findings(df.to_dict("records"))).to_dict("records"):
        rec = {}
        for k in F.ALL:
            v = row[k]
            if k in _FLOAT:
                v = None if v is None or pd.isna(v) else float(f"{float(v):.10g}")
            elif k == F.N:
                v = None if v is None or pd.isna(v) else int(v)
            rec[k] = v
        records.append(rec)
    return records


def write_json(df: pd.DataFrame, path: str | Path) -> Path:
    """Write findings as deterministic JSON (sorted rows, sorted keys, fixed float format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_records(df), indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
    # written aside, then renamed: a reader (the runner starts the scorecard as soon as every
    # lens has saved its file) sees the whole file or none
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_json(path: str | Path) -> pd.DataFrame:
    """Read a findings.json written by :func:`write_json`."""
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    return make_findings(rows)
