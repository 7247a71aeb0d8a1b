"""Charts of the behaviour lens (matplotlib only).

Agents are labelled with what the caller passes (pseudonyms in shareable output; the
tables built by :mod:`audit_lib.behaviour` already carry them). Client text is drawn as
plain text (``$`` escaped so matplotlib never reads it as mathematics).

Drawing cost: on a slow machine every axes (its ticks above all) and every glyph of text
costs time, and ``tight_layout`` draws the figure once more to measure it. So the charts cap
their tick counts, draw histograms as one outline instead of a patch per bin, and set their
margins from the measured width of the labels that need them (caller text wrapped, or cut
with an ellipsis, to a known width).
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from . import distributions as dist
from .bunching import ExcessMassResult
from .chart_text import LINE as _LINE
from .chart_text import STEPS as _STEPS
from .chart_text import TICK as _TICK
from .chart_text import fit as _fit
from .chart_text import inner_ticks as _inner_ticks
from .chart_text import legend_columns as _legend_columns
from .chart_text import plain as _plain
from .chart_text import text_width as _width
from .chart_text import tick_width as _tick_width

__all__ = ["bunching_chart", "bunching_panels", "funnel_chart", "joint_chart", "backlog_chart"]

_ACTUAL, _CF, _FLAG, _GREY = "#4c72b0", "#c44e52", "#dd8452", "#8c8c8c"


def _lines(text: str) -> int:
    return str(text).count("\n") + 1 if text else 0


def _single(figsize, xlabel: str, ylabel: str):
    """A figure with one axes and its axis labels fitted; title and margins are set by :func:`_place`."""
    fig, ax = plt.subplots(figsize=figsize)
    w, h = figsize
    ax.set_xlabel(_plain(_fit(xlabel, w - 1.6, 10)))
    ax.set_ylabel(_plain(_fit(ylabel, h - 1.2, 10)))
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _place(fig, ax, title: str, twin=None, x_lines: int = 1):
    """The title, wrapped to fit over the axes, and margins from the measured tick labels, axis
    labels and title (instead of tight_layout)."""
    w, h = fig.get_size_inches()
    left = _tick_width(ax.yaxis, 10) + _TICK + _lines(ax.get_ylabel()) * 10 * _LINE + 0.12
    right = 0.25
    if twin is not None:
        right = _tick_width(twin.yaxis, 10) + _TICK + _lines(twin.get_ylabel()) * 10 * _LINE + 0.12
    bottom = x_lines * 10 * _LINE + _TICK + _lines(ax.get_xlabel()) * 10 * _LINE + 0.12
    centre = left + (w - left - right) / 2                 # the title is centred over the axes
    t = _fit(title, 2 * min(centre, w - centre) - 0.4, 10)
    ax.set_title(_plain(t), fontsize=10, y=1)   # y given: no automatic placement pass over the axes
    top = _lines(t) * 10 * _LINE + 0.2
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h)


def _label_points(ax, points, size: float = 8):
    """Annotate ``(x, y, label)`` points; a label that would overlap one already placed moves
    down (with a thin leader line), and one that would leave the axes on the right goes left.

    Call after the axes' limits and position are final.
    """
    if not points:
        return
    ax.get_xlim(), ax.get_ylim()                                  # settle the limits (autoscaling is lazy)
    scale = 72 / ax.figure.dpi                                   # display pixels to points
    box = ax.get_position()
    fw, _ = ax.figure.get_size_inches()
    right_edge = (box.x1 * fw + 0.2) * 72
    height = size * 1.25
    placed = []
    xy = ax.transData.transform([(x, y) for x, y, _ in points]) * scale
    for (px, py), (x, y, label) in sorted(zip(xy.tolist(), points), key=lambda t: -t[0][1]):
        w = _width(label, size) * 72
        x0 = px + 4
        if x0 + w > right_edge:
            x0 = px - 4 - w
        y0 = py + 2
        moved = True
        while moved:
            moved = False
            for a0, a1, b0, b1 in placed:
                if x0 < a1 and a0 < x0 + w and y0 < b1 and b0 < y0 + height:
                    y0, moved = b0 - height, True
        placed.append((x0, x0 + w, y0, y0 + height))
        dx, dy = (4 if x0 >= px else -4), y0 - py
        ax.annotate(_plain(label), (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=size,
                    ha="left" if dx > 0 else "right", va="bottom",
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": _GREY, "shrinkA": 0, "shrinkB": 2}
                    if dy < -2 else None)


def bunching_chart(result: ExcessMassResult | None, target: float, title: str = "", unit: str = "s"):
    """Bin counts around a target with the fitted counterfactual and the excluded window.

    Bars are the contacts per bin (round-number heaps removed and rescaled, as fitted); the
    red line is the counterfactual (what the distribution would look like without the
    target); the shaded band is the window just under the target where excess is measured.
    """
    fig, ax = plt.subplots(figsize=(8, 3.6))
    if result is None:
        ax.axis("off")
        ax.text(0.5, 0.5, "Not enough contacts around the target", ha="center", va="center")
        return fig
    b = result.bins
    ax.bar(b["lower"], b["count"], width=b["upper"] - b["lower"], align="edge", color=_ACTUAL, alpha=0.75,
           label="contacts per bin")
    ax.plot(b["centre"], b["counterfactual"], color=_CF, lw=2, label="counterfactual (no target)")
    ex = b[b["excluded"]]
    if len(ex):
        ax.axvspan(ex["lower"].min(), ex["upper"].max(), color=_FLAG, alpha=0.18, label="window just under target")
    ax.axvline(target, color="black", ls="--", lw=1)
    ax.text(target, ax.get_ylim()[1] * 0.95, f" target {target:g} {unit}", va="top", fontsize=9)
    lo, hi = result.b_ci
    ci = f" [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else ""
    ax.set_title(_plain(f"{title}  excess b = {result.b:.2f}{ci}, {result.B:.0f} extra contacts").strip(),
                 fontsize=10)
    ax.set_xlabel(f"duration ({unit})")
    ax.set_ylabel("contacts")
    ax.legend(fontsize=8, loc="upper right", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def funnel_chart(funnel: pd.DataFrame, title: str = "Very short calls per agent"):
    """Funnel plot: each agent's share against their number of calls, with 95 % and 99.8 % limits.

    ``funnel`` is :func:`audit_lib.behaviour.short_contact_funnel` (columns ``agent``, ``n``,
    ``short``, ``share``, ``flagged``). The limits are drawn around the pooled rate of the
    agents not flagged (each agent's own test uses the rate of all other agents).
    """
    if funnel.empty:
        fig, ax = plt.subplots(figsize=(7.5, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "No agent with enough calls", ha="center", va="center")
        return fig
    fig, ax = _single((7.5, 4.2), "answered calls", "share of very short calls")
    # limits around the pooled rate of the agents not flagged: a few extreme agents would
    # otherwise lift the centre line and the limits for everyone
    base = funnel[~funnel["flagged"]] if (~funnel["flagged"]).any() else funnel
    p0 = float(base["short"].sum() / max(base["n"].sum(), 1))
    n = np.linspace(max(funnel["n"].min() * 0.8, 10), funnel["n"].max() * 1.1, 200)
    for level, style in ((0.95, ":"), (0.998, "--")):
        up = dist.binom_ppf((1 + level) / 2, np.rint(n), p0) / np.rint(n)
        ax.plot(n, up, color=_GREY, ls=style, lw=1.2, label=f"{level:.1%} limit")
    ax.axhline(p0, color=_GREY, lw=1, label="rate of agents not flagged")
    ok = funnel[~funnel["flagged"]]
    bad = funnel[funnel["flagged"]]
    ax.scatter(ok["n"], ok["share"], s=18, color=_ACTUAL, label="agent")
    ax.scatter(bad["n"], bad["share"], s=30, color=_CF, label="above 99.8 % limit")
    _inner_ticks(ax.xaxis, MaxNLocator(nbins=6, steps=_STEPS))
    _inner_ticks(ax.yaxis, MaxNLocator(nbins=6, steps=_STEPS))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda y, _: f"{100 * y:.1f} %"))
    ax.legend(fontsize=8, frameon=False)
    _place(fig, ax, title)
    _label_points(ax, list(zip(bad["n"], bad["share"], bad["agent"].astype(str))))
    return fig


def joint_chart(table: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, title: str = ""):
    """Scatter of two per-agent measures; flagged agents labelled (displacement, survey selection).

    ``table`` needs columns ``agent``, ``flagged``, ``x`` and ``y``.
    """
    fig, ax = _single((6.5, 4.2), xlabel, ylabel)
    ok, bad = table[~table["flagged"]], table[table["flagged"]]
    ax.scatter(ok[x], ok[y], s=18, color=_ACTUAL, label="agent")
    ax.scatter(bad[x], bad[y], s=30, color=_CF, label="flagged")
    _inner_ticks(ax.xaxis, MaxNLocator(nbins=6, steps=_STEPS))
    _inner_ticks(ax.yaxis, MaxNLocator(nbins=6, steps=_STEPS))
    ax.legend(fontsize=8, frameon=False)
    _place(fig, ax, title)
    _label_points(ax, list(zip(bad[x], bad[y], bad["agent"].astype(str))))
    return fig


def backlog_chart(backlog: pd.DataFrame, title: str = "Call-back promises"):
    """Weekly promises kept and not kept, and the running count of unkept promises."""
    fig, ax = _single((8, 3.6), "", "promises per week")
    ax.spines["right"].set_visible(True)
    weeks = pd.to_datetime(backlog["week"])
    ax.bar(weeks, backlog["kept"], width=5, color=_ACTUAL, label="kept")
    ax.bar(weeks, backlog["unkept"], width=5, bottom=backlog["kept"], color=_CF, label="not kept")
    ax2 = ax.twinx()
    ax2.plot(weeks, backlog["open_backlog"], color="black", marker="o", lw=1.5, label="unkept so far")
    ax2.set_ylabel("unkept promises, cumulative")
    ax2.spines["top"].set_visible(False)
    total = (backlog["kept"] + backlog["unkept"]).max()
    if np.isfinite(total) and total > 0:
        ax.set_ylim(0, total * 1.3)                   # headroom: the legend sits above the bars
    for a in (ax, ax2):
        _inner_ticks(a.yaxis, MaxNLocator(nbins=5, steps=_STEPS, min_n_ticks=3))
    dates = _inner_ticks(ax.xaxis, AutoDateLocator(minticks=3, maxticks=8))
    ax.xaxis.set_major_formatter(ConciseDateFormatter(dates))
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, frameon=False, loc="upper left")
    _place(fig, ax, title, twin=ax2, x_lines=2)         # dates, and the year beneath them
    return fig


def _stairs(ax, bins: pd.DataFrame, **kw):
    """Bin counts as one filled outline (one artist rather than a bar per bin)."""
    b = bins.sort_values("lower")
    lo, up, c = (b[k].to_numpy(float) for k in ("lower", "upper", "count"))
    if len(lo) > 1 and not np.allclose(lo[1:], up[:-1]):
        edges = np.unique(np.concatenate([lo, up]))          # bins with gaps between them
        values = np.zeros(len(edges) - 1)
        values[np.searchsorted(edges, lo)] = c
    else:
        edges, values = np.append(lo, up[-1:]), c
    ax.stairs(values, edges, fill=True, **kw)


def bunching_panels(histograms: pd.DataFrame, register: pd.DataFrame, library, settings=None, thresholds=None):
    """Small multiples around each per-contact target: centre and every team, counterfactual drawn in.

    One row per distinct (measure, threshold) among register metrics whose KPI lists the
    ``threshold_bunching`` check; one panel for the centre and one per team.
    """
    from . import behaviour as bh
    from .columns import Register as R
    from .settings import BehaviourSettings, Thresholds
    settings = settings or BehaviourSettings()
    thresholds = thresholds or Thresholds()
    targets = []
    for _, m in register.sort_values(R.METRIC_ID).iterrows():
        kpi = str(m.get(R.KPI, "")).strip().lower()
        if library is None or kpi not in library:
            continue
        target = pd.to_numeric(pd.Series([m.get(R.TARGET)]), errors="coerce").iloc[0]
        for u in library.get(kpi).unintended:
            if u.check != "threshold_bunching":
                continue
            thr = target if (u.threshold or "target") == "target" else float(getattr(thresholds, u.threshold))
            key = (u.measure or "handle_seconds", float(thr) if np.isfinite(thr) else None)
            if key[1] and key not in [t[:2] for t in targets]:
                targets.append(key + (str(m[R.METRIC_ID]),))
    if not targets:
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "No per-contact target to examine", ha="center", va="center")
        return fig
    teams = sorted(histograms["team"].dropna().unique()) if "team" in histograms else []
    nrows, ncols = len(targets), 1 + len(teams)
    pw, ph = max(1.6, min(2.1, 9.6 / ncols)), 1.75
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * pw + 1.5, nrows * ph + 1.5), squeeze=False)
    ylabels, left, wgap = [], 0.0, 0.0
    for i, (measure, thr, mid) in enumerate(targets):
        h = histograms[histograms["measure"] == measure]     # sliced once, not once per team
        ylabels.append(_fit(f"{mid}: contacts per bin", ph, 8, lines=1) + "\n"
                       + _fit(f"({measure.replace('_', ' ')})", ph, 8, lines=1))
        for j, team in enumerate([None] + teams):
            ax = axes[i, j]
            res = bh.bunching_profile(h, measure, thr, settings, team=team)
            if res is None:
                ax.axis("off")
                continue
            b = res.bins
            _stairs(ax, b, color=_ACTUAL, alpha=0.75, lw=0)
            ax.plot(b["centre"], b["counterfactual"], color=_CF, lw=1.8)
            ex = b[b["excluded"]]
            if len(ex):
                ax.axvspan(ex["lower"].min(), ex["upper"].max(), color=_FLAG, alpha=0.2, lw=0)
            ax.axvline(thr, color="black", ls="--", lw=1)
            ax.set_ylim(bottom=0)
            lo, hi = res.b_ci
            ci = f" [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else ""
            ax.set_title(_plain(f"{_fit(team or 'all teams', pw - 0.1, 9, lines=1)}\nb = {res.b:.2f}{ci}"),
                         fontsize=9, y=1)
            _inner_ticks(ax.xaxis, MaxNLocator(nbins=3, steps=_STEPS, min_n_ticks=3))
            _inner_ticks(ax.yaxis, MaxNLocator(nbins=3, steps=_STEPS, min_n_ticks=3))
            ax.tick_params(labelsize=7)
            ax.spines[["top", "right"]].set_visible(False)
            tw = _tick_width(ax.yaxis, 7)
            if j == 0:
                left = max(left, tw)
            else:
                wgap = max(wgap, tw)
    for i, label in enumerate(ylabels):
        axes[i, 0].set_ylabel(_plain(label), fontsize=8)
    legend = [Patch(color=_ACTUAL, alpha=0.75, label="contacts per bin"),
              plt.Line2D([], [], color=_CF, lw=1.8, label="counterfactual (no target)"),
              Patch(color=_FLAG, alpha=0.2, label="window just under the target"),
              plt.Line2D([], [], color="black", ls="--", lw=1, label="target"),
              Patch(color="none", label="b: excess mass [95% interval]")]
    head, bottom = 2 * 9 * _LINE + 0.1, 7 * _LINE + _TICK + 0.15
    left += _TICK + 2 * 8 * _LINE + 0.1
    wgap += _TICK + 0.2
    width = left + ncols * pw + (ncols - 1) * wgap + 0.15
    legend_cols = _legend_columns([h.get_label() for h in legend], 8, width - 0.15)
    top = math.ceil(len(legend) / legend_cols) * 12 / 72 + 0.25
    height = top + head + nrows * ph + (nrows - 1) * (head + bottom) + bottom
    fig.set_size_inches(width, height)
    fig.subplots_adjust(left=left / width, right=1 - 0.15 / width, bottom=bottom / height,
                        top=1 - (top + head) / height, wspace=wgap / pw if ncols > 1 else 0,
                        hspace=(head + bottom) / ph if nrows > 1 else 0)
    fig.legend(handles=legend, loc="upper left", bbox_to_anchor=(0, 1), ncol=legend_cols, fontsize=8,
               frameon=False, borderaxespad=0.3, handlelength=1.5, columnspacing=1.2)
    return fig
