"""`kpi-audit init`: the params file and templates it writes validate as they are (round trip)."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from openpyxl import load_workbook

from audit_lib import io, params as P, schemas, templates
from audit_lib.errors import ParamsError

TODAY = dt.date(2026, 11, 23)


@pytest.fixture()
def client_dir(tmp_path):
    written = templates.write_client_templates("Acme Energy", tmp_path / "acme", today=TODAY)
    return tmp_path / "acme", written


def test_writes_params_and_one_csv_and_xlsx_per_table(client_dir):
    folder, written = client_dir
    assert written[0] == folder / "params.yaml"
    for table in schemas.TABLE_ORDER:
        assert folder / "inputs" / f"{table}.csv" in written
        assert folder / "inputs" / f"{table}.xlsx" in written
    assert all(p.is_file() for p in written)


def test_default_period_is_the_last_complete_quarter(client_dir):
    p = P.load_params(client_dir[0] / "params.yaml")
    assert p.period == "2026-Q3" and p.slug == "acme-energy"
    assert templates.previous_quarter(dt.date(2027, 2, 1)) == ("2026-Q4", dt.date(2026, 10, 1))


def test_round_trip_csv_templates_validate(client_dir):
    report = io.validate(P.load_params(client_dir[0] / "params.yaml"))
    assert report.ok, report.format()
    assert not report.warnings, report.format()
    assert {k: v for k, v in report.rows.items()} == {t: 1 for t in schemas.TABLE_ORDER}


def test_round_trip_xlsx_templates_validate(client_dir):
    path = client_dir[0] / "params.yaml"
    path.write_text(path.read_text().replace(".csv", ".xlsx"))
    p = P.load_params(path)
    assert p.inputs.contacts.kind == "xlsx"
    report = io.validate(p)
    assert report.ok, report.format()
    c = report.tables["contacts"]
    assert c.column("started_at")[0].as_py() == dt.datetime(2026, 7, 1, 9, 15)
    assert c.column("handle_seconds")[0].as_py() == 312.0


def test_header_matches_the_canonical_schema_and_example_row(client_dir):
    folder = client_dir[0]
    header, example = (folder / "inputs" / "contacts.csv").read_text().splitlines()
    assert header.split(",") == list(schemas.CONTACTS.names)
    assert example.startswith("C000001,AG001,2026-07-01 09:15:00,voice,312")
    survey_header = (folder / "inputs" / "survey.csv").read_text().splitlines()[0].split(",")
    assert "AHT__fair" in survey_header and "AHT__comment" in survey_header


def test_xlsx_documents_every_column(client_dir):
    wb = load_workbook(client_dir[0] / "inputs" / "contacts.xlsx")
    assert wb.sheetnames == ["contacts", "columns"]
    data, doc = wb["contacts"], wb["columns"]
    header = [c.value for c in data[1]]
    assert header == list(schemas.CONTACTS.names)
    assert all(c.comment is not None and c.comment.text for c in data[1])
    doc_rows = {r[0]: r for r in doc.iter_rows(min_row=2, values_only=True)}
    assert [c.value for c in doc[1]] == ["column", "meaning", "type", "required", "blank allowed",
                                         "allowed values", "example"]
    assert doc_rows["channel"][3] == "required" and doc_rows["channel"][5] == "voice, chat, email"
    assert doc_rows["csat"][3] == "optional" and doc_rows["csat"][5] == "1 to 5"
    survey_doc = {r[0] for r in load_workbook(client_dir[0] / "inputs" / "survey.xlsx")["columns"]
                  .iter_rows(min_row=2, values_only=True)}
    assert "<metric_id>__<item>" in survey_doc


def test_params_template_documents_every_setting(client_dir):
    text = (client_dir[0] / "params.yaml").read_text()
    for section in ("thresholds", "privacy", "behaviour", "perception", "linkage", "scorecard"):
        assert f"\n{section}:" in text
    assert "comments_anonymity: 10  # Smallest group whose comments are shown." in text
    assert text.count("#") > 40


def test_init_never_overwrites(client_dir):
    with pytest.raises(ParamsError) as info:
        templates.write_client_templates("Acme Energy", client_dir[0], today=TODAY)
    assert "already exist" in info.value.message and "--dir" in info.value.message


def test_blank_client_name(tmp_path):
    with pytest.raises(ParamsError):
        P.init_client("  ", tmp_path)


def test_cli_init_then_validate(tmp_path):
    folder = tmp_path / "new client"
    run = [sys.executable, "-m", "audit_lib.cli"]
    out = subprocess.run(run + ["init", "../../Evil/Client", "--dir", str(folder)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "params.yaml" in out.stdout
    out = subprocess.run(run + ["validate", str(folder / "params.yaml")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Result: valid" in out.stdout
    p = P.load_params(folder / "params.yaml")
    assert p.client == "../../Evil/Client" and p.slug == "evil-client"
    assert folder in p.report_dir.parents
