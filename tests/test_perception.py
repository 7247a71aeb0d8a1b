"""Perception lens: reference values, hand calculations, planted truth and anonymity in every output.

Provenance of the reference values is written next to each test.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from audit_lib import perception as P
from audit_lib import plots_perception as PP
from audit_lib.columns import ITEM_BANK, REVERSE_ITEMS, Finding, Survey
from audit_lib.errors import InputDataError
from audit_lib.findings import flagged

pg = pytest.importorskip("pingouin")  # test-only dependency: reference data and values


# ---------------------------------------------------------------------------
# a small synthetic survey with a planted gap (for unit tests; the demo is tested below)
# ---------------------------------------------------------------------------
def synthetic_survey(seed=7, gap_metric="AHT", gap=1.5, teams=None, comments=True):
    rng = np.random.default_rng(seed)
    teams = teams or {"Atlas": 40, "Beacon": 35, "Comet": 30, "Delta": 3}
    rows, i = [], 0
    texts = ["Too busy, the queue never ends", "It is unfair, ask Sam Jones on 07700 900123",
             "Customers get rushed off the phone", "",
             "People transfer calls to hit the target, mail me at a.b@example.com",
             "Delta team parks calls"]
    for team, n in teams.items():
        for _ in range(n):
            i += 1
            role = rng.choice(["agent", "team_lead", "manager"], p=[0.72, 0.16, 0.12])
            row = {Survey.RESPONDENT_ID: f"R{i:03d}", Survey.ROLE: role, Survey.TEAM: team,
                   Survey.TENURE_BAND: "1-3y"}
            for metric in ("AHT", "FCR", "CSAT"):
                base = rng.normal(3, 0.8) + (gap if metric == gap_metric and role != "agent" else 0)
                for item in ITEM_BANK:
                    v = float(np.clip(np.rint(base + rng.normal(0, 0.7)), 1, 5))
                    row[P.item_column(metric, item)] = 6 - v if item in REVERSE_ITEMS else v
                if comments:
                    row[P.comment_column(metric)] = texts[int(rng.integers(len(texts)))]
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def survey():
    return synthetic_survey()


@pytest.fixture(scope="module")
def null_survey():
    return synthetic_survey(seed=11, gap=0.0)


# ---------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------
def test_score_items_reverses_only_the_reverse_keyed_items():
    s = pd.DataFrame({"respondent_id": ["a", "b"], "role": ["agent", "manager"],
                      "AHT__fair": [1, 4], "AHT__pressure": [1, 4], "AHT__workaround": [5, np.nan],
                      "AHT__comment": ["x", None]})
    out = P.score_items(s)
    assert out["AHT__fair"].tolist() == [1, 4]
    assert out["AHT__pressure"].tolist() == [5, 2]          # 6 - x
    assert out["AHT__workaround"].iloc[0] == 1 and np.isnan(out["AHT__workaround"].iloc[1])
    assert out["AHT__comment"].equals(s["AHT__comment"])
    assert s["AHT__pressure"].tolist() == [1, 4]            # input untouched (stored as answered)


def test_score_items_reports_the_bad_cell():
    s = pd.DataFrame({"respondent_id": ["a", "b"], "role": ["agent", "agent"], "FCR__keep": [3, 7]})
    with pytest.raises(InputDataError, match=r"FCR__keep.*row 2"):
        P.score_items(s)


# ---------------------------------------------------------------------------
# Cronbach's alpha -- published pingouin documentation values (shared/reference/README.md);
# pingouin's docs state they were checked against R's psych::alpha.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("how, alpha, ci", [
    ("pairwise", 0.732660835214447, (0.435, 0.909)),
    ("listwise", 0.8016949152542373, (0.581, 0.933)),
    ("median", 0.7380191693290734, (0.447, 0.911)),
])
def test_alpha_matches_pingouin_documentation_with_missing_data(how, alpha, ci):
    data = pg.read_dataset("cronbach_wide_missing")
    if how == "median":
        a, (lo, hi) = P.cronbach_alpha(data.fillna(data.median()))
    else:
        a, (lo, hi) = P.cronbach_alpha(data, nan_policy=how)
    assert a == pytest.approx(alpha, abs=1e-12)
    assert (lo, hi) == pytest.approx(ci, abs=5e-4)   # the docs print the interval to 3 decimals


def test_alpha_long_format_matches_pingouin_documentation():
    # pingouin docs: cronbach_alpha(data=df, items='Items', scores='Scores', subject='Subj')
    data = pg.read_dataset("cronbach_alpha")
    a, (lo, hi) = P.cronbach_alpha(data, item="Items", scores="Scores", subject="Subj")
    assert a == pytest.approx(0.5917188485995826, abs=1e-12)
    assert (lo, hi) == pytest.approx((0.195, 0.84), abs=5e-4)


def test_alpha_hand_calculation():
    # items a = 1,2,2,4 (var 4.75/3), b = 2,4,2,5 (var 6.75/3 = 2.25), c = 3,3,4,3 (var 0.25);
    # totals 6, 9, 8, 12 (mean 8.75, squared deviations 18.75, var 6.25)
    # alpha = 3/2 * (1 - (1.58333 + 2.25 + 0.25) / 6.25) = 1.5 * 0.346667 = 0.52
    x = pd.DataFrame({"a": [1, 2, 2, 4], "b": [2, 4, 2, 5], "c": [3, 3, 4, 3]})
    assert P.cronbach_alpha(x)[0] == pytest.approx(0.52, abs=1e-12)


def test_alpha_if_dropped_agrees_with_pingouin_on_each_subscale():
    data = pg.read_dataset("cronbach_wide_missing")
    drop = P.alpha_if_dropped(data)
    for item in data.columns:
        ref = pg.cronbach_alpha(data.drop(columns=item))[0]
        assert drop[item] == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("how", ["pairwise", "listwise"])
def test_alpha_if_dropped_equals_alpha_of_the_remaining_items(how):
    # the pairwise path reuses one covariance matrix: it must give exactly the alpha of the
    # items left, including an item nobody answered and respondents who answered one item only
    data = pg.read_dataset("cronbach_wide_missing").iloc[:, :5].copy()
    data.iloc[:, 4] = np.nan
    data.iloc[0, 1:] = np.nan
    drop = P.alpha_if_dropped(data, nan_policy=how)
    for item in data.columns:
        ref = P.cronbach_alpha(data.drop(columns=item), nan_policy=how)[0]
        assert drop[item] == ref or (math.isnan(drop[item]) and math.isnan(ref))


def test_score_items_parses_text_answers_like_numbers():
    s = pd.DataFrame({"role": ["agent", "agent"], "AHT__fair": pd.array([2, None], dtype="Int64"),
                      "AHT__pressure": ["1", None]})
    out = P.score_items(s)
    assert out["AHT__fair"].tolist()[0] == 2 and np.isnan(out["AHT__fair"].iloc[1])
    assert out["AHT__pressure"].iloc[0] == 5 and np.isnan(out["AHT__pressure"].iloc[1])
    assert list(out.columns) == list(s.columns)


def test_alpha_argument_errors():
    data = pg.read_dataset("cronbach_wide_missing")
    with pytest.raises(ValueError, match="nan_policy"):
        P.cronbach_alpha(data, nan_policy="drop")
    with pytest.raises(ValueError, match="together"):
        P.cronbach_alpha(data, item="Q1")
    assert math.isnan(P.cronbach_alpha(data[["Q1"]])[0])


# ---------------------------------------------------------------------------
# Mann-Whitney and rank-biserial
# ---------------------------------------------------------------------------
def test_mann_whitney_matches_scipy_and_rank_biserial_matches_hand_count():
    staff = [1, 2, 2, 3, 4, 5, 3]
    managers = [3, 4, 5, 5, 4, 2]
    res = P.mann_whitney_gap(staff, managers)
    ref = stats.mannwhitneyu(managers, staff, method="asymptotic", use_continuity=True)
    assert res["u"] == pytest.approx(ref.statistic)
    assert res["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    # hand count over the 6 x 7 = 42 pairs (manager vs staff):
    # manager 3: beats 1,2,2 (3), ties 3,3 (2), loses 4,5 (2)
    # manager 4 (x2): beats 1,2,2,3,3 (5), ties 4 (1), loses 5 (1)
    # manager 5 (x2): beats 6, ties 1, loses 0
    # manager 2: beats 1 (1), ties 2,2 (2), loses 3,4,5,3 (4)
    wins = 3 + 2 * 5 + 2 * 6 + 1
    losses = 2 + 2 * 1 + 0 + 4
    assert res["r"] == pytest.approx((wins - losses) / 42)
    assert P.rank_biserial(staff, managers) == pytest.approx((wins - losses) / 42)
    assert res["u"] == pytest.approx(wins + 0.5 * (42 - wins - losses))
    assert res["r_low"] <= res["r"] <= res["r_high"]
    assert res["gap"] == pytest.approx(np.mean(managers) - np.mean(staff))


def test_rank_biserial_interval_close_to_a_bootstrap():
    # independent check of the analytic (Hanley-McNeil) interval: a percentile bootstrap
    rng = np.random.default_rng(1)
    staff = rng.integers(1, 6, 80).astype(float)
    managers = np.clip(rng.integers(1, 6, 40) + 1, 1, 5).astype(float)
    res = P.mann_whitney_gap(staff, managers)
    boot = [P.rank_biserial(rng.choice(staff, len(staff)), rng.choice(managers, len(managers)))
            for _ in range(1500)]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    assert res["r_low"] == pytest.approx(lo, abs=0.05)
    assert res["r_high"] == pytest.approx(hi, abs=0.05)


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5, np.nan])
    ref = multipletests(p[:-1], method="holm")[1]
    out = P.holm(p)
    assert np.allclose(out[:-1], ref) and np.isnan(out[-1])


def test_wilson_interval_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint
    assert P.wilson_interval(17, 40) == pytest.approx(proportion_confint(17, 40, method="wilson"))


# ---------------------------------------------------------------------------
# Kruskal-Wallis -- pingouin documentation: kruskal(data=read_dataset("anova"),
# dv="Pain threshold", between="Hair color") -> H = 10.58863, ddof 3, p = 0.014172
# ---------------------------------------------------------------------------
def test_kruskal_matches_pingouin_documentation_when_nothing_is_suppressed():
    data = pg.read_dataset("anova")
    res = P.kruskal_wallis(data, "Pain threshold", "Hair color", threshold=None)
    assert res["h"] == pytest.approx(10.58863, abs=5e-6)
    assert res["ddof"] == 3
    assert res["p"] == pytest.approx(0.014172, abs=5e-7)
    # effect sizes by hand: epsilon^2 = H / (n - 1), eta^2_H = (H - k + 1) / (n - k); n = 19, k = 4
    assert res["epsilon2"] == pytest.approx(res["h"] / 18)
    assert res["eta2_h"] == pytest.approx((res["h"] - 3) / 15)
    # through the guard with a threshold every group meets (4), nothing is suppressed
    guarded = P.kruskal_wallis(data, "Pain threshold", "Hair color", threshold=4)
    assert guarded["k"] == 4 and guarded["h"] == pytest.approx(10.58863, abs=5e-6)


def test_kruskal_drops_the_group_of_four_under_threshold_five():
    data = pg.read_dataset("anova")
    assert (data["Hair color"] == "Light Brunette").sum() == 4
    res = P.kruskal_wallis(data, "Pain threshold", "Hair color", threshold=5, total=False)
    assert "Light Brunette" not in res["groups"]
    assert "Light Brunette" not in set(res["summary"]["Hair color"])
    assert res["ddof"] == 2 and res["n"] == 15
    kept = [g["Pain threshold"] for name, g in data.groupby("Hair color") if name != "Light Brunette"]
    ref = stats.kruskal(*kept)
    assert res["h"] == pytest.approx(ref.statistic) and res["p"] == pytest.approx(ref.pvalue)
    # with a published total, a second (the smallest, then alphabetical) group is hidden too
    res2 = P.kruskal_wallis(data, "Pain threshold", "Hair color", threshold=5)
    assert "Light Brunette" not in res2["groups"] and res2["k"] == 2


# ---------------------------------------------------------------------------
# the index and the lens tables
# ---------------------------------------------------------------------------
def test_perception_index_is_the_mean_of_respondent_means_with_a_t_interval(survey):
    table = P.perception_index(survey).set_index("metric_id")
    scored = P.score_items(survey)
    cols = [P.item_column("FCR", i) for i in ITEM_BANK]
    per_person = scored[cols].mean(axis=1)
    assert table.loc["FCR", "index"] == pytest.approx(per_person.mean())
    lo, hi = stats.t.interval(0.95, len(per_person) - 1, loc=per_person.mean(),
                              scale=stats.sem(per_person))
    assert (table.loc["FCR", "ci_low"], table.loc["FCR", "ci_high"]) == pytest.approx((lo, hi))
    ref = pg.cronbach_alpha(scored[cols])
    assert table.loc["FCR", "alpha"] == pytest.approx(ref[0])


def test_planted_gap_is_found_and_nothing_else(survey, null_survey):
    gaps = P.staff_manager_gaps(survey).set_index("metric_id")
    assert gaps.loc["AHT", "severity"] in ("medium", "high")
    assert gaps.loc["AHT", "gap"] == pytest.approx(1.5, abs=0.4)
    assert (gaps.drop(index="AHT")["severity"] == "ok").all()
    null = P.staff_manager_gaps(null_survey)
    assert (null["severity"] == "ok").all()
    # Holm-adjusted p equals statsmodels' on the raw p-values
    from statsmodels.stats.multitest import multipletests
    assert np.allclose(gaps["p_holm"], multipletests(gaps["p"], method="holm")[1])


def test_no_gap_when_managers_are_below_the_threshold():
    s = synthetic_survey()
    managers = s.index[s["role"] != "agent"]
    s = s.drop(index=managers[4:])                 # 4 managers left
    assert P.staff_manager_gaps(s).empty
    f = P.perception_findings(s)
    gap_rows = f[f[Finding.CHECK] == "staff_manager_gap"]
    assert (gap_rows[Finding.SEVERITY] == "not_assessable").all()
    assert gap_rows[Finding.N].isna().all()


def test_team_table_never_contains_the_small_team(survey):
    teams = P.team_differences(survey)
    assert not teams.empty
    assert "Delta" not in set(teams["highest"]) | set(teams["lowest"])
    t = P.team_index(survey, "AHT")
    assert "Delta" not in set(t["team"]) and (t["n"] >= 5).all()


def test_response_rates_and_crosstab_are_guarded(survey):
    headcount = pd.DataFrame({"team": ["Atlas", "Beacon", "Comet", "Delta"], "agents": [30, 30, 30, 6]})
    rr = P.response_rates(survey, headcount)
    assert "Delta" not in set(rr["team"])
    assert (rr.loc[rr["team"] != "total", "respondents"] >= 5).all()
    total = rr.loc[rr["team"] == "total", "respondents"].item()
    shown = rr.loc[rr["team"] != "total", "respondents"].sum()
    assert total - shown >= 5                       # the hidden remainder is itself a safe group
    ct = P.team_role_counts(survey)
    assert "Delta" not in ct.index


def test_agreement_shares_by_hand():
    s = pd.DataFrame({"respondent_id": [f"r{i}" for i in range(10)], "role": ["agent"] * 10,
                      "AHT__pressure": [5, 4, 4, 4, 4, 4, 5, 3, 2, 4]})
    out = P.agreement_shares(s, "pressure").iloc[0]
    assert out["agree"] == 8 and out["share"] == pytest.approx(0.8) and out["population"] == "staff"
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(P.wilson_interval(8, 10))
    # Wilson by hand: centre (0.8 + 1.96^2/20) / (1 + 1.96^2/10) = 0.7167, half-width 0.2266,
    # lower bound 0.490 < 0.5: a majority is likely but not established -> "low", not flagged
    assert out["ci_low"] == pytest.approx(0.4902, abs=1e-3)
    assert out["severity"] == "low"
    s2 = pd.concat([s] * 3, ignore_index=True).assign(respondent_id=[f"q{i}" for i in range(30)])
    assert P.agreement_shares(s2, "pressure").iloc[0]["severity"] == "medium"   # lb 0.627


# ---------------------------------------------------------------------------
# comments
# ---------------------------------------------------------------------------
def test_redaction_removes_emails_phones_and_names():
    text = "Ask Sam Jones (sam.jones@harbour.example, +44 7700 900123) or ag017 in Delta"
    out = P.redact(text, names=["Sam Jones", "AG017", "Delta"])
    assert "Sam" not in out and "harbour" not in out and "7700" not in out
    assert "ag017" not in out.lower() and "Delta" not in out
    assert out.count("[name]") == 3 and "[e-mail]" in out and "[phone]" in out
    assert P.redact("Target 360 seconds in 2026") == "Target 360 seconds in 2026"


def test_theme_dictionary_on_hand_labelled_comments():
    s = pd.DataFrame({"respondent_id": [f"r{i}" for i in range(10)], "role": ["agent"] * 10,
                      "AHT__comment": ["Too busy, queue is huge", "This is unfair", "Customers get rushed",
                                       "People game it by transferring", "No idea why we track it",
                                       "The target is unrealistic", "Useful measure", "ok", "",
                                       "busy and unfair"]})
    out = P.comment_themes(s, threshold=5).set_index("theme")["comments"]
    assert out["workload"] == 2 and out["fairness"] == 2 and out["customer_harm"] == 1
    assert out["gaming"] == 1 and out["clarity"] == 1 and out["target_level"] == 1
    assert out["positive"] == 1 and out["other"] == 1
    # 9 non-empty comments: below a comments threshold of 10, nothing is shown
    assert P.comment_themes(s, threshold=10).empty
    assert P.quotes(s, threshold=10).empty


def test_quotes_are_redacted_unattributed_and_plain_text(survey):
    q = P.quotes(survey, names=["Sam Jones"])
    assert set(q.columns) == {"metric_id", "theme", "quote"}
    text = P.format_quotes(q)
    for secret in ("Sam", "07700", "@example.com", "Delta", "Atlas"):
        assert secret not in text


# ---------------------------------------------------------------------------
# findings and charts
# ---------------------------------------------------------------------------
def test_findings_shape_and_checks(survey):
    f = P.perception_findings(survey)
    assert set(f[Finding.LENS]) == {"perception"}
    assert set(f[Finding.CHECK]) == {"perception_index", "index_reliability", "staff_manager_gap",
                                     "team_difference", "perceived_pressure", "perceived_gaming",
                                     "comment_themes"}
    assert (f.loc[f[Finding.CHECK] == "perception_index", Finding.SEVERITY] == "info").all()
    flags = flagged(f)
    assert set(zip(flags[Finding.METRIC_ID], flags[Finding.CHECK])) == {("AHT", "staff_manager_gap")}
    text = " ".join(f[[Finding.SCOPE, Finding.LABEL, Finding.EVIDENCE, Finding.DETAIL]]
                    .astype(str).to_numpy().ravel())
    assert "Delta" not in text


def test_null_survey_flags_nothing(null_survey):
    assert flagged(P.perception_findings(null_survey)).empty


def _figure_text(fig):
    return " ".join(t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text")))


def _segments(ax):
    """(left, width) of every bar segment of :func:`diverging_bars` (one collection per answer)."""
    out = []
    for coll in ax.collections:
        for path in coll.get_paths():
            xs = path.vertices[:, 0]
            out.append((round(float(xs.min()), 9), round(float(xs.max() - xs.min()), 9)))
    return sorted(out)


def test_charts_draw_guarded_tables_with_counts(survey):
    counts = P.likert_counts(survey)
    fig = PP.diverging_bars(counts, names={"AHT": "Handle time ($)"})
    text = _figure_text(fig)
    assert "n=108" in text and "Handle time (\\$)" in text and "Delta" not in text
    # one panel, five segments (one per answer) per statement, all within -100..100 %
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    segments = _segments(ax)
    assert len(segments) == 5 * counts.groupby(["metric_id", "item_id"]).ngroups
    assert segments[0][0] >= -1 and max(x + w for x, w in segments) <= 1 + 1e-9
    gaps = P.staff_manager_gaps(survey)
    assert "*" in _figure_text(PP.gap_chart(gaps))
    assert PP.theme_chart(P.comment_themes(survey)).axes
    assert PP.index_chart(P.perception_index(survey)).axes


def test_diverging_bars_split_neutral_across_zero():
    counts = pd.DataFrame({"metric_id": "AHT", "item_id": "fair", "statement": "", "reverse_keyed": False,
                           "answer": [1, 2, 3, 4, 5], "count": [1, 1, 2, 3, 3], "n": 10,
                           "share": [0.1, 0.1, 0.2, 0.3, 0.3]})
    xs = _segments(PP.diverging_bars(counts).axes[0])
    # SD starts at -(0.1 + 0.1 + 0.1) = -0.3; neutral runs from -0.1 to +0.1
    assert xs[0] == (-0.3, 0.1) and (-0.1, 0.2) in xs and xs[-1] == (0.4, 0.3)


def _inside_figure(fig) -> bool:
    """Everything drawn lies within the figure (the inline backend saves with bbox_inches=None)."""
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    width, height = fig.get_size_inches()
    return box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height


def test_charts_fit_long_client_text_inside_the_figure(survey):
    names = {m: f"{m} costs $5 " + "and a very long name " * 6 for m in P.survey_metrics(survey)}
    counts = P.likert_counts(survey)
    counts["item_id"] = counts["item_id"] + "_statement_" + "w" * 60
    bars = PP.diverging_bars(counts, names=names)
    assert len(bars.axes) == 1 and _inside_figure(bars)
    assert "…" in _figure_text(bars) and "costs \\$5" in _figure_text(bars)
    for fig in (PP.gap_chart(P.staff_manager_gaps(survey), names=names),
                PP.index_chart(P.perception_index(survey), names=names),
                PP.theme_chart(P.comment_themes(survey), names=names)):
        assert _inside_figure(fig)
        assert "costs \\$5" in _figure_text(fig)


# ---------------------------------------------------------------------------
# the demo client: planted truth (docs/architecture.md) and the anonymity promise
# ---------------------------------------------------------------------------
def _all_output_text(survey, thresholds):
    anon = thresholds.anonymity
    parts = [P.perception_index(survey, threshold=anon), P.staff_manager_gaps(survey, threshold=anon),
             P.team_differences(survey, threshold=anon), P.response_rates(survey, threshold=anon),
             P.team_role_counts(survey, threshold=anon), P.likert_counts(survey, threshold=anon),
             P.theme_counts(survey, threshold=thresholds.comments_anonymity),
             P.perception_findings(survey, thresholds=thresholds)]
    for metric in P.survey_metrics(survey):
        parts.append(P.team_index(survey, metric, threshold=anon))
    text = " ".join(p.to_string() for p in parts)
    text += P.format_quotes(P.quotes(survey, threshold=thresholds.comments_anonymity))
    return text


def test_demo_planted_gap_on_aht_is_recovered_and_delta_never_shows(demo_audit):
    survey = demo_audit.survey
    assert (survey[Survey.TEAM] == "Delta").sum() == 3
    f = P.perception_findings(survey, thresholds=demo_audit.params.thresholds,
                              settings=demo_audit.params.perception)
    flags = flagged(f)
    assert ("AHT", "staff_manager_gap") in set(zip(flags[Finding.METRIC_ID], flags[Finding.CHECK]))
    gap = f[(f[Finding.METRIC_ID] == "AHT") & (f[Finding.CHECK] == "staff_manager_gap")].iloc[0]
    assert gap[Finding.LABEL] == "managers higher"
    gaps = P.staff_manager_gaps(survey).set_index("metric_id")
    assert gaps.loc["AHT", "gap"] == pytest.approx(1.5, abs=0.5)
    assert "Delta" not in _all_output_text(survey, demo_audit.params.thresholds)


def test_null_demo_flags_no_gap(null_demo_audit):
    f = P.perception_findings(null_demo_audit.survey, thresholds=null_demo_audit.params.thresholds,
                              settings=null_demo_audit.params.perception)
    assert not (flagged(f)[Finding.CHECK] == "staff_manager_gap").any()
    assert flagged(f).empty


# ---------------------------------------------------------------------------
# anonymity of every perception output, over random survey shapes (hypothesis)
# ---------------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _random_survey(team_sizes, manager_share, skip, seed):
    rng = np.random.default_rng(seed)
    teams = np.repeat([f"Team{chr(65 + i)}x" for i in range(len(team_sizes))], team_sizes)
    n = len(teams)
    roles = np.where(rng.random(n) < manager_share, "manager", "agent")
    out = {Survey.RESPONDENT_ID: [f"R{i}" for i in range(n)], Survey.ROLE: roles, Survey.TEAM: teams}
    for metric in ("AHT", "FCR"):
        level = rng.normal(3, 1, n)
        for item in ITEM_BANK:
            v = np.clip(np.rint(level + rng.normal(0, 0.7, n)), 1, 5)
            v[rng.random(n) < skip] = np.nan
            out[P.item_column(metric, item)] = v
    return pd.DataFrame(out)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(team_sizes=st.lists(st.integers(1, 14), min_size=2, max_size=5),
       manager_share=st.sampled_from([0.0, 0.1, 0.3]), skip=st.sampled_from([0.0, 0.1, 0.3]),
       seed=st.integers(0, 10 ** 6), threshold=st.integers(3, 6))
def test_no_perception_output_reveals_a_small_team(team_sizes, manager_share, skip, seed, threshold):
    survey = _random_survey(team_sizes, manager_share, skip, seed)
    sizes = survey[Survey.TEAM].value_counts()
    plan = P.anonymity.survey_guard(survey, Survey.TEAM, threshold)
    small = set(sizes[sizes < threshold].index)
    assert small <= plan["hide"]
    if plan["hide"]:
        # the survey-wide hidden set cannot be recovered from the respondent total
        assert len(plan["hide"]) >= 2 or len(plan["hide"]) == len(sizes)
        assert sizes[list(plan["hide"])].sum() >= threshold or len(plan["hide"]) == len(sizes)
    tables = [P.response_rates(survey, threshold=threshold)]
    tables += [P.team_index(survey, m, threshold=threshold) for m in ("AHT", "FCR")]
    scored = P.score_items(survey)
    for m, table in zip(("AHT", "FCR"), tables[1:]):
        # all or nothing: every team table shows exactly the survey plan's teams, or none
        answered = set(survey.loc[P.respondent_index(scored, m).notna(), Survey.TEAM])
        assert set(table[Survey.TEAM]) in (set(), answered - plan["hide"])
    for table in tables:
        shown = set(table[Survey.TEAM]) - {"total"}
        assert not shown & plan["hide"], "a team hidden survey-wide appears in a table"
        count_col = "respondents" if "respondents" in table.columns else "n"
        assert (table.loc[table[Survey.TEAM] != "total", count_col] >= threshold).all()
    teams = P.team_differences(survey, threshold=threshold)
    named = set(teams["highest"]) | set(teams["lowest"])
    assert not named & plan["hide"]
    crosstab = P.team_role_counts(survey, threshold=threshold)
    if len(crosstab):
        assert not set(crosstab.index) & plan["hide"]
    findings = P.perception_findings(survey, thresholds=SimpleThresholds(threshold))
    text = " ".join(findings[[Finding.SCOPE, Finding.LABEL, Finding.EVIDENCE, Finding.DETAIL]]
                    .astype(str).to_numpy().ravel())
    assert not any(team in text for team in plan["hide"])
    # the staff vs manager comparison only exists when both groups pass the guard
    gaps = P.staff_manager_gaps(survey, threshold=threshold)
    assert (gaps["n_staff"] >= threshold).all() and (gaps["n_managers"] >= threshold).all()


class SimpleThresholds:
    def __init__(self, anonymity):
        self.anonymity = anonymity
        self.comments_anonymity = max(10, anonymity)


def test_lens_entry_point_on_the_demo_matches_the_expected_findings(demo_audit, demo_params):
    """audit_findings(audit) flags exactly the perception findings the demo planted."""
    import json
    from pathlib import Path
    expected = json.loads((Path(demo_params).parent / "expected_findings.json").read_text())
    planted = {(e["metric_id"], e["check"]) for e in expected["findings"] if e["lens"] == "perception"}
    assert planted == {("AHT", "staff_manager_gap")}
    f = P.audit_findings(demo_audit)
    flags = flagged(f)
    assert set(zip(flags[Finding.METRIC_ID], flags[Finding.CHECK])) == planted
    register_ids = set(demo_audit.register["metric_id"])
    index_rows = f[f[Finding.CHECK] == "perception_index"]
    assert set(index_rows[Finding.METRIC_ID]) == register_ids


def test_surveys_without_teams_or_people_do_not_break_the_lens(survey):
    no_team = survey.drop(columns=[Survey.TEAM])
    f = P.perception_findings(no_team)
    assert (f.loc[f[Finding.CHECK] == "team_difference", Finding.SEVERITY] == "not_assessable").all()
    assert P.team_role_counts(no_team).empty and P.response_rates(no_team).empty
    few = P.perception_findings(survey.iloc[:4])
    assert (few.loc[few[Finding.CHECK] == "perception_index", Finding.SEVERITY] == "not_assessable").all()
    assert P.likert_counts(survey.iloc[:4]).empty


def test_the_lens_does_not_depend_on_pingouin():
    """pingouin is a test dependency only: importing and running the lens never loads it."""
    import subprocess
    import sys
    code = ("import sys, pandas as pd; from audit_lib import perception, anonymity, plots_perception; "
            "perception.cronbach_alpha(pd.DataFrame({'a': [1, 2, 3], 'b': [1, 3, 3]})); "
            "print('pingouin' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_response_rate_above_one_is_blanked_with_a_note(survey):
    headcount = pd.DataFrame({"team": ["Atlas", "Beacon", "Comet", "Delta"], "agents": [10, 60, 60, 6]})
    rr = P.response_rates(survey, headcount).set_index("team")
    assert pd.isna(rr.loc["Atlas", "response_rate"])             # more agents answered than exist
    assert rr.loc["Beacon", "response_rate"] == pytest.approx(rr.loc["Beacon", "agents_responding"] / 60)
    assert "more agents answering" in rr.attrs["note"] and "fewer than 5" in rr.attrs["note"]


def test_response_rate_totals_count_respondents_with_a_team_like_the_role_table():
    # hand-built: Atlas and Beacon 6 agents + 5 managers each; 3 more agents gave no team
    teams = ["Atlas"] * 11 + ["Beacon"] * 11 + [None] * 3
    roles = (["agent"] * 6 + ["manager"] * 5) * 2 + ["agent"] * 3
    s = pd.DataFrame({"respondent_id": [f"r{i}" for i in range(len(teams))], "team": teams, "role": roles})
    headcount = pd.DataFrame({"team": ["Atlas", "Beacon"], "agents": [10, 10]})
    rr = P.response_rates(s, headcount).set_index("team")
    # by hand: 22 respondents and 12 agents gave a team; 12 of the 20 agents in the contacts
    assert rr.loc["total", "respondents"] == 22 and rr.loc["total", "agents_responding"] == 12
    assert rr.loc["total", "response_rate"] == pytest.approx(12 / 20)
    ct = P.team_role_counts(s)
    assert ct.loc["total", "agent"] == rr.loc["total", "agents_responding"]
    assert ct.loc["total", "total"] == rr.loc["total", "respondents"]
    assert "gave no team are not counted" in rr.attrs["note"]
    with_teams = P.response_rates(s.dropna(subset=["team"]), headcount)
    assert "gave no team" not in with_teams.attrs["note"]
    assert with_teams.set_index("team").loc["total", "agents_responding"] == 12


def test_response_rate_display_has_readable_headers_and_percentages(survey):
    headcount = pd.DataFrame({"team": ["Atlas", "Beacon", "Comet", "Delta"], "agents": [10, 60, 60, 6]})
    rr = P.response_rates(survey, headcount)
    shown = P.response_rate_display(rr).set_index("Team")
    assert list(shown.columns) == ["Respondents", "Agents answering", "Agents in the contacts", "Agent response rate"]
    assert shown.loc["Atlas", "Agent response rate"] == ""          # blanked above 100 %: stays blank
    beacon = rr.set_index("team").loc["Beacon"]
    # the percentage is the rate itself, rounded to a whole percent (hand check: n / 60)
    assert shown.loc["Beacon", "Agent response rate"] == f"{round(100 * beacon['agents_responding'] / 60)}%"
    assert shown.attrs["note"] == rr.attrs["note"]
