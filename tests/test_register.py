"""The register lens: every check on small hand-made registers, the demo's planted register
problems (exactly those, nothing else flagged), the helper tables and charts, and the notebook.

Provenance of the numbers: each expected value is worked out by hand in the comment next to it,
from the rule written in the docstring of audit_lib.register.
"""
from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from audit_lib import register as rg
from audit_lib.columns import Finding as F
from audit_lib.columns import Register as R
from audit_lib.errors import InputDataError
from audit_lib.findings import flagged
from audit_lib.kpis import load_library
from audit_lib.settings import Thresholds

LIB = load_library()
AS_OF = date(2026, 9, 27)
ROOT = Path(__file__).resolve().parents[1]

GOOD = {
    "AHT": "So customers reach an adviser quickly and staffing costs stay under control.",
    "REPEAT": "Find failure demand: customers coming back because their problem was not fixed.",
    "CSAT": "Hear from customers how well we served them, so we keep them with us.",
    "FRT": "Customers who write in hear from a person quickly and do not chase us by phone.",
    "RESOLVE": "Customers get written requests fixed within two days.",
}


def metric(metric_id, kpi, target, direction, *, purpose=None, owner="Head of Operations",
           incentive="none", counterbalance="", review="2026-06-01", name=None, **extra) -> dict:
    row = {R.METRIC_ID: metric_id, R.NAME: name or metric_id.title(), R.KPI: kpi,
           R.PURPOSE: GOOD.get(metric_id, "So customers are served well.") if purpose is None else purpose,
           R.OWNER: owner, R.TARGET: target, R.DIRECTION: direction, R.INCENTIVE_LINK: incentive,
           R.COUNTERBALANCE: counterbalance, R.REVIEW_DATE: review}
    row.update(extra)
    return row


def clean_rows() -> list[dict]:
    """A register with nothing wrong: purposes name outcomes, every targeted metric is paired
    (with a natural counter-measure), nothing tied to pay, reviewed this year."""
    return [
        metric("AHT", "aht", 360, "lower", counterbalance="REPEAT", name="Average handle time"),
        metric("REPEAT", "repeat_rate", 0.15, "lower", counterbalance="CSAT", name="Repeat contact rate"),
        metric("CSAT", "csat", 0.80, "higher", counterbalance="AHT", name="Customer satisfaction"),
        metric("FRT", "first_reply_time", 3600, "lower", counterbalance="RESOLVE", name="First reply time"),
        metric("RESOLVE", "resolution_time", 172800, "lower", counterbalance="CSAT", name="Resolution time"),
    ]


def run(rows, **kw) -> pd.DataFrame:
    kw.setdefault("as_of", AS_OF)
    return rg.check_register(pd.DataFrame(rows), LIB, **kw)


def one(findings, metric_id, check, scope="overall") -> pd.Series:
    rows = findings[(findings[F.METRIC_ID] == metric_id) & (findings[F.CHECK] == check)
                    & (findings[F.SCOPE] == scope)]
    assert len(rows) == 1, (metric_id, check, rows)
    return rows.iloc[0]


def flags(findings) -> set:
    return set(zip(flagged(findings)[F.METRIC_ID], flagged(findings)[F.CHECK]))


_ALIASES = {"incentive": R.INCENTIVE_LINK, "review": R.REVIEW_DATE}


def with_change(metric_id, **changes) -> list[dict]:
    changes = {_ALIASES.get(k, k): v for k, v in changes.items()}
    rows = clean_rows()
    for row in rows:
        if row[R.METRIC_ID] == metric_id:
            row.update(changes)
    return rows


# --- a clean register ------------------------------------------------------------------------

def test_clean_register_gives_no_flags():
    f = run(clean_rows())
    assert flags(f) == set()
    assert set(f[F.LENS]) == {"register"}
    # every metric got the main checks, as ok rows
    for m in ("AHT", "REPEAT", "CSAT", "FRT", "RESOLVE"):
        for check in ("purpose_missing", "purpose_no_outcome", "owner_missing", "target_missing",
                      "direction_missing", "target_direction_conflict", "surrogation_risk",
                      "counterbalance_missing", "contradictory_pair", "duplicate_metric", "review_stale"):
            assert one(f, m, check)[F.SEVERITY] in ("ok", "info"), (m, check)


def test_clean_register_with_plausible_current_values_gives_no_flags():
    # centre values close to the targets: nothing implausible, the targets met in some weeks
    cw = pd.DataFrame({"week": pd.to_datetime(["2026-07-06", "2026-07-13"]),
                       "aht": [350.0, 370.0], "aht__n": [100, 100],
                       "repeat_rate": [0.14, 0.17], "repeat_rate__n": [100, 100],
                       "csat": [0.78, 0.82], "csat__n": [50, 50]})
    f = run(clean_rows(), kpi_values=cw, available_kpis=["aht", "repeat_rate", "csat"])
    assert flags(f) == {("FRT", "orphan_not_computable"), ("RESOLVE", "orphan_not_computable")}
    assert one(f, "AHT", "target_implausible")[F.SEVERITY] == "ok"


def test_empty_register_gives_no_findings():
    f = rg.check_register(pd.DataFrame(columns=list(R.REQUIRED)), LIB, as_of=AS_OF)
    assert len(f) == 0 and list(f.columns) == list(F.ALL)


# --- purpose -----------------------------------------------------------------------------------

@pytest.mark.parametrize("purpose, check", [
    ("", "purpose_missing"),
    ("   \t ", "purpose_missing"),
    (None, "purpose_missing"),
    (float("nan"), "purpose_missing"),
    ("n/a", "purpose_missing"),
    ("TBC", "purpose_missing"),
    ("To measure AHT", "purpose_restates_metric"),
    ("to track our average handle time", "purpose_restates_metric"),
    ("AHT.", "purpose_restates_metric"),
    ("Keep AHT under 300s", "purpose_only_number"),
    ("AHT below target", "purpose_only_number"),
    ("Reduce handle time to 5 minutes", "purpose_only_number"),
    ("Monitor agent productivity", "purpose_no_outcome"),
    ("Because head office asks for it", "purpose_no_outcome"),
])
def test_purpose_rules_flag_exactly_one_purpose_check(purpose, check):
    rows = with_change("AHT")
    rows[0][R.PURPOSE] = purpose
    f = run(rows)
    purpose_flags = {c for m, c in flags(f) if m == "AHT" and c.startswith("purpose")}
    assert purpose_flags == {check}
    expected = "high" if check == "purpose_missing" else "medium"
    assert one(f, "AHT", check)[F.SEVERITY] == expected
    assert one(f, "AHT", check)[F.DETAIL]


@pytest.mark.parametrize("purpose", [
    "So customers reach an adviser quickly and staffing costs stay under control.",
    "Plan staffing so that callers wait less.",
    "Keep AHT under 300s so customers are not kept waiting",   # a number AND a reason: fine
    "Reduce complaints about long calls",
])
def test_purposes_naming_an_outcome_pass(purpose):
    rows = with_change("AHT", purpose=purpose)
    f = run(rows)
    assert not {c for m, c in flags(f) if m == "AHT" and c.startswith("purpose")}


def test_purpose_assessment_reports_leftover_words():
    verdict, left = rg.purpose_assessment("Monitor agent productivity", {"aht"})
    assert verdict == "no_outcome" and left == ["agent", "productivity"]
    assert rg.purpose_assessment("  ", {"aht"}) == ("missing", [])


# --- owner, target, direction -----------------------------------------------------------------

def test_owner_missing():
    f = run(with_change("AHT", owner="  "))
    assert one(f, "AHT", "owner_missing")[F.SEVERITY] == "medium"
    assert flags(f) == {("AHT", "owner_missing")}


@pytest.mark.parametrize("direction", ["", "up", None])
def test_direction_missing_or_invalid(direction):
    f = run(with_change("AHT", direction=direction))
    assert one(f, "AHT", "direction_missing")[F.SEVERITY] == "medium"
    assert ("AHT", "target_direction_conflict") not in flags(f)


def test_target_missing_is_low_without_incentive_and_medium_with_one():
    f = run(with_change("AHT", target=None))
    assert one(f, "AHT", "target_missing")[F.SEVERITY] == "low"
    f = run(with_change("AHT", target="", incentive="recognition"))
    assert one(f, "AHT", "target_missing")[F.SEVERITY] == "medium"


def test_target_given_as_percentage_text_is_read():
    f = run(with_change("CSAT", target="80%"))
    assert one(f, "CSAT", "target_missing")[F.THRESHOLD] == pytest.approx(0.8)


def test_target_direction_conflict():
    # AHT: the library says lower is better; the register says higher
    f = run(with_change("AHT", direction="higher"))
    row = one(f, "AHT", "target_direction_conflict")
    assert row[F.SEVERITY] == "medium" and "lower" in row[F.EVIDENCE]
    assert one(f, "CSAT", "target_direction_conflict")[F.SEVERITY] == "ok"


def test_custom_kpi_gets_no_direction_or_plausibility_judgement():
    rows = clean_rows() + [metric("NOTES", "custom", 0.9, "higher", counterbalance="REPEAT",
                                  purpose="Case notes good enough that customers need not repeat themselves",
                                  data_column="notes_ok")]
    cw = pd.DataFrame({"aht": [350.0], "aht__n": [10]})
    f = run(rows, kpi_values=cw, available_kpis=["aht"])
    assert f[(f[F.METRIC_ID] == "NOTES") & (f[F.CHECK] == "target_direction_conflict")].empty
    assert f[(f[F.METRIC_ID] == "NOTES") & (f[F.CHECK] == "target_implausible")].empty
    orphan = one(f, "NOTES", "orphan_not_computable")
    assert orphan[F.SEVERITY] == "low" and orphan[F.LABEL] == "custom"
    assert ("NOTES", "counterbalance_missing") not in flags(f)


# --- incentive -------------------------------------------------------------------------------

@pytest.mark.parametrize("incentive, severity", [
    ("bonus", "high"), ("discipline", "high"), ("recognition", "medium"), ("none", "ok"), ("", "info"),
    ("Bonus ", "high")])
def test_surrogation_risk(incentive, severity):
    f = run(with_change("AHT", incentive=incentive))
    row = one(f, "AHT", "surrogation_risk")
    assert row[F.SEVERITY] == severity
    if severity in ("high", "medium"):
        assert "Harris & Tayler 2019" in row[F.DETAIL]


# --- counterbalances --------------------------------------------------------------------------

def test_counterbalance_missing_severity_follows_incentive_and_target():
    f = run(with_change("AHT", counterbalance="", incentive="bonus"))
    assert one(f, "AHT", "counterbalance_missing")[F.SEVERITY] == "high"
    f = run(with_change("AHT", counterbalance=""))
    assert one(f, "AHT", "counterbalance_missing")[F.SEVERITY] == "medium"       # has a target
    f = run(with_change("AHT", counterbalance="", target=None))
    assert one(f, "AHT", "counterbalance_missing")[F.SEVERITY] == "low"          # no target, no incentive
    # the natural pairs are suggested
    f = run(with_change("AHT", counterbalance="", incentive="bonus"))
    assert "Repeat contact rate" in one(f, "AHT", "counterbalance_missing")[F.DETAIL]


def test_counterbalance_to_an_unknown_id():
    f = run(with_change("AHT", counterbalance="REPEATS"))
    row = one(f, "AHT", "counterbalance_unknown")
    assert row[F.SEVERITY] == "medium" and row[F.LABEL] == "REPEATS"
    assert "Did you mean REPEAT?" in row[F.DETAIL]
    # with no valid pair left, the metric is effectively unpaired
    assert one(f, "AHT", "counterbalance_missing")[F.SEVERITY] == "medium"


def test_counterbalance_naming_itself_is_unknown():
    f = run(with_change("AHT", counterbalance="AHT"))
    assert one(f, "AHT", "counterbalance_unknown")[F.SEVERITY] == "medium"


def test_several_counterbalances_one_unknown():
    f = run(with_change("AHT", counterbalance="REPEAT; NOPE"))
    assert one(f, "AHT", "counterbalance_unknown")[F.LABEL] == "NOPE"
    assert one(f, "AHT", "counterbalance_missing")[F.SEVERITY] == "ok"


def test_unusual_pair_is_low_and_names_the_natural_ones():
    # AHT paired with FRT: a registered metric, but not one of AHT's natural counter-measures
    f = run(with_change("AHT", counterbalance="FRT"))
    row = one(f, "AHT", "counterbalance_missing")
    assert row[F.SEVERITY] == "low" and row[F.LABEL] == "unusual"


# --- contradictory pairs -----------------------------------------------------------------------

def speed_vs_resolution(frt_pair="", resolve_pair="", frt_incentive="none", resolve_incentive="none",
                        resolve_target=172800):
    return [metric("FRT", "first_reply_time", 3600, "lower", counterbalance=frt_pair, incentive=frt_incentive),
            metric("RESOLVE", "resolution_time", resolve_target, "lower", counterbalance=resolve_pair,
                   incentive=resolve_incentive)]


def test_opposite_pull_without_counterbalance_is_contradictory():
    f = run(speed_vs_resolution())
    for m, other in (("FRT", "RESOLVE"), ("RESOLVE", "FRT")):
        row = one(f, m, "contradictory_pair")
        assert row[F.SEVERITY] == "medium" and row[F.LABEL] == other and row[F.VALUE] == 1


def test_contradictory_pair_is_high_when_both_are_paid():
    f = run(speed_vs_resolution(frt_incentive="bonus", resolve_incentive="discipline"))
    assert one(f, "FRT", "contradictory_pair")[F.SEVERITY] == "high"


def test_opposite_pull_with_a_counterbalance_is_not_flagged():
    # paired with each other
    f = run(speed_vs_resolution(frt_pair="RESOLVE"))
    assert one(f, "FRT", "contradictory_pair")[F.SEVERITY] == "info"
    assert "paired together" in one(f, "FRT", "contradictory_pair")[F.EVIDENCE]
    # one of them watched by another pair
    rows = speed_vs_resolution(resolve_pair="CSAT") + [
        metric("CSAT", "csat", 0.8, "higher", counterbalance="RESOLVE")]
    f = run(rows)
    assert one(f, "FRT", "contradictory_pair")[F.SEVERITY] == "info"
    assert ("FRT", "contradictory_pair") not in flags(f)


def test_same_kpi_targeted_in_opposite_directions_is_contradictory_even_when_paired():
    rows = clean_rows() + [metric("AHT_Q", "aht", 420, "higher", counterbalance="REPEAT",
                                  purpose="Give customers time so their problem is fixed")]
    f = run(rows)
    row = one(f, "AHT_Q", "contradictory_pair")
    assert row[F.SEVERITY] == "medium" and "opposite directions" in row[F.DETAIL]
    assert one(f, "AHT", "contradictory_pair")[F.SEVERITY] == "medium"
    # the same KPI in the same direction is a duplicate, not a contradiction
    rows[-1][R.DIRECTION] = "lower"
    f = run(rows)
    assert one(f, "AHT_Q", "contradictory_pair")[F.SEVERITY] in ("ok", "info")


def test_no_tension_without_both_targets():
    f = run(speed_vs_resolution(resolve_target=None))
    assert one(f, "FRT", "contradictory_pair")[F.SEVERITY] == "ok"


# --- duplicates and orphans --------------------------------------------------------------------

def test_duplicate_kpi_flags_the_later_row_only():
    rows = clean_rows() + [metric("AHT_TEAM", "aht", 360, "lower", counterbalance="REPEAT")]
    f = run(rows)
    row = one(f, "AHT_TEAM", "duplicate_metric")
    assert row[F.SEVERITY] == "medium" and row[F.LABEL] == "AHT"
    assert one(f, "AHT", "duplicate_metric")[F.SEVERITY] == "ok"


def test_custom_duplicates_by_data_column_and_by_name():
    rows = clean_rows() + [
        metric("Q1", "custom", 0.9, "higher", counterbalance="REPEAT", data_column="qa_score", name="Quality"),
        metric("Q2", "custom", 0.9, "higher", counterbalance="REPEAT", data_column="QA_score", name="QA pass"),
        metric("Q3", "custom", 0.9, "higher", counterbalance="REPEAT", name="quality"),
    ]
    f = run(rows)
    assert one(f, "Q2", "duplicate_metric")[F.LABEL] == "Q1"      # same column, case aside
    assert one(f, "Q3", "duplicate_metric")[F.LABEL] == "Q1"      # same name, case aside
    assert one(f, "Q1", "duplicate_metric")[F.SEVERITY] == "ok"


def test_orphans():
    rows = clean_rows() + [metric("OCC", "occupancy", 0.85, "higher", counterbalance="CSAT"),
                           metric("TYPO", "ahtt", 300, "lower", counterbalance="REPEAT")]
    available = ["aht", "repeat_rate", "csat", "first_reply_time", "transfer_rate", "short_contact_share"]
    f = run(rows, available_kpis=available)
    assert one(f, "RESOLVE", "orphan_not_computable")[F.SEVERITY] == "medium"   # columns missing
    assert one(f, "OCC", "orphan_not_computable")[F.SEVERITY] == "low"          # workforce data
    typo = one(f, "TYPO", "orphan_not_computable")
    assert typo[F.SEVERITY] == "medium" and "Did you mean aht?" in typo[F.DETAIL]
    assert one(f, "AHT", "orphan_not_computable")[F.SEVERITY] == "ok"
    unregistered = f[f[F.CHECK] == "orphan_unregistered_kpi"]
    assert sorted(unregistered[F.METRIC_ID]) == ["short_contact_share", "transfer_rate"]
    assert set(unregistered[F.SEVERITY]) == {"info"}


def test_no_orphan_rows_when_the_available_kpis_are_unknown():
    f = run(clean_rows())
    assert not f[F.CHECK].str.startswith("orphan").any()


# --- review dates --------------------------------------------------------------------------

def test_review_stale():
    # 2025-09-01 -> 2026-09-27 is 391 days (122 days of 2025 left after 1 Sep + 269 days of 2026 to 27 Sep)
    f = run(with_change("AHT", review="2025-09-01"))
    row = one(f, "AHT", "review_stale")
    assert row[F.SEVERITY] == "medium" and row[F.VALUE] == 391 and row[F.THRESHOLD] == 365
    assert one(f, "REPEAT", "review_stale")[F.SEVERITY] == "ok"


def test_review_stale_uses_the_threshold_and_accepts_dates():
    # 2026-06-01 -> 2026-09-27: 29 + 31 + 31 + 27 = 118 days
    rows = with_change("AHT", review=date(2026, 6, 1))
    f = run(rows, thresholds=Thresholds(review_stale_days=100))
    assert one(f, "AHT", "review_stale")[F.VALUE] == 118
    assert one(f, "AHT", "review_stale")[F.SEVERITY] == "medium"
    f = run(rows, thresholds=Thresholds(review_stale_days=120))
    assert one(f, "AHT", "review_stale")[F.SEVERITY] == "ok"


def test_review_date_blank_is_low_and_garbage_is_an_input_error():
    f = run(with_change("AHT", review=""))
    assert one(f, "AHT", "review_stale")[F.SEVERITY] == "low"
    with pytest.raises(InputDataError, match=r"row 2 .*AHT.*review_date"):
        run(with_change("AHT", review="last spring"))


# --- input errors ---------------------------------------------------------------------------

def test_missing_columns_and_repeated_ids_are_input_errors():
    with pytest.raises(InputDataError, match="kpi"):
        rg.check_register(pd.DataFrame({"metric_id": ["A"]}), LIB, as_of=AS_OF)
    rows = clean_rows() + [metric("AHT", "aht", 300, "lower")]
    with pytest.raises(InputDataError, match=r"AHT.*\[2, 7\]"):
        run(rows)


# --- target plausibility -----------------------------------------------------------------------

def centre(**values) -> pd.DataFrame:
    return pd.DataFrame({**{k: [v] for k, v in values.items()}, **{f"{k}__n": [100] for k in values}})


def test_share_typed_as_percentage_is_out_of_scale():
    f = run(with_change("CSAT", target=80), kpi_values=centre(csat=0.78))
    row = one(f, "CSAT", "target_implausible")
    assert row[F.SEVERITY] == "high" and row[F.LABEL] == "out_of_scale"
    assert "0.80" in row[F.DETAIL]


@pytest.mark.parametrize("metric_id, target, values, label", [
    # AHT 360 s now, target 60 s: 360 / 60 = 6x > 3x, out of reach
    ("AHT", 60, {"aht": 360.0}, "out_of_reach"),
    # AHT target 1200 s while 360 s now: 1200 / 360 = 3.33x > 3x, met without effort
    ("AHT", 1200, {"aht": 360.0}, "too_loose"),
    # CSAT 0.60 now, target 0.99: odds 99 / 1.5 = 66 > 10
    ("CSAT", 0.99, {"csat": 0.60}, "out_of_reach"),
])
def test_implausible_targets(metric_id, target, values, label):
    f = run(with_change(metric_id, target=target), kpi_values=centre(**values))
    row = one(f, metric_id, "target_implausible")
    assert row[F.SEVERITY] == "medium" and row[F.LABEL] == label


@pytest.mark.parametrize("metric_id, target, values", [
    # AHT 360 s now, target 130 s: 2.77x < 3x
    ("AHT", 130, {"aht": 360.0}),
    # repeat rate 6 % now, target 2 %: odds 0.0638 / 0.0204 = 3.13 < 10 (a ratio of rates would say 3x)
    ("REPEAT", 0.02, {"repeat_rate": 0.06}),
])
def test_plausible_targets(metric_id, target, values):
    f = run(with_change(metric_id, target=target), kpi_values=centre(**values))
    assert one(f, metric_id, "target_implausible")[F.SEVERITY] == "ok"


def test_nps_points_and_ces_scale():
    rows = [metric("NPS", "nps", 50, "higher", counterbalance="CES"),
            metric("CES", "ces", 9, "higher", counterbalance="NPS")]
    # NPS -20 now, target +50: 70 points apart > 50
    f = run(rows, kpi_values=centre(nps=-20.0, ces=5.0))
    assert one(f, "NPS", "target_implausible")[F.SEVERITY] == "medium"
    assert one(f, "CES", "target_implausible")[F.LABEL] == "out_of_scale"   # CES is 1..7


def test_target_without_current_value_is_not_assessable():
    f = run(clean_rows(), kpi_values=centre(aht=300.0))
    assert one(f, "FRT", "target_implausible")[F.SEVERITY] == "not_assessable"


# --- current value against target ------------------------------------------------------------

WEEKS = pd.to_datetime(["2026-07-06", "2026-07-13"])


def test_current_vs_target_overall_team_and_weeks():
    # centre: 300 s on 100 calls, 400 s on 300 calls -> (30000 + 120000) / 400 = 375 s, target 360 missed;
    # on target in 1 of 2 weeks
    cw = pd.DataFrame({"week": WEEKS, "aht": [300.0, 400.0], "aht__n": [100, 300]})
    # team A: 280 s (50) and 380 s (150) -> (14000 + 57000) / 200 = 355 s, met
    # team B: 320 s (50) and 420 s (150) -> (16000 + 63000) / 200 = 395 s, missed
    tw = pd.DataFrame({"team": ["A", "A", "B", "B"], "week": list(WEEKS) * 2,
                       "aht": [280.0, 380.0, 320.0, 420.0], "aht__n": [50, 150, 50, 150]})
    # agents: X 340 s, Y 500 s -> 1 of 2 on target
    aw = pd.DataFrame({"agent_id": ["X", "Y"], "week": [WEEKS[0]] * 2, "aht": [340.0, 500.0], "aht__n": [10, 10]})
    f = rg.current_vs_target(pd.DataFrame(clean_rows()), LIB, cw, tw, aw)
    row = one(f, "AHT", "current_vs_target")
    assert row[F.VALUE] == pytest.approx(375.0) and row[F.N] == 400 and row[F.THRESHOLD] == 360
    assert row[F.SEVERITY] == "low" and row[F.LABEL] == "missed"
    assert "1 of 2 weeks" in row[F.EVIDENCE] and "1 of 2 agents" in row[F.EVIDENCE]
    a = one(f, "AHT", "current_vs_target", "team:A")
    b = one(f, "AHT", "current_vs_target", "team:B")
    assert a[F.VALUE] == pytest.approx(355.0) and a[F.SEVERITY] == "info"
    assert b[F.VALUE] == pytest.approx(395.0) and b[F.SEVERITY] == "low"


def test_current_vs_target_never_met_is_medium():
    # every week of the centre and of every team is above 360 s
    cw = pd.DataFrame({"week": WEEKS, "aht": [400.0, 410.0], "aht__n": [10, 10]})
    tw = pd.DataFrame({"team": ["A", "B"], "week": WEEKS, "aht": [400.0, 410.0], "aht__n": [10, 10]})
    f = rg.current_vs_target(pd.DataFrame(clean_rows()), LIB, cw, tw)
    assert one(f, "AHT", "current_vs_target")[F.SEVERITY] == "medium"
    # one team meeting it in one week is enough to call the target reachable
    tw.loc[0, "aht"] = 350.0
    f = rg.current_vs_target(pd.DataFrame(clean_rows()), LIB, cw, tw)
    assert one(f, "AHT", "current_vs_target")[F.SEVERITY] == "low"


def test_current_vs_target_higher_is_better():
    # CSAT 0.81 against 0.80, higher is better -> met
    f = rg.current_vs_target(pd.DataFrame(clean_rows()), LIB, centre(csat=0.81))
    assert one(f, "CSAT", "current_vs_target")[F.LABEL] == "met"


def test_overall_values_pool_by_denominator():
    # csat 0.5 on 10 answers and 1.0 on 30 -> (5 + 30) / 40 = 0.875; a week with n = 0 is ignored
    df = pd.DataFrame({"csat": [0.5, 1.0, None], "csat__n": [10, 30, 0]})
    assert rg.overall_values(df)["csat"] == (pytest.approx(0.875), 40)


# --- tables and charts ---------------------------------------------------------------------------

def test_register_overview_in_plain_language():
    rows = with_change("AHT", incentive="bonus")
    rows[1][R.PURPOSE] = ""
    ov = rg.register_overview(pd.DataFrame(rows), LIB)
    assert list(ov.columns) == ["Metric", "Name", "Standard KPI", "Why is it measured?", "Who owns it?",
                                "Target", "Tied to pay?", "Paired with"]
    aht = ov.set_index("Metric").loc["AHT"]
    assert aht["Target"] == "at most 360 s" and aht["Tied to pay?"] == "yes: bonus"
    assert ov.set_index("Metric").loc["CSAT", "Target"] == "at least 80.0 %"
    assert ov.set_index("Metric").loc["REPEAT", "Why is it measured?"] == "(not stated)"


def test_tension_matrix_codes():
    rows = clean_rows() + [metric("FCR", "fcr_agent", 0.8, "higher", counterbalance="")]
    mat = rg.tension_matrix(pd.DataFrame(rows), LIB)
    assert mat.loc["AHT", "REPEAT"] == 2        # pull apart (aht vs repeat_rate), paired together
    assert mat.loc["REPEAT", "CSAT"] == 1       # counterbalance link, no tension in the library
    assert mat.loc["AHT", "FCR"] == 3           # pull apart, AHT paired elsewhere, FCR not
    assert mat.loc["FRT", "RESOLVE"] == 2
    assert mat.loc["AHT", "FRT"] == 0
    assert math.isnan(mat.loc["AHT", "AHT"])
    assert (mat.fillna(-1) == mat.T.fillna(-1)).all().all()
    f = run(speed_vs_resolution())
    assert rg.tension_matrix(pd.DataFrame(speed_vs_resolution()), LIB).loc["FRT", "RESOLVE"] == 4
    assert one(f, "FRT", "contradictory_pair")[F.SEVERITY] == "medium"


def test_target_tracking_and_small_multiples():
    from matplotlib.figure import Figure

    from audit_lib import plots_register as pr
    cw = pd.DataFrame({"week": WEEKS, "aht": [300.0, 400.0], "aht__n": [100, 300],
                       "csat": [0.7, 0.9], "csat__n": [10, 10]})
    tw = pd.DataFrame({"team": ["A", "A", "B", "B"], "week": list(WEEKS) * 2,
                       "aht": [280.0, 380.0, 320.0, 420.0], "aht__n": [50, 150, 50, 150]})
    tr = rg.target_tracking(pd.DataFrame(clean_rows()), LIB, tw, cw)
    # AHT: 2 teams x 2 weeks + centre 2 weeks = 6 rows; CSAT: centre only = 2 rows
    assert len(tr) == 8
    assert list(tr["metric_id"].unique()) == ["AHT", "CSAT"]
    assert set(tr.loc[tr["metric_id"] == "AHT", "series"]) == {"A", "B", "Centre"}
    fig = pr.plot_targets(tr)
    assert isinstance(fig, Figure)
    assert sum(ax.get_visible() and ax.axison for ax in fig.axes) == 2
    fig2 = pr.plot_tension_matrix(rg.tension_matrix(pd.DataFrame(clean_rows()), LIB))
    assert isinstance(fig2, Figure)


def test_register_charts_fit_long_client_text_inside_the_figure():
    from audit_lib import plots_register as pr
    cw = pd.DataFrame({"week": WEEKS, "aht": [300.0, 400.0], "aht__n": [100, 300],
                       "csat": [0.7, 0.9], "csat__n": [10, 10]})
    long_team = "Team $1 of the north-east region " * 3
    tw = pd.DataFrame({"team": [long_team] * 2 + ["B"] * 2, "week": list(WEEKS) * 2,
                       "aht": [280.0, 380.0, 320.0, 420.0], "aht__n": [50, 150, 50, 150]})
    rows = with_change("AHT", name="Handle time in $ and " + "many more words " * 8)
    tr = rg.target_tracking(pd.DataFrame(rows), LIB, tw, cw)
    matrix = rg.tension_matrix(pd.DataFrame(clean_rows()), LIB)
    matrix.index = matrix.columns = [f"{m}_$_" + "LONG" * 12 for m in matrix.index]
    for fig in (pr.plot_targets(tr), pr.plot_tension_matrix(matrix)):
        fig.canvas.draw()
        box = fig.get_tightbbox(fig.canvas.get_renderer())
        width, height = fig.get_size_inches()
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height
        text = " ".join(t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text")))
        assert "\\$" in text and "…" in text


def test_client_text_is_escaped_in_tables_and_charts():
    from audit_lib import plots_register as pr
    rows = with_change("AHT", purpose="<script>alert(1)</script> so customers wait less", name="A $x$ <b>")
    html = pr.show_table(rg.register_overview(pd.DataFrame(rows), LIB)).to_html()
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>" not in html
    assert pr.plain("A $x$") == r"A \$x\$"
    # what matplotlib draws: the text as the client wrote it, backslashes not doubled
    import matplotlib.text
    shown = matplotlib.text.Text()._preprocess_math
    for text in ("A $x$ costs $5", "C:\\exports\\q3", "50% of $ spent"):
        assert shown(pr.plain(text)) == (text, False)


def test_flagged_table_lists_only_flagged_register_rows():
    f = run(with_change("AHT", purpose="", incentive="recognition"))
    table = rg.flagged_table(f)
    assert list(table["Metric"]) == ["AHT", "AHT"]
    assert list(table["Severity"]) == ["high", "medium"]     # high first
    assert table["Problem"].iloc[0] == "No purpose stated"


def test_flag_summary_counts_metrics_per_problem():
    f = run(with_change("AHT", purpose="", incentive="bonus") + [
        metric("AHT2", "aht", 360, "lower", counterbalance="REPEAT", incentive="recognition")])
    summary = rg.flag_summary(f)
    assert list(summary.columns) == ["Problem", "Severity", "Metrics", "Which"]
    assert summary.iloc[0]["Severity"] == "high"
    pay = summary[(summary["Problem"] == rg.CHECK_TITLES["surrogation_risk"]) & (summary["Severity"] == "high")]
    assert pay.iloc[0]["Which"] == "AHT" and pay.iloc[0]["Metrics"] == 1
    assert summary["Metrics"].sum() == len(flagged(f))


def test_format_value():
    assert rg.format_value(360, "seconds") == "360 s"
    assert rg.format_value(3600, "seconds") == "60.0 min"
    assert rg.format_value(172800, "seconds") == "48.0 h"
    assert rg.format_value(0.8, "share") == "80.0 %"
    assert rg.format_value(-12.5, "points") == "-12.5"
    assert rg.format_value(float("nan"), "share") == "—"


# --- the demo client --------------------------------------------------------------------------

def expected_register(quarter: int = 1) -> dict:
    from audit_lib import demo
    doc = demo.expected_findings(quarter=quarter)
    return {(e["metric_id"], e["check"]): e.get("severity") for e in doc["findings"] if e["lens"] == "register"}


@pytest.mark.parametrize("quarter", [1, 2])
def test_demo_register_flags_exactly_the_planted_problems(quarter):
    from audit_lib import demo
    f = rg.check_register(demo.register_table(quarter), LIB, as_of=AS_OF)
    expected = expected_register(quarter)
    got = flagged(f)
    assert set(zip(got[F.METRIC_ID], got[F.CHECK])) == set(expected)
    for (m, check), severity in expected.items():
        if severity:
            assert one(f, m, check)[F.SEVERITY] == severity


def test_demo_audit_register_lens_with_data(demo_audit):
    """The whole lens on the prepared demo (register.csv through io, current values from the
    prepared tables): exactly the planted register problems are flagged, nothing else."""
    f = rg.audit_findings(demo_audit)
    expected = expected_register(1)
    got = flagged(f)
    assert set(zip(got[F.METRIC_ID], got[F.CHECK])) == set(expected)
    # current values were assessed for every computable registered metric
    cvt = f[(f[F.CHECK] == "current_vs_target") & (f[F.SCOPE] == "overall")]
    assert set(cvt[F.METRIC_ID]) == set(demo_audit.register[R.METRIC_ID])
    assert f[f[F.CHECK] == "current_vs_target"][F.SCOPE].str.startswith("team:").any()
    assert one(f, "AHT", "current_vs_target")[F.VALUE] == pytest.approx(
        rg.overall_values(demo_audit.table("centre_week"))["aht"][0])


def test_null_demo_register_lens_flags_the_same_register_problems(null_demo_audit):
    """Register problems are properties of the register, not of the data: the null centre's
    register lens flags exactly the same planted problems."""
    f = rg.audit_findings(null_demo_audit)
    got = flagged(f)
    assert set(zip(got[F.METRIC_ID], got[F.CHECK])) == set(expected_register(1))


def test_every_finding_explains_itself():
    rows = clean_rows() + [
        metric("AHT_TEAM", "aht", 60, "higher", purpose="To measure AHT", owner="", incentive="bonus",
               counterbalance="NOPE", review="2020-01-01"),
        metric("OCC", "occupancy", None, "", purpose="", incentive="")]
    cw = pd.DataFrame({"week": WEEKS, "aht": [350.0, 370.0], "aht__n": [10, 10]})
    f = run(rows, kpi_values=cw, available_kpis=["aht", "csat", "transfer_rate"])
    assert (f[F.DETAIL].str.len() > 10).all()
    problems = f[~f[F.SEVERITY].isin(("ok",))]
    assert (problems[F.EVIDENCE].str.len() > 0).all(), problems[problems[F.EVIDENCE] == ""][[F.METRIC_ID, F.CHECK]]
    # the messy row trips every governance check at once
    assert {c for m, c in flags(f) if m == "AHT_TEAM"} >= {
        "purpose_restates_metric", "owner_missing", "target_direction_conflict", "target_implausible",
        "surrogation_risk", "counterbalance_unknown", "counterbalance_missing", "duplicate_metric",
        "review_stale"}


# --- the notebook ------------------------------------------------------------------------------

NOTEBOOK = ROOT / "notebooks" / "01_register.ipynb"


def test_notebook_is_thin():
    import re

    import nbformat
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    after = code[code.index(tagged[0]) + 1]
    assert "audit = open_audit(params_path, run_dir)" in after.source
    for cell in code:
        assert not re.search(r"^\s*(def|class|for|while)\b", cell.source, flags=re.M), cell.source
    assert any("save_findings" in c.source for c in code)


def test_notebook_parameters_are_documented_for_papermill():
    import papermill as pm
    params = pm.inspect_notebook(str(NOTEBOOK))
    assert set(params) == {"params_path", "run_dir"}
    assert all(p["help"] for p in params.values())


@pytest.mark.slow
def test_notebook_runs_on_the_demo(tmp_path, demo_params, demo_audit):
    import papermill as pm
    out = tmp_path / "01_register.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out), cwd=str(NOTEBOOK.parent), kernel_name="python3",
                        parameters={"params_path": str(demo_params), "run_dir": str(demo_audit.run_dir)},
                        progress_bar=False)
    from audit_lib.findings import read_json
    saved = read_json(Path(demo_audit.run_dir) / "findings" / "01_register.json")
    got = flagged(saved)
    assert set(zip(got[F.METRIC_ID], got[F.CHECK])) == set(expected_register(1))


def test_grouped_pooled_values_equal_pooling_each_group():
    # current_vs_target pools every agent's weeks at once; it must match pooling each agent alone
    weeks = pd.DataFrame({"agent_id": ["b", "a", "b", "a", "c", "c", "d"],
                          "aht": [300.5, 280.25, None, 310.0, 290.0, 295.5, 400.0],
                          "aht__n": [10, 7, 5, 0, 3, 4, 0]})
    for table in (weeks, weeks.drop(columns="aht__n")):
        want = [rg._weighted(g, "aht")[0] for _, g in table.groupby("agent_id", sort=True)]
        got = rg._weighted_by(table, "agent_id", "aht")
        assert len(got) == len(want)
        assert all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(got, want))
