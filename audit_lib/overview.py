"""Data coverage and quality: what the overview notebook (``00_overview``) shows.

Everything here reads the prepared tables and the prepare manifest through an
:class:`audit_lib.context.Audit`; raw contacts are never touched. Findings use the lens
``overview``:

``coverage`` (one row per register metric)
    ``info`` with the number of contacts behind the metric's KPI in the period (``value``) and
    the share of contacts that is (``n`` = contacts); ``low`` when the KPI's columns exist but
    hold no value in the period; ``not_assessable`` when a column the KPI needs is absent,
    when the KPI needs data outside the contacts export (workforce, finance), or when the
    metric is ``custom``.
``validation_warning`` (one row per warning of the input validation)
    ``low``; ``label`` says where (table and column), ``detail`` what.

Missing values are not judged per column: many columns are sparse by nature (CSAT only where
a customer answered the survey, queue time only for calls), so the table shows the share and
the findings speak of each metric's own base instead.
"""
from __future__ import annotations

import pandas as pd

from . import kpi_compute as kc
from .columns import Contact as C
from .columns import Prepared as P
from .columns import Register as R
from .findings import finding, make_findings
from .site import styled_table

__all__ = ["headline", "summary", "channel_mix", "coverage", "warnings_table", "weekly_volume_figure",
           "missingness_figure", "overview_findings", "table"]

LENS = "overview"


def table(df: pd.DataFrame, formats: dict | None = None):
    """A display table without the index, every cell and header HTML-escaped (:func:`site.styled_table`).

    ``formats`` (column -> format string) formats numbers.
    """
    return styled_table(df, formats)


def _n(x) -> str:
    return f"{int(x):,}"


def headline(audit) -> str:
    """The headline numbers as a few lines of plain text (stable across runs of the same inputs)."""
    m = audit.manifest
    channels = m.get("channels", {})
    total = sum(channels.values()) or 1
    mix = ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(channels.items(), key=lambda kv: (-kv[1], kv[0])))
    return "\n".join([
        f"Contacts in the period: {_n(m.get('contacts', 0))} ({m.get('period_start')} to {m.get('period_end')})",
        f"Weeks: {m.get('weeks', 0)} · agents: {m.get('agents', 0)} · teams: {m.get('teams', 0)}",
        f"Channels: {mix}",
        f"Contacts outside the period (not audited): {_n(m.get('outside_period', 0))}",
        f"Metrics in the register: {len(audit.register)} · KPIs computable from the export: {len(m.get('kpis', []))}",
    ])


def summary(audit) -> pd.DataFrame:
    """Two-column table (``item``, ``value``) describing what the data covers."""
    m = audit.manifest
    survey = audit.survey
    outcomes = audit.outcomes
    rows = [
        ("Client", str(getattr(audit.params, "client", ""))),
        ("Audit period", f"{m.get('period_start')} to {m.get('period_end')}"),
        ("First contact in the period", str(m.get("first_contact"))),
        ("Last contact in the period", str(m.get("last_contact"))),
        ("Contacts in the period", _n(m.get("contacts", 0))),
        ("Contacts outside the period (left out)", _n(m.get("outside_period", 0))),
        ("Weeks", str(m.get("weeks", 0))),
        ("Agents", str(m.get("agents", 0))),
        ("Teams", str(m.get("teams", 0))),
        ("Channels", ", ".join(sorted(m.get("channels", {})))),
        ("Metrics in the register", str(len(audit.register))),
        ("Survey respondents", "no survey supplied" if survey is None else _n(len(survey))),
        ("Outcome rows", "no outcomes supplied" if outcomes is None else _n(len(outcomes))),
    ]
    return pd.DataFrame(rows, columns=["item", "value"])


def channel_mix(audit) -> pd.DataFrame:
    """Contacts and share per channel in the period."""
    channels = audit.manifest.get("channels", {})
    df = pd.DataFrame(sorted(channels.items()), columns=[C.CHANNEL, "contacts"])
    total = df["contacts"].sum()
    df["share"] = (df["contacts"] / total).round(3) if total else 0.0
    return df.sort_values(["contacts", C.CHANNEL], ascending=[False, True]).reset_index(drop=True)


def _needed_for() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kpi, f in kc.load_formulas().items():
        for col in f.requires:
            out.setdefault(col, []).append(kpi)
    return out


def coverage(audit) -> pd.DataFrame:
    """Per contacts column: rows, missing, missing share, and the KPIs that need it."""
    df = audit.table(P.COVERAGE)
    needed = _needed_for()
    df["needed_for"] = [", ".join(needed.get(c, [])) for c in df["column"]]
    df["missing_share"] = df["missing_share"].round(4)
    return df.reset_index(drop=True)


def warnings_table(audit) -> pd.DataFrame:
    """The input validation's warnings: ``table``, ``column``, ``message``, ``fix`` first (empty when none)."""
    first = ["table", "column", "message", "fix"]
    df = pd.DataFrame(audit.validation_warnings)
    for col in first:
        if col not in df:
            df[col] = pd.Series([""] * len(df), dtype="str")
    return df[first + [c for c in df.columns if c not in first]].reset_index(drop=True)


def weekly_volume_figure(audit):
    """Stacked bars: contacts per ISO week and team."""
    import matplotlib.pyplot as plt
    tw = audit.table(P.TEAM_WEEK)
    tw["team"] = tw[C.TEAM].fillna("(no team)")
    wide = tw.pivot_table(index="week", columns="team", values="contacts", aggfunc="sum").fillna(0)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    wide.index = [d.strftime("%d %b") for d in pd.to_datetime(wide.index)]
    wide.plot.bar(stacked=True, ax=ax, width=0.8)
    ax.set_xlabel("week starting")
    ax.set_ylabel("contacts")
    ax.set_title("Contacts per week and team")
    ax.legend(title="team", frameon=False, ncols=min(len(wide.columns), 4), fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def missingness_figure(audit):
    """Horizontal bars: share of contacts with no value, per optional column present."""
    import matplotlib.pyplot as plt
    cov = audit.table(P.COVERAGE).sort_values("missing_share")
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(cov) + 1))
    ax.barh(cov["column"], cov["missing_share"] * 100, color="#7a8ca5")
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of contacts with no value")
    ax.set_title("Missing values per column")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def overview_findings(audit) -> pd.DataFrame:
    """The overview's Findings: ``coverage`` per register metric, ``validation_warning`` per warning."""
    m = audit.manifest
    formulas = kc.load_formulas()
    columns = set(m.get("columns", []))
    computable = set(m.get("kpis", []))
    total = int(m.get("contacts", 0))
    centre = audit.table(P.CENTRE_WEEK)
    cov = audit.table(P.COVERAGE).set_index("column")
    rows = []
    for _, reg in audit.register.sort_values(R.METRIC_ID).iterrows():
        metric, kpi = str(reg[R.METRIC_ID]), str(reg.get(R.KPI, "") or "").strip().lower()
        f = formulas.get(kpi)
        if f is None:
            rows.append(finding(LENS, metric, "coverage", "not_assessable", label=kpi or "custom",
                                detail=f"'{kpi or 'custom'}' is not a KPI the workbook computes from contacts; "
                                       "its data cannot be checked here."))
            continue
        if f.external:
            rows.append(finding(LENS, metric, "coverage", "not_assessable", label=kpi,
                                detail=f"{kpi} needs workforce or finance data, not in the contacts export."))
            continue
        missing = [c for c in f.requires if c not in columns]
        if missing or kpi not in computable:
            rows.append(finding(LENS, metric, "coverage", "not_assessable", label=kpi,
                                detail=f"needs column {', '.join(missing)} in the contacts export."))
            continue
        base = int(centre[f"{kpi}__n"].sum()) if f"{kpi}__n" in centre else 0
        gaps = "; ".join(f"{c} missing in {cov.loc[c, 'missing_share']:.1%} of rows"
                         for c in f.requires if c in cov.index and cov.loc[c, "missing_share"] > 0)
        share = base / total if total else 0.0
        evidence = f"{base:,} contacts behind {kpi} ({share:.0%} of {total:,})" + (f"; {gaps}" if gaps else "")
        if base == 0:
            rows.append(finding(LENS, metric, "coverage", "low", label=kpi, value=0, n=total, evidence=evidence,
                                detail=f"the columns for {kpi} exist but hold no usable value in the period."))
        else:
            rows.append(finding(LENS, metric, "coverage", "info", label=kpi, value=base, n=total,
                                evidence=evidence))
    for w in audit.validation_warnings:
        where = ":".join(str(w[k]) for k in ("table", "column") if w.get(k))
        rows.append(finding(LENS, "", "validation_warning", "low", label=where or "inputs",
                            detail=str(w.get("message", ""))))
    return make_findings(rows)
