"""Tests of the behaviour lens: each detector on small synthetic tables, then the demo clients."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from audit_lib import behaviour as bh
from audit_lib import findings as fd
from audit_lib.columns import Finding as F
from audit_lib.columns import Prepared as P
from audit_lib.settings import BehaviourSettings

SET = BehaviourSettings(bootstrap=100)


def _flagged(rows):
    return [r for r in rows if r[F.SEVERITY] in fd.FLAGGED]


def _signatures(overrides=None, n_agents=40, seed=3):
    """Agent signatures shaped like the prepared table, homogeneous agents."""
    rng = np.random.default_rng(seed)
    ids = [f"A{i:03d}" for i in range(n_agents)]
    voice = rng.integers(1500, 2500, n_agents)
    contacts = (voice * 1.5).astype(int)
    aht = rng.normal(330, 15, n_agents)
    tn = contacts
    transfers = rng.binomial(tn, 0.06)
    rn = contacts
    repeats = rng.binomial(rn, 0.12)
    df = pd.DataFrame({
        "agent_id": ids, "team": np.where(np.arange(n_agents) < n_agents // 2, "North", "South"),
        "contacts": contacts, "voice_handled": voice, "short_contacts": rng.binomial(voice, 0.004),
        "aht": aht, "transfers": transfers, "transfer_n": tn, "repeats": repeats, "repeat_n": rn,
        "fcr_coded": rng.binomial(contacts, 0.84), "fcr_coded_n": contacts,
        "fcr_repeat_ok": rng.binomial(contacts, 0.88), "fcr_repeat_n": contacts,
        "callbacks_promised": 50, "callbacks_completed": 48,
        "csat_responses": rng.binomial(contacts, 0.2), "csat_mean": 4.1})
    df["csat_top2"] = rng.binomial(df["csat_responses"], 0.79)
    for (idx, col), value in (overrides or {}).items():
        df.loc[idx, col] = value
    return df


# ----------------------------------------------------------------------------- funnel / short contacts
def test_funnel_limits_hand_calculation():
    # Hand calculation of the exact binomial quantile: smallest k with P(X <= k) >= 0.999,
    # X ~ Bin(1000, 0.01), summed from the pmf with math.comb (independent of scipy.stats).
    n, p = 1000, 0.01
    cdf, k = 0.0, -1
    while cdf < 0.999:
        k += 1
        cdf += math.comb(n, k) * p ** k * (1 - p) ** (n - k)
    lim = bh.funnel_limits(p, [n])
    assert lim["upper_0.998"].iloc[0] == pytest.approx(k / n)
    assert lim["upper_0.95"].iloc[0] < lim["upper_0.998"].iloc[0]


def test_short_contacts_flags_only_the_hollow_agent():
    s = _signatures({(5, "short_contacts"): 220})
    rows = bh.short_contacts(s, "AHT", settings=SET, pseudonym=lambda a: f"P-{a}")
    flagged = _flagged(rows)
    assert [r[F.SCOPE] for r in flagged] == ["agent:P-A005"]
    assert flagged[0][F.VALUE] == pytest.approx(220 / s.loc[5, "voice_handled"])
    assert len(rows) == len(s)


def test_short_contacts_no_flag_on_homogeneous_agents():
    for seed in range(5):
        assert not _flagged(bh.short_contacts(_signatures(seed=seed), "AHT", settings=SET))


# ----------------------------------------------------------------------------- displacement
def test_displacement_needs_both_sides():
    s = _signatures({(3, "aht"): 230.0, (3, "transfers"): 900,      # fast and transferring: flag
                       (7, "transfers"): 900,                           # transfers only: no
                       (9, "aht"): 230.0})                              # fast only: no
    flagged = _flagged(bh.displacement(s, "AHT", settings=SET))
    assert [r[F.SCOPE] for r in flagged] == ["agent:A003"]
    assert "mahalanobis" in flagged[0][F.EVIDENCE]


def test_displacement_critical_value():
    # c solves 2-sided joint tail: (1 - Phi(c))^2 = alpha / (agents * rates)
    rows = bh.displacement(_signatures(), "AHT", settings=SET)
    c = rows[0][F.THRESHOLD]
    assert stats.norm.sf(c) ** 2 == pytest.approx(0.05 / (40 * 2))


# ----------------------------------------------------------------------------- FCR integrity
def test_fcr_integrity_team_gap_and_newcombe_interval():
    s = _signatures()
    south = s["team"] == "South"
    s.loc[south, "fcr_coded"] = (s.loc[south, "fcr_coded_n"] * 0.93).astype(int)
    s.loc[south, "fcr_repeat_ok"] = (s.loc[south, "fcr_repeat_n"] * 0.65).astype(int)
    rows = bh.fcr_integrity(s, "FCR", settings=SET)
    scopes = {r[F.SCOPE] for r in _flagged(rows)}
    assert "team:South" in scopes and "team:North" not in scopes and "overall" in scopes
    # the interval is Newcombe's hybrid score interval; compare with statsmodels (method 'newcomb')
    from statsmodels.stats.proportion import confint_proportions_2indep
    row = next(r for r in rows if r[F.SCOPE] == "team:North")
    g = s[~south]
    z = stats.norm.isf(0.05 / 2 / 2)          # Bonferroni over the 2 teams
    lo, hi = confint_proportions_2indep(g.fcr_coded.sum(), g.fcr_coded_n.sum(), g.fcr_repeat_ok.sum(),
                                        g.fcr_repeat_n.sum(), method="newcomb", alpha=2 * stats.norm.sf(z))
    assert row[F.CI_LOW] == pytest.approx(lo, abs=1e-9) and row[F.CI_HIGH] == pytest.approx(hi, abs=1e-9)


# ----------------------------------------------------------------------------- call-backs
def _callbacks(unkept_complaints=40, unkept_repeats=20, teams=("North", "South")):
    rows = []
    for t in teams:
        for w in pd.date_range("2026-06-29", periods=4, freq="7D"):
            rows.append({"team": t, "week": w, "kept": True, "promised": 100, "followed_by_repeat": 15,
                         "followed_by_complaint": 5})
            rows.append({"team": t, "week": w, "kept": False, "promised": 50 if t == "South" else 4,
                         "followed_by_repeat": unkept_repeats if t == "South" else 1,
                         "followed_by_complaint": unkept_complaints // 4 if t == "South" else 0})
    return pd.DataFrame(rows)


def test_callback_unkept_risk_ratio_hand_calculation():
    cb = _callbacks()
    rows = bh.callback_unkept(cb, "CALLBACK", 0.95, settings=SET)
    overall = next(r for r in rows if r[F.SCOPE] == "overall")
    # Hand calculation: unkept 216 promises with 40 complaints; kept 800 with 40 complaints.
    # RR = (40/216)/(40/800) = 3.7037; Katz SE = sqrt(1/40 - 1/216 + 1/40 - 1/800) = 0.21103
    se = math.sqrt(1 / 40 - 1 / 216 + 1 / 40 - 1 / 800)
    assert overall[F.VALUE] == pytest.approx((40 / 216) / (40 / 800))
    # two outcomes are tested (complaints, repeats): Bonferroni z = Phi^-1(1 - 0.05/4) = 2.241403
    assert overall[F.CI_LOW] == pytest.approx(overall[F.VALUE] * math.exp(-2.241403 * se), rel=1e-5)
    assert overall[F.SEVERITY] == "high"
    team = {r[F.SCOPE]: r[F.SEVERITY] for r in rows if r[F.SCOPE] != "overall"}
    assert team == {"team:North": "ok", "team:South": "medium"}
    backlog = bh.callback_backlog(cb)
    assert backlog["open_backlog"].tolist() == [54, 108, 162, 216]


def test_callback_no_flag_when_unkept_are_like_kept():
    cb = _callbacks(unkept_complaints=8, unkept_repeats=7)   # complaints RR 0.74, repeats RR 0.99
    overall = next(r for r in bh.callback_unkept(cb, "CALLBACK", 0.95, settings=SET) if r[F.SCOPE] == "overall")
    assert overall[F.SEVERITY] == "ok"


# ----------------------------------------------------------------------------- hollow first replies
def test_hollow_first_reply():
    fr = pd.DataFrame({
        "team": ["A", "A"], "agent_id": ["x", "x"], "channel": ["chat", "email"],
        "replies": [1000, 1000], "instant_replies": [600, 400], "within_target": [1000, 900],
        "within_target_slow_resolution": [10, 380], "resolution_n": [1000, 1000],
        "instant_slow_resolution": [6, 300]})
    row = bh.hollow_first_reply(fr, "FRT", settings=SET)[0]
    assert row[F.SEVERITY] == "high" and row[F.LABEL] == "email"
    assert row[F.VALUE] == pytest.approx(0.4)
    # chat: instant replies as fast to resolve as the rest -> not hollow
    assert bh.hollow_first_reply(fr[fr.channel == "chat"], "FRT", settings=SET)[0][F.SEVERITY] == "ok"


# ----------------------------------------------------------------------------- end-of-period surge
def _team_day(drop=0.0, seed=1):
    rng = np.random.default_rng(seed)
    days = pd.date_range("2026-06-29", "2026-09-27", freq="D")
    rows = []
    for t in ("North", "South"):
        for d in days:
            base = 330 * (1 - drop if (t == "South" and d.weekday() == 4) else 1)
            rows.append({"team": t, "date": d, "weekday": d.weekday(), "day_of_month": d.day,
                         "days_to_month_end": d.days_in_month - d.day, "contacts": 300,
                         "aht": base + rng.normal(0, 8), "aht__n": 200})
    return pd.DataFrame(rows)


def test_end_of_period_surge():
    flagged = _flagged(bh.end_of_period_surge(_team_day(drop=0.3), "AHT", "aht", "lower", settings=SET))
    assert [(r[F.SCOPE], r[F.LABEL]) for r in flagged] == [("team:South", "week")]
    assert flagged[0][F.VALUE] == pytest.approx(0.3, abs=0.03)
    assert not _flagged(bh.end_of_period_surge(_team_day(), "AHT", "aht", "lower", settings=SET))
    # a higher-is-better metric that drops on Fridays is worse, not a surge
    assert not _flagged(bh.end_of_period_surge(_team_day(drop=0.3), "X", "aht", "higher", settings=SET))


# ----------------------------------------------------------------------------- survey selection
def test_survey_selection():
    s = _signatures({(11, "csat_responses"): 110, (11, "csat_top2"): 106})
    flagged = _flagged(bh.survey_selection(s, "CSAT", settings=SET))
    assert [r[F.SCOPE] for r in flagged] == ["agent:A011"]
    s2 = _signatures({(11, "csat_responses"): 110, (11, "csat_top2"): 87})   # few surveys, ordinary scores
    assert not _flagged(bh.survey_selection(s2, "CSAT", settings=SET))


# ----------------------------------------------------------------------------- bunching detector
def _histograms(bunch_team=None, seed=0):
    """1-s handle-time histogram per agent, heaped at every multiple of 60 s in every team."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in ("North", "South"):
        for a in range(6):
            v = np.rint(rng.lognormal(np.log(318), 0.45, 6000))
            heap = rng.random(len(v)) < 0.045
            v[heap] = np.maximum(60, np.rint(v[heap] / 60) * 60)
            if t == bunch_team:
                move = (v >= 360) & (v < 500) & (rng.random(len(v)) < 0.5)
                v[move] = 359 - np.floor(rng.beta(1, 2.2, move.sum()) * 45)
            vals, counts = np.unique(v, return_counts=True)
            rows.append(pd.DataFrame({"measure": "handle_seconds", "channel": "voice", "team": t,
                                      "agent_id": f"{t[0]}{a}", "value": vals, "resolution": 1,
                                      "count": counts}))
    return pd.concat(rows, ignore_index=True)


def test_threshold_bunching_heaping_without_bunching_is_not_flagged():
    rows = bh.threshold_bunching(_histograms(), "AHT", "handle_seconds", 360, settings=SET)
    assert not _flagged(rows)
    assert {r[F.SCOPE] for r in rows} >= {"overall", "team:North", "team:South"}


def test_threshold_bunching_finds_the_bunching_team():
    rows = bh.threshold_bunching(_histograms(bunch_team="South"), "AHT", "handle_seconds", 360, settings=SET,
                                 pseudonym=lambda a: f"P-{a}")
    scopes = {r[F.SCOPE] for r in _flagged(rows)}
    assert "team:South" in scopes and "team:North" not in scopes
    assert not any(s.startswith("agent:N") or s.startswith("agent:P-N") for s in scopes)
    south = next(r for r in rows if r[F.SCOPE] == "team:South")
    assert south[F.CI_LOW] > 0 and "window=[300,360)" in south[F.EVIDENCE]


def test_threshold_bunching_scopes_match_their_profiles():
    # the lens groups the histogram once per family; each scope must equal its own profile
    hist = _histograms(bunch_team="South")
    rows = bh.threshold_bunching(hist, "AHT", "handle_seconds", 360, settings=SET)
    for sel, scope in (({}, "overall"), ({"team": "South"}, "team:South"), ({"agent_id": "N3"}, "agent:N3")):
        res = bh.bunching_profile(hist, "handle_seconds", 360, SET, **sel)
        row = next(r for r in rows if r[F.SCOPE] == scope)
        assert (row[F.VALUE], row[F.CI_LOW], row[F.CI_HIGH], row[F.N]) == (res.b, res.b_ci[0], res.b_ci[1], res.n)


def test_metrics_sharing_a_threshold_share_the_bunching_estimates():
    hist = _histograms(bunch_team="South")
    register = pd.DataFrame({"metric_id": ["AHT", "AHT_TEAM"], "kpi": ["aht", "aht"], "target": [360, 360]})
    from audit_lib.kpis import load_library
    out = bh.assess({P.HISTOGRAMS: hist}, register, load_library(), settings=SET)
    out = out[out[F.CHECK] == "threshold_bunching"]
    one = pd.DataFrame(bh.threshold_bunching(hist, "AHT", "handle_seconds", 360, settings=SET))
    for mid in ("AHT", "AHT_TEAM"):
        got = out[out[F.METRIC_ID] == mid].set_index(F.SCOPE).sort_index()
        want = one.set_index(F.SCOPE).sort_index()
        assert got[F.VALUE].tolist() == want[F.VALUE].tolist()
        assert got[F.EVIDENCE].tolist() == want[F.EVIDENCE].tolist()


# ----------------------------------------------------------------------------- missing columns
@pytest.mark.parametrize("call, column", [
    (lambda: bh.short_contacts(pd.DataFrame({"agent_id": ["a"]}), "AHT"), "handle_seconds"),
    (lambda: bh.fcr_integrity(_signatures().drop(columns=["fcr_coded"]), "FCR"), "resolved_first_contact"),
    (lambda: bh.fcr_integrity(_signatures().assign(fcr_repeat_ok=np.nan), "FCR"), "customer_id"),
    (lambda: bh.callback_unkept(None, "CALLBACK"), "callback_promised"),
    (lambda: bh.hollow_first_reply(None, "FRT"), "first_reply_seconds"),
    (lambda: bh.end_of_period_surge(_team_day().drop(columns=["aht"]), "AHT", "aht"), "aht"),
    (lambda: bh.survey_selection(_signatures().drop(columns=["csat_top2"]), "CSAT"), "csat"),
    (lambda: bh.threshold_bunching(None, "AHT", "handle_seconds", 360), "measure"),
    (lambda: bh.displacement(_signatures().drop(columns=["transfers", "repeats"]), "AHT"),
     "transferred or customer_id"),
])
def test_missing_columns_are_not_assessable(call, column):
    rows = call()
    assert len(rows) == 1 and rows[0][F.SEVERITY] == "not_assessable"
    assert rows[0][F.DETAIL] == f"not assessable \u2014 needs column {column}"


def test_assess_reports_missing_export_columns():
    from audit_lib.kpis import load_library
    reg = pd.DataFrame({"metric_id": ["FCR"], "name": ["FCR"], "kpi": ["fcr_agent"], "purpose": ["p"],
                        "owner": ["o"], "target": [0.8], "direction": ["higher"]})
    out = bh.assess({P.AGENT_SIGNATURES: _signatures()}, reg, load_library(),
                    available_columns=["contact_id", "agent_id", "started_at", "channel", "handle_seconds"])
    row = out[out[F.CHECK] == "fcr_integrity"].iloc[0]
    assert row[F.SEVERITY] == "not_assessable" and "needs column resolved_first_contact" in row[F.DETAIL]
    assert (out[F.CHECK] == "catalogue_risk").any()
    assert set(out[F.LENS]) == {"behaviour"}


# ----------------------------------------------------------------------------- the demo clients
def _expected(audit):
    doc = json.loads((Path(audit.params.source).parent / "expected_findings.json").read_text())
    return [e for e in doc["findings"] if e["lens"] == "behaviour"]


@pytest.fixture(scope="session")
def demo_behaviour(demo_audit):
    return bh.audit_findings(demo_audit)


@pytest.fixture(scope="session")
def null_behaviour(null_demo_audit):
    return bh.audit_findings(null_demo_audit)


def test_planted_behaviours_are_found(demo_audit, demo_behaviour):
    flagged = fd.flagged(demo_behaviour)
    expected = _expected(demo_audit)
    assert expected, "the planted demo lists behaviour findings"
    for e in expected:
        hit = flagged[(flagged[F.METRIC_ID] == e["metric_id"]) & (flagged[F.CHECK] == e["check"])]
        if e.get("scope"):
            scope = e["scope"]
            if scope.startswith("agent:"):
                scope = "agent:" + demo_audit.pseudonym(scope.split(":", 1)[1])
            hit = hit[hit[F.SCOPE] == scope]
        assert len(hit), f"planted {e} not found"


def test_planted_agent_flags_are_the_planted_agents(demo_audit, demo_behaviour):
    flagged = fd.flagged(demo_behaviour)
    expected = _expected(demo_audit)
    for check in ("short_contacts", "displacement", "survey_selection"):
        want = {"agent:" + demo_audit.pseudonym(e["scope"].split(":", 1)[1]) for e in expected
                if e["check"] == check and e["metric_id"] in ("AHT", "CSAT")}
        got = set(flagged[(flagged[F.CHECK] == check) & (flagged[F.METRIC_ID].isin(["AHT", "CSAT"]))][F.SCOPE])
        assert got == want, check


def test_agent_ids_never_appear_raw(demo_behaviour):
    assert not demo_behaviour[F.SCOPE].str.contains("AG0").any()
    assert not demo_behaviour[F.DETAIL].str.contains("AG0").any()


def test_nothing_flagged_on_the_null_demo(null_behaviour):
    flagged = fd.flagged(null_behaviour)
    assert flagged.empty, flagged[[F.METRIC_ID, F.CHECK, F.SCOPE, F.VALUE, F.EVIDENCE]].to_string()
    assert (null_behaviour[F.SEVERITY] != "not_assessable").all()


def test_service_level_bunches_under_its_threshold_not_its_target(demo_behaviour):
    # the KPI library says service level heaps under thresholds.service_level_seconds (20 s), not 0.80
    sl = demo_behaviour[(demo_behaviour[F.METRIC_ID] == "SL") & (demo_behaviour[F.CHECK] == "threshold_bunching")]
    assert len(sl) and sl[F.EVIDENCE].str.contains(r"window=\[16,20\)").all()
    assert (sl[F.LABEL] == "queue_seconds").all()


def test_risk_overview_and_headline(demo_audit, demo_behaviour):
    risks = bh.risk_overview(demo_behaviour, demo_audit.register, demo_audit.kpis)
    aht = risks[(risks["Metric"] == "AHT") & (risks["Data check"] == "threshold bunching")]
    assert aht["What the data shows"].str.startswith("FLAGGED").all()
    counts = bh.flag_counts(demo_behaviour)
    row = counts[(counts["Metric"] == "FRT") & (counts["Check"] == "hollow_first_reply")].iloc[0]
    assert row["Flagged"] == 1 and row["Scopes checked"] == 1
    assert set(bh.flag_table(demo_behaviour)["Severity"]) <= {"medium", "high"}


def test_charts_draw_what_the_lens_computed(demo_audit):
    import matplotlib.pyplot as plt
    from audit_lib import plots_behaviour as pb
    hist = demo_audit.table(P.HISTOGRAMS)
    res = bh.bunching_profile(hist, "handle_seconds", 360, SET, team="Beacon")
    fig = pb.bunching_chart(res, 360, "Beacon")
    line = fig.axes[0].lines[0]
    assert np.allclose(line.get_ydata(), res.bins["counterfactual"])
    sig = demo_audit.table(P.AGENT_SIGNATURES)
    funnel = bh.short_contact_funnel(sig, settings=SET, pseudonym=demo_audit.pseudonym)
    fig = pb.funnel_chart(funnel)
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert labels == set(funnel.loc[funnel["flagged"], "agent"]) and len(labels) == 3
    assert not any(lbl.startswith("AG0") for lbl in labels)
    fig.canvas.draw()                       # the three flagged agents sit close: their labels must not overlap
    from matplotlib.text import Text
    boxes = [Text.get_window_extent(t) for t in fig.axes[0].texts]      # the text, without its leader line
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    fig = pb.backlog_chart(bh.callback_backlog(demo_audit.table(P.CALLBACKS)))
    assert len(fig.axes) == 2
    fig = pb.bunching_panels(hist, demo_audit.register, demo_audit.kpis, SET)
    assert len(fig.axes) == 2 * 5          # AHT (360 s) and SL (20 s) rows: centre + 4 teams
    plt.close("all")
