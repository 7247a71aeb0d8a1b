"""Tests of the excess-mass (bunching) estimator."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit_lib.bunching import bin_histogram, bin_values, excess_mass, excess_mass_hist

DATA = Path(__file__).parent / "data" / "bunching_vignette_data.csv"


@pytest.fixture(scope="module")
def kink():
    return pd.read_csv(DATA)["kink_vector"].to_numpy(float)


def test_reproduces_bunching_vignette(kink):
    # Reference: vignette of the CRAN package `bunching` 0.8.6 (Mavrokonstantis, MIT), example
    # bunchit(z_vector = kink_vector, zstar = 10000, binwidth = 50, bins_l = 20, bins_r = 20,
    #         poly = 4, t0 = 0, t1 = 0.2): B = 629.5111, b = 1.822088, b without correction 1.9885156
    # (values copied in /work/shared/reference/README.md; data in tests/data, MIT).
    r = excess_mass(kink, 10000, 50, 20, 20, poly=4)
    assert r.B == pytest.approx(629.5111, abs=1e-4)          # published to 4 decimals
    assert r.b == pytest.approx(1.822088, abs=1e-6)
    assert r.b_uncorrected == pytest.approx(1.9885156, abs=1e-6)
    assert r.iterations >= 1


def test_histogram_entry_point_matches_raw_values(kink):
    # the prepared tables are 1-unit histograms: binning counts must give the same estimate
    values, counts = np.unique(kink, return_counts=True)
    raw = excess_mass(kink, 10000, 50, 20, 20, poly=4)
    hist = excess_mass_hist(values, counts, 10000, 50, 20, 20, poly=4, resolution=1)
    assert hist.B == pytest.approx(raw.B, abs=1e-9)
    assert hist.b == pytest.approx(raw.b, abs=1e-12)
    assert hist.b_uncorrected == pytest.approx(raw.b_uncorrected, abs=1e-12)


def test_binning_follows_the_package():
    # bins centred on zstar + k*bw, [c - bw/2, c + bw/2); bins_l = 3 -> first centre zstar - 2 bw
    b = bin_values([94.9, 95.0, 99.9, 104.99, 105.0, 130.0], 100, 10, 3, 3)
    assert b["centre"].tolist() == [80, 90, 100, 110, 120]
    assert b["count"].tolist() == [0, 1, 3, 1, 0]


def test_hand_calculation_flat_counts():
    # Hand calculation: 21 bins of 100 counts, the zstar bin holds 150. A degree-0 counterfactual
    # (constant) fitted with a zstar dummy is exactly 100, so B = 150 - 100 = 50, c0 = 100, b = 0.5.
    centres = np.arange(-10, 11) * 10 + 1000
    counts = np.where(centres == 1000, 150, 100)
    r = excess_mass_hist(centres - 5, counts, 1000, 10, 11, 11, poly=0, resolution=5, correct=False)
    assert r.B == pytest.approx(50.0, abs=1e-9)
    assert r.c0 == pytest.approx(100.0, abs=1e-9)
    assert r.b == pytest.approx(0.5, abs=1e-12)


def _smooth_heaped(heap_share=0.06, bunch=0):
    """Deterministic 1-s counts: smooth decreasing density, heaps at every multiple of 60 s."""
    v = np.arange(0, 1200, dtype=float)
    dens = 400 * np.exp(-v / 500.0)
    heaped = dens * (1 - heap_share)
    for m in range(60, 1200, 60):
        near = (v >= m - 30) & (v < m + 30)
        heaped[v == m] += heap_share * dens[near].sum()
    if bunch:
        # move mass from [360, 420) to [345, 360)
        moved = 0.5 * heaped[(v >= 360) & (v < 420)]
        heaped[(v >= 360) & (v < 420)] -= moved
        heaped[(v >= 345) & (v < 360)] += moved.sum() / 15
    return v, heaped


def test_heaping_at_round_target_is_not_bunching():
    # The target 360 is itself a multiple of 60. Bins centred on the target (the package's
    # default) put the heap at exactly 360 s into the target bin: that heap would read as
    # bunching. Removing heap seconds fixes it, and so does the lens's layout (bin edges at the
    # target, window [300, 360) = one whole heap period).
    v, c = _smooth_heaped()
    kw = dict(resolution=1, correct=False)
    naive = excess_mass_hist(v, c, 360, 10, 16, 16, poly=4, heap_period=None, **kw)
    centred = excess_mass_hist(v, c, 360, 10, 16, 16, poly=4, heap_period=60, **kw)
    lens = excess_mass_hist(v, c, 352.5, 15, 16, 16, poly=4, heap_period=60, excl_left=3, **kw)
    assert naive.b > 0.3
    assert abs(centred.b) < 0.05
    assert abs(lens.b) < 0.05
    bunched = excess_mass_hist(*_smooth_heaped(bunch=1), 352.5, 15, 16, 16, poly=4, heap_period=60,
                               excl_left=3, **kw)
    assert bunched.b > 1.0


def test_heap_removal_rescales_bins():
    b = bin_histogram([300, 301, 302, 315], [50, 10, 10, 10], 307.5, 15, 8, 8, resolution=1, heap_period=60)
    row = b.set_index("centre").loc[307.5]
    assert row["heap"] == 50
    assert row["count"] == pytest.approx(20 * 15 / 14)      # 14 of 15 cells remain


def test_bootstrap_is_seeded_and_covers(kink):
    a = excess_mass(kink, 10000, 50, 20, 20, poly=4, n_boot=50, seed=7)
    b = excess_mass(kink, 10000, 50, 20, 20, poly=4, n_boot=50, seed=7)
    assert a.B_ci == b.B_ci and a.b_ci == b.b_ci
    assert a.B_ci[0] < a.B < a.B_ci[1]
    assert math.isfinite(a.B_se) and a.B_se > 0


def test_boot_min_n_skips_only_the_bootstrap(kink):
    values, counts = np.unique(kink, return_counts=True)
    full = excess_mass_hist(values, counts, 10000, 50, 20, 20, poly=4, n_boot=20, seed=7)
    small = excess_mass_hist(values, counts, 10000, 50, 20, 20, poly=4, n_boot=20, seed=7, boot_min_n=full.n + 1)
    assert (small.B, small.b, small.n) == (full.B, full.b, full.n)
    assert math.isnan(small.B_se) and len(small.B_boot) == 0
    kept = excess_mass_hist(values, counts, 10000, 50, 20, 20, poly=4, n_boot=20, seed=7, boot_min_n=full.n)
    assert np.array_equal(kept.B_boot, full.B_boot) and kept.b_ci == full.b_ci


def test_misaligned_grid_and_bad_arguments():
    with pytest.raises(ValueError, match="cells"):
        bin_histogram([1, 2], [1, 1], 10.25, 15, 8, 8, resolution=1)
    with pytest.raises(ValueError, match="excl_left"):
        excess_mass(np.arange(100.0), 50, 1, 6, 10, excl_left=3)
    with pytest.raises(ValueError, match="binwidth"):
        excess_mass(np.arange(100.0), 50, 0, 10, 10)
