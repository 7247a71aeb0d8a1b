"""The linkage lens: does each metric move with the outcomes it is meant to serve?

Per register metric and outcome the lens estimates

* **association** — Spearman's rho over agent-weeks (team-weeks for an outcome that only
  the outcomes file holds), with a percentile interval from a bootstrap that resamples
  whole agents (clusters), because one agent's weeks are not independent;
* **within_agent** — the same after removing each agent's own mean from the metric and the
  outcome (for team-week outcomes: each team's mean), so that stable differences between
  people (a between-agent confound) cannot create or hide the link;
* **lagged** — team-week association at lags 0..k. **Convention: lag k pairs the metric in
  week t with the outcome in week t + k; k > 0 means the metric leads the outcome.**
  Each team's means are removed first; the interval resamples teams (or weeks, when there
  are fewer teams than ``linkage.min_clusters``);
* **relative_importance** — the share of the outcome's R² each metric carries
  (LMG = Shapley decomposition; Johnson's relative weights alongside), with a cluster
  bootstrap interval (``linkage.importance_bootstrap`` replicates);
* **decoupling** — the metric's weekly trend over the audit period improves (in its better
  direction) while the outcome's trend is flat or worse: the Goodhart signature;
* **counterbalance_worsened** — per team: while the metric improved week on week, did the
  metric named in the register's ``counterbalance`` column get worse?

Outcomes: the contact outcomes of the prepared panels (``csat``, ``nps``, ``repeat_rate``,
``complaint_rate``) and every numeric column of the optional outcomes file (weekly or monthly,
per team or for the centre). Which outcomes a metric is *meant* to serve comes from the KPI
library (``serves``); every metric × outcome pair is estimated for the heatmap, served pairs
are classified.

Sample-size guards: an agent enters an agent-week analysis only with at least
``thresholds.min_surveys`` outcome observations and ``thresholds.min_weeks`` usable weeks; a
team enters a team-week analysis only with ``min_weeks`` weeks (and ``min_surveys`` observations
for a contact outcome); agent-weeks with fewer than ``linkage.min_cell_n`` outcome observations
are skipped. Repeat-window KPIs (``repeat_rate``, ``fcr_repeat``) are dropped for weeks whose
repeat window reaches past the last contact in the data (their value is censored low).

Classification (check ``linkage_class``, one row per served outcome and one ``overall`` row)
-----------------------------------------------------------------------------------------
Signs are *aligned*: +rho means "metric better goes with outcome better", whatever the
directions. "Significant" means the bootstrap p-value is below alpha / m, where m is the
number of outcomes the metric serves (Bonferroni: a metric is judged against m outcomes).

``not_assessable``
    the metric or the outcome is not in the data, the direction is unknown, or the guards
    left too few agents, teams or weeks (the detail says which).
``decoupled``
    the decoupling check fired for this outcome.
``adverse``
    the within-unit association is significantly negative, at least ``linkage.min_rho`` in
    size, and the pooled one is not positive.
``linked``
    the within-unit association is significantly positive, at least ``linkage.min_rho`` in
    size, and the pooled association is not negative.
``weak``
    assessable, but none of the above.

Lags do not enter the class: with a handful of teams and a quarter of weeks, picking the
best of several lags finds links in pure noise too often. The lag profile is reported (check
``lagged``) so a reader can see whether a link builds up over the following weeks.

The ``overall`` row takes the first of adverse, decoupled, linked, weak present among the
metric's outcomes (not_assessable when none is). Associations are not causal: the report
says "moves with", never "drives".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from . import distributions as dist
from .columns import Contact, Outcome, Prepared
from .columns import Register as R
from .errors import InputDataError
from .findings import empty_findings, finding, make_findings
from .kpis import OUTCOMES, load_library

__all__ = [
    "LENS", "CLASSES", "CONTACT_OUTCOMES", "LAG_CONVENTION", "spearman", "bootstrap_spearman", "demean",
    "association", "lag_profile", "relative_importance", "importance_interval", "trend", "windowed_kpis", "censor_windows",
    "outcome_panel", "metric_table", "outcome_table", "LinkageResult", "analyse", "analyse_audit",
    "linkage_findings", "audit_findings", "aligned_associations", "class_summary", "classification_table",
    "decoupling_display", "counterbalance_display", "association_display", "conclusions",
]

LENS = "linkage"
CLASSES = ("linked", "weak", "decoupled", "adverse", "not_assessable")
#: outcomes computed from the contacts (columns of every prepared panel)
CONTACT_OUTCOMES = ("csat", "nps", "repeat_rate", "complaint_rate")
LAG_CONVENTION = ("Lag k pairs the metric in week t with the outcome in week t + k; "
                  "k > 0 means the metric leads the outcome.")
_UNIT, _TIME = "unit", "time"
_OVERALL_ORDER = ("adverse", "decoupled", "linked", "weak")
_SEVERITY = {"linked": "ok", "weak": "low", "decoupled": "medium", "adverse": "high",
             "not_assessable": "not_assessable"}
_N = "__n"


# =============================================================================================
# statistics (pure functions of arrays)
# =============================================================================================

def spearman(x, y) -> float:
    """Spearman's rho: Pearson correlation of mid-ranks (NaN pairs dropped).

    Examples
    --------
    >>> round(spearman([1, 2, 3, 4], [1, 3, 2, 4]), 3)
    0.8
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 3:
        return math.nan
    rx, ry = _midranks(x[ok]), _midranks(y[ok])
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


#: bootstrap replicates are processed in blocks of about this many (replicate, pair) cells, so
#: the few working arrays of a block (256 KiB each) stay near the core (512 KiB of L2 here);
#: one (B, n) array of an agent-week sample is several MiB and made every pass a trip to
#: memory. 2^15 took 6 % less CPU than 2^14 for the demo's linkage analysis (8 alternating
#: runs), with identical results; 2^16 and more were slower for panels of 60-300 agents
_BLOCK_CELLS = 1 << 15


# average ranks of ties (``scipy.stats.rankdata``) without its per-call overhead; shared with
# the perception lens
_ties, _midranks = dist.ties, dist.midranks


def _weighted_midranks(v: np.ndarray, w: np.ndarray, ties=None) -> np.ndarray:
    """Mid-ranks each observation would get in a resample where it appears ``w[b, i]`` times.

    ``v``: (n,) values; ``w``: (B, n) counts; ``ties``: ``_ties(v)`` when already computed.
    Tied values share one mid-rank, exactly as ``rankdata`` of the resample with its
    duplicated rows.
    """
    order, first, last = _ties(v) if ties is None else ties
    # running weight in value order, with a leading 0: total weight before each position.
    # np.take, not w[:, order]: fancy indexing of columns returns a column-major array, which
    # makes every later pass along the rows strided (and several times slower)
    before = np.zeros((len(w), len(v) + 1))
    np.cumsum(np.take(w, order, axis=1), axis=1, out=before[:, 1:])
    # a run with weight before it b0 and up to its end b1 has mid-rank b0 + (b1 - b0 + 1) / 2;
    # whole numbers and halves, so exact
    return (np.take(before, first, axis=1) + np.take(before, last, axis=1) + 1.0) / 2.0


def _weighted_corr(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = w.sum(axis=1)
    # counts times mid-ranks (whole numbers and halves) sum exactly in any order, so the
    # one-pass einsum gives the same means as summing the products
    ma = np.einsum("ij,ij->i", w, a) / sw
    mb = np.einsum("ij,ij->i", w, b) / sw
    da, db = a - ma[:, None], b - mb[:, None]
    wda = w * da
    cov = (wda * db).sum(axis=1)
    va, vb = (wda * da).sum(axis=1), (w * db * db).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt(va * vb)


def bootstrap_spearman(x, y, clusters=None, *, bootstrap: int = 500, seed: int = 0,
                       alpha: float = 0.05, adjust: int = 1) -> dict:
    """Spearman's rho with a (cluster) bootstrap percentile interval.

    Parameters
    ----------
    x, y : array-like of equal length (NaN pairs are dropped).
    clusters : array-like, optional
        Cluster label per pair; a replicate draws whole clusters with replacement (all of an
        agent's weeks together). ``None`` resamples single pairs (the naive bootstrap).
    bootstrap : replicates (0: no interval).
    seed : seed of the replicate draws.
    alpha : 1 - confidence level.
    adjust : also report the interval at level ``1 - alpha/adjust`` (Bonferroni), as
        ``ci_low_adj`` / ``ci_high_adj``.

    Returns
    -------
    dict
        ``rho, ci_low, ci_high, ci_low_adj, ci_high_adj, p, n, clusters``; ``p`` is the
        two-sided bootstrap p-value ``2 * min(P(rho* <= 0), P(rho* >= 0))``.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    cl = np.arange(len(x)) if clusters is None else np.asarray(clusters)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y, cl = x[ok], y[ok], cl[ok]
    _, cid = np.unique(cl, return_inverse=True)
    k = int(cid.max()) + 1 if len(cid) else 0
    out = {"rho": spearman(x, y), "ci_low": math.nan, "ci_high": math.nan, "ci_low_adj": math.nan,
           "ci_high_adj": math.nan, "p": math.nan, "n": int(len(x)), "clusters": k}
    if bootstrap <= 0 or k < 3 or math.isnan(out["rho"]):
        return out
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(k, np.full(k, 1.0 / k), size=int(bootstrap)).astype(float)
    tx, ty = _ties(x), _ties(y)
    reps = np.empty(len(counts))
    rows = max(1, _BLOCK_CELLS // len(x))
    for lo in range(0, len(counts), rows):
        w = np.take(counts[lo:lo + rows], cid, axis=1)          # (rows, n) copies of each pair, row-major
        reps[lo:lo + rows] = _weighted_corr(_weighted_midranks(x, w, tx), _weighted_midranks(y, w, ty), w)
    reps = reps[~np.isnan(reps)]
    if len(reps) < 10:
        return out
    lo, hi, alo, ahi = np.quantile(reps, [alpha / 2, 1 - alpha / 2, alpha / (2 * adjust), 1 - alpha / (2 * adjust)])
    p = min(1.0, 2 * min(np.mean(reps <= 0), np.mean(reps >= 0)))
    out.update(ci_low=float(lo), ci_high=float(hi), ci_low_adj=float(alo), ci_high_adj=float(ahi), p=float(p))
    return out


def demean(values, groups) -> np.ndarray:
    """``values`` minus the mean of its group (NaN stays NaN and is left out of the mean)."""
    v = np.asarray(values, float)
    _, gid = np.unique(np.asarray(groups), return_inverse=True)
    ok = ~np.isnan(v)
    sums = np.bincount(gid[ok], weights=v[ok], minlength=gid.max() + 1 if len(gid) else 0)
    counts = np.bincount(gid[ok], minlength=len(sums))
    with np.errstate(invalid="ignore", divide="ignore"):
        return v - (sums / counts)[gid]


def association(df: pd.DataFrame, metric: str, outcome: str, cluster: str, *, within: bool = False,
                bootstrap: int = 500, seed: int = 0, alpha: float = 0.05) -> dict:
    """Spearman association of two columns of a panel, interval clustered by ``cluster``.

    ``within=True`` first removes each cluster's mean from both columns (within-agent
    association when ``cluster`` is the agent id).
    """
    d = df[[metric, outcome, cluster]].dropna()
    x, y = d[metric].to_numpy(float), d[outcome].to_numpy(float)
    # sorted codes group and order the clusters as their labels do, without sorting strings again
    _, code = np.unique(d[cluster].to_numpy(), return_inverse=True)
    if within:
        x, y = demean(x, code), demean(y, code)
    return bootstrap_spearman(x, y, code, bootstrap=bootstrap, seed=seed, alpha=alpha)


def lag_profile(panel: pd.DataFrame, metric: str, outcome: str, *, unit: str = _UNIT, time: str = _TIME,
                max_lag: int = 4, step: pd.Timedelta | pd.DateOffset = pd.Timedelta(weeks=1),
                within: bool = True, cluster: str = "auto", min_clusters: int = 10,
                bootstrap: int = 500, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Association of the metric in period t with the outcome in period t + k, k = 0..max_lag.

    Periods are matched by calendar (``time + k * step``), not by row position, so a
    missing week never shifts a lag. ``within`` removes each unit's mean from both series
    in the paired sample of each lag. ``cluster``: ``"unit"``, ``"time"`` (the metric's
    period) or ``"auto"`` (units when there are at least ``min_clusters`` of them).

    Returns
    -------
    DataFrame
        ``lag, rho, ci_low, ci_high, ci_low_adj, ci_high_adj, p, n, clusters`` (``_adj``:
        Bonferroni interval over the lags 1..max_lag).
    """
    # numpy arrays and row masks once, not sub-frames and a DataFrame merge per lag
    units, times = panel[unit].to_numpy(), panel[time]
    keyed = ~(pd.isna(units) | times.isna().to_numpy())
    has_m, has_o = keyed & panel[metric].notna().to_numpy(), keyed & panel[outcome].notna().to_numpy()
    # sorted unit codes group and order the clusters as the unit labels do
    ucode = np.full(len(panel), -1)
    ucode[keyed] = np.unique(units[keyed], return_inverse=True)[1]
    b_unit, o_unit = ucode[has_m], ucode[has_o]
    n_units = len(np.unique(b_unit))
    by = unit if cluster == "unit" or (cluster == "auto" and n_units >= min_clusters) else time
    x_all, y_all = panel[metric].to_numpy(float)[has_m], panel[outcome].to_numpy(float)[has_o]
    b_cluster = b_unit if by == unit else times.to_numpy()[has_m]
    b_keys = list(zip(b_unit.tolist(), _instants(times[has_m])))
    o_times = times[has_o]
    rows = []
    for k in range(int(max_lag) + 1):
        li, ri = _inner_pairs(b_keys, list(zip(o_unit.tolist(), _instants(o_times - k * step))))
        x, y = x_all[li], y_all[ri]
        if within and len(li):
            x, y = demean(x, b_unit[li]), demean(y, b_unit[li])
        res = bootstrap_spearman(x, y, b_cluster[li] if len(li) else None,
                                 bootstrap=bootstrap, seed=seed + k, alpha=alpha, adjust=max(1, int(max_lag)))
        rows.append({"lag": k, **res})
    return pd.DataFrame(rows)


def _instants(times: pd.Series) -> list[int]:
    """Datetimes as integer nanoseconds: hashable keys, whatever the column's resolution."""
    return times.to_numpy().astype("datetime64[ns]").view(np.int64).tolist()


def _inner_pairs(left: list, right: list) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (left, right) of the inner join on (unit, time) keys, in ``DataFrame.merge`` order."""
    where = {key: i for i, key in enumerate(right)}
    if len(where) == len(right):
        # at most one partner per left row: the join keeps the left rows that have one, in order
        li = np.array([i for i, key in enumerate(left) if key in where], dtype=np.intp)
        return li, np.array([where[left[i]] for i in li], dtype=np.intp)
    # repeated keys (a prepared panel has none): the many-to-many order is pandas' own
    pairs = pd.DataFrame(left, columns=["u", "t"]).assign(li=np.arange(len(left))).merge(
        pd.DataFrame(right, columns=["u", "t"]).assign(ri=np.arange(len(right))), on=["u", "t"], how="inner")
    return pairs["li"].to_numpy(), pairs["ri"].to_numpy()


@lru_cache(maxsize=16)
def _subsets(p: int) -> tuple:
    """Bitmask subsets of p predictors grouped by size: ((size, masks, member index array), ...)."""
    masks = np.arange(1 << p)
    bits = (masks[:, None] >> np.arange(p)) & 1
    size = bits.sum(axis=1)
    out = []
    for k in range(1, p + 1):
        sel = masks[size == k]
        out.append((k, sel, np.nonzero(bits[sel])[1].reshape(len(sel), k)))
    return tuple(out), size


def _r2_all_subsets(corr: np.ndarray, p: int) -> np.ndarray:
    """R² of every subset of predictors (bitmask index) from the correlation matrix.

    ``corr`` is one (p + 1, p + 1) matrix (outcome last) or a stack of them, one per
    bootstrap replicate; the result has shape ``corr.shape[:-2] + (2 ** p,)``. Subsets of one
    size are solved together (batched solve; when a subset is collinear, the pseudo-inverse
    gives the minimum-norm fit instead of an error).

    With ``a`` a subset's predictor correlations and ``b`` their correlations with the
    outcome, R² = b' a⁻¹ b = |y|² where ``L y = b`` and ``a = L L'`` (Cholesky). The
    factorisation runs elementwise over the whole stack (:func:`_cholesky_r2`): NumPy's
    batched ``solve`` makes one LAPACK call per system, 2,048 × 100 of them per analysis with
    11 predictors and 100 replicates, which was 0.74 s of the demo's linkage. A subset that is
    not clearly positive definite (collinear) is solved the old way.
    """
    groups, _ = _subsets(p)
    r2 = np.zeros(corr.shape[:-2] + (1 << p,))
    # the matrix axes first, so that each element of every subset's system is one contiguous
    # vector over (subsets, replicates)
    front = np.moveaxis(corr, (-2, -1), (0, 1))
    for _k, masks, idx in groups:
        cols = idx.T                                            # (k, subsets)
        a = front[cols[:, None, :], cols[None, :, :]]           # (k, k, subsets, *replicates)
        b = front[cols, p]                                      # (k, subsets, *replicates)
        fit, bad = _cholesky_r2(a, b)
        fit, bad = np.moveaxis(fit, 0, -1), np.moveaxis(bad, 0, -1)
        if bad.any():
            a_old = np.moveaxis(a, (0, 1, 2), (-2, -1, -3))[bad]
            b_old = np.moveaxis(b, (0, 1), (-1, -2))[bad]
            fit[bad] = (b_old * _subset_weights(a_old, b_old)).sum(axis=-1)
        r2[..., masks] = fit
    return r2


def _cholesky_r2(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(b' a⁻¹ b, not positive definite)`` for symmetric systems ``a`` (k, k, ...), ``b`` (k, ...).

    Cholesky factor and forward substitution with every sum accumulated in index order, one
    elementwise operation over all systems at a time (the systems run along the trailing
    axes): each system's result is the same bits whether it is solved alone or with others.
    A pivot at or below 1e-10 of its diagonal marks the system as collinear (its result is
    then meaningless and must be replaced).
    """
    k = a.shape[0]
    low = np.zeros(a.shape)
    y = np.zeros(b.shape)
    bad = np.zeros(a.shape[2:], bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(k):
            pivot = a[j, j].copy()
            for m in range(j):
                pivot -= low[j, m] ** 2
            bad |= ~(pivot > 1e-10 * a[j, j])
            root = np.sqrt(np.where(bad, 1.0, pivot))
            low[j, j] = root
            if j + 1 < k:                               # the column below the pivot
                col = a[j + 1:, j].copy()
                for m in range(j):
                    col -= low[j + 1:, m] * low[j, m]
                low[j + 1:, j] = col / root
            rhs = b[j].copy()
            for m in range(j):
                rhs -= low[j, m] * y[m]
            y[j] = rhs / root
    fit = y[0] ** 2
    for j in range(1, k):
        fit += y[j] ** 2
    return fit, bad


def _subset_weights(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Regression weights ``beta`` of the stacked systems ``a @ beta = b`` (subsets of one size)."""
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        if a.ndim > 3:
            # a stack of replicates: only a replicate with a collinear subset takes the
            # pseudo-inverse, as it would on its own
            return np.stack([_subset_weights(ai, bi) for ai, bi in zip(a, b)])
        return np.einsum("nij,nj->ni", np.linalg.pinv(a, hermitian=True), b)


def _shapley(r2: np.ndarray, p: int) -> np.ndarray:
    """Shapley shares of R²: each predictor's gain averaged over all orders of entry.

    ``r2``: (..., 2 ** p) from :func:`_r2_all_subsets`; returns (..., p).
    """
    _, size = _subsets(p)
    fact = np.array([math.factorial(i) for i in range(p + 1)], float)
    masks = np.arange(1 << p)
    shares = np.zeros(r2.shape[:-1] + (p,))
    for j in range(p):
        without = masks[(masks >> j) & 1 == 0]
        w = fact[size[without]] * fact[p - size[without] - 1] / fact[p]
        gain = np.take(r2, without | (1 << j), axis=-1) - np.take(r2, without, axis=-1)   # C-ordered, as above
        shares[..., j] = (w * gain).sum(axis=-1)
    return shares


def _r2_subset(corr: np.ndarray, p: int, idx: list) -> float:
    if not idx:
        return 0.0
    beta = np.linalg.lstsq(corr[np.ix_(idx, idx)], corr[idx, p], rcond=None)[0]
    return float(corr[idx, p] @ beta)


def relative_importance(df: pd.DataFrame, outcome: str, predictors, method: str = "lmg", *,
                        max_exact: int = 12, samples: int = 2000, seed: int = 0) -> pd.Series:
    """Relative importance of each predictor for ``outcome`` in a linear regression.

    Parameters
    ----------
    df : DataFrame with the outcome and predictor columns (rows with a NaN are dropped).
    method : ``"lmg"`` — Shapley decomposition of R² (Lindeman, Merenda & Gold 1980; the
        ``relaimpo`` "lmg" metric): each predictor's R² gain averaged over every order of
        entry. Exact for up to ``max_exact`` predictors (2^p subsets); beyond that an
        approximation by ``samples`` random orders (seeded), unbiased for each share.
        ``"johnson"`` — Johnson's (2000) relative weights: R² split through the orthogonal
        counterpart of the predictors (the R package ``rwa`` "raw" weights).

    Returns
    -------
    Series
        Indexed by predictor (input order); values sum to the model's R². ``attrs``: ``r2``,
        ``n``, ``method``, ``exact``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "b"])
    >>> d["y"] = d["a"] + rng.normal(size=200)
    >>> s = relative_importance(d, "y", ["a", "b"])
    >>> bool(s["a"] > s["b"])
    True
    """
    predictors = list(predictors)
    if method not in ("lmg", "johnson"):
        raise ValueError(f"method {method!r} is not one of 'lmg', 'johnson'")
    if not predictors:
        raise ValueError("relative_importance needs at least one predictor")
    missing = [c for c in [outcome, *predictors] if c not in df.columns]
    if missing:
        raise KeyError(f"relative_importance: column(s) {missing} not in the data; "
                       f"available: {', '.join(map(str, df.columns))}")
    d = df[predictors + [outcome]].astype(float).dropna()
    p = len(predictors)
    if len(d) <= p + 1:
        raise ValueError(f"relative_importance: {len(d)} complete rows for {p} predictors; need more than "
                         f"{p + 1}")
    corr = np.corrcoef(d.to_numpy().T)
    exact = True
    if method == "johnson":
        shares = _johnson(corr, p)
        r2 = _r2_subset(corr, p, list(range(p)))
    elif p <= max_exact:
        r2_all = _r2_all_subsets(corr, p)
        shares = _shapley(r2_all, p)
        r2 = r2_all[-1]
    else:
        exact = False
        rng = np.random.default_rng(seed)
        shares = np.zeros(p)
        for _ in range(int(samples)):
            order = rng.permutation(p)
            prev, idx = 0.0, []
            for j in order:
                idx.append(int(j))
                cur = _r2_subset(corr, p, idx)
                shares[j] += cur - prev
                prev = cur
        shares /= samples
        r2 = _r2_subset(corr, p, list(range(p)))
    out = pd.Series(shares, index=predictors, name=method)
    out.attrs.update(r2=float(r2), n=int(len(d)), method=method, exact=exact)
    return out


def importance_interval(df: pd.DataFrame, outcome: str, predictors, clusters=None, *, method: str = "lmg",
                        bootstrap: int = 100, seed: int = 0, alpha: float = 0.05,
                        max_exact: int = 12) -> pd.DataFrame:
    """Cluster-bootstrap percentile intervals of :func:`relative_importance` shares.

    A replicate draws whole clusters with replacement (column ``clusters``, e.g. the agent)
    and recomputes the shares from the replicate's weighted correlation matrix. Only for
    exact LMG (up to ``max_exact`` predictors) and Johnson's weights; beyond that the
    intervals are NaN (sampled orders on every replicate would be too slow).

    Returns
    -------
    DataFrame
        Indexed by predictor: ``ci_low``, ``ci_high``.
    """
    predictors = list(predictors)
    cols = predictors + [outcome] + ([clusters] if clusters else [])
    d = df[cols].dropna()
    p = len(predictors)
    out = pd.DataFrame({"ci_low": np.nan, "ci_high": np.nan}, index=pd.Index(predictors, name="predictor"))
    if bootstrap <= 0 or (method == "lmg" and p > max_exact) or len(d) <= p + 1:
        return out
    x = d[predictors + [outcome]].to_numpy(float)
    _, cid = np.unique(d[clusters].to_numpy() if clusters else np.arange(len(d)), return_inverse=True)
    k = int(cid.max()) + 1
    rng = np.random.default_rng(seed)
    corrs = []
    for counts in rng.multinomial(k, np.full(k, 1.0 / k), size=int(bootstrap)):
        w = counts[cid].astype(float)
        xc = x - (w @ x) / w.sum()
        cov = (xc * w[:, None]).T @ xc
        sd = np.sqrt(np.diag(cov))
        if (sd == 0).any():
            continue
        corrs.append(cov / np.outer(sd, sd))
    if len(corrs) < 10:
        return out
    # all replicates' subsets in one batched solve per subset size
    reps = (_shapley(_r2_all_subsets(np.array(corrs), p), p) if method == "lmg"
            else np.array([_johnson(corr, p) for corr in corrs]))
    out["ci_low"] = np.quantile(reps, alpha / 2, axis=0)
    out["ci_high"] = np.quantile(reps, 1 - alpha / 2, axis=0)
    return out


def _johnson(corr: np.ndarray, p: int) -> np.ndarray:
    """Johnson's raw relative weights from the correlation matrix (outcome last)."""
    rxx, rxy = corr[:p, :p], corr[:p, p]
    evals, evecs = np.linalg.eigh(rxx)
    lam = evecs @ np.diag(np.sqrt(np.clip(evals, 0, None))) @ evecs.T   # symmetric square root
    beta = np.linalg.lstsq(lam, rxy, rcond=None)[0]
    return (lam ** 2) @ (beta ** 2)


def trend(values, times, *, alpha: float = 0.05) -> dict:
    """OLS slope of ``values`` on ``times`` with its t interval.

    ``times`` may be numbers or datetimes (slope per week for datetimes).

    Returns
    -------
    dict
        ``slope, ci_low, ci_high, intercept, n, mean``.
    """
    y = np.asarray(values, float)
    t = pd.Series(times)
    if pd.api.types.is_datetime64_any_dtype(t):
        t = (t - t.min()).dt.total_seconds() / (7 * 86400)
    t = t.to_numpy(float)
    ok = ~(np.isnan(y) | np.isnan(t))
    y, t = y[ok], t[ok]
    n = len(y)
    out = {"slope": math.nan, "ci_low": math.nan, "ci_high": math.nan, "intercept": math.nan, "n": n,
           "mean": float(y.mean()) if n else math.nan}
    if n < 3 or np.ptp(t) == 0:
        return out
    tc = t - t.mean()
    sxx = float(tc @ tc)
    slope = float(tc @ (y - y.mean()) / sxx)
    intercept = float(y.mean() - slope * t.mean())
    resid = y - intercept - slope * t
    se = math.sqrt(float(resid @ resid) / (n - 2) / sxx)
    q = dist.t_ppf(1 - alpha / 2, n - 2)
    out.update(slope=slope, ci_low=slope - q * se, ci_high=slope + q * se, intercept=intercept)
    return out


# =============================================================================================
# data preparation: metrics, outcomes, panels
# =============================================================================================

def windowed_kpis() -> list[str]:
    """KPIs computed from a look-ahead window (repeat / complaint within N days)."""
    from .kpi_compute import load_formulas
    from .columns import Derived
    keys = (Derived.FOLLOWED_BY_REPEAT, Derived.FOLLOWED_BY_COMPLAINT)
    return sorted(k for k, f in load_formulas().items()
                  if any(key in f"{f.numerator} {f.denominator}" for key in keys))


def censor_windows(df: pd.DataFrame, data_end, window_days: int, kpis=None, time: str = "week") -> pd.DataFrame:
    """Blank look-ahead KPIs in weeks whose window reaches past ``data_end``.

    A contact on the last days of the data cannot yet have its repeat contact, so the
    last week's repeat rate is biased low; trend and lag estimates would read that as an
    improvement.
    """
    if data_end is None or df is None or time not in df.columns:
        return df
    kpis = windowed_kpis() if kpis is None else list(kpis)
    end = pd.Timestamp(data_end).normalize()
    cut = pd.to_datetime(df[time]) + pd.Timedelta(days=6 + int(window_days)) > end
    out = df.copy()
    for k in kpis:
        if k in out.columns and cut.any():
            out.loc[cut, k] = np.nan
    return out


def _kpi_cols(df: pd.DataFrame) -> list[str]:
    return [c[: -len(_N)] for c in df.columns if c.endswith(_N) and c[: -len(_N)] in df.columns]


def _library():
    return load_library()


def _outcome_directions(settings) -> dict[str, str]:
    """Better direction of every outcome: the KPI library's, then the params' own additions."""
    known = dict(OUTCOMES)
    known.update(getattr(settings, "outcome_directions", {}) or {})
    return known


def metric_table(register: pd.DataFrame, available: list[str], library=None) -> pd.DataFrame:
    """One row per register metric: its KPI column, better direction, counterbalances, served outcomes.

    ``note`` is empty when the metric can be assessed, else why not.
    """
    from .register import normalise_register, parse_counterbalance
    library = library if library is not None else load_library()
    reg = normalise_register(register)
    rows = []
    for rec in reg.to_dict("records"):
        kpi = rec[R.KPI]
        known = kpi in library
        better = library.better(kpi) if known else (rec[R.DIRECTION] if rec[R.DIRECTION] in ("higher", "lower")
                                                    else "")
        serves = library.serves(kpi) if known else []
        note = ""
        if not kpi or kpi == "custom" or not known:
            note = (f"KPI {kpi!r} is not in the KPI library, so the lens cannot compute it from the contacts"
                    if kpi and kpi != "custom" else "a custom metric: the contacts do not give its values")
        elif kpi not in available:
            note = f"KPI {kpi} cannot be computed from this contacts export (a required column is missing)"
        elif not better:
            note = "no better direction (higher/lower) is known"
        rows.append({"metric_id": rec[R.METRIC_ID], "name": rec[R.NAME] or rec[R.METRIC_ID], "kpi": kpi,
                     "better": better, "counterbalance": parse_counterbalance(rec[R.COUNTERBALANCE]),
                     "incentive": rec[R.INCENTIVE_LINK], "serves": list(serves), "note": note})
    return pd.DataFrame(rows, columns=["metric_id", "name", "kpi", "better", "counterbalance", "incentive",
                                       "serves", "note"])


def _grain(periods: pd.Series) -> str:
    p = pd.to_datetime(periods).dropna()
    if len(p) and (p.dt.day_of_week == 0).all():
        gaps = np.diff(np.sort(p.unique()))
        if len(gaps) == 0 or (pd.to_timedelta(gaps) % pd.Timedelta(days=7) == pd.Timedelta(0)).all():
            return "week"
    if len(p) and (p.dt.day == 1).all():
        return "month"
    return ""


def _aggregate(team_week: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Denominator-weighted KPI values at a coarser grain (exact for ratio KPIs)."""
    kpis = _kpi_cols(team_week)
    tw = team_week.copy()
    agg = {"contacts": tw.groupby(by)["contacts"].sum()} if "contacts" in tw else {}
    for k in kpis:
        num = (tw[k] * tw[k + _N]).where(tw[k].notna())
        den = tw[k + _N].where(tw[k].notna())
        g_num, g_den = num.groupby([tw[b] for b in by]).sum(min_count=1), den.groupby([tw[b] for b in by]).sum()
        agg[k] = g_num / g_den.replace(0, np.nan)
        agg[k + _N] = g_den
    return pd.DataFrame(agg).reset_index()


def outcome_panel(team_week: pd.DataFrame, outcomes: pd.DataFrame | None = None, *,
                  counts_per_1000: bool = True) -> tuple[pd.DataFrame, str, list[str]]:
    """The team-period panel the team-level analyses run on.

    Without an outcomes file: ``team_week`` as ``unit`` (team) × ``time`` (week). With one,
    its numeric columns are merged at the file's own grain: team × week, team × month,
    centre × week or centre × month (KPIs re-aggregated with their denominators). Outcome
    columns of whole counts become a rate per 1,000 contacts when ``counts_per_1000``.

    Returns
    -------
    (panel, grain, outcome_columns)
        ``grain`` like ``"team-week"``; ``outcome_columns`` the file's outcome columns.

    Raises
    ------
    InputDataError
        When the file's ``period`` is neither weekly (Mondays) nor monthly (1st of month).
    """
    tw = team_week.copy()
    tw["week"] = pd.to_datetime(tw["week"])
    if outcomes is None or not len(outcomes):
        panel = tw.rename(columns={Contact.TEAM: _UNIT, "week": _TIME})
        return panel, "team-week", []
    oc = outcomes.copy()
    oc[Outcome.PERIOD] = pd.to_datetime(oc[Outcome.PERIOD])
    cols = [c for c in oc.columns if c not in (Outcome.PERIOD, Outcome.TEAM)
            and pd.api.types.is_numeric_dtype(oc[c])]
    grain = _grain(oc[Outcome.PERIOD])
    if not grain:
        raise InputDataError("outcomes file: column 'period' holds neither week starts (Mondays) nor month "
                             "starts (the 1st); the linkage lens cannot line it up with the contacts. Give "
                             "each row the Monday of its week or the first day of its month.")
    has_team = Outcome.TEAM in oc.columns and oc[Outcome.TEAM].notna().any()
    if grain == "month":
        tw["month"] = tw["week"].dt.to_period("M").dt.to_timestamp()
    key = "week" if grain == "week" else "month"
    by = [Contact.TEAM, key] if has_team else [key]
    base = tw if (has_team and grain == "week") else _aggregate(tw, by)
    if not has_team:
        base[Contact.TEAM] = "centre"
        oc[Outcome.TEAM] = "centre"
    oc = oc.rename(columns={Outcome.PERIOD: key})
    oc[Outcome.TEAM] = oc[Outcome.TEAM].astype(str)
    base[Contact.TEAM] = base[Contact.TEAM].astype(str)
    panel = base.merge(oc[[Outcome.TEAM, key, *cols]], on=[Contact.TEAM, key], how="left")
    if counts_per_1000 and "contacts" in panel:
        for c in cols:
            v = oc[c].dropna()
            if len(v) and (v >= 0).all() and (v == np.round(v)).all() and v.max() > 1:
                panel[c] = panel[c] / panel["contacts"].replace(0, np.nan) * 1000.0
                panel.attrs.setdefault("per_1000", []).append(c)
    panel = panel.rename(columns={Contact.TEAM: _UNIT, key: _TIME})
    return panel, f"{'team' if has_team else 'centre'}-{grain}", cols


def outcome_table(available: list[str], file_columns: list[str], settings, grain: str,
                  per_1000: list[str] = ()) -> pd.DataFrame:
    """One row per outcome: id, better direction, where it comes from, grain."""
    directions = _outcome_directions(settings)
    rows = [{"outcome": o, "better": directions.get(o, ""), "source": "contacts", "grain": "agent-week",
             "unit": ""} for o in CONTACT_OUTCOMES if o in available]
    rows += [{"outcome": o, "better": directions.get(o, ""), "source": "outcomes file", "grain": grain,
              "unit": "per 1,000 contacts" if o in per_1000 else ""}
             for o in file_columns if o not in CONTACT_OUTCOMES]
    return pd.DataFrame(rows, columns=["outcome", "better", "source", "grain", "unit"])


def _sign(better: str) -> int:
    return 1 if better == "higher" else -1 if better == "lower" else 0


# =============================================================================================
# the analysis
# =============================================================================================

@dataclass
class LinkageResult:
    """Every table the lens computes (see :func:`analyse`); Findings come from :func:`linkage_findings`."""
    metrics: pd.DataFrame
    outcomes: pd.DataFrame
    associations: pd.DataFrame
    lags: pd.DataFrame
    importance: pd.DataFrame
    trends: pd.DataFrame
    series: pd.DataFrame
    decoupling: pd.DataFrame
    counterbalance: pd.DataFrame
    classes: pd.DataFrame
    grain: str = "team-week"
    team_week: pd.DataFrame = field(default_factory=pd.DataFrame)


def _require(df: pd.DataFrame, columns, name: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputDataError(f"linkage lens: table {name} lacks column(s) {missing} (it has: "
                             f"{', '.join(map(str, df.columns))}); re-run the prepare step "
                             "(kpi-audit run) or map the column in the params file.")


def _eligible_agents(aw: pd.DataFrame, col_m: str, col_o: str, min_surveys: int, min_weeks: int,
                     min_cell_n: int) -> tuple[pd.DataFrame, int, int]:
    """Agent-weeks usable for (metric, outcome) and how many agents the guards dropped."""
    # numpy rather than groupby: this runs for every metric x outcome pair
    agents, code = np.unique(aw[Contact.AGENT_ID].astype(str).to_numpy(), return_inverse=True)
    n_o = aw[col_o + _N].fillna(0).to_numpy(float)
    ok = (n_o >= min_cell_n) & aw[col_m].notna().to_numpy() & aw[col_o].notna().to_numpy()
    weeks = np.bincount(code[ok], minlength=len(agents))
    obs = np.bincount(code[ok], weights=n_o[ok], minlength=len(agents))
    good = (weeks >= min_weeks) & (obs >= min_surveys)
    rows = ok & good[code]
    d = aw.loc[rows, [Contact.AGENT_ID, col_m, col_o, col_o + _N]]
    return d, int(good.sum()), int(len(agents) - good.sum())


def _eligible_units(panel: pd.DataFrame, col_o: str, min_surveys: int, min_weeks: int,
                    contact_outcome: bool) -> pd.DataFrame:
    d = panel[panel[col_o].notna()]
    per = d.groupby(_UNIT).agg(weeks=(col_o, "size"))
    if contact_outcome and col_o + _N in d:
        per["obs"] = d.groupby(_UNIT)[col_o + _N].sum()
    ok = per["weeks"] >= min_weeks
    if "obs" in per:
        ok &= per["obs"] >= min_surveys
    return panel[panel[_UNIT].isin(per.index[ok])]


def _centre_series(centre_week: pd.DataFrame, panel: pd.DataFrame, grain: str,
                   file_cols: list[str]) -> pd.DataFrame:
    """Long table ``time, measure, value``: centre-level series of every KPI and outcome."""
    cw = centre_week.copy()
    cw["week"] = pd.to_datetime(cw["week"])
    parts = [cw.melt(id_vars=["week"], value_vars=_kpi_cols(cw), var_name="measure", value_name="value")
             .rename(columns={"week": _TIME})]
    if file_cols:
        w = panel["contacts"] if "contacts" in panel else pd.Series(1.0, index=panel.index)
        for c in file_cols:
            ok = panel[c].notna()
            g = (panel.loc[ok, c] * w[ok]).groupby(panel.loc[ok, _TIME]).sum() / w[ok].groupby(
                panel.loc[ok, _TIME]).sum()
            parts.append(pd.DataFrame({_TIME: g.index, "measure": c, "value": g.to_numpy()}))
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["measure", _TIME], kind="mergesort").reset_index(drop=True)


def analyse(agent_week: pd.DataFrame, team_week: pd.DataFrame, centre_week: pd.DataFrame,
            register: pd.DataFrame, outcomes: pd.DataFrame | None = None, *, thresholds=None, settings=None,
            library=None, data_end=None) -> LinkageResult:
    """Run every linkage analysis on the prepared panels.

    Parameters
    ----------
    agent_week, team_week, centre_week : prepared tables (docs/architecture.md).
    register : the metric register.
    outcomes : the optional outcomes file (``period``, ``team``, outcome columns).
    thresholds : ``audit_lib.settings.Thresholds`` (``min_surveys``, ``min_weeks``, ``repeat_window_days``).
    settings : ``audit_lib.settings.LinkageSettings``.
    library : the KPI library (default: the bundled one).
    data_end : timestamp of the last contact in the data (censors look-ahead KPIs).
    """
    from .settings import LinkageSettings, Thresholds
    th = thresholds or Thresholds()
    st = settings or LinkageSettings()
    lib = library if library is not None else _library()
    B, seed, alpha = int(st.bootstrap), int(st.seed), float(st.alpha)

    _require(agent_week, (Contact.AGENT_ID, Contact.TEAM, "week"), Prepared.AGENT_WEEK)
    _require(team_week, (Contact.TEAM, "week", "contacts"), Prepared.TEAM_WEEK)
    _require(centre_week, ("week",), Prepared.CENTRE_WEEK)
    if outcomes is not None:
        _require(outcomes, (Outcome.PERIOD,), "outcomes file")
    aw = censor_windows(agent_week, data_end, th.repeat_window_days)
    tw = censor_windows(team_week, data_end, th.repeat_window_days)
    cw = censor_windows(centre_week, data_end, th.repeat_window_days)
    aw = aw.assign(week=pd.to_datetime(aw["week"]))
    available = _kpi_cols(aw)
    metrics = metric_table(register, available, lib)
    panel, grain, file_cols = outcome_panel(tw, outcomes, counts_per_1000=st.counts_per_1000)
    per_1000 = panel.attrs.get("per_1000", [])
    outs = outcome_table(available, file_cols, st, grain, per_1000)
    series = _centre_series(cw, panel, grain, [c for c in file_cols if c not in CONTACT_OUTCOMES])
    contact_panel = tw.assign(week=pd.to_datetime(tw["week"])).rename(columns={Contact.TEAM: _UNIT,
                                                                               "week": _TIME})
    step = pd.Timedelta(weeks=1) if grain.endswith("week") else pd.DateOffset(months=1)

    assoc_rows, lag_rows = [], []
    usable = metrics[metrics["note"] == ""]
    kpis = list(dict.fromkeys(usable["kpi"]))
    for oi, o in enumerate(outs.to_dict("records")):
        oid = o["outcome"]
        if o["source"] == "contacts":
            p, lag_step = _eligible_units(contact_panel, oid, th.min_surveys, th.min_weeks, True), pd.Timedelta(weeks=1)
        else:
            p, lag_step = _eligible_units(panel, oid, th.min_surveys, th.min_weeks, False), step
        units = p[_UNIT].nunique()
        t_note = "" if units >= 1 and len(p) >= th.min_weeks else (
            f"fewer than {th.min_weeks} periods of {oid} in any unit")
        for ki, kpi in enumerate(kpis):
            if kpi == oid:
                continue
            s = seed + 1000 * oi + 10 * ki
            served_by = usable.loc[usable["kpi"] == kpi, "serves"]
            served = any(oid in sv for sv in served_by)
            if o["source"] == "contacts":
                d, n_agents, dropped = _eligible_agents(aw, kpi, oid, th.min_surveys, th.min_weeks, st.min_cell_n)
                note = "" if n_agents >= st.min_clusters else (
                    f"only {n_agents} agent(s) have {th.min_weeks}+ weeks and {th.min_surveys}+ {oid} "
                    f"observations (need {st.min_clusters})")
                for kind, within in (("pooled", False), ("within", True)):
                    res = (association(d, kpi, oid, Contact.AGENT_ID, within=within, bootstrap=B, seed=s,
                                       alpha=alpha) if not note else {})
                    assoc_rows.append({"kpi": kpi, "outcome": oid, "level": "agent-week", "kind": kind,
                                       "rho": res.get("rho", math.nan), "ci_low": res.get("ci_low", math.nan),
                                       "ci_high": res.get("ci_high", math.nan), "n": res.get("n", 0),
                                       "clusters": res.get("clusters", n_agents), "dropped": dropped,
                                       "p": res.get("p", math.nan),
                                       "served": served, "note": note})
            if served or o["source"] != "contacts":
                # the later lags are reported for a served outcome only; otherwise just lag 0 is used
                # (its rho, interval and p do not depend on how many lags follow it)
                max_lag = st.max_lag if served else 0
                prof = (lag_profile(p, kpi, oid, max_lag=max_lag, step=lag_step, within=units > 1,
                                    min_clusters=st.min_clusters, bootstrap=B, seed=s + 1, alpha=alpha)
                        if not t_note else pd.DataFrame({"lag": range(max_lag + 1)}))
                if o["source"] != "contacts":
                    # a file outcome has no agent-week level: its association rows are lag 0 at team level
                    r0 = prof.iloc[0].to_dict() if not t_note else {}
                    pooled = (lag_profile(p, kpi, oid, max_lag=0, step=lag_step, within=False,
                                          min_clusters=st.min_clusters, bootstrap=B, seed=s + 2, alpha=alpha)
                              .iloc[0].to_dict() if not t_note else {})
                    for kind, res in (("pooled", pooled), ("within", r0)):
                        assoc_rows.append({"kpi": kpi, "outcome": oid, "level": grain, "kind": kind,
                                           "rho": res.get("rho", math.nan), "ci_low": res.get("ci_low", math.nan),
                                           "ci_high": res.get("ci_high", math.nan), "n": res.get("n", 0),
                                           "clusters": res.get("clusters", units), "dropped": 0,
                                           "p": res.get("p", math.nan),
                                           "served": served, "note": t_note})
                if served:
                    for r in prof.to_dict("records"):
                        lag_rows.append({"kpi": kpi, "outcome": oid, "grain": grain if o["source"] != "contacts"
                                         else "team-week", **r, "note": t_note})
    associations = pd.DataFrame(assoc_rows, columns=["kpi", "outcome", "level", "kind", "rho", "ci_low",
                                                     "ci_high", "n", "clusters", "dropped", "p", "served", "note"])
    lags = pd.DataFrame(lag_rows)
    if lags.empty:
        lags = pd.DataFrame(columns=["kpi", "outcome", "grain", "lag", "rho", "ci_low", "ci_high", "ci_low_adj",
                                     "ci_high_adj", "p", "n", "clusters", "note"])

    importance = _importance(aw, panel, usable, outs, th, st)
    trends, decoupling = _decoupling(series, metrics, outs, th, st)
    counterbalance = _counterbalance(tw, metrics, th, st)
    result = LinkageResult(metrics=metrics, outcomes=outs, associations=associations, lags=lags,
                           importance=importance, trends=trends, series=series, decoupling=decoupling,
                           counterbalance=counterbalance, classes=pd.DataFrame(), grain=grain,
                           team_week=tw.assign(week=pd.to_datetime(tw["week"])))
    result.classes = _classify(result, st)
    return result


def _importance(aw, panel, usable, outs, th, st) -> pd.DataFrame:
    rows = []
    kpis = list(dict.fromkeys(usable["kpi"]))
    for oi, o in enumerate(outs.to_dict("records")):
        oid = o["outcome"]
        preds = [k for k in kpis if k != oid]
        if o["source"] == "contacts":
            d = aw[aw[oid + _N].fillna(0) >= st.min_cell_n]
            per = d.groupby(Contact.AGENT_ID).agg(weeks=(oid, "count"), obs=(oid + _N, "sum"))
            keep = per.index[(per["weeks"] >= th.min_weeks) & (per["obs"] >= th.min_surveys)]
            d, level, cluster = d[d[Contact.AGENT_ID].isin(keep)], "agent-week", Contact.AGENT_ID
        else:
            d, level = panel, o["grain"]
            cluster = _UNIT if panel[_UNIT].nunique() >= st.min_clusters else _TIME
        preds = [k for k in preds if k in d and d[k].notna().mean() >= 0.8 and d[k].nunique() > 1]
        dd = d[preds + [oid, cluster]].dropna()
        # at least 4 complete rows per predictor (and 20 in all) before R² is split between them
        if not preds or len(dd) < max(20, 4 * len(preds)):
            continue
        lmg = relative_importance(dd, oid, preds, "lmg", seed=st.seed)
        joh = relative_importance(dd, oid, preds, "johnson")
        ci = importance_interval(dd, oid, preds, cluster, bootstrap=st.importance_bootstrap,
                                 seed=st.seed + 7 * oi, alpha=st.alpha)
        for k in preds:
            rows.append({"outcome": oid, "kpi": k, "level": level, "lmg": float(lmg[k]),
                         "ci_low": float(ci.loc[k, "ci_low"]), "ci_high": float(ci.loc[k, "ci_high"]),
                         "johnson": float(joh[k]), "r2": lmg.attrs["r2"], "n": lmg.attrs["n"],
                         "exact": lmg.attrs["exact"], "rank": int((lmg > lmg[k]).sum() + 1),
                         "predictors": len(preds)})
    return pd.DataFrame(rows, columns=["outcome", "kpi", "level", "lmg", "ci_low", "ci_high", "johnson", "r2", "n",
                                       "exact", "rank", "predictors"])


def _improvement(t: dict, better: str) -> tuple[float, float, float]:
    """Slope, interval in the *improving* direction (positive = getting better)."""
    s = _sign(better)
    lo, hi = sorted((s * t["ci_low"], s * t["ci_high"]))
    return s * t["slope"], lo, hi


def _decoupling(series, metrics, outs, th, st) -> tuple[pd.DataFrame, pd.DataFrame]:
    directions = dict(zip(outs["outcome"], outs["better"]))
    trend_rows = {}
    for measure, g in series.groupby("measure", sort=True):
        t = trend(g["value"].to_numpy(), g[_TIME], alpha=st.alpha)
        trend_rows[measure] = t
    trends = pd.DataFrame([{"measure": m, **t} for m, t in trend_rows.items()],
                          columns=["measure", "slope", "ci_low", "ci_high", "intercept", "n", "mean"])
    rows = []
    for m in metrics.to_dict("records"):
        for oid in m["serves"]:
            base = {"metric_id": m["metric_id"], "kpi": m["kpi"], "outcome": oid}
            reason = m["note"]
            if not reason and oid not in directions:
                reason = f"outcome {oid} is not in the data"
            if not reason and not directions.get(oid):
                reason = f"the better direction of outcome {oid} is unknown (set linkage.outcome_directions)"
            tm, to = trend_rows.get(m["kpi"]), trend_rows.get(oid)
            if not reason and (tm is None or to is None or tm["n"] < th.min_weeks or to["n"] < th.min_weeks):
                reason = f"fewer than {th.min_weeks} periods with both {m['kpi']} and {oid}"
            if reason:
                rows.append({**base, "assessable": False, "decoupled": False, "severity": "not_assessable",
                             "reason": reason})
                continue
            mi, mlo, mhi = _improvement(tm, m["better"])
            oi, olo, ohi = _improvement(to, directions[oid])
            periods = tm["n"] - 1
            change = mi * periods / max(abs(tm["mean"]), 1e-12)
            metric_improves = mlo > 0 and change >= st.min_change
            outcome_not_better = olo <= 0
            decoupled = bool(metric_improves and outcome_not_better)
            severity = ("high" if ohi < 0 else "medium") if decoupled else "ok"
            rows.append({**base, "assessable": True, "decoupled": decoupled, "severity": severity,
                         "metric_slope": mi, "metric_ci_low": mlo, "metric_ci_high": mhi,
                         "metric_change": change, "outcome_slope": oi, "outcome_ci_low": olo,
                         "outcome_ci_high": ohi, "n": int(min(tm["n"], to["n"])), "reason": ""})
    cols = ["metric_id", "kpi", "outcome", "assessable", "decoupled", "severity", "metric_slope", "metric_ci_low",
            "metric_ci_high", "metric_change", "outcome_slope", "outcome_ci_low", "outcome_ci_high", "n", "reason"]
    return trends, pd.DataFrame(rows, columns=cols)


def _counterbalance(tw, metrics, th, st) -> pd.DataFrame:
    by_id = {m["metric_id"]: m for m in metrics.to_dict("records")}
    tw = tw.assign(week=pd.to_datetime(tw["week"]))
    teams = [(team, g.sort_values("week")) for team, g in tw.groupby(Contact.TEAM, sort=True)]
    rows = []
    for m in metrics.to_dict("records"):
        for cb in m["counterbalance"]:
            base = {"metric_id": m["metric_id"], "counterbalance": cb}
            pair = by_id.get(cb)
            reason = m["note"] or ("" if pair is not None else f"counterbalance {cb} is not in the register")
            if not reason and pair["note"]:
                reason = f"counterbalance {cb}: {pair['note']}"
            if not reason and pair["kpi"] == m["kpi"]:
                reason = f"counterbalance {cb} is the same KPI ({m['kpi']})"
            if reason:
                rows.append({**base, "team": "", "assessable": False, "worsened": False, "reason": reason})
                continue
            km, kc = m["kpi"], pair["kpi"]
            sm, sc = _sign(m["better"]), _sign(pair["better"])
            for team, g in teams:
                g = g.dropna(subset=[km, kc])
                obs = min(g[km + _N].sum(), g[kc + _N].sum())
                if len(g) < th.min_weeks or obs < th.min_surveys:
                    rows.append({**base, "team": str(team), "assessable": False, "worsened": False,
                                 "reason": f"team {team}: {len(g)} weeks and {int(obs)} observations "
                                           f"(need {th.min_weeks} and {th.min_surveys})"})
                    continue
                tm = trend(g[km].to_numpy(), g["week"], alpha=st.alpha)
                tc = trend(g[kc].to_numpy(), g["week"], alpha=st.alpha)
                mi, mlo, mhi = _improvement(tm, m["better"])
                ci, clo, chi = _improvement(tc, pair["better"])
                # week on week: consecutive calendar weeks only
                gap = g["week"].diff() == pd.Timedelta(weeks=1)
                dm, dc = sm * g[km].diff()[gap], sc * g[kc].diff()[gap]
                improved = dm > 0
                share = float((dc[improved] < 0).mean()) if improved.any() else math.nan
                worsened = bool(mlo > 0 and chi < 0)
                rows.append({**base, "team": str(team), "assessable": True, "worsened": worsened,
                             "metric_slope": mi, "metric_ci_low": mlo, "metric_ci_high": mhi,
                             "cb_slope": ci, "cb_ci_low": clo, "cb_ci_high": chi, "weeks": int(len(g)),
                             "improved_weeks": int(improved.sum()), "cb_worse_share": share, "reason": ""})
    cols = ["metric_id", "counterbalance", "team", "assessable", "worsened", "metric_slope", "metric_ci_low",
            "metric_ci_high", "cb_slope", "cb_ci_low", "cb_ci_high", "weeks", "improved_weeks", "cb_worse_share",
            "reason"]
    return pd.DataFrame(rows, columns=cols)


def _aligned(r: dict, s: int) -> tuple[float, float, float]:
    lo, hi = sorted((s * r["ci_low"], s * r["ci_high"]))
    return s * r["rho"], lo, hi


def _classify(res: LinkageResult, st) -> pd.DataFrame:
    directions = dict(zip(res.outcomes["outcome"], res.outcomes["better"]))
    assoc = {(r["kpi"], r["outcome"], r["kind"]): r for r in res.associations.to_dict("records")}
    dec = {(r["metric_id"], r["outcome"]): r for r in res.decoupling.to_dict("records")}
    rows = []
    for m in res.metrics.to_dict("records"):
        for oid in m["serves"]:
            base = {"metric_id": m["metric_id"], "kpi": m["kpi"], "outcome": oid}
            reason = m["note"]
            if not reason and oid not in directions:
                reason = (f"outcome {oid} is not in the data (" + ("no outcomes file was supplied"
                          if oid not in CONTACT_OUTCOMES else "the contacts lack its column") + ")")
            if not reason and not directions.get(oid):
                reason = f"the better direction of outcome {oid} is unknown (set linkage.outcome_directions)"
            pooled, within = assoc.get((m["kpi"], oid, "pooled")), assoc.get((m["kpi"], oid, "within"))
            if not reason and (within is None or math.isnan(within["rho"]) or math.isnan(within["ci_low"])):
                reason = (within or {}).get("note") or "too little data for an interval"
            if reason:
                rows.append({**base, "label": "not_assessable", "reason": reason, "rho": math.nan,
                             "ci_low": math.nan, "ci_high": math.nan, "n": 0, "basis": ""})
                continue
            s = _sign(m["better"]) * _sign(directions[oid])
            w_rho, w_lo, w_hi = _aligned(within, s)
            # several outcomes per metric: significance at alpha / (number of served outcomes)
            level = st.alpha / max(1, len(m["serves"]))
            sig = within["p"] < level
            p_rho = s * pooled["rho"] if pooled is not None and not math.isnan(pooled["rho"]) else 0.0
            basis = f"within-{'agent' if within['level'] == 'agent-week' else 'team'} association"
            label = "weak"
            d = dec.get((m["metric_id"], oid))
            if d is not None and d["decoupled"]:
                label, basis = "decoupled", "trend over the period"
            elif sig and w_rho < 0 and -w_rho >= st.min_rho and p_rho <= 0:
                label = "adverse"
            elif sig and w_rho > 0 and w_rho >= st.min_rho and p_rho >= 0:
                label = "linked"
            rows.append({**base, "label": label, "reason": basis, "rho": w_rho, "ci_low": w_lo, "ci_high": w_hi,
                         "n": int(within["n"]), "basis": basis})
    out = pd.DataFrame(rows, columns=["metric_id", "kpi", "outcome", "label", "reason", "rho", "ci_low", "ci_high",
                                      "n", "basis"])
    return out


# =============================================================================================
# Findings
# =============================================================================================

def _fmt_ci(rho, lo, hi) -> str:
    return f"{rho:+.2f} (95% interval {lo:+.2f} to {hi:+.2f})"


def linkage_findings(res: LinkageResult) -> pd.DataFrame:
    """The lens's Findings rows from an :func:`analyse` result (checks of docs/architecture.md)."""
    rows = []
    # look-ups built once: filtering the tables per metric and outcome was most of the cost
    assoc = {}
    for r in res.associations.to_dict("records"):
        assoc.setdefault((r["kpi"], r["outcome"], r["kind"]), r)
    lags = dict(iter(res.lags.groupby(["kpi", "outcome"], sort=False)))
    decoupling, counterbalance = _records_by(res.decoupling, "metric_id"), _records_by(res.counterbalance, "metric_id")
    by_metric = res.metrics.set_index("metric_id")
    for m in res.metrics.to_dict("records"):
        mid = m["metric_id"]
        for oid in m["serves"]:
            scope = f"outcome:{oid}"
            for kind, check in (("pooled", "association"), ("within", "within_agent")):
                r = assoc.get((m["kpi"], oid, kind))
                if m["note"] or r is None or math.isnan(r["rho"]):
                    why = m["note"] or (r["note"] if r is not None and r["note"] else f"{oid} is not in the data")
                    rows.append(finding(LENS, mid, check, "not_assessable", scope=scope, detail=why))
                    continue
                unit = "agent" if r["level"] == "agent-week" else "team"
                what = "pooled over" if kind == "pooled" else f"after removing each {unit}'s mean, over"
                rows.append(finding(
                    LENS, mid, check, "info", scope=scope, value=r["rho"], ci_low=r["ci_low"], ci_high=r["ci_high"],
                    n=int(r["n"]), evidence=f"Spearman rho {_fmt_ci(r['rho'], r['ci_low'], r['ci_high'])}",
                    detail=f"{m['kpi']} against {oid}, {what} {int(r['n'])} {r['level']}s of {int(r['clusters'])} "
                           f"{unit}s (interval: bootstrap resampling whole {unit}s)."))
            lg = lags.get((m["kpi"], oid), res.lags.iloc[:0]).dropna(subset=["rho"])
            if m["note"] or lg.empty:
                rows.append(finding(LENS, mid, "lagged", "not_assessable", scope=scope,
                                    detail=m["note"] or f"no team-level series of {oid} long enough for lags"))
            else:
                best = lg.loc[lg["rho"].abs().idxmax()]
                profile = "; ".join(f"lag {int(r['lag'])}: {r['rho']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
                                    for r in lg.to_dict("records"))
                rows.append(finding(LENS, mid, "lagged", "info", scope=scope, label=f"lag {int(best['lag'])}",
                                    value=best["rho"], ci_low=best["ci_low"], ci_high=best["ci_high"],
                                    n=int(best["n"]), evidence=profile,
                                    detail=f"Strongest at lag {int(best['lag'])}. {LAG_CONVENTION}"))
        for d in decoupling.get(mid, []):
            scope = f"outcome:{d['outcome']}"
            if not d["assessable"]:
                rows.append(finding(LENS, mid, "decoupling", "not_assessable", scope=scope, detail=d["reason"]))
                continue
            ev = (f"{m['kpi']} improves {d['metric_slope']:+.4g}/week [{d['metric_ci_low']:+.4g}, "
                  f"{d['metric_ci_high']:+.4g}] ({d['metric_change']:+.0%} of its level over the period); "
                  f"{d['outcome']} improves {d['outcome_slope']:+.4g}/week [{d['outcome_ci_low']:+.4g}, "
                  f"{d['outcome_ci_high']:+.4g}] (positive = getting better)")
            if d["decoupled"]:
                how = "gets worse" if d["severity"] == "high" else "does not improve"
                detail = (f"{mid} got better over the period while {d['outcome']} {how}: the metric moves "
                          "without the outcome it is meant to serve.")
            else:
                detail = f"No decoupling: {mid} did not clearly improve, or {d['outcome']} improved with it."
            rows.append(finding(LENS, mid, "decoupling", d["severity"], scope=scope,
                                label="decoupled" if d["decoupled"] else "", value=d["metric_change"],
                                threshold=None, ci_low=d["outcome_ci_low"], ci_high=d["outcome_ci_high"],
                                n=int(d["n"]), evidence=ev, detail=detail))
        for c in counterbalance.get(mid, []):
            scope = f"team:{c['team']}" if c["team"] else "overall"
            if not c["assessable"]:
                rows.append(finding(LENS, mid, "counterbalance_worsened", "not_assessable", scope=scope,
                                    detail=c["reason"]))
                continue
            sev = "ok"
            if c["worsened"]:
                sev = "high" if m["incentive"] in ("bonus", "discipline") else "medium"
            share = "" if math.isnan(c["cb_worse_share"]) else (
                f"; in {c['improved_weeks']} week(s) when {mid} improved, {c['counterbalance']} got worse "
                f"{c['cb_worse_share']:.0%} of the time")
            ev = (f"{mid} improves {c['metric_slope']:+.4g}/week [{c['metric_ci_low']:+.4g}, {c['metric_ci_high']:+.4g}]; "
                  f"{c['counterbalance']} improves {c['cb_slope']:+.4g}/week [{c['cb_ci_low']:+.4g}, "
                  f"{c['cb_ci_high']:+.4g}] (positive = getting better){share}")
            detail = (f"In team {c['team']}, {mid} improved while its counterbalance {c['counterbalance']} got worse."
                      if c["worsened"] else f"In team {c['team']}, no sign that {c['counterbalance']} paid for "
                                            f"{mid}'s improvement.")
            rows.append(finding(LENS, mid, "counterbalance_worsened", sev, scope=scope, label=c["counterbalance"],
                                value=c["cb_slope"], ci_low=c["cb_ci_low"], ci_high=c["cb_ci_high"],
                                n=int(c["weeks"]), evidence=ev, detail=detail))
    for imp in res.importance.to_dict("records"):
        for mid in by_metric.index[by_metric["kpi"] == imp["kpi"]]:
            if imp["outcome"] not in by_metric.loc[mid, "serves"]:
                continue
            rows.append(finding(
                LENS, mid, "relative_importance", "info", scope=f"outcome:{imp['outcome']}",
                label=f"rank {imp['rank']} of {imp['predictors']}", value=imp["lmg"], n=int(imp["n"]),
                ci_low=imp["ci_low"], ci_high=imp["ci_high"],
                evidence=f"LMG share of R² {imp['lmg']:.3f} (Johnson's weight {imp['johnson']:.3f}); "
                         f"all {imp['predictors']} metrics together R² = {imp['r2']:.3f}",
                detail=f"Share of the {imp['outcome']} variation ({imp['level']}) the metric accounts for "
                       "among all register metrics" + ("" if imp["exact"] else " (approximated by sampling)") + "."))
    rows += _class_rows(res)
    return make_findings(rows) if rows else empty_findings()


def _records_by(df: pd.DataFrame, key: str) -> dict[str, list[dict]]:
    """``df``'s rows as dicts grouped by the value of column ``key`` (row order kept)."""
    out: dict[str, list[dict]] = {}
    for r in df.to_dict("records"):
        out.setdefault(r[key], []).append(r)
    return out


def _class_rows(res: LinkageResult) -> list[dict]:
    rows = []
    cls = res.classes
    for m in res.metrics.to_dict("records"):
        mid = m["metric_id"]
        mine = cls[cls["metric_id"] == mid]
        for c in mine.to_dict("records"):
            if c["label"] == "not_assessable":
                rows.append(finding(LENS, mid, "linkage_class", "not_assessable", scope=f"outcome:{c['outcome']}",
                                    label="not_assessable", detail=c["reason"]))
                continue
            rows.append(finding(LENS, mid, "linkage_class", _SEVERITY[c["label"]], scope=f"outcome:{c['outcome']}",
                                label=c["label"], value=c["rho"], ci_low=c["ci_low"], ci_high=c["ci_high"],
                                n=int(c["n"]), evidence=f"aligned rho {_fmt_ci(c['rho'], c['ci_low'], c['ci_high'])} "
                                                        "(positive = metric better goes with outcome better)",
                                detail=_class_sentence(mid, c)))
        labels = set(mine["label"])
        overall = next((lab for lab in _OVERALL_ORDER if lab in labels), "not_assessable")
        if overall == "not_assessable":
            why = (m["note"] or ("the KPI library lists no outcome this metric is meant to serve"
                                 if not m["serves"] else "; ".join(sorted(set(mine["reason"])))))
            rows.append(finding(LENS, mid, "linkage_class", "not_assessable", label="not_assessable", detail=why))
        else:
            outs = ", ".join(sorted(mine.loc[mine["label"] == overall, "outcome"]))
            rows.append(finding(LENS, mid, "linkage_class", _SEVERITY[overall], label=overall,
                                evidence=f"{overall} with {outs}",
                                detail=f"{mid} overall: {overall} (outcomes: {outs})."))
    return rows


def _class_sentence(mid: str, c: dict) -> str:
    o = c["outcome"]
    return {
        "linked": f"{mid} moves with {o}: weeks where {mid} is better tend to have better {o} ({c['basis']}). "
                  "An association, not proof that one causes the other.",
        "weak": f"No clear link between {mid} and {o} in this data.",
        "decoupled": f"{mid} improved over the period while {o} did not: the metric moves on its own.",
        "adverse": f"Weeks where {mid} is better tend to have worse {o} ({c['basis']}).",
    }[c["label"]]


# =============================================================================================
# entry points and presentation helpers
# =============================================================================================

def analyse_audit(audit) -> LinkageResult:
    """:func:`analyse` on an :class:`audit_lib.context.Audit` (prepared tables, register, outcomes)."""
    params = audit.params
    data_end = None
    try:
        data_end = audit.manifest.get("last_contact")
    except (OSError, ValueError, AttributeError):
        data_end = None
    return analyse(audit.table(Prepared.AGENT_WEEK), audit.table(Prepared.TEAM_WEEK),
                   audit.table(Prepared.CENTRE_WEEK), audit.register, audit.outcomes,
                   thresholds=params.thresholds, settings=params.linkage, library=audit.kpis, data_end=data_end)


def audit_findings(audit) -> pd.DataFrame:
    """The linkage lens's complete Findings for an Audit (what ``04_linkage`` saves)."""
    return linkage_findings(analyse_audit(audit))


def aligned_associations(res: LinkageResult, kind: str = "within") -> pd.DataFrame:
    """Associations per register metric × outcome with signs aligned to the better directions.

    ``aligned_rho`` > 0 means "metric better goes with outcome better"; ``served`` marks the
    outcomes the KPI library says the metric is meant to serve.
    """
    directions = dict(zip(res.outcomes["outcome"], res.outcomes["better"]))
    a = res.associations[res.associations["kind"] == kind]
    m = res.metrics[res.metrics["note"] == ""][["metric_id", "kpi", "better", "serves"]]
    out = m.merge(a.drop(columns=["served"]), on="kpi", how="inner")
    s = np.array([_sign(b) * _sign(directions.get(o, "")) for b, o in zip(out["better"], out["outcome"])], float)
    lo, hi = s * out["ci_low"].to_numpy(float), s * out["ci_high"].to_numpy(float)
    out["aligned_rho"] = s * out["rho"].to_numpy(float)
    out["aligned_low"], out["aligned_high"] = np.fmin(lo, hi), np.fmax(lo, hi)
    out["served"] = [o in sv for o, sv in zip(out["outcome"], out["serves"])]
    return out.drop(columns=["serves"]).reset_index(drop=True)


def class_summary(findings: pd.DataFrame) -> pd.DataFrame:
    """The headline: each metric's overall class and the outcomes behind it (from the Findings)."""
    f = findings[(findings["lens"] == LENS) & (findings["check"] == "linkage_class")
                 & (findings["scope"] == "overall")]
    out = f[["metric_id", "label", "evidence"]].rename(columns={"label": "class", "evidence": "outcomes"})
    out["outcomes"] = out["outcomes"].str.replace(r"^\w+ with ", "", regex=True)
    return out.sort_values("metric_id", kind="mergesort").reset_index(drop=True)


def classification_table(res: LinkageResult, names: dict | None = None) -> pd.DataFrame:
    """One row per metric × served outcome: class, aligned rho with interval, n, basis or reason."""
    names = names or {}
    c = res.classes
    return pd.DataFrame({
        "metric": [names.get(m, m) for m in c["metric_id"]], "outcome": c["outcome"], "class": c["label"],
        "aligned rho": c["rho"].round(2),
        "95% interval": [("" if math.isnan(lo) else f"{lo:+.2f} to {hi:+.2f}") for lo, hi in
                         zip(c["ci_low"], c["ci_high"])],
        "n": c["n"], "basis or reason": c["reason"]})


def _units(res: LinkageResult) -> dict:
    lib = _library()
    out = {}
    for kpi in set(res.metrics["kpi"]) | set(res.outcomes["outcome"]):
        if kpi in lib:
            out[kpi] = lib.get(kpi).unit
    return out


def _span(res: LinkageResult, measure: str) -> float:
    t = res.series.loc[(res.series["measure"] == measure) & res.series["value"].notna(), _TIME]
    return float((t.max() - t.min()).total_seconds() / (7 * 86400)) if len(t) > 1 else math.nan


def _amount(x: float, unit: str | None) -> str:
    if x is None or math.isnan(x):
        return ""
    if unit == "share":
        return f"{100 * x:+.2f} pp"
    if unit == "seconds":
        return f"{x:+.1f} s"
    if x == 0 or abs(x) >= 1e-3:
        return f"{x:+.3g}"
    return f"{x:+.6f}"


def _change(slope, lo, hi, span, unit) -> str:
    """Change over the period (slope × span) with its interval, in the measure's unit."""
    if slope is None or math.isnan(slope) or math.isnan(span):
        return ""
    return f"{_amount(slope * span, unit)} [{_amount(lo * span, unit)}, {_amount(hi * span, unit)}]"


def decoupling_display(res: LinkageResult, names: dict | None = None) -> pd.DataFrame:
    """Decoupling per metric × served outcome: change over the period with its interval (+ = better).

    Shares are in percentage points (pp), times in seconds.
    """
    names = names or {}
    units = _units(res)
    rows = []
    for d in res.decoupling.to_dict("records"):
        ok = d["assessable"]
        rows.append({
            "metric": names.get(d["metric_id"], d["metric_id"]), "outcome": d["outcome"],
            "metric improvement over the period (+ = better)": _change(
                d["metric_slope"], d["metric_ci_low"], d["metric_ci_high"], _span(res, d["kpi"]),
                units.get(d["kpi"])) if ok else "",
            "relative to its level": f"{d['metric_change']:+.1%}" if ok else "",
            "outcome improvement over the period (+ = better)": _change(
                d["outcome_slope"], d["outcome_ci_low"], d["outcome_ci_high"], _span(res, d["outcome"]),
                units.get(d["outcome"])) if ok else "",
            "decoupled": "yes" if d["decoupled"] else ("no" if ok else ""), "reason": d["reason"]})
    return pd.DataFrame(rows)


def counterbalance_display(res: LinkageResult, names: dict | None = None) -> pd.DataFrame:
    """Counterbalance check per metric × team: change over the team's weeks (+ = better)."""
    names = names or {}
    units = _units(res)
    kpi = dict(zip(res.metrics["metric_id"], res.metrics["kpi"]))
    rows = []
    for c in res.counterbalance.to_dict("records"):
        ok = c["assessable"]
        share = c.get("cb_worse_share", math.nan)
        span = float(c["weeks"] - 1) if ok else math.nan
        rows.append({
            "metric": names.get(c["metric_id"], c["metric_id"]), "counterbalance": c["counterbalance"],
            "team": c["team"],
            "metric improvement (+ = better)": _change(c["metric_slope"], c["metric_ci_low"], c["metric_ci_high"], span,
                                          units.get(kpi.get(c["metric_id"]))) if ok else "",
            "counterbalance improvement (+ = better)": _change(c["cb_slope"], c["cb_ci_low"], c["cb_ci_high"], span,
                                                  units.get(kpi.get(c["counterbalance"]))) if ok else "",
            "weeks metric improved": c["improved_weeks"] if ok else "",
            "counterbalance worse in those weeks": "" if not ok or math.isnan(share) else f"{share:.0%}",
            "worsened": "yes" if c["worsened"] else ("no" if ok else ""), "reason": c["reason"]})
    return pd.DataFrame(rows)


def association_display(res: LinkageResult, kind: str = "within") -> pd.DataFrame:
    """Metric × outcome table of ``rho [low, high]`` strings (for the report next to the heatmap)."""
    a = res.associations[res.associations["kind"] == kind]
    cell = [("" if math.isnan(r) else f"{r:+.2f} [{lo:+.2f}, {hi:+.2f}]")
            for r, lo, hi in zip(a["rho"], a["ci_low"], a["ci_high"])]
    t = a.assign(cell=cell).pivot_table(index="kpi", columns="outcome", values="cell", aggfunc="first")
    return t.fillna("")


def conclusions(res: LinkageResult, names: dict | None = None) -> str:
    """Plain-language conclusions (plain text; associations, never causal claims)."""
    names = names or {}
    c = res.classes
    lines = []

    def nm(mid):
        return names.get(mid, mid)

    for label, text in (
            ("linked", "moves with {o} (better weeks for the metric are better weeks for customers)"),
            ("decoupled", "improved over the audit period while {o} did not: the number moved, the outcome did not"),
            ("adverse", "goes with worse {o}: improving it has coincided with worse results for customers"),
    ):
        sub = c[c["label"] == label]
        for mid, g in sub.groupby("metric_id", sort=True):
            lines.append(f"- {nm(mid)} {text.format(o=', '.join(sorted(g['outcome'])))}.")
    cb = res.counterbalance[res.counterbalance["worsened"]]
    for mid, g in cb.groupby("metric_id", sort=True):
        lines.append(f"- {nm(mid)} improved in team(s) {', '.join(sorted(g['team']))} while its counter-measure "
                     f"{', '.join(sorted(set(g['counterbalance'])))} got worse.")
    weak = sorted(set(c.loc[c["label"] == "weak", "metric_id"]) - set(c.loc[c["label"] != "weak", "metric_id"]))
    if weak:
        lines.append(f"- No clear link with their outcomes in this period's data: {', '.join(map(nm, weak))}.")
    na = sorted(set(res.metrics["metric_id"]) - set(c.loc[c["label"] != "not_assessable", "metric_id"]))
    if na:
        lines.append(f"- Could not be assessed: {', '.join(map(nm, na))} (see the reasons in the table).")
    lines.append("These are associations in observational data: they show which measures move with customer "
                 "outcomes, not that changing a measure would change the outcome.")
    return "\n".join(lines)
