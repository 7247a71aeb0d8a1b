"""Scorecard: verdict rules, recommendations, key findings and the quarter-over-quarter comparison.

Every expectation below is worked out by hand from the rule table documented in
audit_lib/scorecard.py (strongest triggered verdict wins; only medium/high findings count).
"""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from audit_lib import scorecard as sc
from audit_lib.columns import Finding as F
from audit_lib.errors import ParamsError, RunError
from audit_lib.findings import finding, make_findings, write_json

REGISTER = pd.DataFrame({
    "metric_id": ["AHT", "DUP", "FRT", "CSAT", "LONELY", "ADV"],
    "name": ["Average handle time", "AHT again", "First reply time", "Customer satisfaction",
             "Unassessed metric", "Adverse metric"],
    "kpi": ["aht", "aht", "first_reply_time", "csat", "custom", "custom"],
    "purpose": ["Resolve calls efficiently", "", "Reply fast", "Happy customers", "x", "y"],
})


def _lens_rows(metric):
    """One assessable, unflagged row per evidence lens, so the metric counts as assessed."""
    return [finding("behaviour", metric, "catalogue_risk", "info"),
            finding("behaviour", metric, "short_contacts", "ok"),
            finding("perception", metric, "perception_index", "info", value=3.5, ci_low=3.3, ci_high=3.7),
            finding("linkage", metric, "linkage_class", "info", label="linked", scope="outcome:csat")]


@pytest.fixture
def quarter1():
    rows = [
        finding("register", "AHT", "surrogation_risk", "high", detail="Tied to bonus."),
        finding("behaviour", "AHT", "threshold_bunching", "high", scope="team:Beacon",
                detail="Handle time heaped under 360 s in Beacon."),
        finding("behaviour", "AHT", "short_contacts", "medium", scope="agent:Agent AAAAAA"),
        finding("behaviour", "AHT", "short_contacts", "medium", scope="agent:Agent BBBBBB"),
        finding("behaviour", "AHT", "displacement", "low", scope="agent:Agent CCCCCC"),  # low: never counts
        finding("perception", "AHT", "perception_index", "info", value=3.0, ci_low=2.8, ci_high=3.2),
        finding("linkage", "AHT", "linkage_class", "info", label="weak", scope="outcome:csat"),
        finding("register", "DUP", "duplicate_metric", "medium", detail="Same as AHT."),
        finding("register", "FRT", "counterbalance_missing", "high"),
        finding("register", "FRT", "surrogation_risk", "high"),
        finding("behaviour", "FRT", "hollow_first_reply", "high"),
        finding("perception", "FRT", "perception_index", "info", value=2.5, ci_low=2.2, ci_high=2.8),
        finding("linkage", "FRT", "association", "not_assessable", detail="needs column csat"),
        finding("register", "CSAT", "surrogation_risk", "medium"),
        finding("register", "CSAT", "current_vs_target", "info", value=0.78, threshold=0.8),
        finding("register", "AHT", "current_vs_target", "medium", value=380.0, threshold=360.0),
        finding("behaviour", "LONELY", "short_contacts", "not_assessable", detail="needs column handle_seconds"),
        finding("linkage", "ADV", "linkage_class", "medium", label="adverse", scope="outcome:churn_rate"),
        finding("register", "ADV", "review_stale", "medium"),
    ]
    rows += _lens_rows("CSAT") + _lens_rows("ADV")
    return make_findings(rows)


def _verdicts(card):
    return dict(zip(card["metric_id"], card["verdict"]))


def test_verdicts_follow_the_rule_table(quarter1):
    card = sc.build_scorecard(quarter1, REGISTER)
    assert list(card.columns) == list(sc.SCORECARD_COLUMNS)
    assert _verdicts(card) == {
        "AHT": "rework",            # bunching/short contacts -> rework beats surrogation -> counterbalance
        "DUP": "retire",            # duplicate_metric -> retire
        "FRT": "rework",            # hollow first reply -> rework beats counterbalance_missing
        "CSAT": "counterbalance",   # surrogation_risk (medium) -> counterbalance
        "LONELY": "not assessed",   # nothing flagged and no evidence lens could assess it
        "ADV": "retire",            # linkage_class:adverse -> retire; review_stale -> keep
    }
    aht = card.set_index("metric_id").loc["AHT"]
    # pay-linked (surrogation high) with gaming evidence -> decouple from pay as well
    assert aht["rework_kind"] == "redefine, retarget, decouple from pay"
    assert aht["flagged"] == 5  # 2 short contacts + bunching + surrogation + current_vs_target (medium)
    # the low-severity displacement row is not cited
    assert "displacement" not in aht["evidence"]
    assert "behaviour/threshold_bunching/team:Beacon" in aht["evidence"]
    assert "behaviour/short_contacts/2 agents" in aht["evidence"]  # agent rows counted, not listed
    assert "(2 agents)" in aht["rationale"]
    assert aht["not_assessed"] == ""


def test_missing_lenses_are_named_not_judged(quarter1):
    card = sc.build_scorecard(quarter1, REGISTER).set_index("metric_id")
    assert card.loc["DUP", "not_assessed"].startswith("behaviour (no findings from this lens)")
    assert "Not assessed by behaviour, perception, linkage." in card.loc["DUP", "rationale"]
    # FRT: the only linkage row is not_assessable -> its reason is reported
    assert "linkage (needs column csat)" in card.loc["FRT", "not_assessed"]
    assert card.loc["LONELY", "severity"] == "not_assessable"
    assert card.loc["LONELY", "rationale"].startswith("Not assessed")


def test_rule_overrides_change_verdicts_and_bad_overrides_fail(quarter1):
    card = sc.build_scorecard(quarter1, REGISTER, rules={"surrogation_risk": "rework"})
    assert _verdicts(card)["CSAT"] == "rework"
    card = sc.build_scorecard(quarter1, REGISTER, rules={"duplicate_metric": "keep"})
    assert _verdicts(card)["DUP"] == "keep"
    with pytest.raises(ParamsError, match="scorecard.rules.duplicate_metric.*one of keep"):
        sc.resolve_rules({"duplicate_metric": "delete"})
    with pytest.raises(ParamsError, match="unknown check 'surogation_risk'"):
        sc.resolve_rules({"surogation_risk": "rework"})


def test_verdict_rows_are_findings(quarter1):
    card, recs, rows = sc.scorecard_findings(quarter1, REGISTER)
    verdicts = rows[rows[F.CHECK] == "verdict"]
    assert set(verdicts[F.LENS]) == {"scorecard"}
    assert dict(zip(verdicts[F.METRIC_ID], verdicts[F.LABEL])) == _verdicts(card)
    assert verdicts.set_index(F.METRIC_ID).loc["DUP", F.SEVERITY] == "high"
    rec_rows = rows[rows[F.CHECK] == "recommendation"]
    assert len(rec_rows) == len(recs) == 5  # every verdict except keep / not assessed


def test_recommendations_are_prioritised(quarter1):
    card = sc.build_scorecard(quarter1, REGISTER)
    recs = sc.recommendations(card, quarter1)
    assert list(recs["priority"]) == [1, 2, 3, 4, 5]
    # retire first (ADV and DUP: ADV has no high finding, DUP neither -> more flagged first: ADV 2 vs DUP 1),
    # then rework (AHT and FRT both high and pay-linked; AHT has more flagged rows), then counterbalance
    assert list(recs["metric_id"]) == ["ADV", "DUP", "AHT", "FRT", "CSAT"]
    aht = recs.set_index("metric_id").loc["AHT", "action"]
    assert aht.startswith("Rework Average handle time: replace the hard threshold")
    assert "loosen its link to pay" in aht


def test_key_findings_cover_different_problems(quarter1):
    top = sc.key_findings(quarter1, n=5)
    # by hand: high before medium; behaviour, linkage, perception, register; centre-wide before team
    # before agent; first pass one per metric and per check (DUP: only its duplicate_metric finding)
    assert list(zip(top[F.METRIC_ID], top[F.CHECK])) == [
        ("FRT", "hollow_first_reply"), ("AHT", "threshold_bunching"), ("ADV", "linkage_class"),
        ("CSAT", "surrogation_risk"), ("DUP", "duplicate_metric")]
    assert top[F.SEVERITY].map({"high": 0, "medium": 1}).is_monotonic_increasing
    assert sc.key_findings(make_findings([finding("register", "A", "owner_missing", "low")])).empty
    # several scopes of one problem count once, described for a reader
    more = sc.key_findings(quarter1, n=20).set_index([F.METRIC_ID, F.CHECK])
    assert more.loc[("AHT", "short_contacts"), F.SCOPE] == "2 agents"
    assert more.loc[("AHT", "short_contacts"), F.N] == 2


def test_metric_summary_reads_as_one_page(quarter1):
    card = sc.build_scorecard(quarter1, REGISTER)
    page = sc.metric_summary(quarter1, card, "FRT", REGISTER)
    assert list(page["question"]) == ["Why is it measured?", "What behaviour does it drive?",
                                      "How do staff see it?", "Does it move with outcomes?", "Verdict"]
    answers = dict(zip(page["question"], page["answer"]))
    assert answers["Why is it measured?"].startswith("Stated purpose: \u201cReply fast\u201d.")
    assert answers["Does it move with outcomes?"] == "Not assessed (needs column csat)."
    assert answers["Verdict"].startswith("rework.")
    with pytest.raises(RunError, match="not in the scorecard"):
        sc.metric_summary(quarter1, card, "NOPE")


def _quarter2(quarter1):
    """Quarter 2 by hand: Beacon bunching fixed, FRT fixed (pair added, replies no longer hollow),
    a new end-of-period surge on AHT in Delta."""
    q = quarter1
    gone = ((q[F.CHECK] == "threshold_bunching") |
            ((q[F.METRIC_ID] == "FRT") & q[F.CHECK].isin(["hollow_first_reply", "counterbalance_missing"])))
    q2 = q[~gone].to_dict("records")
    q2.append(finding("behaviour", "AHT", "end_of_period_surge", "medium", scope="team:Delta"))
    q2 = [r for r in q2 if not (r[F.CHECK] == "perception_index" and r[F.METRIC_ID] == "FRT")]
    q2.append(finding("perception", "FRT", "perception_index", "info", value=3.1, ci_low=2.8, ci_high=3.4))
    return make_findings(q2)


def test_compare_quarters_new_resolved_persisting(quarter1):
    q1 = sc.scorecard_findings(quarter1, REGISTER)[2]
    q1 = pd.concat([quarter1, q1], ignore_index=True)
    q2f = _quarter2(quarter1)
    q2 = pd.concat([q2f, sc.scorecard_findings(q2f, REGISTER)[2]], ignore_index=True)
    cmp = sc.compare_quarters(q2, q1, previous_period="2026-Q3", current_period="2026-Q4")
    key = lambda df: set(zip(df[F.LENS], df[F.METRIC_ID], df[F.CHECK], df[F.SCOPE]))  # noqa: E731
    assert key(cmp["new"]) == {("behaviour", "AHT", "end_of_period_surge", "team:Delta")}
    assert key(cmp["resolved"]) == {("behaviour", "AHT", "threshold_bunching", "team:Beacon"),
                                    ("behaviour", "FRT", "hollow_first_reply", "overall"),
                                    ("register", "FRT", "counterbalance_missing", "overall")}
    assert ("behaviour", "AHT", "short_contacts", "agent:Agent AAAAAA") in key(cmp["persisting"])
    assert cmp["counts"] == {"new": 1, "resolved": 3, "persisting": len(cmp["persisting"]), "verdict_changes": 1}
    # FRT: hollow replies gone -> only surrogation_risk (high) remains -> counterbalance
    assert cmp["verdict_changes"].to_dict("records") == [
        {"metric_id": "FRT", "previous": "rework", "current": "counterbalance"}]
    # perception index change with an interval (independent quarters):
    # se_q1 = 0.3/1.96, se_q2 = 0.3/1.96 -> se = sqrt(2)*0.3/1.96; change 0.6 +- 1.96*se = 0.6 +- 0.42426
    pc = cmp["perception"].set_index("metric_id").loc["FRT"]
    assert pc["change"] == pytest.approx(0.6)
    assert pc["ci_low"] == pytest.approx(0.6 - 0.3 * math.sqrt(2))
    assert pc["ci_high"] == pytest.approx(0.6 + 0.3 * math.sqrt(2))
    trend = cmp["kpi_trend"].set_index("metric_id")
    assert list(trend.columns) == ["2026-Q3", "2026-Q4", "change"]
    assert trend.loc["AHT", "2026-Q3"] == 380.0 and trend.loc["CSAT", "change"] == 0.0


def test_compare_with_previous_reads_report_folder(quarter1, tmp_path):
    prev = tmp_path / "2026-Q3"
    with pytest.raises(RunError, match="has no findings.json"):
        sc.compare_with_previous(quarter1, prev)
    write_json(quarter1, prev / "findings.json")
    (prev / "run.json").write_text(json.dumps({"period": "2026-Q3-final"}))
    cmp = sc.compare_with_previous(quarter1, prev, current_period="2026-Q4")
    assert cmp["previous_period"] == "2026-Q3-final"
    assert cmp["counts"]["new"] == cmp["counts"]["resolved"] == 0
    (prev / "findings.json").write_text("{not json")
    with pytest.raises(RunError, match="cannot read"):
        sc.compare_with_previous(quarter1, prev)


def test_collect_findings_reads_saved_and_reports_missing(quarter1, tmp_path):
    folder = tmp_path / "findings"
    write_json(quarter1[quarter1[F.LENS] == "register"], folder / "01_register.json")
    write_json(quarter1[quarter1[F.LENS] == "behaviour"], folder / "02_behaviour.json")
    # the scorecard's own saved file (its verdicts plus lens rows it computed earlier) is never read back
    own = pd.concat([sc.scorecard_findings(quarter1, REGISTER)[2], quarter1[quarter1[F.LENS] == "register"]])
    write_json(own, folder / "05_scorecard.json")
    audit = SimpleNamespace(run_dir=str(tmp_path))
    got, status = sc.collect_findings(audit, lenses=("register", "behaviour"))
    assert status == {"register": "saved", "behaviour": "saved"}
    assert set(got[F.LENS]) == {"register", "behaviour"}
    assert len(got) == int(quarter1[F.LENS].isin(["register", "behaviour"]).sum())


def test_collect_findings_computes_missing_lenses(quarter1, tmp_path, monkeypatch):
    import sys
    import types
    calls = []
    fake = types.ModuleType("audit_lib.linkage")
    fake.audit_findings = lambda audit: calls.append(audit) or quarter1[quarter1[F.LENS] == "linkage"]
    monkeypatch.setitem(sys.modules, "audit_lib.linkage", fake)
    empty = types.ModuleType("audit_lib.perception")  # a lens module without the entry point
    monkeypatch.setitem(sys.modules, "audit_lib.perception", empty)
    write_json(quarter1[quarter1[F.LENS] == "register"], tmp_path / "findings" / "01_register.json")
    audit = SimpleNamespace(run_dir=tmp_path)
    got, status = sc.collect_findings(audit, lenses=("register", "perception", "linkage"))
    assert status["register"] == "saved" and status["linkage"] == "computed"
    assert status["perception"] == "not run: audit_lib.perception has no audit_findings(audit)"
    assert calls == [audit]
    assert set(got[F.LENS]) == {"register", "linkage"}
    table = sc.lens_status_table(status)
    assert list(table["evidence"]) == ["yes", "missing", "yes"]


def test_scorecard_notebook_is_thin():
    """Notebook contract: one parameters cell, open_audit next, no def/class/loops."""
    import ast

    import nbformat
    from pathlib import Path
    nb = nbformat.read(Path(__file__).resolve().parent.parent / "notebooks" / "05_scorecard.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0]
    assert 'params_path: str = "../params/demo.yaml"' in tagged[0].source
    assert "audit = open_audit(params_path, run_dir)" in code[1].source
    for cell in code:
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For,
                                         ast.While, ast.Lambda, ast.ListComp, ast.DictComp, ast.SetComp,
                                         ast.GeneratorExp)), cell.source
    assert any("# NBVAL_CHECK_OUTPUT" in c.source for c in code)
    assert any("save_findings" in c.source for c in code)


# ----------------------------------------------------------------------------- end to end: two quarters

def _edit_params(path, **values):
    """Set top-level keys of a demo params file (the generator writes one `key: value` line each)."""
    import re
    from pathlib import Path
    text = Path(path).read_text(encoding="utf-8")
    for key, value in values.items():
        text, n = re.subn(rf"^{key}:.*$", f"{key}: {json.dumps(str(value))}", text, count=1, flags=re.M)
        assert n == 1, key
    Path(path).write_text(text, encoding="utf-8")


def _matches(row: dict, item: dict, pseud) -> bool:
    """Does a findings row match an expected item? (no scope / label in the item = any)"""
    scope = item.get("scope")
    if scope and scope.startswith("agent:"):
        scope = "agent:" + pseud(scope.split(":", 1)[1])
    return (row[F.LENS] == item["lens"] and row[F.METRIC_ID] == item["metric_id"]
            and row[F.CHECK] == item["check"] and (not scope or row[F.SCOPE] == scope)
            and (not item.get("label") or row[F.LABEL] == item["label"]))


def _explained(rows, items, pseud):
    return [r for r in rows.to_dict("records") if not any(_matches(r, i, pseud) for i in items)]


@pytest.fixture(scope="module")
def two_quarters(tmp_path_factory):
    """The demo client audited in 2026-Q3, then in 2026-Q4 with `previous:` pointing at Q3's report."""
    from audit_lib import demo, report
    base = tmp_path_factory.mktemp("quarters")
    reports = base / "reports"   # one client folder for both quarters: same pseudonym key
    p1 = demo.generate(base / "q1", quarter=1)
    _edit_params(p1, output_dir=reports)
    r1 = report.run(p1, quiet=True)
    p2 = demo.generate(base / "q2", quarter=2)
    _edit_params(p2, output_dir=reports, previous=r1)
    r2 = report.run(p2, quiet=True)
    return {"q1": r1, "q2": r2, "expected": json.loads((base / "q2" / "expected_findings.json").read_text()),
            "expected_q1": json.loads((base / "q1" / "expected_findings.json").read_text()),
            "client_dir": r1.parent}


@pytest.mark.slow
def test_second_quarter_shows_exactly_the_planted_changes(two_quarters):
    from audit_lib import privacy
    from audit_lib.findings import read_json
    key = privacy.load_or_create_key(privacy.restricted_dir(two_quarters["client_dir"]))
    pseud = lambda agent: privacy.pseudonym(agent, key)  # noqa: E731
    current = read_json(two_quarters["q2"] / "findings.json")
    cmp = sc.compare_with_previous(current, two_quarters["q1"], current_period="2026-Q4")
    assert cmp["previous_period"] == "2026-Q3"
    expected, expected_q1 = two_quarters["expected"], two_quarters["expected_q1"]
    # Q4 fixes Beacon's bunching, the hollow first replies and FRT's missing pair, and adds Delta's surge:
    # each planted change is reported ...
    for item in expected["fixed"]:
        assert any(_matches(r, item, pseud) for r in cmp["resolved"].to_dict("records")), item
    for item in expected["new"]:
        assert any(_matches(r, item, pseud) for r in cmp["new"].to_dict("records")), item
    # ... and nothing else changes, except the documented consequences of those same changes
    # (bunching overall and per Beacon agent; AHT_TEAM repeating AHT, being the same KPI)
    def consequences(doc, changes):
        kinds = {(c["lens"], c["check"]) for c in changes}
        return [c for c in doc.get("consequences", []) if (c["lens"], c["check"]) in kinds]
    assert _explained(cmp["resolved"], expected["fixed"] + consequences(expected_q1, expected["fixed"]),
                      pseud) == []
    assert _explained(cmp["new"], expected["new"] + consequences(expected, expected["new"]), pseud) == []
    assert len(cmp["persisting"]) > 0
    changes = cmp["verdict_changes"].set_index("metric_id")
    # FRT: paired and no longer hollow -> only its pay link remains -> counterbalance;
    # AHT stays rework (short contacts, displacement, and now the surge); nothing else moves
    assert list(changes.index) == ["FRT"]
    assert changes.loc["FRT", "previous"] == "rework" and changes.loc["FRT", "current"] == "counterbalance"
    page = (two_quarters["q2"] / "index.html").read_text(encoding="utf-8")
    assert "Since the last audit (2026-Q3)" in page
    assert "end_of_period_surge" in page and "hollow_first_reply" in page
    assert cmp["kpi_trend"].shape[0] > 0 and list(cmp["kpi_trend"].columns[1:3]) == ["2026-Q3", "2026-Q4"]


@pytest.mark.slow
def test_first_quarter_report_has_verdicts_for_every_metric(two_quarters):
    from audit_lib.findings import read_json
    findings = read_json(two_quarters["q1"] / "findings.json")
    verdicts = findings[(findings[F.LENS] == "scorecard") & (findings[F.CHECK] == "verdict")]
    labels = dict(zip(verdicts[F.METRIC_ID], verdicts[F.LABEL]))
    assert len(labels) == 12
    assert labels["AHT_TEAM"] == "retire"          # duplicate of AHT
    assert labels["AHT"] == "rework" and labels["FCR"] == "rework" and labels["FRT"] == "rework"
    assert labels["ABANDON"] == "rework"           # no stated purpose
    assert set(labels.values()) <= set(sc.VERDICTS) | {"not assessed"}
    recs = findings[(findings[F.LENS] == "scorecard") & (findings[F.CHECK] == "recommendation")]
    assert sorted(recs[F.VALUE].astype(int)) == list(range(1, len(recs) + 1))
    assert (two_quarters["q1"] / "findings.xlsx").is_file()


def test_findings_to_save_adds_only_computed_lenses(quarter1):
    rows = sc.scorecard_findings(quarter1, REGISTER)[2]
    out = sc.findings_to_save(quarter1, {"register": "saved", "behaviour": "computed", "linkage": "not run: x"},
                              rows)
    assert set(out[F.LENS]) == {"behaviour", "scorecard"}
    assert len(out) == len(rows) + int((quarter1[F.LENS] == "behaviour").sum())


def test_kpi_trend_follows_the_chain_of_reports(quarter1, tmp_path):
    def kpi(value):
        return make_findings([finding("register", "AHT", "current_vs_target", "medium", value=value,
                                      threshold=360.0)])
    folders = {}
    for i, (period, value) in enumerate((("2026-Q1", 400.0), ("2026-Q2", 390.0), ("2026-Q3", 380.0))):
        folder = tmp_path / period
        write_json(kpi(value), folder / "findings.json")
        prev = str(folders[i - 1]) if i else None
        (folder / "run.json").write_text(json.dumps({"period": period, "params": {"previous": prev}}))
        folders[i] = folder
    cmp = sc.compare_with_previous(kpi(370.0), folders[2], current_period="2026-Q4")
    trend = cmp["kpi_trend"]
    assert list(trend.columns) == ["metric_id", "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4", "change"]
    assert trend.iloc[0, 1:].tolist() == [400.0, 390.0, 380.0, 370.0, -10.0]
    # a shorter chain when asked, and a missing earlier report simply ends it
    assert list(sc.compare_with_previous(kpi(370.0), folders[2], "2026-Q4", max_quarters=3)["kpi_trend"]
                .columns) == ["metric_id", "2026-Q2", "2026-Q3", "2026-Q4", "change"]
    import shutil
    shutil.rmtree(folders[0])
    assert list(sc.compare_with_previous(kpi(370.0), folders[2], "2026-Q4")["kpi_trend"].columns)[1] == "2026-Q2"


def test_evidence_matrix_counts_flags_and_gaps(quarter1):
    card = sc.build_scorecard(quarter1, REGISTER)
    m = sc.evidence_matrix(quarter1, card).set_index("metric_id")
    # AHT: register surrogation + current_vs_target (2), behaviour bunching + 2 short contacts (3),
    # perception index only (0 flagged, assessed), linkage weak (0 flagged, assessed)
    assert m.loc["AHT", ["register", "behaviour", "perception", "linkage"]].tolist() == [2, 3, 0, 0]
    # DUP: only a register finding; the three data lenses could not assess it
    assert m.loc["DUP", ["register", "behaviour", "perception", "linkage"]].tolist() == [1, -1, -1, -1]
    # FRT: linkage has only a not_assessable row
    assert m.loc["FRT", "linkage"] == -1 and m.loc["FRT", "verdict"] == "rework"


def test_rollup_agents_groups_agent_rows(quarter1):
    rolled = sc.rollup_agents(quarter1)
    short = rolled[(rolled[F.CHECK] == "short_contacts") & (rolled[F.METRIC_ID] == "AHT")]
    assert short[F.SCOPE].tolist() == ["2 agents"] and short[F.N].tolist() == [2]
    assert short[F.SEVERITY].tolist() == ["medium"]
    one = rolled[rolled[F.CHECK] == "displacement"]
    assert one[F.SCOPE].tolist() == ["1 agent"]
    # non-agent rows untouched; 3 agent rows became 2
    assert len(rolled) == len(quarter1) - 1
    assert not rolled[F.SCOPE].str.startswith("agent:").any()


@pytest.mark.parametrize("scope, reads", [
    ("overall", ""),
    ("team:Beacon", "Beacon team"),
    ("agent:Agent DDTNTB", "Agent DDTNTB"),
    ("team:Beacon and 14 agents", "Beacon team and 14 agents"),
    ("centre-wide and team:Beacon", "centre-wide and Beacon team"),
    ("outcome:churn_rate|team:Atlas", "outcome churn_rate, Atlas team"),
    ("3 agents", "3 agents"),
])
def test_scopes_read_as_a_client_would(scope, reads):
    assert sc.reader_scope(scope) == reads


def test_scope_phrase_groups_kinds_broadest_first():
    assert sc._scope_phrase(["agent:Agent A", "team:Beacon", "agent:Agent B"]) == "team:Beacon and 2 agents"
    assert sc._scope_phrase(["overall", "team:Beacon"]) == "centre-wide and team:Beacon"
    assert sc._scope_phrase(["agent:Agent A", "agent:Agent B"]) == "2 agents"
