"""Behaviour lens: what each metric makes people do, from the literature and the client's data.

Every detector is a pure function over the prepared tables (docs/architecture.md) and returns
Findings rows (lens ``behaviour``) with the numbers behind them. :func:`assess` runs, for each
register metric, the detectors its KPI lists in the KPI library (``unintended[].check``) and
adds one ``catalogue_risk`` info row per known unintended behaviour. A detector whose inputs
lack a column reports ``not_assessable`` with "not assessable — needs column X".

Controlling false alarms
    A detector looks at many agents (about 60) or teams at once, so each uses a family-wise
    rule: Bonferroni over the scopes tested (``BehaviourSettings.alpha``, default 5 %), plus a
    minimum effect size so that a statistically clear but trivial difference is not flagged.
    The funnel plot for short contacts uses exact binomial 99.8 % limits (one-sided 0.1 %
    above); with 60 agents that alone would give about 0.06 false flags per audit, so a flag
    also needs the Bonferroni level ``alpha / agents`` and a share at least
    ``short_min_ratio`` times the peers' rate.
    ``benchmarks/bench_behaviour.py`` measures the false-positive rate on the null demo.

Innocent explanations are part of every flag's ``detail``: a flag says where to look, not
who is gaming.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from . import bunching as bn
from . import distributions as dist
from .columns import Contact as C
from .columns import Derived as D
from .columns import Finding as F
from .columns import Prepared as P
from .columns import Register as R
from .findings import finding, make_findings
from .settings import BehaviourSettings, Thresholds

__all__ = [
    "LENS", "CHECKS", "NEEDS", "threshold_bunching", "bunching_profile", "short_contacts", "funnel_limits",
    "short_contact_funnel", "displacement", "displacement_table", "selection_table", "fcr_integrity", "callback_unkept", "callback_backlog", "hollow_first_reply",
    "end_of_period_surge", "survey_selection", "catalogue_risks", "assess", "audit_findings",
    "bunching_settings", "risk_overview", "flag_table", "flag_counts", "check_table",
]

LENS = "behaviour"
CHECKS = ("threshold_bunching", "short_contacts", "displacement", "fcr_integrity", "callback_unkept",
          "hollow_first_reply", "end_of_period_surge", "survey_selection")

#: contact columns each detector needs (besides the required ones); named in not_assessable rows
NEEDS = {
    "short_contacts": (C.HANDLE_SECONDS,),
    "displacement": (C.TRANSFERRED, C.CUSTOMER_ID),
    "fcr_integrity": (C.RESOLVED_FIRST_CONTACT, C.CUSTOMER_ID),
    "callback_unkept": (C.CALLBACK_PROMISED, C.CALLBACK_COMPLETED),
    "hollow_first_reply": (C.FIRST_REPLY_SECONDS, C.RESOLUTION_SECONDS),
    "survey_selection": (C.CSAT,),
}
# the channel a per-contact measure is judged on (AHT and queue times are voice measures)
_MEASURE_CHANNEL = {C.HANDLE_SECONDS: "voice", C.QUEUE_SECONDS: "voice"}
_DASH = "\u2014"

Pseudonym = Callable[[str], str]


# ----------------------------------------------------------------------------- helpers
def _na(metric_id: str, check: str, column: str, scope: str = "overall") -> dict:
    return finding(LENS, metric_id, check, "not_assessable", scope=scope,
                   detail=f"not assessable {_DASH} needs column {column}")


def _missing(df: pd.DataFrame | None, columns: Iterable[str]) -> str | None:
    """First column absent from ``df`` or entirely empty (None when all are usable)."""
    for col in columns:
        if df is None or col not in df.columns or df[col].notna().sum() == 0:
            return col
    return None


def _unavailable(available: set[str] | None, check: str) -> str | None:
    if available is None:
        return None
    for col in NEEDS.get(check, ()):
        if col not in available:
            return col
    return None


def _ident(x: str) -> str:
    return str(x)


def _bonferroni_z(alpha: float, m: int, two_sided: bool = False) -> float:
    m = max(int(m), 1)
    return float(dist.norm_isf(alpha / m / (2 if two_sided else 1)))


def _fmt_pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f} %"


def _wilson(k: float, n: float, z: float) -> tuple[float, float]:
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (centre - half, centre + half)


def _newcombe(k1, n1, k2, n2, z) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2 (method 10, Newcombe 1998)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = _wilson(k1, n1, z)
    l2, u2 = _wilson(k2, n2, z)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def _robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD): standard scores that a few outliers cannot mask."""
    med = np.nanmedian(x)
    mad = 1.4826 * np.nanmedian(np.abs(x - med))
    if not np.isfinite(mad) or mad <= 0:
        sd = np.nanstd(x)
        mad = sd if sd > 0 else 1.0
    return (x - med) / mad


def _tau2(y: np.ndarray, v: np.ndarray) -> float:
    """DerSimonian-Laird moment estimate of the between-unit variance of ``y`` (within variances ``v``)."""
    if len(y) < 3:
        return 0.0
    w = 1.0 / v
    mu = np.sum(w * y) / np.sum(w)
    q = np.sum(w * (y - mu) ** 2)
    denom = np.sum(w) - np.sum(w ** 2) / np.sum(w)
    return float(max(0.0, (q - (len(y) - 1)) / denom)) if denom > 0 else 0.0


def bunching_settings(threshold: float, resolution: float, settings: BehaviourSettings) -> dict | None:
    """Bin width, window and fit settings for bunching just under ``threshold``.

    The bin width is ``threshold / 24`` rounded to the histogram resolution (15 s at 360 s);
    the excluded window is ``bunching_excluded_bins`` bins just under the threshold, the fit
    uses ``bunching_bins`` bins above and down to half the threshold below (at most
    ``bunching_bins``).
    Returns None when fewer than 6 fitted bins would remain below the window.
    """
    w = settings.bunching_binwidth or max(resolution, round(threshold / 24.0 / resolution) * resolution)
    excl = settings.bunching_excluded_bins
    # the fit reaches down to half the threshold at most: far below it durations are another
    # regime (calls answered at once, auto-closed contacts) that a polynomial cannot bridge
    left = min(settings.bunching_bins, int(math.floor(threshold / 2.0 / w)))
    if left - excl < 6:
        return None
    return dict(threshold=threshold - w / 2.0, binwidth=w, bins_left=left, bins_right=settings.bunching_bins,
                poly=settings.bunching_poly, excl_left=excl - 1, resolution=resolution,
                heap_period=settings.bunching_heap_seconds or None)


def _hist_slice(histograms: pd.DataFrame, measure: str) -> pd.DataFrame:
    h = histograms[histograms["measure"] == measure]
    channel = _MEASURE_CHANNEL.get(measure)
    if channel and C.CHANNEL in h and (h[C.CHANNEL] == channel).any():
        h = h[h[C.CHANNEL] == channel]
    return h


def _profile(values: np.ndarray, counts: np.ndarray, threshold: float, resolution: float,
             settings: BehaviourSettings, n_boot: int | None = None,
             boot_min_n: int = 0) -> bn.ExcessMassResult | None:
    """Excess mass just under ``threshold`` of one scope's histogram (cell lower edges, counts).

    ``boot_min_n``: no bootstrap for a window with fewer contacts (see ``bn.excess_mass_hist``).
    """
    cfg = bunching_settings(float(threshold), resolution, settings)
    if cfg is None:
        return None
    return bn.excess_mass_hist(values, counts, cfg["threshold"], cfg["binwidth"],
                               cfg["bins_left"], cfg["bins_right"], cfg["poly"], resolution=resolution,
                               heap_period=cfg["heap_period"] if resolution < (cfg["heap_period"] or 0) else None,
                               excl_left=cfg["excl_left"], n_boot=settings.bootstrap if n_boot is None else n_boot,
                               seed=settings.seed, alpha=settings.alpha, boot_min_n=boot_min_n)


def bunching_profile(histograms: pd.DataFrame, measure: str, threshold: float,
                     settings: BehaviourSettings | None = None, *, team: str | None = None,
                     agent_id: str | None = None, n_boot: int | None = None) -> bn.ExcessMassResult | None:
    """Excess mass of ``measure`` just under ``threshold`` for the centre, a team or an agent."""
    settings = settings or BehaviourSettings()
    h = _hist_slice(histograms, measure)
    if team is not None:
        h = h[h[C.TEAM] == team]
    if agent_id is not None:
        h = h[h[C.AGENT_ID] == agent_id]
    if h.empty:
        return None
    resolution = float(h["resolution"].iloc[0]) if "resolution" in h else 1.0
    g = h.groupby("value", sort=True)["count"].sum()
    return _profile(g.index.to_numpy(float), g.to_numpy(float), threshold, resolution, settings, n_boot)


def _counts_by(h: pd.DataFrame, key: str) -> dict:
    """``{key value: (cell values, counts summed over the other columns)}`` in one grouping.

    The same sums as grouping each key value's rows by ``value`` on its own, without
    filtering the whole histogram once per team or agent.
    """
    g = h.groupby([key, "value"], sort=True)["count"].sum()
    return {k: (part.index.get_level_values("value").to_numpy(float), part.to_numpy(float))
            for k, part in g.groupby(level=0, sort=False)}


def _scope_results(h: pd.DataFrame, measure: str, threshold: float, settings: BehaviourSettings,
                   pseudonym: Pseudonym) -> list[tuple[str, str, bn.ExcessMassResult]]:
    """``(family, scope, result)`` for the centre, each team and each agent with enough contacts."""
    resolution = float(h["resolution"].iloc[0]) if "resolution" in h else 1.0
    g = h.groupby("value", sort=True)["count"].sum()
    scopes = [("overall", "overall", (g.index.to_numpy(float), g.to_numpy(float)))]
    empty = (np.empty(0), np.empty(0))
    for family, key, shown in (("team", C.TEAM, lambda t: f"team:{t}"),
                               ("agent", C.AGENT_ID, lambda a: f"agent:{pseudonym(a)}")):
        if key in h:
            counts = _counts_by(h, key)
            scopes += [(family, shown(k), counts.get(k, empty)) for k in sorted(h[key].dropna().unique())]
    results = []
    for family, scope, (values, counts) in scopes:
        # scopes below the minimum count are dropped: spare them the bootstrap
        res = _profile(values, counts, threshold, resolution, settings, boot_min_n=settings.bunching_min_count)
        if res is None or res.n < settings.bunching_min_count:
            continue
        results.append((family, scope, res))
    return results


def threshold_bunching(histograms: pd.DataFrame | None, metric_id: str, measure: str, threshold: float | None, *,
                       settings: BehaviourSettings | None = None, pseudonym: Pseudonym | None = None,
                       threshold_name: str = "target") -> list[dict]:
    """Excess mass just under a per-contact threshold: overall, per team, per agent.

    Flag (medium; high when ``b`` is twice the minimum) when ``b`` ≥ ``bunching_min_b``
    (``bunching_min_b_agent`` for a single agent) and ``B / se(B)`` (bootstrap standard
    error) exceeds the Bonferroni critical value of its family (teams, agents).
    ``value`` = b (excess mass over the counterfactual per excluded bin), ``ci`` = bootstrap
    interval of b, ``n`` = contacts in the analysis window; evidence gives B, uncorrected b
    and the window.
    """
    return _threshold_bunching(histograms, metric_id, measure, threshold, settings=settings, pseudonym=pseudonym,
                               threshold_name=threshold_name, cache={})


def _threshold_bunching(histograms: pd.DataFrame | None, metric_id: str, measure: str, threshold: float | None, *,
                        settings: BehaviourSettings | None, pseudonym: Pseudonym | None, threshold_name: str,
                        cache: dict) -> list[dict]:
    """:func:`threshold_bunching`, reusing the scope estimates in ``cache`` (keyed by measure, threshold).

    ``cache`` must only be shared between calls with the same histograms, settings and pseudonym.
    """
    settings = settings or BehaviourSettings()
    pseudonym = pseudonym or _ident
    check = "threshold_bunching"
    miss = _missing(histograms, ("measure", "value", "count"))
    if miss:
        return [_na(metric_id, check, miss)]
    if threshold is None or not np.isfinite(threshold) or threshold <= 0:
        return [finding(LENS, metric_id, check, "not_assessable",
                        detail=f"not assessable {_DASH} needs a positive numeric {threshold_name}")]
    h = _hist_slice(histograms, measure)
    if h.empty:
        return [_na(metric_id, check, measure)]
    cfg = bunching_settings(float(threshold), float(h["resolution"].iloc[0]) if "resolution" in h else 1.0,
                            settings)
    if cfg is None:
        return [finding(LENS, metric_id, check, "not_assessable",
                        detail=f"not assessable {_DASH} the {threshold_name} {threshold:g} is too small for a "
                               f"bunching window at this histogram resolution")]
    # the metrics sharing a measure and threshold (e.g. AHT and team AHT) share the estimates
    key = (measure, float(threshold))
    if key not in cache:
        cache[key] = _scope_results(h, measure, threshold, settings, pseudonym)
    results = cache[key]
    sizes = {f: sum(1 for r in results if r[0] == f) for f in ("overall", "team", "agent")}
    rows = []
    lo_edge, hi_edge = threshold - settings.bunching_excluded_bins * cfg["binwidth"], threshold
    for family, scope, res in results:
        zcrit = _bonferroni_z(settings.alpha, sizes[family])
        zval = res.B / res.B_se if res.B_se and np.isfinite(res.B_se) and res.B_se > 0 else math.nan
        # one agent's histogram is small and the agent's own pace bends the curve: a larger excess is needed
        min_b = settings.bunching_min_b_agent if family == "agent" else settings.bunching_min_b
        flagged = res.b >= min_b and np.isfinite(zval) and zval >= zcrit
        sev = ("high" if res.b >= 2 * min_b else "medium") if flagged else "ok"
        excess_share = res.B / res.n if res.n else math.nan
        detail = (f"{res.B:,.0f} more contacts than expected ended in {lo_edge:g}{_DASH}{hi_edge:g} s, just under the "
                  f"{threshold_name} of {threshold:g} s ({_fmt_pct(excess_share)} of the {res.n:,} contacts around "
                  f"it).")
        if flagged:
            detail += (" Contacts are being closed to beat the line. Innocent explanations: a scripted process "
                       "that genuinely takes just under this time, or a system time-out; check call recordings "
                       "of contacts in the window.")
        rows.append(finding(
            LENS, metric_id, check, sev, scope=scope, label=measure, value=res.b,
            threshold=min_b, ci_low=res.b_ci[0], ci_high=res.b_ci[1], n=res.n,
            evidence=(f"B={res.B:.1f}; b={res.b:.3f}; b_uncorrected={res.b_uncorrected:.3f}; "
                      f"z={zval:.2f} vs {zcrit:.2f}; window=[{lo_edge:g},{hi_edge:g}); "
                      f"binwidth={cfg['binwidth']:g}; poly={cfg['poly']}; heaps_removed={cfg['heap_period']}"),
            detail=detail))
    if not rows:
        return [finding(LENS, metric_id, check, "not_assessable",
                        detail=f"not assessable {_DASH} fewer than {settings.bunching_min_count} contacts around "
                               f"the {threshold_name}")]
    return rows


def funnel_limits(p0: float, n: np.ndarray, levels=(0.95, 0.998)) -> pd.DataFrame:
    """Exact binomial funnel limits (as proportions) around ``p0`` for denominators ``n``.

    Limits at level L are the (1-L)/2 and (1+L)/2 binomial quantiles divided by n
    (Spiegelhalter 2005, "Funnel plots for comparing institutional performance").
    """
    n = np.asarray(n, dtype=float)
    out = {"n": n}
    for lv in levels:
        lo_q, hi_q = (1 - lv) / 2, (1 + lv) / 2
        out[f"lower_{lv:g}"] = dist.binom_ppf(lo_q, n, p0) / np.where(n > 0, n, np.nan)
        out[f"upper_{lv:g}"] = dist.binom_ppf(hi_q, n, p0) / np.where(n > 0, n, np.nan)
    return pd.DataFrame(out)


def short_contact_funnel(signatures: pd.DataFrame, *, settings: BehaviourSettings | None = None,
                         thresholds: Thresholds | None = None, pseudonym: Pseudonym | None = None) -> pd.DataFrame:
    """Per agent: very short voice calls against peers, with the funnel's upper limit.

    Columns ``agent_id, agent`` (shown name), ``team, n, short, share, p0`` (peer rate: all
    other agents pooled), ``centre_rate, upper`` (limit at ``funnel_level``), ``p_upper``
    (one-sided exact binomial p-value), ``ratio, flagged``. Agents with fewer than
    ``thresholds.min_contacts_agent`` voice calls are left out.
    """
    settings = settings or BehaviourSettings()
    thresholds = thresholds or Thresholds()
    pseudonym = pseudonym or _ident
    s = signatures[signatures["voice_handled"] >= thresholds.min_contacts_agent].sort_values(C.AGENT_ID)
    k, n = s["short_contacts"].to_numpy(float), s["voice_handled"].to_numpy(float)
    tail = (1 - settings.funnel_level) / 2
    p0 = (k.sum() - k) / np.maximum(n.sum() - n, 1)
    share = k / np.maximum(n, 1)
    out = pd.DataFrame({
        C.AGENT_ID: s[C.AGENT_ID].to_numpy(), "agent": [pseudonym(a) for a in s[C.AGENT_ID]],
        C.TEAM: s[C.TEAM].to_numpy() if C.TEAM in s else "", "n": n.astype(int), "short": k.astype(int),
        "share": share, "p0": p0, "centre_rate": k.sum() / max(n.sum(), 1),
        "upper": dist.binom_ppf(1 - tail, n, p0) / np.maximum(n, 1),
        "p_upper": dist.binom_sf(k - 1, n, p0)})
    out["ratio"] = np.where(out["p0"] > 0, out["share"] / out["p0"], np.inf)
    # above the funnel's outer limit, and beyond the Bonferroni level over all agents shown
    # (the binding rule with more than 50 agents), and materially above peers
    out["p_limit"] = min(tail, settings.alpha / max(len(out), 1))
    out["flagged"] = (out["p_upper"] < out["p_limit"]) & (out["ratio"] >= settings.short_min_ratio)
    return out.reset_index(drop=True)


def short_contacts(signatures: pd.DataFrame | None, metric_id: str, *, settings: BehaviourSettings | None = None,
                   thresholds: Thresholds | None = None, pseudonym: Pseudonym | None = None) -> list[dict]:
    """Agents whose share of very short voice contacts is above the funnel's 99.8 % limit.

    Flag (high) when the one-sided exact binomial p-value against the peer rate (all other
    agents pooled) is below both ``(1 - funnel_level) / 2`` (above the funnel's 99.8 % limit)
    and ``alpha / agents`` (Bonferroni: at most a 5 % chance of any false flag among all the
    agents), and the share is at least ``short_min_ratio`` times the peer rate. ``value`` = agent's share, ``threshold`` = upper
    limit, interval = Wilson 95 %.
    """
    settings = settings or BehaviourSettings()
    thresholds = thresholds or Thresholds()
    check = "short_contacts"
    if _missing(signatures, ("voice_handled", "short_contacts")):
        return [_na(metric_id, check, C.HANDLE_SECONDS)]
    f = short_contact_funnel(signatures, settings=settings, thresholds=thresholds, pseudonym=pseudonym)
    if f.empty:
        return [finding(LENS, metric_id, check, "not_assessable",
                        detail=f"not assessable {_DASH} no agent has {thresholds.min_contacts_agent} voice contacts")]
    rows = []
    for r in f.itertuples(index=False):
        lo, hi = _wilson(r.short, r.n, 1.96)
        detail = (f"{_fmt_pct(r.share)} of this agent's {r.n:,} answered calls lasted under "
                  f"{thresholds.short_contact_seconds} s, against {_fmt_pct(r.p0)} for peers.")
        if r.flagged:
            detail += (" Far more very short calls than chance allows: possible hang-ups to protect handle time. "
                       "Innocent explanations: misrouted calls transferred at once, silent or line-drop calls, a "
                       "queue that takes wrong numbers; listen to a sample before concluding.")
        rows.append(finding(LENS, metric_id, check, "high" if r.flagged else "ok", scope=f"agent:{r.agent}",
                            label=str(getattr(r, C.TEAM)), value=r.share, threshold=r.upper, ci_low=lo, ci_high=hi,
                            n=r.n, evidence=f"short={r.short}; peer_rate={r.p0:.5f}; p_upper={r.p_upper:.3g}; "
                                            f"ratio={r.ratio:.2f}",
                            detail=detail))
    return rows


def displacement_table(signatures: pd.DataFrame, *, settings: BehaviourSettings | None = None,
                       thresholds: Thresholds | None = None, pseudonym: Pseudonym | None = None) -> pd.DataFrame:
    """Per agent: AHT, transfer and repeat rates, their robust scores, joint score and flag.

    Robust score = (x - median) / (1.4826 MAD) across agents. Joint score =
    ``min(-z_aht, max(z_transfer, z_repeat))``: large only when the agent is *both* fast and
    high on transfers or repeats. Under independence the chance that one agent's joint score
    exceeds c through one rate is ``(1 - Φ(c))²``, so ``c`` solves
    ``(1 - Φ(c))² = alpha / (agents × rates)`` (family-wise ``alpha``). ``mahalanobis`` is the
    distance of the agent's (AHT, rates) from the centre, for the evidence.

    Agents differ naturally more than chance alone, so a flag also needs a material effect:
    AHT at least ``displacement_min_drop`` below the median agent and a rate at least
    ``displacement_min_ratio`` times the median agent's (with its own score ≥ c).
    """
    settings = settings or BehaviourSettings()
    thresholds = thresholds or Thresholds()
    pseudonym = pseudonym or _ident
    have_t = _missing(signatures, ("transfers", "transfer_n")) is None
    have_r = _missing(signatures, ("repeats", "repeat_n")) is None
    s = signatures[(signatures["voice_handled"] >= thresholds.min_contacts_agent) & signatures["aht"].notna()]
    s = s.sort_values(C.AGENT_ID).reset_index(drop=True)
    t_rate = (s["transfers"] / s["transfer_n"]).to_numpy(float) if have_t else np.full(len(s), np.nan)
    r_rate = (s["repeats"] / s["repeat_n"]).to_numpy(float) if have_r else np.full(len(s), np.nan)
    z_aht = _robust_z(s["aht"].to_numpy(float)) if len(s) else np.empty(0)
    zt = _robust_z(t_rate) if have_t and len(s) else np.full(len(s), -np.inf)
    zr = _robust_z(r_rate) if have_r and len(s) else np.full(len(s), -np.inf)
    joint = np.minimum(-z_aht, np.maximum(zt, zr))
    m = max(len(s) * (int(have_t) + int(have_r)), 1)
    c = float(dist.norm_isf(math.sqrt(settings.alpha / m)))
    cols = [s["aht"].to_numpy(float)] + [x for x, ok in ((t_rate, have_t), (r_rate, have_r)) if ok]
    maha = np.full(len(s), np.nan)
    if len(s) > len(cols) + 1:
        Xm = np.column_stack(cols)
        inv = np.linalg.pinv(np.cov(Xm, rowvar=False))
        dev = Xm - Xm.mean(axis=0)
        maha = np.sqrt(np.einsum("ij,jk,ik->i", dev, inv, dev))
    out = pd.DataFrame({
        C.AGENT_ID: s[C.AGENT_ID].to_numpy(), "agent": [pseudonym(a) for a in s[C.AGENT_ID]],
        C.TEAM: s[C.TEAM].to_numpy() if C.TEAM in s else "", "n": s["voice_handled"].to_numpy(int),
        "aht": s["aht"].to_numpy(float), "transfer_rate": t_rate, "repeat_rate": r_rate, "z_aht": z_aht,
        "z_transfer": zt, "z_repeat": zr, "joint": joint, "critical": c, "mahalanobis": maha})
    # scores alone over-react when agents differ naturally (their spread is wider than chance):
    # the agent must also be clearly faster and clearly higher on a rate than the typical agent
    med_aht = np.nanmedian(out["aht"]) if len(out) else np.nan
    ratio_t = out["transfer_rate"] / np.nanmedian(t_rate) if have_t and len(out) else np.nan
    ratio_r = out["repeat_rate"] / np.nanmedian(r_rate) if have_r and len(out) else np.nan
    big_rate = ((ratio_t >= settings.displacement_min_ratio) & (out["z_transfer"] >= c)) | \
               ((ratio_r >= settings.displacement_min_ratio) & (out["z_repeat"] >= c))
    out["flagged"] = ((out["joint"] >= c) & (out["aht"] <= (1 - settings.displacement_min_drop) * med_aht)
                      & big_rate)
    return out


def displacement(signatures: pd.DataFrame | None, metric_id: str, *, settings: BehaviourSettings | None = None,
                 thresholds: Thresholds | None = None, pseudonym: Pseudonym | None = None) -> list[dict]:
    """Agents who are *jointly* fast (low AHT) and high on transfers or 7-day repeats.

    See :func:`displacement_table` for the joint score and its critical value (family-wise
    ``alpha`` over agents). Flag (high) when the joint score reaches the critical value.
    ``value`` = joint score, ``threshold`` = critical value.
    """
    settings = settings or BehaviourSettings()
    thresholds = thresholds or Thresholds()
    check = "displacement"
    if _missing(signatures, ("aht", "voice_handled")):
        return [_na(metric_id, check, C.HANDLE_SECONDS)]
    if _missing(signatures, ("transfers", "transfer_n")) and _missing(signatures, ("repeats", "repeat_n")):
        return [_na(metric_id, check, f"{C.TRANSFERRED} or {C.CUSTOMER_ID}")]
    t = displacement_table(signatures, settings=settings, thresholds=thresholds, pseudonym=pseudonym)
    if len(t) < 10:
        return [finding(LENS, metric_id, check, "not_assessable",
                        detail=f"not assessable {_DASH} fewer than 10 agents with enough contacts")]
    rows = []
    for r in t.itertuples(index=False):
        detail = (f"Handle time {r.aht:.0f} s (score {r.z_aht:+.1f}), transfers {_fmt_pct(r.transfer_rate)} "
                  f"(score {r.z_transfer:+.1f}), 7-day repeats {_fmt_pct(r.repeat_rate)} (score {r.z_repeat:+.1f}).")
        if r.flagged:
            detail += (" Fast calls paid for elsewhere: work may be passed on or parked. Innocent explanations: "
                       "the agent takes a simple first-line queue that is meant to transfer, or is in training "
                       "with a buddy.")
        rows.append(finding(LENS, metric_id, check, "high" if r.flagged else "ok", scope=f"agent:{r.agent}",
                            label=str(getattr(r, C.TEAM)), value=float(r.joint), threshold=r.critical, n=r.n,
                            evidence=f"z_aht={r.z_aht:.2f}; z_transfer={r.z_transfer:.2f}; "
                                     f"z_repeat={r.z_repeat:.2f}; mahalanobis={r.mahalanobis:.2f}",
                            detail=detail))
    return rows


def fcr_integrity(signatures: pd.DataFrame | None, metric_id: str, *, settings: BehaviourSettings | None = None,
                  thresholds: Thresholds | None = None, pseudonym: Pseudonym | None = None) -> list[dict]:
    """Agent-coded FCR against repeat-based FCR (no contact from the customer within the window).

    Per centre, team and agent: gap = coded − repeat-based, with a Newcombe interval at the
    Bonferroni level of its family. Flag when the gap ≥ ``fcr_max_gap`` and the interval's
    lower end is above 0 (high when the gap is twice ``fcr_max_gap``). The interval treats
    the two rates as independent samples, which is conservative when they share contacts.
    """
    settings = settings or BehaviourSettings()
    thresholds = thresholds or Thresholds()
    pseudonym = pseudonym or _ident
    check = "fcr_integrity"
    miss = _missing(signatures, ("fcr_coded", "fcr_coded_n"))
    if miss:
        return [_na(metric_id, check, C.RESOLVED_FIRST_CONTACT)]
    if _missing(signatures, ("fcr_repeat_ok", "fcr_repeat_n")):
        return [_na(metric_id, check, C.CUSTOMER_ID)]
    s = signatures.sort_values(C.AGENT_ID)
    cols = ["fcr_coded", "fcr_coded_n", "fcr_repeat_ok", "fcr_repeat_n"]
    # (family, scope, {column: sum}); an agent's sums are its own row (a missing count sums to 0)
    groups = [("overall", "overall", s[cols].sum())]
    if C.TEAM in s:
        groups += [("team", f"team:{t}", g) for t, g in s.groupby(C.TEAM, sort=True)[cols].sum().iterrows()]
    agents = s[s["fcr_coded_n"] >= thresholds.min_contacts_agent]
    sums = {c: agents[c].fillna(0).to_numpy() for c in cols}
    groups += [("agent", f"agent:{pseudonym(a)}", {c: sums[c][i] for c in cols})
               for i, a in enumerate(agents[C.AGENT_ID])]
    sizes = {f: sum(1 for g in groups if g[0] == f) for f in ("overall", "team", "agent")}
    rows = []
    for family, scope, g in groups:
        k1, n1 = g["fcr_coded"], g["fcr_coded_n"]
        k2, n2 = g["fcr_repeat_ok"], g["fcr_repeat_n"]
        if n1 <= 0 or n2 <= 0:
            continue
        z = _bonferroni_z(settings.alpha, sizes[family], two_sided=True)
        lo, hi = _newcombe(k1, n1, k2, n2, z)
        gap = k1 / n1 - k2 / n2
        flagged = gap >= settings.fcr_max_gap and lo > 0
        sev = ("high" if gap >= 2 * settings.fcr_max_gap else "medium") if flagged else "ok"
        detail = (f"Coded as resolved first time: {_fmt_pct(k1 / n1)}; not contacting us again within "
                  f"{thresholds.repeat_window_days} days: {_fmt_pct(k2 / n2)}.")
        if flagged:
            detail += (" The resolution code claims more than customers' behaviour supports. Innocent "
                       "explanations: customers calling back about a different matter, or a repeat window "
                       "that catches planned follow-ups.")
        rows.append(finding(LENS, metric_id, check, sev, scope=scope, value=gap, threshold=settings.fcr_max_gap,
                            ci_low=lo, ci_high=hi, n=int(n1),
                            evidence=f"coded={k1 / n1:.4f} (n={int(n1)}); repeat_based={k2 / n2:.4f} (n={int(n2)})",
                            detail=detail))
    return rows


def _katz_rr(a, n1, b, n2, z=1.96) -> tuple[float, float, float]:
    """Risk ratio (a/n1)/(b/n2) with the Katz log interval (0.5 added to every cell when one is 0)."""
    if min(a, b, n1 - a, n2 - b) == 0:
        a, b, n1, n2 = a + 0.5, b + 0.5, n1 + 1, n2 + 1
    rr = (a / n1) / (b / n2)
    se = math.sqrt(1 / a - 1 / n1 + 1 / b - 1 / n2)
    return rr, rr * math.exp(-z * se), rr * math.exp(z * se)


def callback_backlog(callbacks: pd.DataFrame) -> pd.DataFrame:
    """Per week: promised, kept, unkept and the cumulative count of unkept promises (centre)."""
    cb = callbacks.copy()
    cb["kept_n"] = np.where(cb["kept"].astype(bool), cb["promised"], 0)
    w = cb.groupby(D.WEEK, sort=True).agg(promised=("promised", "sum"), kept=("kept_n", "sum")).reset_index()
    w["unkept"] = w["promised"] - w["kept"]
    w["completion"] = w["kept"] / w["promised"]
    w["open_backlog"] = w["unkept"].cumsum()
    return w


def callback_unkept(callbacks: pd.DataFrame | None, metric_id: str, target: float | None = None, *,
                    settings: BehaviourSettings | None = None) -> list[dict]:
    """Call-back promises kept, and whether unkept ones turn into complaints or repeats.

    Overall row: ``value`` = risk ratio of a follow-up complaint (unkept vs kept) with a
    Katz interval (Bonferroni over the two outcomes, complaints and repeats); flagged (high)
    when, for either outcome, the interval's lower end exceeds 1 and the ratio is at least
    ``callback_min_rr``. Team rows: completion rate with a Wilson interval (Bonferroni
    over teams); flagged when the whole interval lies ``callback_margin`` below the target.
    """
    settings = settings or BehaviourSettings()
    check = "callback_unkept"
    if _missing(callbacks, ("promised",)) or callbacks["promised"].sum() == 0:
        return [_na(metric_id, check, C.CALLBACK_PROMISED)]
    if _missing(callbacks, ("kept",)):
        return [_na(metric_id, check, C.CALLBACK_COMPLETED)]
    cb = callbacks.copy()
    cb["kept"] = cb["kept"].astype(bool)
    target = settings.callback_target if target is None or not np.isfinite(target) else float(target)
    rows = []
    kept, unkept = cb[cb["kept"]], cb[~cb["kept"]]
    nk, nu = kept["promised"].sum(), unkept["promised"].sum()
    parts = []
    flagged_any = False
    best = None
    for col, what in ((D.FOLLOWED_BY_COMPLAINT, "complaint"), (D.FOLLOWED_BY_REPEAT, "repeat contact")):
        if col not in cb or cb[col].isna().all() or nk == 0 or nu == 0:
            continue
        # two outcomes (complaints, repeats) are tested: Bonferroni over them
        rr, lo, hi = _katz_rr(unkept[col].sum(), nu, kept[col].sum(), nk, _bonferroni_z(settings.alpha, 2, True))
        parts.append(f"rr_{what.split()[0]}={rr:.2f} [{lo:.2f}, {hi:.2f}]")
        if best is None or what == "complaint":
            best = (rr, lo, hi, what)
        flagged_any |= lo > 1 and rr >= settings.callback_min_rr
    completion = nk / (nk + nu)
    if best is None:
        rows.append(finding(LENS, metric_id, check, "not_assessable",
                            detail=f"not assessable {_DASH} needs column {C.CUSTOMER_ID} (follow-ups) and both "
                                   f"kept and unkept promises"))
    else:
        rr, lo, hi, what = best
        detail = (f"{_fmt_pct(completion)} of {int(nk + nu):,} call-back promises were kept "
                  f"({int(nu):,} not kept by the end of the period). "
                  f"After an unkept promise a {what} followed {rr:.1f} times as often as after a kept one.")
        if flagged_any:
            detail += (" Broken promises turn into failure demand. Innocent explanations: the customer could not "
                       "be reached, or the call-back was closed in another system.")
        rows.append(finding(LENS, metric_id, check, "high" if flagged_any else "ok", label=what, value=rr,
                            threshold=settings.callback_min_rr, ci_low=lo, ci_high=hi, n=int(nk + nu),
                            evidence=f"completion={completion:.4f}; target={target:g}; " + "; ".join(parts),
                            detail=detail))
    if C.TEAM in cb:
        teams = sorted(cb[C.TEAM].dropna().unique())
        z = _bonferroni_z(settings.alpha, len(teams), two_sided=True)
        for t in teams:
            g = cb[cb[C.TEAM] == t]
            n = g["promised"].sum()
            k = g.loc[g["kept"], "promised"].sum()
            if n == 0:
                continue
            lo, hi = _wilson(k, n, z)
            flagged = hi < target - settings.callback_margin
            rows.append(finding(
                LENS, metric_id, check, "medium" if flagged else "ok", scope=f"team:{t}", label="completion",
                value=k / n, threshold=target, ci_low=lo, ci_high=hi, n=int(n),
                evidence=f"kept={int(k)}; promised={int(n)}",
                detail=f"{_fmt_pct(k / n)} of {int(n):,} promises kept (target {_fmt_pct(target)})."
                       + (" Well below target." if flagged else "")))
    return rows


def hollow_first_reply(first_replies: pd.DataFrame | None, metric_id: str, *,
                       settings: BehaviourSettings | None = None) -> list[dict]:
    """Fast-but-hollow first replies per written channel, summarised in one overall row.

    Per channel: share of first replies within 60 s of creation ("instant"), and whether the
    instant ones end up with a resolution slower than the resolution target more often than
    the other replies (risk ratio, Katz interval at the Bonferroni level over channels). A
    channel is flagged when its instant share ≥ ``hollow_min_share``, the slow share of its
    instant replies ≥ ``hollow_min_slow`` and the ratio's lower end > 1. The overall row
    carries the worst channel: ``value`` = its instant share with a Wilson 95 % interval; the
    risk ratios and the share of first replies within target whose resolution is slow are
    in the evidence.
    """
    settings = settings or BehaviourSettings()
    check = "hollow_first_reply"
    miss = _missing(first_replies, ("replies", "instant_replies"))
    if miss:
        return [_na(metric_id, check, C.FIRST_REPLY_SECONDS)]
    fr = first_replies
    have_slow = _missing(fr, ("instant_slow_resolution", "within_target", "within_target_slow_resolution")) is None
    by = fr.groupby(C.CHANNEL, sort=True).sum(numeric_only=True)
    z = _bonferroni_z(settings.alpha, len(by), two_sided=True)
    rows, worst = [], None
    for ch, r in by.iterrows():
        share = r["instant_replies"] / r["replies"] if r["replies"] else math.nan
        flagged, rr, lo, hi, slow_share, wt_slow = False, math.nan, math.nan, math.nan, math.nan, math.nan
        if have_slow and r["instant_replies"] > 0:
            slow_share = r["instant_slow_resolution"] / r["instant_replies"]
            other_n = r["replies"] - r["instant_replies"]
            other_slow = max(r["within_target_slow_resolution"] - r["instant_slow_resolution"], 0)
            wt_slow = r["within_target_slow_resolution"] / r["within_target"] if r["within_target"] else math.nan
            if other_n > 0:
                rr, lo, hi = _katz_rr(r["instant_slow_resolution"], r["instant_replies"], other_slow, other_n, z)
                flagged = (share >= settings.hollow_min_share and slow_share >= settings.hollow_min_slow
                           and lo > 1)
        s_lo, s_hi = _wilson(r["instant_replies"], r["replies"], 1.96)
        item = dict(channel=ch, share=share, slow_share=slow_share, rr=rr, lo=lo, hi=hi, n=int(r["replies"]),
                    flagged=flagged, wt_slow=wt_slow, s_lo=s_lo, s_hi=s_hi)
        if worst is None or (flagged, share) > (worst["flagged"], worst["share"]):
            worst = item
        rows.append(item)
    if worst is None:
        return [_na(metric_id, check, C.FIRST_REPLY_SECONDS)]
    ev = "; ".join(f"{i['channel']}: instant={i['share']:.3f}, instant_slow={i['slow_share']:.3f}, "
                   f"rr_slow={i['rr']:.2f} [{i['lo']:.2f}, {i['hi']:.2f}], within_target_slow={i['wt_slow']:.3f}"
                   for i in rows)
    if not have_slow:
        ev += f"; resolution columns missing (needs column {C.RESOLUTION_SECONDS} and a resolution target)"
    detail = (f"{_fmt_pct(worst['share'])} of {worst['channel']} first replies were sent within 60 s of the "
              f"contact arriving")
    if np.isfinite(worst["slow_share"]):
        detail += f"; {_fmt_pct(worst['slow_share'])} of those still took longer than the resolution target."
    else:
        detail += "."
    if worst["flagged"]:
        detail += (" Replies that stop the first-reply clock without helping the customer. Innocent "
                   "explanations: a genuine automatic acknowledgement the centre does not count as a reply, or "
                   "complex cases that are acknowledged quickly on purpose.")
    return [finding(LENS, metric_id, check, "high" if worst["flagged"] else "ok", label=str(worst["channel"]),
                    value=worst["share"], threshold=settings.hollow_min_share, ci_low=worst["s_lo"],
                    ci_high=worst["s_hi"], n=worst["n"], evidence=ev, detail=detail)]


def _ols_effect(y: np.ndarray, X: np.ndarray, w: np.ndarray, j: int) -> tuple[float, float]:
    """Weighted OLS coefficient j and its HC3 standard error (MacKinnon & White 1985).

    HC3 scales each squared residual by 1 / (1 - leverage)^2, which keeps the error honest
    when the effect rests on a handful of days (a few month ends)."""
    sw = np.sqrt(w)
    Xw, yw = X * sw[:, None], y * sw
    beta, *_ = np.linalg.lstsq(Xw, yw, rcond=None)
    resid = yw - Xw @ beta
    n, k = Xw.shape
    bread = np.linalg.pinv(Xw.T @ Xw)
    lev = np.einsum("ij,jk,ik->i", Xw, bread, Xw)
    u2 = (resid / np.maximum(1 - lev, 1e-6)) ** 2
    meat = (Xw * u2[:, None]).T @ Xw
    cov = bread @ meat @ bread
    return float(beta[j]), float(math.sqrt(max(cov[j, j], 0)))


def end_of_period_surge(team_day: pd.DataFrame | None, metric_id: str, kpi: str, better: str = "lower", *,
                        settings: BehaviourSettings | None = None) -> list[dict]:
    """Metric improvement on the last days of the week or month against the team's other days.

    Per team, two windows: the last working day of the week (``surge_week_day``, default
    Friday) against Monday–Thursday, and the last ``surge_month_days`` calendar days of each
    month against the other days (with weekday effects removed). Weighted OLS of the daily
    value (weights = the day's denominator, a linear trend over the period included) with HC3
    errors. Flag (medium) when the relative improvement ≥ ``surge_min_change`` and its t
    exceeds the Bonferroni critical value over teams × windows, with as many degrees of
    freedom as end-of-period days minus one (the robust error rests on those few days).
    """
    settings = settings or BehaviourSettings()
    check = "end_of_period_surge"
    miss = _missing(team_day, (kpi, f"{kpi}__n", "weekday", "days_to_month_end"))
    if miss:
        return [_na(metric_id, check, kpi if miss.startswith(kpi) else miss)]
    td = team_day[team_day[kpi].notna() & (team_day[f"{kpi}__n"] > 0)]
    teams = sorted(td[C.TEAM].dropna().unique()) if C.TEAM in td else []
    sign = -1.0 if better == "lower" else 1.0
    rows = []
    for t in teams:
        g = td[td[C.TEAM] == t]
        y, w = g[kpi].to_numpy(float), g[f"{kpi}__n"].to_numpy(float)
        wd = g["weekday"].to_numpy(int)
        # a linear trend over the period, so a metric drifting over the quarter is not read as a surge
        day = ((pd.to_datetime(g[D.DATE]) - pd.to_datetime(g[D.DATE]).min()).dt.days.to_numpy(float)
               if D.DATE in g else np.arange(len(g), dtype=float))
        trend = (day - day.mean()) / max(day.std(), 1.0)
        found = []
        # last working day of the week against the other weekdays
        m = wd <= settings.surge_week_day
        if m.sum() > 10 and (wd[m] == settings.surge_week_day).sum() >= 4:
            X = np.column_stack([np.ones(m.sum()), (wd[m] == settings.surge_week_day).astype(float), trend[m]])
            eff, se = _ols_effect(y[m], X, w[m], 1)
            base = np.average(y[m][wd[m] != settings.surge_week_day], weights=w[m][wd[m] != settings.surge_week_day])
            found.append(("week", eff, se, base, int(w[m].sum()), int((wd[m] == settings.surge_week_day).sum())))
        # last days of the month, weekday effects removed
        # a month counts only when at least a week of it is observed: the end days of a month the
        # period merely clips are the first days of the data, not a month end anyone reports on
        if D.DATE in g:
            month = pd.to_datetime(g[D.DATE]).dt.to_period("M").astype(str).to_numpy()
            _, inv, cnt = np.unique(month, return_inverse=True, return_counts=True)
            whole = cnt[inv] >= 7
        else:
            whole = np.ones(len(g), dtype=bool)
        end = (g["days_to_month_end"].to_numpy(int) < settings.surge_month_days).astype(float)
        if end[whole].sum() >= 3:
            present = sorted(set(wd[whole]))
            X = np.column_stack([end[whole], trend[whole]] + [(wd[whole] == d).astype(float) for d in present])
            eff, se = _ols_effect(y[whole], X, w[whole], 0)
            ref = whole & (end == 0)
            base = np.average(y[ref], weights=w[ref])
            found.append(("month", eff, se, base, int(w[whole].sum()), int(end[whole].sum())))
        for window, eff, se, base, n, treated in found:
            improvement = sign * eff / base if base else math.nan
            zval = sign * eff / se if se > 0 else math.nan
            # robust errors lean on the few end-of-period days: judge against t with (those days - 1)
            # degrees of freedom, Bonferroni over teams x windows
            tcrit = float(dist.t_isf(settings.alpha / (max(len(teams), 1) * 2), max(treated - 1, 1)))
            flagged = improvement >= settings.surge_min_change and np.isfinite(zval) and zval >= tcrit
            when = "on the last working day of the week" if window == "week" else "in the last days of the month"
            detail = (f"{kpi} is {abs(improvement) * 100:.1f} % {'better' if improvement > 0 else 'worse'} {when} "
                      f"than on the team's other days.")
            if flagged:
                detail += (" Work is being rushed before the figure is reported. Innocent explanations: a "
                           "different mix of contacts on those days (e.g. simpler queries, a campaign).")
            rows.append(finding(LENS, metric_id, check, "medium" if flagged else "ok", scope=f"team:{t}",
                                label=window, value=improvement, threshold=settings.surge_min_change, n=n,
                                ci_low=(sign * eff - 1.96 * se) / base if base else None,
                                ci_high=(sign * eff + 1.96 * se) / base if base else None,
                                evidence=f"effect={eff:.4g}; se={se:.4g}; base={base:.4g}; t={zval:.2f} vs "
                                         f"{tcrit:.2f} (df {max(treated - 1, 1)}); days={treated}",
                                detail=detail))
    if not rows:
        return [finding(LENS, metric_id, check, "not_assessable",
                        detail=f"not assessable {_DASH} needs column {C.TEAM} and enough days per team")]
    return rows


def selection_table(signatures: pd.DataFrame, *, settings: BehaviourSettings | None = None,
                    thresholds: Thresholds | None = None, pseudonym: Pseudonym | None = None) -> pd.DataFrame:
    """Per agent: survey response rate, share of 4-5 answers, their scores, joint score and flag.

    Response rate = CSAT answers / contacts, robust score across agents; top-2 share scored
    against peers (all other agents pooled) with a z whose variance adds the between-agent
    variance tau² to the binomial one (natural differences between agents are wider than
    chance; DerSimonian-Laird estimate, as in Spiegelhalter's over-dispersed funnel plots),
    reported as ``tau2``. A flag also needs the
    response rate at most ``selection_max_response_ratio`` of the median agent's and a top-2
    share ``selection_min_gain`` above peers. Joint score
    ``min(-z_response, z_top2)``; critical value solves ``(1 - Φ(c))² = alpha / agents``.
    Agents below ``min_contacts_agent`` contacts or ``min_surveys`` answers are left out.
    """
    settings = settings or BehaviourSettings()
    thresholds = thresholds or Thresholds()
    pseudonym = pseudonym or _ident
    s = signatures[(signatures["contacts"] >= thresholds.min_contacts_agent)
                   & (signatures["csat_responses"] >= thresholds.min_surveys)]
    s = s.sort_values(C.AGENT_ID).reset_index(drop=True)
    resp = (s["csat_responses"] / s["contacts"]).to_numpy(float)
    k, n = s["csat_top2"].to_numpy(float), s["csat_responses"].to_numpy(float)
    peer = (k.sum() - k) / np.maximum(n.sum() - n, 1)
    share = k / np.maximum(n, 1)
    z_resp = _robust_z(resp) if len(s) else np.empty(0)
    # agents' satisfaction differs more than binomial chance: an additive random effect
    # (DerSimonian-Laird moment estimate of its variance tau^2, Spiegelhalter 2005) widens
    # every agent's error, most for the agents with many answers
    v = np.maximum(peer * (1 - peer), 1e-12) / np.maximum(n, 1)
    tau2 = _tau2(share, v)
    z_top = (share - peer) / np.sqrt(v + tau2)
    joint = np.minimum(-z_resp, z_top)
    c = float(dist.norm_isf(math.sqrt(settings.alpha / max(len(s), 1))))
    return pd.DataFrame({
        C.AGENT_ID: s[C.AGENT_ID].to_numpy(), "agent": [pseudonym(a) for a in s[C.AGENT_ID]],
        C.TEAM: s[C.TEAM].to_numpy() if C.TEAM in s else "", "n": n.astype(int), "response_rate": resp,
        "top2": share, "peer_top2": peer, "tau2": tau2, "z_response": z_resp, "z_top2": z_top, "joint": joint,
        "critical": c,
        "flagged": (joint >= c) & (resp <= settings.selection_max_response_ratio * np.nanmedian(resp))
                   & (share >= peer + settings.selection_min_gain)})


def survey_selection(signatures: pd.DataFrame | None, metric_id: str, *, settings: BehaviourSettings | None = None,
                     thresholds: Thresholds | None = None, pseudonym: Pseudonym | None = None) -> list[dict]:
    """Agents with a low survey response rate *and* a high score: surveys offered selectively.

    See :func:`selection_table`. Flag (high) when the joint score reaches the critical value.
    """
    settings = settings or BehaviourSettings()
    thresholds = thresholds or Thresholds()
    check = "survey_selection"
    if _missing(signatures, ("csat_responses", "csat_top2", "contacts")):
        return [_na(metric_id, check, C.CSAT)]
    t = selection_table(signatures, settings=settings, thresholds=thresholds, pseudonym=pseudonym)
    if len(t) < 10:
        return [finding(LENS, metric_id, check, "not_assessable",
                        detail=f"not assessable {_DASH} fewer than 10 agents with {thresholds.min_surveys} surveys")]
    rows = []
    for r in t.itertuples(index=False):
        side = "below" if r.z_response < 0 else "above"
        detail = (f"Survey response rate {_fmt_pct(r.response_rate)} ({abs(r.z_response):.1f} standard deviations "
                  f"{side} peers) with "
                  f"{_fmt_pct(r.top2)} of answers 4-5 (peers {_fmt_pct(r.peer_top2)}).")
        if r.flagged:
            detail += (" Few surveys but glowing ones: surveys may be offered only to happy customers. Innocent "
                       "explanations: a queue whose customers rarely answer surveys (e.g. outbound calls).")
        rows.append(finding(LENS, metric_id, check, "high" if r.flagged else "ok", scope=f"agent:{r.agent}",
                            label=str(getattr(r, C.TEAM)), value=float(r.joint), threshold=r.critical, n=r.n,
                            evidence=f"response_rate={r.response_rate:.4f}; z_response={r.z_response:.2f}; "
                                     f"top2={r.top2:.4f}; peer_top2={r.peer_top2:.4f}; z_top2={r.z_top2:.2f}",
                            detail=detail))
    return rows


def catalogue_risks(metric_id: str, kpi: str, library) -> list[dict]:
    """One info row per known unintended behaviour of the metric's KPI (from the KPI library)."""
    if library is None or kpi not in library:
        return []
    rows = []
    for u in library.get(kpi).unintended:
        rows.append(finding(LENS, metric_id, "catalogue_risk", "info", label=u.behaviour,
                            evidence=f"gaming type: {u.gaming_type}; data check: {u.check}; "
                                     f"signature: {u.signature}; source: {u.citation.short}",
                            detail=u.mechanism))
    return rows


# ----------------------------------------------------------------------------- orchestration
def _threshold_for(unintended, target: float, thresholds: Thresholds) -> tuple[float | None, str]:
    where = getattr(unintended, "threshold", None) or "target"
    if where == "target":
        return target, "target"
    return float(getattr(thresholds, where)), where


def assess(tables: dict, register: pd.DataFrame, library, *, settings: BehaviourSettings | None = None,
           thresholds: Thresholds | None = None, pseudonym: Pseudonym | None = None,
           available_columns: Iterable[str] | None = None) -> pd.DataFrame:
    """The behaviour lens: catalogue risks and every applicable detector for each register metric.

    Parameters
    ----------
    tables : ``{prepared table name: DataFrame}`` (missing tables count as missing columns).
    register : the metric register.
    library : the KPI library (``audit_lib.kpis.load_library()``).
    settings, thresholds : lens settings and shared thresholds (defaults when None).
    pseudonym : agent id -> shown name (identity when None: pass one for shareable output).
    available_columns : canonical contact columns present in the export (the prepare
        manifest's ``columns``); a detector needing an absent one is ``not_assessable``.

    Returns
    -------
    DataFrame — Findings rows, sorted.
    """
    settings = settings or BehaviourSettings()
    thresholds = thresholds or Thresholds()
    pseudonym = pseudonym or _ident
    avail = set(available_columns) if available_columns is not None else None
    sig, hist = tables.get(P.AGENT_SIGNATURES), tables.get(P.HISTOGRAMS)
    bunching_cache: dict = {}
    rows: list[dict] = []
    for _, m in register.sort_values(R.METRIC_ID).iterrows():
        mid, kpi = str(m[R.METRIC_ID]), str(m.get(R.KPI, "")).strip().lower()
        target = pd.to_numeric(pd.Series([m.get(R.TARGET)]), errors="coerce").iloc[0]
        if library is None or kpi not in library:
            continue
        rows += catalogue_risks(mid, kpi, library)
        entry = library.get(kpi)
        for check in library.checks_for(kpi):
            col = _unavailable(avail, check)
            if col:
                rows.append(_na(mid, check, col))
                continue
            if check == "threshold_bunching":
                for u in (u for u in entry.unintended if u.check == check):
                    thr, name = _threshold_for(u, target, thresholds)
                    measure = u.measure or C.HANDLE_SECONDS
                    if avail is not None and measure not in avail:
                        rows.append(_na(mid, check, measure))
                        continue
                    rows += _threshold_bunching(hist, mid, measure, thr, settings=settings, pseudonym=pseudonym,
                                                threshold_name=name, cache=bunching_cache)
            elif check == "short_contacts":
                rows += short_contacts(sig, mid, settings=settings, thresholds=thresholds, pseudonym=pseudonym)
            elif check == "displacement":
                rows += displacement(sig, mid, settings=settings, thresholds=thresholds, pseudonym=pseudonym)
            elif check == "fcr_integrity":
                rows += fcr_integrity(sig, mid, settings=settings, thresholds=thresholds, pseudonym=pseudonym)
            elif check == "callback_unkept":
                rows += callback_unkept(tables.get(P.CALLBACKS), mid, target, settings=settings)
            elif check == "hollow_first_reply":
                rows += hollow_first_reply(tables.get(P.FIRST_REPLIES), mid, settings=settings)
            elif check == "end_of_period_surge":
                rows += end_of_period_surge(tables.get(P.TEAM_DAY), mid, kpi, library.better(kpi), settings=settings)
            elif check == "survey_selection":
                if kpi != "csat":
                    # the prepared signatures carry CSAT answers only
                    rows.append(_na(mid, check, kpi))
                    continue
                rows += survey_selection(sig, mid, settings=settings, thresholds=thresholds, pseudonym=pseudonym)
    return make_findings(rows)


def audit_findings(audit) -> pd.DataFrame:
    """The behaviour lens for an opened audit (``audit_lib.context.open_audit``)."""
    tables = {}
    for name in (P.HISTOGRAMS, P.AGENT_SIGNATURES, P.CALLBACKS, P.FIRST_REPLIES, P.TEAM_DAY):
        try:
            tables[name] = audit.table(name)
        except KeyError:
            tables[name] = None
    manifest = getattr(audit, "manifest", {}) or {}
    params = audit.params
    return assess(tables, audit.register, audit.kpis, settings=getattr(params, "behaviour", None),
                  thresholds=audit.thresholds, pseudonym=audit.pseudonym,
                  available_columns=manifest.get("columns"))


def risk_overview(findings: pd.DataFrame, register: pd.DataFrame, library) -> pd.DataFrame:
    """Per metric and known risk: the catalogue's behaviour beside what the data shows.

    One row per (metric, unintended behaviour of its KPI): the behaviour, its gaming type, the
    source, the data check, and a plain summary of that check's findings for the metric
    (how many scopes were flagged, or why it could not be assessed).
    """
    rows = []
    for _, m in register.sort_values(R.METRIC_ID).iterrows():
        kpi = str(m.get(R.KPI, "")).strip().lower()
        if library is None or kpi not in library:
            continue
        for u in library.get(kpi).unintended:
            f = findings[(findings[F.METRIC_ID] == m[R.METRIC_ID]) & (findings[F.CHECK] == u.check)]
            if u.check == "none":
                shows = "no data check (judgement)"
            elif f.empty:
                shows = "not run"
            elif (f[F.SEVERITY] == "not_assessable").all():
                shows = f[F.DETAIL].iloc[0]
            else:
                flagged = f[f[F.SEVERITY].isin(("medium", "high"))]
                if flagged.empty:
                    shows = f"no sign ({len(f)} scope{'s' if len(f) != 1 else ''} checked)"
                else:
                    where = ", ".join(sorted(flagged[F.SCOPE].str.replace("team:", "team ")
                                                .str.replace("agent:", "")))
                    shows = f"FLAGGED in {len(flagged)} of {len(f)}: {where}"
            rows.append({"Metric": m[R.METRIC_ID], "Known risk": u.behaviour,
                         "Gaming type": u.gaming_type.replace("_", " "), "Source": u.citation.short,
                         "Data check": u.check.replace("_", " "), "What the data shows": shows})
    return pd.DataFrame(rows, columns=["Metric", "Known risk", "Gaming type", "Source", "Data check",
                                       "What the data shows"])


def flag_table(findings: pd.DataFrame) -> pd.DataFrame:
    """The flagged behaviour findings in plain columns, most severe first."""
    f = findings[(findings[F.LENS] == LENS) & findings[F.SEVERITY].isin(("medium", "high"))]
    order = {"high": 0, "medium": 1}
    f = f.assign(_o=f[F.SEVERITY].map(order)).sort_values(["_o", F.METRIC_ID, F.CHECK, F.SCOPE], kind="mergesort")
    return f.rename(columns={F.METRIC_ID: "Metric", F.CHECK: "Check", F.SCOPE: "Where", F.SEVERITY: "Severity",
                             F.DETAIL: "What it means"})[["Metric", "Check", "Where", "Severity", "What it means"]] \
        .reset_index(drop=True)


def flag_counts(findings: pd.DataFrame) -> pd.DataFrame:
    """Headline: per metric and check, how many scopes were checked and how many flagged."""
    f = findings[(findings[F.LENS] == LENS) & findings[F.CHECK].isin(CHECKS)]
    out = (f.assign(flagged=f[F.SEVERITY].isin(("medium", "high")),
                    checked=f[F.SEVERITY].isin(("ok", "low", "medium", "high")))
           .groupby([F.METRIC_ID, F.CHECK], sort=True)[["checked", "flagged"]].sum().reset_index())
    return out.rename(columns={F.METRIC_ID: "Metric", F.CHECK: "Check", "checked": "Scopes checked",
                               "flagged": "Flagged"})


def check_table(findings: pd.DataFrame, check: str, *, agents: bool = False) -> pd.DataFrame:
    """One check's findings in plain columns (agent rows only when flagged, unless ``agents``)."""
    f = findings[(findings[F.LENS] == LENS) & (findings[F.CHECK] == check)]
    if not agents:
        f = f[~f[F.SCOPE].str.startswith("agent:") | f[F.SEVERITY].isin(("medium", "high"))]
    ci = [f"[{lo:.3g}, {hi:.3g}]" if np.isfinite(lo) and np.isfinite(hi) else ""
          for lo, hi in zip(f[F.CI_LOW], f[F.CI_HIGH])]
    return pd.DataFrame({"Metric": f[F.METRIC_ID].to_numpy(), "Where": f[F.SCOPE].to_numpy(),
                         "Value": f[F.VALUE].round(3).to_numpy(), "Interval": ci, "n": f[F.N].to_numpy(),
                         "Severity": f[F.SEVERITY].to_numpy(), "What it means": f[F.DETAIL].to_numpy()})
