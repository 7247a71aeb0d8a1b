"""The register lens: why is each metric measured, and does that reason hold up?

Pure functions over the metric register (and, optionally, the compact KPI tables) that
return rows of the one Findings table (lens ``register``). Every rule is simple enough to
explain to a client, and documented here.

Purpose rules (text of the ``purpose`` column)
    The purpose is split into words. Filler words (:data:`STOP_WORDS`), measuring verbs
    (:data:`MEASURE_WORDS`: "measure", "track", "monitor"...), target words
    (:data:`TARGET_WORDS`: "keep", "under", "below", "target", units...) and the metric's
    own name (its id, name, and the KPI library's name and aliases) are removed. Then:

    * ``purpose_missing`` (high): blank, whitespace only, or a placeholder
      (:data:`PLACEHOLDERS`: "n/a", "tbc", "-"...).
    * ``purpose_only_number`` (medium): nothing is left and the text has a number or a
      target word ("Keep AHT under 300s", "AHT below target").
    * ``purpose_restates_metric`` (medium): nothing is left otherwise ("To measure AHT").
    * ``purpose_no_outcome`` (medium): words are left but none starts with an outcome stem
      of :data:`OUTCOME_STEMS` (customers, complaints, waiting, cost, staff wellbeing...).

Governance rules
    * ``owner_missing`` (medium); ``direction_missing`` (medium, also for a value other than
      higher/lower); ``target_missing`` (medium when the metric is tied to an incentive, low
      otherwise: a metric watched without a target invites less gaming, Seddon 2003).
    * ``target_direction_conflict`` (medium): the register's direction is the opposite of the
      KPI library's better direction.
    * ``target_implausible`` (medium; high when impossible): a share outside 0..1 (typed as a
      percentage?), NPS outside -100..100, a score outside its scale, a non-positive time or
      cost; or a target more than :data:`IMPLAUSIBLE_RATIO` times off the current value
      (times, scores, costs), more than :data:`IMPLAUSIBLE_ODDS_RATIO` times off in odds
      (shares, so that 2 % against 6 % is not "3× off" while 60 % against 99 % is), or more than
      :data:`IMPLAUSIBLE_POINTS` NPS points off. Both directions count: a target far beyond
      reach, and one so loose it is always met.
    * ``surrogation_risk``: bonus or discipline high, recognition medium, none ok
      (Harris & Tayler 2019: people come to treat the metric as the goal).
    * ``review_stale`` (medium): last review older than ``thresholds.review_stale_days``
      before ``as_of``; low when no review date is recorded.

Pairing rules
    * ``counterbalance_missing``: no counterbalance naming another registered metric while
      the metric has a target or an incentive link (high with bonus/discipline, else
      medium); low when it has neither. A pair that is not one of the KPI library's natural
      counterbalances is reported as ``low`` with the natural ones suggested.
    * ``counterbalance_unknown`` (medium): the counterbalance names a metric id that is not
      in the register (or the metric itself).
    * ``contradictory_pair`` (medium, high when both are tied to bonus/discipline): two
      targeted metrics whose KPIs pull against each other (``tensions`` in the KPI library,
      e.g. first reply time against resolution time), and neither has a counterbalance in
      the register; ``info`` when at least one is paired. Also (medium, whatever the pairing)
      two metrics of the same KPI targeted in opposite directions. One row per metric listing
      its partners.
    * ``duplicate_metric`` (medium): a later row computing the same library KPI as an
      earlier one (for custom metrics: the same data column or the same name).
    * ``orphan_not_computable``: the data cannot compute the metric (medium when the KPI is
      computable from contacts but the export lacks its columns or the KPI id is unknown;
      low for workforce/finance KPIs and custom metrics). ``orphan_unregistered_kpi``
      (info): a KPI the data can compute that nobody registered.

Current value
    ``current_vs_target``: value over the period against the target, overall and per team,
    with the share of weeks on target. info when met, low when missed, medium only when the
    target was met in no week by the centre or by any team (unreachable in practice).
"""
from __future__ import annotations

import difflib
import math
import re
from datetime import date, datetime
from typing import Iterable

import numpy as np
import pandas as pd

from .columns import Contact as C
from .columns import Finding as F
from .columns import Register as R
from .errors import InputDataError
from .findings import empty_findings, finding, make_findings
from .kpis import CUSTOM_KPI, KpiLibrary
from .settings import Thresholds

__all__ = [
    "LENS", "STOP_WORDS", "MEASURE_WORDS", "TARGET_WORDS", "PLACEHOLDERS", "OUTCOME_STEMS",
    "IMPLAUSIBLE_RATIO", "IMPLAUSIBLE_ODDS_RATIO", "IMPLAUSIBLE_POINTS", "PAY_LINKS", "INCENTIVES",
    "TENSION_CODES", "CHECK_TITLES",
    "normalise_register", "purpose_assessment", "parse_counterbalance", "overall_values",
    "check_register", "current_vs_target", "audit_findings", "register_overview", "flagged_table",
    "tension_matrix", "target_tracking", "format_value", "current_table", "formula_variants",
    "flag_summary",
]

LENS = "register"

#: filler words ignored when reading a purpose
STOP_WORDS = frozenset("""
a an the to of for and or in on at by with our we us is are be been being it its this that these
those so as from per each every all how what whether which their they there i you your my was were
has have had do does did can could will would should must may might into about then up down out
very just also make makes making sure such any some no not only overall team teams centre center
organisation organization company business department
""".split())

#: verbs and nouns that only say "we measure it"
MEASURE_WORDS = frozenset("""
measure measures measured measuring measurement track tracks tracked tracking monitor monitors
monitored monitoring report reports reported reporting record records recorded recording know
knowing see seeing check checking calculate calculated calculating count counted counting capture
show shows view understand understanding follow following watch watching observe kpi kpis metric
metrics figure figures number numbers data level levels score scores rate rates value values
stat stats statistic statistics dashboard average avg mean
""".split())

#: words of a bare target statement ("keep X under 300s"), units included
TARGET_WORDS = frozenset("""
keep keeps keeping under below above over less more than within hit hits hitting meet meets met meeting
achieve achieved attain attained exceeded
achieving reach reaching stay staying maintain maintaining target targets targeted goal goals
least most max maximum min minimum get getting bring beat beating exceed exceeding ensure ensuring
reduce reducing reduced increase increasing increased improve improving improved lower lowering
higher raise raising drive push pushing down up better best good great high low sla slas
percent percentage pct s sec secs second seconds mins minute minutes hour hours hr hrs h day days
week weeks point points
""".split())

#: values of ``purpose`` that mean "not stated"
PLACEHOLDERS = frozenset({"", "-", "--", "n/a", "na", "none", "tbc", "tbd", "todo", "?", "unknown",
                          "nan", "null", ".", "..."})

#: stems of words that name a customer or organisational outcome (prefix match on each word)
OUTCOME_STEMS = (
    # the people served
    "customer", "client", "caller", "citizen", "patient", "member", "user", "resident", "tenant",
    "consumer", "public", "household", "people",
    # what they experience
    "satisf", "dissatisf", "experience", "happ", "unhapp", "loyal", "recommend", "trust",
    "reputation", "churn", "retention", "retain", "cancel", "leave", "complain", "complaint",
    "escalat", "repeat", "recontact", "again", "resolv", "resolut", "fix", "solv", "answer", "wait",
    "queue", "delay", "quick", "prompt", "timely", "abandon", "effort", "easy", "ease", "hassle",
    "promise", "commitment", "vulnerab", "harm", "fair",
    # the organisation
    "cost", "budget", "efficien", "afford", "spend", "money", "revenue", "sale", "sell", "profit",
    "income", "capacity", "staffing", "forecast", "demand", "workload", "wellbeing", "well-being",
    "burnout", "morale", "safety", "safe", "quality", "accura", "correct", "complian", "regulat",
    "legal", "risk", "outcome",
)

#: target more than this many times off the current value: implausible (times, scores, costs)
IMPLAUSIBLE_RATIO = 3.0
#: same for shares, measured on the odds p / (1 - p)
IMPLAUSIBLE_ODDS_RATIO = 10.0
#: same for NPS, in points
IMPLAUSIBLE_POINTS = 50.0
#: incentive links that tie the metric to pay or sanctions
PAY_LINKS = ("bonus", "discipline")
INCENTIVES = ("none", "recognition", "bonus", "discipline")
_SCALES = {"score": (1.0, 7.0), "points": (-100.0, 100.0), "share": (0.0, 1.0)}

#: tension matrix cell codes and their meaning
TENSION_CODES = {
    0: "no link",
    1: "named as counter-measure",
    2: "pull apart, paired together",
    3: "pull apart, one or both paired",
    4: "pull apart, neither paired",
}

#: plain-language title of each register check
CHECK_TITLES = {
    "purpose_missing": "No purpose stated",
    "purpose_restates_metric": "Purpose only restates the metric",
    "purpose_only_number": "Purpose is only a number to hit",
    "purpose_no_outcome": "Purpose names no customer or business outcome",
    "owner_missing": "No owner",
    "target_missing": "No target",
    "direction_missing": "No direction (higher or lower is better)",
    "target_direction_conflict": "Target points the wrong way",
    "target_implausible": "Target implausible against the current value",
    "surrogation_risk": "Tied to pay, discipline or recognition",
    "counterbalance_missing": "No counter-measure",
    "counterbalance_unknown": "Counter-measure is not in the register",
    "contradictory_pair": "Pulls against another targeted metric, neither paired",
    "duplicate_metric": "Duplicates another metric",
    "orphan_not_computable": "Cannot be computed from the data",
    "orphan_unregistered_kpi": "Computable but not registered",
    "review_stale": "Review overdue",
    "current_vs_target": "Current value against target",
}

_WORD = re.compile(r"\d+(?:[.,]\d+)?%?|[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)?%?$")
_CB_SPLIT = re.compile(r"[;,|]")


# ----------------------------------------------------------------------------- helpers
def _blank(x) -> bool:
    if x is None:
        return True
    if isinstance(x, float) and math.isnan(x):
        return True
    try:
        if pd.isna(x):
            return True
    except (TypeError, ValueError):
        pass
    return not str(x).strip()


def _text(x) -> str:
    return "" if _blank(x) else str(x).strip()


def _number(x) -> float:
    if _blank(x):
        return math.nan
    if isinstance(x, str):
        s = x.strip().replace(",", "")
        pct = s.endswith("%")
        try:
            v = float(s.rstrip("%").strip())
        except ValueError:
            return math.nan
        return v / 100 if pct else v
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _quote(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return "“" + (text if len(text) <= limit else text[: limit - 1] + "…") + "”"


def format_value(value: float, unit: str) -> str:
    """A KPI value in its unit, for people: ``360 s``, ``48.0 h``, ``80.0 %``, ``+12``.

    Examples
    --------
    >>> format_value(0.8, "share"), format_value(172800, "seconds"), format_value(12.5, "points")
    ('80.0 %', '48.0 h', '+12.5')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit == "share":
        return f"{100 * value:.1f} %"
    if unit == "seconds":
        if abs(value) >= 3 * 3600:
            return f"{value / 3600:.1f} h"
        if abs(value) >= 600:
            return f"{value / 60:.1f} min"
        return f"{value:.0f} s"
    if unit == "points":
        return f"{value:+.1f}"
    if unit == "currency":
        return f"{value:,.2f}"
    return f"{value:.2f}"


def normalise_register(register: pd.DataFrame) -> pd.DataFrame:
    """A clean copy of the register: stripped text, lower-case ids/choices, numeric targets.

    Raises
    ------
    InputDataError
        When a required column is missing or a metric id is blank or repeated.
    """
    missing = [c for c in (R.METRIC_ID, R.KPI) if c not in register.columns]
    if missing:
        raise InputDataError(f"metric register: missing column(s) {missing}; the register needs "
                             f"{', '.join(R.REQUIRED)} (optional: {', '.join(R.OPTIONAL)})")
    reg = register.copy().reset_index(drop=True)
    for col in R.REQUIRED + R.OPTIONAL:
        if col not in reg.columns:
            reg[col] = np.nan if col == R.TARGET else ""
    for col in (R.METRIC_ID, R.NAME, R.PURPOSE, R.OWNER, R.DEFINITION, R.AUDIENCE, R.COUNTERBALANCE,
                R.DATA_COLUMN):
        reg[col] = [_text(v) for v in reg[col]]
    for col in (R.KPI, R.DIRECTION, R.INCENTIVE_LINK):
        reg[col] = [_text(v).lower() for v in reg[col]]
    reg[R.TARGET] = [_number(v) for v in reg[R.TARGET]]
    ids = reg[R.METRIC_ID]
    blank = [i + 2 for i, v in enumerate(ids) if not v]
    if blank:
        raise InputDataError(f"metric register: blank metric_id in row(s) {blank} (row 1 is the header); "
                             "give every metric a short unique id")
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        rows = {m: [i + 2 for i in dup.index[dup == m]] for m in sorted(set(dup))}
        raise InputDataError(f"metric register: metric_id repeated: {rows} (rows, header = row 1); "
                             "metric ids must be unique")
    return reg


def _review_dates(reg: pd.DataFrame) -> list:
    out = []
    for i, v in enumerate(reg[R.REVIEW_DATE]):
        if _blank(v):
            out.append(None)
            continue
        if isinstance(v, datetime):
            out.append(v.date())
            continue
        if isinstance(v, date):
            out.append(v)
            continue
        ts = pd.to_datetime(str(v).strip(), errors="coerce")
        if pd.isna(ts):
            raise InputDataError(f"metric register row {i + 2} (metric {reg.at[i, R.METRIC_ID]}), column "
                                 f"review_date: {v!r} is not a date; write it as YYYY-MM-DD")
        out.append(ts.date())
    return out


def _words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def _metric_vocabulary(row, library: KpiLibrary) -> set[str]:
    names = [row[R.METRIC_ID], row[R.NAME]]
    if row[R.KPI] in library:
        names += list(library.get(row[R.KPI]).names)
    vocab = set()
    for name in names:
        vocab.update(_words(str(name).replace("_", " ")))
        vocab.add(str(name).lower())
    return vocab


def purpose_assessment(purpose, vocabulary: Iterable[str] = ()) -> tuple[str, list[str]]:
    """Classify a purpose text: ``(verdict, leftover words)``.

    ``verdict`` is one of ``missing``, ``only_number``, ``restates``, ``no_outcome``, ``ok``
    (rules in the module docstring); ``vocabulary`` holds the words of the metric's own name.

    Examples
    --------
    >>> purpose_assessment("To measure AHT", {"aht", "average", "handle", "time"})[0]
    'restates'
    >>> purpose_assessment("Keep AHT under 300s", {"aht"})[0]
    'only_number'
    >>> purpose_assessment("So customers are not kept waiting", {"aht"})[0]
    'ok'
    """
    text = _text(purpose)
    if text.lower().strip(" .") in PLACEHOLDERS or not _words(text):
        return "missing", []
    words = _words(text)
    vocab = {v.lower() for v in vocabulary}
    has_number = any(_NUMBER.match(w) for w in words)
    has_target_word = any(w in TARGET_WORDS for w in words)
    left = [w for w in words if not _NUMBER.match(w) and w not in STOP_WORDS and w not in MEASURE_WORDS
            and w not in TARGET_WORDS and w not in vocab]
    if not left:
        return ("only_number" if has_number or has_target_word else "restates"), []
    if not any(w.startswith(OUTCOME_STEMS) for w in left):
        return "no_outcome", left
    return "ok", left


def parse_counterbalance(value) -> list[str]:
    """Metric ids named in a ``counterbalance`` cell (``"REPEAT; CSAT"`` → two ids)."""
    return [p.strip() for p in _CB_SPLIT.split(_text(value)) if p.strip()]


def _pool_arrays(df: pd.DataFrame, kpi: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A ratio KPI's values and, when present, their counts (``<kpi>__n``) as float arrays."""
    vals = pd.to_numeric(df[kpi], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    n_col = kpi + "__n"
    n = pd.to_numeric(df[n_col], errors="coerce").fillna(0).to_numpy() if n_col in df.columns else None
    return vals, n


def _pool(vals: np.ndarray, n: np.ndarray | None) -> tuple[float, int]:
    """Exact pooled value Σ value·n / Σ n (a plain mean without counts) and the n behind it."""
    if n is None:
        v = vals[~np.isnan(vals)]
        return (float(v.mean()) if len(v) else math.nan), int(len(v))
    ok = ~np.isnan(vals) & (n > 0)
    total = float(n[ok].sum())
    if total <= 0:
        return math.nan, 0
    return float((vals[ok] * n[ok]).sum() / total), int(total)


def _weighted(df: pd.DataFrame, kpi: str) -> tuple[float, int]:
    """Exact pooled value of a ratio KPI from group rows: Σ value·n / Σ n."""
    if kpi not in df.columns:
        return math.nan, 0
    return _pool(*_pool_arrays(df, kpi))


def _weighted_by(df: pd.DataFrame, key: str, kpi: str) -> list[float]:
    """:func:`_weighted`'s value for each group of ``key`` (sorted), converting the columns once
    instead of a dozen pandas operations per group (60 agents x every metric)."""
    vals, n = _pool_arrays(df, kpi)
    return [_pool(vals[rows], None if n is None else n[rows])[0]
            for rows in df.groupby(key, sort=True).indices.values()]


def overall_values(kpi_values: pd.DataFrame | None) -> dict[str, tuple[float, int]]:
    """``{kpi: (value, n)}`` pooled over every row of a KPI table (one row, or centre_week)."""
    if kpi_values is None or not len(kpi_values):
        return {}
    kpis = [c for c in kpi_values.columns if f"{c}__n" in kpi_values.columns]
    return {k: _weighted(kpi_values, k) for k in kpis}


def _met(value: float, target: float, direction: str) -> bool:
    return value <= target if direction == "lower" else value >= target


def _fmt(value, kpi, library) -> str:
    unit = library.get(kpi).unit if kpi in library else ""
    return format_value(value, unit) if unit else ("—" if _blank(value) else f"{value:g}")


# ----------------------------------------------------------------------------- checks
def _purpose_rows(row, library, out):
    m = row[R.METRIC_ID]
    verdict, left = purpose_assessment(row[R.PURPOSE], _metric_vocabulary(row, library))
    text = row[R.PURPOSE]
    if verdict == "missing":
        shown = f" (it says {_quote(text)})" if text else ""
        out.append(finding(LENS, m, "purpose_missing", "high", label="missing",
                           evidence=f"purpose = {_quote(text)}",
                           detail=f"The register gives no reason for measuring {row[R.NAME] or m}{shown}. "
                                  "Without a stated purpose nobody can tell whether the metric still "
                                  "serves it, and the number itself tends to become the goal."))
        return
    out.append(finding(LENS, m, "purpose_missing", "ok", evidence=f"purpose = {_quote(text)}",
                       detail="A purpose is stated."))
    sev = "medium" if verdict == "restates" else "ok"
    out.append(finding(LENS, m, "purpose_restates_metric", sev, label=verdict if sev != "ok" else "",
                       evidence=f"purpose = {_quote(text)}",
                       detail=(f"The purpose {_quote(text)} only says that the metric is measured, not "
                               "why: it names no customer or business outcome the metric should improve."
                               if sev != "ok" else "The purpose says more than the metric's name.")))
    sev = "medium" if verdict == "only_number" else "ok"
    out.append(finding(LENS, m, "purpose_only_number", sev, label=verdict if sev != "ok" else "",
                       evidence=f"purpose = {_quote(text)}",
                       detail=(f"The purpose {_quote(text)} is only a target for the metric itself. A "
                               "number to hit is not a reason: say which outcome for customers or the "
                               "organisation hitting it should bring." if sev != "ok"
                               else "The purpose is more than a number to hit.")))
    if verdict in ("restates", "only_number"):
        return
    sev = "medium" if verdict == "no_outcome" else "ok"
    out.append(finding(LENS, m, "purpose_no_outcome", sev, label=verdict if sev != "ok" else "",
                       evidence=f"purpose = {_quote(text)}; words read: {', '.join(left)}",
                       detail=(f"The purpose {_quote(text)} does not name a customer or organisational "
                               "outcome (for example customers' waiting, complaints, repeat contacts, "
                               "cost or staff wellbeing), so there is nothing to check the metric "
                               "against." if sev != "ok" else "The purpose names an outcome the metric "
                               "should serve.")))


def _governance_rows(row, library, out):
    m, kpi, name = row[R.METRIC_ID], row[R.KPI], row[R.NAME] or row[R.METRIC_ID]
    incentive = row[R.INCENTIVE_LINK]
    # owner
    if row[R.OWNER]:
        out.append(finding(LENS, m, "owner_missing", "ok", evidence=f"owner = {_quote(row[R.OWNER])}",
                           detail="An owner is named."))
    else:
        out.append(finding(LENS, m, "owner_missing", "medium", label="missing", evidence="owner is blank",
                           detail=f"Nobody is named as accountable for {name}: no one answers for "
                                  "whether it is still measured for a good reason."))
    # direction
    direction = row[R.DIRECTION]
    if direction in ("higher", "lower"):
        out.append(finding(LENS, m, "direction_missing", "ok", label=direction,
                           evidence=f"direction = {direction}", detail="The register says which way is better."))
    else:
        shown = f"{_quote(direction)} is not 'higher' or 'lower'" if direction else "direction is blank"
        out.append(finding(LENS, m, "direction_missing", "medium", label="missing", evidence=shown,
                           detail=f"The register does not say whether higher or lower is better for {name} "
                                  f"({shown}), so the target can be read both ways."))
    # target
    target = row[R.TARGET]
    if math.isnan(target):
        linked = incentive not in ("", "none")
        sev = "medium" if linked else "low"
        why = (f"It is tied to {incentive}, so people are rewarded or judged against a standard "
               "nobody wrote down." if linked else
               "Without a target it works as a trend to watch, which invites less gaming, but the "
               "register should say so.")
        out.append(finding(LENS, m, "target_missing", sev, label="missing",
                           evidence=f"target is blank; incentive_link = {incentive or 'not recorded'}",
                           detail=f"No target is recorded for {name}. {why}"))
    else:
        out.append(finding(LENS, m, "target_missing", "ok", value=target, threshold=target,
                           evidence=f"target = {_fmt(target, kpi, library)}", detail="A target is recorded."))
    # direction against the library
    if kpi in library and direction in ("higher", "lower"):
        better = library.better(kpi)
        if direction != better:
            out.append(finding(LENS, m, "target_direction_conflict", "medium", label=direction,
                               evidence=f"register direction = {direction}; {library.get(kpi).name}: "
                                        f"{better} is better",
                               detail=f"The register says {direction} is better for {name}, but for "
                                      f"{library.get(kpi).name} {better} values are better. Either the "
                                      "direction was entered the wrong way round, or the metric rewards "
                                      "the opposite of what the KPI is meant to achieve."))
        else:
            out.append(finding(LENS, m, "target_direction_conflict", "ok", label=direction,
                               evidence=f"register direction = {direction}; library: {better} is better",
                               detail="The target points the same way as the KPI's better direction."))
    # surrogation
    if incentive in PAY_LINKS:
        out.append(finding(LENS, m, "surrogation_risk", "high", label=incentive,
                           evidence=f"incentive_link = {incentive}",
                           detail=f"{name} is tied to {incentive}. When pay or sanctions hang on a number, "
                                  "people come to treat the number as the goal and find ways to move it "
                                  "that do not help customers (surrogation; Harris & Tayler 2019). "
                                  "Loosen the link, judge it alongside its counter-measure, and restate "
                                  "the outcome it stands for."))
    elif incentive == "recognition":
        out.append(finding(LENS, m, "surrogation_risk", "medium", label=incentive,
                           evidence="incentive_link = recognition",
                           detail=f"{name} feeds recognition (league tables, awards). Public ranking is a "
                                  "softer incentive than pay but still invites chasing the number "
                                  "(Harris & Tayler 2019); show it with its counter-measure."))
    elif incentive == "none":
        out.append(finding(LENS, m, "surrogation_risk", "ok", label="none", evidence="incentive_link = none",
                           detail="Not tied to pay, discipline or recognition."))
    else:
        shown = f"{_quote(incentive)} is not one of {', '.join(INCENTIVES)}" if incentive else "not recorded"
        out.append(finding(LENS, m, "surrogation_risk", "info", label="not_recorded",
                           evidence=f"incentive_link {shown}",
                           detail="The register does not say whether this metric is tied to pay, "
                                  "discipline or recognition; ask, because that decides how hard "
                                  "people will push it."))


def _pairing_rows(reg, library, out):
    ids = list(reg[R.METRIC_ID])
    known = set(ids)
    kpi_of = dict(zip(reg[R.METRIC_ID], reg[R.KPI]))
    paired = {}
    for _, row in reg.iterrows():
        m = row[R.METRIC_ID]
        refs = parse_counterbalance(row[R.COUNTERBALANCE])
        valid = [r for r in refs if r in known and r != m]
        paired[m] = valid
        unknown = [r for r in refs if r not in known or r == m]
        name = row[R.NAME] or m
        if refs:
            if unknown:
                what = "; ".join(f"{r} (the metric itself)" if r == m else r for r in unknown)
                hints = [h for r in unknown if r != m for h in difflib.get_close_matches(r, ids, n=1)]
                hint = f" Did you mean {', '.join(hints)}?" if hints else ""
                out.append(finding(LENS, m, "counterbalance_unknown", "medium", label=", ".join(unknown),
                                   evidence=f"counterbalance = {_quote(row[R.COUNTERBALANCE])}; register ids: "
                                            f"{', '.join(ids)}",
                                   detail=f"The counter-measure named for {name} ({what}) is not a metric "
                                          f"in the register, so nobody is actually watching it.{hint}"))
            else:
                out.append(finding(LENS, m, "counterbalance_unknown", "ok", label=", ".join(refs),
                                   evidence=f"counterbalance = {', '.join(refs)}",
                                   detail="The counter-measure is a registered metric."))
        incentive = row[R.INCENTIVE_LINK]
        has_target = not math.isnan(row[R.TARGET])
        linked = incentive not in ("", "none")
        kpi = row[R.KPI]
        natural = library.counterbalances(kpi) if kpi in library else []
        natural_txt = ", ".join(library.get(k).name for k in natural)
        if not valid:
            if incentive in PAY_LINKS:
                sev = "high"
            elif linked or has_target:
                sev = "medium"
            else:
                sev = "low"
            why = ("It is tied to " + incentive + ", so the pressure to move it is strong."
                   if linked else "It has a target." if has_target else
                   "It has no target or incentive, so the risk is lower.")
            suggest = f" Natural counter-measures: {natural_txt}." if natural_txt else ""
            out.append(finding(LENS, m, "counterbalance_missing", sev, label="missing",
                               evidence=f"counterbalance = {_quote(row[R.COUNTERBALANCE]) if refs else 'none named'}; target = "
                                        f"{'set' if has_target else 'none'}; incentive_link = "
                                        f"{incentive or 'not recorded'}",
                               detail=f"{name} has no counter-measure: no paired metric would show the harm "
                                      f"that chasing it can do (Grove 1983's paired indicators). {why}"
                                      f"{suggest}"))
        elif kpi in library and not any(kpi_of.get(v) in natural for v in valid):
            out.append(finding(LENS, m, "counterbalance_missing", "low", label="unusual",
                               evidence=f"counterbalance = {', '.join(valid)} "
                                        f"({', '.join(kpi_of.get(v, '') for v in valid)})",
                               detail=f"{name} is paired with {', '.join(valid)}, which is not one of its "
                                      f"natural counter-measures ({natural_txt}); check that the pair would "
                                      "really show the harm its target can cause."))
        else:
            out.append(finding(LENS, m, "counterbalance_missing", "ok", label="paired",
                               evidence=f"counterbalance = {', '.join(valid)}",
                               detail=f"Paired with {', '.join(valid)}."))
    return paired


def _contradiction_rows(reg, library, paired, out):
    rows = reg.to_dict("records")
    partners: dict[str, list[tuple[str, str]]] = {r[R.METRIC_ID]: [] for r in rows}
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            ka, kb = a[R.KPI], b[R.KPI]
            if math.isnan(a[R.TARGET]) or math.isnan(b[R.TARGET]) or ka not in library or kb not in library:
                continue
            ma, mb = a[R.METRIC_ID], b[R.METRIC_ID]
            dirs = {a[R.DIRECTION], b[R.DIRECTION]}
            if ka == kb and dirs == {"higher", "lower"}:
                # the same KPI targeted both ways: no counter-measure can reconcile that
                status = "opposite_targets"
            elif ka == kb or not library.is_tension(ka, kb):
                continue
            elif mb in paired[ma] or ma in paired[mb]:
                status = "paired_together"
            elif paired[ma] or paired[mb]:
                status = "managed"
            else:
                both_pay = a[R.INCENTIVE_LINK] in PAY_LINKS and b[R.INCENTIVE_LINK] in PAY_LINKS
                status = "high" if both_pay else "medium"
            partners[ma].append((mb, status))
            partners[mb].append((ma, status))
    by_id = {r[R.METRIC_ID]: r for r in rows}
    for m, plist in partners.items():
        name = by_id[m][R.NAME] or m
        if not plist:
            out.append(finding(LENS, m, "contradictory_pair", "ok",
                               detail="No other targeted metric in the register pulls against it."))
            continue
        flagged = [p for p, s in plist if s in ("medium", "high", "opposite_targets")]
        sev = "high" if any(s == "high" for _, s in plist) else "medium" if flagged else "info"
        opposite = [p for p, s in plist if s == "opposite_targets"]
        listing = ", ".join(f"{p} ({s.replace('_', ' ')})" for p, s in plist)
        evidence = (f"{m} ({by_id[m][R.KPI]}, {by_id[m][R.DIRECTION] or '?'} is better) against "
                    + "; ".join(f"{p} ({by_id[p][R.KPI]}, {by_id[p][R.DIRECTION] or '?'} is better)"
                                for p, _ in plist))
        if opposite:
            detail = (f"{name} and {', '.join(opposite)} are the same KPI with targets in opposite directions "
                      "(one says higher is better, the other lower). Staff cannot meet both; decide which "
                      "way is better and retire the other.")
        elif flagged:
            detail = (f"{name} and {', '.join(flagged)} pull against each other (pushing one the right way "
                      "tends to push the other the wrong way, like speed against resolution), both have "
                      "targets, and neither has a counter-measure. Staff are left to choose which target "
                      "to miss; agree which one wins and review them together.")
        else:
            detail = (f"{name} pulls against {', '.join(p for p, _ in plist)}; the tension is watched "
                      "through counter-measures in the register.")
        out.append(finding(LENS, m, "contradictory_pair", sev, label=", ".join(p for p, _ in plist),
                           value=len(flagged), evidence=f"{evidence}; status: {listing}", detail=detail))


def _duplicate_rows(reg, library, out):
    seen_kpi: dict[str, str] = {}
    seen_col: dict[str, str] = {}
    seen_name: dict[str, str] = {}
    for _, row in reg.iterrows():
        m, kpi = row[R.METRIC_ID], row[R.KPI]
        name_key = " ".join(_words(row[R.NAME]))
        first, why = None, ""
        if kpi in library:
            if kpi in seen_kpi:
                first, why = seen_kpi[kpi], f"both compute {library.get(kpi).name} (kpi = {kpi})"
            else:
                seen_kpi[kpi] = m
        else:
            col = row[R.DATA_COLUMN].lower()
            if col and col in seen_col:
                first, why = seen_col[col], f"both are computed from the column {col}"
            elif name_key and name_key in seen_name:
                first, why = seen_name[name_key], f"both are called {_quote(row[R.NAME])}"
            if col:
                seen_col.setdefault(col, m)
            if name_key:
                seen_name.setdefault(name_key, m)
        if first:
            out.append(finding(LENS, m, "duplicate_metric", "medium", label=first,
                               evidence=f"{m} and {first}: {why}",
                               detail=f"{m} measures the same thing as {first} ({why}). Two versions of one "
                                      "number invite arguments about which is right and double the "
                                      "pressure; keep one (if they differ on purpose, say how in the "
                                      "definition)."))
        else:
            out.append(finding(LENS, m, "duplicate_metric", "ok", detail="No earlier metric measures the same thing."))


def _orphan_rows(reg, library, available_kpis, out):
    available = set(available_kpis)
    for _, row in reg.iterrows():
        m, kpi, name = row[R.METRIC_ID], row[R.KPI], row[R.NAME] or row[R.METRIC_ID]
        if kpi in available:
            out.append(finding(LENS, m, "orphan_not_computable", "ok", label=kpi,
                               detail="The contacts data can compute it."))
        elif kpi == CUSTOM_KPI:
            col = f" (data column {_quote(row[R.DATA_COLUMN])})" if row[R.DATA_COLUMN] else ""
            out.append(finding(LENS, m, "orphan_not_computable", "low", label="custom",
                               evidence=f"kpi = custom{col}",
                               detail=f"{name} is the client's own metric{col}. The workbook cannot "
                                      "recompute it, so its behaviour and its link with outcomes are not "
                                      "tested; only the register checks apply."))
        elif kpi in library and library.get(kpi).external:
            out.append(finding(LENS, m, "orphan_not_computable", "low", label="external",
                               evidence=f"kpi = {kpi}: needs workforce or finance data",
                               detail=f"{name} needs data outside the contacts export (workforce "
                                      "management or finance), so the audit cannot check it."))
        elif kpi in library:
            needs = library.get(kpi).computed_from
            out.append(finding(LENS, m, "orphan_not_computable", "medium", label="missing_columns",
                               evidence=f"kpi = {kpi} needs column(s) {', '.join(needs)}",
                               detail=f"{name} is reported, but the contacts export lacks what it is "
                                      f"computed from ({', '.join(needs)}). Either the export is incomplete "
                                      "or the figure comes from somewhere nobody can check."))
        else:
            hint = difflib.get_close_matches(kpi, library.ids, n=1)
            hint_txt = f" Did you mean {hint[0]}?" if hint else ""
            out.append(finding(LENS, m, "orphan_not_computable", "medium", label="unknown_kpi",
                               evidence=f"kpi = {_quote(kpi)} is not in the KPI library",
                               detail=f"{name} names a KPI ({_quote(kpi)}) that is not in the KPI library "
                                      f"and is not marked custom, so nobody can say how it is computed."
                                      f"{hint_txt}"))
    registered = set(reg[R.KPI])
    for kpi in sorted(available - registered):
        if kpi not in library:
            continue
        out.append(finding(LENS, kpi, "orphan_unregistered_kpi", "info", label=kpi,
                           evidence=f"{kpi} is computable from the contacts export",
                           detail=f"The data can compute {library.get(kpi).name}, but it is not in the "
                                  "register. Not a problem in itself; it may be a useful counter-measure."))


def _review_rows(reg, as_of, thresholds, out):
    dates = _review_dates(reg)
    limit = thresholds.review_stale_days
    for (_, row), d in zip(reg.iterrows(), dates):
        m = row[R.METRIC_ID]
        if d is None:
            out.append(finding(LENS, m, "review_stale", "low", label="no_date", threshold=limit,
                               evidence="review_date is blank",
                               detail="The register does not say when this metric was last reviewed."))
            continue
        age = (as_of - d).days
        if age > limit:
            out.append(finding(LENS, m, "review_stale", "medium", label="stale", value=age, threshold=limit,
                               evidence=f"last reviewed {d.isoformat()}, {age} days before {as_of.isoformat()} "
                                        f"(limit {limit} days)",
                               detail=f"The metric was last reviewed on {d.isoformat()}, more than {limit} "
                                      "days ago; its purpose and target may no longer fit."))
        else:
            out.append(finding(LENS, m, "review_stale", "ok", value=age, threshold=limit,
                               evidence=f"last reviewed {d.isoformat()}, {age} days before {as_of.isoformat()}",
                               detail="Reviewed recently."))


def _odds(p: float) -> float:
    p = min(max(p, 0.001), 0.999)
    return p / (1 - p)


def _implausible_rows(reg, library, values, out):
    for _, row in reg.iterrows():
        m, kpi, target = row[R.METRIC_ID], row[R.KPI], row[R.TARGET]
        if kpi not in library or math.isnan(target):
            continue
        unit = library.get(kpi).unit
        tgt = format_value(target, unit)
        lo_hi = _SCALES.get(unit)
        if lo_hi and not lo_hi[0] <= target <= lo_hi[1]:
            hint = (" It looks like a percentage typed as a whole number; shares are written 0..1 "
                    "(80 % = 0.80)." if unit == "share" and 1 < target <= 100 else "")
            out.append(finding(LENS, m, "target_implausible", "high", label="out_of_scale", threshold=target,
                               evidence=f"target = {target:g}; {library.get(kpi).name} lies between "
                                        f"{lo_hi[0]:g} and {lo_hi[1]:g}",
                               detail=f"The target {target:g} is outside the possible range of "
                                      f"{library.get(kpi).name} ({lo_hi[0]:g} to {lo_hi[1]:g}).{hint}"))
            continue
        if unit in ("seconds", "currency") and target <= 0:
            out.append(finding(LENS, m, "target_implausible", "high", label="out_of_scale", threshold=target,
                               evidence=f"target = {target:g}",
                               detail=f"A target of {tgt} cannot be reached: the value is always positive."))
            continue
        current, n = values.get(kpi, (math.nan, 0))
        if math.isnan(current):
            out.append(finding(LENS, m, "target_implausible", "not_assessable", threshold=target,
                               evidence=f"target = {tgt}; no current value",
                               detail="No current value to compare the target with (the data cannot "
                                      "compute it)."))
            continue
        cur = format_value(current, unit)
        if unit == "share":
            ratio, limit = max(_odds(target) / _odds(current), _odds(current) / _odds(target)), IMPLAUSIBLE_ODDS_RATIO
            how = f"{ratio:.1f}× apart in odds (limit {limit:g}×)"
        elif unit == "points":
            ratio, limit = abs(target - current), IMPLAUSIBLE_POINTS
            how = f"{ratio:.1f} points apart (limit {limit:g})"
        elif current > 0 and target > 0:
            ratio, limit = max(target / current, current / target), IMPLAUSIBLE_RATIO
            how = f"{ratio:.1f}× apart (limit {limit:g}×)"
        else:
            continue
        direction = row[R.DIRECTION] if row[R.DIRECTION] in ("higher", "lower") else library.better(kpi)
        evidence = f"target = {tgt}; current = {cur} (n = {n}); {how}"
        if ratio > limit:
            loose = _met(current, target, direction)
            detail = (f"The target ({tgt}) is so far beyond the current value ({cur}) that it is met "
                      "without effort; it says nothing about good performance." if loose else
                      f"The target ({tgt}) is far from the current value ({cur}); a target out of reach "
                      "tends to be ignored or gamed rather than worked towards (Bevan & Hood 2006).")
            out.append(finding(LENS, m, "target_implausible", "medium", label="too_loose" if loose else "out_of_reach",
                               value=current, threshold=target, n=n, evidence=evidence, detail=detail))
        else:
            out.append(finding(LENS, m, "target_implausible", "ok", value=current, threshold=target, n=n,
                               evidence=evidence, detail="The target is within reach of the current value."))


def current_vs_target(register: pd.DataFrame, library: KpiLibrary, centre_week: pd.DataFrame | None,
                      team_week: pd.DataFrame | None = None,
                      agent_week: pd.DataFrame | None = None) -> pd.DataFrame:
    """Current value against target, overall and per team (Findings, check ``current_vs_target``).

    Parameters
    ----------
    register : the metric register (normalised or raw).
    library : the KPI library.
    centre_week : ``week``, ``<kpi>``, ``<kpi>__n`` (or a single overall row).
    team_week : ``team``, ``week``, ``<kpi>``, ``<kpi>__n`` (optional: per-team rows).
    agent_week : ``agent_id``, ``week``, ... (optional: how many agents meet the target,
        reported as counts only, never names).

    Returns
    -------
    Findings: ``value`` = current, ``threshold`` = target, ``n`` = denominator; info when met,
    low when missed, medium when no week of the centre or of any team met it.
    """
    reg = normalise_register(register)
    out: list[dict] = []
    if centre_week is None or not len(centre_week):
        return empty_findings()
    week_col = "week" if "week" in centre_week.columns else None
    for _, row in reg.iterrows():
        m, kpi, target = row[R.METRIC_ID], row[R.KPI], row[R.TARGET]
        if kpi not in library or kpi not in centre_week.columns:
            continue
        unit = library.get(kpi).unit
        direction = row[R.DIRECTION] if row[R.DIRECTION] in ("higher", "lower") else library.better(kpi)
        value, n = _weighted(centre_week, kpi)
        if math.isnan(value):
            continue
        if math.isnan(target):
            out.append(finding(LENS, m, "current_vs_target", "info", label="no_target", value=value, n=n,
                               evidence=f"current = {format_value(value, unit)} (n = {n}); no target",
                               detail=f"Currently {format_value(value, unit)}; there is no target to compare with."))
            continue
        weeks_met, weeks = 0, 0
        if week_col:
            wk = centre_week[centre_week[kpi].notna()]
            weeks = len(wk)
            weeks_met = int(sum(_met(v, target, direction) for v in wk[kpi]))
        team_rows, team_weeks_met = [], 0
        if team_week is not None and len(team_week) and kpi in team_week.columns and C.TEAM in team_week.columns:
            for team, grp in team_week.groupby(C.TEAM, sort=True):
                tv, tn = _weighted(grp, kpi)
                if math.isnan(tv):
                    continue
                g = grp[grp[kpi].notna()]
                tmet = int(sum(_met(v, target, direction) for v in g[kpi]))
                team_weeks_met += tmet
                met = _met(tv, target, direction)
                team_rows.append(finding(
                    LENS, m, "current_vs_target", "info" if met else "low", scope=f"team:{team}",
                    label="met" if met else "missed", value=tv, threshold=target, n=tn,
                    evidence=f"{team}: {format_value(tv, unit)} against {format_value(target, unit)} "
                             f"({direction} is better); on target in {tmet} of {len(g)} weeks",
                    detail=f"Team {team} is {'on' if met else 'off'} target over the period "
                           f"({format_value(tv, unit)} against {format_value(target, unit)})."))
        agents_txt = ""
        if agent_week is not None and len(agent_week) and kpi in agent_week.columns and C.AGENT_ID in agent_week.columns:
            per_agent = [v for v in _weighted_by(agent_week, C.AGENT_ID, kpi) if not math.isnan(v)]
            if per_agent:
                agents_txt = (f"; {sum(_met(v, target, direction) for v in per_agent)} of {len(per_agent)} "
                              "agents on target over the period")
        met = _met(value, target, direction)
        never = week_col is not None and weeks > 0 and weeks_met == 0 and team_weeks_met == 0
        sev = "medium" if never else ("info" if met else "low")
        label = "never_met" if never else ("met" if met else "missed")
        weeks_txt = f"; on target in {weeks_met} of {weeks} weeks" if week_col else ""
        detail = (f"{format_value(value, unit)} against a target of {format_value(target, unit)}: "
                  + ("on target." if met else "off target."))
        if never:
            detail += (" Not one week of the centre or of any team met it: in practice the target is out "
                       "of reach, which invites gaming or gets ignored.")
        out.append(finding(LENS, m, "current_vs_target", sev, label=label, value=value, threshold=target, n=n,
                           evidence=f"current = {format_value(value, unit)} (n = {n}); target = "
                                    f"{format_value(target, unit)}, {direction} is better{weeks_txt}{agents_txt}",
                           detail=detail))
        out.extend(team_rows)
    return make_findings(out)


# ----------------------------------------------------------------------------- the lens
def check_register(register: pd.DataFrame, library: KpiLibrary, *, kpi_values: pd.DataFrame | None = None,
                   available_kpis: list[str] | None = None, as_of: date,
                   thresholds: Thresholds | None = None, team_values: pd.DataFrame | None = None,
                   agent_values: pd.DataFrame | None = None) -> pd.DataFrame:
    """Run every register check (rules in the module docstring).

    Parameters
    ----------
    register : the metric register (``audit_lib.columns.Register`` columns).
    library : the KPI library (:func:`audit_lib.kpis.load_library`).
    kpi_values : current KPI values, ``<kpi>`` and ``<kpi>__n`` columns: the ``centre_week``
        table, or a single overall row. Needed for ``target_implausible`` and
        ``current_vs_target``.
    available_kpis : KPI ids the contacts data can compute (the prepare manifest's ``kpis``);
        needed for the orphan checks.
    as_of : date the review dates are judged against (the period's end).
    thresholds : ``audit_lib.settings.Thresholds`` (``review_stale_days``).
    team_values, agent_values : ``team_week`` / ``agent_week`` tables for per-team rows and the
        count of agents on target.

    Returns
    -------
    Findings (lens ``register``), sorted.
    """
    thresholds = thresholds or Thresholds()
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    if not isinstance(as_of, date):
        raise TypeError(f"as_of must be a date, got {type(as_of).__name__}")
    reg = normalise_register(register)
    if not len(reg):
        return empty_findings()
    out: list[dict] = []
    for _, row in reg.iterrows():
        _purpose_rows(row, library, out)
        _governance_rows(row, library, out)
    paired = _pairing_rows(reg, library, out)
    _contradiction_rows(reg, library, paired, out)
    _duplicate_rows(reg, library, out)
    if available_kpis is not None:
        _orphan_rows(reg, library, available_kpis, out)
    _review_rows(reg, as_of, thresholds, out)
    if kpi_values is not None:
        _implausible_rows(reg, library, overall_values(kpi_values), out)
        cvt = current_vs_target(reg, library, kpi_values, team_values, agent_values)
        out.extend(cvt.to_dict("records"))
    return make_findings(out)


def audit_findings(audit) -> pd.DataFrame:
    """The register lens for an opened audit (``audit_lib.context.open_audit``)."""
    from .columns import Prepared as P
    manifest = getattr(audit, "manifest", {}) or {}
    return check_register(
        audit.register, audit.kpis, kpi_values=audit.table(P.CENTRE_WEEK),
        available_kpis=list(manifest.get("kpis", [])), as_of=audit.params.period_end,
        thresholds=audit.thresholds, team_values=audit.table(P.TEAM_WEEK),
        agent_values=audit.table(P.AGENT_WEEK))


# ----------------------------------------------------------------------------- tables for people
def register_overview(register: pd.DataFrame, library: KpiLibrary) -> pd.DataFrame:
    """One plain-language row per metric: why, who, target, tied to pay?, paired with?"""
    reg = normalise_register(register)
    rows = []
    for _, row in reg.iterrows():
        kpi = row[R.KPI]
        unit = library.get(kpi).unit if kpi in library else ""
        target = row[R.TARGET]
        if math.isnan(target):
            target_txt = "none"
        else:
            sign = {"lower": "at most ", "higher": "at least "}.get(row[R.DIRECTION], "")
            target_txt = sign + (format_value(target, unit) if unit else f"{target:g}")
        incentive = row[R.INCENTIVE_LINK]
        pay = {"bonus": "yes: bonus", "discipline": "yes: discipline", "recognition": "recognition only",
               "none": "no"}.get(incentive, "not recorded")
        rows.append({"Metric": row[R.METRIC_ID], "Name": row[R.NAME],
                     "Standard KPI": library.get(kpi).name if kpi in library else (kpi or "—"),
                     "Why is it measured?": row[R.PURPOSE] or "(not stated)",
                     "Who owns it?": row[R.OWNER] or "(nobody named)", "Target": target_txt,
                     "Tied to pay?": pay,
                     "Paired with": ", ".join(parse_counterbalance(row[R.COUNTERBALANCE])) or "(nothing)"})
    return pd.DataFrame(rows)


def flagged_table(findings: pd.DataFrame) -> pd.DataFrame:
    """Flagged register findings (medium, high) as a table for people: metric, problem, why, numbers."""
    df = findings[(findings[F.LENS] == LENS) & findings[F.SEVERITY].isin(("medium", "high"))]
    rank = {"high": 0, "medium": 1}
    df = df.assign(_r=df[F.SEVERITY].map(rank)).sort_values(["_r", F.METRIC_ID, F.CHECK, F.SCOPE], kind="mergesort")
    return pd.DataFrame({"Metric": df[F.METRIC_ID], "Problem": df[F.CHECK].map(lambda c: CHECK_TITLES.get(c, c)),
                         "Severity": df[F.SEVERITY], "What it means": df[F.DETAIL],
                         "Evidence": df[F.EVIDENCE]}).reset_index(drop=True)


def flag_summary(findings: pd.DataFrame) -> pd.DataFrame:
    """One row per flagged register problem: problem, severity, how many metrics, which ones.

    Deterministic (sorted by severity, then problem), for the headline cell of the notebook.
    """
    df = findings[(findings[F.LENS] == LENS) & findings[F.SEVERITY].isin(("medium", "high"))]
    rows = []
    for (check, sev), grp in df.groupby([F.CHECK, F.SEVERITY], sort=True):
        ids = sorted(set(grp[F.METRIC_ID]))
        rows.append({"Problem": CHECK_TITLES.get(check, check), "Severity": sev, "Metrics": len(ids),
                     "Which": ", ".join(ids), "_r": 0 if sev == "high" else 1})
    out = pd.DataFrame(rows, columns=["Problem", "Severity", "Metrics", "Which", "_r"])
    return out.sort_values(["_r", "Problem"], kind="mergesort").drop(columns="_r").reset_index(drop=True)


def tension_matrix(register: pd.DataFrame, library: KpiLibrary) -> pd.DataFrame:
    """Metric × metric codes (:data:`TENSION_CODES`): counterbalance links and pulling pairs.

    Symmetric; the diagonal is NaN. Tension needs both metrics to be library KPIs.
    """
    reg = normalise_register(register)
    ids = list(reg[R.METRIC_ID])
    known = set(ids)
    kpi = dict(zip(ids, reg[R.KPI]))
    pairs = {m: {r for r in parse_counterbalance(c) if r in known and r != m}
             for m, c in zip(ids, reg[R.COUNTERBALANCE])}
    mat = pd.DataFrame(0.0, index=pd.Index(ids, name="metric"), columns=pd.Index(ids, name="against"))
    for a in ids:
        for b in ids:
            if a == b:
                mat.loc[a, b] = np.nan
                continue
            linked = b in pairs[a] or a in pairs[b]
            tension = kpi[a] in library and kpi[b] in library and kpi[a] != kpi[b] and library.is_tension(kpi[a], kpi[b])
            if tension:
                code = 2 if linked else (3 if pairs[a] or pairs[b] else 4)
            else:
                code = 1 if linked else 0
            mat.loc[a, b] = code
    return mat


def target_tracking(register: pd.DataFrame, library: KpiLibrary, team_week: pd.DataFrame | None,
                    centre_week: pd.DataFrame | None) -> pd.DataFrame:
    """Long table for the small multiples: metric, series (team or "Centre"), week, value, target.

    One series per team plus the centre for every register metric whose KPI is in the tables.
    """
    reg = normalise_register(register)
    cols = ["metric_id", "name", "kpi", "unit", "series", "week", "value", "n", "target", "direction"]
    parts = []
    for _, row in reg.iterrows():
        kpi = row[R.KPI]
        if kpi not in library:
            continue
        direction = row[R.DIRECTION] if row[R.DIRECTION] in ("higher", "lower") else library.better(kpi)
        for series_name, table in (("team", team_week), ("centre", centre_week)):
            if table is None or not len(table) or kpi not in table.columns or "week" not in table.columns:
                continue
            series = table[C.TEAM].astype(str) if series_name == "team" and C.TEAM in table.columns else "Centre"
            parts.append(pd.DataFrame({
                "metric_id": row[R.METRIC_ID], "name": row[R.NAME] or row[R.METRIC_ID], "kpi": kpi,
                "unit": library.get(kpi).unit, "series": series, "week": pd.to_datetime(table["week"]),
                "value": pd.to_numeric(table[kpi], errors="coerce"),
                "n": pd.to_numeric(table.get(kpi + "__n", np.nan), errors="coerce"),
                "target": row[R.TARGET], "direction": direction}))
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)
    order = {m: i for i, m in enumerate(reg[R.METRIC_ID])}
    out = out.assign(_o=out["metric_id"].map(order), _c=(out["series"] == "Centre").astype(int))
    return out.sort_values(["_o", "_c", "series", "week"], kind="mergesort").drop(columns=["_o", "_c"]).reset_index(drop=True)


def current_table(findings: pd.DataFrame, register: pd.DataFrame, library: KpiLibrary) -> pd.DataFrame:
    """Metric × (centre, teams) table of current values against target, from ``current_vs_target`` rows.

    Each cell reads ``"350 s ✓"`` (on target over the period) or ``"395 s ✗"``; the ``Target``
    column shows the target with its direction and ``Weeks on target`` the centre's weekly record.
    """
    reg = normalise_register(register)
    rows = findings[(findings[F.LENS] == LENS) & (findings[F.CHECK] == "current_vs_target")]
    out = []
    for _, r in reg.iterrows():
        m, kpi = r[R.METRIC_ID], r[R.KPI]
        sub = rows[rows[F.METRIC_ID] == m]
        if sub.empty or kpi not in library:
            continue
        unit = library.get(kpi).unit
        rec = {"Metric": m, "Name": r[R.NAME],
               "Target": "none" if math.isnan(r[R.TARGET]) else
               {"lower": "≤ ", "higher": "≥ "}.get(r[R.DIRECTION], "") + format_value(r[R.TARGET], unit)}
        for _, f in sub.iterrows():
            col = "Centre" if f[F.SCOPE] == "overall" else str(f[F.SCOPE]).split(":", 1)[1]
            mark = {"met": " ✓", "missed": " ✗", "never_met": " ✗"}.get(f[F.LABEL], "")
            rec[col] = format_value(f[F.VALUE], unit) + mark
            if f[F.SCOPE] == "overall":
                found = re.search(r"on target in (\d+) of (\d+) weeks", f[F.EVIDENCE])
                rec["Weeks on target"] = f"{found.group(1)} of {found.group(2)}" if found else "—"
        out.append(rec)
    df = pd.DataFrame(out)
    if df.empty:
        return df
    teams = sorted(c for c in df.columns if c not in ("Metric", "Name", "Target", "Centre", "Weeks on target"))
    cols = ["Metric", "Name", "Target", "Centre", "Weeks on target"] + teams
    return df.reindex(columns=[c for c in cols if c in df.columns]).fillna("—")


def formula_variants(library: KpiLibrary, kpi_id: str, thresholds: Thresholds | None = None) -> pd.DataFrame:
    """The published variants of a KPI's formula and which one this audit computes.

    Examples
    --------
    >>> from audit_lib.kpis import load_library
    >>> formula_variants(load_library(), "service_level")["This audit"].tolist()
    ['yes', '', '']
    """
    thresholds = thresholds or Thresholds()
    formula = library.get(kpi_id).formula
    chosen = getattr(thresholds, formula.variant_setting) if formula.variant_setting else None
    return pd.DataFrame([{"Variant": name.replace("_", " "), "Formula": text,
                          "This audit": "yes" if name == chosen else ""}
                         for name, text in formula.variants.items()],
                        columns=["Variant", "Formula", "This audit"])
