"""The survey instrument: questionnaire (XLSX + CSV) and blank response file for a client's register."""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook

from audit_lib import perception as P
from audit_lib import schemas
from audit_lib.columns import ITEM_BANK, REVERSE_ITEMS, Register, Survey

REGISTER = pd.DataFrame({
    Register.METRIC_ID: ["AHT", "FCR", "WEIRD"],
    Register.NAME: ["Average handle time", "First contact resolution", "=HYPERLINK(\"http://x\")"],
})
PARAMS = SimpleNamespace(client="Acme <Energy>", thresholds=SimpleNamespace(anonymity=5, comments_anonymity=10))


def test_questionnaire_asks_every_item_about_every_metric():
    q = P.questionnaire(REGISTER)
    assert len(q) == 3 + len(REGISTER) * (len(ITEM_BANK) + 1)
    assert q["question_id"].tolist()[:3] == [Survey.ROLE, Survey.TEAM, Survey.TENURE_BAND]
    aht = q[q["metric_id"] == "AHT"].set_index("item_id")
    assert aht.loc["fair", "statement"] == "Average handle time is a fair reflection of my work."
    assert aht.loc["fair", "question_id"] == "AHT__fair"
    assert aht.loc["comment", "question_id"] == "AHT__comment"
    assert aht.loc["pressure", "reverse_keyed"] and aht.loc["workaround", "reverse_keyed"]
    assert aht["reverse_keyed"].sum() == len(REVERSE_ITEMS)
    assert aht.loc["keep", "answer_options"].split(" | ") == list(P.LIKERT_LABELS)
    assert aht.loc["keep", "answer_codes"] == "1 | 2 | 3 | 4 | 5"
    role = q.set_index("question_id").loc[Survey.ROLE]
    assert role["answer_codes"].split(" | ") == list(Survey.ROLES)


def test_questionnaire_refuses_a_register_without_names():
    from audit_lib.errors import InputDataError
    with pytest.raises(InputDataError, match="name"):
        P.questionnaire(REGISTER.drop(columns=[Register.NAME]))


def test_written_files_and_the_blank_response_header(tmp_path):
    paths = P.write_survey_template(PARAMS, tmp_path / "out", register=REGISTER)
    assert [p.name for p in paths] == ["survey_questions.xlsx", "survey_questions.csv",
                                       "survey_responses_template.csv"]
    csv = pd.read_csv(paths[1], keep_default_na=False)
    assert csv["question_id"].tolist() == P.questionnaire(REGISTER)["question_id"].tolist()
    header = pd.read_csv(paths[2]).columns.tolist()
    assert header[0] == Survey.RESPONDENT_ID and header[1] == Survey.ROLE
    # every metric column is in the canonical wide format the loader validates
    items = [c for c in header if schemas.is_survey_item_column(c)]
    assert len(items) == len(REGISTER) * len(ITEM_BANK)
    assert {schemas.survey_column_parts(c)[0] for c in items} == set(REGISTER[Register.METRIC_ID])


def test_client_text_cannot_become_a_formula(tmp_path):
    paths = P.write_survey_template(PARAMS, tmp_path, register=REGISTER)
    ws = load_workbook(paths[0])["questions"]
    cells = [c for row in ws.iter_rows(min_row=2) for c in row if isinstance(c.value, str)]
    assert all(c.data_type == "s" for c in cells)
    weird = [c.value for c in cells if "HYPERLINK" in c.value]
    assert weird and all(not v.startswith("=") for v in weird)
    csv_text = paths[1].read_text(encoding="utf-8")
    assert ",=HYPERLINK" not in csv_text and "'=HYPERLINK" in csv_text
    info = load_workbook(paths[0])["instructions"]
    assert "at least 5 people" in " ".join(str(c.value) for c in info["A"])


def test_a_filled_response_file_scores_with_the_lens():
    header = P.response_template_columns(REGISTER)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        row = {c: "" for c in header}
        row[Survey.RESPONDENT_ID] = f"R{i}"
        row[Survey.ROLE] = "agent" if i < 8 else "manager"
        for c in header:
            if schemas.is_survey_item_column(c):
                row[c] = int(rng.integers(1, 6))
        rows.append(row)
    filled = pd.DataFrame(rows, columns=header)
    assert P.survey_metrics(filled) == ["AHT", "FCR", "WEIRD"]
    scored = P.score_items(filled)
    assert (scored["AHT__pressure"] == 6 - filled["AHT__pressure"]).all()


def test_cli_survey_template_on_the_demo(demo_params, tmp_path):
    from audit_lib import cli, io, params
    out = tmp_path / "template"
    assert cli.main(["survey-template", str(demo_params), "--out", str(out)]) == 0
    register = io.load_register(params.load_params(demo_params))
    q = pd.read_csv(out / "survey_questions.csv", keep_default_na=False)
    assert set(q.loc[q["metric_id"] != "", "metric_id"]) == set(register[Register.METRIC_ID])
    header = pd.read_csv(out / "survey_responses_template.csv").columns
    # the demo's own survey export uses exactly the columns of the template (subset: comments
    # are only asked for some metrics in the demo)
    demo_survey = pd.read_csv(Path(demo_params).parent / "survey.csv", nrows=1).columns
    assert set(demo_survey) <= set(header)


def test_template_round_trip_through_the_loader(demo_params, tmp_path):
    """Answers typed into the template with the form tool's labels load as scores 1..5."""
    from audit_lib import io, params
    src = Path(demo_params).parent
    dst = tmp_path / "client"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("contacts*", ".cache"))
    for name in ("contacts.csv", "contacts.parquet"):
        if (src / name).exists():
            (dst / name).symlink_to(src / name)
    p = params.load_params(dst / Path(demo_params).name)
    register = io.load_register(p)
    header = P.response_template_columns(register)
    rng = np.random.default_rng(3)
    rows = []
    for i in range(20):
        row = {c: "" for c in header}
        # the form tool exports the answer labels the questionnaire offers
        role_label = list(P.ROLE_OPTIONS.values())[i % 3]
        row.update({Survey.RESPONDENT_ID: f"R{i:03d}", Survey.ROLE: role_label, Survey.TEAM: "Atlas",
                    Survey.TENURE_BAND: list(P.TENURE_BANDS.values())[i % 4]})
        for c in header:
            if schemas.is_survey_item_column(c):
                row[c] = P.LIKERT_LABELS[int(rng.integers(5))]
        rows.append(row)
    answers = pd.DataFrame(rows, columns=header)
    answers.to_csv(dst / "survey.csv", index=False)
    loaded = io.load_survey(params.load_params(dst / Path(demo_params).name))
    first = P.item_column(register[Register.METRIC_ID].iloc[0], "fair")
    expected = answers[first].map({label: i + 1 for i, label in enumerate(P.LIKERT_LABELS)})
    assert loaded[first].astype(int).tolist() == expected.tolist()
    assert loaded[Survey.ROLE].tolist()[:3] == list(Survey.ROLES)
