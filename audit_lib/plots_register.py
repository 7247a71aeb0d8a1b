"""Charts and display tables of the register lens (used by ``notebooks/01_register.ipynb``).

Everything the client typed (metric names, purposes) is shown as text: tables go through a
pandas Styler with HTML escaping on, and chart labels have matplotlib's mathtext markers
escaped so a ``$`` in a metric name is printed, not interpreted.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .register import TENSION_CODES
from .site import styled_table

__all__ = ["show_table", "plot_tension_matrix", "plot_targets", "TENSION_COLOURS", "plain"]

#: one colour per tension code (0 none .. 4 pulling against each other, neither paired)
TENSION_COLOURS = ("#f4f4f4", "#6baed6", "#74c476", "#fdae6b", "#de2d26")
_TEAM_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def plain(text) -> str:
    """Text for a matplotlib label, with ``$`` escaped so mathtext never interprets client text."""
    return str(text).replace("\\", "\\\\").replace("$", r"\$")


def show_table(df: pd.DataFrame, caption: str | None = None):
    """A Styler that shows ``df`` as escaped text, without the index, long text wrapped.

    Examples
    --------
    >>> html = show_table(pd.DataFrame({"Why": ["<b>x</b>"]})).to_html()
    >>> "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    True
    """
    styler = styled_table(df, na_rep="—", precision=3)
    styler = styler.set_properties(**{"text-align": "left", "white-space": "normal", "vertical-align": "top"})
    styler = styler.set_table_styles([{"selector": "th", "props": [("text-align", "left")]}])
    if caption:
        import html as _html
        styler = styler.set_caption(_html.escape(caption))
    return styler


def plot_tension_matrix(matrix: pd.DataFrame, title: str = "Which metrics pull against each other") -> Figure:
    """Heatmap of :func:`audit_lib.register.tension_matrix` codes with a legend."""
    n = max(len(matrix), 1)
    size = min(2.0 + 0.55 * n, 12.0)
    fig, ax = plt.subplots(figsize=(size + 3.2, size))
    values = matrix.to_numpy(dtype=float)
    cmap = ListedColormap(TENSION_COLOURS).with_extremes(bad="#ffffff")
    norm = BoundaryNorm(np.arange(-0.5, len(TENSION_COLOURS) + 0.5), cmap.N)
    ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="equal")
    ax.set_xticks(range(len(matrix.columns)), [plain(c) for c in matrix.columns], rotation=60, ha="right")
    ax.set_yticks(range(len(matrix.index)), [plain(i) for i in matrix.index])
    ax.set_xticks(np.arange(-0.5, len(matrix.columns)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(matrix.index)), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.set_title(title, loc="left")
    handles = [Patch(facecolor=TENSION_COLOURS[code], edgecolor="#999999", label=label)
               for code, label in TENSION_CODES.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=9)
    fig.tight_layout()
    return fig


def _unit_scale(unit: str, values: pd.Series) -> tuple[float, str]:
    """Divisor and axis label so values read naturally (hours for long times, % for shares)."""
    if unit == "share":
        return 0.01, "%"
    if unit == "seconds":
        top = float(np.nanmax(np.abs(values))) if len(values) and np.isfinite(values).any() else 0.0
        if top >= 3 * 3600:
            return 3600.0, "hours"
        if top >= 600:
            return 60.0, "minutes"
        return 1.0, "seconds"
    if unit == "points":
        return 1.0, "points"
    return 1.0, ""


def plot_targets(tracking: pd.DataFrame, ncols: int = 3) -> Figure:
    """Small multiples: one panel per metric, a weekly line per team, the centre, and the target.

    Parameters
    ----------
    tracking : :func:`audit_lib.register.target_tracking` output.
    ncols : panels per row.
    """
    metrics = list(dict.fromkeys(tracking["metric_id"])) if len(tracking) else []
    if not metrics:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "No metric could be computed from the data", ha="center", va="center")
        ax.set_axis_off()
        return fig
    ncols = max(1, min(ncols, len(metrics)))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.0 * nrows), squeeze=False, sharex=True)
    teams = sorted(s for s in tracking["series"].unique() if s != "Centre")
    colours = {t: _TEAM_COLOURS[i % len(_TEAM_COLOURS)] for i, t in enumerate(teams)}
    handles = {}
    for ax, metric in zip(axes.flat, metrics):
        sub = tracking[tracking["metric_id"] == metric]
        unit = sub["unit"].iloc[0]
        div, label = _unit_scale(unit, pd.concat([sub["value"], sub["target"]]))
        for series, grp in sub.groupby("series", sort=True):
            centre = series == "Centre"
            (line,) = ax.plot(grp["week"], grp["value"] / div, color="black" if centre else colours[series],
                              linewidth=2.4 if centre else 1.1, alpha=1.0 if centre else 0.8,
                              marker="o" if centre else None, markersize=3)
            handles.setdefault(series, line)
        target = sub["target"].iloc[0]
        if pd.notna(target):
            tl = ax.axhline(target / div, color="#d62728", linestyle="--", linewidth=1.4)
            handles.setdefault("Target", tl)
        better = sub["direction"].iloc[0]
        ax.set_title(plain(f"{metric}: {sub['name'].iloc[0]}") + f"\n({better} is better)", fontsize=10, loc="left")
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_axis_off()
    order = [t for t in teams if t in handles] + [k for k in ("Centre", "Target") if k in handles]
    fig.legend([handles[k] for k in order], [plain(k) for k in order], loc="upper center",
               ncol=min(len(order), 6), frameon=False, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig
