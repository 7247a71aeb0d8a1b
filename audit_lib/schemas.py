"""Canonical schemas of the four input tables, declared once.

Each table is a :class:`TableSpec`: its columns (:class:`Field`) with a kind
(how a raw value is parsed), whether the column is required, whether a value may
be blank, allowed values or a range, and a plain-language meaning. Three things
read these declarations, so they cannot drift apart:

* :mod:`audit_lib.io` parses and checks client exports against them (pandera for
  the small tables through :func:`pandera_schema`; vectorised Arrow checks for
  contacts, which can be tens of millions of rows — see ``benchmarks/README.md``);
* :mod:`audit_lib.templates` writes the blank input templates and their column
  documentation from them;
* the reason codes in :data:`REASONS` name every kind of problem a report can show.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .columns import ITEM_BANK, SURVEY_SEP, Contact, Outcome, Register, Survey

__all__ = [
    "Field", "TableSpec", "REGISTER", "CONTACTS", "SURVEY", "OUTCOMES", "TABLES", "TABLE_ORDER",
    "REASONS", "LIKERT_MIN", "LIKERT_MAX", "CHANNELS", "CHANNEL_SYNONYMS", "ROLE_SYNONYMS",
    "INCENTIVE_LINKS", "DIRECTIONS", "survey_column_parts", "is_survey_item_column",
    "pandera_schema",
]

#: every reason code a validation problem can carry, with what it means
REASONS = {
    "missing_file": "the file named in the params file does not exist",
    "empty_file": "the file has no data rows",
    "bad_encoding": "the bytes of the file are not valid in the declared encoding",
    "unreadable_file": "the file could not be read as the declared format",
    "header_not_found": "the expected header row does not hold the column names",
    "bad_row": "a row has more or fewer fields than the header",
    "missing_column": "a required column is not in the file",
    "unused_column": "a column of the file is not used by the audit",
    "wrong_type": "a value is not of the column's type (number, date, ...)",
    "unparseable_duration": "a duration is neither seconds nor h:mm:ss as declared",
    "unparseable_timestamp": "a date/time does not match the declared format",
    "unparseable_boolean": "a yes/no value is not one of the declared spellings",
    "out_of_range": "a number is outside the allowed range",
    "invalid_value": "a value is not one of the allowed values",
    "invalid_answer": "a survey answer is neither 1..5 nor a known label",
    "missing_value": "a required value is blank",
    "duplicate_id": "an identifier appears on more than one row",
    "unknown_metric": "a survey column names a metric that is not in the register",
    "unknown_item": "a survey column names an item that is not in the item bank",
    "unknown_team": "a team does not exist among the contacts' teams",
    "outside_period": "a date falls outside the audit period",
    "blank_row": "a row holds no values",
    "mostly_missing": "a column is blank on a large share of rows",
    "empty_column": "a column is entirely blank",
}

LIKERT_MIN, LIKERT_MAX = 1, 5
CHANNELS = ("voice", "chat", "email")
#: common spellings of the three channels, mapped on load (lower-cased first)
CHANNEL_SYNONYMS = {
    "phone": "voice", "call": "voice", "telephone": "voice", "telephony": "voice", "inbound call": "voice",
    "webchat": "chat", "web chat": "chat", "live chat": "chat", "messaging": "chat",
    "e-mail": "email", "mail": "email",
}
ROLE_SYNONYMS = {
    "agent": "agent", "advisor": "agent", "adviser": "agent", "staff": "agent", "csr": "agent",
    "team_lead": "team_lead", "team lead": "team_lead", "team leader": "team_lead",
    "team-lead": "team_lead", "supervisor": "team_lead",
    "manager": "manager", "management": "manager",
}
INCENTIVE_LINKS = ("none", "recognition", "bonus", "discipline")
DIRECTIONS = ("higher", "lower")

# Kinds of column: how a raw value is parsed.
#   text      string (trimmed; blank -> missing)
#   choice    text limited to ``allowed`` (compared lower-cased)
#   number    float
#   duration  seconds as float; raw values in seconds or h:mm:ss per params format
#   boolean   nullable bool; spellings from params format
#   timestamp date and time; params format (strftime pattern or "iso")
#   date      a calendar date (ISO, or the params timestamp format)
#   likert    survey answer 1..5, or a label mapped by params.perception.labels
KINDS = ("text", "choice", "number", "duration", "boolean", "timestamp", "date", "likert")


@dataclass(frozen=True)
class Field:
    """One canonical column."""

    name: str
    kind: str
    required: bool
    meaning: str
    nullable: bool = True          # may a value be blank when the column is present?
    unique: bool = False
    allowed: tuple = ()
    min: float | None = None
    max: float | None = None
    example: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:  # a programming error in this module, not an input problem
            raise ValueError(f"unknown kind {self.kind!r} for {self.name}")

    @property
    def type_label(self) -> str:
        """Type in words, for templates and messages."""
        return {
            "text": "text", "choice": "one of a list", "number": "number",
            "duration": "duration (seconds, or h:mm:ss when format.duration: hms)",
            "boolean": "yes/no (spellings in format.true_values / false_values)",
            "timestamp": "date and time (format.timestamp)", "date": "date (YYYY-MM-DD)",
            "likert": "answer 1..5 or its label",
        }[self.kind]

    @property
    def allowed_label(self) -> str:
        """Allowed values or range in words ('' when anything goes)."""
        if self.allowed:
            return ", ".join(self.allowed)
        if self.min is not None and self.max is not None:
            return f"{self.min:g} to {self.max:g}"
        if self.min is not None:
            return f"at least {self.min:g}"
        return ""


@dataclass(frozen=True)
class TableSpec:
    """A canonical input table: its name, grain and columns."""

    name: str
    grain: str
    fields: tuple
    optional_table: bool = False
    #: the survey and outcomes tables also take columns named by pattern (items, outcome measures)
    dynamic: str = ""
    by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    @property
    def required(self) -> tuple:
        return tuple(f.name for f in self.fields if f.required)

    @property
    def names(self) -> tuple:
        return tuple(f.name for f in self.fields)


def _duration(name: str, meaning: str, example: str = "") -> Field:
    """An optional duration column (seconds, never negative)."""
    return Field(name, "duration", False, meaning, min=0.0, example=example)


REGISTER = TableSpec("register", "one row per metric the client tracks", (
    Field(Register.METRIC_ID, "text", True, "Short unique id of the metric, used everywhere else "
          "(survey columns, counterbalance).", nullable=False, unique=True, example="AHT"),
    Field(Register.NAME, "text", True, "The metric's name as staff know it.", nullable=False,
          example="Average handle time"),
    Field(Register.KPI, "text", True, "Id of the standard KPI in the KPI library (e.g. aht, fcr_agent, "
          "csat), or 'custom'.", nullable=False, example="aht"),
    Field(Register.PURPOSE, "text", True, "Why it is measured: the outcome it should serve (may be blank; "
          "the audit flags it).", example="Keep queues short so customers are answered quickly"),
    Field(Register.OWNER, "text", True, "Who is accountable for the metric (may be blank; flagged).",
          example="Head of Operations"),
    Field(Register.TARGET, "number", True, "Target value in the KPI's unit (seconds, or a share 0..1; "
          "'80%' is read as 0.8). May be blank.", example="360"),
    Field(Register.DIRECTION, "choice", True, "Which way is better for the target.", allowed=DIRECTIONS,
          example="lower"),
    Field(Register.DEFINITION, "text", False, "How the client computes it, in words.",
          example="Talk + hold + wrap time of answered calls"),
    Field(Register.INCENTIVE_LINK, "choice", False, "Link to pay or discipline.", allowed=INCENTIVE_LINKS,
          example="bonus"),
    Field(Register.AUDIENCE, "text", False, "Who sees it (agents, team leads, board...).",
          example="agents, team leads"),
    Field(Register.COUNTERBALANCE, "text", False, "metric_id of the paired counter-measure.",
          example="REPEAT"),
    Field(Register.REVIEW_DATE, "date", False, "When the metric was last reviewed.", example="2026-01-15"),
    Field(Register.DATA_COLUMN, "text", False, "Contacts column the metric is computed from, for custom "
          "metrics.", example=""),
))

CONTACTS = TableSpec("contacts", "one row per contact (call, chat, e-mail)", (
    Field(Contact.CONTACT_ID, "text", True, "Unique id of the contact.", nullable=False, unique=True,
          example="C000001"),
    Field(Contact.AGENT_ID, "text", True, "Id of the agent who handled it (pseudonymised in reports).",
          nullable=False, example="AG001"),
    Field(Contact.STARTED_AT, "timestamp", True, "When the contact started.", nullable=False,
          example="2026-07-01 09:15:00"),
    Field(Contact.CHANNEL, "choice", True, "Channel (phone/call = voice, webchat = chat, e-mail = email).",
          nullable=False, allowed=CHANNELS, example="voice"),
    Field(Contact.HANDLE_SECONDS, "duration", True, "Handle time: talk + hold + wrap-up.", min=0.0,
          example="312"),
    Field(Contact.CUSTOMER_ID, "text", False, "Customer id (needed for repeat contacts).", example="K10001"),
    Field(Contact.TEAM, "text", False, "Agent's team.", example="Atlas"),
    Field(Contact.SITE, "text", False, "Site or location.", example="Leeds"),
    _duration(Contact.QUEUE_SECONDS, "Time waiting in queue before answer or abandon.", "18"),
    Field(Contact.ABANDONED, "boolean", False, "Customer hung up before being answered.", example="N"),
    _duration(Contact.TALK_SECONDS, "Talk time.", "240"),
    _duration(Contact.HOLD_SECONDS, "Hold time.", "20"),
    _duration(Contact.ACW_SECONDS, "After-contact work (wrap-up) time.", "52"),
    _duration(Contact.FIRST_REPLY_SECONDS, "Time to the first reply (chat, e-mail).", ""),
    _duration(Contact.RESOLUTION_SECONDS, "Time from opening to resolution.", "312"),
    Field(Contact.RESOLVED_FIRST_CONTACT, "boolean", False, "Agent coded the contact as resolved first time.",
          example="Y"),
    Field(Contact.TRANSFERRED, "boolean", False, "Contact was transferred.", example="N"),
    Field(Contact.CALLBACK_PROMISED, "boolean", False, "Agent promised a call-back.", example="N"),
    Field(Contact.CALLBACK_COMPLETED, "boolean", False, "The promised call-back happened.", example=""),
    Field(Contact.REOPENED, "boolean", False, "Case was reopened.", example="N"),
    Field(Contact.REASON, "text", False, "Contact reason code.", example="billing"),
    Field(Contact.CSAT, "number", False, "Customer satisfaction answer, 1..5.", min=1.0, max=5.0,
          example="4"),
    Field(Contact.NPS, "number", False, "Likelihood to recommend, 0..10.", min=0.0, max=10.0, example=""),
    Field(Contact.CES, "number", False, "Customer effort score, 1..7.", min=1.0, max=7.0, example=""),
    Field(Contact.COMPLAINT, "boolean", False, "The contact is (or led to) a complaint.", example="N"),
    Field(Contact.SALE, "boolean", False, "The contact produced a sale.", example=""),
))

SURVEY = TableSpec("survey", "one row per staff respondent", (
    Field(Survey.RESPONDENT_ID, "text", True, "Anonymous respondent id (never a name).", nullable=False,
          unique=True, example="R001"),
    Field(Survey.ROLE, "choice", True, "agent, team_lead or manager.", nullable=False,
          allowed=Survey.ROLES, example="agent"),
    Field(Survey.TEAM, "text", False, "Team (must exist among the contacts' teams).", example="Atlas"),
    Field(Survey.SITE, "text", False, "Site.", example="Leeds"),
    Field(Survey.TENURE_BAND, "text", False, "Tenure band, e.g. <1y, 1-3y, 3y+.", example="1-3y"),
), dynamic=f"<metric_id>{SURVEY_SEP}<item> answers 1..5 (items: {', '.join(ITEM_BANK)}); "
           f"<metric_id>{SURVEY_SEP}{Survey.COMMENT} free text")

OUTCOMES = TableSpec("outcomes", "one row per team and week (or month)", (
    Field(Outcome.PERIOD, "date", True, "Start date of the week or month.", nullable=False,
          example="2026-06-29"),
    Field(Outcome.TEAM, "text", False, "Team (blank = whole centre).", example="Atlas"),
), optional_table=True, dynamic="any other column: a numeric outcome measure (churn_rate, complaints, ...)")

TABLES = {t.name: t for t in (REGISTER, CONTACTS, SURVEY, OUTCOMES)}
TABLE_ORDER = ("register", "contacts", "survey", "outcomes")

_SURVEY_COL = re.compile(rf"^(?P<metric>.+?){re.escape(SURVEY_SEP)}(?P<item>[A-Za-z0-9_]+)$")


def survey_column_parts(name: str) -> tuple[str, str] | None:
    """Split a survey column ``<metric_id>__<item>`` into (metric_id, item); None if it is not one."""
    m = _SURVEY_COL.match(name)
    return (m.group("metric"), m.group("item")) if m else None


def is_survey_item_column(name: str) -> bool:
    """True for ``<metric_id>__<item>`` where item is in the item bank."""
    parts = survey_column_parts(name)
    return bool(parts) and parts[1] in ITEM_BANK


def pandera_schema(spec: TableSpec, columns):
    """Build the pandera schema checking a parsed table's values against ``spec``.

    Parsing (text -> number, date, ...) happens before, in :mod:`audit_lib.io`, because it
    depends on the client's formats; this schema checks what the declaration says about
    values: blanks where not allowed, uniqueness, allowed values and ranges. Only the
    columns present in ``columns`` are included (missing columns are reported separately).

    Parameters
    ----------
    spec : TableSpec
    columns : iterable of str
        Columns of the parsed DataFrame.
    """
    import pandera.pandas as pa

    cols = {}
    for name in columns:
        f = spec.by_name.get(name)
        if f is None:
            continue
        checks = []
        if f.allowed:
            checks.append(pa.Check.isin(list(f.allowed), name="invalid_value"))
        if f.min is not None and f.max is not None:
            checks.append(pa.Check.in_range(f.min, f.max, name="out_of_range"))
        elif f.min is not None:
            checks.append(pa.Check.ge(f.min, name="out_of_range"))
        cols[name] = pa.Column(nullable=f.nullable, unique=f.unique, checks=checks, required=False,
                               coerce=False)
    return pa.DataFrameSchema(cols, strict=False, name=spec.name)
