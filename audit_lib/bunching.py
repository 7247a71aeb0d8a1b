"""Excess mass at a threshold (bunching), after Chetty, Friedman, Olsen & Pistaferri (2011).

The estimator bins values around a threshold ``zstar``, fits a polynomial "counterfactual"
to the bin counts outside an excluded window, and measures the excess of actual over
counterfactual counts inside the window:

* ``B`` — excess mass (number of observations) in the excluded bins;
* ``b`` — ``B`` divided by the average counterfactual count per excluded bin (``c0``);
* the *integration constraint* correction: the people who bunch come from above the
  threshold, so the counts above are scaled up by ``1 + B / (count above)`` and the fit is
  repeated until ``B`` changes by less than 1 (``b_uncorrected`` / ``B_uncorrected`` keep the
  first pass).

Binning and fitting follow the CRAN package ``bunching`` 0.8.6 (Mavrokonstantis, MIT), so
its published vignette values are reproduced exactly (``tests/test_bunching.py``): bins are
centred on ``zstar + k * binwidth`` and cover ``[centre - bw/2, centre + bw/2)``; with
``bins_left = L`` and ``bins_right = R`` they run from ``zstar - (L-1) bw`` to
``zstar + (R-1) bw`` (the bin at ``zstar - L bw`` is only half covered by the package's cut
points and the topmost bin is dropped); the OLS has a polynomial of degree ``poly`` in
``(centre - zstar) / bw``, a dummy for each excluded bin, optional round-number dummies
(kept in the counterfactual: a round-number heap is expected, not excess) and optional
extra fixed effects.

Two entry points: :func:`excess_mass` for raw values, :func:`excess_mass_hist` for a
histogram of counts (the prepared ``histograms`` table). The histogram version can also
remove *heap* values (e.g. durations at exact multiples of 60 s) before binning and rescale
the bins that lost them, so round-number heaping never masquerades as bunching even when
the threshold itself is a round number.

Intervals come from a seeded multinomial bootstrap of the binned counts (resampling
observations within the analysis window), with the whole estimator — correction included —
recomputed on each replicate.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["ExcessMassResult", "excess_mass", "excess_mass_hist", "bin_values", "bin_histogram"]


@dataclass(frozen=True)
class ExcessMassResult:
    """Result of :func:`excess_mass` / :func:`excess_mass_hist`.

    Attributes
    ----------
    B, b : excess mass and normalised excess mass (with the integration correction when asked).
    B_uncorrected, b_uncorrected : the same from the first fit (no correction).
    c0 : average counterfactual count per excluded bin (final fit).
    n : observations in the analysis window.
    iterations : correction iterations performed.
    bins : DataFrame (``centre, lower, upper, count, counterfactual, excluded``), the binned
        data with the final counterfactual (round-number heaps included), for plots.
    B_se, b_se, B_ci, b_ci : bootstrap standard errors and percentile intervals (NaN when
        ``n_boot`` is 0).
    B_boot, b_boot : the bootstrap replicates.
    """
    B: float
    b: float
    B_uncorrected: float
    b_uncorrected: float
    c0: float
    n: int
    iterations: int
    bins: pd.DataFrame = field(repr=False)
    B_se: float = float("nan")
    b_se: float = float("nan")
    B_ci: tuple[float, float] = (float("nan"), float("nan"))
    b_ci: tuple[float, float] = (float("nan"), float("nan"))
    B_boot: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    b_boot: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)


def _check(binwidth, bins_left, bins_right, poly, excl_left, excl_right):
    if not binwidth > 0:
        raise ValueError(f"binwidth must be positive, got {binwidth!r}")
    for name, v in (("bins_left", bins_left), ("bins_right", bins_right)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if int(poly) != poly or poly < 0:
        raise ValueError(f"poly must be a non-negative integer, got {poly!r}")
    if excl_left < 0 or excl_left >= bins_left - 5:
        raise ValueError(f"excl_left ({excl_left}) must be >= 0 and leave at least 5 fitted bins "
                         f"below the threshold (bins_left = {bins_left})")
    if excl_right < 0 or excl_right >= bins_right - 5:
        raise ValueError(f"excl_right ({excl_right}) must be >= 0 and leave at least 5 fitted bins "
                         f"above the threshold (bins_right = {bins_right})")


def _centres(zstar, binwidth, bins_left, bins_right) -> np.ndarray:
    k = np.arange(-(bins_left - 1), bins_right)
    return zstar + k * binwidth


def bin_values(values, zstar: float, binwidth: float, bins_left: int, bins_right: int) -> pd.DataFrame:
    """Bin raw values as the ``bunching`` package does (``binv = "median"``).

    Returns a DataFrame ``centre, lower, upper, count`` (bins centred on ``zstar + k bw``).
    """
    return pd.DataFrame(_bin_values(values, zstar, binwidth, bins_left, bins_right))


def _bin_values(values, zstar, binwidth, bins_left, bins_right) -> dict[str, np.ndarray]:
    """The columns of :func:`bin_values` as arrays."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    centres = _centres(zstar, binwidth, bins_left, bins_right)
    lower = centres - binwidth / 2.0
    # index of the bin each value falls in: floor((v - first lower edge) / bw)
    idx = np.floor((v - lower[0]) / binwidth).astype(np.int64)
    ok = (idx >= 0) & (idx < len(centres))
    counts = np.bincount(idx[ok], minlength=len(centres)).astype(float)
    return {"centre": centres, "lower": lower, "upper": lower + binwidth, "count": counts}


def bin_histogram(values, counts, zstar: float, binwidth: float, bins_left: int, bins_right: int, *,
                  resolution: float = 1.0, heap_period: float | None = None) -> pd.DataFrame:
    """Bin a histogram (``value`` = lower edge of a ``resolution``-wide cell, ``count``).

    Cells are assigned whole to the bin containing them, so the bin edges
    (``zstar ± bw/2 + k bw``) must fall on the cell grid. With ``heap_period`` (e.g. 60) the
    cells starting at an exact multiple of it are dropped (round-number heaps) and each bin
    that lost cells is scaled up by ``cells / (cells - dropped)``, which keeps the smooth part
    of the distribution unbiased; the dropped counts are returned in ``heap``.

    Raises
    ------
    ValueError
        When the bin edges do not fall on the histogram's cell grid.
    """
    return pd.DataFrame(_bin_histogram(values, counts, zstar, binwidth, bins_left, bins_right,
                                       resolution=resolution, heap_period=heap_period))


def _bin_histogram(values, counts, zstar, binwidth, bins_left, bins_right, *, resolution,
                   heap_period) -> dict[str, np.ndarray]:
    """The columns of :func:`bin_histogram` as arrays (the estimator needs no DataFrame until the end)."""
    v = np.asarray(values, dtype=float)
    c = np.asarray(counts, dtype=float)
    keep = np.isfinite(v) & np.isfinite(c)
    v, c = v[keep], c[keep]
    centres = _centres(zstar, binwidth, bins_left, bins_right)
    lower = centres - binwidth / 2.0
    per_bin = binwidth / resolution
    if abs(per_bin - round(per_bin)) > 1e-9 or abs(((lower[0] / resolution) - round(lower[0] / resolution))) > 1e-9:
        raise ValueError(f"bin edges (first at {lower[0]:g}, width {binwidth:g}) do not fall on the histogram's "
                         f"{resolution:g}-unit cells; choose a bin width that is a multiple of {resolution:g} and a "
                         f"threshold on the grid")
    per_bin = int(round(per_bin))
    idx = np.floor((v - lower[0]) / binwidth + 1e-9).astype(np.int64)
    ok = (idx >= 0) & (idx < len(centres))
    heap_cell = np.zeros(len(v), dtype=bool)
    dropped_cells = np.zeros(len(centres))
    if heap_period and heap_period > resolution:
        heap_cell = np.abs(v / heap_period - np.round(v / heap_period)) < 1e-9
        # how many grid cells of each bin sit on a heap value (independent of the data)
        cells = lower[:, None] + resolution * np.arange(per_bin)[None, :]
        dropped_cells = (np.abs(cells / heap_period - np.round(cells / heap_period)) < 1e-9).sum(axis=1)
    raw = np.bincount(idx[ok & ~heap_cell], weights=c[ok & ~heap_cell], minlength=len(centres))
    heap = np.bincount(idx[ok & heap_cell], weights=c[ok & heap_cell], minlength=len(centres))
    scale = per_bin / np.maximum(per_bin - dropped_cells, 1)
    return {"centre": centres, "lower": lower, "upper": lower + binwidth,
            "count": raw * scale, "heap": heap, "observed": raw + heap}


def _design(z_rel: np.ndarray, centres: np.ndarray, poly: int, excl_left: int, excl_right: int,
            round_numbers, extra_fe) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Design matrix, mask of columns removed for the counterfactual, excluded-bin mask."""
    cols, remove = [np.ones_like(z_rel)], [False]
    zr = np.round(z_rel).astype(int)
    cols.append((zr == 0).astype(float))       # zstar dummy
    remove.append(True)
    for fe in extra_fe or ():
        cols.append(np.isclose(centres, fe).astype(float))
        remove.append(False)
    for p in range(1, int(poly) + 1):
        cols.append(z_rel ** p)
        remove.append(False)
    rn = sorted(set(round_numbers or ()))
    rn_cols = [(np.abs(centres / r - np.round(centres / r)) < 1e-9).astype(float) for r in rn]
    if len(rn) == 2 and rn[1] % rn[0] == 0:
        # as the package: a multiple of both counts for the larger round number only
        rn_cols[0] = np.where((rn_cols[0] == 1) & (rn_cols[1] == 1), 0.0, rn_cols[0])
    for col in rn_cols:
        cols.append(col)
        remove.append(False)
    for i in range(1, excl_left + 1):
        cols.append((zr == -i).astype(float))
        remove.append(True)
    for i in range(1, excl_right + 1):
        cols.append((zr == i).astype(float))
        remove.append(True)
    excluded = (zr >= -excl_left) & (zr <= excl_right)
    return np.column_stack(cols), np.array(remove), excluded


def _estimate(Y: np.ndarray, X: np.ndarray, remove: np.ndarray, excluded: np.ndarray, above: np.ndarray,
              correct: bool, max_iter: int):
    """Vectorised estimator over the columns of ``Y`` (bins x replicates).

    Returns B, c0, B_uncorrected, c0_uncorrected, iterations and the final counterfactual.
    """
    pinv = np.linalg.pinv(X)
    Xcf = X * ~remove                                 # prediction without the zstar/excluded dummies

    def fit(freq):
        cf = Xcf @ (pinv @ freq)
        B = (Y[excluded] - cf[excluded]).sum(axis=0)  # excess of the *original* counts
        c0 = cf[excluded].sum(axis=0) / excluded.sum()
        return B, c0, cf

    B, c0, cf = fit(Y)
    B0, c00 = B.copy(), c0.copy()
    iters = 0
    if correct:
        total_above = Y[above].sum(axis=0)
        shift = np.where(above[:, None], 1.0 / np.where(total_above > 0, total_above, np.inf), 0.0)
        history = [B]
        active = np.ones(Y.shape[1], dtype=bool)
        it = 1
        # as the package: iterate while the previous minus the new estimate is >= 1
        while active.any() and it < max_iter:
            freq = Y * (1.0 + B[None, :] * shift)
            Bn, c0n, cfn = fit(freq)
            diff = history[-1] - Bn
            B = np.where(active, Bn, B)
            c0 = np.where(active, c0n, c0)
            cf = np.where(active[None, :], cfn, cf)
            history.append(B.copy())
            iters += int(active.any())
            active = active & (diff >= 1)
            it += 1
    return B, c0, B0, c00, iters, cf


def _run(binned: dict[str, np.ndarray], zstar, binwidth, poly, excl_left, excl_right, round_numbers, extra_fe,
         correct, max_iter, n_boot, seed, alpha, correct_above_excluded, boot_min_n=0) -> ExcessMassResult:
    centres = binned["centre"]
    counts = binned["count"]
    z_rel = (centres - zstar) / binwidth
    X, remove, excluded = _design(z_rel, centres, poly, excl_left, excl_right, round_numbers, extra_fe)
    above = (np.round(z_rel) > excl_right) if correct_above_excluded else (np.round(z_rel) > 0)
    B, c0, B0, c00, iters, cf = _estimate(counts[:, None], X, remove, excluded, above, correct, max_iter)
    n = int(round(binned["observed"].sum() if "observed" in binned else counts.sum()))
    bins = pd.DataFrame({**binned, "counterfactual": cf[:, 0], "excluded": excluded})
    out = dict(B=float(B[0]), b=float(B[0] / c0[0]), B_uncorrected=float(B0[0]),
               b_uncorrected=float(B0[0] / c00[0]), c0=float(c0[0]), n=n, iterations=iters, bins=bins)
    if n_boot and counts.sum() > 0 and n >= boot_min_n:
        rng = np.random.default_rng(seed)
        total = int(round(counts.sum()))
        p = counts / counts.sum()
        Yb = rng.multinomial(total, p, size=int(n_boot)).T.astype(float)
        Bb, c0b, *_ = _estimate(Yb, X, remove, excluded, above, correct, max_iter)
        bb = Bb / c0b
        q = (alpha / 2, 1 - alpha / 2)
        out.update(B_boot=Bb, b_boot=bb, B_se=float(np.std(Bb, ddof=1)), b_se=float(np.std(bb, ddof=1)),
                   B_ci=tuple(float(x) for x in np.quantile(Bb, q)),
                   b_ci=tuple(float(x) for x in np.quantile(bb, q)))
    return ExcessMassResult(**out)


def excess_mass(values, threshold: float, binwidth: float, bins_left: int, bins_right: int, poly: int = 9, *,
                excl_left: int = 0, excl_right: int = 0, round_numbers=(), extra_fe=(), correct: bool = True,
                correct_above_excluded: bool = False, max_iter: int = 200, n_boot: int = 0, seed: int = 0,
                alpha: float = 0.05) -> ExcessMassResult:
    """Excess mass of raw ``values`` at ``threshold`` (``bunching::bunchit`` for kinks).

    Parameters
    ----------
    values : array-like of raw values.
    threshold : the bunching point ``zstar`` (centre of its bin).
    binwidth, bins_left, bins_right : bin width and number of bins each side of the threshold.
    poly : degree of the counterfactual polynomial.
    excl_left, excl_right : further excluded bins below / above the threshold bin.
    round_numbers : up to two round numbers whose multiples get a dummy (kept in the counterfactual).
    extra_fe : bin centres with their own dummy (other kinks, kept in the counterfactual).
    correct : apply the integration-constraint correction.
    correct_above_excluded : shift only the bins above the excluded window (default: above zstar).
    max_iter : maximum correction iterations.
    n_boot, seed, alpha : bootstrap replicates, seed and 1 - interval level.

    Returns
    -------
    ExcessMassResult

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> z = np.concatenate([rng.uniform(0, 100, 20000), np.full(300, 50.0)])
    >>> r = excess_mass(z, 50, 2, 20, 20, poly=2, correct=False)
    >>> 250 < r.B < 350
    True
    """
    _check(binwidth, bins_left, bins_right, poly, excl_left, excl_right)
    binned = _bin_values(values, threshold, binwidth, bins_left, bins_right)
    return _run(binned, threshold, binwidth, poly, excl_left, excl_right, round_numbers, extra_fe, correct,
                max_iter, n_boot, seed, alpha, correct_above_excluded)


def excess_mass_hist(values, counts, threshold: float, binwidth: float, bins_left: int, bins_right: int,
                     poly: int = 9, *, resolution: float = 1.0, heap_period: float | None = None,
                     excl_left: int = 0, excl_right: int = 0, round_numbers=(), extra_fe=(), correct: bool = True,
                     correct_above_excluded: bool = False, max_iter: int = 200, n_boot: int = 0, seed: int = 0,
                     alpha: float = 0.05, boot_min_n: int = 0) -> ExcessMassResult:
    """Excess mass from a histogram (``values`` = cell lower edges, ``counts``).

    Same estimator as :func:`excess_mass`; ``resolution`` is the histogram's cell width and
    ``heap_period`` drops heap cells (see :func:`bin_histogram`). The threshold bin is
    centred on ``threshold``: to measure mass *just under* a target ``T`` with bins of width
    ``w``, pass ``threshold = T - w/2`` (the bin ``[T - w, T)``). ``boot_min_n`` skips the
    bootstrap (intervals NaN) when the window holds fewer observations, for callers that
    discard such small scopes anyway.
    """
    _check(binwidth, bins_left, bins_right, poly, excl_left, excl_right)
    binned = _bin_histogram(values, counts, threshold, binwidth, bins_left, bins_right,
                            resolution=resolution, heap_period=heap_period)
    return _run(binned, threshold, binwidth, poly, excl_left, excl_right, round_numbers, extra_fe, correct,
                max_iter, n_boot, seed, alpha, correct_above_excluded, boot_min_n)
