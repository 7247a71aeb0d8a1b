"""Charts of the perception lens (matplotlib only).

Every chart takes a table that has already passed the anonymity guard
(``perception.likert_counts``, ``staff_manager_gaps``, ``comment_themes``,
``perception_index``), so a chart cannot show a group the tables do not.
Client text (metric names) is drawn as plain text: ``$`` is escaped so matplotlib
never reads it as mathematics.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .perception import LIKERT_LABELS, MEDIUM_R, THEMES

__all__ = ["LIKERT_COLOURS", "diverging_bars", "gap_chart", "index_chart", "theme_chart"]

#: colour-blind-safe diverging palette (brown = disagree, grey = neutral, teal = agree)
LIKERT_COLOURS = ("#8c510a", "#d8b365", "#c7c7c7", "#5ab4ac", "#01665e")


def _plain(text) -> str:
    return str(text).replace("$", r"\$")


def _item_label(item: str, reverse: bool) -> str:
    label = item.replace("_", " ")
    return f"{label} (reverse-worded)" if reverse else label


def diverging_bars(counts: pd.DataFrame, names: dict | None = None, metrics: list | None = None,
                   ncols: int = 2):
    """Diverging stacked bars: one panel per metric, one bar per item.

    Disagreement extends left of zero, agreement right; the neutral answer is split
    across zero. Items are sorted by net agreement; the number of respondents is
    printed after each bar. Answers are shown as given (reverse-worded statements are
    marked).

    Parameters
    ----------
    counts : DataFrame
        Output of :func:`audit_lib.perception.likert_counts`.
    names : dict, optional
        metric_id -> display name.
    metrics : list, optional
        Which metrics to draw (default: all, sorted).

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = names or {}
    metrics = sorted(counts["metric_id"].unique()) if metrics is None else list(metrics)
    if not metrics:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "No item has enough respondents to show.", ha="center", va="center")
        return fig
    ncols = max(1, min(ncols, len(metrics)))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 2.6 * nrows + 0.8),
                             squeeze=False, sharex=True)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    for ax, metric in zip(axes.flat, metrics):
        sub = counts[counts["metric_id"] == metric]
        wide = sub.pivot(index="item_id", columns="answer", values="share").reindex(
            columns=range(1, 6), fill_value=0).fillna(0)
        n = sub.groupby("item_id")["n"].first()
        rev = sub.groupby("item_id")["reverse_keyed"].first()
        net = (wide[4] + wide[5]) - (wide[1] + wide[2])
        order = sorted(wide.index, key=lambda i: (net[i], i))
        wide = wide.loc[order]
        y = np.arange(len(order))
        left = -(wide[1] + wide[2] + wide[3] / 2)
        start = left.to_numpy().copy()
        for answer, colour in zip(range(1, 6), LIKERT_COLOURS):
            width = wide[answer].to_numpy()
            ax.barh(y, width, left=start, color=colour, edgecolor="white", linewidth=0.5,
                    label=LIKERT_LABELS[answer - 1])
            start = start + width
        for yi, item in zip(y, order):
            ax.text(1.02, yi, f"n={int(n[item])}", va="center", fontsize=8,
                    transform=ax.get_yaxis_transform())
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(y, [_item_label(i, bool(rev[i])) for i in order], fontsize=8)
        ax.set_xlim(-1, 1)
        ax.set_xticks([-1, -0.5, 0, 0.5, 1], ["100%", "50%", "0", "50%", "100%"], fontsize=8)
        ax.set_title(_plain(names.get(metric, metric)), fontsize=10, loc="left")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("How staff and managers answered, by metric and statement", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig


def gap_chart(gaps: pd.DataFrame, names: dict | None = None):
    """Staff vs manager perception index per metric (dumbbell chart).

    Parameters
    ----------
    gaps : DataFrame
        Output of :func:`audit_lib.perception.staff_manager_gaps` (guarded).
    """
    names = names or {}
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * max(len(gaps), 2) + 1.4))
    if gaps.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, "Staff and managers cannot be compared under the anonymity rule.",
                ha="center", va="center")
        return fig
    data = gaps.sort_values(["gap", "metric_id"], kind="mergesort").reset_index(drop=True)
    y = np.arange(len(data))
    flagged = data["severity"].isin(["medium", "high"]).to_numpy()
    for yi, row, flag in zip(y, data.itertuples(index=False), flagged):
        ax.plot([row.mean_staff, row.mean_managers], [yi, yi], color="#b2182b" if flag else "#999999",
                linewidth=2.5 if flag else 1.2, zorder=1)
        ax.text(5.08, yi, f"r = {row.r:+.2f}" + (" *" if flag else ""), va="center", fontsize=8)
    ax.scatter(data["mean_staff"], y, color="#2166ac", label="staff (agents)", zorder=2)
    ax.scatter(data["mean_managers"], y, color="#f4a582", edgecolor="#b2182b",
               label="team leads and managers", zorder=2)
    ax.set_yticks(y, [_plain(names.get(m, m)) for m in data["metric_id"]], fontsize=8)
    ax.set_xlim(1, 5)
    ax.set_xlabel("perception index (1 = unfavourable, 5 = favourable)")
    ax.set_title("Staff vs managers: where they see a metric differently\n"
                 f"(* significant after Holm correction and |r| >= {MEDIUM_R})", fontsize=10)
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def index_chart(index: pd.DataFrame, names: dict | None = None, min_alpha: float = 0.6):
    """Perception index per metric with its 95% interval; hollow markers where alpha is low."""
    names = names or {}
    fig, ax = plt.subplots(figsize=(7, 0.42 * max(len(index), 2) + 1.2))
    if index.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, "No metric has enough respondents to show.", ha="center", va="center")
        return fig
    data = index.sort_values(["index", "metric_id"], kind="mergesort").reset_index(drop=True)
    y = np.arange(len(data))
    reliable = (data["alpha"] >= min_alpha).to_numpy()
    ax.errorbar(data["index"], y, xerr=[data["index"] - data["ci_low"], data["ci_high"] - data["index"]],
                fmt="none", ecolor="#555555", capsize=3)
    ax.scatter(data["index"][reliable], y[reliable], color="#01665e", label="reliable index", zorder=2)
    ax.scatter(data["index"][~reliable], y[~reliable], facecolor="white", edgecolor="#8c510a",
               label=f"alpha < {min_alpha}: read items one by one", zorder=2)
    ax.axvline(3, color="#999999", linestyle=":", linewidth=1)
    ax.set_yticks(y, [_plain(names.get(m, m)) for m in data["metric_id"]], fontsize=8)
    ax.set_xlim(1, 5)
    ax.set_xlabel("perception index (1 = unfavourable, 5 = favourable), 95% interval")
    ax.set_title("Perception index by metric (dotted line: neutral)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def theme_chart(themes: pd.DataFrame, names: dict | None = None):
    """Heat map of comment themes per metric (share of the metric's comments).

    Parameters
    ----------
    themes : DataFrame
        Output of :func:`audit_lib.perception.comment_themes` (already guarded).
    """
    names = names or {}
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(themes["metric_id"].nunique(), 2) + 1.6))
    if themes.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, "No metric has enough comments to summarise.", ha="center", va="center")
        return fig
    order = [t for t in (*THEMES, "other") if t in set(themes["theme"])]
    wide = themes.pivot(index="metric_id", columns="theme", values="share")[order].sort_index()
    counts = themes.pivot(index="metric_id", columns="theme", values="comments")[order].sort_index()
    im = ax.imshow(wide.to_numpy(dtype=float), cmap="Oranges", vmin=0, vmax=1, aspect="auto")
    for (i, j), c in np.ndenumerate(counts.to_numpy()):
        if c:
            ax.text(j, i, str(int(c)), ha="center", va="center", fontsize=7,
                    color="white" if wide.iat[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(order)), [t.replace("_", " ") for t in order], rotation=30, ha="right",
                  fontsize=8)
    ax.set_yticks(range(len(wide)), [_plain(names.get(m, m)) for m in wide.index], fontsize=8)
    fig.colorbar(im, ax=ax, label="share of the metric's comments", shrink=0.8)
    ax.set_title("What the comments are about (numbers = comments)", fontsize=10)
    fig.tight_layout()
    return fig
