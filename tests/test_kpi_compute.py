"""KPI computation against hand calculations on tiny contact tables.

Every expected value below is worked out by hand in the comment next to it (provenance:
the formula in audit_lib/data/kpi_compute.yaml applied on paper to the rows of the test).
"""
from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa
import pytest

from audit_lib import kpi_compute as kc
from audit_lib.settings import Thresholds

T0 = pd.Timestamp("2026-07-01 09:00:00")


def contacts(rows: list[dict]) -> pd.DataFrame:
    """Canonical contacts with the required columns filled in by default."""
    base = {"agent_id": "A1", "channel": "voice", "handle_seconds": 100.0}
    out = []
    for i, row in enumerate(rows):
        rec = {"contact_id": f"c{i:03d}", **base, **row}
        rec.setdefault("started_at", T0 + pd.Timedelta(hours=i))
        out.append(rec)
    return pd.DataFrame(out)


def overall(df: pd.DataFrame, thresholds: Thresholds | None = None) -> dict:
    res = kc.kpi_values(df, [], thresholds or Thresholds())
    assert len(res) == 1
    return res.iloc[0].to_dict()


def test_computable_kpis_follow_required_columns():
    required = ["contact_id", "agent_id", "started_at", "channel", "handle_seconds"]
    assert kc.computable_kpis(required) == ["aht", "short_contact_share"]
    with_csat = kc.computable_kpis(required + ["csat", "customer_id"])
    assert {"csat", "fcr_repeat", "repeat_rate"} <= set(with_csat)
    # external KPIs (need workforce / finance data) are never computable from contacts
    assert "occupancy" not in kc.computable_kpis(list(kc.load_formulas()) + required)


def test_aht_excludes_abandoned_and_other_channels():
    df = contacts([
        {"handle_seconds": 100.0},
        {"handle_seconds": 300.0},
        {"handle_seconds": 5.0, "abandoned": True},      # abandoned: not handled
        {"handle_seconds": 900.0, "channel": "email"},   # not voice
        {"handle_seconds": 200.0, "abandoned": None},    # unknown abandonment counts as handled
    ])
    r = overall(df)
    # (100 + 300 + 200) / 3 = 200
    assert r["aht"] == pytest.approx(200.0)
    assert r["aht__n"] == 3
    assert r["contacts"] == 5


def test_csat_share_top_two_boxes():
    # csat 5, 4, 3, 1, missing, 2: top-2 box = {5, 4} = 2 of 5 answered -> 0.4
    df = contacts([{"csat": v} for v in (5, 4, 3, 1, None, 2)])
    r = overall(df)
    assert r["csat"] == pytest.approx(0.4)
    assert r["csat__n"] == 5


def test_nps_promoters_minus_detractors():
    # nps 10, 9, 9, 8, 7, 6, missing: promoters (9-10) = 3, detractors (0-6) = 1, answered 6
    # NPS = (3 - 1) / 6 * 100 = 33.333...
    df = contacts([{"nps": v} for v in (10, 9, 9, 8, 7, 6, None)])
    r = overall(df)
    assert r["nps"] == pytest.approx(100 * 2 / 6)
    assert r["nps__n"] == 6


SL_ROWS = [
    {"queue_seconds": 10.0, "abandoned": False},   # answered in time
    {"queue_seconds": 20.0, "abandoned": False},   # answered exactly at T = 20 -> in time
    {"queue_seconds": 30.0, "abandoned": False},   # answered late
    {"queue_seconds": 5.0, "abandoned": True},     # abandoned before T
    {"queue_seconds": 40.0, "abandoned": True},    # abandoned after T
    {"queue_seconds": None, "abandoned": False},   # no queue time: not offered to the queue
    {"queue_seconds": 1.0, "abandoned": False, "channel": "chat"},  # not voice
]


@pytest.mark.parametrize("variant, expected, n", [
    ("offered", 2 / 5, 5),                           # 2 in time / 5 offered voice calls
    ("answered", 2 / 3, 3),                          # 2 / 3 answered
    ("answered_plus_abandoned_after_t", 2 / 4, 4),   # 2 / (3 answered + 1 abandoned after T)
])
def test_service_level_variants(variant, expected, n):
    th = Thresholds(service_level_seconds=20, service_level_variant=variant)
    r = overall(contacts(SL_ROWS), th)
    assert r["service_level"] == pytest.approx(expected)
    assert r["service_level__n"] == n


def test_asa_and_abandonment():
    r = overall(contacts(SL_ROWS))
    # ASA over answered voice calls with a queue time: (10 + 20 + 30) / 3 = 20
    assert r["asa"] == pytest.approx(20.0)
    # abandonment: 2 abandoned / 6 voice calls with a known abandoned flag
    assert r["abandonment_rate"] == pytest.approx(2 / 6)


def repeat_frame() -> pd.DataFrame:
    day = pd.Timedelta(days=1)
    return contacts([
        {"customer_id": "X", "started_at": T0},                                   # X1: X2 exactly 7 d later -> repeat
        {"customer_id": "X", "started_at": T0 + 7 * day},                         # X2: nothing after -> no repeat
        {"customer_id": "Y", "started_at": T0},                                   # Y1: Y2 is 7 d + 1 s later -> no repeat
        {"customer_id": "Y", "started_at": T0 + 7 * day + pd.Timedelta(seconds=1)},
        {"customer_id": "Z", "started_at": T0},                                   # Z: single contact
        {"customer_id": None, "started_at": T0},                                  # unknown customer -> NULL
        {"customer_id": "W", "started_at": T0, "abandoned": True},                # abandoned: excluded from FCR
        {"customer_id": "W", "started_at": T0 + pd.Timedelta(hours=1), "abandoned": False},
    ])


def test_followed_by_repeat_boundary_at_exactly_seven_days():
    import duckdb
    con = duckdb.connect()
    con.register("c", pa.Table.from_pandas(repeat_frame(), preserve_index=False))
    got = kc.enrich(con, "c", Thresholds(repeat_window_days=7)).df().set_index("contact_id")
    assert got.loc["c000", "followed_by_repeat"] == True  # noqa: E712 - exactly 7 days is inside
    assert got.loc["c001", "followed_by_repeat"] == False  # noqa: E712
    assert got.loc["c002", "followed_by_repeat"] == False  # noqa: E712 - 7 days + 1 s is outside
    assert pd.isna(got.loc["c005", "followed_by_repeat"])
    assert got.loc["c006", "followed_by_repeat"] == True  # noqa: E712


def test_repeat_based_fcr_with_seven_day_window():
    r = overall(repeat_frame(), Thresholds(repeat_window_days=7))
    # non-abandoned contacts with a known customer: X1 (repeat), X2, Y1, Y2, Z, W2 -> n = 6
    # fcr_repeat = 5 not followed / 6 ; repeat_rate = 1 / 6
    assert r["fcr_repeat__n"] == 6
    assert r["fcr_repeat"] == pytest.approx(5 / 6)
    assert r["repeat_rate"] == pytest.approx(1 / 6)
    # a 14-day window also catches Y1 -> 2 repeats of 6
    r14 = overall(repeat_frame(), Thresholds(repeat_window_days=14))
    assert r14["repeat_rate"] == pytest.approx(2 / 6)


def test_repeat_tie_at_same_second_counts_once():
    # two contacts of one customer at the same second: the first (by contact_id) is followed,
    # the second is not -> 1 repeat of 2
    df = contacts([{"customer_id": "X", "started_at": T0}, {"customer_id": "X", "started_at": T0}])
    assert overall(df)["repeat_rate"] == pytest.approx(0.5)


def test_followed_by_complaint_looks_forward_only():
    import duckdb
    day = pd.Timedelta(days=1)
    df = contacts([
        {"customer_id": "X", "started_at": T0, "complaint": False},              # complaint 3 d later -> True
        {"customer_id": "X", "started_at": T0 + 3 * day, "complaint": True},     # itself a complaint, none after -> False
        {"customer_id": "Y", "started_at": T0, "complaint": False},              # complaint 8 d later -> False
        {"customer_id": "Y", "started_at": T0 + 8 * day, "complaint": True},
        {"customer_id": None, "started_at": T0, "complaint": False},             # NULL
    ])
    con = duckdb.connect()
    con.register("c", pa.Table.from_pandas(df, preserve_index=False))
    got = kc.enrich(con, "c").df().set_index("contact_id")["followed_by_complaint"]
    assert list(got.loc[["c000", "c001", "c002", "c003"]]) == [True, False, False, False]
    assert pd.isna(got.loc["c004"])


def test_callback_completion():
    # promised T,T,T,F,NULL ; completed T,F,NULL,T,T -> kept = 1 (row 1) of 3 promised
    df = contacts([
        {"callback_promised": True, "callback_completed": True},
        {"callback_promised": True, "callback_completed": False},
        {"callback_promised": True, "callback_completed": None},
        {"callback_promised": False, "callback_completed": True},
        {"callback_promised": None, "callback_completed": True},
    ])
    r = overall(df)
    assert r["callback_completion"] == pytest.approx(1 / 3)
    assert r["callback_completion__n"] == 3


def test_short_contacts_fcr_agent_transfer_complaint_rates():
    df = contacts([
        {"handle_seconds": 4.0, "resolved_first_contact": True, "transferred": False, "complaint": False},
        {"handle_seconds": 9.0, "resolved_first_contact": True, "transferred": True, "complaint": True},
        {"handle_seconds": 10.0, "resolved_first_contact": False, "transferred": False, "complaint": False},
        {"handle_seconds": 3.0, "abandoned": True, "resolved_first_contact": None, "transferred": None,
         "complaint": None},
    ])
    r = overall(df, Thresholds(short_contact_seconds=10))
    # short: voice, handled, < 10 s -> 4 s and 9 s (10 s is not short; abandoned excluded) = 2 of 3
    assert r["short_contact_share"] == pytest.approx(2 / 3)
    assert r["fcr_agent"] == pytest.approx(2 / 3)       # coded resolved 2 of 3 non-abandoned coded
    assert r["transfer_rate"] == pytest.approx(1 / 3)   # 1 of 3 known
    assert r["complaint_rate"] == pytest.approx(1 / 3)


def test_grouping_by_team_and_week_and_arrow_input():
    df = contacts([
        {"team": "Atlas", "started_at": pd.Timestamp("2026-07-05 23:59"), "handle_seconds": 100.0},  # Sunday
        {"team": "Atlas", "started_at": pd.Timestamp("2026-07-06 00:00"), "handle_seconds": 300.0},  # Monday
        {"team": "Beacon", "started_at": pd.Timestamp("2026-07-06 10:00"), "handle_seconds": 50.0},
        {"team": "Beacon", "started_at": pd.Timestamp("2026-07-07 10:00"), "handle_seconds": 150.0},
    ])
    res = kc.kpi_values(pa.Table.from_pandas(df, preserve_index=False), ["team", "week"], Thresholds())
    weeks = [str(w)[:10] for w in res["week"]]
    assert list(res["team"]) == ["Atlas", "Atlas", "Beacon"]
    # the ISO week of Sunday 2026-07-05 starts Monday 2026-06-29
    assert weeks == ["2026-06-29", "2026-07-06", "2026-07-06"]
    assert list(res["aht"]) == [100.0, 300.0, 100.0]
    assert list(res["aht__n"]) == [1, 1, 2]


def test_empty_denominator_gives_missing_value_not_zero():
    df = contacts([{"channel": "email", "handle_seconds": 100.0}])
    r = overall(df)
    assert r["aht__n"] == 0 and math.isnan(r["aht"])


def test_missing_required_column_is_reported():
    df = contacts([{}]).drop(columns=["channel"])
    with pytest.raises(ValueError, match="channel"):
        kc.kpi_values(df, [])


def test_formula_sql_fills_thresholds_and_rejects_external():
    num, den, scale = kc.formula_sql("service_level", Thresholds(service_level_seconds=45,
                                                                 service_level_variant="answered_plus_abandoned_after_t"))
    assert "45" in den and scale == 1.0
    with pytest.raises(ValueError, match="outside the contacts"):
        kc.formula_sql("occupancy")


def test_narrow_flags_join_equals_window_pass():
    # prepare computes the flags on the key columns only and joins them back by row number;
    # it must give exactly what the one-query window pass gives
    import duckdb
    day = pd.Timedelta(days=1)
    df = repeat_frame()
    extra = contacts([{"customer_id": "X", "started_at": T0 + 2 * day, "complaint": True},
                      {"customer_id": "Y", "started_at": T0 + day, "complaint": False}])
    extra["contact_id"] = ["e1", "e2"]
    df = pd.concat([df, extra], ignore_index=True)
    df["complaint"] = df["complaint"].astype("boolean")
    df["__row"] = range(len(df))
    con = duckdb.connect()
    con.register("c", pa.Table.from_pandas(df, preserve_index=False))
    cols = list(df.columns)
    con.execute("CREATE TABLE f AS " + kc.flags_sql("c", cols, Thresholds()))
    joined = con.execute(kc.derived_sql("c", cols, Thresholds(), flags="f")).df().set_index("contact_id")
    window = con.execute(kc.derived_sql("c", cols, Thresholds())).df().set_index("contact_id")
    for col in ("followed_by_repeat", "followed_by_complaint"):
        pd.testing.assert_series_equal(joined[col].sort_index(), window[col].sort_index(), check_dtype=False)
    assert joined.loc["c000", "followed_by_complaint"] == True  # noqa: E712 - e1 is a complaint 2 days later
