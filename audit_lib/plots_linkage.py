"""Charts of the linkage lens (matplotlib only).

Every chart reads a :class:`audit_lib.linkage.LinkageResult`; nothing is computed here
beyond arranging it. Associations are drawn *aligned*: up / green means "the metric being
better goes with the outcome being better", whatever the metric's direction. Client text
(metric names) is drawn as plain text: ``$`` is escaped so matplotlib never reads it as
mathematics.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .linkage import LAG_CONVENTION, LinkageResult, aligned_associations

__all__ = ["association_heatmap", "lag_profiles", "importance_bars", "decoupling_charts",
           "counterbalance_charts"]

_CMAP = "BrBG"          # colour-blind-safe diverging: brown = adverse, teal = aligned
_MARK = "#01665e"
_OTHER = "#8c510a"


def _plain(text) -> str:
    return str(text).replace("$", r"\$")


def _empty(message: str):
    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig


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
    metrics = list(dict.fromkeys(res.metrics.loc[res.metrics["metric_id"].isin(a["metric_id"]), "metric_id"]))
    outcomes = list(res.outcomes["outcome"])
    grid = np.full((len(metrics), len(outcomes)), np.nan)
    fig, ax = plt.subplots(figsize=(1.6 * len(outcomes) + 3, 0.55 * len(metrics) + 1.6))
    for r in a.to_dict("records"):
        i, j = metrics.index(r["metric_id"]), outcomes.index(r["outcome"])
        grid[i, j] = r["aligned_rho"]
    im = ax.imshow(grid, cmap=_CMAP, vmin=-1, vmax=1, aspect="auto")
    for r in a.to_dict("records"):
        i, j = metrics.index(r["metric_id"]), outcomes.index(r["outcome"])
        if math.isnan(r["aligned_rho"]):
            ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="grey")
            continue
        ci = "" if math.isnan(r["aligned_low"]) else f"\n[{r['aligned_low']:+.2f}, {r['aligned_high']:+.2f}]"
        ax.text(j, i, f"{r['aligned_rho']:+.2f}{ci}", ha="center", va="center", fontsize=7,
                color="white" if abs(r["aligned_rho"]) > 0.6 else "black")
        if r["served"]:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.8, ec="black"))
    ax.set_xticks(range(len(outcomes)), [_plain(o) for o in outcomes], rotation=30, ha="right")
    ax.set_yticks(range(len(metrics)), [_plain(names.get(m, m)) for m in metrics])
    level = "within agent (team for file outcomes)" if kind == "within" else "pooled"
    ax.set_title(f"Does the metric move with the outcome? Spearman rho, {level}\n"
                 "positive = metric better goes with outcome better; boxed = outcome it is meant to serve",
                 fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8, label="aligned rho")
    fig.tight_layout()
    return fig


def lag_profiles(res: LinkageResult, names: dict | None = None, pairs: list | None = None, ncols: int = 3):
    """Aligned rho by lag (0..k) with intervals, one panel per metric × outcome.

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
    panels = []
    for mid, oid in pairs:
        lg = res.lags[(res.lags["kpi"] == kpi.get(mid)) & (res.lags["outcome"] == oid)].dropna(subset=["rho"])
        if len(lg):
            panels.append((mid, oid, lg))
    if not panels:
        return _empty("No lag profile to show.")
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 2.8 * nrows), squeeze=False, sharey=True)
    for ax, (mid, oid, lg) in zip(axes.flat, panels):
        s = (1 if better.get(mid) == "higher" else -1) * (1 if directions.get(oid) == "higher" else -1)
        rho = s * lg["rho"].to_numpy(float)
        lo = np.fmin(s * lg["ci_low"].to_numpy(float), s * lg["ci_high"].to_numpy(float))
        hi = np.fmax(s * lg["ci_low"].to_numpy(float), s * lg["ci_high"].to_numpy(float))
        ax.axhline(0, color="grey", lw=0.8)
        ax.errorbar(lg["lag"], rho, yerr=[rho - lo, hi - rho], fmt="o-", color=_MARK, capsize=3)
        ax.set_title(f"{_plain(names.get(mid, mid))} → {_plain(oid)}", fontsize=9)
        ax.set_xticks(lg["lag"].astype(int).tolist())
        ax.set_xlabel("lag k (outcome k weeks later)", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes[0, 0].set_ylabel("aligned rho (team-week)")
    fig.suptitle(LAG_CONVENTION, fontsize=8)
    fig.tight_layout()
    return fig


def importance_bars(res: LinkageResult, names: dict | None = None, ncols: int = 3):
    """Per outcome: each metric's share of R² (LMG bars with intervals, Johnson's weight as a dot)."""
    names = names or {}
    imp = res.importance
    if imp.empty:
        return _empty("Too little data for relative importance.")
    outcomes = list(dict.fromkeys(imp["outcome"]))
    first = res.metrics.drop_duplicates("kpi").set_index("kpi")["metric_id"]
    ncols = min(ncols, len(outcomes))
    nrows = math.ceil(len(outcomes) / ncols)
    height = 0.3 * imp.groupby("outcome").size().max() + 1.2
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, height * nrows), squeeze=False)
    for ax, oid in zip(axes.flat, outcomes):
        d = imp[imp["outcome"] == oid].sort_values("lmg")
        labels = [_plain(names.get(first.get(k, k), k)) for k in d["kpi"]]
        y = np.arange(len(d))
        err = np.vstack([(d["lmg"] - d["ci_low"]).clip(lower=0), (d["ci_high"] - d["lmg"]).clip(lower=0)])
        ax.barh(y, d["lmg"], color=_MARK, label="LMG (Shapley), 95% interval",
                xerr=None if np.isnan(err).all() else np.nan_to_num(err), ecolor="grey", capsize=2)
        ax.plot(d["johnson"], y, "o", color=_OTHER, ms=4, label="Johnson")
        ax.set_yticks(y, labels, fontsize=8)
        r2 = d["r2"].iloc[0]
        ax.set_title(f"{_plain(oid)} ({d['level'].iloc[0]}, R² = {r2:.2f})", fontsize=9)
        ax.set_xlabel("share of R²", fontsize=8)
    for ax in list(axes.flat)[len(outcomes):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _series(res: LinkageResult, measure: str) -> pd.DataFrame:
    return res.series[res.series["measure"] == measure].sort_values("time")


def _trend_line(ax, d: pd.DataFrame, res: LinkageResult, measure: str, colour: str):
    t = res.trends[res.trends["measure"] == measure]
    if t.empty or math.isnan(t["slope"].iloc[0]):
        return
    weeks = (d["time"] - d["time"].min()).dt.total_seconds() / (7 * 86400)
    ax.plot(d["time"], t["intercept"].iloc[0] + t["slope"].iloc[0] * weeks, "--", color=colour, lw=1)


def decoupling_charts(res: LinkageResult, names: dict | None = None, only_flagged: bool = True):
    """Metric and outcome over the period (centre level) with their fitted trends.

    One row per metric × outcome (default: only the decoupled ones).
    """
    names = names or {}
    d = res.decoupling[res.decoupling["assessable"]]
    if only_flagged:
        d = d[d["decoupled"]]
    if d.empty:
        return _empty("No metric improved while its outcome stayed flat or got worse.")
    fig, axes = plt.subplots(len(d), 1, figsize=(8, 2.6 * len(d)), squeeze=False)
    for ax, r in zip(axes[:, 0], d.to_dict("records")):
        m, o = _series(res, r["kpi"]), _series(res, r["outcome"])
        ax.plot(m["time"], m["value"], "o-", color=_MARK, label=_plain(r["kpi"]))
        _trend_line(ax, m, res, r["kpi"], _MARK)
        ax.set_ylabel(_plain(r["kpi"]), color=_MARK, fontsize=8)
        ax2 = ax.twinx()
        ax2.plot(o["time"], o["value"], "s-", color=_OTHER, label=_plain(r["outcome"]))
        _trend_line(ax2, o, res, r["outcome"], _OTHER)
        ax2.set_ylabel(_plain(r["outcome"]), color=_OTHER, fontsize=8)
        ax.set_title(f"{_plain(names.get(r['metric_id'], r['metric_id']))} improved {r['metric_change']:.0%} of its "
                     f"level over the period; {_plain(r['outcome'])} did not (dashed: fitted trends)", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig


def counterbalance_charts(res: LinkageResult, names: dict | None = None):
    """Week by week in each flagged team: the metric and its counterbalance."""
    names = names or {}
    cb = res.counterbalance[res.counterbalance["worsened"]]
    if cb.empty:
        return _empty("No team where a metric improved while its counterbalance got worse.")
    kpi = dict(zip(res.metrics["metric_id"], res.metrics["kpi"]))
    tw = res.team_week
    fig, axes = plt.subplots(len(cb), 1, figsize=(8, 2.6 * len(cb)), squeeze=False)
    for ax, r in zip(axes[:, 0], cb.to_dict("records")):
        g = tw[tw["team"].astype(str) == r["team"]].sort_values("week")
        km, kc = kpi[r["metric_id"]], kpi[r["counterbalance"]]
        ax.plot(g["week"], g[km], "o-", color=_MARK)
        ax.set_ylabel(_plain(names.get(r["metric_id"], r["metric_id"])), color=_MARK, fontsize=8)
        ax2 = ax.twinx()
        ax2.plot(g["week"], g[kc], "s-", color=_OTHER)
        ax2.set_ylabel(_plain(names.get(r["counterbalance"], r["counterbalance"])), color=_OTHER, fontsize=8)
        ax.set_title(f"Team {_plain(r['team'])}: {_plain(r['metric_id'])} and its counterbalance "
                     f"{_plain(r['counterbalance'])}", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig
