"""audit_lib.distributions against scipy.stats itself (the independent reference).

Every function must return exactly what the scipy.stats method returns (bit for bit, NaN
where scipy gives NaN) on grids that include the boundaries 0 and 1, the ends of the support,
invalid parameters and NaN, since the lenses' findings were computed with scipy.stats.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from audit_lib import distributions as d

Q = np.array([0.0, 1e-12, 1e-6, 0.001, 0.025, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.975, 0.999,
              1 - 1e-9, 1.0, -0.1, 1.1, np.nan])
X = np.array([-np.inf, -40.0, -3.5, -1.0, -1e-9, 0.0, 1e-9, 0.5, 1.0, 2.2, 9.0, 40.0, np.inf, np.nan])


def same(a, b):
    np.testing.assert_array_equal(np.asarray(a, float), np.asarray(b, float))


def test_normal_matches_scipy():
    same(d.norm_ppf(Q), stats.norm.ppf(Q))
    same(d.norm_isf(Q), stats.norm.isf(Q))
    same(d.norm_sf(X), stats.norm.sf(X))
    assert d.norm_isf(0.025) == stats.norm.isf(0.025) and np.ndim(d.norm_isf(0.025)) == 0


@pytest.mark.parametrize("df", [1, 2.5, 7, 59, 1e6, 0, -1, np.nan])
def test_t_matches_scipy(df):
    same(d.t_ppf(Q, df), stats.t.ppf(Q, df))
    same(d.t_isf(Q, df), stats.t.isf(Q, df))


@pytest.mark.parametrize(("dfn", "dfd"), [(1, 1), (4, 30), (29, 116), (200, 3), (0, 5), (3, -1)])
def test_f_matches_scipy(dfn, dfd):
    same(d.f_isf(Q, dfn, dfd), stats.f.isf(Q, dfn, dfd))


@pytest.mark.parametrize("df", [1, 2, 3, 10, 0.5, 0, -2])
def test_chi2_matches_scipy(df):
    same(d.chi2_sf(X, df), stats.chi2.sf(X, df))


def test_binomial_matches_scipy():
    n = np.array([0, 1, 5, 12, 40, 300, 2500, 18000, 3.5, -1])
    p = np.array([0.0, 0.001, 0.03, 0.2, 0.5, 0.97, 1.0, -0.1, 1.2])
    qq, nn, pp = np.meshgrid(Q, n, p, indexing="ij")
    same(d.binom_ppf(qq, nn, pp), stats.binom.ppf(qq, nn, pp))
    k = np.array([-np.inf, -3, -1, -0.5, 0, 0.5, 1, 2, 4, 11, 39, 299, 2499, 17999, 18000, 20000, np.inf, np.nan])
    kk, nn, pp = np.meshgrid(k, n, p, indexing="ij")
    same(d.binom_sf(kk, nn, pp), stats.binom.sf(kk, nn, pp))


def test_ranks_match_scipy():
    rng = np.random.default_rng(7)
    for v in (rng.integers(1, 6, 200).astype(float), rng.normal(size=50), np.array([3.0]), np.array([]),
              np.array([2.0, 2.0, 2.0]), np.array([1.0, np.nan, 3.0])):
        same(d.rankdata(v), stats.rankdata(v))
