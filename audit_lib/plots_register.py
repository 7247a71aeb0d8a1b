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
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import ScaledTranslation, blended_transform_factory

from .chart_text import cut, plain, widest
from .register import TENSION_CODES
from .site import styled_table

__all__ = ["TENSION_COLOURS", "plain", "plot_targets", "plot_tension_matrix", "shorten", "show_table"]

#: one colour per tension code (0 none .. 4 pulling against each other, neither paired)
TENSION_COLOURS = ("#f4f4f4", "#6baed6", "#74c476", "#fdae6b", "#de2d26")
_TEAM_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")



def shorten(text, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut.

    Client text has no length limit; a chart sizes its margins from its labels, so a label is
    shortened rather than allowed to squeeze the plot or run off the figure.

    >>> shorten("First contact resolution", 12)
    'First conta…'
    >>> shorten("FCR", 12)
    'FCR'
    """
    text = str(text)
    return text if len(text) <= limit else text[:max(limit - 1, 1)].rstrip() + "…"


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
    """Heatmap of :func:`audit_lib.register.tension_matrix` codes with a legend.

    Cells are 0.55 in (smaller when there are many metrics); the margins are sized from the
    metric labels (long ones shortened with an ellipsis), so no label is clipped.
    """
    if matrix.empty:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No metric in the register to compare", ha="center", va="center")
        ax.set_title(title, loc="left")
        return fig
    n_rows, n_cols = matrix.shape
    n = max(n_rows, n_cols)
    cell = min(0.55, 10.0 / n)
    rows = [plain(shorten(i, 24)) for i in matrix.index]
    cols = [plain(shorten(c, 24)) for c in matrix.columns]
    legend_labels = list(TENSION_CODES.values())
    pad, gap = 0.12, 0.08
    left = pad + widest(rows, 10) + gap
    # x labels turn 60 degrees: they reach down sin(60) of their length, plus their own height
    bottom = pad + widest(cols, 10) * math.sin(math.radians(60)) + 0.2
    right = 0.25 + 0.6 + widest(legend_labels, 9) + pad     # legend: handle, gap, label
    top = 0.45
    width = left + max(n_cols, 1) * cell + right
    height = max(bottom + max(n_rows, 1) * cell + top, 1.2 + 5 * 0.25)
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, max(n_cols, 1) * cell / width,
                       max(n_rows, 1) * cell / height))
    values = matrix.to_numpy(dtype=float)
    cmap = ListedColormap(TENSION_COLOURS).with_extremes(bad="#ffffff")
    norm = BoundaryNorm(np.arange(-0.5, len(TENSION_COLOURS) + 0.5), cmap.N)
    ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto",
              extent=(-0.5, n_cols - 0.5, n_rows - 0.5, -0.5), interpolation="nearest")
    # white lines between the cells (two line collections instead of minor ticks and a grid)
    ax.hlines(np.arange(0.5, n_rows - 0.5), -0.5, n_cols - 0.5, color="white", linewidth=1.5)
    ax.vlines(np.arange(0.5, n_cols - 0.5), -0.5, n_rows - 0.5, color="white", linewidth=1.5)
    ax.set_xlim(-0.5, n_cols - 0.5)
    ax.set_ylim(n_rows - 0.5, -0.5)
    # labels as plain text artists next to the cells (cheaper to draw than tick labels)
    ax.set_xticks([])
    ax.set_yticks([])
    to_left = blended_transform_factory(ax.transAxes, ax.transData) + ScaledTranslation(
        -gap, 0, fig.dpi_scale_trans)
    for i, label in enumerate(rows):
        ax.text(0, i, label, transform=to_left, ha="right", va="center", fontsize=10)
    below = blended_transform_factory(ax.transData, ax.transAxes) + ScaledTranslation(
        0, -gap, fig.dpi_scale_trans)
    for j, label in enumerate(cols):
        ax.text(j, 0, label, transform=below, ha="right", va="top", rotation=60,
                rotation_mode="anchor", fontsize=10)
    fig.text(left / width, 1 - 0.12 / height, title, fontsize=12, va="top")
    handles = [Patch(facecolor=TENSION_COLOURS[code], edgecolor="#999999", label=label)
               for code, label in TENSION_CODES.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0 + 0.25 / (n_cols * cell), 1.0),
              frameon=False, fontsize=9, borderaxespad=0)
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

    Panels keep their own y scale (units differ) but show the same weeks. Each panel is kept
    cheap to draw: at most six y ticks; week ticks and labels (four at most) on the lowest panel
    of each column only, light vertical lines at those weeks in every panel; margins computed
    from the labels instead of by ``tight_layout``.

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
    teams = sorted(s for s in tracking["series"].unique() if s != "Centre")
    colours = {t: _TEAM_COLOURS[i % len(_TEAM_COLOURS)] for i, t in enumerate(teams)}
    # inches: panel size, title above each panel, legend rows on top, week labels below
    panel_w, panel_h, title_h, gap_h, bottom = 3.6, 2.0, 0.48, 0.12, 0.4
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * (panel_w + 0.8), 3 * nrows), squeeze=False)
    weeks = sorted(pd.to_datetime(tracking["week"].unique()))
    shown = weeks[::max(1, math.ceil(len(weeks) / 4))]
    span = (weeks[-1] - weeks[0]) or pd.Timedelta(days=7)
    xlim = (weeks[0] - 0.04 * span, weeks[-1] + 0.04 * span)
    handles = {}
    tick_labels = []
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
        title = cut(f"{metric}: {sub['name'].iloc[0]}", panel_w + 0.3, 10)
        ax.text(0, 1.04, plain(title) + f"\n({better} is better)",
                transform=ax.transAxes, fontsize=10, va="bottom", ha="left", linespacing=1.1)
        ax.set_ylabel(label, fontsize=9)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        ax.tick_params(labelsize=8)
        ticks = ax.get_yticks()
        lo, hi = ax.get_ylim()
        tick_labels += ax.yaxis.get_major_formatter().format_ticks([t for t in ticks if lo <= t <= hi])
    # the same weeks in every panel: light vertical lines at the labelled weeks everywhere, tick
    # marks and labels on the lowest panel of each column only (ticks are the costly part to draw)
    for i, ax in enumerate(axes.flat):
        if i >= len(metrics):
            ax.set_axis_off()
            continue
        ax.set_xlim(*xlim)
        ax.vlines(shown, 0, 1, transform=ax.get_xaxis_transform(), color="#e8e8e8", linewidth=0.8, zorder=0)
        if i + ncols >= len(metrics):
            ax.set_xticks(shown, [w.strftime("%Y-%m-%d") for w in shown])
        else:
            ax.set_xticks([])
    # y tick labels, tick marks and the unit label to the left of each panel
    gutter = 0.12 + 0.2 + widest(tick_labels, 8) + 0.1
    right = 0.45                                 # half a date label past the last week
    width = ncols * (gutter + panel_w) - 0.1 + right
    order = [t for t in teams if t in handles] + [k for k in ("Centre", "Target") if k in handles]
    legend_labels = [plain(shorten(k, 32)) for k in order]
    legend_cols = max(1, min(len(order), 6, int(width // (widest(legend_labels, 9) + 0.75))))
    top = 0.12 + 0.24 * math.ceil(len(order) / legend_cols)
    height = top + nrows * (title_h + panel_h) + (nrows - 1) * gap_h + bottom
    fig.set_size_inches(width, height)
    fig.subplots_adjust(left=gutter / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - (top + title_h) / height, wspace=gutter / panel_w,
                        hspace=(title_h + gap_h) / panel_h)
    fig.legend([handles[k] for k in order], legend_labels, loc="upper center",
               ncol=legend_cols, frameon=False, bbox_to_anchor=(0.5, 1 - 0.04 / height), fontsize=9,
               borderaxespad=0)
    return fig
