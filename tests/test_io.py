"""Loading and lazy validation of client exports: each malformed input is reported with its
file, its column (client and canonical name) and the row as numbered in the client's file."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from audit_lib import io, params as P, schemas
from audit_lib.errors import InputDataError
from fixtures.io_client import csv_bytes, rows, write_client


def report_for(path) -> io.ValidationReport:
    return io.validate(P.load_params(path))


def only(report, reason, *, warning=False) -> io.Problem:
    found = [p for p in (report.warnings if warning else report.errors) if p.reason == reason]
    assert len(found) == 1, report.format()
    return found[0]


# =========================================================================== happy paths

def test_base_client_is_valid_with_canonical_types(tmp_path):
    report = report_for(write_client(tmp_path))
    assert report.ok, report.format()
    contacts = report.tables["contacts"]
    assert isinstance(contacts, pa.Table) and contacts.num_rows == 8
    assert contacts.schema.field("started_at").type == pa.timestamp("us")
    assert contacts.schema.field("handle_seconds").type == pa.float64()
    assert contacts.schema.field("transferred").type == pa.bool_()
    assert contacts.schema.field("contact_id").type == pa.string()
    # channel lower-cased whatever the export's spelling
    assert set(contacts.column("channel").to_pylist()) == {"voice", "chat", "email"}
    register = report.tables["register"]
    assert register["target"].tolist() == [360.0, 0.8]          # "80%" read as a share
    survey = report.tables["survey"]
    assert str(survey["AHT__fair"].dtype) == "Int64"
    # labels mapped case-insensitively by perception.labels: "Agree" -> 4, "strongly disagree" -> 1
    assert survey["AHT__fair"].tolist() == [4, 4, 1, 4]
    assert survey["AHT__comment"].tolist() == ["fine"] * 4
    outcomes = report.tables["outcomes"]
    assert outcomes["churn_rate"].tolist() == [0.004, 0.005]
    assert "Result: valid" in report.format()


def test_loaders_return_the_same_tables(tmp_path):
    p = P.load_params(write_client(tmp_path))
    assert io.load_contacts(p).num_rows == 8
    assert list(io.load_register(p)["metric_id"]) == ["AHT", "FCR"]
    assert len(io.load_survey(p)) == 4 and len(io.load_outcomes(p)) == 2


def test_client_column_names_mapped_and_formats_applied(tmp_path):
    data = [{"Call ID": r["contact_id"], "Agent": r["agent_id"],
             "Start": dt.datetime.fromisoformat(r["started_at"]).strftime("%d/%m/%Y %H:%M"),
             "Channel": "Phone" if r["channel"] == "Voice" else r["channel"],
             "Handle Time": f"0:{int(r['handle_seconds']) // 60:02d}:{int(r['handle_seconds']) % 60:02d}",
             "Transferred": "oui" if r["transferred"] == "Y" else "non"} for r in rows("contacts")]
    path = write_client(tmp_path, contacts=csv_bytes(data, delimiter=";"), params={"inputs": {"contacts": {
        "columns": {"Call ID": "contact_id", "Agent": "agent_id", "Start": "started_at",
                    "Handle Time": "handle_seconds"},
        "format": {"delimiter": ";", "duration": "hms", "timestamp": "%d/%m/%Y %H:%M",
                   "true_values": ["oui"], "false_values": ["non"]}}}})
    report = report_for(path)
    assert report.ok, report.format()
    c = report.tables["contacts"]
    assert c.column("handle_seconds").to_pylist() == [200.0 + 10 * i for i in range(8)]
    assert c.column("started_at")[0].as_py() == dt.datetime(2026, 7, 1, 9, 0)
    assert c.column("channel")[0].as_py() == "voice"        # "Phone" is a synonym of voice
    assert c.column("transferred").to_pylist()[:2] == [True, False]


def test_xlsx_happy_path_with_typed_cells(tmp_path):
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    ws.append(["contact_id", "agent_id", "started_at", "channel", "handle_seconds", "abandoned", "team"])
    ws.append(["C1", "AG1", dt.datetime(2026, 7, 2, 10, 0), "voice", dt.time(0, 5, 12), False, "Atlas"])
    ws.append([2, "AG2", dt.datetime(2026, 7, 3, 11, 0), "chat", dt.time(0, 1, 0), True, "Beacon"])
    wb.save(tmp_path / "contacts.xlsx")
    path = write_client(tmp_path, params={"inputs": {"contacts": {"path": "contacts.xlsx"}}})
    report = report_for(path)
    assert report.ok, report.format()
    c = report.tables["contacts"]
    assert c.column("handle_seconds").to_pylist() == [312.0, 60.0]     # h:mm:ss cells become seconds
    assert c.column("contact_id").to_pylist() == ["C1", "2"]          # a numeric id stays an id
    assert c.column("abandoned").to_pylist() == [False, True]


def test_parquet_happy_path(tmp_path):
    df = pd.DataFrame(rows("contacts"))
    table = pa.table({
        "contact_id": df["contact_id"], "agent_id": df["agent_id"],
        "started_at": pa.array(pd.to_datetime(df["started_at"]), pa.timestamp("ms")),
        "channel": df["channel"], "handle_seconds": df["handle_seconds"].astype(int),
        "transferred": df["transferred"].eq("Y"), "csat": df["csat"].astype(float), "team": df["team"]})
    pq.write_table(table, tmp_path / "contacts.parquet")
    report = report_for(write_client(tmp_path, params={"inputs": {"contacts": {"path": "contacts.parquet"}}}))
    assert report.ok, report.format()
    c = report.tables["contacts"]
    assert c.schema.field("started_at").type == pa.timestamp("us")
    assert c.column("handle_seconds").type == pa.float64()


# =========================================================================== malformed contacts

def test_missing_required_column(tmp_path):
    data = [{k: v for k, v in r.items() if k != "agent_id"} for r in rows("contacts")]
    report = report_for(write_client(tmp_path, contacts=data))
    p = only(report, "missing_column")
    assert p.file.endswith("contacts.csv") and "'agent_id'" in p.column
    assert "agent_id" in p.message and "inputs.contacts.columns" in p.fix
    assert report.tables["contacts"] is None and not report.ok


def test_missing_column_suggests_the_close_client_name(tmp_path):
    data = [{("Agent ID " if k == "agent_id" else k): v for k, v in r.items()} for r in rows("contacts")]
    report = report_for(write_client(tmp_path, contacts=data))
    # 'Agent ID ' normalises to agent_id: accepted without a mapping
    assert report.ok, report.format()
    data = [{("agnt" if k == "agent_id" else k): v for k, v in r.items()} for r in rows("contacts")]
    p = only(report_for(write_client(tmp_path, contacts=data)), "missing_column")
    assert "'agnt'" in p.fix and "agent_id" in p.fix


def test_mapping_names_a_column_the_file_does_not_have(tmp_path):
    path = write_client(tmp_path, params={"inputs": {"contacts": {"columns": {"Call ID": "contact_id"}}}})
    report = report_for(path)
    p = [e for e in report.errors if e.reason == "missing_column"][0]
    assert "'Call ID' (contact_id)" in p.column and "inputs.contacts.columns maps 'Call ID'" in p.message


def test_hms_typo_reports_row_and_value(tmp_path):
    data = rows("contacts")
    for r in data:
        r["handle_seconds"] = "0:05:12"
    data[2]["handle_seconds"] = "0:5:3x"
    data[5]["handle_seconds"] = "1:75:00"     # minutes >= 60 after hours: a typo
    path = write_client(tmp_path, contacts=data, params={"inputs": {"contacts": {"format": {"duration": "hms"}}}})
    p = only(report_for(path), "unparseable_duration")
    assert p.rows == [4, 7] and p.count == 2      # header is row 1: data[2] is row 4
    assert "'0:5:3x'" in p.message and "'handle_seconds'" in p.column


def test_seconds_column_with_hms_values_suggests_the_format(tmp_path):
    data = rows("contacts")
    data[0]["handle_seconds"] = "0:05:12"
    p = only(report_for(write_client(tmp_path, contacts=data)), "unparseable_duration")
    assert p.rows == [2] and "format.duration: hms" in p.fix


def test_negative_duration(tmp_path):
    data = rows("contacts")
    data[3]["handle_seconds"] = "-35"
    p = only(report_for(write_client(tmp_path, contacts=data)), "out_of_range")
    assert p.rows == [5] and "negative" in p.message and "-35" in p.message


def test_csat_out_of_scale(tmp_path):
    data = rows("contacts")
    data[1]["csat"] = "7"
    p = only(report_for(write_client(tmp_path, contacts=data)), "out_of_range")
    assert p.rows == [3] and "'csat'" in p.column and "1 to 5" in p.message


def test_unparseable_and_impossible_timestamps(tmp_path):
    data = rows("contacts")
    data[0]["started_at"] = "yesterday"
    data[4]["started_at"] = "2026-02-30 10:00:00"     # an impossible date is not rolled into March
    p = only(report_for(write_client(tmp_path, contacts=data)), "unparseable_timestamp")
    assert p.rows == [2, 6] and "'yesterday'" in p.message
    assert "format.timestamp" in p.fix


def test_boolean_maybe(tmp_path):
    data = rows("contacts")
    data[6]["transferred"] = "maybe"
    p = only(report_for(write_client(tmp_path, contacts=data)), "unparseable_boolean")
    assert p.rows == [8] and "'maybe'" in p.message and "true_values" in p.fix


def test_duplicate_contact_id_lists_every_copy(tmp_path):
    data = rows("contacts")
    data[5]["contact_id"] = data[1]["contact_id"]
    p = only(report_for(write_client(tmp_path, contacts=data)), "duplicate_id")
    assert p.rows == [3, 7] and p.count == 2 and "'C001'" in p.message


def test_contact_outside_the_period(tmp_path):
    data = rows("contacts")
    data[2]["started_at"] = "2026-10-01 00:00:00"      # the day after 2026-Q3
    data[3]["started_at"] = "2026-06-30 23:59:59"
    p = only(report_for(write_client(tmp_path, contacts=data)), "outside_period")
    assert p.rows == [4, 5] and "2026-07-01 .. 2026-09-30" in p.message and "'started_at'" in p.column


def test_missing_required_value(tmp_path):
    data = rows("contacts")
    data[4]["agent_id"] = "  "
    p = only(report_for(write_client(tmp_path, contacts=data)), "missing_value")
    assert p.rows == [6] and "'agent_id'" in p.column


def test_unknown_channel(tmp_path):
    data = rows("contacts")
    data[0]["channel"] = "Fax"
    p = only(report_for(write_client(tmp_path, contacts=data)), "invalid_value")
    assert p.rows == [2] and "'fax'" in p.message and "voice, chat, email" in p.fix


def test_empty_file(tmp_path):
    p = only(report_for(write_client(tmp_path, contacts=b"")), "empty_file")
    assert p.file.endswith("contacts.csv") and "empty" in p.message


def test_header_only_file(tmp_path):
    header = ",".join(rows("contacts")[0]).encode() + b"\n"
    p = only(report_for(write_client(tmp_path, contacts=header)), "empty_file")
    assert "header but no data rows" in p.message


def test_latin1_file_read_as_utf8(tmp_path):
    data = rows("contacts")
    data[3]["team"] = "Équipe"
    raw = csv_bytes(data, encoding="latin-1")
    report = report_for(write_client(tmp_path, contacts=raw))
    p = only(report, "bad_encoding")
    assert p.fix.startswith("set inputs.contacts.format.encoding: latin-1")
    assert p.rows == [5] and "contacts.csv" in p.file
    fixed = write_client(tmp_path, contacts=raw, params={"inputs": {"contacts": {"format": {"encoding": "latin-1"}}}})
    report = report_for(fixed)
    assert report.tables["contacts"].column("team")[3].as_py() == "Équipe"
    assert not [e for e in report.errors if e.table == "contacts"], report.format()


def test_row_with_extra_field_is_reported_and_later_rows_keep_their_numbers(tmp_path):
    raw = csv_bytes(rows("contacts")).decode().splitlines()
    raw[3] = raw[3] + ",extra"                         # file row 4
    bad = raw[6].split(",")
    bad[bad.index("Voice") if "Voice" in bad else 3] = "Fax"
    raw[6] = ",".join(bad)                             # file row 7
    report = report_for(write_client(tmp_path, contacts=("\n".join(raw) + "\n").encode()))
    assert only(report, "bad_row").rows == [4]
    assert only(report, "invalid_value").rows == [7]


def test_rows_keep_their_numbers_across_read_ahead_blocks(tmp_path, monkeypatch):
    """Small blocks, so the reader runs several blocks ahead of the checks: a row with an extra
    field in a middle block and bad values before and after it keep their file rows."""
    monkeypatch.setattr(io, "BATCH_BYTES", 1 << 10)
    data = rows("contacts")
    out = [dict(data[i % len(data)], contact_id=f"C{i:05d}") for i in range(400)]
    out[20]["channel"] = out[380]["channel"] = "Fax"          # file rows 22 and 382
    raw = csv_bytes(out).decode().splitlines()
    raw[200] = raw[200] + ",extra"                              # file row 201
    report = report_for(write_client(tmp_path, contacts=("\n".join(raw) + "\n").encode()))
    assert only(report, "bad_row").rows == [201]
    assert only(report, "invalid_value").rows == [22, 382]
    assert report.rows["contacts"] == 399


def test_prefetched_keeps_order_raises_in_the_caller_and_stops_when_closed():
    import threading
    assert list(io._prefetched(iter(range(50)))) == list(range(50))

    def failing():
        yield 1
        raise ValueError("block 2 is damaged")
    got = []
    with pytest.raises(ValueError, match="block 2"):
        for item in io._prefetched(failing()):
            got.append(item)
    assert got == [1]
    checked = []
    gen = io._prefetched(iter(range(10**6)), checked.append, depth=2)
    assert next(gen) == 0
    gen.close()                                                # the reader thread ends with it
    assert not any(t.name == "csv-read-ahead" for t in threading.enumerate())
    assert len(checked) <= 5                                   # it stopped reading ahead


def test_bad_byte_in_a_row_with_an_extra_field_is_an_encoding_problem(tmp_path, monkeypatch):
    """A row with an extra field holding an undecodable byte, past the first block: reported as the
    encoding problem it is, on its line (not as an unreadable file, not as a crash); small blocks here."""
    monkeypatch.setattr(io, "BATCH_BYTES", 1 << 10)
    data = rows("contacts")
    raw = csv_bytes([dict(data[i % len(data)], contact_id=f"C{i:05d}") for i in range(200)]).splitlines()
    raw[150] = raw[150] + b",caf\xe9"                 # file row 151, far past the first block
    report = report_for(write_client(tmp_path, contacts=b"\n".join(raw) + b"\n"))
    problem = only(report, "bad_encoding")
    assert problem.rows == [151] and "latin-1" in problem.fix


def test_bad_byte_in_a_row_with_an_extra_field_prints_no_traceback(tmp_path):
    """In a real process (pytest would catch pyarrow's unraisable-exception print as a warning)."""
    import subprocess
    import sys
    data = rows("contacts")
    raw = csv_bytes([dict(data[i % len(data)], contact_id=f"C{i:05d}") for i in range(200)]).splitlines()
    raw[150] = raw[150] + b",caf\xe9"
    params = write_client(tmp_path, contacts=b"\n".join(raw) + b"\n")
    code = ("import sys; from audit_lib import cli, io; io.BATCH_BYTES = 1 << 10; "
            "sys.exit(cli.main(['validate', sys.argv[1]]))")
    done = subprocess.run([sys.executable, "-c", code, str(params)], capture_output=True, text=True)
    assert done.returncode == 3
    assert "bad_encoding" in done.stdout and "Traceback" not in done.stderr, done.stderr


def test_csv_header_on_a_later_row(tmp_path):
    raw = b"Contacts export\nGenerated 2026-10-02\n" + csv_bytes(rows("contacts"))
    report = report_for(write_client(tmp_path, contacts=raw))
    p = only(report, "header_not_found")
    assert "set inputs.contacts.format.header_row: 3" == p.fix
    assert [e.reason for e in report.errors] == ["header_not_found"]     # not five missing columns
    data = rows("contacts")
    data[0]["csat"] = "9"
    raw = b"Contacts export\nGenerated 2026-10-02\n" + csv_bytes(data)
    path = write_client(tmp_path, contacts=raw, params={"inputs": {"contacts": {"format": {"header_row": 3}}}})
    p = only(report_for(path), "out_of_range")
    assert p.rows == [4]         # header on row 3: the first data row is row 4


def _xlsx_with_title(path, data):
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    ws.title = "Export"
    ws.append(["Contact centre export, Q3"])
    ws.append([])
    header = list(data[0])
    ws.append(header)
    for r in data:
        ws.append([r[k] for k in header])
    wb.save(path)


def test_excel_header_on_row_3(tmp_path):
    data = rows("contacts")
    data[0]["csat"] = "6"
    _xlsx_with_title(tmp_path / "contacts.xlsx", data)
    path = write_client(tmp_path, params={"inputs": {"contacts": {"path": "contacts.xlsx"}}})
    p = only(report_for(path), "header_not_found")
    assert p.fix == "set inputs.contacts.format.header_row: 3" and "contacts.xlsx" in p.file
    path = write_client(tmp_path, params={"inputs": {"contacts": {"path": "contacts.xlsx",
                                                                  "format": {"header_row": 3, "sheet": "Export"}}}})
    report = report_for(path)
    p = only(report, "out_of_range")
    assert p.rows == [4] and "'csat'" in p.column          # first data row of the sheet is row 4
    assert len(report.errors) == 1


def test_excel_unknown_sheet(tmp_path):
    _xlsx_with_title(tmp_path / "contacts.xlsx", rows("contacts"))
    path = write_client(tmp_path, params={"inputs": {"contacts": {"path": "contacts.xlsx",
                                                                  "format": {"sheet": "Data"}}}})
    p = only(report_for(path), "unreadable_file")
    assert "no sheet 'Data'" in p.message and "Export" in p.fix


def test_parquet_input_gets_the_same_checks(tmp_path):
    n = 6
    table = pa.table({
        "contact_id": ["A1", "A2", "A3", "A2", "A5", "A6"], "agent_id": ["X"] * n,
        "started_at": ["2026-07-01 10:00:00", "2026-07-01 11:00:00", "not a date", "2026-07-02 10:00:00",
                       "2026-07-02 11:00:00", "2026-07-03 09:00:00"],
        "channel": ["voice"] * n, "handle_seconds": [10.0, -4.0, 30.0, 40.0, 50.0, 60.0],
        "csat": [1.0, 2.0, 3.0, 7.0, None, 5.0], "abandoned": ["Y", "N", "maybe", "N", "N", "Y"]})
    pq.write_table(table, tmp_path / "contacts.parquet")
    report = report_for(write_client(tmp_path, params={"inputs": {"contacts": {"path": "contacts.parquet"}}}))
    by_reason = {(p.reason, p.column): p for p in report.errors}
    assert by_reason[("duplicate_id", "'contact_id'")].rows == [2, 4]       # Parquet records count from 1
    assert by_reason[("unparseable_timestamp", "'started_at'")].rows == [3]
    assert by_reason[("out_of_range", "'handle_seconds'")].rows == [2]
    assert by_reason[("out_of_range", "'csat'")].rows == [4]
    assert by_reason[("unparseable_boolean", "'abandoned'")].rows == [3]
    assert "records: 2, 4" in report.format()


def test_blank_lines_are_ignored_with_a_warning(tmp_path):
    raw = csv_bytes(rows("contacts")).decode().splitlines()
    raw.insert(3, ",,,,,,,,")                          # file row 4 is empty
    report = report_for(write_client(tmp_path, contacts=("\n".join(raw) + "\n").encode()))
    assert report.ok, report.format()
    assert only(report, "blank_row", warning=True).rows == [4]
    assert report.tables["contacts"].num_rows == 8


def test_warnings_do_not_fail(tmp_path):
    data = rows("contacts")
    for r in data[1:]:
        r["csat"] = ""
    for r in data:
        r["site"] = ""
        r["Wrap Code"] = "x"
    report = report_for(write_client(tmp_path, contacts=data))
    assert report.ok, report.format()
    assert "12.5%" in only(report, "mostly_missing", warning=True).message
    assert "'site'" in only(report, "empty_column", warning=True).column
    assert "'Wrap Code'" in only(report, "unused_column", warning=True).message
    assert "WARNINGS (3)" in report.format()


# =========================================================================== register, survey, outcomes

def test_register_problems_via_pandera(tmp_path):
    data = rows("register")
    data[1]["metric_id"] = "AHT"
    data[1]["direction"] = "up"
    data[0]["target"] = "six minutes"
    report = report_for(write_client(tmp_path, register=data))
    assert only(report, "duplicate_id").rows == [2, 3]
    inv = only(report, "invalid_value")
    assert inv.rows == [3] and "'direction'" in inv.column and "higher, lower" in inv.fix
    wt = only(report, "wrong_type")
    assert wt.rows == [2] and "'six minutes'" in wt.message and "register.csv" in wt.file


def test_likert_out_of_range_and_unknown_label(tmp_path):
    data = rows("survey")
    data[1]["AHT__pressure"] = "6"
    data[2]["AHT__fair"] = "Agree strongly"
    report = report_for(write_client(tmp_path, survey=data))
    p = only(report, "out_of_range")
    assert p.rows == [3] and "'AHT__pressure'" in p.column and "'6'" in p.message
    p = only(report, "invalid_answer")
    assert p.rows == [4] and "'AHT__fair'" in p.column and "'Agree strongly'" in p.message
    assert "perception.labels" in p.fix


def test_survey_blank_row_is_reported(tmp_path):
    data = rows("survey")
    data[2].update({"AHT__fair": "", "AHT__pressure": "", "FCR__keep": "", "AHT__comment": ""})
    report = report_for(write_client(tmp_path, survey=data))
    assert report.ok, report.format()
    assert only(report, "blank_row", warning=True).rows == [4]
    assert len(report.tables["survey"]) == 3


def test_unknown_metric_in_survey(tmp_path):
    data = rows("survey")
    for r in data:
        r["ASA__fair"] = "3"
    p = only(report_for(write_client(tmp_path, survey=data)), "unknown_metric")
    assert "'ASA__fair'" in p.column and "'ASA'" in p.message and "register.csv" in p.message


def test_unknown_item_in_survey(tmp_path):
    data = rows("survey")
    for r in data:
        r["AHT__fairness"] = "3"
    p = only(report_for(write_client(tmp_path, survey=data)), "unknown_item")
    assert "AHT__fair" in p.fix


def test_unknown_team_in_survey(tmp_path):
    data = rows("survey")
    data[3]["team"] = "Zephyr"
    p = only(report_for(write_client(tmp_path, survey=data)), "unknown_team")
    assert p.rows == [5] and "'Zephyr'" in p.message and "survey.csv" in p.file


def test_survey_role_and_duplicate_respondent(tmp_path):
    data = rows("survey")
    data[0]["role"] = "Team Leader"                     # synonym of team_lead
    data[1]["role"] = "director"
    data[3]["respondent_id"] = "R0"
    report = report_for(write_client(tmp_path, survey=data))
    assert only(report, "invalid_value").rows == [3]
    assert only(report, "duplicate_id").rows == [2, 5]
    assert report.tables["survey"] is not None


def test_outcomes_text_value(tmp_path):
    data = rows("outcomes")
    data[1]["churn_rate"] = "n/a"
    p = only(report_for(write_client(tmp_path, outcomes=data)), "wrong_type")
    assert p.rows == [3] and "'churn_rate'" in p.column and "outcomes.csv" in p.file


def test_several_problems_in_several_files_at_once(tmp_path):
    contacts = rows("contacts")
    contacts[0]["csat"] = "7"
    contacts[1]["transferred"] = "maybe"
    survey = rows("survey")
    survey[0]["AHT__fair"] = "9"
    register = rows("register")
    register[0]["incentive_link"] = "cash"
    report = report_for(write_client(tmp_path, contacts=contacts, survey=survey, register=register))
    files = {p.file.rsplit("/", 1)[-1] for p in report.errors}
    assert files == {"contacts.csv", "survey.csv", "register.csv"}
    assert len(report.errors) == 4
    text = report.format()
    assert "ERRORS (4)" in text and text.count("fix:") >= 4


def test_loader_raises_input_data_error_with_the_report(tmp_path):
    data = rows("contacts")
    data[2]["csat"] = "7"
    p = P.load_params(write_client(tmp_path, contacts=data))
    with pytest.raises(InputDataError) as info:
        io.load_contacts(p)
    assert "contacts.csv" in info.value.message and "rows: 4" in info.value.message
    assert info.value.problems[0].reason == "out_of_range"
    assert len(io.load_survey(p)) == 4          # the other tables still load


def test_validate_cli_exit_code_3(tmp_path):
    import subprocess
    import sys
    data = rows("contacts")
    data[2]["csat"] = "7"
    path = write_client(tmp_path, contacts=data)
    out = subprocess.run([sys.executable, "-m", "audit_lib.cli", "validate", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr
    assert "[out_of_range] contacts.csv, column 'csat'" in out.stdout and "rows: 4" in out.stdout


def test_every_reason_code_used_is_declared():
    import inspect
    import re
    source = inspect.getsource(io)
    used = set(re.findall(r'"([a-z_]+)"', source)) & set(schemas.REASONS)
    assert {"missing_column", "wrong_type", "unparseable_duration", "unparseable_timestamp",
            "unparseable_boolean", "out_of_range", "duplicate_id", "unknown_metric", "unknown_team",
            "outside_period", "empty_file", "bad_encoding", "missing_value", "header_not_found",
            "invalid_answer"} <= used


# =========================================================================== the demo client

def test_demo_client_validates_without_errors(demo_params):
    report = report_for(demo_params)
    assert report.ok, report.format()
    assert report.rows["contacts"] > 100_000 and report.rows["register"] == 12


def test_missing_column_does_not_hide_the_other_problems(tmp_path):
    data = [{k: v for k, v in r.items() if k != "channel"} for r in rows("contacts")]
    data[2]["csat"] = "0"
    report = report_for(write_client(tmp_path, contacts=data))
    assert only(report, "missing_column").column == "'channel'"
    assert only(report, "out_of_range").rows == [4]
    assert report.tables["contacts"] is None


def test_blank_required_values_in_small_tables(tmp_path):
    register = rows("register")
    register[1]["metric_id"] = ""
    survey = rows("survey")
    survey[2]["respondent_id"] = " "
    report = report_for(write_client(tmp_path, register=register, survey=survey))
    missing = {p.file.rsplit("/", 1)[-1]: p for p in report.errors if p.reason == "missing_value"}
    assert missing["register.csv"].rows == [3] and "'metric_id'" in missing["register.csv"].column
    assert missing["survey.csv"].rows == [4] and "'respondent_id'" in missing["survey.csv"].column


def test_wrong_delimiter_is_named(tmp_path):
    p = only(report_for(write_client(tmp_path, contacts=csv_bytes(rows("contacts"), delimiter=";"))),
             "header_not_found")
    assert p.fix == 'set inputs.contacts.format.delimiter: ";"' and p.rows == [1]


@pytest.mark.parametrize("text, seconds", [("0:05:12", 312.0), ("5:12", 312.0), ("75:30", 4530.0),
                                           ("1:02:03", 3723.0), ("10:00.5", 600.5), ("26:00:00", 93600.0)])
def test_hms_values(text, seconds):
    # hand conversions: h*3600 + m*60 + s
    values, bad = io._parse_duration(pa.array([text]), "hms")
    assert values.to_pylist() == [seconds] and bad.to_pylist() == [False]


def test_hms_round_trip_property():
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=200, deadline=None)
    @given(st.integers(min_value=0, max_value=400_000))
    def check(total):
        text = f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"
        values, bad = io._parse_duration(pa.array([text]), "hms")
        assert values.to_pylist() == [float(total)] and not bad.to_pylist()[0]
    check()


def test_messages_name_the_client_column_and_the_canonical_one(tmp_path):
    contacts = [{("Handle Time" if k == "handle_seconds" else k): v for k, v in r.items()} for r in rows("contacts")]
    contacts[3]["Handle Time"] = "about 5 min"
    register = [{("Sens" if k == "direction" else k): v for k, v in r.items()} for r in rows("register")]
    register[0]["Sens"] = "down"
    path = write_client(tmp_path, contacts=contacts, register=register, params={"inputs": {
        "contacts": {"columns": {"Handle Time": "handle_seconds"}},
        "register": {"columns": {"Sens": "direction"}}}})
    report = report_for(path)
    assert only(report, "unparseable_duration").column == "'Handle Time' (handle_seconds)"
    assert only(report, "unparseable_duration").rows == [5]
    assert only(report, "invalid_value").column == "'Sens' (direction)"
    assert "column 'Handle Time' (handle_seconds)" in report.format()


def test_utf8_bom_is_accepted(tmp_path):
    report = report_for(write_client(tmp_path, contacts=b"\xef\xbb\xbf" + csv_bytes(rows("contacts"))))
    assert report.ok, report.format()


def test_empty_xlsx_and_parquet(tmp_path):
    from openpyxl import Workbook
    wb = Workbook()
    wb.active.append(list(rows("contacts")[0]))
    wb.save(tmp_path / "contacts.xlsx")
    p = only(report_for(write_client(tmp_path, params={"inputs": {"contacts": {"path": "contacts.xlsx"}}})),
             "empty_file")
    assert "header but no data rows" in p.message
    pq.write_table(pa.table({k: pa.array([], pa.string()) for k in rows("contacts")[0]}),
                   tmp_path / "contacts.parquet")
    p = only(report_for(write_client(tmp_path, params={"inputs": {"contacts": {"path": "contacts.parquet"}}})),
             "empty_file")
    assert p.message == "the file has no rows"


@pytest.mark.parametrize("name", ["contacts.parquet", "contacts.xlsx"])
def test_damaged_binary_files(tmp_path, name):
    (tmp_path / name).write_text("this is not a binary table")
    p = only(report_for(write_client(tmp_path, params={"inputs": {"contacts": {"path": name}}})),
             "unreadable_file")
    assert p.file.endswith(name) and p.fix


def test_quoted_line_break_keeps_spreadsheet_row_numbers(tmp_path):
    data = rows("contacts")
    data[1]["reason"] = "billing\nand refunds"       # one record over two lines
    data[4]["csat"] = "9"
    assert only(report_for(write_client(tmp_path, contacts=data)), "out_of_range").rows == [6]


def test_null_demo_and_parquet_demo_validate(null_demo_params, tmp_path):
    from audit_lib import demo
    assert report_for(null_demo_params).ok
    parquet = demo.generate(tmp_path / "pq", contacts=20_000, fmt="parquet")
    report = report_for(parquet)
    assert report.ok, report.format()
    assert P.load_params(parquet).inputs.contacts.kind == "parquet" and report.rows["contacts"] == 20_000


def test_parquet_without_any_known_column(tmp_path):
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), tmp_path / "contacts.parquet")
    report = report_for(write_client(tmp_path, params={"inputs": {"contacts": {"path": "contacts.parquet"}}}))
    missing = sorted(p.column for p in report.errors if p.reason == "missing_column")
    assert missing == sorted(f"'{c}'" for c in schemas.CONTACTS.required)
    assert report.tables["contacts"] is None


# =========================================================================== fast paths of the contacts parser

@pytest.mark.parametrize("values, expected", [
    (["C1", "C2"], ["C1", "C2"]),                                    # nothing to trim, no blank
    (["C1", "", "C3"], ["C1", None, "C3"]),                          # blank -> null without trimming
    ([" C1", "C2\t", "  ", None], ["C1", "C2", None, None]),         # ASCII whitespace
    (["\u00a0C1\u3000", "\u2003", "caf\u00e9"], ["C1", None, "caf\u00e9"]),  # Unicode spaces, accents
    (["", None, ""], [None, None, None]),
])
def test_text_trims_and_blanks_like_arrow(values, expected):
    arr = pa.array(values, pa.string())
    assert io._text(arr).to_pylist() == expected
    # the same on a slice (offsets not starting at 0) and against Arrow's own trim
    sliced = pa.array(["x"] + values, pa.string()).slice(1)
    trimmed = pc.utf8_trim_whitespace(arr).to_pylist()
    assert io._text(sliced).to_pylist() == expected == [v or None for v in trimmed]


def test_boolean_spellings_in_one_lookup():
    fmt = P.TableFormat(true_values=["Y", "Y", "yes"], false_values=["N"])
    values, bad = io._parse_boolean(pa.array(["Y", "N", "yes", "maybe", None, " Y "]), fmt)
    assert values.to_pylist() == [True, False, True, None, None, True]
    assert bad.to_pylist() == [False, False, False, True, False, False]


def test_bad_encoding_in_a_later_block_keeps_the_earlier_blocks_problems(tmp_path, monkeypatch):
    # UTF-8 is checked per block (not by the CSV reader): the bytes of a later block are still
    # caught, on the right line, after the earlier blocks have been checked
    data = [dict(r) for r in rows("contacts") * 40]
    for i, r in enumerate(data):
        r["contact_id"] = f"C{i:04d}"
    data[1]["csat"] = "9"
    raw = csv_bytes(data)
    lines = raw.split(b"\n")
    lines[300] = lines[300].replace(b"Atlas", b"Caf\xe9").replace(b"Beacon", b"Caf\xe9")   # file row 301
    monkeypatch.setattr(io, "BATCH_BYTES", 4096)
    report = report_for(write_client(tmp_path, contacts=b"\n".join(lines)))
    assert only(report, "bad_encoding").rows == [301]
    assert only(report, "out_of_range").rows == [3]
    assert report.tables["contacts"] is None


def test_nan_and_inf_written_out_are_not_numbers(tmp_path):
    """Arrow's number parser reads "nan" and "inf"; a client never means them as values."""
    data = rows("contacts")
    data[2]["csat"], data[5]["handle_seconds"] = "nan", "inf"
    report = report_for(write_client(tmp_path, contacts=csv_bytes(data)))
    assert only(report, "wrong_type").rows == [4]
    assert only(report, "unparseable_duration").rows == [7]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
@pytest.mark.parametrize("last_newline", [True, False])
def test_rows_keep_their_numbers_across_blocks_whatever_the_line_endings(tmp_path, monkeypatch, ending,
                                                                          last_newline):
    monkeypatch.setattr(io, "BATCH_BYTES", 1 << 10)
    data = [dict(rows("contacts")[i % 8], contact_id=f"C{i:05d}") for i in range(700)]
    data[0]["csat"] = data[350]["csat"] = data[699]["csat"] = "9"
    text = csv_bytes(data).replace(b"\n", ending)
    if not last_newline:
        text = text[:-len(ending)]
    report = report_for(write_client(tmp_path, contacts=text))
    assert report.rows["contacts"] == 700
    assert only(report, "out_of_range").rows == [2, 352, 701]


def test_a_header_below_title_rows_with_many_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "BATCH_BYTES", 1 << 10)
    data = [dict(rows("contacts")[i % 8], contact_id=f"C{i:05d}") for i in range(500)]
    data[400]["csat"] = "9"
    raw = b"Contacts export\nGenerated 2026-10-02\n" + csv_bytes(data)
    path = write_client(tmp_path, contacts=raw, params={"inputs": {"contacts": {"format": {"header_row": 3}}}})
    report = report_for(path)
    assert only(report, "out_of_range").rows == [404]
    assert report.rows["contacts"] == 500


def test_text_trims_exactly_as_arrow_trim_whitespace_with_blanks_as_null():
    """``_text`` skips the trimming copy when no value starts or ends with whitespace or a
    multi-byte character; the reference is Arrow's ``utf8_trim_whitespace`` of every value."""
    import random
    rng = random.Random(7)
    alphabet = ["a", "Z", "7", " ", "\t", "\u00a0", "\u3000", "\u00e9", "-", "\u2003", "x y"]
    cases = [["Meter reading", "2026-07-01 09:15:00", "Atlas"],            # inner spaces only
             ["Atlas ", "Beacon"], ["\tAtlas", "Beacon"], ["Atlas\u00a0", "B"], ["\u00e9t\u00e9", "x"],
             ["", "a", ""], ["", "", ""], ["  ", "a"], ["a b", "", "c d "]]
    cases += [["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 5))) for _ in range(30)]
              for _ in range(300)]
    for values in cases:
        arr = pa.array(values, pa.string())
        for a in (arr, arr.slice(1)):
            trimmed = pc.utf8_trim_whitespace(a).to_pylist()
            expected = [v if v else None for v in trimmed]
            assert io._text(a).to_pylist() == expected, values
