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
    """Stacked bars: contacts per ISO week and team.

    Drawn with one ``bar`` call per team on fixed week ticks (a label every week up to 13 weeks,
    then every n-th) and margins measured from the labels, instead of pandas plotting and
    ``tight_layout``; the legend sits above the bars so it never covers them.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    from .chart_text import plain as _plain
    from .chart_text import widest
    from .plots_register import shorten

    tw = audit.table(P.TEAM_WEEK)
    tw["team"] = tw[C.TEAM].fillna("(no team)")
    wide = tw.pivot_table(index="week", columns="team", values="contacts", aggfunc="sum").fillna(0)
    weeks = [d.strftime("%d %b") for d in pd.to_datetime(wide.index)]
    teams = [_plain(shorten(t, 30)) for t in wide.columns]
    plot_w, plot_h, bottom = 6.9, 2.3, 0.6
    # legend under the title, as many columns as fit over the plot (at most 6)
    legend_cols = max(1, min(len(teams), 6, int(plot_w // (widest(teams, 8) + 0.5))))
    top = 0.42 + 0.2 + 0.2 * -(-len(teams) // legend_cols) + 0.1
    fig = plt.figure(figsize=(8, top + plot_h + bottom))
    ax = fig.add_axes((0, 0, 1, 1))                      # placed below, once the margins are known
    x = np.arange(len(weeks))
    base = np.zeros(len(weeks))
    handles = []
    for i, team in enumerate(wide.columns):
        values = wide[team].to_numpy(dtype=float)
        handles.append(ax.bar(x, values, bottom=base, width=0.8, color=f"C{i % 10}"))
        base = base + values
    step = max(1, -(-len(weeks) // 13))
    ax.set_xticks(x[::step], weeks[::step], fontsize=8)
    ax.set_xlim(-0.6, len(weeks) - 0.4)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.tick_params(axis="y", labelsize=8)
    lo, hi = ax.get_ylim()
    ticks = [t for t in ax.get_yticks() if lo <= t <= hi]
    left = 0.12 + 0.25 + widest(ax.yaxis.get_major_formatter().format_ticks(ticks), 8) + 0.1
    width = left + plot_w + 0.2
    height = top + plot_h + bottom
    fig.set_size_inches(width, height)
    ax.set_position((left / width, bottom / height, plot_w / width, plot_h / height))
    ax.set_xlabel("week starting")
    ax.set_ylabel("contacts")
    fig.text(left / width, 1 - 0.1 / height, "Contacts per week and team", fontsize=12, va="top")
    fig.legend(handles, teams, title="team", title_fontsize=8, loc="upper left", frameon=False, fontsize=8,
               ncols=legend_cols, bbox_to_anchor=(left / width, 1 - 0.42 / height), borderaxespad=0,
               borderpad=0, alignment="left")
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def missingness_figure(audit):
    """Horizontal bars: share of contacts with no value, per optional column present.

    Column names are drawn as text artists beside the bars and the left margin is measured
    from the longest one (no ``tight_layout``).
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.transforms import ScaledTranslation, blended_transform_factory

    from .chart_text import plain as _plain
    from .chart_text import widest
    from .plots_register import shorten

    cov = audit.table(P.COVERAGE).sort_values("missing_share")
    labels = [_plain(shorten(c, 40)) for c in cov["column"]]
    plot_w, row_h, top, bottom = 5.0, 0.26, 0.4, 0.55
    left = 0.12 + widest(labels, 9) + 0.1
    width, height = left + plot_w + 0.3, top + bottom + row_h * max(len(cov), 2)
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, plot_w / width, row_h * max(len(cov), 2) / height))
    y = np.arange(len(cov))
    ax.barh(y, cov["missing_share"].to_numpy(dtype=float) * 100, color="#7a8ca5")
    ax.set_ylim(-0.6, max(len(cov), 2) - 0.4)
    ax.set_yticks([])
    at = blended_transform_factory(ax.transAxes, ax.transData) + ScaledTranslation(-0.08, 0, fig.dpi_scale_trans)
    for yi, label in zip(y, labels):
        ax.text(0, yi, label, transform=at, ha="right", va="center", fontsize=9)
    ax.set_xlim(0, 100)
    ax.set_xticks([0, 20, 40, 60, 80, 100])
    ax.set_xlabel("% of contacts with no value")
    fig.text(left / width, 1 - 0.1 / height, "Missing values per column", fontsize=12, va="top")
    ax.spines[["top", "right"]].set_visible(False)
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
