"""The prepare step, the notebook context and pseudonyms, on the demo client.

Independent references: every prepared aggregate is recomputed here with plain pandas from the
canonical contacts (``io.load_contacts``), including a pandas implementation of the 7-day repeat
window; the pseudonym is checked against a value computed with the openssl command line.
"""
from __future__ import annotations

import datetime
import os
import shutil
import stat
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit_lib import io, params as params_mod, prepare, privacy
from audit_lib.columns import Contact as C
from audit_lib.columns import Prepared as P
from audit_lib.context import MANIFEST, cache_dir, open_audit
from audit_lib.errors import InputDataError, RunError
from audit_lib.findings import make_findings, read_json

DOCUMENTED = {
    P.AGENT_WEEK: ["agent_id", "team", "week", "contacts", "aht", "aht__n"],
    P.TEAM_WEEK: ["team", "week", "contacts", "aht", "aht__n"],
    P.CENTRE_WEEK: ["week", "contacts", "aht", "aht__n"],
    P.TEAM_DAY: ["team", "date", "weekday", "day_of_month", "days_to_month_end", "contacts", "aht", "aht__n"],
    P.HISTOGRAMS: ["measure", "channel", "team", "agent_id", "value", "resolution", "count"],
    P.AGENT_SIGNATURES: ["agent_id", "team", "contacts", "voice_handled", "short_contacts", "aht", "transfers",
                         "transfer_n", "repeats", "repeat_n", "fcr_coded", "fcr_coded_n", "fcr_repeat_ok",
                         "fcr_repeat_n", "callbacks_promised", "callbacks_completed", "csat_responses",
                         "csat_top2", "csat_mean"],
    P.CALLBACKS: ["team", "week", "kept", "promised", "followed_by_repeat", "followed_by_complaint"],
    P.FIRST_REPLIES: ["team", "agent_id", "channel", "replies", "instant_replies", "within_target",
                      "within_target_slow_resolution", "resolution_n"],
    P.COVERAGE: ["column", "rows", "missing", "missing_share"],
}


@pytest.fixture(scope="module")
def raw(demo_audit) -> pd.DataFrame:
    """The demo contacts in canonical form, as pandas (the reference side of every comparison)."""
    return io.load_contacts(demo_audit.params).to_pandas()


@pytest.fixture(scope="module")
def handled(raw) -> pd.DataFrame:
    return raw[(raw[C.CHANNEL] == "voice") & ~raw[C.ABANDONED].fillna(False).astype(bool)]


def test_every_documented_table_and_column_is_written(demo_audit):
    for name, cols in DOCUMENTED.items():
        df = demo_audit.table(name)
        assert len(df) > 0, name
        assert set(cols) <= set(df.columns), (name, set(cols) - set(df.columns))
    assert demo_audit.manifest["weeks"] == 13
    assert demo_audit.manifest["agents"] == 60
    assert demo_audit.manifest["teams"] == 4


def test_weeks_are_mondays_and_totals_agree(demo_audit, raw):
    aw, tw, cw = (demo_audit.table(n) for n in (P.AGENT_WEEK, P.TEAM_WEEK, P.CENTRE_WEEK))
    assert (pd.to_datetime(cw["week"]).dt.day_of_week == 0).all()
    assert aw["contacts"].sum() == tw["contacts"].sum() == cw["contacts"].sum() == len(raw)
    assert len(aw) == len(aw.drop_duplicates(["agent_id", "week"]))  # one row per agent-week


def test_team_aht_matches_pandas(demo_audit, handled):
    tw = demo_audit.table(P.TEAM_WEEK)
    pooled = (tw["aht"] * tw["aht__n"]).groupby(tw["team"]).sum() / tw.groupby("team")["aht__n"].sum()
    ref = handled.groupby(C.TEAM)[C.HANDLE_SECONDS].mean()
    pd.testing.assert_series_equal(pooled.sort_index(), ref.sort_index(), check_names=False, rtol=1e-9)


def _pandas_followed_by_repeat(raw: pd.DataFrame, days: int) -> pd.Series:
    """Reference: sort each customer's contacts, compare with the next one's start."""
    df = raw[[C.CONTACT_ID, C.CUSTOMER_ID, C.STARTED_AT]].copy()
    df = df.sort_values([C.CUSTOMER_ID, C.STARTED_AT, C.CONTACT_ID])
    nxt = df.groupby(C.CUSTOMER_ID)[C.STARTED_AT].shift(-1)
    out = (nxt - df[C.STARTED_AT]) <= pd.Timedelta(days=days)
    out = out.where(df[C.CUSTOMER_ID].notna())
    return out.reindex(raw.index)


def test_repeat_rate_matches_pandas_window(demo_audit, raw):
    days = demo_audit.params.thresholds.repeat_window_days
    rep = _pandas_followed_by_repeat(raw, days)
    ok = ~raw[C.ABANDONED].fillna(False).astype(bool) & rep.notna()
    ref = rep[ok].astype(bool).mean()
    cw = demo_audit.table(P.CENTRE_WEEK)
    got = (cw["repeat_rate"] * cw["repeat_rate__n"]).sum() / cw["repeat_rate__n"].sum()
    assert cw["repeat_rate__n"].sum() == ok.sum()
    assert got == pytest.approx(ref, rel=1e-12)


def _pandas_followed_by_complaint(raw: pd.DataFrame, days: int) -> pd.Series:
    """Reference: a later contact of the same customer (in start, id order) within the window is a complaint."""
    df = raw.sort_values([C.CUSTOMER_ID, C.STARTED_AT, C.CONTACT_ID])
    out = pd.Series(False, index=df.index, dtype=object)
    for _, g in df[df[C.CUSTOMER_ID].notna()].groupby(C.CUSTOMER_ID):
        starts, complaint = g[C.STARTED_AT].tolist(), g[C.COMPLAINT].tolist()
        for i, idx in enumerate(g.index):
            out[idx] = any(complaint[j] and starts[j] <= starts[i] + pd.Timedelta(days=days)
                           for j in range(i + 1, len(g)))
    return out.where(df[C.CUSTOMER_ID].notna()).reindex(raw.index)


@pytest.mark.parametrize("with_complaint", [True, False])
def test_repeat_and_complaint_flags_on_hand_made_contacts(tmp_path, with_complaint):
    """Ties in start time (broken by contact id), a contact without customer, a repeat just
    inside and just outside the window, complaints: each contact's flags (every contact is its
    own team, so the callbacks table has one row per contact) against the pandas references above."""
    t0 = pd.Timestamp("2026-07-01 09:00")
    rows = [("A", 0, "c1", False), ("A", 3, "c2", True), ("A", 3, "c0", False), ("A", 20, "c3", False),
            ("B", 0, "c4", False), (None, 1, "c5", True), ("B", 6.99, "c6", True), ("B", 14, "c7", False),
            ("C", 2, "c8", False)]
    raw = pd.DataFrame({C.CUSTOMER_ID: [r[0] for r in rows],
                        C.STARTED_AT: [t0 + pd.Timedelta(days=r[1]) for r in rows],
                        C.CONTACT_ID: [r[2] for r in rows], C.COMPLAINT: [r[3] for r in rows],
                        C.AGENT_ID: "AG001", C.CHANNEL: "voice", C.HANDLE_SECONDS: 100.0,
                        C.CALLBACK_PROMISED: True, C.CALLBACK_COMPLETED: False})
    raw[C.TEAM] = raw[C.CONTACT_ID]
    if not with_complaint:
        raw = raw.drop(columns=[C.COMPLAINT])
    p = types.SimpleNamespace(period_start=datetime.date(2026, 6, 29), period_end=datetime.date(2026, 9, 27),
                              thresholds=params_mod.Thresholds())
    prepare.prepare(p, tmp_path, contacts=raw, register=pd.DataFrame())
    got = pd.read_parquet(tmp_path / "prepared" / f"{P.CALLBACKS}.parquet").set_index(C.TEAM)
    assert sorted(got.index) == sorted(raw[C.CONTACT_ID])
    rep = _pandas_followed_by_repeat(raw, 7).fillna(False).astype(bool).set_axis(raw[C.CONTACT_ID])
    # by hand: c1 -> c0 (3 days), c0 -> c2 (tie broken by id), c4 -> c6 (6.99 days); c6 -> c7 is 7.01 days
    assert sorted(rep[rep].index) == ["c0", "c1", "c4"]
    assert (got["followed_by_repeat"].reindex(rep.index) == rep.astype(int)).all()
    if with_complaint:
        comp = _pandas_followed_by_complaint(raw, 7).fillna(False).astype(bool).set_axis(raw[C.CONTACT_ID])
        # by hand: c1 and c0 (c2 is a complaint within 7 days), c4 (c6); c5 has no customer
        assert sorted(comp[comp].index) == ["c0", "c1", "c4"]
        assert (got["followed_by_complaint"].reindex(comp.index) == comp.astype(int)).all()
    else:
        assert got["followed_by_complaint"].sum() == 0


def test_agent_signatures_match_pandas(demo_audit, raw, handled):
    sig = demo_audit.table(P.AGENT_SIGNATURES).set_index("agent_id")
    aht = handled.groupby(C.AGENT_ID)[C.HANDLE_SECONDS].mean()
    np.testing.assert_allclose(sig.loc[aht.index, "aht"], aht, rtol=1e-9)
    short = handled[handled[C.HANDLE_SECONDS] < demo_audit.params.thresholds.short_contact_seconds]
    np.testing.assert_array_equal(sig["short_contacts"], short.groupby(C.AGENT_ID).size().reindex(sig.index).fillna(0))
    top2 = raw[raw[C.CSAT] >= 4].groupby(C.AGENT_ID).size().reindex(sig.index).fillna(0)
    np.testing.assert_array_equal(sig["csat_top2"], top2)
    assert sig["contacts"].sum() == len(raw)
    promised = raw[C.CALLBACK_PROMISED].fillna(False).astype(bool)
    assert sig["callbacks_promised"].sum() == promised.sum()


def test_histograms_count_every_handled_value(demo_audit, raw):
    h = demo_audit.table(P.HISTOGRAMS)
    handled_any = raw[~raw[C.ABANDONED].fillna(False).astype(bool)]
    for measure in ("handle_seconds", "first_reply_seconds", "resolution_seconds"):
        part = h[h["measure"] == measure]
        assert part["count"].sum() == handled_any[measure].notna().sum(), measure
        width = 60 if measure == "resolution_seconds" else 1
        assert set(part["resolution"]) == {width}
        assert (part["value"] % width == 0).all()
    # the bin holding 300 s of handle time for Beacon equals a direct count of floor(handle) == 300
    beacon = handled_any[(handled_any[C.TEAM] == "Beacon") & (np.floor(handled_any[C.HANDLE_SECONDS]) == 300)]
    part = h[(h["measure"] == "handle_seconds") & (h["team"] == "Beacon") & (h["value"] == 300)]
    assert part["count"].sum() == len(beacon)


def test_first_replies_use_register_targets(demo_audit, raw):
    fr = demo_audit.table(P.FIRST_REPLIES)
    targets = prepare.register_targets(demo_audit.register)
    assert targets == {"first_reply_time": 3600.0, "resolution_time": 172800.0}
    has = raw[raw[C.FIRST_REPLY_SECONDS].notna()]
    assert fr["replies"].sum() == len(has)
    assert fr["instant_replies"].sum() == (has[C.FIRST_REPLY_SECONDS] <= 60).sum()
    within = has[C.FIRST_REPLY_SECONDS] <= 3600
    assert fr["within_target"].sum() == within.sum()
    assert fr["within_target_slow_resolution"].sum() == (within & (has[C.RESOLUTION_SECONDS] > 172800)).sum()


def test_callbacks_and_coverage(demo_audit, raw):
    cb = demo_audit.table(P.CALLBACKS)
    promised = raw[raw[C.CALLBACK_PROMISED].fillna(False).astype(bool)]
    assert cb["promised"].sum() == len(promised)
    kept = promised[C.CALLBACK_COMPLETED].fillna(False).astype(bool)
    assert cb.loc[cb["kept"], "promised"].sum() == kept.sum()
    cov = demo_audit.table(P.COVERAGE).set_index("column")
    for col in raw.columns:
        assert cov.loc[col, "missing"] == raw[col].isna().sum(), col


def test_prepare_keeps_only_the_period(demo_audit, tmp_path):
    # a copy of the demo whose period ends a week early: the last week's contacts are left out
    p = demo_audit.params.model_copy(update={"period_end": demo_audit.params.period_end - datetime.timedelta(days=7)})
    contacts = io.load_contacts(demo_audit.params)
    prepare.prepare(p, tmp_path, contacts=contacts, register=demo_audit.register)
    cw = pd.read_parquet(tmp_path / "prepared" / "centre_week.parquet")
    assert len(cw) == 12
    import json
    manifest = json.loads((tmp_path / "prepared" / MANIFEST).read_text())
    assert manifest["outside_period"] == contacts.num_rows - cw["contacts"].sum() > 0
    # the other coverage figures, recomputed with pandas from the raw contacts (dates, not times)
    df = contacts.to_pandas()
    day = df[C.STARTED_AT].dt.normalize()
    inside = df[(day >= pd.Timestamp(p.period_start)) & (day <= pd.Timestamp(p.period_end))]
    assert manifest["contacts"] == len(inside)
    assert manifest["outside_period"] == len(df) - len(inside)
    assert manifest["first_contact"] == str(inside[C.STARTED_AT].min())
    assert manifest["last_contact"] == str(inside[C.STARTED_AT].max())
    assert manifest["last_contact"] < str(pd.Timestamp(p.period_end) + pd.Timedelta(days=1))
    assert manifest["weeks"] == inside[C.STARTED_AT].dt.to_period("W-SUN").nunique() == 12
    assert manifest["agents"] == inside[C.AGENT_ID].nunique()
    assert manifest["teams"] == inside[C.TEAM].nunique()
    assert manifest["channels"] == inside[C.CHANNEL].value_counts().sort_index().to_dict()


def test_pseudonym_matches_openssl_reference():
    # echo -n AG001 | openssl dgst -sha256 -hmac kkkk...(32 k) -binary | base32 | cut -c1-6  -> DCJ4QV
    assert privacy.pseudonym("AG001", b"k" * 32) == "Agent DCJ4QV"


def test_pseudonym_key_is_private_stable_and_outside_the_report(demo_audit, tmp_path):
    key1 = privacy.load_or_create_key(tmp_path / ".restricted")
    key2 = privacy.load_or_create_key(tmp_path / ".restricted")
    assert key1 == key2 and len(key1) == 32
    mode = stat.S_IMODE(os.stat(tmp_path / ".restricted" / "pseudonym.key").st_mode)
    assert mode == 0o600
    df = pd.DataFrame({"agent_id": ["AG002", "AG001", None]})
    out = privacy.pseudonymise(df, key1)
    assert out["agent_id"].iloc[0].startswith("Agent ") and out["agent_id"].isna().iloc[2]
    assert out["agent_id"].iloc[0] != out["agent_id"].iloc[1]
    # the audit's key lives in <output_dir>/<slug>/.restricted, beside (never inside) the period folder
    name = demo_audit.pseudonym("AG001")
    restricted = Path(demo_audit.params.report_dir).parent / ".restricted"
    assert (restricted / "pseudonym.key").exists()
    assert name == privacy.pseudonym("AG001", privacy.load_or_create_key(restricted))
    with pytest.raises(RunError, match="not valid hex"):
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "pseudonym.key").write_text("not hex")
        privacy.load_or_create_key(tmp_path / "bad")


def test_open_audit_caches_by_input_hash(demo_params, tmp_path):
    folder = tmp_path / "client"
    shutil.copytree(Path(demo_params).parent, folder)
    pp = folder / Path(demo_params).name
    a1 = open_audit(pp)
    manifest = a1.run_dir / "prepared" / MANIFEST
    assert a1.run_dir.parent == folder / ".cache"
    before = manifest.stat().st_mtime_ns
    a2 = open_audit(pp)  # same inputs: the cached preparation is reused, not redone
    assert a2.run_dir == a1.run_dir and manifest.stat().st_mtime_ns == before
    # a changed input gives a new cache folder (and the old one is pruned)
    survey = folder / "survey.csv"
    survey.write_text(survey.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    a3 = open_audit(pp)
    assert a3.run_dir != a1.run_dir and not a1.run_dir.exists()
    assert a3.run_dir == cache_dir(params_mod.load_params(pp))


def test_prepare_frees_the_contacts_it_was_handed(demo_params, tmp_path, monkeypatch):
    """The validated contacts are the runner's largest object (1.5 GB at 10M contacts): handed
    over by ``ensure_prepared``, they are freed by the time ``prepare`` publishes its tables,
    not kept alive by a caller until the notebooks run."""
    import pyarrow as pa
    from audit_lib import context
    p = params_mod.load_params(demo_params)
    report = context.validate_inputs(p)
    size = report.tables["contacts"].nbytes
    before = pa.total_allocated_bytes()
    at_publish = []
    publish = prepare._publish
    monkeypatch.setattr(prepare, "_publish", lambda tmp, final: (at_publish.append(pa.total_allocated_bytes()),
                                                                  publish(tmp, final)))
    context.ensure_prepared(p, tmp_path / "run", report=report)
    assert "contacts" not in report.tables
    assert before - at_publish[0] > 0.9 * size


def test_invalid_input_raises_input_data_error(demo_params, tmp_path):
    folder = tmp_path / "client"
    shutil.copytree(Path(demo_params).parent, folder)
    contacts = folder / "contacts.csv"
    lines = contacts.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    # blank the handle time of row 3: a required duration that cannot be parsed
    idx = next(i for i, h in enumerate(header) if "handle" in h.lower())
    row = lines[2].split(",")
    row[idx] = "soon"
    lines[2] = ",".join(row)
    contacts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputDataError) as info:
        open_audit(folder / Path(demo_params).name, tmp_path / "run")
    assert "contacts.csv" in str(info.value)
    assert not (tmp_path / "run" / "prepared").exists()


def test_save_findings_names_the_file(demo_audit):
    from audit_lib.findings import finding
    df = make_findings([finding("overview", "AHT", "coverage", "info", value=1)])
    path = demo_audit.save_findings(df, name="99_probe")
    assert path == demo_audit.run_dir / "findings" / "99_probe.json"
    assert read_json(path).equals(df)
    path.unlink()


def test_save_findings_replaces_the_file_whole(demo_audit, monkeypatch):
    # the runner starts the scorecard as soon as a section's file exists: it must never see half a
    # file, so the text is written aside and renamed over the old file
    from audit_lib.findings import finding
    old = make_findings([finding("overview", "AHT", "coverage", "info", value=1)])
    new = make_findings([finding("overview", "AHT", "coverage", "low", value=2)])
    path = demo_audit.save_findings(old, name="99_probe")
    renames = []
    real_replace = os.replace

    def replace(src, dst):
        # at the moment of the rename the old file is still whole and the new one complete aside
        assert read_json(dst).equals(old) and read_json(src).equals(new)
        renames.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    demo_audit.save_findings(new, name="99_probe")
    assert renames == ["99_probe.json"] and read_json(path).equals(new)
    assert sorted(p.name for p in path.parent.iterdir() if "99_probe" in p.name) == ["99_probe.json"]
    path.unlink()


def test_overview_findings_on_demo(demo_audit):
    from audit_lib import overview
    f = overview.overview_findings(demo_audit)
    cov = f[f["check"] == "coverage"].set_index("metric_id")
    assert set(cov.index) == set(demo_audit.register["metric_id"])
    # every demo metric is computable from the export: info rows with the KPI's base as value
    assert set(cov["severity"]) == {"info"}
    cw = demo_audit.table(P.CENTRE_WEEK)
    assert cov.loc["AHT", "value"] == cw["aht__n"].sum()
    assert "Contacts in the period: " in overview.headline(demo_audit)


def test_overview_tables_escape_client_text():
    # a client string (metric name, example value in a warning) must show as text, never markup
    from audit_lib import overview
    df = pd.DataFrame({"item": ["<img src=x onerror=alert(1)>"], "contacts": [1234]})
    html = overview.table(df, {"contacts": "{:,}"}).to_html()
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "1,234" in html
