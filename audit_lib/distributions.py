"""The few probability distributions the lenses need, without importing ``scipy.stats``.

``import scipy.stats`` loads every distribution and test SciPy has: about 0.75 s of CPU on the
2-core benchmark machine, paid by each notebook kernel before the first cell runs, while
``scipy.special`` (where scipy.stats' own normal, t, F, chi-squared and binomial functions
live) takes about 0.2 s. Each function here calls the same special function as the
``scipy.stats`` method it stands for, with that method's handling of the boundaries (0 and 1,
the ends of the support) and of invalid parameters (NaN), so results are identical to the
last bit; ``tests/test_distributions.py`` compares them with ``scipy.stats`` on grids that
include every boundary.
"""
from __future__ import annotations

import numpy as np
import scipy.special as sc
import scipy.special._ufuncs as scu  # the binomial functions scipy.stats.binom calls

__all__ = ["binom_ppf", "binom_sf", "chi2_sf", "f_isf", "midranks", "norm_isf", "norm_ppf", "norm_sf",
           "rankdata", "t_isf", "t_ppf", "ties"]


def _out(x):
    """A 0-d result as a NumPy scalar (as scipy.stats returns it), arrays as they are."""
    x = np.asarray(x, dtype=float)
    return x[()] if x.ndim == 0 else x


def _quantile(q, valid, body, at0, at1):
    """Quantile-function frame: ``body`` inside (0, 1), ``at0``/``at1`` at the ends, NaN elsewhere."""
    q = np.asarray(q, dtype=float)
    q, valid = np.broadcast_arrays(q, valid)
    out = np.full(q.shape, np.nan)
    inside = valid & (q > 0) & (q < 1)
    with np.errstate(all="ignore"):
        out = np.where(inside, body(np.where(inside, q, 0.5)), out)
    out = np.where(valid & (q == 0), at0, out)
    out = np.where(valid & (q == 1), at1, out)
    return _out(out)


# ------------------------------------------------------------------------------ normal

def norm_ppf(q):
    """``scipy.stats.norm.ppf``."""
    return _quantile(q, True, sc.ndtri, -np.inf, np.inf)


def norm_isf(q):
    """``scipy.stats.norm.isf``."""
    return _quantile(q, True, lambda v: -sc.ndtri(v), np.inf, -np.inf)


def norm_sf(x):
    """``scipy.stats.norm.sf``."""
    return _out(sc.ndtr(-np.asarray(x, dtype=float)))


# ------------------------------------------------------------------------------ t, F, chi-squared

def t_ppf(q, df):
    """``scipy.stats.t.ppf``."""
    df = np.asarray(df, dtype=float)
    return _quantile(q, df > 0, lambda v: sc.stdtrit(df, v), -np.inf, np.inf)


def t_isf(q, df):
    """``scipy.stats.t.isf``."""
    df = np.asarray(df, dtype=float)
    return _quantile(q, df > 0, lambda v: -sc.stdtrit(df, v), np.inf, -np.inf)


def f_isf(q, dfn, dfd):
    """``scipy.stats.f.isf`` (the F distribution's ppf at ``1 - q``, as scipy computes it)."""
    dfn, dfd = np.asarray(dfn, dtype=float), np.asarray(dfd, dtype=float)
    return _quantile(q, (dfn > 0) & (dfd > 0), lambda v: sc.fdtri(dfn, dfd, 1.0 - v), np.inf, 0.0)


def chi2_sf(x, df):
    """``scipy.stats.chi2.sf``: 1 at or below 0, NaN for NaN or a degree of freedom <= 0."""
    x, df = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(df, dtype=float))
    valid = df > 0
    with np.errstate(all="ignore"):
        out = np.where(valid & (x > 0), sc.chdtrc(df, np.where(x > 0, x, 1.0)), 0.0)
    out = np.where(valid & (x <= 0), 1.0, out)
    out = np.where(~valid | np.isnan(x), np.nan, out)
    return _out(out)


# ------------------------------------------------------------------------------ binomial

def _binom_valid(n, p):
    n, p = np.asarray(n, dtype=float), np.asarray(p, dtype=float)
    with np.errstate(invalid="ignore"):
        return (n >= 0) & (n == np.floor(n)) & (p >= 0) & (p <= 1)


def binom_ppf(q, n, p):
    """``scipy.stats.binom.ppf``: -1 at q = 0, n at q = 1, NaN for invalid n or p."""
    q, n, p = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q, n, p)))
    valid = _binom_valid(n, p)
    out = np.full(q.shape, np.nan)
    inside = valid & (q > 0) & (q < 1)
    if inside.any():
        out[inside] = scu._binom_ppf(q[inside], n[inside], p[inside])
    out = np.where(valid & (q == 0), -1.0, out)
    out = np.where(valid & (q == 1), n, out)
    return _out(out)


def binom_sf(k, n, p):
    """``scipy.stats.binom.sf``: P(X > k); 1 below 0, 0 from n on, NaN for invalid n or p."""
    k, n, p = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (k, n, p)))
    valid = _binom_valid(n, p)
    out = np.zeros(k.shape)
    inside = valid & (k >= 0) & (k < n) & np.isfinite(k)
    if inside.any():
        out[inside] = np.clip(scu._binom_sf(np.floor(k[inside]), n[inside], p[inside]), 0, 1)
    out = np.where(valid & ((k < 0) | np.isneginf(k)), 1.0, out)
    out = np.where(~valid | np.isnan(k), np.nan, out)
    return _out(out)


# ------------------------------------------------------------------------------ ranks

def ties(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort of ``v`` for the mid-ranks: value order, and for each observation where its run
    of tied values starts and ends (end exclusive) in that order."""
    order = np.argsort(v, kind="mergesort")
    vs = v[order]
    new = np.r_[True, vs[1:] != vs[:-1]]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(v)]
    run = np.empty(len(v), dtype=np.intp)
    run[order] = np.cumsum(new) - 1
    return order, starts[run], ends[run]


def midranks(v: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share the mean of their ranks) of NaN-free values."""
    _, first, last = ties(v)
    return (first + last + 1) / 2.0


def rankdata(a) -> np.ndarray:
    """``scipy.stats.rankdata(a)`` of a 1-d array (method "average"; any NaN makes all NaN)."""
    a = np.asarray(a, dtype=float).ravel()
    if np.isnan(a).any():
        return np.full(len(a), np.nan)
    return midranks(a)
