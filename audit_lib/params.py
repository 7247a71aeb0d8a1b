"""The params file: a strict model of one audit, every problem reported at once.

``load_params(path)`` reads ``params/<client>.yaml`` with ``yaml.safe_load`` and
validates it into :class:`Params`. Unknown keys, wrong types, missing input files,
bad dates or periods and impossible thresholds are all collected into one
:class:`~audit_lib.errors.ParamsError`; each problem names its key path
(``inputs.contacts.format.duration``), what is wrong and the fix. Paths in the
file are relative to the params file itself.

The tunable sections (``thresholds``, ``privacy``, ``behaviour``, ``perception``,
``linkage``, ``scorecard``) are the models of :mod:`audit_lib.settings`.
"""
from __future__ import annotations

import calendar
import codecs
import difflib
import re
import types
import typing
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import AfterValidator, BeforeValidator, Field, PrivateAttr, ValidationError, ValidationInfo
from pydantic import BaseModel, field_validator, model_validator

from . import schemas
from .columns import ITEM_BANK, SURVEY_SEP, Survey
from .errors import ParamsError
from .settings import (BehaviourSettings, LinkageSettings, PerceptionSettings, PrivacySettings,
                       ScorecardSettings, Strict, Thresholds)

__all__ = [
    "Params", "Inputs", "InputTable", "RegisterInput", "ContactsInput", "SurveyInput",
    "OutcomesInput", "TableFormat", "load_params", "init_client", "slugify", "parse_period",
    "FILE_KINDS", "DEFAULT_TRUE", "DEFAULT_FALSE",
]

#: file suffix -> reader used by audit_lib.io
FILE_KINDS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx",
              ".parquet": "parquet", ".pq": "parquet"}
DEFAULT_TRUE = ("Y", "y", "yes", "Yes", "YES", "1", "true", "True", "TRUE")
DEFAULT_FALSE = ("N", "n", "no", "No", "NO", "0", "false", "False", "FALSE")
_FIX = " | fix: "   # separates what is wrong from how to fix it inside validator messages


def _problem(what: str, fix: str) -> ValueError:
    return ValueError(f"{what}{_FIX}{fix}")


# --------------------------------------------------------------------------- period and slug

_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")
_PERIOD_FIX = "write the period as 2026-Q3 (quarter), 2026-09 (month) or 2026-07-01..2026-09-30 (dates)"


def parse_period(text: str) -> tuple[date, date]:
    """First and last day of a period written ``YYYY-Qn``, ``YYYY-MM`` or ``YYYY-MM-DD..YYYY-MM-DD``.

    Examples
    --------
    >>> parse_period("2026-Q3")
    (datetime.date(2026, 7, 1), datetime.date(2026, 9, 30))
    >>> parse_period("2026-02")
    (datetime.date(2026, 2, 1), datetime.date(2026, 2, 28))
    """
    if m := _QUARTER.match(text):
        year, q = int(m.group(1)), int(m.group(2))
        first_month = 3 * (q - 1) + 1
        return date(year, first_month, 1), date(year, first_month + 2,
                                                calendar.monthrange(year, first_month + 2)[1])
    if m := _MONTH.match(text):
        year, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12:
            raise _problem(f"month {month} does not exist in period {text!r}", _PERIOD_FIX)
        return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
    if m := _RANGE.match(text):
        try:
            start, end = date.fromisoformat(m.group(1)), date.fromisoformat(m.group(2))
        except ValueError as exc:
            raise _problem(f"period {text!r} holds an impossible date ({exc})", _PERIOD_FIX) from None
        if end < start:
            raise _problem(f"period {text!r} ends before it starts", "put the earlier date first")
        return start, end
    raise _problem(f"period {text!r} is not a period this tool understands", _PERIOD_FIX)


def slugify(text: str) -> str:
    """A safe folder name from free text: lower-case letters, digits and single hyphens.

    Path separators, dots and anything else collapse to hyphens, so ``../../x``
    becomes ``x`` and can never leave the reports folder.

    Examples
    --------
    >>> slugify("Harbour Utilities")
    'harbour-utilities'
    >>> slugify("../../x")
    'x'
    """
    import unicodedata
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:80].strip("-") or "client"


# --------------------------------------------------------------------------- inputs

def _lookup_encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise _problem(f"encoding {value!r} is unknown",
                       "use a Python codec name such as utf-8, utf-8-sig, latin-1 or cp1252") from None
    return value


def _spellings(value: Any) -> Any:
    # YAML turns unquoted yes/no/true/false into booleans and 1/0 into numbers; numbers are
    # safe to turn back into text, booleans are not (was it "yes", "Yes" or "true"?).
    if not isinstance(value, list):
        return value
    out = []
    for item in value:
        if isinstance(item, bool):
            raise _problem(f"the spelling {item!r} lost its quotes: YAML reads unquoted yes/no/true/false "
                           "as a boolean, so the exact spelling in your file is unknown",
                           "put every spelling in quotes, e.g. [\"Y\", \"yes\", \"1\"]")
        out.append(str(item) if isinstance(item, (int, float)) else item)
    return out


class TableFormat(Strict):
    """How a client export is written (delimiter, encoding, sheet, header row, value formats)."""

    delimiter: str = Field(",", description="CSV only: the field separator (one character; \\t for tab).")
    encoding: Annotated[str, AfterValidator(_lookup_encoding)] = Field(
        "utf-8", description="CSV only: text encoding (utf-8, latin-1, cp1252 ...).")
    sheet: Any = Field(None, description="XLSX only: sheet name, or 1-based sheet number; default the first.")
    header_row: int = Field(1, ge=1, le=1000, description="Row (1-based) holding the column names.")
    duration: Literal["seconds", "hms"] = Field(
        "seconds", description="Durations as seconds, or hms (h:mm:ss or mm:ss).")
    timestamp: str = Field("iso", description='Date-time format: "iso" or a strftime pattern like "%d/%m/%Y %H:%M".')
    true_values: Annotated[list[str], BeforeValidator(_spellings)] = Field(
        default_factory=lambda: list(DEFAULT_TRUE), description="Spellings of yes.")
    false_values: Annotated[list[str], BeforeValidator(_spellings)] = Field(
        default_factory=lambda: list(DEFAULT_FALSE), description="Spellings of no.")

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, v: str) -> str:
        if v in ("\\t", "tab", "TAB"):
            return "\t"
        if len(v) != 1 or v in ('"', "\n", "\r"):
            raise _problem(f"delimiter {v!r} must be exactly one character (not a quote or newline)",
                           'use "," or ";" or "\\t"')
        return v

    @field_validator("sheet")
    @classmethod
    def _sheet(cls, v: Any) -> Any:
        if v is None or isinstance(v, str) and v.strip():
            return v
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
            return v
        raise _problem(f"sheet {v!r} is neither a sheet name nor a sheet number (1 = first sheet)",
                       "write the sheet's name in quotes, or its number counting from 1")

    @field_validator("timestamp")
    @classmethod
    def _timestamp(cls, v: str) -> str:
        if v.lower() == "iso":
            return "iso"
        if "%" not in v:
            raise _problem(f"timestamp format {v!r} is neither \"iso\" nor a strftime pattern",
                           'write e.g. "%d/%m/%Y %H:%M" (day/month/year hour:minute) or "iso"')
        return v

    @model_validator(mode="after")
    def _spellings_disjoint(self):
        both = sorted(set(self.true_values) & set(self.false_values))
        if both:
            raise _problem(f"{both} listed both in true_values and false_values",
                           "keep each spelling in one list only")
        return self


def _resolve_path(value: Any, info: ValidationInfo, *, must_exist: bool = True) -> Path:
    base = Path((info.context or {}).get("base", "."))
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise _problem(f"expected a file path, got {value!r}", "write the path of the file, relative to the params file")
    path = (base / str(value)).resolve()
    if path.suffix.lower() not in FILE_KINDS:
        raise _problem(f"{value!r} has an unsupported file type {path.suffix or '(none)'!r}",
                       "export the table as .csv, .xlsx or .parquet")
    if must_exist and not path.is_file():
        hint = "" if path.parent.is_dir() else f" (the folder {path.parent} does not exist either)"
        raise _problem(f"file not found: {path}{hint}",
                       "correct the path; it is relative to the folder of the params file")
    return path


class InputTable(Strict):
    """One client export: its path, the column mapping and the format."""

    table: ClassVar[str] = ""
    path: Path = Field(..., description="File path, relative to the params file (.csv, .xlsx, .parquet).")
    columns: dict[str, str] = Field(default_factory=dict,
                                    description="client column name -> canonical name (only those that differ).")
    format: TableFormat = Field(default_factory=TableFormat)

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, v: Any, info: ValidationInfo) -> Path:
        return _resolve_path(v, info)

    @field_validator("columns")
    @classmethod
    def _one_client_column_per_name(cls, v: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for client, canonical in v.items():
            if canonical in seen:
                raise _problem(f"client columns {seen[canonical]!r} and {client!r} are both mapped to {canonical!r}",
                               "map only one client column to each canonical name")
            seen[canonical] = client
        return v

    @property
    def kind(self) -> str:
        """Reader to use: ``csv``, ``xlsx`` or ``parquet`` (from the file suffix)."""
        return FILE_KINDS[self.path.suffix.lower()]


def _canonical_checker(table: str):
    spec = schemas.TABLES[table]

    def check(value: str) -> str:
        ok = value in spec.by_name
        if table == "survey" and not ok:
            parts = schemas.survey_column_parts(value)
            ok = bool(parts) and (parts[1] in ITEM_BANK or parts[1] == Survey.COMMENT)
        if table == "outcomes" and not ok:
            ok = bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value))
        if not ok:
            known = list(spec.names)
            close = difflib.get_close_matches(value, known, n=1)
            extra = (f" or <metric_id>{SURVEY_SEP}<item> with item one of {', '.join(ITEM_BANK)}, "
                     f"{Survey.COMMENT}" if table == "survey" else "")
            raise _problem(f"{value!r} is not a canonical {table} column",
                           (f"did you mean {close[0]!r}? " if close else "")
                           + f"map to one of: {', '.join(known)}{extra}")
        return value
    return check


class RegisterInput(InputTable):
    table: ClassVar[str] = "register"
    columns: dict[str, Annotated[str, AfterValidator(_canonical_checker("register"))]] = Field(default_factory=dict)


class ContactsInput(InputTable):
    table: ClassVar[str] = "contacts"
    columns: dict[str, Annotated[str, AfterValidator(_canonical_checker("contacts"))]] = Field(default_factory=dict)


class SurveyInput(InputTable):
    table: ClassVar[str] = "survey"
    columns: dict[str, Annotated[str, AfterValidator(_canonical_checker("survey"))]] = Field(default_factory=dict)


class OutcomesInput(InputTable):
    table: ClassVar[str] = "outcomes"
    columns: dict[str, Annotated[str, AfterValidator(_canonical_checker("outcomes"))]] = Field(default_factory=dict)


import warnings as _warnings  # noqa: E402

_warnings.filterwarnings("ignore", message='Field name "register" in "Inputs" shadows', category=UserWarning)


class Inputs(Strict):
    """The four client exports; survey and outcomes may be left out."""

    # pydantic warns that the field "register" shadows ABCMeta.register; that method lives on the
    # metaclass, so instances still read the field (silenced in load order below).

    register: RegisterInput
    contacts: ContactsInput
    survey: SurveyInput | None = None
    outcomes: OutcomesInput | None = None

    def tables(self) -> dict[str, InputTable]:
        """Declared inputs in canonical order (absent optional tables left out)."""
        return {name: getattr(self, name) for name in schemas.TABLE_ORDER if getattr(self, name) is not None}


# --------------------------------------------------------------------------- the params model

def _period_text(value: Any) -> str:
    if isinstance(value, date):
        raise _problem(f"period {value.isoformat()} is a single date", _PERIOD_FIX)
    if not isinstance(value, str):
        raise _problem(f"period {value!r} is not text", _PERIOD_FIX)
    value = value.strip()
    parse_period(value)
    return value.upper() if _QUARTER.match(value) else value


def _date_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.time() != datetime.min.time():
            raise _problem(f"{value.isoformat(sep=' ')} has a time of day", "write only the date, YYYY-MM-DD")
        return value.date()
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise _problem(f"{value!r} is not a valid date", "write the date as YYYY-MM-DD, e.g. 2026-07-01") from None
    raise _problem(f"{value!r} is not a date", "write the date as YYYY-MM-DD, e.g. 2026-07-01")


def _labels_in_scale(v: PerceptionSettings) -> PerceptionSettings:
    bad = {k: s for k, s in v.labels.items() if not schemas.LIKERT_MIN <= s <= schemas.LIKERT_MAX}
    if bad:
        raise _problem(f"labels map to scores outside {schemas.LIKERT_MIN}..{schemas.LIKERT_MAX}: {bad}",
                       f"map every label to a whole number {schemas.LIKERT_MIN}..{schemas.LIKERT_MAX}")
    lowered: dict[str, int] = {}
    for label, score in v.labels.items():
        key = " ".join(str(label).lower().split())
        if key in lowered and lowered[key] != score:
            raise _problem(f"label {label!r} appears twice (labels are compared case-insensitively) "
                           "with different scores", "keep one score per label")
        lowered[key] = score
    return v


class Params(Strict):
    """One audit: the client, the period, the inputs and every tunable setting."""

    client: str = Field(..., min_length=1, description="Client name (free text).")
    period: Annotated[str, BeforeValidator(_period_text)] = Field(
        ..., description="2026-Q3, 2026-09 or 2026-07-01..2026-09-30.")
    period_start: Annotated[date | None, BeforeValidator(_date_value)] = Field(
        None, description="First day of the audit period (default: first day of `period`).")
    period_end: Annotated[date | None, BeforeValidator(_date_value)] = Field(
        None, description="Last day of the audit period (default: last day of `period`).")
    output_dir: str = Field("reports", description="Reports are written to <output_dir>/<client-slug>/<period>/.")
    previous: str | None = Field(None, description="Folder of the previous audit's report (holds findings.json).")
    inputs: Inputs
    thresholds: Thresholds = Field(default_factory=Thresholds)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    behaviour: BehaviourSettings = Field(default_factory=BehaviourSettings)
    perception: Annotated[PerceptionSettings, AfterValidator(_labels_in_scale)] = Field(
        default_factory=PerceptionSettings)
    linkage: LinkageSettings = Field(default_factory=LinkageSettings)
    scorecard: ScorecardSettings = Field(default_factory=ScorecardSettings)

    _source: Path | None = PrivateAttr(None)
    _base: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("client")
    @classmethod
    def _client_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise _problem("client is blank", "write the client's name, e.g. client: Harbour Utilities")
        return v.strip()

    @field_validator("output_dir", mode="before")
    @classmethod
    def _output_dir(cls, v: Any) -> Any:
        if not isinstance(v, str) or not v.strip():
            raise _problem(f"output_dir {v!r} is not a folder path", "write a folder path, e.g. ../reports")
        return v

    @field_validator("previous", mode="before")
    @classmethod
    def _previous(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return None
        if not isinstance(v, str) or not v.strip():
            raise _problem(f"previous {v!r} is not a folder path",
                           "write the folder of the previous report, or null for a first audit")
        folder = (Path((info.context or {}).get("base", ".")) / v).resolve()
        if not folder.is_dir():
            raise _problem(f"previous report folder not found: {folder}",
                           "point previous at last quarter's report folder (reports/<client>/<period>), "
                           "or set previous: null")
        if not (folder / "findings.json").is_file():
            raise _problem(f"{folder} has no findings.json, so it is not a published report folder",
                           "point previous at a report folder written by kpi-audit run")
        return str(folder)

    @model_validator(mode="after")
    def _resolve_period(self):
        start, end = parse_period(self.period)
        # derived values are written straight into the instance: assignment validation would re-run this
        self.__dict__["period_start"] = self.period_start or start
        self.__dict__["period_end"] = self.period_end or end
        if self.period_end < self.period_start:
            raise _problem(f"period_end {self.period_end} is before period_start {self.period_start}",
                           "swap the dates or correct the one that is wrong")
        return self

    # -- derived, read-only --------------------------------------------------------------
    @property
    def slug(self) -> str:
        """Safe folder name of the client (never contains a path separator or '..')."""
        return slugify(self.client)

    @property
    def period_label(self) -> str:
        """The period as a folder name (``2026-Q3``, ``2026-09``, ``2026-07-01_2026-09-30``)."""
        return re.sub(r"[^0-9A-Za-z-]+", "_", self.period.replace("..", "_"))

    @property
    def source(self) -> Path | None:
        """The params file this was loaded from."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """Folder relative paths are resolved against (the params file's folder)."""
        return self._base

    @property
    def output_path(self) -> Path:
        """``output_dir`` resolved against the params file's folder."""
        return (self._base / self.output_dir).resolve()

    @property
    def client_dir(self) -> Path:
        """``<output_dir>/<slug>`` (holds the period folders and ``.restricted``)."""
        return self.output_path / self.slug

    @property
    def report_dir(self) -> Path:
        """``<output_dir>/<slug>/<period>``: where this audit's report is published."""
        return self.client_dir / self.period_label

    @property
    def previous_dir(self) -> Path | None:
        """The previous report folder, or None for a first audit."""
        return Path(self.previous) if self.previous else None


# --------------------------------------------------------------------------- YAML reading

def _impossible_date_line(text: str) -> tuple[int, str] | None:
    """(line number, token) of the first YYYY-MM-DD token that is not a real date."""
    for number, line in enumerate(text.splitlines(), start=1):
        for token in re.findall(r"\b\d{4}-\d{1,2}-\d{1,2}\b", line.split("#", 1)[0]):
            year, month, day = (int(x) for x in token.split("-"))
            try:
                date(year, month, day)
            except ValueError:
                return number, token
    return None


# --------------------------------------------------------------------------- error formatting

def _unwrap(annotation: Any) -> Any:
    """The model class inside Optional[...] / Annotated[...], else None."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _unwrap(arg)
            if found is not None:
                return found
        return None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Params
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        model = _unwrap(model.model_fields[part].annotation)
    return model


def _key_path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _describe(err: dict) -> tuple[str, str, str]:
    """(key path, what is wrong, fix) for one pydantic error."""
    loc = tuple(err["loc"])
    kind = err["type"]
    msg = err["msg"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        fix = (f"did you mean {close[0]!r}? " if close else "remove it or correct the spelling; ") + \
              (f"allowed keys here: {', '.join(allowed)}" if allowed else "")
        return _key_path(loc), "unknown key", fix
    if kind == "missing":
        return _key_path(loc), "required key is missing", f"add {loc[-1]}: <value>"
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error", msg))
        what, _, fix = text.partition(_FIX)
        # a section-level rule (e.g. thresholds) names its field first: point the key path at it
        model = _model_at(loc)
        first = re.match(r"\s*(\w+)", what)
        if model and first and first.group(1) in model.model_fields:
            loc = (*loc, first.group(1))
        return _key_path(loc), what.strip(), fix or "change the value(s) so the rule above holds"
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    if kind == "literal_error":
        return _key_path(loc), f"{shown} is not allowed", f"use one of {ctx.get('expected')}"
    if kind.startswith(("int_", "float_")):
        return _key_path(loc), f"expected a number, got {shown}", "write a number without quotes, e.g. 5"
    if kind.startswith("bool_"):
        return _key_path(loc), f"expected true or false, got {shown}", "write true or false"
    if kind in ("string_type",):
        return _key_path(loc), f"expected text, got {shown}", "write text (quote it if it looks like a number)"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return _key_path(loc), f"expected a section of key: value lines, got {shown}", \
            "indent the keys of this section below it"
    if kind in ("list_type",):
        return _key_path(loc), f"expected a list, got {shown}", 'write a list like ["Y", "yes"]'
    if kind.startswith(("greater_than", "less_than")):
        return _key_path(loc), f"{shown} is out of range ({msg.lower()})", "choose a value in the allowed range"
    if kind.startswith("date") or kind.startswith("datetime"):
        return _key_path(loc), f"{shown} is not a valid date", "write the date as YYYY-MM-DD"
    if kind.startswith("string_too"):
        return _key_path(loc), f"{shown}: {msg.lower()}", "write a non-empty value"
    return _key_path(loc), f"{msg} (got {shown})", "correct the value"


def _format_problems(path: Path, problems: list[tuple[str, str, str]]) -> str:
    lines = [f"{path}: {len(problems)} problem(s) in the params file:"]
    for key, what, fix in problems:
        lines.append(f"  - {key}: {what}\n      fix: {fix}")
    return "\n".join(lines)


def load_params(path) -> Params:
    """Read and validate a params file.

    Parameters
    ----------
    path : str or Path
        The params YAML file. Relative paths inside it are resolved against its folder.

    Returns
    -------
    Params

    Raises
    ------
    ParamsError
        Listing every problem at once, each with its key path and the fix.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}\n  fix: check the path, or create one with "
                          "kpi-audit init \"<client name>\"")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{path}: the params file is not UTF-8 text (byte {exc.start})\n"
                          "  fix: save it as UTF-8") from None
    try:
        raw = yaml.safe_load(text)
    except ValueError as exc:
        # safe_load builds dates itself and raises a bare ValueError for 2026-13-01 (no position)
        found = _impossible_date_line(text)
        where = f"line {found[0]}: {found[1]!r} is not a real date" if found else f"an impossible date ({exc})"
        raise ParamsError(f"{path}: the params file has {where}\n  fix: write the date as YYYY-MM-DD with a "
                          "real month (1-12) and day") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParamsError(f"{path}: the params file is not valid YAML at {where}: {problem}\n"
                          "  fix: check the indentation and quoting on that line (a value holding ': ' "
                          "or starting with '%', '*', '&' needs quotes)") from None
    if raw is None:
        raise ParamsError(f"{path}: the params file is empty\n  fix: start from kpi-audit init \"<client>\"")
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: the params file must be a set of key: value lines, "
                          f"not a {type(raw).__name__}\n  fix: start from kpi-audit init \"<client>\"")
    base = path.resolve().parent
    try:
        params = Params.model_validate(raw, context={"base": base})
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors(include_url=False)]
        raise ParamsError(_format_problems(path, problems),
                          problems=[{"key": k, "problem": w, "fix": f} for k, w, f in problems]) from None
    params._source = path.resolve()
    params._base = base
    return params


def init_client(client: str, out_dir) -> list[Path]:
    """Write a commented params file and blank, documented input templates for a new client.

    See :func:`audit_lib.templates.write_client_templates`.
    """
    from .templates import write_client_templates
    return write_client_templates(client, Path(out_dir))
