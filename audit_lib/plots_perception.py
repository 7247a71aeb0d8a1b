"""Charts of the perception lens (matplotlib only).

Every chart takes a table that has already passed the anonymity guard
(``perception.likert_counts``, ``staff_manager_gaps``, ``comment_themes``,
``perception_index``), so a chart cannot show a group the tables do not.
Client text (metric names) is drawn as plain text: ``$`` is escaped so matplotlib
never reads it as mathematics.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import PolyCollection
from matplotlib.patches import Patch
from matplotlib.transforms import ScaledTranslation, blended_transform_factory

from .chart_text import cut, widest
from .chart_text import plain as _plain
from .perception import LIKERT_LABELS, MEDIUM_R, THEMES
from .plots_register import shorten

__all__ = ["LIKERT_COLOURS", "diverging_bars", "gap_chart", "index_chart", "theme_chart"]

#: colour-blind-safe diverging palette (brown = disagree, grey = neutral, teal = agree)
LIKERT_COLOURS = ("#8c510a", "#d8b365", "#c7c7c7", "#5ab4ac", "#01665e")


def _item_label(item: str, reverse: bool) -> str:
    label = shorten(str(item).replace("_", " "), 48)
    return _plain(f"{label} (reverse-worded)" if reverse else label)


def _rows(counts: pd.DataFrame, metrics: list):
    """Per metric: ``(metric, shares of answers 1..5 per item, n per item, item labels)``, items
    most agreed-with first."""
    out = []
    for metric in metrics:
        sub = counts[counts["metric_id"] == metric]
        if sub.empty:
            continue
        wide = sub.pivot(index="item_id", columns="answer", values="share").reindex(
            columns=range(1, 6), fill_value=0).fillna(0)
        n = sub.groupby("item_id")["n"].first()
        rev = sub.groupby("item_id")["reverse_keyed"].first()
        net = (wide[4] + wide[5]) - (wide[1] + wide[2])
        order = sorted(wide.index, key=lambda i: (net[i], i), reverse=True)
        out.append((metric, wide.loc[order].to_numpy(dtype=float), [int(n[i]) for i in order],
                    [_item_label(i, bool(rev[i])) for i in order]))
    return out


def diverging_bars(counts: pd.DataFrame, names: dict | None = None, metrics: list | None = None,
                   ncols: int = 2):
    """Diverging stacked bars: one bar per statement, grouped under a heading per metric.

    Disagreement extends left of zero, agreement right; the neutral answer is split
    across zero. All metrics share one −100..100 % scale (one panel, so the chart is
    cheap to draw however many metrics there are). Within a metric, statements are
    sorted by net agreement, most agreed-with first; the number of respondents is
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
    ncols : int, optional
        Accepted for compatibility with the former one-panel-per-metric layout; unused.

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = names or {}
    metrics = sorted(counts["metric_id"].unique()) if metrics is None else list(metrics)
    rows = _rows(counts, metrics)
    if not rows:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "No item has enough respondents to show.", ha="center", va="center")
        return fig
    # layout in inches: label column sized from the longest statement label, fixed bar width
    labels = [label for *_, lab in rows for label in lab]
    pad, gap, bar_w, right = 0.12, 0.08, 4.6, 0.6
    left = pad + widest(labels, 8) + gap
    width = max(left + bar_w + right, 7.2)
    headings = [cut(names.get(m, m), width - 2 * pad, 9, "bold") for m, *_ in rows]
    pitch, head_gap = 0.16, 1.6                       # inches per row; rows from one metric to the next
    ys, heads, y = [], [], 0.0
    for *_, lab in rows:
        heads.append(y)
        ys.append(y + 1 + np.arange(len(lab)))
        y = ys[-1][-1] + head_gap
    top_in, bottom_in = 1.0, 0.62
    span = ys[-1][-1] + 0.7 + 0.9                    # from 0.9 above the first heading to 0.7 below the last bar
    height = top_in + bottom_in + span * pitch
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom_in / height, bar_w / width, span * pitch / height))
    ax.set_xlim(-1, 1)
    ax.set_ylim(ys[-1][-1] + 0.7, -0.9)

    shares = np.vstack([w for _, w, *_ in rows])
    yy = np.concatenate(ys)
    lo = -(shares[:, 0] + shares[:, 1] + shares[:, 2] / 2)
    edges = lo[:, None] + np.hstack([np.zeros((len(yy), 1)), np.cumsum(shares, axis=1)])
    half = 0.4
    # one collection of rectangles per answer for all statements (not ~400 Rectangle patches)
    for k, colour in enumerate(LIKERT_COLOURS):
        x0, x1 = edges[:, k], edges[:, k + 1]
        verts = np.stack([np.column_stack([x0, yy - half]), np.column_stack([x0, yy + half]),
                          np.column_stack([x1, yy + half]), np.column_stack([x1, yy - half])], axis=1)
        ax.add_collection(PolyCollection(verts, facecolors=colour, edgecolors="white", linewidths=0.5,
                                         label=LIKERT_LABELS[k]), autolim=False)
    ax.axvline(0, color="black", linewidth=0.8)

    label_at = blended_transform_factory(ax.transAxes, ax.transData)
    head_at = blended_transform_factory(fig.transFigure, ax.transData)
    for (metric, _, n, lab), head, yv, name in zip(rows, heads, ys, headings):
        # a long heading may reach over the scale: a white box keeps the zero line off it
        ax.text(pad / width, head, _plain(name), transform=head_at, fontsize=9, fontweight="bold",
                va="center", ha="left", bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
        for yi, label, count in zip(yv, lab, n):
            ax.text(-gap / bar_w, yi, label, transform=label_at, fontsize=8, va="center", ha="right")
            ax.text(1 + gap / bar_w, yi, f"n={count}", transform=label_at, fontsize=8, va="center")

    ax.set_yticks([])
    ax.set_xticks([-1, -0.5, 0, 0.5, 1], ["100%", "50%", "0", "50%", "100%"], fontsize=8)
    ax.tick_params(axis="x", top=True, labeltop=True)
    ax.xaxis.grid(True, color="#e0e0e0", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.spines[["left", "right"]].set_visible(False)
    ax.set_xlabel("share of respondents: disagreeing left of 0, agreeing right, neutral split across 0",
                  fontsize=8)
    handles = [Patch(facecolor=c, label=lab) for c, lab in zip(LIKERT_COLOURS, LIKERT_LABELS)]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.42 / height), ncol=5,
               fontsize=8, frameon=False, handlelength=1.5, columnspacing=1.2)
    fig.text(pad / width, 1 - 0.12 / height, "How staff and managers answered, by metric and statement",
             fontsize=11, va="top")
    return fig


def _panel(labels, rows: int, *, plot_w: float, right: float, top: float, bottom: float,
           row_h: float, fontsize: float = 8):
    """A figure with one axes placed in inches, its label column as wide as the longest label.

    Margins come from the labels (measured, not laid out by ``tight_layout``): nothing is
    clipped and the plot keeps its size whatever the client's metric names.
    """
    left = 0.12 + widest(labels, fontsize) + 0.1
    width = left + plot_w + right
    plot_h = row_h * max(rows, 2)
    height = top + bottom + plot_h
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, plot_w / width, plot_h / height))
    return fig, ax


def _row_labels(ax, y, labels, fontsize: float = 8):
    """Labels just left of the axes at heights ``y`` (plain text artists: cheaper than tick labels)."""
    ax.set_yticks([])
    at = blended_transform_factory(ax.transAxes, ax.transData) + ScaledTranslation(
        -0.08, 0, ax.figure.dpi_scale_trans)
    for yi, label in zip(y, labels):
        ax.text(0, yi, label, transform=at, fontsize=fontsize, va="center", ha="right")


def _title(fig, text: str, height: float, fontsize: float = 10):
    fig.text(0.12 / fig.get_figwidth(), 1 - 0.1 / height, text, fontsize=fontsize, va="top")


def _name(names: dict, metric) -> str:
    return _plain(shorten(names.get(metric, metric), 44))


def gap_chart(gaps: pd.DataFrame, names: dict | None = None):
    """Staff vs manager perception index per metric (dumbbell chart).

    Parameters
    ----------
    gaps : DataFrame
        Output of :func:`audit_lib.perception.staff_manager_gaps` (guarded).
    """
    names = names or {}
    if gaps.empty:
        fig, ax = plt.subplots(figsize=(7.5, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "Staff and managers cannot be compared under the anonymity rule.",
                ha="center", va="center")
        return fig
    data = gaps.sort_values(["gap", "metric_id"], kind="mergesort").reset_index(drop=True)
    labels = [_name(names, m) for m in data["metric_id"]]
    top = 0.95
    fig, ax = _panel(labels, len(data), plot_w=5.0, right=0.85, top=top, bottom=0.55, row_h=0.32)
    height = fig.get_figheight()
    y = np.arange(len(data))
    flagged = data["severity"].isin(["medium", "high"]).to_numpy()
    ax.hlines(y, data["mean_staff"], data["mean_managers"], colors=np.where(flagged, "#b2182b", "#999999"),
              linewidths=np.where(flagged, 2.5, 1.2), zorder=1)
    ax.scatter(data["mean_staff"], y, color="#2166ac", label="staff (agents)", zorder=2)
    ax.scatter(data["mean_managers"], y, color="#f4a582", edgecolor="#b2182b",
               label="team leads and managers", zorder=2)
    at = blended_transform_factory(ax.transAxes, ax.transData) + ScaledTranslation(
        0.08, 0, fig.dpi_scale_trans)
    for yi, r, flag in zip(y, data["r"], flagged):
        ax.text(1, yi, f"r = {r:+.2f}" + (" *" if flag else ""), transform=at, va="center", fontsize=8)
    _row_labels(ax, y, labels)
    ax.set_ylim(-0.6, len(data) - 0.4)
    ax.set_xlim(1, 5)
    ax.set_xticks([1, 2, 3, 4, 5])
    ax.set_xlabel("perception index (1 = unfavourable, 5 = favourable)")
    _title(fig, "Staff vs managers: where they see a metric differently\n"
                f"(* significant after Holm correction and |r| >= {MEDIUM_R})", height)
    fig.legend(loc="upper left", bbox_to_anchor=(ax.get_position().x0, 1 - 0.5 / height), ncol=2,
               fontsize=8, frameon=False, borderaxespad=0, borderpad=0)
    return fig


def index_chart(index: pd.DataFrame, names: dict | None = None, min_alpha: float = 0.6):
    """Perception index per metric with its 95% interval; hollow markers where alpha is low."""
    names = names or {}
    if index.empty:
        fig, ax = plt.subplots(figsize=(7, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "No metric has enough respondents to show.", ha="center", va="center")
        return fig
    data = index.sort_values(["index", "metric_id"], kind="mergesort").reset_index(drop=True)
    labels = [_name(names, m) for m in data["metric_id"]]
    fig, ax = _panel(labels, len(data), plot_w=5.0, right=0.25, top=0.75, bottom=0.55, row_h=0.3)
    height = fig.get_figheight()
    y = np.arange(len(data))
    reliable = (data["alpha"] >= min_alpha).to_numpy()
    ax.hlines(y, data["ci_low"], data["ci_high"], colors="#555555", linewidth=1.2)
    ax.scatter(data["ci_low"], y, marker="|", color="#555555", s=40)
    ax.scatter(data["ci_high"], y, marker="|", color="#555555", s=40)
    ax.scatter(data["index"][reliable], y[reliable], color="#01665e", label="reliable index", zorder=2)
    ax.scatter(data["index"][~reliable], y[~reliable], facecolor="white", edgecolor="#8c510a",
               label=f"alpha < {min_alpha}: read items one by one", zorder=2)
    ax.axvline(3, color="#999999", linestyle=":", linewidth=1)
    _row_labels(ax, y, labels)
    ax.set_ylim(-0.6, len(data) - 0.4)
    ax.set_xlim(1, 5)
    ax.set_xticks([1, 2, 3, 4, 5])
    ax.set_xlabel("perception index (1 = unfavourable, 5 = favourable), 95% interval")
    _title(fig, "Perception index by metric (dotted line: neutral)", height)
    handles, legend_labels = ax.get_legend_handles_labels()
    fig.legend(handles, legend_labels, loc="upper left", bbox_to_anchor=(ax.get_position().x0, 1 - 0.34 / height),
               ncol=2, fontsize=8, frameon=False, borderaxespad=0, borderpad=0)
    return fig


def theme_chart(themes: pd.DataFrame, names: dict | None = None):
    """Heat map of comment themes per metric (share of the metric's comments).

    Parameters
    ----------
    themes : DataFrame
        Output of :func:`audit_lib.perception.comment_themes` (already guarded).
    """
    names = names or {}
    if themes.empty:
        fig, ax = plt.subplots(figsize=(8, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "No metric has enough comments to summarise.", ha="center", va="center")
        return fig
    order = [t for t in (*THEMES, "other") if t in set(themes["theme"])]
    wide = themes.pivot(index="metric_id", columns="theme", values="share")[order].sort_index()
    counts = themes.pivot(index="metric_id", columns="theme", values="comments")[order].sort_index()
    labels = [_name(names, m) for m in wide.index]
    top, bar_w = 0.45, 1.1
    fig, ax = _panel(labels, len(wide), plot_w=max(0.62 * len(order), 3.2), right=bar_w, top=top, bottom=0.8,
                     row_h=0.5)
    width, height = fig.get_size_inches()
    values = wide.to_numpy(dtype=float)
    im = ax.imshow(values, cmap="Oranges", vmin=0, vmax=1, aspect="auto")
    for (i, j), c in np.ndenumerate(counts.to_numpy()):
        if c:
            ax.text(j, i, str(int(c)), ha="center", va="center", fontsize=7,
                    color="white" if values[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(order)), [t.replace("_", " ") for t in order], rotation=30, ha="right",
                  fontsize=8, rotation_mode="anchor")
    _row_labels(ax, range(len(wide)), labels)
    box = ax.get_position()
    cax = fig.add_axes((box.x1 + 0.25 / width, box.y0 + 0.1 * box.height, 0.12 / width, 0.8 * box.height))
    bar = fig.colorbar(im, cax=cax, ticks=[0, 0.5, 1])
    bar.ax.set_yticklabels(["0%", "50%", "100%"], fontsize=8)
    bar.set_label("share of the metric's comments", fontsize=8)
    _title(fig, "What the comments are about (numbers = comments)", height)
    return fig
