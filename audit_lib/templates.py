"""``kpi-audit init``: a commented params file and blank, documented input templates.

For a new client this writes::

    <out_dir>/params.yaml            every section, commented, pointing at the CSV templates
    <out_dir>/inputs/<table>.csv     header row + one example row (register, contacts, survey, outcomes)
    <out_dir>/inputs/<table>.xlsx    the same, plus a "columns" sheet documenting each column
    <out_dir>/inputs/COLUMNS.md      the column documentation as text

Everything is generated from :mod:`audit_lib.schemas` and :mod:`audit_lib.settings`,
so the templates always match what ``kpi-audit validate`` checks. The example rows are
consistent with each other (the survey asks about the register's example metric, the
contact falls in the period, the teams match), so a fresh folder validates as it is.
"""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from . import schemas
from .columns import ITEM_BANK, SURVEY_SEP, Contact, Outcome, Register, Survey
from .errors import ParamsError
from .settings import (BehaviourSettings, LinkageSettings, PerceptionSettings, PrivacySettings,
                       ScorecardSettings, Thresholds)

__all__ = ["write_client_templates", "example_rows", "previous_quarter", "params_template"]

INPUT_DIR = "inputs"


def previous_quarter(today: dt.date) -> tuple[str, dt.date]:
    """The last complete calendar quarter before ``today``: (label like 2026-Q3, first day)."""
    q = (today.month - 1) // 3          # 0-based quarter of today
    year, q = (today.year, q - 1) if q else (today.year - 1, 3)
    return f"{year}-Q{q + 1}", dt.date(year, 3 * q + 1, 1)


def example_rows(period_start: dt.date) -> dict[str, dict[str, str]]:
    """One consistent example row per table (canonical column -> text value)."""
    rows = {name: {f.name: f.example for f in spec.fields} for name, spec in schemas.TABLES.items()}
    metric = rows["register"][Register.METRIC_ID]
    rows["contacts"][Contact.STARTED_AT] = f"{period_start.isoformat()} 09:15:00"
    rows["contacts"].update({Contact.FIRST_REPLY_SECONDS: "25", Contact.NPS: "9", Contact.CES: "2",
                             Contact.SALE: "N", Contact.CALLBACK_COMPLETED: "N"})
    rows["contacts"][Contact.TEAM] = rows["survey"][Survey.TEAM] = rows["outcomes"][Outcome.TEAM]
    rows["register"][Register.COUNTERBALANCE] = ""     # the template register has one metric only
    for i, item in enumerate(ITEM_BANK):
        rows["survey"][f"{metric}{SURVEY_SEP}{item}"] = str([4, 4, 3, 4, 2, 2, 4][i % 7])
    rows["survey"][f"{metric}{SURVEY_SEP}{Survey.COMMENT}"] = "Target feels tight on complex calls"
    rows["outcomes"][Outcome.PERIOD] = period_start.isoformat()
    rows["outcomes"].update({"churn_rate": "0.004", "complaints": "3"})
    return rows


def _column_docs(table: str) -> list[dict[str, str]]:
    spec = schemas.TABLES[table]
    docs = [{"column": f.name, "meaning": f.meaning, "type": f.type_label,
             "required": "required" if f.required else "optional",
             "blank allowed": "yes" if f.nullable else "no", "allowed values": f.allowed_label,
             "example": f.example} for f in spec.fields]
    if table == "survey":
        docs.append({"column": f"<metric_id>{SURVEY_SEP}<item>", "meaning": "Answer to one statement about one "
                     "metric; items: " + "; ".join(f"{k}: {v.format(metric='<metric>')}" for k, v in ITEM_BANK.items()),
                     "type": "answer 1..5 or its label", "required": "at least one",
                     "blank allowed": "yes (not answered)",
                     "allowed values": "1..5, or a label in params perception.labels", "example": "4"})
        docs.append({"column": f"<metric_id>{SURVEY_SEP}{Survey.COMMENT}", "meaning": "Free-text comment about "
                     "the metric (shown only for groups of at least thresholds.comments_anonymity)",
                     "type": "text", "required": "optional", "blank allowed": "yes", "allowed values": "",
                     "example": ""})
    if table == "outcomes":
        docs.append({"column": "<outcome>", "meaning": "Any other column is an outcome measure per period and "
                     "team (churn_rate, complaints, escalations ...)", "type": "number", "required": "at least one",
                     "blank allowed": "yes", "allowed values": "", "example": "0.004"})
    return docs


def _header(table: str, rows: dict) -> list[str]:
    return list(rows[table])


def _write_csv(path: Path, header: list[str], row: dict) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerow([row[c] for c in header])


def _typed(table: str, name: str, value: str):
    """The example value as Excel should store it (numbers as numbers, dates as dates)."""
    if value == "":
        return None
    spec = schemas.TABLES[table]
    f = spec.by_name.get(name)
    kind = f.kind if f else ("likert" if table == "survey" and not name.endswith(Survey.COMMENT) else
                             "number" if table == "outcomes" else "text")
    if kind in ("number", "duration", "likert"):
        number = float(value)
        return int(number) if number.is_integer() else number
    if kind == "timestamp":
        return dt.datetime.fromisoformat(value)
    if kind == "date":
        return dt.datetime.fromisoformat(value)
    return value


def _write_xlsx(path: Path, table: str, header: list[str], row: dict) -> None:
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font

    docs = {d["column"]: d for d in _column_docs(table)}
    wb = Workbook()
    ws = wb.active
    ws.title = table
    ws.append(header)
    ws.append([_typed(table, c, row[c]) for c in header])
    for cell in ws[1]:
        cell.font = Font(bold=True)
        doc = docs.get(cell.value)
        if doc is None and table == "survey":
            doc = docs[f"<metric_id>{SURVEY_SEP}" + ("<item>" if not str(cell.value).endswith(Survey.COMMENT)
                                                     else Survey.COMMENT)]
        if doc is None and table == "outcomes":
            doc = docs["<outcome>"]
        cell.comment = Comment(f"{doc['meaning']}\nType: {doc['type']}; {doc['required']}"
                               + (f"\nAllowed: {doc['allowed values']}" if doc["allowed values"] else ""),
                               "kpi-audit init")
        ws.column_dimensions[cell.column_letter].width = max(12, min(40, len(str(cell.value)) + 4))
    for cell in ws[2]:
        if isinstance(cell.value, dt.datetime):
            cell.number_format = "yyyy-mm-dd hh:mm:ss" if table == "contacts" else "yyyy-mm-dd"
    doc_ws = wb.create_sheet("columns")
    fields = ["column", "meaning", "type", "required", "blank allowed", "allowed values", "example"]
    doc_ws.append(fields)
    for d in docs.values():
        doc_ws.append([d[k] for k in fields])
    for cell in doc_ws[1]:
        cell.font = Font(bold=True)
    for letter, width in zip("ABCDEFG", (28, 70, 34, 12, 12, 40, 20)):
        doc_ws.column_dimensions[letter].width = width
    for r in doc_ws.iter_rows(min_row=2):
        r[1].alignment = Alignment(wrap_text=True, vertical="top")
    wb.save(path)


def _columns_markdown(rows: dict) -> str:
    lines = ["# Input columns", "",
             "Generated by `kpi-audit init` from the canonical schemas (`audit_lib/schemas.py`).",
             "A client's own column names can be kept: map them in the params file under",
             "`inputs.<table>.columns` (client name -> canonical name).", ""]
    for table in schemas.TABLE_ORDER:
        spec = schemas.TABLES[table]
        lines += [f"## {table} ({spec.grain})", "",
                  "| column | meaning | type | required | blank allowed | allowed values |",
                  "|---|---|---|---|---|---|"]
        for d in _column_docs(table):
            lines.append("| " + " | ".join(str(d[k]).replace("|", "/") for k in
                                            ("column", "meaning", "type", "required", "blank allowed",
                                             "allowed values")) + " |")
        lines.append("")
    return "\n".join(lines)


def _section(name: str, model, comment: str) -> list[str]:
    out = [f"# {comment}", f"{name}:"]
    instance = model()
    for key, info in model.model_fields.items():
        value = getattr(instance, key)
        if isinstance(value, dict):
            if not value:
                out.append(f"  {key}: {{}}  # {info.description}")
                continue
            out.append(f"  {key}:  # {info.description}")
            out += [f"    {k}: {v}" for k, v in value.items()]
            continue
        shown = str(value).lower() if isinstance(value, bool) else value
        out.append(f"  {key}: {shown}  # {info.description}")
    return out + [""]


def params_template(client: str, period: str, *, input_dir: str = INPUT_DIR) -> str:
    """The commented params file for a new client."""
    from .params import DEFAULT_FALSE, DEFAULT_TRUE

    def q(values):
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    import json
    one_line = " ".join(client.split())
    lines = [
        f"# Params of the metrics audit of {one_line}.",
        "# Paths are relative to this file. Check it with: kpi-audit validate <this file>",
        "# Every key below is optional except client, period and inputs.register / inputs.contacts;",
        "# unknown keys are errors (a misspelt key never passes silently).",
        "",
        f"client: {json.dumps(one_line, ensure_ascii=False)}      # free text; the report folder uses a safe slug of it",
        f"period: {period}                 # YYYY-Qn, YYYY-MM, or YYYY-MM-DD..YYYY-MM-DD",
        "# period_start: 2026-06-29        # optional: first day (default: first day of period)",
        "# period_end: 2026-09-27          # optional: last day (default: last day of period)",
        "output_dir: reports               # report goes to <output_dir>/<client-slug>/<period>/",
        "previous: null                    # next quarter: the previous report folder (holds findings.json)",
        "",
        "inputs:",
        "  # Each table: path (.csv, .xlsx or .parquet), columns (your column name -> canonical name,",
        "  # only those that differ), format. The templates in inputs/ show every canonical column;",
        "  # inputs/COLUMNS.md and the 'columns' sheet of each .xlsx document them.",
        "  register:",
        f"    path: {input_dir}/register.csv      # or {input_dir}/register.xlsx",
        "  contacts:",
        f"    path: {input_dir}/contacts.csv",
        "    columns: {}                    # e.g. {\"Call ID\": contact_id, \"Handle Time\": handle_seconds}",
        "    format:",
        '      delimiter: ","               # CSV only; ";" for many European exports, "\\t" for tab',
        "      encoding: utf-8              # CSV only; latin-1 or cp1252 for older Windows exports",
        "      sheet: null                  # XLSX only: sheet name, or number counting from 1",
        "      header_row: 1                # the row holding the column names (1 = first row)",
        "      duration: seconds            # seconds | hms (h:mm:ss or mm:ss)",
        "      timestamp: iso               # iso, or a strftime pattern such as \"%d/%m/%Y %H:%M\"",
        f"      true_values: {q(DEFAULT_TRUE)}",
        f"      false_values: {q(DEFAULT_FALSE)}",
        "  survey:                          # staff perception survey (remove the table if there is none yet)",
        f"    path: {input_dir}/survey.csv",
        "  outcomes:                        # optional: team-week or month outcomes (churn, complaints ...)",
        f"    path: {input_dir}/outcomes.csv",
        "",
    ]
    lines += _section("thresholds", Thresholds, "Thresholds: anonymity, minimum sample sizes, KPI definitions.")
    lines += _section("privacy", PrivacySettings, "Privacy of agents in shareable output.")
    lines += _section("behaviour", BehaviourSettings, "Behaviour lens (detectors of gaming and side effects).")
    lines += _section("perception", PerceptionSettings, "Perception lens (staff survey). Labels are "
                      "case-insensitive.")
    lines += _section("linkage", LinkageSettings, "Linkage lens (does the metric move with outcomes?).")
    lines += _section("scorecard", ScorecardSettings, "Scorecard: override which check triggers which verdict.")
    text = "\n".join(lines)
    # perception labels contain spaces: quote them so the YAML stays readable and exact
    for label in PerceptionSettings().labels:
        text = text.replace(f"    {label}: ", f'    "{label}": ')
    return text


def write_client_templates(client: str, out_dir: Path, *, today: dt.date | None = None) -> list[Path]:
    """Write the params file and the input templates for ``client`` into ``out_dir``.

    Parameters
    ----------
    client : str
        The client's name (free text).
    out_dir : Path
        Folder to write into; created when missing. Existing files are never overwritten.
    today : date, optional
        Fixes the default period (the last complete quarter before ``today``).

    Returns
    -------
    list of Path
        The files written, params file first.

    Raises
    ------
    ParamsError
        When the client name is blank or a file to write already exists.
    """
    if not str(client).strip():
        raise ParamsError("the client name is blank\n  fix: kpi-audit init \"Acme Energy\"")
    out_dir = Path(out_dir)
    period, start = previous_quarter(today or dt.date.today())
    rows = example_rows(start)
    targets = [out_dir / "params.yaml"]
    for table in schemas.TABLE_ORDER:
        targets += [out_dir / INPUT_DIR / f"{table}.csv", out_dir / INPUT_DIR / f"{table}.xlsx"]
    targets.append(out_dir / INPUT_DIR / "COLUMNS.md")
    existing = [p for p in targets if p.exists()]
    if existing:
        raise ParamsError(f"{len(existing)} file(s) already exist, e.g. {existing[0]}; init never overwrites\n"
                          "  fix: choose an empty folder with --dir, or remove the old files")
    (out_dir / INPUT_DIR).mkdir(parents=True, exist_ok=True)
    targets[0].write_text(params_template(client.strip(), period), encoding="utf-8")
    for table in schemas.TABLE_ORDER:
        header = _header(table, rows)
        _write_csv(out_dir / INPUT_DIR / f"{table}.csv", header, rows[table])
        _write_xlsx(out_dir / INPUT_DIR / f"{table}.xlsx", table, header, rows[table])
    (out_dir / INPUT_DIR / "COLUMNS.md").write_text(_columns_markdown(rows), encoding="utf-8")
    return targets
