"""Canonical column names, defined once.

Every module refers to columns through these namespaces instead of retyping
string literals, so a rename happens in one place. A client's own column names
are mapped onto these in the params file (``inputs.<table>.columns``).
"""
from __future__ import annotations

__all__ = [
    "Register", "Contact", "Derived", "Survey", "Outcome", "Finding",
    "Prepared", "SURVEY_SEP", "ITEM_BANK", "REVERSE_ITEMS",
]


class Register:
    """Metric register: one row per metric the client tracks."""
    METRIC_ID = "metric_id"
    NAME = "name"
    KPI = "kpi"                      # id from the KPI library, or "custom"
    PURPOSE = "purpose"
    OWNER = "owner"
    TARGET = "target"
    DIRECTION = "direction"          # "higher" | "lower" (better direction of the target)
    DEFINITION = "definition"
    INCENTIVE_LINK = "incentive_link"  # none | recognition | bonus | discipline
    AUDIENCE = "audience"
    COUNTERBALANCE = "counterbalance"  # another metric_id
    REVIEW_DATE = "review_date"
    DATA_COLUMN = "data_column"

    REQUIRED = (METRIC_ID, NAME, KPI, PURPOSE, OWNER, TARGET, DIRECTION)
    OPTIONAL = (DEFINITION, INCENTIVE_LINK, AUDIENCE, COUNTERBALANCE, REVIEW_DATE, DATA_COLUMN)


class Contact:
    """Contacts export: one row per contact (call, chat, e-mail)."""
    CONTACT_ID = "contact_id"
    AGENT_ID = "agent_id"
    STARTED_AT = "started_at"
    CHANNEL = "channel"              # voice | chat | email (lower-cased on load)
    HANDLE_SECONDS = "handle_seconds"
    CUSTOMER_ID = "customer_id"
    TEAM = "team"
    SITE = "site"
    QUEUE_SECONDS = "queue_seconds"
    ABANDONED = "abandoned"
    TALK_SECONDS = "talk_seconds"
    HOLD_SECONDS = "hold_seconds"
    ACW_SECONDS = "acw_seconds"
    FIRST_REPLY_SECONDS = "first_reply_seconds"
    RESOLUTION_SECONDS = "resolution_seconds"
    RESOLVED_FIRST_CONTACT = "resolved_first_contact"   # agent-coded
    TRANSFERRED = "transferred"
    CALLBACK_PROMISED = "callback_promised"
    CALLBACK_COMPLETED = "callback_completed"
    REOPENED = "reopened"
    REASON = "reason"
    CSAT = "csat"                    # 1-5
    NPS = "nps"                      # 0-10
    CES = "ces"                      # 1-7
    COMPLAINT = "complaint"
    SALE = "sale"

    REQUIRED = (CONTACT_ID, AGENT_ID, STARTED_AT, CHANNEL, HANDLE_SECONDS)
    DURATIONS = (HANDLE_SECONDS, QUEUE_SECONDS, TALK_SECONDS, HOLD_SECONDS, ACW_SECONDS,
                 FIRST_REPLY_SECONDS, RESOLUTION_SECONDS)
    BOOLEANS = (ABANDONED, RESOLVED_FIRST_CONTACT, TRANSFERRED, CALLBACK_PROMISED,
                CALLBACK_COMPLETED, REOPENED, COMPLAINT, SALE)
    SCORES = (CSAT, NPS, CES)
    TEXT = (CONTACT_ID, AGENT_ID, CHANNEL, CUSTOMER_ID, TEAM, SITE, REASON)
    OPTIONAL = (CUSTOMER_ID, TEAM, SITE, QUEUE_SECONDS, ABANDONED, TALK_SECONDS, HOLD_SECONDS,
                ACW_SECONDS, FIRST_REPLY_SECONDS, RESOLUTION_SECONDS, RESOLVED_FIRST_CONTACT,
                TRANSFERRED, CALLBACK_PROMISED, CALLBACK_COMPLETED, REOPENED, REASON, CSAT, NPS,
                CES, COMPLAINT, SALE)


class Derived:
    """Per-contact columns that ``audit_lib.prepare`` derives before aggregating.

    KPI formulas in the KPI library may use these as well as Contact columns.
    """
    WEEK = "week"                    # Monday (date) of the ISO week of started_at
    DATE = "date"                    # calendar date of started_at
    FOLLOWED_BY_REPEAT = "followed_by_repeat"      # same customer contacts again within the window (NULL without customer_id)
    FOLLOWED_BY_COMPLAINT = "followed_by_complaint"  # a later contact of the same customer within the window is a complaint
    IS_SHORT = "is_short"            # voice contact with handle_seconds < thresholds.short_contact_seconds
    ANSWERED_IN_TIME = "answered_in_time"  # not abandoned and queue_seconds <= thresholds.service_level_seconds


class Survey:
    """Staff perception survey (wide): one row per respondent.

    Item columns are ``<metric_id>__<item_id>`` (see ``ITEM_BANK``), comments
    ``<metric_id>__comment``. Answers are integers 1..5 after import.
    """
    RESPONDENT_ID = "respondent_id"
    ROLE = "role"                    # agent | team_lead | manager
    TEAM = "team"
    SITE = "site"
    TENURE_BAND = "tenure_band"
    COMMENT = "comment"

    REQUIRED = (RESPONDENT_ID, ROLE)
    OPTIONAL = (TEAM, SITE, TENURE_BAND)
    ROLES = ("agent", "team_lead", "manager")
    STAFF_ROLES = ("agent",)                    # "staff" in the staff-vs-manager gap
    MANAGER_ROLES = ("team_lead", "manager")


SURVEY_SEP = "__"

# Item bank: item_id -> statement ({metric} is replaced by the metric name).
ITEM_BANK = {
    "understand": "I understand why we measure {metric}.",
    "influence": "I can influence {metric} through my own work.",
    "fair": "{metric} is a fair reflection of my work.",
    "serves_customers": "Focusing on {metric} helps me serve customers well.",
    "pressure": "I feel pressure to hit {metric} even when it is not right for the customer.",
    "workaround": "I have seen {metric} worked around to hit the target.",
    "keep": "We should keep measuring {metric}.",
}
REVERSE_ITEMS = ("pressure", "workaround")


class Outcome:
    """Optional outcomes file: team-week or month rows with outcome columns."""
    PERIOD = "period"                # date (week start or month start)
    TEAM = "team"
    REQUIRED = (PERIOD,)


class Finding:
    """The one Findings table every lens returns (see audit_lib.findings)."""
    LENS = "lens"
    METRIC_ID = "metric_id"
    CHECK = "check"
    SCOPE = "scope"
    SEVERITY = "severity"
    LABEL = "label"
    VALUE = "value"
    THRESHOLD = "threshold"
    CI_LOW = "ci_low"
    CI_HIGH = "ci_high"
    N = "n"
    EVIDENCE = "evidence"
    DETAIL = "detail"

    ALL = (LENS, METRIC_ID, CHECK, SCOPE, SEVERITY, LABEL, VALUE, THRESHOLD, CI_LOW, CI_HIGH,
           N, EVIDENCE, DETAIL)
    KEY = (LENS, METRIC_ID, CHECK, SCOPE)


class Prepared:
    """Names of the compact tables ``prepare`` writes to ``<run_dir>/prepared/<name>.parquet``."""
    AGENT_WEEK = "agent_week"
    TEAM_WEEK = "team_week"
    CENTRE_WEEK = "centre_week"
    TEAM_DAY = "team_day"
    HISTOGRAMS = "histograms"
    AGENT_SIGNATURES = "agent_signatures"
    CALLBACKS = "callbacks"
    FIRST_REPLIES = "first_replies"
    COVERAGE = "coverage"
