"""The KPI library: schema, cross-references, agreement with the computation file, and the
formulas it describes in words checked against audit_lib.kpi_compute on hand-made contacts.

Formula provenance: every expected number below is worked out by hand in the comment next to
it, from the definition in data/kpi_library.yaml (CSAT = share of 4-5 on 1-5, NPS = % 9-10
minus % 0-6, the three published service-level denominators, repeat-based FCR over a 7-day
window).
"""
from __future__ import annotations

import typing

import pandas as pd
import pytest
import yaml

from audit_lib import kpis
from audit_lib.columns import Contact as C
from audit_lib.errors import InputDataError
from audit_lib.settings import Thresholds

LIB = kpis.load_library()

REQUIRED_IDS = (
    "aht", "talk_time", "hold_time", "after_call_work", "asa", "abandonment_rate", "service_level",
    "fcr_agent", "fcr_repeat", "first_reply_time", "resolution_time", "transfer_rate", "repeat_rate",
    "callback_completion", "short_contact_share", "csat", "nps", "ces", "occupancy",
    "schedule_adherence", "sales_conversion", "cost_per_contact", "complaint_rate",
)


def raw_library() -> dict:
    from importlib import resources
    return yaml.safe_load(resources.files("audit_lib").joinpath("data/kpi_library.yaml").read_text())


# --- catalogue ----------------------------------------------------------------------------

def test_every_required_kpi_is_in_the_library():
    assert set(REQUIRED_IDS) <= set(LIB.ids)


def test_ids_match_the_computation_file():
    from audit_lib import kpi_compute
    assert sorted(LIB.ids) == sorted(kpi_compute.load_formulas())


def test_external_kpis_agree_with_the_computation_file():
    from audit_lib import kpi_compute
    for kpi_id, formula in kpi_compute.load_formulas().items():
        kpi = LIB.get(kpi_id)
        assert kpi.external == formula.external, kpi_id
        if not kpi.external:
            # everything the SQL requires is named in computed_from
            assert set(formula.requires) <= set(kpi.computed_from), kpi_id


def test_service_level_records_every_published_variant_and_the_setting_that_selects_one():
    from audit_lib import kpi_compute
    sl = LIB.get("service_level")
    variants = set(kpi_compute.load_formulas()["service_level"].variants)
    assert set(sl.formula.variants) == variants == {"offered", "answered", "answered_plus_abandoned_after_t"}
    assert sl.formula.variant_setting == "service_level_variant"
    assert sl.formula.variant_setting in Thresholds.model_fields
    allowed = typing.get_args(Thresholds.model_fields["service_level_variant"].annotation)
    assert set(allowed) == variants


def test_every_reference_exists():
    for kpi in LIB:
        for ref in kpi.counterbalances + kpi.tensions:
            assert ref in LIB and ref != kpi.id, (kpi.id, ref)
        for outcome in kpi.serves:
            assert outcome in kpis.OUTCOMES, (kpi.id, outcome)
        for u in kpi.unintended:
            assert u.check in kpis.BEHAVIOUR_CHECKS + (kpis.NO_CHECK,), (kpi.id, u.check)
            assert u.gaming_type in kpis.GAMING_TYPES


def test_tensions_are_symmetric():
    for kpi in LIB:
        for other in kpi.tensions:
            assert LIB.is_tension(other, kpi.id), (kpi.id, other)


def test_citations_are_complete():
    for kpi in LIB:
        for u in kpi.unintended:
            c = u.citation
            assert c.author.strip() and c.title.strip() and c.source.strip(), (kpi.id, u.behaviour)
            assert 1900 < c.year < 2030
            assert str(c.year) in c.short


def test_every_behaviour_check_is_used_by_some_kpi():
    used = {check for kpi in LIB for check in kpi.checks}
    assert used == set(kpis.BEHAVIOUR_CHECKS)


def test_documented_pairs_and_links():
    assert {"repeat_rate", "fcr_repeat", "csat"} <= set(LIB.counterbalances("aht"))
    assert "resolution_time" in LIB.counterbalances("first_reply_time")
    assert {"repeat_rate", "complaint_rate"} <= set(LIB.counterbalances("fcr_agent"))
    for kpi_id in ("aht", "fcr_agent", "resolution_time"):
        assert "csat" in LIB.serves(kpi_id)
    assert "churn_rate" in LIB.serves("csat")
    assert LIB.is_tension("first_reply_time", "resolution_time")
    assert LIB.is_tension("aht", "fcr_agent")
    assert not LIB.is_tension("asa", "abandonment_rate")


def test_checks_for_names_the_planted_detectors():
    assert LIB.checks_for("aht") == ["displacement", "end_of_period_surge", "short_contacts", "threshold_bunching"]
    assert LIB.checks_for("fcr_agent") == ["fcr_integrity"]
    assert LIB.checks_for("first_reply_time") == ["hollow_first_reply"]
    assert LIB.checks_for("callback_completion") == ["callback_unkept"]
    assert LIB.checks_for("csat") == ["survey_selection"]
    assert LIB.checks_for("occupancy") == []


def test_better_direction_and_units():
    assert LIB.better("aht") == "lower" and LIB.get("aht").unit == "seconds"
    assert LIB.better("csat") == "higher" and LIB.get("csat").unit == "share"
    assert LIB.get("nps").unit == "points"
    assert LIB.get("occupancy").external


def test_get_unknown_names_the_known_ids():
    with pytest.raises(KeyError, match="aht"):
        LIB.get("speed_of_light")


def test_library_is_cached_and_iterable():
    assert kpis.load_library() is LIB
    assert len(list(LIB)) == len(LIB) == len(LIB.ids)
    assert "aht" in LIB and "nope" not in LIB


def test_tables():
    frame = LIB.to_frame()
    assert list(frame["kpi"]) == LIB.ids
    risks = LIB.risks_frame()
    assert len(risks) == sum(len(k.unintended) for k in LIB)
    assert risks["citation"].str.contains(r"\(\d{4}\)").all()


def test_citation_short_forms():
    two = kpis.Citation(author="Bevan, G. & Hood, C.", year=2006, title="A title", source="s")
    three = kpis.Citation(author="Dixon, M., Freeman, K. & Toman, N.", year=2010, title="A title")
    four = kpis.Citation(author="Chetty, R., Friedman, J. N., Olsen, T. & Pistaferri, L.", year=2011, title="A title")
    assert two.short == "Bevan & Hood (2006)"
    assert three.short == "Dixon, Freeman & Toman (2010)"
    assert four.short == "Chetty et al. (2011)"


# --- validation of a broken library --------------------------------------------------------

def test_unknown_counterbalance_is_rejected():
    raw = raw_library()
    raw["aht"]["counterbalances"] = ["repeat_rate", "happiness_index"]
    with pytest.raises(InputDataError, match="happiness_index"):
        kpis.parse_library(raw)


def test_unknown_gaming_type_and_check_and_missing_citation_are_all_reported():
    raw = raw_library()
    raw["aht"]["unintended"][0]["gaming_type"] = "cheating"
    raw["csat"]["unintended"][0]["check"] = "mind_reading"
    del raw["nps"]["unintended"][0]["citation"]["title"]
    with pytest.raises(InputDataError) as info:
        kpis.parse_library(raw)
    text = str(info.value)
    assert "aht" in text and "csat" in text and "nps" in text
    assert len(info.value.problems) == 3, info.value.problems


def test_asymmetric_tension_is_rejected():
    raw = raw_library()
    raw["nps"]["tensions"] = ["aht"]
    with pytest.raises(InputDataError, match="symmetric"):
        kpis.parse_library(raw)


def test_non_canonical_column_and_unknown_outcome_are_rejected():
    raw = raw_library()
    raw["aht"]["computed_from"] = ["Handle Time"]
    raw["csat"]["serves"] = ["happiness"]
    with pytest.raises(InputDataError, match="Handle Time"):
        kpis.parse_library(raw)


def test_bunching_says_what_it_measures_and_where():
    bunching = {k.id: u for k in LIB for u in k.unintended if u.check == "threshold_bunching"}
    assert bunching["aht"].measure == "handle_seconds" and bunching["aht"].threshold == "target"
    # service level heaps just under T seconds, not at its 80 % target
    assert bunching["service_level"].measure == "queue_seconds"
    assert bunching["service_level"].threshold == "service_level_seconds"
    raw = raw_library()
    raw["aht"]["unintended"][0]["measure"] = "Handle Time"
    raw["aht"]["unintended"][0]["threshold"] = "moon_phase"
    with pytest.raises(InputDataError) as info:
        kpis.parse_library(raw)
    assert "Handle Time" in str(info.value) and "moon_phase" in str(info.value)


def test_unknown_key_is_rejected():
    raw = raw_library()
    raw["aht"]["colour"] = "blue"
    with pytest.raises(InputDataError, match="colour"):
        kpis.parse_library(raw)


def test_load_library_from_a_missing_path_says_so(tmp_path):
    with pytest.raises(InputDataError, match="does not exist"):
        kpis.load_library(str(tmp_path / "nope.yaml"))


# --- the formulas the library describes, computed by audit_lib.kpi_compute ----------------

T0 = pd.Timestamp("2026-07-06 09:00:00")  # a Monday


def _contacts(rows):
    out = []
    for i, row in enumerate(rows):
        rec = {C.CONTACT_ID: f"k{i:02d}", C.AGENT_ID: "A1", C.CHANNEL: "voice", C.HANDLE_SECONDS: 120.0,
               C.STARTED_AT: T0 + pd.Timedelta(minutes=10 * i)}
        rec.update(row)
        out.append(rec)
    return pd.DataFrame(out)


def _values(df, **thresholds):
    from audit_lib.kpi_compute import kpi_values
    res = kpi_values(df, [], Thresholds(**thresholds))
    return res.iloc[0]


def test_csat_is_the_top_two_box_share_not_the_mean():
    # answers 5, 5, 4, 3, 2, 1, 4, 5 (8 answers); 4-5 answers: 5,5,4,4,5 = 5 -> 5/8 = 0.625
    # (the mean would be 29/8 = 3.625: the library says share, not mean)
    df = _contacts([{C.CSAT: float(v)} for v in (5, 5, 4, 3, 2, 1, 4, 5)] + [{C.CSAT: None}])
    r = _values(df)
    assert r["csat"] == pytest.approx(0.625)
    assert r["csat__n"] == 8


def test_nps_in_points():
    # answers 10, 0, 6, 7, 8, 9, 3, 10, 10, 5 (10 answers)
    # promoters 9-10: 10, 9, 10, 10 = 4; detractors 0-6: 0, 6, 3, 5 = 4; passives 7, 8
    # NPS = (4 - 4) / 10 * 100 = 0; then add two promoters (10, 9): (6 - 4) / 12 * 100 = 16.67
    df = _contacts([{C.NPS: float(v)} for v in (10, 0, 6, 7, 8, 9, 3, 10, 10, 5)])
    assert _values(df)["nps"] == pytest.approx(0.0)
    df2 = _contacts([{C.NPS: float(v)} for v in (10, 0, 6, 7, 8, 9, 3, 10, 10, 5, 10, 9)])
    assert _values(df2)["nps"] == pytest.approx(200 / 12)


# Queue outcomes with T = 30 s:
#   answered at 5, 30, 31, 60 s; abandoned at 10 s (within T), 30 s (at T, not after), 45 s, 90 s
#   answered within T = {5, 30} = 2
#   offered = 8                                   -> 2/8 = 0.25
#   answered = 4                                  -> 2/4 = 0.5
#   answered + abandoned after T (45, 90) = 4 + 2 -> 2/6 = 0.3333
#   an email contact with a queue time never counts (voice only)
SL_ROWS = ([{C.QUEUE_SECONDS: q, C.ABANDONED: False} for q in (5.0, 30.0, 31.0, 60.0)]
           + [{C.QUEUE_SECONDS: q, C.ABANDONED: True} for q in (10.0, 30.0, 45.0, 90.0)]
           + [{C.QUEUE_SECONDS: 1.0, C.ABANDONED: False, C.CHANNEL: "email"}])


@pytest.mark.parametrize("variant, expected, n", [
    ("offered", 2 / 8, 8), ("answered", 2 / 4, 4), ("answered_plus_abandoned_after_t", 2 / 6, 6)])
def test_each_service_level_variant(variant, expected, n):
    r = _values(_contacts(SL_ROWS), service_level_seconds=30, service_level_variant=variant)
    assert r["service_level"] == pytest.approx(expected)
    assert r["service_level__n"] == n
    assert variant in LIB.get("service_level").formula.variants


def test_abandonment_and_asa_on_the_same_rows():
    # abandoned 4 of 8 voice -> 0.5; ASA over answered voice: (5 + 30 + 31 + 60) / 4 = 31.5
    r = _values(_contacts(SL_ROWS), service_level_seconds=30)
    assert r["abandonment_rate"] == pytest.approx(0.5)
    assert r["asa"] == pytest.approx(31.5)


def test_repeat_based_fcr_with_the_seven_day_window():
    day = pd.Timedelta(days=1)
    rows = [
        # customer P: contacts on day 0, day 3, day 20 -> day 0 repeated (day 3 within 7 d),
        # day 3 not (next is 17 d later), day 20 not (nothing after)
        {C.CUSTOMER_ID: "P", C.STARTED_AT: T0},
        {C.CUSTOMER_ID: "P", C.STARTED_AT: T0 + 3 * day},
        {C.CUSTOMER_ID: "P", C.STARTED_AT: T0 + 20 * day},
        # customer Q: day 0 and day 8 (outside 7 days) -> neither repeated
        {C.CUSTOMER_ID: "Q", C.STARTED_AT: T0},
        {C.CUSTOMER_ID: "Q", C.STARTED_AT: T0 + 8 * day},
        # customer R: day 1 and day 2, second one coded resolved -> first repeated
        {C.CUSTOMER_ID: "R", C.STARTED_AT: T0 + 1 * day},
        {C.CUSTOMER_ID: "R", C.STARTED_AT: T0 + 2 * day},
        # customer S: a single contact -> not repeated
        {C.CUSTOMER_ID: "S", C.STARTED_AT: T0 + 4 * day},
    ]
    df = _contacts(rows)
    df[C.RESOLVED_FIRST_CONTACT] = True          # agents coded every contact resolved
    r = _values(df)
    # 8 contacts, repeated: P day 0, R day 1 = 2 -> repeat rate 2/8 = 0.25, repeat-based FCR 6/8 = 0.75
    assert r["repeat_rate"] == pytest.approx(0.25)
    assert r["fcr_repeat"] == pytest.approx(0.75)
    # agent-coded FCR says 100 %: the gap the fcr_integrity detector looks for
    assert r["fcr_agent"] == pytest.approx(1.0)
    # with a 2-day window, P's day-3 contact is no longer a repeat of day 0 -> 1/8 repeated
    r2 = _values(df, repeat_window_days=2)
    assert r2["repeat_rate"] == pytest.approx(1 / 8)
