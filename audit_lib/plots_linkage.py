"""Charts of the linkage lens (matplotlib only).

Every chart reads a :class:`audit_lib.linkage.LinkageResult`; nothing is computed here
beyond arranging it. Associations are drawn *aligned*: up / green means "the metric being
better goes with the outcome being better", whatever the metric's direction. Client text
(metric names) is drawn as plain text: ``$`` is escaped so matplotlib never reads it as
mathematics.

Drawing cost: on a slow machine every axes (its ticks above all) and every glyph of text
costs time, and ``tight_layout`` draws the figure once more to measure it. So panels that
share a scale share one axes (lag profiles side by side), tick counts are capped, repeated
labels are drawn once, and the margins are set from the measured width of the labels that
need them (client text wrapped, or cut with an ellipsis, to a known width).
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import PatchCollection
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .chart_text import LINE as _LINE
from .chart_text import STEPS as _STEPS
from .chart_text import TICK as _TICK
from .chart_text import adjust as _adjust
from .chart_text import fit as _fit
from .chart_text import inner_ticks as _inner_ticks
from .chart_text import legend_columns as _legend_columns
from .chart_text import plain as _plain
from .chart_text import text_width as _width
from .chart_text import tick_width as _tick_width
from .linkage import LAG_CONVENTION, LinkageResult, aligned_associations

__all__ = ["association_heatmap", "lag_profiles", "importance_bars", "decoupling_charts",
           "counterbalance_charts"]

_CMAP = "BrBG"          # colour-blind-safe diverging: brown = adverse, teal = aligned
_MARK = "#01665e"
_OTHER = "#8c510a"


def _empty(message: str):
    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig


# ---------------------------------------------------------------------------------------------
# layout without tight_layout: text measured once, margins in inches
# ---------------------------------------------------------------------------------------------


def _lines(text: str) -> int:
    return str(text).count("\n") + 1


def _names(metric_ids, names: dict) -> str:
    """The shown names of register metrics that draw the same series, as one label."""
    return " / ".join(dict.fromkeys(str(names.get(m, m)) for m in metric_ids))


# ---------------------------------------------------------------------------------------------
# charts
# ---------------------------------------------------------------------------------------------


def association_heatmap(res: LinkageResult, names: dict | None = None, kind: str = "within"):
    """Metric × outcome heatmap of aligned Spearman rho, each cell annotated with its interval.

    Outcomes the metric is meant to serve (KPI library) are boxed.

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = names or {}
    a = aligned_associations(res, kind)
    if a.empty:
        return _empty("No metric could be set against an outcome.")
    outcomes = list(res.outcomes["outcome"])
    # metrics on the same KPI and direction, meant to serve the same outcomes, have the very same
    # row of numbers: one row names them all
    rows = {}
    for m in dict.fromkeys(res.metrics.loc[res.metrics["metric_id"].isin(a["metric_id"]), "metric_id"]):
        am = a[a["metric_id"] == m]
        key = (am["kpi"].iloc[0], am["better"].iloc[0], tuple(sorted(zip(am["outcome"], am["served"]))))
        rows.setdefault(key, []).append(m)
    metrics = [ms[0] for ms in rows.values()]
    shown = {ms[0]: _names(ms, names) for ms in rows.values()}
    level = "within agent (team for file outcomes)" if kind == "within" else "pooled"
    title = (f"Does the metric move with the outcome? Spearman rho [95% interval], {level}\n"
             "positive, teal = metric better goes with outcome better; negative, brown = the reverse; "
             "boxed = outcome it is meant to serve")
    ylabels = [_fit(shown[m], 2.4, 10) for m in metrics]
    cell_w, cell_h, right = 1.1, 0.5, 0.2     # no colour bar: the values are in the cells
    left = max(_width(t, 10) for t in ylabels) + _TICK + 0.1
    width = max(left + cell_w * len(outcomes) + right, _width(title, 9) + 0.4)
    cell_w = (width - left - right) / len(outcomes)
    xlabels = [_fit(o, cell_w - 0.08, 9) for o in outcomes]
    bottom = max(_lines(t) for t in xlabels) * 9 * _LINE + _TICK + 0.1
    top = _lines(title) * 9 * _LINE + 0.2
    height = bottom + top + cell_h * len(metrics)
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, cell_w * len(outcomes) / width, 1 - (bottom + top) / height))
    grid = np.full((len(metrics), len(outcomes)), np.nan)
    row, col = {m: i for i, m in enumerate(metrics)}, {o: j for j, o in enumerate(outcomes)}
    records = [r for r in a.to_dict("records") if r["metric_id"] in row and r["outcome"] in col]
    for r in records:
        grid[row[r["metric_id"]], col[r["outcome"]]] = r["aligned_rho"]
    ax.imshow(grid, cmap=_CMAP, vmin=-1, vmax=1, aspect="auto")
    boxes = []
    for r in records:
        i, j = row[r["metric_id"]], col[r["outcome"]]
        if math.isnan(r["aligned_rho"]):
            ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="grey")
            continue
        ci = "" if math.isnan(r["aligned_low"]) else f"\n[{r['aligned_low']:+.2f}, {r['aligned_high']:+.2f}]"
        ax.text(j, i, f"{r['aligned_rho']:+.2f}{ci}", ha="center", va="center", fontsize=7,
                color="white" if abs(r["aligned_rho"]) > 0.6 else "black")
        if r["served"]:
            boxes.append(plt.Rectangle((j - 0.5, i - 0.5), 1, 1))
    if boxes:
        ax.add_collection(PatchCollection(boxes, facecolor="none", edgecolor="black", linewidth=1.8))
    ax.set_xticks(range(len(outcomes)), [_plain(t) for t in xlabels], fontsize=9)
    ax.set_yticks(range(len(metrics)), [_plain(t) for t in ylabels], fontsize=10)
    ax.tick_params(length=0)
    fig.text(0.5, 1 - 0.1 / height, title, ha="center", va="top", fontsize=9)   # centred on the figure
    return fig


def lag_profiles(res: LinkageResult, names: dict | None = None, pairs: list | None = None, ncols: int = 3):
    """Aligned rho by lag (0..k) with intervals, one profile per metric × outcome.

    The profiles share the rho scale, so ``ncols`` of them sit side by side in one axes (one
    row of axes per ``ncols`` profiles), parted by thin lines.

    ``pairs``: list of ``(metric_id, outcome)``; default: every served pair whose class is
    not ``weak`` or ``not_assessable`` (the ones the conclusions talk about).
    """
    names = names or {}
    cls = res.classes
    if pairs is None:
        keep = cls[~cls["label"].isin(("weak", "not_assessable"))]
        pairs = list(zip(keep["metric_id"], keep["outcome"]))
    directions = dict(zip(res.outcomes["outcome"], res.outcomes["better"]))
    better = dict(zip(res.metrics["metric_id"], res.metrics["better"]))
    kpi = dict(zip(res.metrics["metric_id"], res.metrics["kpi"]))
    panels = {}             # metrics on one KPI and direction have one profile: drawn once, both named
    for mid, oid in pairs:
        key = (kpi.get(mid), better.get(mid), oid)
        if key in panels:
            panels[key][0].append(mid)
            continue
        lg = res.lags[(res.lags["kpi"] == kpi.get(mid)) & (res.lags["outcome"] == oid)].dropna(subset=["rho"])
        if len(lg):
            panels[key] = ([mid], oid, lg.sort_values("lag"))
    panels = list(panels.values())
    if not panels:
        return _empty("No lag profile to show.")
    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    first = min(int(lg["lag"].min()) for _, _, lg in panels)
    span = max(int(lg["lag"].max()) for _, _, lg in panels) - first + 1    # lags per profile
    step = span + 1                                                          # one lag's gap between
    x_lo, x_hi = -0.6, (ncols - 1) * step + span - 0.4
    left, right, bottom, top = 0.75, 0.2, 0.55, 0.35
    width = max(10.5, ncols * 2.4 + left + right)
    group_w = min(span + 0.4, x_hi - x_lo) / (x_hi - x_lo) * (width - left - right)   # a title over its profile
    titles = [_fit(f"{_names(mids, names)} → {oid}", group_w - 0.15, 9) for mids, oid, _ in panels]
    head = max(_lines(t) for t in titles) * 9 * _LINE + 0.1
    row_h, gap = 1.9, head + 9 * _LINE + _TICK + 0.1
    height = top + head + nrows * row_h + (nrows - 1) * gap + bottom
    fig, axes = plt.subplots(nrows, 1, figsize=(width, height), squeeze=False, sharey=True)
    _adjust(fig, left, right, bottom, top + head, hgap=gap, nrows=nrows)
    for r in range(nrows):
        ax = axes[r, 0]
        ax.axhline(0, color="grey", lw=0.8)
        ticks, labels = [], []
        for g, ((mids, oid, lg), title) in enumerate(zip(panels[r * ncols:(r + 1) * ncols],
                                                         titles[r * ncols:(r + 1) * ncols])):
            s = (1 if better.get(mids[0]) == "higher" else -1) * (1 if directions.get(oid) == "higher" else -1)
            lags = lg["lag"].to_numpy(int)
            x = g * step + lags - first
            rho = s * lg["rho"].to_numpy(float)
            lo = np.fmin(s * lg["ci_low"].to_numpy(float), s * lg["ci_high"].to_numpy(float))
            hi = np.fmax(s * lg["ci_low"].to_numpy(float), s * lg["ci_high"].to_numpy(float))
            err = np.nan_to_num(np.vstack([rho - lo, hi - rho]))
            ax.errorbar(x, rho, yerr=err, fmt="o-", color=_MARK, capsize=3, ms=5)
            ax.text(g * step + (span - 1) / 2, 1.03, _plain(title), transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=9)
            if g:
                ax.axvline(g * step - 1, color="#cccccc", lw=0.8)
            ticks += x.tolist()
            labels += [str(k) for k in lags]
        groups = min(ncols, len(panels) - r * ncols)
        ax.set_xlim(x_lo, (groups - 1) * step + span - 0.4)
        if groups < ncols:                  # a short last row keeps the scale of the full rows
            box = ax.get_position()
            ax.set_position((box.x0, box.y0, box.width * (groups * step - 0.8) / (x_hi - x_lo), box.height))
        ax.set_xticks(ticks, labels, fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_ylabel("aligned rho (team-week)", fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_ylim(-1.08, 1.08)
    axes[0, 0].set_yticks([-1, -0.5, 0, 0.5, 1])
    axes[-1, 0].set_xlabel("lag k (outcome k weeks later)", fontsize=8)
    fig.suptitle(LAG_CONVENTION, fontsize=8, y=1 - 0.08 / height, va="top")
    return fig


def importance_bars(res: LinkageResult, names: dict | None = None, ncols: int = 6):
    """Per outcome: each metric's share of R² (LMG bars with intervals, Johnson's weight as a dot).

    Metrics are in the same order in every panel (largest average share of R² at the top), so
    their names are written once per row of panels.
    """
    names = names or {}
    imp = res.importance
    if imp.empty:
        return _empty("Too little data for relative importance.")
    outcomes = list(dict.fromkeys(imp["outcome"]))
    on_kpi = res.metrics.groupby("kpi", sort=False)["metric_id"].agg(list)
    r2 = imp["r2"].where(imp["r2"] > 0)
    order = (imp.assign(share=imp["lmg"] / r2).groupby("kpi", sort=False)["share"].mean()
             .sort_values(na_position="first", kind="mergesort"))
    kpis = list(order.index)                     # bottom to top
    pos = {k: i for i, k in enumerate(kpis)}
    labels = [_fit(_names(on_kpi.get(k, [k]), names), 2.2, 8) for k in kpis]
    ncols = max(1, min(ncols, len(outcomes)))
    nrows = math.ceil(len(outcomes) / ncols)
    left, right, pw, wgap = max(_width(t, 8) for t in labels) + _TICK + 0.05, 0.25, 1.35, 0.3
    titles = {o: _fit(o, pw, 9) for o in outcomes}
    head = (max(_lines(t) for t in titles.values()) + 1) * 9 * _LINE + 0.08
    bottom = 2 * 8 * _LINE + _TICK + 0.1
    row_h = 0.27 * len(kpis) + 0.1
    hgap = head + bottom
    width = left + ncols * pw + (ncols - 1) * wgap + right
    handles = [Patch(color=_MARK, label="LMG (Shapley) share of R², with 95% interval"),
               plt.Line2D([], [], ls="none", marker="o", color=_OTHER, ms=4, label="Johnson's relative weight")]
    texts = [h.get_label() for h in handles]
    at = left if _legend_columns(texts, 8, width - left - 0.1) == len(texts) else 0.1
    legend_cols = _legend_columns(texts, 8, width - at - 0.1)
    legend = math.ceil(len(texts) / legend_cols) * 12 / 72 + 0.2
    height = legend + head + nrows * row_h + (nrows - 1) * hgap + bottom
    # no shared y axis: the panels after the first would each build ticks for every label
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    _adjust(fig, left, right, bottom, legend + head, hgap=hgap, wgap=wgap, nrows=nrows, ncols=ncols)
    ylim = (-0.6, len(kpis) - 0.4)
    pitch = row_h / (ylim[1] - ylim[0]) * 72          # points per metric row
    shaded = np.arange(len(kpis) - 1, -1, -2)          # every other row shaded, to read across panels
    # each panel is four artists (bars and intervals as line collections) instead of a patch and
    # an error bar per metric
    for i, (ax, oid) in enumerate(zip(axes.flat, outcomes)):
        d = imp[imp["outcome"] == oid]
        y = d["kpi"].map(pos).to_numpy(float)
        lmg = d["lmg"].to_numpy(float)
        lo, hi = np.fmin(d["ci_low"].to_numpy(float), lmg), np.fmax(d["ci_high"].to_numpy(float), lmg)
        ok = np.isfinite(lo) & np.isfinite(hi)
        ax.hlines(shaded, 0, 1, transform=ax.get_yaxis_transform(), colors="#f4f4f4", lw=pitch, zorder=0)
        ax.hlines(y, 0, lmg, colors=_MARK, lw=0.8 * pitch, capstyle="butt")
        ax.hlines(y[ok], lo[ok], hi[ok], colors="grey", lw=1.2)
        ax.plot(np.r_[lo[ok], hi[ok]], np.r_[y[ok], y[ok]], "|", color="grey", ms=4, mew=1.2)
        ax.plot(d["johnson"], y, "o", color=_OTHER, ms=4)
        ax.set_title(f"{_plain(titles[oid])}\n{_plain(d['level'].iloc[0])}, R² = {d['r2'].iloc[0]:.2f}",
                     fontsize=9, y=1)
        ax.set_xlim(left=0)
        ax.set_ylim(*ylim)
        _inner_ticks(ax.xaxis, MaxNLocator(nbins=3, steps=_STEPS))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))    # 0.01, not 0.010
        ax.tick_params(axis="x", labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
        if i % ncols == 0:
            ax.set_yticks(np.arange(len(kpis)), [_plain(t) for t in labels], fontsize=8)
            ax.tick_params(axis="y", length=0)
        else:
            ax.set_yticks([])
    for ax in list(axes.flat)[len(outcomes):]:
        ax.axis("off")
    for r in range(nrows):                              # one axis label per row of panels
        row_bottom = bottom + (nrows - 1 - r) * (row_h + hgap)
        fig.text((left + (width - left - right) / 2) / width, (row_bottom - 8 * _LINE - _TICK - 0.02) / height,
                 "share of R²", ha="center", va="top", fontsize=8)
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(at / width, 1), ncol=legend_cols,
               fontsize=8, frameon=False, borderaxespad=0.2)
    return fig


def _series(res: LinkageResult, measure: str) -> pd.DataFrame:
    return res.series[res.series["measure"] == measure].sort_values("time")


def _trend(d: pd.DataFrame, res: LinkageResult, measure: str):
    t = res.trends[res.trends["measure"] == measure]
    if t.empty or math.isnan(t["slope"].iloc[0]) or d.empty:
        return None
    weeks = (d["time"] - d["time"].min()).dt.total_seconds() / (7 * 86400)
    return t["intercept"].iloc[0] + t["slope"].iloc[0] * weeks


def _twin_rows(rows: list, note: str):
    """One row per item: a metric (teal, left scale) and a second measure (brown, right scale)
    over the same weeks. Rows share the time axis, so the dates are written once, at the foot.

    Each row is a dict: ``title``, ``left`` and ``right`` as ``(label, time, values, trend or
    None)``.
    """
    n, width, row_h = len(rows), 9.0, 1.75
    fig, axes = plt.subplots(n, 1, figsize=(width, 1), squeeze=False, sharex=True)
    lwide, rwide, llines, rlines = 0.0, 0.0, 1, 1
    for ax, r in zip(axes[:, 0], rows):
        (ll, lt, lv, ltr), (rl, rt, rv, rtr) = r["left"], r["right"]
        ax.plot(lt, lv, "o-", color=_MARK, ms=4)
        if ltr is not None:
            ax.plot(lt, ltr, "--", color=_MARK, lw=1)
        ax2 = ax.twinx()
        ax2.plot(rt, rv, "s-", color=_OTHER, ms=4)
        if rtr is not None:
            ax2.plot(rt, rtr, "--", color=_OTHER, lw=1)
        for a in (ax, ax2):
            _inner_ticks(a.yaxis, MaxNLocator(nbins=3, steps=_STEPS, min_n_ticks=3))
            a.tick_params(axis="y", labelsize=8)
            a.spines["top"].set_visible(False)
        r["ax2"] = ax2
        r["ll"], r["rl"] = _fit(ll, row_h - 0.1, 8), _fit(rl, row_h - 0.1, 8)
        lwide, rwide = max(lwide, _tick_width(ax.yaxis, 8)), max(rwide, _tick_width(ax2.yaxis, 8))
        llines, rlines = max(llines, _lines(r["ll"])), max(rlines, _lines(r["rl"]))
    left = lwide + _TICK + llines * 8 * _LINE + 0.08
    right = rwide + _TICK + rlines * 8 * _LINE + 0.08
    titles = [_fit(r["title"], width - left - right, 9) for r in rows]
    head = max(_lines(t) for t in titles) * 9 * _LINE + 0.2
    top, bottom = 0.4 + head, 2 * 8 * _LINE + _TICK + 0.12
    height = top + n * row_h + (n - 1) * head + bottom
    fig.set_size_inches(width, height)
    _adjust(fig, left, right, bottom, top, hgap=head, nrows=n)
    for ax, r, title in zip(axes[:, 0], rows, titles):
        ax.set_ylabel(_plain(r["ll"]), color=_MARK, fontsize=8)
        r["ax2"].set_ylabel(_plain(r["rl"]), color=_OTHER, fontsize=8)
        ax.set_title(_plain(title), fontsize=9, y=1)
    locator = _inner_ticks(axes[-1, 0].xaxis, AutoDateLocator(minticks=3, maxticks=7))
    axes[-1, 0].xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes[-1, 0].tick_params(axis="x", labelsize=8)
    fig.text(0.5, 1 - 0.08 / height, note, ha="center", va="top", fontsize=8)
    return fig


def _join(items) -> str:
    items = list(dict.fromkeys(str(i) for i in items))
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _grouped(records: list, key) -> list:
    """Records grouped by ``key`` (first appearance order): rows that would draw the very same
    two series (two register metrics on one KPI) become one row naming both."""
    groups = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return list(groups.values())


def decoupling_charts(res: LinkageResult, names: dict | None = None, only_flagged: bool = True):
    """Metric and outcome over the period (centre level) with their fitted trends.

    One row per metric × outcome (default: only the decoupled ones); metrics on the same KPI
    (the same series) share a row.
    """
    names = names or {}
    d = res.decoupling[res.decoupling["assessable"]]
    if only_flagged:
        d = d[d["decoupled"]]
    if d.empty:
        return _empty("No metric improved while its outcome stayed flat or got worse.")
    rows = []
    for group in _grouped(d.to_dict("records"), lambda r: (r["kpi"], r["outcome"], round(r["metric_change"], 6))):
        r = group[0]
        m, o = _series(res, r["kpi"]), _series(res, r["outcome"])
        who = _join(names.get(g["metric_id"], g["metric_id"]) for g in group)
        rows.append({"title": f"{who} improved {r['metric_change']:.0%} of {'its' if len(group) == 1 else 'their'} "
                              f"level; {r['outcome']} did not",
                     "left": (r["kpi"], m["time"], m["value"], _trend(m, res, r["kpi"])),
                     "right": (r["outcome"], o["time"], o["value"], _trend(o, res, r["outcome"]))})
    return _twin_rows(rows, "Centre, week by week over the audit period: the metric (teal circles, left scale) "
                            "and the outcome (brown squares, right scale); dashed: fitted trends")


def counterbalance_charts(res: LinkageResult, names: dict | None = None):
    """Week by week in each flagged team: the metric and its counterbalance (metrics on the same
    KPI with the same counterbalance share a row)."""
    names = names or {}
    cb = res.counterbalance[res.counterbalance["worsened"]]
    if cb.empty:
        return _empty("No team where a metric improved while its counterbalance got worse.")
    kpi = dict(zip(res.metrics["metric_id"], res.metrics["kpi"]))
    tw = res.team_week
    rows = []
    for group in _grouped(cb.to_dict("records"),
                          lambda r: (r["team"], kpi[r["metric_id"]], kpi[r["counterbalance"]])):
        r = group[0]
        g = tw[tw["team"].astype(str) == r["team"]].sort_values("week")
        km, kc = kpi[r["metric_id"]], kpi[r["counterbalance"]]
        ms, cs = [x["metric_id"] for x in group], [x["counterbalance"] for x in group]
        rows.append({"title": f"Team {r['team']}: {_join(ms)} and {'its' if len(set(ms)) == 1 else 'their'} "
                              f"counterbalance {_join(cs)}",
                     "left": (_names(ms, names), g["week"], g[km], None),
                     "right": (_names(cs, names), g["week"], g[kc], None)})
    return _twin_rows(rows, "Team, week by week: the metric (teal circles, left scale) and its counterbalance "
                            "(brown squares, right scale)")
