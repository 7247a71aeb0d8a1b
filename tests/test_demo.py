"""Tests of the demo client generator (audit_lib.demo).

The planted behaviours are checked with direct, simple pandas computations on the written files
(independent of audit_lib's own KPI code), and their absence is checked on the null demo. The
planted and null quarter-1 demos come from the session fixtures in conftest.py
(``demo_params``, ``null_demo_params``); quarter 2 is generated once here.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from audit_lib import demo
from audit_lib.columns import ITEM_BANK, REVERSE_ITEMS, SURVEY_SEP
from audit_lib.columns import Contact as C
from audit_lib.columns import Register as R
from audit_lib.columns import Survey as S
from audit_lib.errors import ParamsError

REPO = Path(__file__).resolve().parents[1]
WEEK = pd.Timedelta(days=7)
LABELS = {"Strongly disagree": 1, "Disagree": 2, "Neither agree nor disagree": 3, "Agree": 4,
          "Strongly agree": 5}

# check names fixed by docs/architecture.md ("Check names")
CONTRACT_CHECKS = {
    "register": {"purpose_missing", "purpose_restates_metric", "purpose_only_number", "purpose_no_outcome",
                 "owner_missing", "target_missing", "direction_missing", "target_direction_conflict",
                 "target_implausible", "surrogation_risk", "counterbalance_missing", "counterbalance_unknown",
                 "contradictory_pair", "duplicate_metric", "orphan_not_computable", "orphan_unregistered_kpi",
                 "review_stale", "current_vs_target"},
    "behaviour": {"catalogue_risk", "threshold_bunching", "short_contacts", "displacement", "fcr_integrity",
                  "callback_unkept", "hollow_first_reply", "end_of_period_surge", "survey_selection"},
    "perception": {"perception_index", "index_reliability", "staff_manager_gap", "team_difference",
                   "perceived_pressure", "perceived_gaming", "comment_themes"},
    "linkage": {"association", "within_agent", "lagged", "relative_importance", "decoupling",
                "counterbalance_worsened", "linkage_class"},
}


# --------------------------------------------------------------------------------------------
# loading helpers: read a demo folder the way a careful analyst would, with pandas only
# --------------------------------------------------------------------------------------------

class Demo:
    """A generated demo folder, loaded with pandas, with canonical column names."""

    def __init__(self, params_path: Path):
        self.dir = Path(params_path).parent
        self.params_text = Path(params_path).read_text(encoding="utf-8")
        self.params = yaml.safe_load(self.params_text)
        self.expected = json.loads((self.dir / "expected_findings.json").read_text(encoding="utf-8"))
        self.register = pd.read_csv(self.dir / "register.csv", keep_default_na=False)
        self.survey = pd.read_csv(self.dir / "survey.csv", keep_default_na=False, dtype=str)
        self.outcomes = pd.read_csv(self.dir / "outcomes.csv")
        raw = pd.read_csv(self.dir / "contacts.csv", dtype={"customer_id": str})
        self.raw_columns = list(raw.columns)
        c = raw.rename(columns=self.params["inputs"]["contacts"]["columns"])
        c[C.STARTED_AT] = pd.to_datetime(c[C.STARTED_AT], format="%Y-%m-%d %H:%M:%S")
        for col in (C.ABANDONED, C.RESOLVED_FIRST_CONTACT, C.TRANSFERRED, C.CALLBACK_PROMISED,
                    C.CALLBACK_COMPLETED, C.COMPLAINT):
            c[col] = c[col].map({"Y": True, "N": False}).astype("boolean")
        start = pd.Timestamp(self.params["period_start"])
        c["week"] = (c[C.STARTED_AT] - start).dt.days // 7
        c["weekday"] = c[C.STARTED_AT].dt.day_of_week
        c["repeat7"], c["complaint7"] = _followed_within(c, WEEK)
        self.contacts = c
        self.handled = c[~c[C.ABANDONED].fillna(False).astype(bool)]   # NA = not a voice contact
        self.voice = self.handled[self.handled[C.CHANNEL] == "Voice"]


def _followed_within(c: pd.DataFrame, window: pd.Timedelta):
    """Per contact: is there a later contact of the same customer within the window, and is any
    of those a complaint? (NaN without customer id.) Written out with shifts, independently of
    audit_lib.kpi_compute."""
    s = c[c[C.CUSTOMER_ID].notna()].sort_values([C.CUSTOMER_ID, C.STARTED_AT, C.CONTACT_ID])
    cust = s[C.CUSTOMER_ID].to_numpy()
    ts = s[C.STARTED_AT].to_numpy()
    comp = s[C.COMPLAINT].fillna(False).to_numpy(dtype=bool)
    repeat = np.zeros(len(s), dtype=bool)
    complaint = np.zeros(len(s), dtype=bool)
    k = 1
    while k < len(s):
        same = cust[k:] == cust[:-k]
        within = same & ((ts[k:] - ts[:-k]) <= window.to_timedelta64())
        if not within.any():
            break
        if k == 1:
            repeat[:-1] = within
        complaint[:-k] |= within & comp[k:]
        k += 1
    rep = pd.Series(np.nan, index=c.index)
    cmp_ = pd.Series(np.nan, index=c.index)
    rep.loc[s.index] = repeat.astype(float)
    cmp_.loc[s.index] = complaint.astype(float)
    return rep, cmp_


def _share_top2(x: pd.Series) -> float:
    x = x.dropna()
    return float((x >= 4).mean()) if len(x) else np.nan


def _bunching_ratio(voice: pd.DataFrame) -> pd.Series:
    """Per team: count of handle times in [330, 360) over the count in [360, 390)."""
    h = voice[C.HANDLE_SECONDS]
    below = voice[(h >= 330) & (h < 360)].groupby(C.TEAM).size()
    above = voice[(h >= 360) & (h < 390)].groupby(C.TEAM).size()
    return below / above


def _agent_table(d: Demo) -> pd.DataFrame:
    v, h = d.voice, d.handled
    out = pd.DataFrame({
        "team": h.groupby(C.AGENT_ID)[C.TEAM].first(),
        "aht": v.groupby(C.AGENT_ID)[C.HANDLE_SECONDS].mean(),
        "short": (v[C.HANDLE_SECONDS] < 10).groupby(v[C.AGENT_ID]).mean(),
        "transfer": h.groupby(C.AGENT_ID)[C.TRANSFERRED].mean().astype(float),
        "response": h[C.CSAT].notna().groupby(h[C.AGENT_ID]).mean(),
        "top2": h.groupby(C.AGENT_ID)[C.CSAT].apply(_share_top2),
    })
    return out


def _perception_index(survey: pd.DataFrame, metric: str) -> pd.Series:
    cols = {item: f"{metric}{SURVEY_SEP}{item}" for item in ITEM_BANK}
    x = pd.DataFrame({item: survey[col].map(LABELS) for item, col in cols.items()})
    for item in REVERSE_ITEMS:
        x[item] = 6 - x[item]
    return x.mean(axis=1)


def _role_gap(survey: pd.DataFrame, metric: str) -> float:
    idx = _perception_index(survey, metric)
    manager = survey[S.ROLE].isin(S.MANAGER_ROLES)
    return float(idx[manager].mean() - idx[~manager].mean())


def _team_week_csat(d: Demo) -> pd.DataFrame:
    h = d.handled
    return h.groupby([C.TEAM, "week"])[C.CSAT].apply(_share_top2).rename("csat").reset_index()


def _slope(y) -> float:
    y = np.asarray(y, dtype=float)
    return float(np.polyfit(np.arange(len(y)), y, 1)[0])


def _sha(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def planted(demo_params) -> Demo:
    return Demo(demo_params)


@pytest.fixture(scope="session")
def null(null_demo_params) -> Demo:
    return Demo(null_demo_params)


@pytest.fixture(scope="session")
def quarter2(tmp_path_factory) -> Demo:
    return Demo(demo.generate(tmp_path_factory.mktemp("demo_q2"), quarter=2))


# --------------------------------------------------------------------------------------------
# determinism, formats, arguments
# --------------------------------------------------------------------------------------------

def test_same_seed_gives_byte_identical_files(tmp_path):
    a = demo.generate(tmp_path / "a", contacts=20_000).parent
    b = demo.generate(tmp_path / "b", contacts=20_000).parent
    assert set(_sha(a)) == set(demo.FILES.values())
    assert _sha(a) == _sha(b)
    c = demo.generate(tmp_path / "c", contacts=20_000, seed=7).parent
    assert _sha(c)["contacts.csv"] != _sha(a)["contacts.csv"]
    assert _sha(c)["register.csv"] == _sha(a)["register.csv"]   # the register is not random


def test_parquet_holds_the_same_contacts_with_native_types(tmp_path):
    csv_dir = demo.generate(tmp_path / "csv", contacts=20_000).parent
    pq_params = demo.generate(tmp_path / "pq", contacts=20_000, fmt="parquet")
    pq_dir = pq_params.parent
    assert not (pq_dir / "contacts.csv").exists()
    p = pd.read_parquet(pq_dir / "contacts.parquet")
    c = pd.read_csv(csv_dir / "contacts.csv")
    assert list(p.columns) == list(c.columns)
    assert len(p) == len(c) == 20_000
    assert (p["Agent"].to_numpy() == c["Agent"].to_numpy()).all()
    assert (p["handle_seconds"].to_numpy() == c["handle_seconds"].to_numpy()).all()
    assert pd.api.types.is_datetime64_any_dtype(p["Start Time"])
    assert p["abandoned"].dropna().isin([True, False]).all()
    assert (p["abandoned"].isna() == c["abandoned"].isna()).all()
    doc = yaml.safe_load(pq_params.read_text())
    assert doc["inputs"]["contacts"]["path"] == "contacts.parquet"
    assert _sha(demo.generate(tmp_path / "pq2", contacts=20_000, fmt="parquet").parent) == _sha(pq_dir)


@pytest.mark.parametrize("kwargs, needle", [
    ({"quarter": 3}, "quarter"), ({"fmt": "xlsx"}, "format"), ({"contacts": 10}, "contacts"),
    ({"contacts": 1.5e5}, "contacts"),
])
def test_bad_arguments_raise_params_error(tmp_path, kwargs, needle):
    with pytest.raises(ParamsError, match=needle):
        demo.generate(tmp_path, **kwargs)


def test_contact_count_follows_the_argument(tmp_path):
    out = demo.generate(tmp_path, contacts=12_345).parent
    assert len(pd.read_csv(out / "contacts.csv", usecols=["Agent"])) == 12_345


# --------------------------------------------------------------------------------------------
# shape and realism
# --------------------------------------------------------------------------------------------

def test_centre_shape(planted):
    c = planted.contacts
    assert abs(len(c) - 150_000) <= 15_000
    agents = sorted(c[C.AGENT_ID].unique())
    assert agents == [f"AG{i:03d}" for i in range(1, 61)]
    assert c.groupby(C.AGENT_ID)[C.TEAM].nunique().max() == 1
    assert sorted(c[C.TEAM].unique()) == list(demo.TEAMS)
    assert c[C.STARTED_AT].min() >= pd.Timestamp("2026-06-29")
    assert c[C.STARTED_AT].max() < pd.Timestamp("2026-09-28")
    assert sorted(c["week"].unique()) == list(range(13))
    assert c[C.STARTED_AT].is_monotonic_increasing
    assert c[C.CONTACT_ID].is_unique
    share = c[C.CHANNEL].value_counts(normalize=True)
    assert share["Voice"] == pytest.approx(0.65, abs=0.02)
    assert share["Chat"] == pytest.approx(0.15, abs=0.02)
    assert share["Email"] == pytest.approx(0.20, abs=0.02)


def test_export_looks_like_a_client_export(planted):
    cols = planted.raw_columns
    for client_name in demo.CONTACT_COLUMNS:
        assert client_name in cols
    mapping = planted.params["inputs"]["contacts"]["columns"]
    assert mapping == demo.CONTACT_COLUMNS
    raw = pd.read_csv(planted.dir / "contacts.csv", dtype=str, keep_default_na=False)
    for col in ("abandoned", "resolved_first_contact", "transferred", "callback_promised",
                "callback_completed", "complaint"):
        assert set(raw[col].unique()) <= {"Y", "N", ""}, col
    c = planted.contacts
    # realistic gaps: unidentified customers, uncoded contacts, missing reasons
    assert 0.01 < c[C.CUSTOMER_ID].isna().mean() < 0.06
    assert 0.005 < planted.handled[C.RESOLVED_FIRST_CONTACT].isna().mean() < 0.05
    assert 0.005 < c[C.REASON].isna().mean() < 0.05
    # voice-only and written-only fields
    v = c[c[C.CHANNEL] == "Voice"]
    w = c[c[C.CHANNEL] != "Voice"]
    assert v[C.FIRST_REPLY_SECONDS].isna().all() and w[C.QUEUE_SECONDS].isna().all()
    assert w[C.ABANDONED].isna().all() and v[C.ABANDONED].notna().all()
    assert 0.03 < v[C.ABANDONED].mean() < 0.07
    talk = planted.voice[[C.TALK_SECONDS, C.HOLD_SECONDS, C.ACW_SECONDS, C.HANDLE_SECONDS]].dropna()
    assert (talk[C.TALK_SECONDS] >= 0).all()
    assert (talk[C.TALK_SECONDS] + talk[C.HOLD_SECONDS] + talk[C.ACW_SECONDS] == talk[C.HANDLE_SECONDS]).all()


def test_scores_and_response_rates(planted):
    h = planted.handled
    assert set(h[C.CSAT].dropna().unique()) <= {1, 2, 3, 4, 5}
    assert set(h[C.NPS].dropna().unique()) <= set(range(11))
    assert h[C.CSAT].notna().mean() == pytest.approx(0.20, abs=0.03)
    assert h[C.NPS].notna().mean() == pytest.approx(0.10, abs=0.02)
    assert planted.contacts.loc[planted.contacts[C.ABANDONED] == True, C.CSAT].isna().all()  # noqa: E712


def test_voice_handle_times_are_log_normal_around_six_minutes_with_minute_heaping(planted, null):
    for d in (planted, null):
        v = d.voice
        normal = v[v[C.HANDLE_SECONDS] >= 10][C.HANDLE_SECONDS]
        assert 270 <= normal.median() <= 390
        log_h = np.log(normal)
        assert abs(float(log_h.skew())) < 0.6        # roughly symmetric on the log scale
        # heaping on whole minutes in every team: a 1-second value that is a multiple of 60 is
        # far more common than its neighbours
        mid = v[(v[C.HANDLE_SECONDS] >= 120) & (v[C.HANDLE_SECONDS] < 900)]
        on_minute = (mid[C.HANDLE_SECONDS] % 60 == 0).groupby(mid[C.TEAM]).mean()
        assert (on_minute > 3 / 60).all(), on_minute


def test_daily_and_weekly_patterns(planted):
    v = planted.contacts[planted.contacts[C.CHANNEL] == "Voice"]
    hours = v[C.STARTED_AT].dt.hour
    assert hours.min() >= 8 and hours.max() <= 19
    assert (v["weekday"] != 6).all()                 # phones closed on Sunday
    per_day = v.groupby(v[C.STARTED_AT].dt.date).size()
    weekday = pd.Series(pd.to_datetime(per_day.index).day_of_week, index=per_day.index)
    assert per_day[weekday == 0].median() > per_day[weekday == 4].median() > per_day[weekday == 5].median()
    e = planted.contacts[planted.contacts[C.CHANNEL] == "Email"]
    assert (e["weekday"] == 6).any()                  # e-mails arrive every day


def test_customers_repeat_realistically(null):
    h = null.handled
    per_customer = h.groupby(C.CUSTOMER_ID).size()
    assert per_customer.median() == 1
    assert per_customer.max() >= 10                   # a few heavy callers
    assert 0.12 <= h["repeat7"].mean() <= 0.20


def test_survey_shape(planted):
    s = planted.survey
    assert 55 <= len(s) <= 70
    assert (s[S.TEAM] == "Delta").sum() == 3
    # fewer agents answer than each team has in the contacts (a response rate of at most 100 %)
    agents_per_team = planted.contacts.groupby(C.TEAM)[C.AGENT_ID].nunique()
    answering = s[s[S.ROLE] == "agent"].groupby(S.TEAM).size().drop("", errors="ignore")
    rates = answering / agents_per_team.reindex(answering.index)
    assert ((rates > 0.1) & (rates <= 0.9)).all(), rates
    assert set(s[S.ROLE]) == set(S.ROLES)
    assert s[S.RESPONDENT_ID].is_unique
    assert set(s[S.TENURE_BAND]) - {""}
    metric_ids = list(planted.register[R.METRIC_ID])
    for mid in metric_ids:
        for item in ITEM_BANK:
            col = f"{mid}{SURVEY_SEP}{item}"
            assert col in s.columns
            assert set(s[col]) <= set(LABELS) | {""}
    comments = [c for c in s.columns if c.endswith(SURVEY_SEP + S.COMMENT)]
    assert 3 <= len(comments) < len(metric_ids)
    text = " ".join(s[comments].to_numpy().ravel())
    assert re.search(r"[\w.]+@[\w.-]+\.\w+", text)            # an e-mail address to scrub
    assert re.search(r"\b07\d{3} ?\d{6}\b", text)              # a phone number to scrub
    assert re.search(r"\bAG\d{3}\b", text)                     # an agent id to scrub


def test_survey_labels_are_mapped_in_params(planted):
    labels = planted.params["perception"]["labels"]
    assert {k.lower(): v for k, v in LABELS.items()} == labels


def test_outcomes_shape(planted):
    o = planted.outcomes
    assert list(o.columns) == ["period", "team", "churn_rate", "escalations"]
    assert len(o) == 13 * 4
    periods = pd.to_datetime(o["period"])
    assert (periods.dt.day_of_week == 0).all()
    assert periods.min() == pd.Timestamp("2026-06-29")
    assert o["churn_rate"].between(0, 0.05).all()
    assert (o["escalations"] >= 0).all()


def test_register_matches_the_architecture(planted):
    r = planted.register.set_index(R.METRIC_ID)
    assert list(r.index) == ["AHT", "AHT_TEAM", "FCR", "REPEAT", "ASA", "SL", "ABANDON", "FRT", "RESOLVE",
                             "CALLBACK", "COMPLAINTS", "CSAT"]
    table = {  # docs/architecture.md, "The demo client"
        "AHT": ("aht", 360, "lower", "bonus", "REPEAT"), "AHT_TEAM": ("aht", 360, "lower", "none", "REPEAT"),
        "FCR": ("fcr_agent", 0.8, "higher", "bonus", "REPEAT"), "REPEAT": ("repeat_rate", 0.15, "lower", "none", "FCR"),
        "ASA": ("asa", 30, "lower", "recognition", "ABANDON"), "SL": ("service_level", 0.8, "higher", "none", "ABANDON"),
        "ABANDON": ("abandonment_rate", 0.06, "lower", "none", "ASA"),
        "FRT": ("first_reply_time", 3600, "lower", "bonus", ""),
        "RESOLVE": ("resolution_time", 172800, "lower", "none", "CSAT"),
        "CALLBACK": ("callback_completion", 0.95, "higher", "none", "COMPLAINTS"),
        "COMPLAINTS": ("complaint_rate", 0.03, "lower", "none", "CALLBACK"),
        "CSAT": ("csat", 0.8, "higher", "recognition", "AHT"),
    }
    for mid, (kpi, target, direction, incentive, pair) in table.items():
        row = r.loc[mid]
        assert (row[R.KPI], float(row[R.TARGET]), row[R.DIRECTION], row[R.INCENTIVE_LINK],
                row[R.COUNTERBALANCE]) == (kpi, target, direction, incentive, pair), mid
        assert row[R.OWNER]
    assert r.loc["ABANDON", R.PURPOSE] == ""
    assert (r.drop(index="ABANDON")[R.PURPOSE].str.len() > 40).all()


def test_null_mode_has_the_same_register(planted, null):
    assert (planted.dir / "register.csv").read_bytes() == (null.dir / "register.csv").read_bytes()


# --------------------------------------------------------------------------------------------
# planted behaviours (quarter 1) and their absence in the null demo
# --------------------------------------------------------------------------------------------

def test_bunching_under_the_aht_target_in_beacon_only(planted, null):
    ratio = _bunching_ratio(planted.voice)
    assert ratio["Beacon"] > 2.5, ratio
    assert (ratio.drop("Beacon") < 1.3).all(), ratio
    assert (_bunching_ratio(null.voice) < 1.3).all()


def test_three_agents_with_many_short_calls(planted, null):
    a = _agent_table(planted)
    short = a["short"].sort_values(ascending=False)
    assert sorted(short.index[:3]) == sorted(demo.SHORT_CONTACT_AGENTS)
    assert (short.iloc[:3] > 0.08).all() and (short.iloc[3:] < 0.02).all()
    assert (_agent_table(null)["short"] < 0.02).all()


def test_two_atlas_agents_with_low_aht_and_many_transfers(planted, null):
    for d, expected in ((planted, set(demo.DISPLACEMENT_AGENTS)), (null, set())):
        a = _agent_table(d)
        flagged = a[(a["aht"] < 0.8 * a["aht"].median()) & (a["transfer"] > 3 * a["transfer"].median())]
        assert set(flagged.index) == expected
    a = _agent_table(planted)
    assert set(a.loc[list(demo.DISPLACEMENT_AGENTS), "team"]) == {"Atlas"}


def test_comet_codes_fcr_that_repeats_contradict(planted, null):
    h = planted.handled
    coded = h.groupby(C.TEAM)[C.RESOLVED_FIRST_CONTACT].mean().astype(float)
    repeat = h.groupby(C.TEAM)["repeat7"].mean()
    assert coded["Comet"] == pytest.approx(0.90, abs=0.03)
    assert repeat["Comet"] == pytest.approx(0.35, abs=0.05)
    gap = coded - (1 - repeat)               # coded FCR minus repeat-based FCR
    assert gap["Comet"] > 0.2
    assert (gap.drop("Comet").abs() < 0.1).all(), gap
    hn = null.handled
    gap_null = (hn.groupby(C.TEAM)[C.RESOLVED_FIRST_CONTACT].mean().astype(float)
                - (1 - hn.groupby(C.TEAM)["repeat7"].mean()))
    assert (gap_null.abs() < 0.06).all(), gap_null


def test_beacon_breaks_callback_promises_and_unkept_promises_become_complaints(planted, null):
    p = planted.voice[planted.voice[C.CALLBACK_PROMISED] == True]  # noqa: E712
    kept = p.groupby(C.TEAM)[C.CALLBACK_COMPLETED].mean().astype(float)
    assert kept["Beacon"] == pytest.approx(0.55, abs=0.07)
    assert (kept.drop("Beacon") > 0.85).all()
    rate = p.groupby(C.CALLBACK_COMPLETED)["complaint7"].mean()
    assert rate[False] / rate[True] > 3.0, rate
    n = null.voice[null.voice[C.CALLBACK_PROMISED] == True]  # noqa: E712
    assert (n.groupby(C.TEAM)[C.CALLBACK_COMPLETED].mean().astype(float) > 0.88).all()
    rate_null = n.groupby(C.CALLBACK_COMPLETED)["complaint7"].mean()
    assert rate_null[False] / rate_null[True] < 2.0, rate_null


def _hollow(d: Demo) -> tuple[float, float]:
    e = d.handled[d.handled[C.CHANNEL] == "Email"]
    instant = e[C.FIRST_REPLY_SECONDS] <= 60
    slow = e.loc[instant, C.RESOLUTION_SECONDS].dropna() > 48 * 3600
    return float(instant.mean()), float(slow.mean()) if len(slow) else 0.0


def test_hollow_first_replies_on_email(planted, null):
    share, slow = _hollow(planted)
    assert share == pytest.approx(0.40, abs=0.04)
    assert slow > 0.6
    assert _hollow(null)[0] < 0.02


def test_one_agent_offers_the_csat_survey_selectively(planted, null):
    a = _agent_table(planted)
    sel = a.loc[demo.SURVEY_SELECTION_AGENT]
    assert sel["response"] < 0.4 * a["response"].median()
    assert sel["top2"] > 0.9
    others = a.drop(index=demo.SURVEY_SELECTION_AGENT)
    assert (others["response"] > 0.7 * a["response"].median()).all()
    an = _agent_table(null)
    assert (an["response"] > 0.7 * an["response"].median()).all()
    assert an["top2"].max() < 0.9


def test_managers_rate_aht_higher_than_staff(planted, null):
    # The generator shifts the managers' latent AHT level by 1.5; answers are clipped to 1..5, so
    # the observed index gap is smaller: over 200 seeds of this survey design it was 1.36 on
    # average (SD 0.18), and 0.00 (SD 0.19) in the null data. Three SDs either side.
    assert _role_gap(planted.survey, "AHT") == pytest.approx(1.36, abs=0.55)
    for mid in planted.register[R.METRIC_ID]:
        if mid != "AHT":
            assert abs(_role_gap(planted.survey, mid)) < 0.6, mid
        assert abs(_role_gap(null.survey, mid)) < 0.6, mid


def test_survey_items_form_a_reliable_index(planted):
    # Cronbach's alpha written out: k/(k-1) * (1 - sum of item variances / variance of the total)
    for mid in ("AHT", "FCR", "CSAT"):
        cols = [f"{mid}{SURVEY_SEP}{item}" for item in ITEM_BANK]
        x = planted.survey[cols].apply(lambda s: s.map(LABELS)).dropna()
        for item in REVERSE_ITEMS:
            x[f"{mid}{SURVEY_SEP}{item}"] = 6 - x[f"{mid}{SURVEY_SEP}{item}"]
        k = len(cols)
        alpha = k / (k - 1) * (1 - x.var(ddof=1).sum() / x.sum(axis=1).var(ddof=1))
        assert alpha > 0.7, (mid, alpha)


def test_coded_fcr_climbs_while_csat_and_repeats_do_not_improve(planted, null):
    h = planted.handled
    fcr = h.groupby("week")[C.RESOLVED_FIRST_CONTACT].mean().astype(float)
    assert fcr.iloc[0] == pytest.approx(0.74, abs=0.03)
    assert fcr.iloc[-1] == pytest.approx(0.90, abs=0.03)
    assert (fcr.diff().dropna() > -0.02).all()
    # the last week cannot see its whole 7-day window, so repeats are compared on weeks 0-11
    repeat = h[h["week"] < 12].groupby("week")["repeat7"].mean()
    assert _slope(repeat) >= 0
    csat = h.groupby("week")[C.CSAT].apply(_share_top2)
    assert csat.iloc[-4:].mean() - csat.iloc[:4].mean() < 0.02
    fcr_null = null.handled.groupby("week")[C.RESOLVED_FIRST_CONTACT].mean().astype(float)
    assert abs(_slope(fcr_null)) * 12 < 0.03


def test_beacon_aht_falls_while_its_repeats_rise(planted, null):
    for d, planted_mode in ((planted, True), (null, False)):
        b = d.voice[d.voice[C.TEAM] == "Beacon"]
        aht = b.groupby("week")[C.HANDLE_SECONDS].mean()
        hb = d.handled[(d.handled[C.TEAM] == "Beacon") & (d.handled["week"] < 12)]
        repeat = hb.groupby("week")["repeat7"].mean()
        if planted_mode:
            assert aht.iloc[-1] < 0.85 * aht.iloc[0]
            assert _slope(aht) < -5
            assert _slope(repeat) * 11 > 0.06
        else:
            assert abs(_slope(aht)) * 12 < 25
            assert abs(_slope(repeat)) * 11 < 0.03


def test_slow_resolution_weeks_have_lower_csat(planted, null):
    for d, planted_mode in ((planted, True), (null, False)):
        h = d.handled
        aw = h.groupby([C.AGENT_ID, "week"]).agg(
            res=(C.RESOLUTION_SECONDS, "mean"), csat=(C.CSAT, _share_top2)).dropna()
        r = aw["res"].corr(aw["csat"], method="spearman")
        # within agent as well: demean both by agent
        within = aw.groupby(level=0).transform(lambda s: s - s.mean())
        r_within = within["res"].corr(within["csat"])
        if planted_mode:
            assert r < -0.3 and r_within < -0.3, (r, r_within)
        else:
            assert abs(r) < 0.12 and abs(r_within) < 0.12, (r, r_within)


def test_team_week_csat_moves_churn(planted, null):
    for d, planted_mode in ((planted, True), (null, False)):
        tw = _team_week_csat(d)
        o = d.outcomes.assign(week=(pd.to_datetime(d.outcomes["period"])
                                    - pd.Timestamp(d.params["period_start"])).dt.days // 7)
        m = tw.merge(o, on=["team", "week"])
        assert len(m) == 52
        r = m["csat"].corr(m["churn_rate"])
        if planted_mode:
            assert r < -0.6, r
        else:
            assert abs(r) < 0.35, r


def test_no_friday_dip_in_quarter_one(planted):
    d = planted.voice[planted.voice[C.TEAM] == "Delta"]
    by_day = d.groupby("weekday")[C.HANDLE_SECONDS].mean()
    assert by_day[4] > 0.9 * by_day.drop(4).mean()


# --------------------------------------------------------------------------------------------
# quarter 2
# --------------------------------------------------------------------------------------------

def test_quarter_two_period_and_register(quarter2, planted):
    assert quarter2.params["period"] == "2026-Q4"
    assert str(quarter2.params["period_start"]) == "2026-09-28"
    c = quarter2.contacts
    assert c[C.STARTED_AT].min() >= pd.Timestamp("2026-09-28")
    assert c[C.STARTED_AT].max() < pd.Timestamp("2026-12-28")
    assert not (c[C.STARTED_AT].dt.date == pd.Timestamp("2026-12-25").date()).any()   # closed
    r2 = quarter2.register.set_index(R.METRIC_ID)
    r1 = planted.register.set_index(R.METRIC_ID)
    assert r2.loc["FRT", R.COUNTERBALANCE] == "RESOLVE"
    assert r2.drop(index="FRT").equals(r1.drop(index="FRT"))


def test_quarter_two_fixed_behaviours(quarter2):
    assert (_bunching_ratio(quarter2.voice) < 1.3).all()
    assert _hollow(quarter2)[0] < 0.02


def test_quarter_two_new_friday_surge_in_delta(quarter2):
    v = quarter2.voice
    for team, g in v.groupby(C.TEAM):
        by_day = g.groupby("weekday")[C.HANDLE_SECONDS].mean()
        friday = by_day[4] / by_day.drop(4).mean()
        if team == "Delta":
            assert friday < 0.75
        else:
            assert friday > 0.9


def test_quarter_two_persisting_behaviours(quarter2):
    a = _agent_table(quarter2)
    assert sorted(a["short"].sort_values().index[-3:]) == sorted(demo.SHORT_CONTACT_AGENTS)
    h = quarter2.handled
    assert h.loc[h[C.TEAM] == "Comet", "repeat7"].mean() > 0.28
    p = quarter2.voice[quarter2.voice[C.CALLBACK_PROMISED] == True]  # noqa: E712
    assert p.loc[p[C.TEAM] == "Beacon", C.CALLBACK_COMPLETED].astype(float).mean() < 0.65
    assert _role_gap(quarter2.survey, "AHT") > 1.0
    fcr = h.groupby("week")[C.RESOLVED_FIRST_CONTACT].mean().astype(float)
    assert fcr.iloc[-1] - fcr.iloc[0] > 0.1


# --------------------------------------------------------------------------------------------
# expected_findings.json
# --------------------------------------------------------------------------------------------

def _check_entries(entries, metric_ids):
    for e in entries:
        assert {"lens", "metric_id", "check", "note"} <= set(e) <= {"lens", "metric_id", "check", "scope",
                                                                   "severity", "label", "note"}
        assert e["check"] in CONTRACT_CHECKS[e["lens"]], e
        assert e["metric_id"] in metric_ids
        scope = e.get("scope", "overall")
        kind, _, value = scope.partition(":")
        assert kind in ("overall", "team", "agent", "outcome"), scope
        if kind == "team":
            assert value in demo.TEAMS
        if kind == "agent":
            assert re.fullmatch(r"AG0\d\d", value)
        if e["check"] == "linkage_class":
            assert e["label"] in ("linked", "decoupled")


def test_expected_findings_quarter_one(planted):
    doc = planted.expected
    assert (doc["client"], doc["period"], doc["quarter"], doc["null"]) == ("Harbour Utilities", "2026-Q3", 1, False)
    assert "fixed" not in doc and "new" not in doc
    _check_entries(doc["findings"], set(planted.register[R.METRIC_ID]))
    keys = {(e["lens"], e["metric_id"], e["check"], e.get("scope")) for e in doc["findings"]}
    assert ("behaviour", "AHT", "threshold_bunching", "team:Beacon") in keys
    assert ("behaviour", "FCR", "fcr_integrity", "team:Comet") in keys
    assert {e["scope"] for e in doc["findings"] if e["check"] == "short_contacts"} == \
        {f"agent:{a}" for a in demo.SHORT_CONTACT_AGENTS}
    assert {e["scope"] for e in doc["findings"] if e["check"] == "displacement"} == \
        {f"agent:{a}" for a in demo.DISPLACEMENT_AGENTS}
    surrogation = {e["metric_id"]: e["severity"] for e in doc["findings"] if e["check"] == "surrogation_risk"}
    assert surrogation == {"AHT": "high", "FCR": "high", "FRT": "high", "ASA": "medium", "CSAT": "medium"}
    assert len(doc["findings"]) == len(keys) == 23
    assert {e["label"] for e in doc["findings"] if e["check"] == "linkage_class"} == {"linked"}


def test_consequences_follow_from_the_planted_behaviours(planted, null):
    doc = planted.expected
    _check_entries(doc["consequences"], set(planted.register[R.METRIC_ID]))
    keys = {(e["lens"], e["metric_id"], e["check"], e.get("scope"), e.get("label")) for e in doc["consequences"]}
    planted_keys = {(e["lens"], e["metric_id"], e["check"], e.get("scope"), e.get("label")) for e in doc["findings"]}
    assert not keys & planted_keys
    # the duplicate AHT_TEAM mirrors every behaviour and linkage finding of AHT
    aht = {k[2:] for k in planted_keys | keys if k[1] == "AHT" and k[0] in ("behaviour", "linkage")}
    assert aht == {k[2:] for k in keys if k[1] == "AHT_TEAM"}
    assert ("linkage", "FCR", "counterbalance_worsened", "team:Beacon", None) in keys
    assert null.expected["consequences"] == []


def test_expected_findings_null_lists_only_register_problems(null, planted):
    doc = null.expected
    assert doc["null"] is True
    assert {e["lens"] for e in doc["findings"]} == {"register"}
    planted_register = [e for e in planted.expected["findings"] if e["lens"] == "register"]
    assert doc["findings"] == planted_register


def test_expected_findings_quarter_two(quarter2):
    doc = quarter2.expected
    assert (doc["period"], doc["quarter"]) == ("2026-Q4", 2)
    _check_entries(doc["findings"] + doc["fixed"] + doc["new"], set(quarter2.register[R.METRIC_ID]))
    fixed = {(e["metric_id"], e["check"]) for e in doc["fixed"]}
    assert fixed == {("AHT", "threshold_bunching"), ("FRT", "hollow_first_reply"), ("FRT", "counterbalance_missing")}
    assert [(e["metric_id"], e["check"], e["scope"]) for e in doc["new"]] == [("AHT", "end_of_period_surge", "team:Delta")]
    q1 = demo.expected_findings(quarter=1)["findings"]
    assert len(doc["findings"]) == len(q1) - len(doc["fixed"]) + len(doc["new"])
    null2 = demo.expected_findings(quarter=2, null=True)
    assert [(e["metric_id"], e["check"]) for e in null2["fixed"]] == [("FRT", "counterbalance_missing")]
    assert null2["new"] == []


# --------------------------------------------------------------------------------------------
# params files
# --------------------------------------------------------------------------------------------

def test_generated_params_structure(planted):
    p = planted.params
    assert p["client"] == "Harbour Utilities" and p["period"] == "2026-Q3"
    assert str(p["period_start"]) == "2026-06-29" and str(p["period_end"]) == "2026-09-27"
    for name, spec in p["inputs"].items():
        assert (planted.dir / spec["path"]).is_file(), name
    fmt = p["inputs"]["contacts"]["format"]
    assert fmt["duration"] == "seconds" and fmt["timestamp"] == "%Y-%m-%d %H:%M:%S"
    assert fmt["true_values"] == ["Y"] and fmt["false_values"] == ["N"]


def test_bundled_params_match_the_generated_ones(planted):
    bundled = (REPO / "params" / "demo.yaml").read_text(encoding="utf-8")
    generated = planted.params_text
    # identical except the relative paths
    assert bundled == generated.replace("path: ", "path: ../demo_client/").replace(
        "output_dir: reports", "output_dir: ../reports")
    doc = yaml.safe_load(bundled)
    assert doc["output_dir"] == "../reports"
    assert all(v["path"].startswith("../demo_client/") for v in doc["inputs"].values())


def test_params_load_with_the_params_model(planted, tmp_path):
    params = pytest.importorskip("audit_lib.params")
    p = params.load_params(planted.dir / "params.yaml")
    assert p.client == "Harbour Utilities" and p.period == "2026-Q3"
    assert Path(p.inputs.contacts.path).resolve() == (planted.dir / "contacts.csv").resolve()
    # the bundled file, next to a copy of the generated inputs laid out as in the repository
    (tmp_path / "params").mkdir()
    shutil.copy(REPO / "params" / "demo.yaml", tmp_path / "params" / "demo.yaml")
    shutil.copytree(planted.dir, tmp_path / "demo_client", ignore=shutil.ignore_patterns("reports"))
    bundled = params.load_params(tmp_path / "params" / "demo.yaml")
    assert bundled.inputs.contacts.columns == demo.CONTACT_COLUMNS
    assert Path(bundled.inputs.survey.path).resolve() == (tmp_path / "demo_client" / "survey.csv").resolve()


# --------------------------------------------------------------------------------------------
# ensure_demo_inputs
# --------------------------------------------------------------------------------------------

def test_ensure_demo_inputs_generates_missing_inputs_once(tmp_path):
    (tmp_path / "params").mkdir()
    params_path = tmp_path / "params" / "demo.yaml"
    params_path.write_text(demo.params_text("../demo_client/", contacts=5_000, output_dir="../reports"))
    assert demo.ensure_demo_inputs(params_path) is True
    made = tmp_path / "demo_client"
    assert (made / "contacts.csv").is_file() and (made / "survey.csv").is_file()
    assert len(pd.read_csv(made / "contacts.csv", usecols=["Agent"])) == 5_000
    # the same files as an explicit generate() with the recorded settings
    ref = demo.generate(tmp_path / "ref", contacts=5_000).parent
    assert (made / "contacts.csv").read_bytes() == (ref / "contacts.csv").read_bytes()
    assert demo.ensure_demo_inputs(params_path) is False      # nothing missing now


def test_ensure_demo_inputs_leaves_other_params_alone(tmp_path):
    params_path = tmp_path / "client.yaml"
    params_path.write_text(demo.params_text("data/").split("\n", 1)[1])   # no generator line
    assert demo.ensure_demo_inputs(params_path) is False
    assert not (tmp_path / "data").exists()
    with pytest.raises(ParamsError, match="cannot read"):
        demo.ensure_demo_inputs(tmp_path / "missing.yaml")


def test_demo_header_reads_back_what_params_text_wrote(tmp_path):
    from audit_lib.demo_header import read_header
    path = tmp_path / "p.yaml"
    path.write_text(demo.params_text("data/", quarter=2, null=True, seed=7, contacts=2_000, fmt="parquet"))
    header = read_header(path)
    assert (header.quarter, header.null, header.seed, header.contacts, header.fmt) == (2, True, 7, 2_000, "parquet")
    assert header.inputs["contacts"] == tmp_path / "data" / "contacts.parquet"
    assert set(header.missing()) == set(header.inputs.values())      # nothing generated yet
    path.write_text(path.read_text().split("\n", 1)[0] + "\ninputs: [unclosed\n")
    with pytest.raises(ParamsError, match="damaged"):
        read_header(path)
    path.write_text("client: x\n")
    assert read_header(path) is None


def test_bundled_params_record_the_default_demo():
    first = (REPO / "params" / "demo.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == "# demo-generator: quarter=1 null=false seed=20260701 contacts=150000 format=csv"
