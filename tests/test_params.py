"""The params file: strict, every problem reported at once with its key path and the fix."""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from audit_lib import params as P
from audit_lib.errors import ParamsError
from fixtures.io_client import write_client


def problems_of(path) -> str:
    with pytest.raises(ParamsError) as info:
        P.load_params(path)
    return info.value.message


def keys_of(path) -> list[str]:
    with pytest.raises(ParamsError) as info:
        P.load_params(path)
    return [p["key"] for p in info.value.problems]


# --------------------------------------------------------------------------- happy path and derived values

def test_valid_params_resolve_paths_relative_to_the_params_file(tmp_path, monkeypatch):
    path = write_client(tmp_path / "client")
    monkeypatch.chdir(tmp_path)   # a different working folder must not matter
    p = P.load_params(Path("client") / "params.yaml")
    assert p.inputs.contacts.path == (tmp_path / "client" / "contacts.csv").resolve()
    assert p.inputs.contacts.kind == "csv"
    assert p.source == path.resolve()
    assert p.period_start == date(2026, 7, 1) and p.period_end == date(2026, 9, 30)
    assert p.report_dir == (tmp_path / "client" / "reports" / "test-client" / "2026-Q3").resolve()
    assert p.thresholds.anonymity == 5 and p.previous is None


@pytest.mark.parametrize("period, start, end", [
    ("2026-Q3", date(2026, 7, 1), date(2026, 9, 30)),
    ("2026-q1", date(2026, 1, 1), date(2026, 3, 31)),
    ("2028-02", date(2028, 2, 1), date(2028, 2, 29)),        # leap year
    ("2026-06-29..2026-09-27", date(2026, 6, 29), date(2026, 9, 27)),
])
def test_period_gives_first_and_last_day(tmp_path, period, start, end):
    p = P.load_params(write_client(tmp_path, params={"period": period}))
    assert (p.period_start, p.period_end) == (start, end)
    assert "/" not in p.period_label and ".." not in p.period_label


def test_explicit_period_dates_override_the_period(tmp_path):
    p = P.load_params(write_client(tmp_path, params={"period_start": "2026-06-29", "period_end": "2026-09-27"}))
    assert (p.period_start, p.period_end) == (date(2026, 6, 29), date(2026, 9, 27))
    assert p.period == "2026-Q3"


@pytest.mark.parametrize("client, slug", [("Harbour Utilities", "harbour-utilities"), ("../../x", "x"),
                                          ("/etc/passwd", "etc-passwd"), ("..", "client"),
                                          ("Café Müller & Söhne", "cafe-muller-sohne")])
def test_slug_is_a_safe_folder_name(tmp_path, client, slug):
    p = P.load_params(write_client(tmp_path, params={"client": client}))
    assert p.slug == slug
    # the report folder stays inside output_dir whatever the client is called
    assert p.output_path in p.report_dir.resolve().parents


def test_previous_report_folder_must_hold_findings(tmp_path):
    prev = tmp_path / "reports" / "test-client" / "2026-Q2"
    prev.mkdir(parents=True)
    msg = problems_of(write_client(tmp_path, params={"previous": "reports/test-client/2026-Q2"}))
    assert "previous" in msg and "findings.json" in msg
    (prev / "findings.json").write_text("[]")
    p = P.load_params(tmp_path / "params.yaml")
    assert p.previous_dir == prev.resolve()


def test_missing_previous_folder(tmp_path):
    msg = problems_of(write_client(tmp_path, params={"previous": "reports/nowhere"}))
    assert "previous: previous report folder not found" in msg and "nowhere" in msg


def test_survey_and_outcomes_are_optional(tmp_path):
    path = write_client(tmp_path)
    text = path.read_text().split("  survey:")[0]
    path.write_text(text)
    p = P.load_params(path)
    assert p.inputs.survey is None and p.inputs.outcomes is None
    assert list(p.inputs.tables()) == ["register", "contacts"]


# --------------------------------------------------------------------------- malformed params

def test_params_file_not_found(tmp_path):
    msg = problems_of(tmp_path / "nope.yaml")
    assert "nope.yaml" in msg and "not found" in msg and "kpi-audit init" in msg


def test_unknown_key_names_its_path_and_suggests_the_spelling(tmp_path):
    path = write_client(tmp_path, params={"inputs": {"contacts": {"format": {"encodng": "latin-1"}}},
                                          "thresholdz": {}})
    msg = problems_of(path)
    assert "inputs.contacts.format.encodng: unknown key" in msg
    assert "did you mean 'encoding'?" in msg
    assert "thresholdz: unknown key" in msg and "did you mean 'thresholds'?" in msg


def test_missing_input_file_names_key_and_resolved_path(tmp_path):
    path = write_client(tmp_path, params={"inputs": {"survey": {"path": "answers/survey.csv"}}})
    msg = problems_of(path)
    assert "inputs.survey.path: file not found" in msg
    assert str(tmp_path / "answers" / "survey.csv") in msg
    assert "relative to the folder of the params file" in msg


def test_unsupported_file_type(tmp_path):
    (tmp_path / "contacts.json").write_text("{}")
    path = write_client(tmp_path, params={"inputs": {"contacts": {"path": "contacts.json"}}})
    msg = problems_of(path)
    assert "inputs.contacts.path" in msg and ".json" in msg and ".csv, .xlsx or .parquet" in msg


def test_wrong_type_in_params(tmp_path):
    path = write_client(tmp_path, params={"inputs": {"contacts": {"format": {"header_row": "two"}}},
                                          "thresholds": {"anonymity": "five"}})
    msg = problems_of(path)
    assert "inputs.contacts.format.header_row: expected a number, got 'two'" in msg
    assert "thresholds.anonymity: expected a number, got 'five'" in msg


def test_literal_choice_lists_allowed_values(tmp_path):
    msg = problems_of(write_client(tmp_path, params={"inputs": {"contacts": {"format": {"duration": "hours"}}}}))
    assert "inputs.contacts.format.duration: 'hours' is not allowed" in msg
    assert "'seconds'" in msg and "'hms'" in msg


@pytest.mark.parametrize("period", ["2026-Q5", "Q3-2026", "2026-13", "2026-09-31..2026-10-01",
                                    "2026-09-30..2026-07-01", 2026])
def test_bad_period(tmp_path, period):
    msg = problems_of(write_client(tmp_path, params={"period": period}))
    assert "period:" in msg and "fix:" in msg


def test_bad_date_and_reversed_dates(tmp_path):
    msg = problems_of(write_client(tmp_path, params={"period_start": "2026-13-01", "period_end": "01/09/2026"}))
    assert "period_start: '2026-13-01' is not a valid date" in msg
    assert "period_end: '01/09/2026' is not a valid date" in msg and "YYYY-MM-DD" in msg
    msg = problems_of(write_client(tmp_path, params={"period_start": "2026-09-01", "period_end": "2026-08-01"}))
    assert "period_end 2026-08-01 is before period_start 2026-09-01" in msg


def test_impossible_thresholds(tmp_path):
    msg = problems_of(write_client(tmp_path, params={"thresholds": {"anonymity": 5, "comments_anonymity": 3}}))
    assert "thresholds.comments_anonymity" in msg and "must be at least anonymity (5)" in msg
    msg = problems_of(write_client(tmp_path, params={"thresholds": {"anonymity": 1}}))
    assert "thresholds.anonymity" in msg and "out of range" in msg


def test_labels_outside_the_scale(tmp_path):
    msg = problems_of(write_client(tmp_path, params={"perception": {"labels": {"agree": 6}}}))
    assert "perception.labels" in msg and "'agree': 6" in msg and "1..5" in msg


def test_mapping_to_an_unknown_canonical_name(tmp_path):
    path = write_client(tmp_path, params={"inputs": {"contacts": {"columns": {"Call ID": "contactid"}}}})
    msg = problems_of(path)
    assert "inputs.contacts.columns.Call ID: 'contactid' is not a canonical contacts column" in msg
    assert "did you mean 'contact_id'?" in msg


def test_two_client_columns_mapped_to_one_name(tmp_path):
    path = write_client(tmp_path, params={"inputs": {"contacts": {"columns": {"A": "agent_id", "B": "agent_id"}}}})
    assert "both mapped to 'agent_id'" in problems_of(path)


def test_survey_mapping_accepts_item_columns_only(tmp_path):
    ok = write_client(tmp_path / "ok", params={"inputs": {"survey": {"columns": {"Q1": "AHT__fair"}}}})
    assert P.load_params(ok).inputs.survey.columns == {"Q1": "AHT__fair"}
    bad = write_client(tmp_path / "bad", params={"inputs": {"survey": {"columns": {"Q1": "AHT__fairness"}}}})
    assert "inputs.survey.columns.Q1" in problems_of(bad)


def test_unreadable_yaml_gives_line_number(tmp_path):
    path = write_client(tmp_path, params_text="client: Acme\nperiod: 2026-Q3\ninputs:\n  register: {path: a.csv\n"
                                              "  contacts: x\n")
    msg = problems_of(path)
    assert "not valid YAML at line" in msg
    path = write_client(tmp_path, params_text="client: Acme\n  period: 2026-Q3\n")
    assert "line 2" in problems_of(path)


def test_unquoted_boolean_spelling_is_refused(tmp_path):
    path = write_client(tmp_path, params_text=(write_client(tmp_path).read_text()
                                               + "").replace("path: contacts.csv",
                                                             "path: contacts.csv\n    format: {true_values: [Y, yes]}"))
    msg = problems_of(path)
    assert "inputs.contacts.format.true_values" in msg and "quotes" in msg


def test_unknown_encoding_and_bad_delimiter(tmp_path):
    path = write_client(tmp_path, params={"inputs": {"contacts": {"format": {"encoding": "latin-9x",
                                                                              "delimiter": ";;"}}}})
    msg = problems_of(path)
    assert "inputs.contacts.format.encoding: encoding 'latin-9x' is unknown" in msg
    assert "inputs.contacts.format.delimiter" in msg


def test_missing_required_keys(tmp_path):
    path = write_client(tmp_path, params_text="period: 2026-Q3\ninputs:\n  register: {path: register.csv}\n")
    keys = keys_of(path)
    assert "client" in keys and "inputs.contacts" in keys


@pytest.mark.parametrize("text, expected", [("", "empty"), ("- a\n- b\n", "key: value")])
def test_empty_or_non_mapping_params(tmp_path, text, expected):
    assert expected in problems_of(write_client(tmp_path, params_text=text))


def test_several_problems_reported_at_once(tmp_path):
    path = write_client(tmp_path, params={
        "period": "2026-Q9", "colour": "red",
        "inputs": {"contacts": {"path": "missing.csv", "format": {"duration": "minutes"}}},
        "thresholds": {"anonymity": 5, "comments_anonymity": 2},
        "linkage": {"max_lag": 40},
    })
    keys = keys_of(path)
    assert {"period", "colour", "inputs.contacts.path", "inputs.contacts.format.duration",
            "thresholds.comments_anonymity", "linkage.max_lag"} <= set(keys)
    msg = problems_of(path)
    assert f"{len(keys)} problem(s)" in msg and msg.count("fix:") == len(keys)


def test_cli_validate_exits_2_on_bad_params(tmp_path):
    import subprocess
    import sys
    path = write_client(tmp_path, params={"thresholdz": {}})
    out = subprocess.run([sys.executable, "-m", "audit_lib.cli", "validate", str(path)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "KPI_AUDIT_DEBUG": ""})
    assert out.returncode == 2
    assert "thresholdz: unknown key" in out.stderr and "Traceback" not in out.stderr


def test_unquoted_impossible_date_gives_its_line(tmp_path):
    text = write_client(tmp_path).read_text().replace("period: 2026-Q3", "period: 2026-Q3\nperiod_end: 2026-09-31")
    path = write_client(tmp_path, params_text=text)
    msg = problems_of(path)
    line = text.splitlines().index("period_end: 2026-09-31") + 1
    assert f"line {line}: '2026-09-31' is not a real date" in msg


def test_unquoted_dates_are_read_as_dates(tmp_path):
    text = write_client(tmp_path).read_text().replace(
        "period: 2026-Q3", "period: 2026-Q3\nperiod_start: 2026-06-29\nperiod_end: 2026-09-27 00:00:00")
    p = P.load_params(write_client(tmp_path, params_text=text))
    assert (p.period_start, p.period_end) == (date(2026, 6, 29), date(2026, 9, 27))
