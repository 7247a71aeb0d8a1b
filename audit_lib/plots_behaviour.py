"""Charts of the behaviour lens (matplotlib only).

Agents are labelled with what the caller passes (pseudonyms in shareable output; the
tables built by :mod:`audit_lib.behaviour` already carry them). Client text is drawn as
plain text (``$`` escaped so matplotlib never reads it as mathematics).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .bunching import ExcessMassResult

__all__ = ["bunching_chart", "bunching_panels", "funnel_chart", "joint_chart", "backlog_chart"]

_ACTUAL, _CF, _FLAG, _GREY = "#4c72b0", "#c44e52", "#dd8452", "#8c8c8c"


def _plain(text) -> str:
    return str(text).replace("$", r"\$")


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
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    if funnel.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, "No agent with enough calls", ha="center", va="center")
        return fig
    from scipy import stats
    # limits around the pooled rate of the agents not flagged: a few extreme agents would
    # otherwise lift the centre line and the limits for everyone
    base = funnel[~funnel["flagged"]] if (~funnel["flagged"]).any() else funnel
    p0 = float(base["short"].sum() / max(base["n"].sum(), 1))
    n = np.linspace(max(funnel["n"].min() * 0.8, 10), funnel["n"].max() * 1.1, 200)
    for level, style in ((0.95, ":"), (0.998, "--")):
        up = stats.binom.ppf((1 + level) / 2, np.rint(n), p0) / np.rint(n)
        ax.plot(n, up, color=_GREY, ls=style, lw=1.2, label=f"{level:.1%} limit")
    ax.axhline(p0, color=_GREY, lw=1, label="rate of agents not flagged")
    ok = funnel[~funnel["flagged"]]
    bad = funnel[funnel["flagged"]]
    ax.scatter(ok["n"], ok["share"], s=18, color=_ACTUAL, label="agent")
    ax.scatter(bad["n"], bad["share"], s=30, color=_CF, label="above 99.8 % limit")
    for _, r in bad.iterrows():
        ax.annotate(_plain(r["agent"]), (r["n"], r["share"]), fontsize=8, xytext=(4, 2),
                    textcoords="offset points")
    ax.set_xlabel("answered calls")
    ax.set_ylabel("share of very short calls")
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda y, _: f"{100 * y:.1f} %"))
    ax.set_title(_plain(title), fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def joint_chart(table: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, title: str = ""):
    """Scatter of two per-agent measures; flagged agents labelled (displacement, survey selection).

    ``table`` needs columns ``agent``, ``flagged``, ``x`` and ``y``.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ok, bad = table[~table["flagged"]], table[table["flagged"]]
    ax.scatter(ok[x], ok[y], s=18, color=_ACTUAL, label="agent")
    ax.scatter(bad[x], bad[y], s=30, color=_CF, label="flagged")
    for _, r in bad.iterrows():
        ax.annotate(_plain(r["agent"]), (r[x], r[y]), fontsize=8, xytext=(4, 2), textcoords="offset points")
    ax.set_xlabel(_plain(xlabel))
    ax.set_ylabel(_plain(ylabel))
    ax.set_title(_plain(title), fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def backlog_chart(backlog: pd.DataFrame, title: str = "Call-back promises"):
    """Weekly promises kept and not kept, and the running count of unkept promises."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    weeks = pd.to_datetime(backlog["week"])
    ax.bar(weeks, backlog["kept"], width=5, color=_ACTUAL, label="kept")
    ax.bar(weeks, backlog["unkept"], width=5, bottom=backlog["kept"], color=_CF, label="not kept")
    ax2 = ax.twinx()
    ax2.plot(weeks, backlog["open_backlog"], color="black", marker="o", lw=1.5, label="unkept so far")
    ax.set_ylabel("promises per week")
    ax2.set_ylabel("unkept promises, cumulative")
    ax.set_title(_plain(title), fontsize=10)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, frameon=False, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


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
    teams = sorted(histograms["team"].dropna().unique()) if "team" in histograms else []
    ncols = 1 + len(teams)
    fig, axes = plt.subplots(max(len(targets), 1), ncols, figsize=(3.2 * ncols, 2.8 * max(len(targets), 1)),
                             squeeze=False)
    if not targets:
        axes[0, 0].axis("off")
        axes[0, 0].text(0.5, 0.5, "No per-contact target to examine", ha="center", va="center")
        return fig
    for i, (measure, thr, mid) in enumerate(targets):
        for j, team in enumerate([None] + teams):
            ax = axes[i, j]
            res = bh.bunching_profile(histograms, measure, thr, settings, team=team)
            if res is None:
                ax.axis("off")
                continue
            b = res.bins
            ax.bar(b["lower"], b["count"], width=b["upper"] - b["lower"], align="edge", color=_ACTUAL, alpha=0.75)
            ax.plot(b["centre"], b["counterfactual"], color=_CF, lw=1.8)
            ex = b[b["excluded"]]
            ax.axvspan(ex["lower"].min(), ex["upper"].max(), color=_FLAG, alpha=0.2)
            ax.axvline(thr, color="black", ls="--", lw=1)
            lo, hi = res.b_ci
            ax.set_title(_plain(f"{mid} · {team or 'all teams'}\nb = {res.b:.2f} [{lo:.2f}, {hi:.2f}]"), fontsize=9)
            ax.tick_params(labelsize=7)
            ax.spines[["top", "right"]].set_visible(False)
            if j == 0:
                ax.set_ylabel(f"contacts\n({measure.replace('_', ' ')})", fontsize=8)
    fig.tight_layout()
    return fig
