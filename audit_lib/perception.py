"""Perception lens: how staff see each metric (a Likert survey, anonymity protected).

The survey asks the same seven statements (``columns.ITEM_BANK``) about every metric
in the register, on a 5-point agreement scale, of agents, team leads and managers.
Answers are stored as answered (``<metric_id>__<item_id>`` = 1..5); the two
reverse-keyed items (``pressure``, ``workaround``) are reversed in one place,
:func:`score_items`, so that 5 is always the favourable end.

Statistics (each checked against an independent implementation in the tests):

* **Perception index** of a metric = the respondent's mean of the scored items
  (at least half answered), averaged over respondents, with a t interval.
* **Cronbach's alpha** of the seven items, Feldt 95% interval, alpha if an item is
  dropped (:func:`cronbach_alpha`, :func:`alpha_if_dropped`). Missing answers:
  pairwise covariances by default, listwise on request.
* **Staff vs manager gap**: Mann-Whitney U (two-sided; normal approximation with
  tie and continuity corrections) on respondent indices of agents vs team leads +
  managers, rank-biserial correlation
  ``r = 2 U_managers / (n_staff n_managers) - 1`` (positive: managers rate the metric
  higher) with an analytic 95% interval (Hanley & McNeil 1982 standard error of the
  common-language effect ``A = (r + 1) / 2``, Wald interval on A, mapped back).
  Holm correction across metrics. Flagged when the Holm-adjusted p < 0.05 **and**
  ``|r| >= 0.3`` (a medium effect by Cohen's conventions for r; high from 0.5).
* **Team differences**: Kruskal-Wallis H (tie-corrected) on respondent indices of the
  teams the anonymity guard shows, effect sizes epsilon-squared ``H / (n - 1)`` and
  eta-squared-H ``(H - k + 1) / (n - k)``; Holm across metrics; flagged when the
  adjusted p < 0.05 and eta-squared-H >= 0.06 (medium; high from 0.14).
* **Perceived pressure / gaming**: share of staff (agents; everyone when the staff
  group cannot be shown on its own) agreeing (4-5 as answered) with ``pressure`` /
  ``workaround``, Wilson 95% interval; flagged when even the lower bound is a
  majority (>= 0.5; high from 2/3).
* **Index reliability**: ``low`` (a caveat on reading the index, not a problem of the
  metric, so not flagged) when alpha < ``perception.min_alpha``.
* **Comments**: themes counted with the keyword dictionary :data:`THEMES`; quotes
  are redacted (e-mail addresses, phone numbers, given names, team names).

Every grouped output goes through :mod:`audit_lib.anonymity`: a group below the
threshold never appears (nor does a second group that would reveal it by
subtraction), and no findings row names one. Team-level tables share one
survey-wide suppression plan (:func:`audit_lib.anonymity.survey_guard`), so every
table hides the same teams and no two tables can be subtracted from each other.
"""
from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from . import anonymity
from . import distributions as dist
from .columns import ITEM_BANK, REVERSE_ITEMS, SURVEY_SEP, Register, Survey
from .errors import InputDataError
from .findings import finding, make_findings

__all__ = [
    "LENS", "LIKERT_LABELS", "ROLE_OPTIONS", "TENURE_BANDS", "THEMES", "MEDIUM_R", "LARGE_R",
    "MEDIUM_ETA2", "LARGE_ETA2", "SIGNIFICANCE", "STAFF", "MANAGERS", "ROLE_GROUP",
    "item_column", "comment_column", "survey_metrics", "score_items", "write_survey_template",
    "questionnaire", "response_template_columns", "cronbach_alpha", "alpha_if_dropped",
    "respondent_index", "perception_index", "reliability_table", "likert_counts",
    "role_groups", "rank_biserial", "mann_whitney_gap", "staff_manager_gaps", "kruskal_wallis",
    "team_differences", "holm", "wilson_interval", "agreement_shares", "response_rates",
    "response_rate_display",
    "team_role_counts", "redact", "comment_themes", "theme_counts", "quotes", "format_quotes",
    "perception_findings", "team_index", "audit_findings", "metric_names", "headcount",
    "index_display", "gaps_display", "summary_text",
]

LENS = "perception"
LIKERT_LABELS = ("Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree",
                 "Strongly agree")
ROLE_OPTIONS = {"agent": "Agent", "team_lead": "Team lead", "manager": "Manager"}
TENURE_BANDS = {"<1y": "Less than 1 year", "1-3y": "1 to 3 years", "3-5y": "3 to 5 years",
                "5y+": "More than 5 years"}

#: effect-size conventions (Cohen 1988) used to decide a flag
MEDIUM_R, LARGE_R = 0.3, 0.5
MEDIUM_ETA2, LARGE_ETA2 = 0.06, 0.14
#: family-wise error rate after Holm's correction
SIGNIFICANCE = 0.05
#: Wilson lower bound of the agreeing share that flags pressure / gaming
MAJORITY, LARGE_MAJORITY = 0.5, 2 / 3

STAFF, MANAGERS = "staff", "managers"
ROLE_GROUP = "role_group"
_INDEX = "index"

#: theme -> keyword patterns (regular expressions, matched case-insensitively on word starts).
#: A comment can carry several themes. Order is the display order.
THEMES: dict[str, tuple[str, ...]] = {
    "workload": (r"workload", r"busy", r"understaff", r"short[- ]staffed", r"no time", r"overtime",
                 r"queue", r"back[- ]to[- ]back", r"exhaust", r"burn ?out", r"stress", r"too many",
                 r"(don'?t|do not|never) have (the )?time", r"hard to keep (up|on top)"),
    "fairness": (r"unfair", r"fair", r"favouri", r"favori", r"luck", r"out of (my|our) control",
                 r"not my fault", r"punish", r"blame", r"inconsisten", r"bonus", r"league table"),
    "customer_harm": (r"customer", r"caller", r"rush", r"cut (them|people|customers)? ?off",
                      r"hang up", r"call(s|ing)? back", r"complain", r"angry", r"upset",
                      r"not resolved", r"unresolved", r"repeat", r"ring back", r"wait(s|ing)? days",
                      r"wrap(ped|ping)? (them |it )?up early", r"instead of fixing", r"forgotten"),
    "gaming": (r"gam(e|ed|es|ing)", r"cheat", r"trick", r"work(ed)? ?around", r"fiddl", r"massag",
               r"transfer", r"park", r"close (the )?(ticket|case)", r"code[ds]? (it )?as",
               r"reopen", r"cherry", r"hit the (number|target)", r"tick(s|ed|ing)? (the )?box",
               r"by default", r"stop the clock", r"template", r"only send", r"cleared"),
    "clarity": (r"unclear", r"confus", r"understand", r"no idea", r"explain", r"definition",
                r"don'?t know (why|how)", r"what it means", r"why we"),
    "target_level": (r"target", r"unrealistic", r"impossible", r"achievable", r"too (high|low|tight)"),
    "positive": (r"useful", r"helps?", r"helpful", r"good (measure|metric|idea)", r"makes sense",
                 r"motivat", r"fine", r"care about"),
}
_THEME_RE = {t: re.compile(r"\b(?:" + "|".join(p) + r")", re.IGNORECASE) for t, p in THEMES.items()}
_OTHER = "other"

_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# phone numbers: 7+ digits with optional separators / leading +
_PHONE_RE = re.compile(r"(?<![\w])\+?\d[\d\s().-]{5,}\d(?![\w])")
# a capitalised word pair ("Priya Shah") is taken for a person's name: over-redacting a
# quote is the safe direction
_PERSON_RE = re.compile(r"\b[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?\s+[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?\b")


# ---------------------------------------------------------------------------
# survey structure
# ---------------------------------------------------------------------------
def item_column(metric_id: str, item_id: str) -> str:
    """Wide column name of one item about one metric (``AHT__fair``)."""
    return f"{metric_id}{SURVEY_SEP}{item_id}"


def comment_column(metric_id: str) -> str:
    """Wide column name of the comment about one metric (``AHT__comment``)."""
    return f"{metric_id}{SURVEY_SEP}{Survey.COMMENT}"


def survey_metrics(survey: pd.DataFrame) -> list[str]:
    """Metric ids that have at least one item column, in column order."""
    seen: list[str] = []
    for col in survey.columns:
        if SURVEY_SEP in str(col):
            metric, item = str(col).rsplit(SURVEY_SEP, 1)
            if item in ITEM_BANK and metric not in seen:
                seen.append(metric)
    return seen


def _items_of(survey: pd.DataFrame, metric_id: str) -> list[str]:
    return [i for i in ITEM_BANK if item_column(metric_id, i) in survey.columns]


def score_items(survey: pd.DataFrame) -> pd.DataFrame:
    """The survey with every item scored so that 5 is favourable.

    Reverse-keyed items (``columns.REVERSE_ITEMS``) become ``6 - x``; the other items
    are unchanged; non-item columns are kept. This is the only place the reversal
    happens (the survey is stored as answered).

    Raises
    ------
    InputDataError
        When an item column holds a value outside 1..5.
    """
    pairs = [(item_column(metric, item), item) for metric in survey_metrics(survey)
             for item in _items_of(survey, metric)]
    cols = [c for c, _ in pairs]
    values = _answers(survey, cols)
    bad = survey[cols].notna().to_numpy() & (np.isnan(values) | ~np.isin(values, [1, 2, 3, 4, 5]))
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])   # the first bad column in metric, item order
        row = int(np.flatnonzero(bad[:, j])[0])
        raise InputDataError(
            f"survey column {cols[j]!r}, row {row + 1}: answer {survey[cols[j]].iloc[row]!r} is not "
            "1..5; map answer labels in params perception.labels or fix the export")
    reverse = np.array([item in REVERSE_ITEMS for _, item in pairs], dtype=bool)
    values[:, reverse] = 6 - values[:, reverse]
    # one block instead of a column at a time: setting ~80 columns one by one dominated the cost
    scored = pd.DataFrame(values, index=survey.index, columns=cols)
    out = pd.concat([survey.drop(columns=cols), scored], axis=1)[survey.columns]
    out.attrs = copy.deepcopy(survey.attrs)
    return out


def _answers(survey: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """The answers of ``cols`` as floats (NaN where missing or not a number).

    ``pd.to_numeric(..., errors="coerce").astype("float64")`` of each column; numeric
    columns (the usual nullable integers) are converted as one block, which is the same
    and much faster than one column at a time.
    """
    out = np.empty((len(survey), len(cols)))
    numeric = np.array([pd.api.types.is_numeric_dtype(survey[c].dtype) for c in cols], dtype=bool)
    if numeric.any():
        block = survey[[c for c, ok in zip(cols, numeric) if ok]]
        out[:, numeric] = block.to_numpy(dtype="float64", na_value=np.nan)
    for j in np.flatnonzero(~numeric):
        out[:, j] = pd.to_numeric(survey[cols[j]], errors="coerce").astype("float64").to_numpy()
    return out


def _roles(survey: pd.DataFrame) -> pd.Series:
    role = survey[Survey.ROLE].astype("string").str.strip().str.lower()
    return role.str.replace(r"[\s-]+", "_", regex=True)


def role_groups(survey: pd.DataFrame) -> pd.Series:
    """``staff`` for agents, ``managers`` for team leads and managers, NA otherwise."""
    role = _roles(survey)
    out = pd.Series(pd.NA, index=survey.index, dtype="string")
    out[role.isin(Survey.STAFF_ROLES)] = STAFF
    out[role.isin(Survey.MANAGER_ROLES)] = MANAGERS
    return out


# ---------------------------------------------------------------------------
# the questionnaire
# ---------------------------------------------------------------------------
def _safe_text(text) -> str:
    """Client text as inert text in CSV/XLSX (no formula injection)."""
    s = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    s = s.replace("\r", " ").replace("\n", " ").strip()
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t") else s


def questionnaire(register: pd.DataFrame) -> pd.DataFrame:
    """One row per question for the metrics of a register.

    Columns: ``question_id`` (the canonical response column), ``section``,
    ``metric_id``, ``metric``, ``item_id``, ``statement``, ``answer_type``,
    ``answer_options``, ``answer_codes``, ``reverse_keyed``, ``required``.
    """
    for col in (Register.METRIC_ID, Register.NAME):
        if col not in register.columns:
            raise InputDataError(f"metric register: column {col!r} is missing; the survey template "
                                 "needs each metric's id and name")
    likert = " | ".join(LIKERT_LABELS)
    codes = " | ".join(str(i) for i in range(1, 6))
    rows = [
        dict(question_id=Survey.ROLE, section="About you", metric_id="", metric="", item_id="",
             statement="Which best describes your role?", answer_type="single choice",
             answer_options=" | ".join(ROLE_OPTIONS.values()), answer_codes=" | ".join(ROLE_OPTIONS),
             reverse_keyed=False, required=True),
        dict(question_id=Survey.TEAM, section="About you", metric_id="", metric="", item_id="",
             statement="Which team do you work in?", answer_type="single choice or short text",
             answer_options="(the client's team names)", answer_codes="", reverse_keyed=False,
             required=False),
        dict(question_id=Survey.TENURE_BAND, section="About you", metric_id="", metric="",
             item_id="", statement="How long have you worked here?", answer_type="single choice",
             answer_options=" | ".join(TENURE_BANDS.values()), answer_codes=" | ".join(TENURE_BANDS),
             reverse_keyed=False, required=False),
    ]
    seen = set()
    for rec in register.to_dict("records"):
        metric_id = str(rec[Register.METRIC_ID]).strip()
        if not metric_id or metric_id in seen:
            continue
        seen.add(metric_id)
        name = _safe_text(rec.get(Register.NAME)) or metric_id
        for item, statement in ITEM_BANK.items():
            rows.append(dict(question_id=item_column(metric_id, item), section=name,
                             metric_id=metric_id, metric=name, item_id=item,
                             statement=statement.format(metric=name), answer_type="agreement 1-5",
                             answer_options=likert, answer_codes=codes,
                             reverse_keyed=item in REVERSE_ITEMS, required=False))
        rows.append(dict(question_id=comment_column(metric_id), section=name, metric_id=metric_id,
                         metric=name, item_id=Survey.COMMENT,
                         statement=f"Anything else you would like to say about {name}? "
                                   "(please do not name colleagues)",
                         answer_type="free text", answer_options="", answer_codes="",
                         reverse_keyed=False, required=False))
    return pd.DataFrame(rows)


def response_template_columns(register: pd.DataFrame) -> list[str]:
    """Header of the blank response file: canonical wide format."""
    q = questionnaire(register)
    return [Survey.RESPONDENT_ID, *q["question_id"].tolist()]


def write_survey_template(params, out_dir: str | Path, register: pd.DataFrame | None = None
                          ) -> list[Path]:
    """Write the questionnaire (XLSX and CSV) and the blank response file for a client.

    Parameters
    ----------
    params : audit_lib.params.Params
        The client's params (``client``, ``thresholds``); the register is read with
        ``audit_lib.io.load_register(params)`` unless ``register`` is given.
    out_dir : path
        Folder to write into (created).
    register : DataFrame, optional
        An already loaded register.

    Returns
    -------
    list of Path
        ``survey_questions.xlsx``, ``survey_questions.csv``, ``survey_responses_template.csv``.
    """
    if register is None:
        from . import io as audit_io
        register = audit_io.load_register(params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    q = questionnaire(register)
    csv_path = out / "survey_questions.csv"
    q.to_csv(csv_path, index=False, encoding="utf-8")
    xlsx_path = out / "survey_questions.xlsx"
    _write_questions_xlsx(q, xlsx_path, params)
    blank = out / "survey_responses_template.csv"
    pd.DataFrame(columns=response_template_columns(register)).to_csv(blank, index=False,
                                                                       encoding="utf-8")
    return [xlsx_path, csv_path, blank]


def _write_questions_xlsx(q: pd.DataFrame, path: Path, params) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    thresholds = getattr(params, "thresholds", None)
    anon = getattr(thresholds, "anonymity", anonymity.DEFAULT_THRESHOLD)
    canon = getattr(thresholds, "comments_anonymity", anonymity.DEFAULT_COMMENTS_THRESHOLD)
    client = _safe_text(getattr(params, "client", ""))
    wb = Workbook()
    ws = wb.active
    ws.title = "questions"
    ws.append(list(q.columns))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for rec in q.itertuples(index=False):
        ws.append([str(v) if not isinstance(v, bool) else v for v in rec])
    # every client-provided string is stored as text, never as a formula
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    for col, width in zip("ABCDEFGHIJK", (24, 18, 12, 18, 16, 60, 18, 50, 16, 10, 9)):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A2"
    info = wb.create_sheet("instructions")
    lines = [
        f"Staff survey about the metrics of {client}" if client else "Staff survey about our metrics",
        "Paste the 'questions' sheet into your form tool: one question per row, question_id as the "
        "question's export name, answer_options as the choices (answer_codes in the same order).",
        "Ask everyone the same questions: agents, team leads and managers.",
        "Reverse-keyed statements (reverse_keyed = TRUE) are asked as written; the analysis reverses "
        "them, so do not reword them.",
        f"Anonymity: results are only shown for groups of at least {anon} people, comments only for "
        f"groups of at least {canon}; e-mail addresses, phone numbers and names are removed from "
        "quoted comments.",
        "Export the answers with one row per respondent and columns named as in "
        "survey_responses_template.csv (labels or numbers 1-5 are both accepted).",
    ]
    for line in lines:
        info.append([line])
        info.cell(row=info.max_row, column=1).data_type = "s"
    info.column_dimensions["A"].width = 120
    wb.save(path)


# ---------------------------------------------------------------------------
# reliability
# ---------------------------------------------------------------------------
def _wide_items(items: pd.DataFrame, item, scores, subject) -> pd.DataFrame:
    if any(x is not None for x in (item, scores, subject)):
        if not all(x is not None for x in (item, scores, subject)):
            raise ValueError("long format needs item=, scores= and subject= together")
        for c in (item, scores, subject):
            if c not in items.columns:
                raise KeyError(f"column {c!r} not in the data (has {list(items.columns)})")
        wide = items.pivot_table(index=subject, columns=item, values=scores, aggfunc="first",
                                 dropna=False)
        return wide.apply(pd.to_numeric, errors="coerce")
    if all(pd.api.types.is_numeric_dtype(d) for d in items.dtypes):
        return items  # to_numeric leaves numeric columns as they are; skip its per-column cost
    return items.apply(pd.to_numeric, errors="coerce")


def _pairwise_cov(x: np.ndarray) -> np.ndarray:
    """Covariance matrix from pairwise-complete observations (ddof = 1)."""
    k = x.shape[1]
    cov = np.full((k, k), np.nan)
    ok = ~np.isnan(x)
    for i in range(k):
        for j in range(i, k):
            both = ok[:, i] & ok[:, j]
            if both.sum() < 2:
                continue
            a, b = x[both, i], x[both, j]
            c = float(((a - a.mean()) * (b - b.mean())).sum() / (both.sum() - 1))
            cov[i, j] = cov[j, i] = c
    return cov


def cronbach_alpha(items: pd.DataFrame, *, item: str | None = None, scores: str | None = None,
                   subject: str | None = None, nan_policy: str = "pairwise", ci: float = 0.95
                   ) -> tuple[float, tuple[float, float]]:
    """Cronbach's alpha with the Feldt confidence interval.

    ``alpha = k / (k - 1) * (1 - trace(C) / sum(C))`` with ``C`` the item covariance
    matrix; Feldt (1965) interval ``1 - (1 - alpha) * F`` with F quantiles on
    ``(n - 1, (n - 1)(k - 1))`` degrees of freedom.

    Parameters
    ----------
    items : DataFrame
        Wide: one column per item, one row per respondent. Or long, with ``item``,
        ``scores`` and ``subject`` naming its columns.
    nan_policy : {"pairwise", "listwise"}
        ``pairwise`` (default): covariances from pairwise-complete answers;
        ``listwise``: covariances from respondents who answered every item. In both
        cases the interval's n is the number of respondents with any answer.
    ci : float
        Confidence level of the interval.

    Returns
    -------
    (alpha, (low, high))
        NaN when fewer than 2 items or 2 respondents.
    """
    _check_nan_policy(nan_policy)
    if not 0 < ci < 1:
        raise ValueError(f"ci must be between 0 and 1, got {ci!r}")
    wide = _wide_items(items, item, scores, subject)
    alpha, n, k = _alpha(wide.to_numpy(dtype="float64", na_value=np.nan), nan_policy)
    if math.isnan(alpha):
        return math.nan, (math.nan, math.nan)
    df1, df2 = n - 1, (n - 1) * (k - 1)
    tail = (1 - ci) / 2
    low = 1 - (1 - alpha) * dist.f_isf(tail, df1, df2)
    high = 1 - (1 - alpha) * dist.f_isf(1 - tail, df1, df2)
    return float(alpha), (float(low), float(high))


def _check_nan_policy(nan_policy: str) -> None:
    if nan_policy not in ("pairwise", "listwise"):
        raise ValueError(f"nan_policy must be 'pairwise' or 'listwise', got {nan_policy!r}")


def _alpha(x: np.ndarray, nan_policy: str) -> tuple[float, int, int]:
    """Cronbach's alpha of a respondents x items array (NaN = no answer), with its n and k.

    Items nobody answered and respondents who answered nothing are left out first; alpha
    is NaN when fewer than 2 items or 2 respondents remain or the covariances are unusable.
    """
    x = x[:, ~np.isnan(x).all(axis=0)]
    x = x[~np.isnan(x).all(axis=1)]
    # n of the Feldt interval = respondents with any answer, also under listwise deletion
    # (the convention of pingouin, whose documented values the tests reproduce)
    n, k = x.shape
    if nan_policy == "listwise":
        x = x[~np.isnan(x).any(axis=1)]
    if k < 2 or n < 2:
        return math.nan, n, k
    return _alpha_of_cov(_pairwise_cov(x)), n, k


def _alpha_of_cov(cov: np.ndarray) -> float:
    """Cronbach's alpha from the item covariance matrix (NaN when it is unusable)."""
    k = cov.shape[0]
    total = np.nansum(cov)
    if not np.isfinite(total) or total <= 0 or np.isnan(cov).any():
        return math.nan
    return float(k / (k - 1) * (1 - np.trace(cov) / total))


def alpha_if_dropped(items: pd.DataFrame, *, nan_policy: str = "pairwise") -> pd.Series:
    """Cronbach's alpha of the scale with each item left out in turn (index: item)."""
    _check_nan_policy(nan_policy)
    x = _wide_items(items, None, None, None).to_numpy(dtype="float64", na_value=np.nan)
    if nan_policy == "listwise":
        # the complete respondents depend on which items are kept: one array per item left out
        out = [_alpha(np.delete(x, j, axis=1), nan_policy)[0] for j in range(x.shape[1])]
    else:
        # a pairwise covariance depends on its two items only: compute the matrix once and
        # leave out one row and column per item (the same numbers as recomputing it)
        answered = ~np.isnan(x)
        used = np.flatnonzero(answered.any(axis=0))
        cov = _pairwise_cov(x[:, used])
        out = []
        for j in range(x.shape[1]):
            sub = np.flatnonzero(used != j)              # positions in cov of the items kept
            n = int(np.delete(answered, j, axis=1).any(axis=1).sum())
            out.append(_alpha_of_cov(cov[np.ix_(sub, sub)]) if len(sub) >= 2 and n >= 2 else math.nan)
    return pd.Series(dict(zip(items.columns, out)), name="alpha_if_dropped", dtype="float64")


# ---------------------------------------------------------------------------
# the perception index
# ---------------------------------------------------------------------------
def _scored_items(scored: pd.DataFrame, metric_id: str) -> pd.DataFrame:
    items = _items_of(scored, metric_id)
    out = scored[[item_column(metric_id, i) for i in items]].astype(float)
    out.columns = items
    return out


def respondent_index(scored: pd.DataFrame, metric_id: str, min_share: float = 0.5) -> pd.Series:
    """Each respondent's mean scored item about a metric (NaN if fewer than half answered)."""
    items = _scored_items(scored, metric_id)
    if items.shape[1] == 0:
        return pd.Series(np.nan, index=scored.index, dtype="float64")
    answered = items.notna().sum(axis=1)
    idx = items.mean(axis=1)
    return idx.where(answered >= math.ceil(min_share * items.shape[1]))


def _respondent_groups(survey: pd.DataFrame) -> pd.DataFrame:
    """Each respondent's team, role, tenure band, site (as strings) and role group."""
    groups = pd.DataFrame(index=survey.index)
    for col in (Survey.TEAM, Survey.ROLE, Survey.TENURE_BAND, Survey.SITE):
        if col in survey.columns:
            groups[col] = survey[col].astype("string")
    if Survey.ROLE in survey.columns:
        groups[ROLE_GROUP] = role_groups(survey)
    return groups


def _index_frame(scored: pd.DataFrame, metric_id: str, groups: pd.DataFrame | None = None) -> pd.DataFrame:
    """Respondent index of one metric beside the grouping columns.

    ``groups``: :func:`_respondent_groups` of ``scored``, computed once by callers that
    loop over the metrics.
    """
    groups = _respondent_groups(scored) if groups is None else groups
    return pd.concat([respondent_index(scored, metric_id).rename(_INDEX), groups], axis=1)


def _t_interval(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if n < 2:
        return m, math.nan, math.nan
    half = dist.t_ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return m, m - half, m + half


def _overall_shown(values: pd.Series, threshold: int) -> bool:
    """Is the whole-population group (respondents with an answer) big enough to show?"""
    n = int(values.notna().sum())
    table = pd.DataFrame({"group": ["all"], "n": [n]})
    return len(anonymity.guard_groups(table, "group", "n", threshold, total=False)) == 1


def perception_index(survey: pd.DataFrame, *, threshold: int = anonymity.DEFAULT_THRESHOLD,
                     nan_policy: str = "pairwise") -> pd.DataFrame:
    """Perception index and reliability per metric.

    Returns
    -------
    DataFrame
        ``metric_id, n, index, ci_low, ci_high, alpha, alpha_low, alpha_high, items,
        weakest_item, alpha_if_dropped`` (the item whose removal raises alpha most, and
        the alpha without it). Metrics answered by fewer respondents than the
        threshold are left out.
    """
    scored = score_items(survey)
    rows = []
    for metric in survey_metrics(survey):
        idx = respondent_index(scored, metric)
        if not _overall_shown(idx, threshold):
            continue
        m, lo, hi = _t_interval(idx.to_numpy(dtype=float))
        items = _scored_items(scored, metric)[idx.notna()]
        alpha, (a_lo, a_hi) = cronbach_alpha(items, nan_policy=nan_policy)
        drop = alpha_if_dropped(items, nan_policy=nan_policy) if items.shape[1] > 2 else pd.Series(
            dtype="float64")
        weakest = drop.idxmax() if drop.notna().any() else ""
        rows.append({"metric_id": metric, "n": int(idx.notna().sum()), _INDEX: m, "ci_low": lo,
                     "ci_high": hi, "alpha": alpha, "alpha_low": a_lo, "alpha_high": a_hi,
                     "items": items.shape[1], "weakest_item": weakest,
                     "alpha_if_dropped": float(drop.max()) if weakest else math.nan})
    cols = ["metric_id", "n", _INDEX, "ci_low", "ci_high", "alpha", "alpha_low", "alpha_high",
            "items", "weakest_item", "alpha_if_dropped"]
    return pd.DataFrame(rows, columns=cols)


def reliability_table(survey: pd.DataFrame, *, threshold: int = anonymity.DEFAULT_THRESHOLD,
                      nan_policy: str = "pairwise") -> pd.DataFrame:
    """Alpha if each item is dropped, per metric (rows: metric, columns: items)."""
    scored = score_items(survey)
    rows = {}
    for metric in survey_metrics(survey):
        idx = respondent_index(scored, metric)
        if not _overall_shown(idx, threshold):
            continue
        items = _scored_items(scored, metric)[idx.notna()]
        drop = alpha_if_dropped(items, nan_policy=nan_policy)
        drop["all items"] = cronbach_alpha(items, nan_policy=nan_policy)[0]
        rows[metric] = drop
    table = pd.DataFrame(rows).T
    table.index.name = "metric_id"
    return table


def likert_counts(survey: pd.DataFrame, *, threshold: int = anonymity.DEFAULT_THRESHOLD,
                  names: dict | None = None) -> pd.DataFrame:
    """Answer counts per metric and item **as answered** (for the diverging bars).

    Returns a long table ``metric_id, item_id, statement, reverse_keyed, answer (1..5),
    count, n, share``. An item answered by fewer respondents than the threshold is
    left out. ``names`` (metric_id -> name) is used in the statement text.
    """
    names = names or {}
    score_items(survey)  # validates the answers
    rows = []
    for metric in survey_metrics(survey):
        for item in _items_of(survey, metric):
            values = pd.to_numeric(survey[item_column(metric, item)], errors="coerce")
            if not _overall_shown(values, threshold):
                continue
            n = int(values.notna().sum())
            counts = values.value_counts().reindex(range(1, 6), fill_value=0)
            for answer, count in counts.items():
                rows.append({"metric_id": metric, "item_id": item,
                             "statement": ITEM_BANK[item].format(metric=names.get(metric, metric)),
                             "reverse_keyed": item in REVERSE_ITEMS, "answer": int(answer),
                             "count": int(count), "n": n, "share": count / n})
    return pd.DataFrame(rows, columns=["metric_id", "item_id", "statement", "reverse_keyed",
                                       "answer", "count", "n", "share"])


# ---------------------------------------------------------------------------
# staff vs managers
# ---------------------------------------------------------------------------
def rank_biserial(x: Sequence[float], y: Sequence[float]) -> float:
    """Rank-biserial correlation ``P(y > x) - P(y < x)`` (positive: y tends to be higher)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if not len(x) or not len(y):
        return math.nan
    diff = y[:, None] - x[None, :]
    return float(((diff > 0).sum() - (diff < 0).sum()) / diff.size)


def mann_whitney_gap(staff: Sequence[float], managers: Sequence[float], level: float = 0.95) -> dict:
    """Mann-Whitney U test of managers vs staff, with the rank-biserial r and its interval.

    Returns
    -------
    dict
        ``u`` (U of the managers), ``p`` (two-sided, normal approximation with tie and
        continuity corrections, as ``scipy.stats.mannwhitneyu(method="asymptotic")``),
        ``r`` (rank-biserial, positive = managers higher), ``r_low``, ``r_high``,
        ``n_staff``, ``n_managers``, ``mean_staff``, ``mean_managers``, ``gap`` (mean
        difference, managers - staff).
    """
    x = np.asarray(staff, float)
    y = np.asarray(managers, float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    n1, n2 = len(x), len(y)
    out = dict(u=math.nan, p=math.nan, r=math.nan, r_low=math.nan, r_high=math.nan, n_staff=n1,
               n_managers=n2, mean_staff=float(x.mean()) if n1 else math.nan,
               mean_managers=float(y.mean()) if n2 else math.nan, gap=math.nan)
    if n1 < 1 or n2 < 1:
        return out
    out["gap"] = out["mean_managers"] - out["mean_staff"]
    ranks = dist.rankdata(np.concatenate([y, x]))
    u = float(ranks[:n2].sum() - n2 * (n2 + 1) / 2)
    n = n1 + n2
    mu = n1 * n2 / 2
    _, ties = np.unique(ranks, return_counts=True)
    var = n1 * n2 / 12 * ((n + 1) - (ties ** 3 - ties).sum() / (n * (n - 1)))
    if var > 0:
        z = (abs(u - mu) - 0.5) / math.sqrt(var)
        p = float(min(1.0, 2 * dist.norm_sf(max(z, 0.0))))
    else:
        p = 1.0
    a = u / (n1 * n2)  # common-language effect: P(manager > staff) + ties / 2
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt(max(a * (1 - a) + (n2 - 1) * (q1 - a * a) + (n1 - 1) * (q2 - a * a), 0.0)
                   / (n1 * n2))
    zc = dist.norm_ppf(0.5 + level / 2)
    a_lo, a_hi = max(0.0, a - zc * se), min(1.0, a + zc * se)
    out.update(u=u, p=p, r=2 * a - 1, r_low=2 * a_lo - 1, r_high=2 * a_hi - 1)
    return out


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and are not counted)."""
    p = np.asarray(pvalues, float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="mergesort")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        out[i] = min(1.0, running)
    return out


def _effect_severity(sig: bool, effect: float, medium: float, large: float) -> str:
    if not sig or math.isnan(effect) or abs(effect) < medium:
        return "ok"
    return "high" if abs(effect) >= large else "medium"


def staff_manager_gaps(survey: pd.DataFrame, *, threshold: int = anonymity.DEFAULT_THRESHOLD
                       ) -> pd.DataFrame:
    """Staff vs manager gap in the perception index, per metric (guarded).

    Both groups must pass the anonymity guard (a total is published, so if one is
    hidden the other is hidden too and the metric is left out).

    Returns
    -------
    DataFrame
        ``metric_id, n_staff, n_managers, mean_staff, mean_managers, gap, u, p, p_holm,
        r, r_low, r_high, severity``.
    """
    if Survey.ROLE not in survey.columns:
        raise InputDataError("survey: column 'role' is missing; it is needed for the staff vs "
                             "manager comparison")
    scored = score_items(survey)
    by = _respondent_groups(scored)
    rows = []
    for metric in survey_metrics(survey):
        frame = _index_frame(scored, metric, by)
        shown = anonymity.guarded_rows(frame, ROLE_GROUP, _INDEX, threshold=threshold)
        groups = set(shown[ROLE_GROUP])
        if groups != {STAFF, MANAGERS}:
            continue
        res = mann_whitney_gap(shown.loc[shown[ROLE_GROUP] == STAFF, _INDEX],
                               shown.loc[shown[ROLE_GROUP] == MANAGERS, _INDEX])
        rows.append({"metric_id": metric, **res})
    cols = ["metric_id", "n_staff", "n_managers", "mean_staff", "mean_managers", "gap", "u", "p",
            "p_holm", "r", "r_low", "r_high", "severity"]
    table = pd.DataFrame(rows, columns=[c for c in cols if c not in ("p_holm", "severity")])
    table["p_holm"] = holm(table["p"].to_numpy()) if len(table) else []
    table["severity"] = [_effect_severity(p < SIGNIFICANCE, r, MEDIUM_R, LARGE_R)
                         for p, r in zip(table["p_holm"], table["r"])]
    return table[cols]


# ---------------------------------------------------------------------------
# teams
# ---------------------------------------------------------------------------
def kruskal_wallis(data: pd.DataFrame, dv: str, between: str, *,
                   threshold: int | None = anonymity.DEFAULT_THRESHOLD, total: bool = True,
                   hide=(), priority: dict | None = None) -> dict:
    """Kruskal-Wallis H test across groups, after the anonymity guard.

    Groups the guard hides (smaller than ``threshold``, or hidden so the total does
    not reveal them) are dropped from the test. ``threshold=None`` tests every group
    (for non-survey data). ``hide`` / ``priority``: the survey-wide plan of
    :func:`audit_lib.anonymity.survey_guard`.

    Returns
    -------
    dict
        ``h`` (tie-corrected), ``ddof`` (k - 1), ``p``, ``epsilon2`` = H / (n - 1),
        ``eta2_h`` = (H - k + 1) / (n - k), ``n``, ``k``, ``groups`` (shown labels),
        ``summary`` (the guarded per-group table: n, mean, median, sd).
    """
    for c in (dv, between):
        if c not in data.columns:
            raise KeyError(f"column {c!r} not in the data (has {list(data.columns)})")
    frame = data[[between, dv]].dropna()
    if threshold is None:
        g = frame.groupby(between, observed=True, sort=True)[dv]
        summary = g.agg(["size", "mean", "median", "std"]).reset_index()
        summary.columns = [between, "n", "mean", "median", "sd"]
        rows = frame
    else:
        summary = anonymity.summarise(frame, between, dv, threshold=threshold, total=total,
                                      hide=hide, priority=priority)
        rows = frame[frame[between].isin(set(summary[between]))]
    groups = [grp[dv].to_numpy(float) for _, grp in rows.groupby(between, observed=True, sort=True)]
    k, n = len(groups), int(sum(len(x) for x in groups))
    out = dict(h=math.nan, ddof=k - 1, p=math.nan, epsilon2=math.nan, eta2_h=math.nan, n=n, k=k,
               groups=[str(x) for x in summary[between]], summary=summary.reset_index(drop=True))
    if k < 2 or n <= k:
        return out
    ranks = dist.rankdata(np.concatenate(groups))
    h, start = 0.0, 0
    for x in groups:
        r = ranks[start:start + len(x)]
        h += r.sum() ** 2 / len(x)
        start += len(x)
    h = 12 / (n * (n + 1)) * h - 3 * (n + 1)
    _, ties = np.unique(ranks, return_counts=True)
    correction = 1 - (ties ** 3 - ties).sum() / (n ** 3 - n)
    h = h / correction if correction > 0 else math.nan
    out.update(h=float(h), p=float(dist.chi2_sf(h, k - 1)), epsilon2=float(h / (n - 1)),
               eta2_h=float((h - k + 1) / (n - k)))
    return out


def team_differences(survey: pd.DataFrame, *, threshold: int = anonymity.DEFAULT_THRESHOLD
                     ) -> pd.DataFrame:
    """Kruskal-Wallis across the shown teams, per metric, with Holm across metrics.

    Returns
    -------
    DataFrame
        ``metric_id, k, n, h, ddof, p, p_holm, epsilon2, eta2_h, highest, lowest,
        severity`` (``highest``/``lowest``: shown teams with the highest/lowest mean).
    """
    cols = ["metric_id", "k", "n", "h", "ddof", "p", "p_holm", "epsilon2", "eta2_h", "highest",
            "lowest", "severity"]
    if Survey.TEAM not in survey.columns:
        return pd.DataFrame(columns=cols)
    scored = score_items(survey)
    plan = anonymity.survey_guard(survey, Survey.TEAM, threshold)
    by = _respondent_groups(scored)
    rows = []
    for metric in survey_metrics(survey):
        frame = _index_frame(scored, metric, by)
        res = kruskal_wallis(frame, _INDEX, Survey.TEAM, threshold=threshold, **plan)
        if res["k"] < 2:
            continue
        summ = res["summary"].sort_values(["mean", Survey.TEAM], kind="mergesort")
        rows.append({"metric_id": metric, **{c: res[c] for c in ("k", "n", "h", "ddof", "p",
                                                                 "epsilon2", "eta2_h")},
                     "highest": str(summ[Survey.TEAM].iloc[-1]),
                     "lowest": str(summ[Survey.TEAM].iloc[0])})
    table = pd.DataFrame(rows, columns=[c for c in cols if c not in ("p_holm", "severity")])
    table["p_holm"] = holm(table["p"].to_numpy()) if len(table) else []
    table["severity"] = [_effect_severity(p < SIGNIFICANCE, e, MEDIUM_ETA2, LARGE_ETA2)
                         for p, e in zip(table["p_holm"], table["eta2_h"])]
    return table[cols]


def team_index(survey: pd.DataFrame, metric_id: str, *,
               threshold: int = anonymity.DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Guarded per-team perception index of one metric (n, mean, median, sd)."""
    frame = _index_frame(score_items(survey), metric_id)
    plan = anonymity.survey_guard(survey, Survey.TEAM, threshold)
    return anonymity.summarise(frame, Survey.TEAM, _INDEX, threshold=threshold, **plan)


# ---------------------------------------------------------------------------
# pressure and gaming
# ---------------------------------------------------------------------------
def wilson_interval(k: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion k / n."""
    if n <= 0:
        return math.nan, math.nan
    z = dist.norm_ppf(0.5 + level / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def agreement_shares(survey: pd.DataFrame, item_id: str, *,
                     threshold: int = anonymity.DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Share of respondents agreeing (4-5, as answered) with one item, per metric.

    Staff (agents) are used when the guard shows them separately from managers
    (pressure and work-arounds are felt at the front line); otherwise everyone.

    Returns
    -------
    DataFrame
        ``metric_id, population, n, agree, share, ci_low, ci_high, severity``.
    """
    rows = []
    roles = role_groups(survey) if Survey.ROLE in survey.columns else None
    for metric in survey_metrics(survey):
        col = item_column(metric, item_id)
        if col not in survey.columns:
            continue
        answers = pd.to_numeric(survey[col], errors="coerce")
        frame = pd.DataFrame({"agree": (answers >= 4).astype(float).where(answers.notna())})
        population = "all respondents"
        data = frame["agree"]
        if roles is not None:
            frame[ROLE_GROUP] = roles
            shown = anonymity.summarise(frame, ROLE_GROUP, "agree", threshold=threshold)
            if STAFF in set(shown[ROLE_GROUP]):
                population = "staff"
                data = frame.loc[frame[ROLE_GROUP] == STAFF, "agree"]
        if not _overall_shown(data, threshold):
            continue
        n = int(data.notna().sum())
        k = float(data.sum())
        lo, hi = wilson_interval(k, n)
        sev = "high" if lo >= LARGE_MAJORITY else "medium" if lo >= MAJORITY else (
            "low" if k / n >= 0.4 else "ok")
        rows.append({"metric_id": metric, "population": population, "n": n, "agree": int(k),
                     "share": k / n, "ci_low": lo, "ci_high": hi, "severity": sev})
    return pd.DataFrame(rows, columns=["metric_id", "population", "n", "agree", "share", "ci_low",
                                       "ci_high", "severity"])


# ---------------------------------------------------------------------------
# response rates and counts
# ---------------------------------------------------------------------------
#: report headers of :func:`response_rates`' columns
RESPONSE_RATE_HEADERS = {"team": "Team", "respondents": "Respondents", "agents_responding": "Agents answering",
                         "agents": "Agents in the contacts", "response_rate": "Agent response rate"}


def response_rate_display(rates: pd.DataFrame) -> pd.DataFrame:
    """:func:`response_rates` for the report: readable headers, the rate as a whole percentage.

    A blank rate (hidden, or not computable) stays blank; ``attrs`` (the note) is kept.

    Examples
    --------
    >>> rates = pd.DataFrame({"team": ["A", "total"], "respondents": [8, 9],
    ...                       "response_rate": pd.array([0.8125, pd.NA], dtype="Float64")})
    >>> response_rate_display(rates).to_dict("list")
    {'Team': ['A', 'total'], 'Respondents': [8, 9], 'Agent response rate': ['81%', '']}
    """
    out = rates.copy()
    if "response_rate" in out.columns:
        out["response_rate"] = [("" if pd.isna(v) else f"{float(v):.0%}") for v in out["response_rate"]]
    out = out.rename(columns=RESPONSE_RATE_HEADERS)
    out.attrs = dict(rates.attrs)
    return out


def response_rates(survey: pd.DataFrame, headcount: pd.DataFrame | None = None, *,
                   threshold: int = anonymity.DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Respondents per team (guarded), and agent response rate when a headcount is given.

    Parameters
    ----------
    headcount : DataFrame, optional
        ``team`` and ``agents`` (e.g. agents seen in the contacts per team).

    Returns
    -------
    DataFrame
        ``team, respondents, agents_responding, agents, response_rate`` for the shown
        teams, then a ``total`` row when the total may be shown. Every count, the total's
        included, covers respondents who gave a team (as :func:`team_role_counts` does).
        ``attrs["note"]`` is a plain-language footnote (suppression; respondents without a
        team; rates above 100% are blanked).
    """
    if Survey.TEAM not in survey.columns:
        return pd.DataFrame(columns=[Survey.TEAM, "respondents"])
    frame = pd.DataFrame({Survey.TEAM: survey[Survey.TEAM].astype("string")})
    plan = anonymity.survey_guard(survey, Survey.TEAM, threshold)
    shown = anonymity.summarise(frame, Survey.TEAM, threshold=threshold, **plan)
    out = shown.rename(columns={"n": "respondents"})
    teams = set(out[Survey.TEAM])
    cols = [Survey.TEAM, "respondents"]
    total_shown = shown.attrs.get("total_shown", False)
    if headcount is not None and Survey.ROLE in survey.columns:
        is_agent = _roles(survey).isin(Survey.STAFF_ROLES)
        agents_resp = frame[is_agent.fillna(False).to_numpy()]
        # agent counts per team are a sub-group: guard them on their own too
        a_shown = anonymity.summarise(agents_resp, Survey.TEAM, threshold=threshold, **plan)
        a_map = dict(zip(a_shown[Survey.TEAM], a_shown["n"]))
        hc = headcount.assign(**{Survey.TEAM: headcount[Survey.TEAM].astype("string")})
        hc_map = dict(zip(hc[Survey.TEAM], hc["agents"]))
        out["agents_responding"] = out[Survey.TEAM].map(a_map).astype("Int64")
        out["agents"] = out[Survey.TEAM].map(hc_map).astype("Int64")
        out["response_rate"] = (out["agents_responding"] / out["agents"]).astype("Float64")
        cols += ["agents_responding", "agents", "response_rate"]
        if total_shown:
            # agents who gave a team, like every other count here and the team x role table
            # (an agent without a team is in no team's headcount either)
            agents_shown = a_shown.attrs["total_shown"]
            n_agents_resp = int(a_shown.attrs["overall_n"]) if agents_shown else pd.NA
            total_agents = int(hc["agents"].sum())
            total_row = {Survey.TEAM: "total", "respondents": int(frame[Survey.TEAM].notna().sum()),
                         "agents_responding": n_agents_resp, "agents": total_agents,
                         "response_rate": n_agents_resp / total_agents if agents_shown and total_agents else pd.NA}
    elif total_shown:
        total_row = {Survey.TEAM: "total", "respondents": int(frame[Survey.TEAM].notna().sum())}
    out = out[cols]
    if total_shown:
        out = pd.concat([out, pd.DataFrame([total_row])], ignore_index=True)
    notes = [anonymity.suppression_note(shown.attrs["suppressed"], threshold)]
    if total_shown and frame[Survey.TEAM].isna().any():
        notes.append("Respondents who gave no team are not counted in this table.")
    if "response_rate" in out.columns:
        out["response_rate"] = out["response_rate"].astype("Float64")
        over = (out["agents_responding"] > out["agents"]).fillna(False).astype(bool)
        if over.any():
            # a rate above 100% means the survey's team field and the contacts disagree
            out.loc[over, "response_rate"] = pd.NA
            notes.append("Some teams have more agents answering than agents seen in the contacts "
                         "(the survey's team names or the period may not match the contacts); "
                         "their response rate is left blank.")
    out.attrs = {"note": " ".join(n for n in notes if n), "suppressed": shown.attrs["suppressed"],
                 "threshold": threshold,
                 "teams_shown": sorted(teams)}
    return out


def team_role_counts(survey: pd.DataFrame, *, threshold: int = anonymity.DEFAULT_THRESHOLD
                     ) -> pd.DataFrame:
    """Respondents by team x role, guarded as a cross-tabulation (see anonymity)."""
    if Survey.TEAM not in survey.columns or Survey.ROLE not in survey.columns:
        return pd.DataFrame()
    frame = pd.DataFrame({Survey.TEAM: survey[Survey.TEAM].astype("string"),
                          Survey.ROLE: _roles(survey)})
    plan = anonymity.survey_guard(survey, Survey.TEAM, threshold)
    return anonymity.crosstab_counts(frame, Survey.TEAM, Survey.ROLE, threshold, **plan)


# ---------------------------------------------------------------------------
# comments
# ---------------------------------------------------------------------------
def redact(text: str, names: Iterable[str] = (), *, person_names: bool = True) -> str:
    """Remove e-mail addresses, phone numbers and names from a comment.

    ``names`` (agents' names or ids, team names) are replaced by ``[name]``; with
    ``person_names`` any pair of capitalised words (a first and last name) is too.
    """
    s = "" if text is None else str(text)
    s = _EMAIL_RE.sub("[e-mail]", s)
    s = _PHONE_RE.sub("[phone]", s)
    words = sorted({str(n).strip() for n in names if n is not None and str(n).strip()},
                   key=len, reverse=True)
    if words:
        pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)",
                             re.IGNORECASE)
        s = pattern.sub("[name]", s)
    if person_names:
        s = _PERSON_RE.sub("[name]", s)
    return s


def _themes_of(text: str) -> list[str]:
    found = [t for t, rx in _THEME_RE.items() if rx.search(text)]
    return found or [_OTHER]


def _comments(survey: pd.DataFrame, metric_id: str) -> pd.Series:
    col = comment_column(metric_id)
    if col not in survey.columns:
        return pd.Series(dtype="string")
    s = survey[col].astype("string").str.strip()
    return s[s.notna() & (s != "")]


def comment_themes(survey: pd.DataFrame, *, threshold: int = anonymity.DEFAULT_COMMENTS_THRESHOLD
                   ) -> pd.DataFrame:
    """Comments per metric and theme (long: ``metric_id, theme, comments, share, n_comments``).

    A metric commented on by fewer people than ``threshold``
    (``thresholds.comments_anonymity``) is left out entirely.
    """
    rows = []
    for metric in _comment_metrics(survey):
        comments = _comments(survey, metric)
        if not _overall_shown(comments, threshold):
            continue
        themes = comments.map(_themes_of)
        counts = pd.Series([t for ts in themes for t in ts]).value_counts()
        for theme in (*THEMES, _OTHER):
            rows.append({"metric_id": metric, "theme": theme, "comments": int(counts.get(theme, 0)),
                         "n_comments": len(comments),
                         "share": counts.get(theme, 0) / len(comments)})
    return pd.DataFrame(rows, columns=["metric_id", "theme", "comments", "share", "n_comments"])


def _comment_metrics(survey: pd.DataFrame) -> list[str]:
    out = []
    for col in survey.columns:
        if str(col).endswith(SURVEY_SEP + Survey.COMMENT):
            out.append(str(col)[: -len(SURVEY_SEP + Survey.COMMENT)])
    return out


def theme_counts(survey: pd.DataFrame, *, threshold: int = anonymity.DEFAULT_COMMENTS_THRESHOLD
                 ) -> pd.DataFrame:
    """Wide view of :func:`comment_themes`: rows metrics, columns themes, plus ``comments``."""
    long = comment_themes(survey, threshold=threshold)
    if long.empty:
        return pd.DataFrame()
    wide = long.pivot(index="metric_id", columns="theme", values="comments")
    wide = wide[[t for t in (*THEMES, _OTHER) if t in wide.columns]]
    wide.insert(0, "comments", long.groupby("metric_id")["n_comments"].first())
    return wide


def quotes(survey: pd.DataFrame, names: Iterable[str] = (), *, per_metric: int = 3,
           threshold: int = anonymity.DEFAULT_COMMENTS_THRESHOLD, max_chars: int = 280
           ) -> pd.DataFrame:
    """Redacted, unattributed example comments per metric.

    Only metrics with at least ``threshold`` comments are quoted; quotes carry no
    team, role or tenure. ``names`` (agents' names and ids, team names) are replaced
    by ``[name]``. The choice is deterministic: comments from the metric's most
    common themes first, then by text.
    """
    names = list(names)
    if Survey.TEAM in survey.columns:
        names += [str(t) for t in survey[Survey.TEAM].dropna().unique()]
    rows = []
    for metric in _comment_metrics(survey):
        comments = _comments(survey, metric)
        if not _overall_shown(comments, threshold):
            continue
        themes = comments.map(_themes_of)
        freq = pd.Series([t for ts in themes for t in ts]).value_counts()
        rank = {t: i for i, t in enumerate(sorted(freq.index, key=lambda t: (-freq[t], t)))}
        frame = pd.DataFrame({"text": comments.map(lambda c: redact(c, names)),
                              "theme": themes.map(lambda ts: min(ts, key=lambda t: rank[t]))})
        frame["rank"] = frame["theme"].map(rank)
        frame = frame.drop_duplicates("text").sort_values(["rank", "text"], kind="mergesort")
        chosen = frame.groupby("theme", sort=False).head(1).head(per_metric)
        for rec in chosen.itertuples(index=False):
            text = rec.text if len(rec.text) <= max_chars else rec.text[: max_chars - 1] + "…"
            rows.append({"metric_id": metric, "theme": rec.theme, "quote": text})
    return pd.DataFrame(rows, columns=["metric_id", "theme", "quote"])


def format_quotes(table: pd.DataFrame, names: dict | None = None) -> str:
    """Quotes as plain text (client text is shown as text, never as HTML)."""
    names = names or {}
    if table.empty:
        return "No metric has enough comments to quote."
    lines = []
    for metric, grp in table.groupby("metric_id", sort=True):
        lines.append(f"{names.get(metric, metric)}")
        lines += [f"  [{r.theme}] \"{r.quote}\"" for r in grp.itertuples(index=False)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# findings
# ---------------------------------------------------------------------------
def _setting(obj, name, default):
    return getattr(obj, name, default) if obj is not None else default


def perception_findings(survey: pd.DataFrame, *, thresholds=None, settings=None) -> pd.DataFrame:
    """All perception findings (lens ``perception``) for a survey.

    Checks: ``perception_index`` (info), ``index_reliability`` (low when alpha is below
    ``perception.min_alpha``: a caveat on the reading, not a problem of the metric),
    ``staff_manager_gap``, ``team_difference``, ``perceived_pressure``,
    ``perceived_gaming``, ``comment_themes`` (info). No row names a suppressed group.
    """
    anon = int(_setting(thresholds, "anonymity", anonymity.DEFAULT_THRESHOLD))
    canon = int(_setting(thresholds, "comments_anonymity", anonymity.DEFAULT_COMMENTS_THRESHOLD))
    min_alpha = float(_setting(settings, "min_alpha", 0.6))
    rows = []
    index = perception_index(survey, threshold=anon)
    for metric in survey_metrics(survey):
        if metric not in set(index["metric_id"]):
            rows.append(finding(LENS, metric, "perception_index", "not_assessable",
                                detail=f"Fewer than {anon} people answered about {metric}: "
                                       "not shown, to protect anonymity."))
    for r in index.itertuples(index=False):
        rows.append(finding(LENS, r.metric_id, "perception_index", "info", value=r.index,
                            ci_low=r.ci_low, ci_high=r.ci_high, n=r.n,
                            evidence=f"mean of {r.items} items, 1 = unfavourable, 5 = favourable",
                            detail=f"Staff and managers rate {r.metric_id} {r.index:.2f} out of 5 "
                                   "on average (reverse-worded statements reversed)."))
        if math.isnan(r.alpha):
            sev, det = "not_assessable", "Too little variation to estimate reliability."
        elif r.alpha < min_alpha:
            sev = "low"
            det = (f"The seven statements about {r.metric_id} do not hang together "
                   f"(alpha {r.alpha:.2f} < {min_alpha:.2f}); read the items one by one rather "
                   "than the index.")
        else:
            sev, det = "ok", f"The statements hang together (alpha {r.alpha:.2f})."
        rows.append(finding(LENS, r.metric_id, "index_reliability", sev, value=r.alpha,
                            threshold=min_alpha, ci_low=r.alpha_low, ci_high=r.alpha_high, n=r.n,
                            evidence=(f"weakest item: {r.weakest_item} (alpha without it "
                                      f"{r.alpha_if_dropped:.2f})" if r.weakest_item else ""),
                            detail=det))
    metrics = survey_metrics(survey)
    gaps = staff_manager_gaps(survey, threshold=anon) if Survey.ROLE in survey.columns else None
    for metric in metrics:
        g = gaps[gaps["metric_id"] == metric] if gaps is not None else pd.DataFrame()
        if g.empty:
            rows.append(finding(LENS, metric, "staff_manager_gap", "not_assessable",
                                detail="Staff and managers cannot be compared: one of the groups "
                                       f"is below the anonymity threshold ({anon}) or missing."))
            continue
        r = g.iloc[0]
        who = "Managers" if r.gap > 0 else "Staff"
        rows.append(finding(
            LENS, metric, "staff_manager_gap", r.severity, label="managers higher" if r.r > 0 else
            "staff higher", value=r.r, threshold=MEDIUM_R, ci_low=r.r_low, ci_high=r.r_high,
            n=int(r.n_staff + r.n_managers),
            evidence=(f"index staff {r.mean_staff:.2f} vs managers {r.mean_managers:.2f}; "
                      f"Mann-Whitney U = {r.u:.1f}, p = {r.p:.3g}, Holm p = {r.p_holm:.3g}; "
                      f"rank-biserial r = {r.r:.2f}"),
            detail=(f"{who} rate {metric} {abs(r.gap):.2f} points higher on the 1-5 index."
                    + (" The gap is clear (significant after correction, at least a medium effect)."
                       if r.severity in ("medium", "high") else
                       " The difference is not clear enough to act on."))))
    teams = team_differences(survey, threshold=anon)
    for metric in metrics:
        t = teams[teams["metric_id"] == metric]
        if t.empty:
            rows.append(finding(LENS, metric, "team_difference", "not_assessable",
                                detail="Fewer than two teams can be shown under the anonymity rule."))
            continue
        r = t.iloc[0]
        rows.append(finding(
            LENS, metric, "team_difference", r.severity, value=r.eta2_h, threshold=MEDIUM_ETA2,
            n=int(r.n),
            evidence=(f"Kruskal-Wallis H = {r.h:.2f} (df {int(r.ddof)}), p = {r.p:.3g}, Holm p = "
                      f"{r.p_holm:.3g}; epsilon² = {r.epsilon2:.3f}, eta²(H) = {r.eta2_h:.3f}; "
                      f"{int(r.k)} teams shown"),
            detail=(f"Teams see {metric} differently: highest {r.highest}, lowest {r.lowest}."
                    if r.severity in ("medium", "high") else
                    f"No clear difference between the teams shown on {metric}.")))
    for item, check, what in (("pressure", "perceived_pressure", "feel pressure to hit"),
                              ("workaround", "perceived_gaming", "have seen work-arounds of")):
        shares = agreement_shares(survey, item, threshold=anon)
        for r in shares.itertuples(index=False):
            rows.append(finding(
                LENS, r.metric_id, check, r.severity, value=r.share, threshold=MAJORITY,
                ci_low=r.ci_low, ci_high=r.ci_high, n=r.n,
                evidence=f"{r.agree} of {r.n} {r.population} agree or strongly agree",
                detail=f"{r.share:.0%} of {r.population} say they {what} {r.metric_id}."))
    themes = comment_themes(survey, threshold=canon)
    for metric in _comment_metrics(survey):
        t = themes[themes["metric_id"] == metric]
        if t.empty:
            rows.append(finding(LENS, metric, "comment_themes", "info",
                                detail=f"Fewer than {canon} comments: not summarised, to protect "
                                       "anonymity."))
            continue
        ranked = t[t["theme"] != _OTHER].sort_values(["comments", "theme"], ascending=[False, True],
                                                     kind="mergesort")
        ranked = ranked[ranked["comments"] > 0]
        top = ranked["theme"].iloc[0] if len(ranked) else _OTHER
        rows.append(finding(LENS, metric, "comment_themes", "info", label=top,
                            value=float(t["n_comments"].iloc[0]), n=int(t["n_comments"].iloc[0]),
                            evidence=", ".join(f"{r.theme} {r.comments}" for r in
                                               ranked.itertuples(index=False)),
                            detail=f"Most comments about {metric} are about {top.replace('_', ' ')}."))
    return make_findings(rows)


def audit_findings(audit) -> pd.DataFrame:
    """The perception lens's complete Findings for an :class:`audit_lib.context.Audit`.

    What ``03_perception`` saves; register metrics the survey does not ask about (or
    every metric, when no survey was supplied) get a ``not_assessable`` index row.
    """
    params = audit.params
    register = audit.register
    survey = audit.survey
    metric_ids = [str(m) for m in register[Register.METRIC_ID]] if register is not None else []
    if survey is None or not len(survey):
        return make_findings(
            finding(LENS, m, "perception_index", "not_assessable",
                    detail="No staff survey was supplied (inputs.survey in the params file).")
            for m in metric_ids)
    found = perception_findings(survey, thresholds=params.thresholds, settings=params.perception)
    asked = set(survey_metrics(survey))
    missing = [finding(LENS, m, "perception_index", "not_assessable",
                       detail=f"The staff survey has no questions about {m}.")
               for m in metric_ids if m not in asked]
    return make_findings([*found.to_dict("records"), *missing])


# ---------------------------------------------------------------------------
# presentation helpers for the notebook (plain text, rounded tables)
# ---------------------------------------------------------------------------
def metric_names(register: pd.DataFrame | None) -> dict[str, str]:
    """metric_id -> the register's display name."""
    if register is None or Register.NAME not in register.columns:
        return {}
    return {str(m): str(n) if isinstance(n, str) and n.strip() else str(m)
            for m, n in zip(register[Register.METRIC_ID], register[Register.NAME])}


def headcount(agent_signatures: pd.DataFrame | None) -> pd.DataFrame | None:
    """Agents per team seen in the contacts (``team, agents``), for response rates."""
    if agent_signatures is None or Survey.TEAM not in agent_signatures.columns:
        return None
    counts = agent_signatures.dropna(subset=[Survey.TEAM]).groupby(Survey.TEAM).size()
    return counts.rename("agents").reset_index()


def index_display(index: pd.DataFrame, names: dict | None = None) -> pd.DataFrame:
    """The index table with metric names, rounded, for a report."""
    names = names or {}
    out = pd.DataFrame({
        "metric": [names.get(m, m) for m in index["metric_id"]],
        "respondents": index["n"],
        "index (1-5)": index[_INDEX].round(2),
        "95% interval": [f"{lo:.2f} to {hi:.2f}" for lo, hi in zip(index["ci_low"], index["ci_high"])],
        "alpha": index["alpha"].round(2),
        "alpha 95% interval": [f"{lo:.2f} to {hi:.2f}"
                               for lo, hi in zip(index["alpha_low"], index["alpha_high"])],
        "weakest item (alpha without it)": [f"{w} ({a:.2f})" if w else "" for w, a in
                                            zip(index["weakest_item"], index["alpha_if_dropped"])],
    })
    return out.sort_values("index (1-5)", kind="mergesort").reset_index(drop=True)


def gaps_display(gaps: pd.DataFrame, names: dict | None = None) -> pd.DataFrame:
    """The staff vs manager table with metric names, rounded, for a report."""
    names = names or {}
    return pd.DataFrame({
        "metric": [names.get(m, m) for m in gaps["metric_id"]],
        "staff index": gaps["mean_staff"].round(2), "managers index": gaps["mean_managers"].round(2),
        "gap (managers - staff)": gaps["gap"].round(2),
        "rank-biserial r": gaps["r"].round(2),
        "r 95% interval": [f"{lo:.2f} to {hi:.2f}" for lo, hi in zip(gaps["r_low"], gaps["r_high"])],
        "p (Holm)": gaps["p_holm"].map(lambda p: f"{p:.2g}"),
        "clear gap": gaps["severity"].isin(["medium", "high"]).map({True: "yes", False: "no"}),
    })


def summary_text(findings: pd.DataFrame, names: dict | None = None) -> str:
    """A plain-language reading of the perception findings (for a director)."""
    names = names or {}
    f = findings[findings["lens"] == LENS]

    def nm(m):
        return names.get(m, m)

    lines = []
    idx = f[(f["check"] == "perception_index") & (f["severity"] == "info")].sort_values(
        ["value", "metric_id"], kind="mergesort")
    if len(idx):
        low, high = idx.iloc[0], idx.iloc[-1]
        lines.append(f"- Least favourably seen: {nm(low.metric_id)} ({low.value:.1f} out of 5); "
                     f"most favourably: {nm(high.metric_id)} ({high.value:.1f} out of 5). "
                     "3 is neutral.")
    flagged_rows = f[f["severity"].isin(["medium", "high"])]
    for r in flagged_rows[flagged_rows["check"] == "staff_manager_gap"].itertuples(index=False):
        who = "Managers" if r.label == "managers higher" else "Staff"
        lines.append(f"- {who} think much better of {nm(r.metric_id)} than the other group does "
                     f"(rank-biserial r = {r.value:+.2f}): the people who set the target and the "
                     "people who live with it see it differently.")
    for check, text in (("team_difference", "Teams disagree about {m}."),
                        ("perceived_pressure", "Most staff feel pushed to hit {m} even when it is "
                                               "not right for the customer."),
                        ("perceived_gaming", "Most staff have seen {m} worked around to hit the "
                                             "target.")):
        for r in flagged_rows[flagged_rows["check"] == check].itertuples(index=False):
            lines.append("- " + text.format(m=nm(r.metric_id)))
    themes = f[(f["check"] == "comment_themes") & (f["label"] != "")]
    if len(themes):
        parts = [f"{nm(r.metric_id)}: {r.label.replace('_', ' ')}" for r in themes.itertuples(index=False)]
        lines.append("- Main theme of the comments per metric: " + "; ".join(parts) + ".")
    if not len(flagged_rows):
        lines.append("- No clear problem stands out in how staff see the metrics.")
    unreliable = f[(f["check"] == "index_reliability") & (f["severity"] == "low")]
    if len(unreliable):
        lines.append("- For " + ", ".join(nm(m) for m in unreliable["metric_id"]) + " the statements "
                     "do not hang together, so read the single statements, not the index.")
    return "\n".join(lines)
