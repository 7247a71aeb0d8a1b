"""Verdicts, recommendations and the quarter-over-quarter comparison.

The scorecard turns the four lenses' Findings into one verdict per metric:

``keep``
    the measure works as intended; nothing flagged calls for a change.
``counterbalance``
    keep it, but pair it with a measure that shows the harm its target can cause
    (Grove's paired indicators).
``rework``
    redefine it, retarget it, or decouple it from pay (Harris & Tayler's fixes for
    surrogation); the recommendation says which.
``retire``
    stop using it as a target (a duplicate, or a measure whose improvement goes
    with worse outcomes).
``not assessed``
    nothing was flagged *and* none of the data lenses (behaviour, perception,
    linkage) could assess it: the report says so instead of calling it sound.

The rule
--------
Every *flagged* finding (severity medium or high) of the register, behaviour,
perception and linkage lenses looks up its ``check`` in the rule table
(:data:`DEFAULT_RULES`; ``linkage_class`` is looked up as ``linkage_class:<label>``).
The metric's verdict is the strongest verdict any of its flagged findings
triggers, in the order keep < counterbalance < rework < retire. Findings that are
not flagged never change a verdict. ``params.scorecard.rules`` overrides entries
of the table (``check -> verdict``), e.g. ``{surrogation_risk: rework}`` for a
client who wants every pay-linked measure reworked.

The rationale cites each triggering finding as ``lens/check/scope`` in ``evidence``
and lists the lenses that could not assess the metric.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .columns import Finding as F
from .columns import Register as R
from .errors import ParamsError, RunError
from .findings import FLAGGED, concat, empty_findings, finding, make_findings, read_json

__all__ = [
    "VERDICTS", "DEFAULT_RULES", "REWORK_KIND", "ACTIONS", "EVIDENCE_LENSES", "SCORECARD_COLUMNS",
    "resolve_rules", "build_scorecard", "verdict_findings", "recommendations", "scorecard_findings",
    "key_findings", "executive_summary", "metric_summary", "metric_pages", "compare_quarters",
    "compare_with_previous", "compare_for_audit", "collect_findings", "findings_to_save", "lens_status_table",
    "LENS_ENTRY_POINTS",
    "brief", "evidence_matrix", "rollup_agents",
]

#: verdicts from weakest to strongest intervention
VERDICTS = ("keep", "counterbalance", "rework", "retire")
NOT_ASSESSED = "not assessed"
#: lenses whose findings rest on the client's data (the register lens reads only the register)
EVIDENCE_LENSES = ("behaviour", "perception", "linkage")
JUDGED_LENSES = ("register",) + EVIDENCE_LENSES

#: check -> verdict a flagged finding of that check triggers
DEFAULT_RULES: dict[str, str] = {
    # register: why is it measured, and how is it governed
    "purpose_missing": "rework",
    "purpose_restates_metric": "rework",
    "purpose_only_number": "rework",
    "purpose_no_outcome": "rework",
    "owner_missing": "rework",
    "target_missing": "rework",
    "direction_missing": "rework",
    "target_direction_conflict": "rework",
    "target_implausible": "rework",
    "surrogation_risk": "counterbalance",
    "counterbalance_missing": "counterbalance",
    "counterbalance_unknown": "counterbalance",
    "contradictory_pair": "counterbalance",
    "duplicate_metric": "retire",
    "orphan_not_computable": "rework",
    "orphan_unregistered_kpi": "keep",
    "review_stale": "keep",
    "current_vs_target": "keep",
    # behaviour: what the client's data shows
    "catalogue_risk": "keep",
    "threshold_bunching": "rework",
    "short_contacts": "rework",
    "displacement": "rework",
    "fcr_integrity": "rework",
    "callback_unkept": "rework",
    "hollow_first_reply": "rework",
    "end_of_period_surge": "rework",
    "survey_selection": "rework",
    # perception: how staff see it
    "perception_index": "keep",
    "index_reliability": "keep",
    "staff_manager_gap": "counterbalance",
    "team_difference": "keep",
    "perceived_pressure": "counterbalance",
    "perceived_gaming": "rework",
    "comment_themes": "keep",
    # linkage: does it move with real outcomes
    "association": "keep",
    "within_agent": "keep",
    "lagged": "keep",
    "relative_importance": "keep",
    "decoupling": "rework",
    "counterbalance_worsened": "rework",
    "linkage_class:linked": "keep",
    "linkage_class:weak": "keep",
    "linkage_class:decoupled": "rework",
    "linkage_class:adverse": "retire",
    "linkage_class:not_assessable": "keep",
}

#: which kind of rework a check calls for
REWORK_KIND: dict[str, str] = {
    "threshold_bunching": "retarget", "end_of_period_surge": "retarget", "target_missing": "retarget",
    "target_implausible": "retarget", "target_direction_conflict": "retarget",
    "direction_missing": "retarget",
    "fcr_integrity": "redefine", "hollow_first_reply": "redefine", "survey_selection": "redefine",
    "short_contacts": "redefine", "displacement": "redefine", "callback_unkept": "redefine",
    "purpose_missing": "redefine", "purpose_restates_metric": "redefine", "purpose_only_number": "redefine",
    "purpose_no_outcome": "redefine", "owner_missing": "redefine", "orphan_not_computable": "redefine",
    "decoupling": "redefine", "counterbalance_worsened": "decouple from pay",
    "perceived_gaming": "decouple from pay",
}
#: behaviour detectors that show gaming in the client's data (with a pay link: decouple from pay)
GAMING_CHECKS = ("threshold_bunching", "short_contacts", "displacement", "fcr_integrity", "callback_unkept",
                 "hollow_first_reply", "end_of_period_surge", "survey_selection", "perceived_gaming")

#: plain-language action per check, used in the recommendations
ACTIONS: dict[str, str] = {
    "purpose_missing": "write down what customer or business outcome it is meant to improve",
    "purpose_restates_metric": "state the outcome it serves, not the metric again",
    "purpose_only_number": "state the outcome it serves, not only a number to hit",
    "purpose_no_outcome": "name the customer or business outcome it is meant to move",
    "owner_missing": "name an owner who answers for it",
    "target_missing": "set a target, or report it as a trend without one",
    "direction_missing": "say whether higher or lower is better",
    "target_direction_conflict": "fix the target so it points in the intended direction",
    "target_implausible": "set a target the process can actually reach",
    "surrogation_risk": "loosen its link to pay or discipline and judge it alongside its counter-measure",
    "counterbalance_missing": "pair it with a counter-measure that shows the harm its target can cause",
    "counterbalance_unknown": "fix the counter-measure reference so it names a registered metric",
    "contradictory_pair": "agree which of the two pulling measures wins, and review them together",
    "duplicate_metric": "keep one definition and stop reporting the duplicate",
    "orphan_not_computable": "define it so it can be computed from the data, or stop reporting it",
    "threshold_bunching": "replace the hard threshold with a range or a distribution-based goal",
    "short_contacts": "review very short contacts with the agents concerned and stop rewarding speed alone",
    "displacement": "count transfers and repeat contacts alongside handle time",
    "fcr_integrity": "measure resolution from repeat contacts instead of the agent's own code",
    "callback_unkept": "track every call-back promise to completion and follow up unkept ones",
    "hollow_first_reply": "count the first reply that moves the case forward, not any first reply",
    "end_of_period_surge": "smooth the measurement period so the end of the month is not a deadline",
    "survey_selection": "survey a random sample of contacts instead of agent-chosen ones",
    "staff_manager_gap": "explain to staff why it is measured and listen to why they doubt it",
    "perceived_pressure": "tell staff when the customer comes before the number, and mean it",
    "perceived_gaming": "take it out of individual targets until the workarounds stop",
    "decoupling": "check that it still tracks the outcome it stands for; redefine it if not",
    "counterbalance_worsened": "stop pushing it while its counter-measure gets worse",
    "linkage_class:decoupled": "show that it moves with a real outcome before using it as a target",
    "linkage_class:adverse": "stop using it as a target: improving it goes with worse outcomes",
}

#: plain-language title of each check (report and rationale)
CHECK_TITLES: dict[str, str] = {
    "purpose_missing": "no stated purpose", "duplicate_metric": "duplicates another metric",
    "counterbalance_missing": "no counter-measure", "surrogation_risk": "tied to pay or recognition",
    "threshold_bunching": "results heaped just inside the target",
    "short_contacts": "agents with unusually many very short contacts",
    "displacement": "low handle time paired with transfers or repeats",
    "fcr_integrity": "coded resolution disagrees with repeat contacts",
    "callback_unkept": "call-back promises not kept", "hollow_first_reply": "fast but hollow first replies",
    "end_of_period_surge": "surge at the end of the period", "survey_selection": "selective customer surveys",
    "staff_manager_gap": "managers rate it higher than staff", "decoupling": "moves apart from its outcome",
    "counterbalance_worsened": "its counter-measure got worse", "linkage_class": "link with outcomes",
    "linkage_class:decoupled": "not linked to its outcomes", "linkage_class:adverse": "moves against its outcomes",
    "linkage_class:weak": "only weakly linked to its outcomes", "linkage_class:linked": "linked to its outcomes",
    "perceived_pressure": "staff feel pressed to hit it", "perceived_gaming": "staff see it worked around",
    "target_implausible": "target out of reach or too easy", "current_vs_target": "current value against target",
}

SCORECARD_COLUMNS = ("metric_id", "name", "kpi", "verdict", "rework_kind", "severity", "flagged",
                     "not_assessed", "rationale", "evidence")

_VERDICT_SEVERITY = {"keep": "ok", "counterbalance": "low", "rework": "medium", "retire": "high",
                     NOT_ASSESSED: "not_assessable"}
_SEV_RANK = {"high": 0, "medium": 1, "low": 2, "not_assessable": 3, "info": 4, "ok": 5}
_LENS_WEIGHT = {"behaviour": 0, "linkage": 1, "perception": 2, "register": 3}

#: lens -> function (in ``audit_lib.<lens>``) computing that lens's Findings from an Audit
#: (docs/architecture.md, "Lens entry point")
LENS_ENTRY_POINTS: dict[str, str] = {lens: "audit_findings" for lens in ("register", "behaviour",
                                                                         "perception", "linkage")}


def _title(check: str) -> str:
    return CHECK_TITLES.get(check, str(check).replace("_", " "))


def _rule_key(row) -> str:
    if row[F.CHECK] == "linkage_class":
        return f"linkage_class:{row[F.LABEL]}"
    return str(row[F.CHECK])


def resolve_rules(overrides: dict | None = None) -> dict[str, str]:
    """The rule table with ``params.scorecard.rules`` applied.

    Raises
    ------
    ParamsError
        When an override names a verdict that does not exist.
    """
    rules = dict(DEFAULT_RULES)
    for check, verdict in sorted((overrides or {}).items()):
        if check not in DEFAULT_RULES:
            raise ParamsError(f"params scorecard.rules: unknown check {check!r}; known checks: "
                              f"{', '.join(sorted(DEFAULT_RULES))}.")
        if verdict not in VERDICTS:
            raise ParamsError(f"params scorecard.rules.{check}: verdict {verdict!r} is not one of "
                              f"{', '.join(VERDICTS)}; fix the value in the params file.")
        rules[str(check)] = verdict
    return rules


def _strongest(verdicts) -> str:
    ranks = [VERDICTS.index(v) for v in verdicts if v in VERDICTS]
    return VERDICTS[max(ranks)] if ranks else "keep"


def _cite(row) -> str:
    return f"{row[F.LENS]}/{row[F.CHECK]}/{row[F.SCOPE]}"


def _cite_all(rows: pd.DataFrame) -> str:
    """Citations ``lens/check/scope`` of the evidence rows; agent rows of one check are counted
    (``behaviour/short_contacts/3 agents``), since their pseudonyms are in the findings table."""
    out, agents = [], {}
    for r in rows.to_dict("records"):
        if str(r[F.SCOPE]).startswith("agent:"):
            key = (r[F.LENS], r[F.CHECK])
            if key not in agents:
                agents[key] = 0
                out.append(key)
            agents[key] += 1
        else:
            out.append(_cite(r))
    return "; ".join(c if isinstance(c, str) else
                     f"{c[0]}/{c[1]}/{agents[c]} agent{'s' if agents[c] > 1 else ''}" for c in out)


def _register_frame(register: pd.DataFrame | None, findings: pd.DataFrame) -> pd.DataFrame:
    if register is not None and len(register):
        reg = register.copy()
        reg[R.METRIC_ID] = reg[R.METRIC_ID].astype(str)
        for col in (R.NAME, R.KPI):
            if col not in reg:
                reg[col] = ""
        return reg[[R.METRIC_ID, R.NAME, R.KPI]].fillna("")
    ids = sorted({m for m in findings[F.METRIC_ID].astype(str) if m})
    return pd.DataFrame({R.METRIC_ID: ids, R.NAME: ids, R.KPI: [""] * len(ids)})


def _not_assessed(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(lens, reason) for every evidence lens with no assessable finding for this metric."""
    out = []
    for lens in EVIDENCE_LENSES:
        lens_rows = rows[rows[F.LENS] == lens]
        if lens_rows.empty:
            out.append((lens, "no findings from this lens"))
            continue
        usable = lens_rows[~lens_rows[F.SEVERITY].isin(("not_assessable",))
                           & (lens_rows[F.CHECK] != "catalogue_risk")]
        if usable.empty:
            reasons = [d for d in lens_rows.loc[lens_rows[F.SEVERITY] == "not_assessable", F.DETAIL] if d]
            out.append((lens, reasons[0] if reasons else "the data could not answer"))
    return out


def build_scorecard(findings: pd.DataFrame, register: pd.DataFrame | None = None,
                    rules: dict | None = None) -> pd.DataFrame:
    """One verdict per metric from the lenses' Findings.

    Parameters
    ----------
    findings : DataFrame
        Findings of the register, behaviour, perception and linkage lenses
        (other lenses' rows are ignored).
    register : DataFrame, optional
        The metric register (``metric_id``, ``name``, ``kpi``); every registered metric
        gets a row even without findings. Without it, the metrics named in the findings.
    rules : dict, optional
        Overrides of :data:`DEFAULT_RULES` (``params.scorecard.rules``).

    Returns
    -------
    DataFrame
        Columns :data:`SCORECARD_COLUMNS`, one row per metric, sorted by ``metric_id``.
    """
    table = resolve_rules(rules)
    lens_rows = findings[findings[F.LENS].isin(JUDGED_LENSES)]
    reg = _register_frame(register, findings)
    out = []
    for metric_id, name, kpi in reg[[R.METRIC_ID, R.NAME, R.KPI]].itertuples(index=False):
        rows = lens_rows[lens_rows[F.METRIC_ID].astype(str) == str(metric_id)]
        flagged = rows[rows[F.SEVERITY].isin(FLAGGED)].copy()
        flagged["_rank"] = flagged[F.SEVERITY].map(_SEV_RANK)
        flagged["_lens"] = flagged[F.LENS].map(_LENS_WEIGHT)
        flagged = flagged.sort_values(["_rank", "_lens", F.CHECK, F.SCOPE], kind="mergesort")
        flagged["_verdict"] = [table.get(_rule_key(r), "keep") for r in flagged.to_dict("records")]
        verdict = _strongest(flagged["_verdict"])
        missing = _not_assessed(rows)
        if verdict == "keep" and flagged.empty and len(missing) == len(EVIDENCE_LENSES):
            verdict = NOT_ASSESSED
        triggers = flagged[flagged["_verdict"] == verdict] if verdict in VERDICTS[1:] else flagged.iloc[:0]
        kinds = []
        if verdict == "rework":
            kinds = sorted({REWORK_KIND.get(c, "redefine") for c in triggers[F.CHECK]})
            pay_linked = ((flagged[F.CHECK] == "surrogation_risk") & (flagged[F.SEVERITY] == "high")).any()
            if pay_linked and flagged[F.CHECK].isin(GAMING_CHECKS).any() and "decouple from pay" not in kinds:
                kinds.append("decouple from pay")
        out.append({
            "metric_id": str(metric_id), "name": str(name) or str(metric_id), "kpi": str(kpi),
            "verdict": verdict, "rework_kind": ", ".join(kinds),
            "severity": _VERDICT_SEVERITY[verdict], "flagged": int(len(flagged)),
            "not_assessed": "; ".join(f"{lens} ({why})" for lens, why in missing),
            "rationale": _rationale(verdict, kinds, triggers, flagged, missing),
            "evidence": _cite_all(flagged),
        })
    return pd.DataFrame(out, columns=list(SCORECARD_COLUMNS)).sort_values(
        "metric_id", kind="mergesort").reset_index(drop=True)


def _group_text(rows: pd.DataFrame) -> list[str]:
    """One phrase per check (several scopes of a check become one phrase with a count)."""
    phrases = []
    keys = [_rule_key(r) for r in rows.to_dict("records")]
    for check, grp in rows.assign(_key=keys).groupby("_key", sort=False):
        scopes = [s for s in grp[F.SCOPE] if s and s != "overall"]
        where = ""
        if len(scopes) == 1:
            where = f" ({scopes[0].replace('|', ', ')})"
        elif scopes:
            kinds = {s.split(":", 1)[0] for s in scopes}
            unit = kinds.pop() if len(kinds) == 1 else "scope"
            where = f" ({len(scopes)} {unit}s)"
        phrases.append(f"{_title(check)}{where}")
    return phrases


def _rationale(verdict: str, kinds: list[str], triggers: pd.DataFrame, flagged: pd.DataFrame,
               missing: list[tuple[str, str]]) -> str:
    if verdict == NOT_ASSESSED:
        text = "Not assessed: no lens could test it against the data, and the register raised nothing."
    elif verdict == "keep":
        text = ("Keep: no flagged finding calls for a change." if flagged.empty else
                "Keep: flagged points do not call for a change of the measure itself — "
                + "; ".join(_group_text(flagged)) + ".")
    else:
        head = {"counterbalance": "Keep with a counterbalance",
                "rework": "Rework" + (f" ({', '.join(kinds)})" if kinds else ""),
                "retire": "Retire"}[verdict]
        text = f"{head}: " + "; ".join(_group_text(triggers)) + "."
        others = flagged[~flagged.index.isin(triggers.index)]
        if len(others):
            text += " Also: " + "; ".join(_group_text(others)) + "."
    if missing and verdict != NOT_ASSESSED:
        text += " Not assessed by " + ", ".join(lens for lens, _ in missing) + "."
    return text


def verdict_findings(scorecard: pd.DataFrame) -> pd.DataFrame:
    """Findings rows (lens ``scorecard``, check ``verdict``, label = verdict) of a scorecard."""
    rows = [finding("scorecard", r["metric_id"], "verdict", r["severity"], label=r["verdict"],
                    n=r["flagged"], evidence=r["evidence"], detail=r["rationale"])
            for r in scorecard.to_dict("records")]
    return make_findings(rows)


def recommendations(scorecard: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """A prioritised list of actions, one per metric whose verdict is not keep.

    Priority: retire, then rework, then counterbalance; within a verdict, metrics with a
    high-severity finding first, then pay-linked ones, then those with more flagged findings.
    Returns columns ``priority, metric_id, name, verdict, action, evidence``.
    """
    order = {v: i for i, v in enumerate(reversed(VERDICTS))}
    judged = findings[findings[F.LENS].isin(JUDGED_LENSES) & findings[F.SEVERITY].isin(FLAGGED)]
    recs = []
    for r in scorecard.to_dict("records"):
        if r["verdict"] not in ("counterbalance", "rework", "retire"):
            continue
        rows = judged[judged[F.METRIC_ID].astype(str) == r["metric_id"]]
        checks = []
        for row in rows.assign(_r=rows[F.SEVERITY].map(_SEV_RANK), _l=rows[F.LENS].map(_LENS_WEIGHT)
                               ).sort_values(["_r", "_l", F.CHECK], kind="mergesort").to_dict("records"):
            key = _rule_key(row)
            if key in ACTIONS and key not in checks:
                checks.append(key)
        if "decouple from pay" in r["rework_kind"] and "surrogation_risk" not in checks:
            checks.append("surrogation_risk")
        verb = {"retire": "Retire", "rework": "Rework", "counterbalance": "Counterbalance"}[r["verdict"]]
        actions = [ACTIONS[c] for c in checks[:3]] or ["review it with its owner"]
        action = f"{verb} {r['name']}: " + "; ".join(actions) + "."
        recs.append({"metric_id": r["metric_id"], "name": r["name"], "verdict": r["verdict"],
                     "action": action, "evidence": r["evidence"],
                     "_o": order[r["verdict"]],
                     "_h": 0 if (rows[F.SEVERITY] == "high").any() else 1,
                     "_p": 0 if ((rows[F.CHECK] == "surrogation_risk") & (rows[F.SEVERITY] == "high")).any() else 1,
                     "_n": -len(rows)})
    df = pd.DataFrame(recs, columns=["metric_id", "name", "verdict", "action", "evidence", "_o", "_h", "_p", "_n"])
    df = df.sort_values(["_o", "_h", "_p", "_n", "metric_id"], kind="mergesort").reset_index(drop=True)
    df.insert(0, "priority", np.arange(1, len(df) + 1))
    return df.drop(columns=["_o", "_h", "_p", "_n"])


def scorecard_findings(findings: pd.DataFrame, register: pd.DataFrame | None = None,
                       rules: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Scorecard, recommendations and their Findings rows in one call.

    Returns ``(scorecard, recs, rows)`` where ``rows`` holds the ``verdict`` and
    ``recommendation`` Findings (recommendation: ``value`` = priority, ``label`` = verdict).
    """
    sc = build_scorecard(findings, register, rules)
    recs = recommendations(sc, findings)
    rec_rows = [finding("scorecard", r["metric_id"], "recommendation",
                        "high" if r["verdict"] == "retire" else "medium" if r["verdict"] == "rework" else "low",
                        label=r["verdict"], value=r["priority"], evidence=r["evidence"], detail=r["action"])
                for r in recs.to_dict("records")]
    return sc, recs, concat([verdict_findings(sc), make_findings(rec_rows)])


def _scope_rank(scope: str) -> int:
    """Broad scopes first: a centre-wide or team problem matters more to a reader than one agent."""
    scope = str(scope)
    if scope in ("", "overall"):
        return 0
    return 2 if scope.startswith("agent:") else 1


def _scope_phrase(scopes: list[str]) -> str:
    """How a reader sees several scopes of one problem: '3 agents', 'team:Beacon and 14 agents'.

    Scopes are grouped by kind, broadest first; a kind with a single scope names it.
    """
    if len(scopes) == 1:
        return scopes[0]
    by_kind: dict[str, list[str]] = {}
    for sc in sorted(scopes, key=_scope_rank):
        kind = "overall" if sc in ("", "overall") else str(sc).split(":", 1)[0]
        by_kind.setdefault(kind, []).append(str(sc))
    parts = ["centre-wide" if kind == "overall" else group[0] if len(group) == 1 else f"{len(group)} {kind}s"
             for kind, group in by_kind.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


_SCOPE_TOKEN = re.compile(r"\b(team|agent|outcome|channel|site):(.+?)(?=, | and |\||$)")


def reader_scope(scope: str) -> str:
    """A scope as a client reads it: ``team:Beacon`` -> 'Beacon team', ``agent:Agent X`` -> 'Agent X'.

    >>> reader_scope("team:Beacon and 14 agents")
    'Beacon team and 14 agents'
    >>> reader_scope("outcome:churn_rate|team:Atlas")
    'outcome churn_rate, Atlas team'
    """
    if scope in ("", "overall"):
        return ""

    def word(m: re.Match) -> str:
        kind, value = m.group(1), m.group(2)
        return {"team": f"{value} team", "agent": value, "outcome": f"outcome {value}",
                "channel": f"{value} channel", "site": f"{value} site"}[kind]

    return _SCOPE_TOKEN.sub(word, str(scope)).replace("|", ", ")


def key_findings(findings: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The ``n`` most important flagged findings, for an executive summary.

    Ranked by severity, then lens (observed behaviour, linkage with outcomes, staff perception,
    the register), then breadth (centre-wide, then team or outcome, then single agents).
    Findings of one check on one metric across several scopes count once (``n`` holds how
    many; ``scope`` then reads e.g. ``3 agents``). The first pass takes at most one finding per
    metric and per check, and for a metric flagged as a duplicate only that fact (its other
    findings repeat those of the metric it duplicates), so the summary covers different problems.
    """
    rows = findings[findings[F.LENS].isin(JUDGED_LENSES) & findings[F.SEVERITY].isin(FLAGGED)].copy()
    if rows.empty:
        return rows.iloc[:0]
    rows["_r"] = rows[F.SEVERITY].map(_SEV_RANK)
    rows["_b"] = rows[F.SCOPE].map(_scope_rank)
    rows["_l"] = rows[F.LENS].map(_LENS_WEIGHT)
    rows = rows.sort_values(["_r", "_l", "_b", F.METRIC_ID, F.CHECK, F.SCOPE], kind="mergesort")
    scopes = {key: list(grp[F.SCOPE]) for key, grp in rows.groupby([F.METRIC_ID, F.CHECK], sort=False)}
    first = rows.drop_duplicates([F.METRIC_ID, F.CHECK]).copy()
    first[F.N] = [len(scopes[(m, c)]) for m, c in zip(first[F.METRIC_ID], first[F.CHECK])]
    first[F.SCOPE] = [_scope_phrase(scopes[(m, c)]) for m, c in zip(first[F.METRIC_ID], first[F.CHECK])]
    duplicates = set(rows.loc[rows[F.CHECK] == "duplicate_metric", F.METRIC_ID])
    picked, metrics, checks = [], set(), set()
    for idx, m, c in zip(first.index, first[F.METRIC_ID], first[F.CHECK]):
        if m in duplicates and c != "duplicate_metric":
            continue
        if len(picked) < n and m not in metrics and c not in checks:
            picked.append(idx)
            metrics.add(m)
            checks.add(c)
    for idx in first.index:
        if len(picked) < n and idx not in picked:
            picked.append(idx)
    return first.loc[picked].drop(columns=["_r", "_b", "_l"]).reset_index(drop=True)


def metric_summary(findings: pd.DataFrame, scorecard: pd.DataFrame, metric_id: str,
                   register: pd.DataFrame | None = None) -> pd.DataFrame:
    """A one-page view of one metric: why / behaviour / perception / linkage / verdict.

    Returns a two-column table (``question``, ``answer``) in plain language.
    """
    if metric_id not in set(scorecard["metric_id"]):
        raise RunError(f"metric {metric_id!r} is not in the scorecard; known: "
                       f"{', '.join(scorecard['metric_id'])}")
    rows = findings[findings[F.METRIC_ID].astype(str) == metric_id]
    sc = scorecard[scorecard["metric_id"] == metric_id].iloc[0]
    answers = []
    purpose = ""
    if register is not None and R.PURPOSE in register:
        match = register[register[R.METRIC_ID].astype(str) == metric_id]
        if len(match):
            purpose = str(match[R.PURPOSE].iloc[0] if pd.notna(match[R.PURPOSE].iloc[0]) else "")
    for lens, question in (("register", "Why is it measured?"), ("behaviour", "What behaviour does it drive?"),
                           ("perception", "How do staff see it?"), ("linkage", "Does it move with outcomes?")):
        lr = rows[rows[F.LENS] == lens]
        flagged = lr[lr[F.SEVERITY].isin(FLAGGED)]
        if lens == "register":
            lead = f"Stated purpose: \u201c{purpose}\u201d. " if purpose.strip() else "No purpose is stated. "
        else:
            lead = ""
        if flagged.empty:
            if lr.empty or lr[F.SEVERITY].eq("not_assessable").all():
                why = next((d for d in lr[F.DETAIL] if d), "no data for this lens")
                body = f"Not assessed ({why})."
            else:
                info = lr[(lr[F.CHECK] == "perception_index") | (lr[F.CHECK] == "linkage_class")]
                extra = "; ".join(d for d in info[F.DETAIL] if d)
                body = "Nothing flagged." + (f" {extra}" if extra else "")
        else:
            ranked = flagged.assign(_r=flagged[F.SEVERITY].map(_SEV_RANK), _b=flagged[F.SCOPE].map(_scope_rank))
            ranked = ranked.sort_values(["_r", "_b", F.CHECK, F.SCOPE], kind="mergesort")
            parts = []
            for check, grp in ranked.groupby(F.CHECK, sort=False):
                where = _scope_phrase(list(grp[F.SCOPE]))
                text = brief(grp[F.DETAIL].iloc[0]) or _title(check).capitalize()
                parts.append(text + ("" if where in ("", "overall") else f" [{where}]"))
            body = " ".join(parts)
        answers.append({"question": question, "answer": (lead + body).strip()})
    answers.append({"question": "Verdict", "answer": f"{sc['verdict']}. {sc['rationale']}"})
    return pd.DataFrame(answers, columns=["question", "answer"])


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\u201c\"(])")


def brief(text: str, limit: int = 240) -> str:
    """The first sentence of a finding's detail (the fact; the rest explains it), at most ``limit`` chars."""
    text = " ".join(str(text or "").split())
    first = _SENTENCE_END.split(text, maxsplit=1)[0]
    return first if len(first) <= limit else first[:limit - 1].rstrip() + "\u2026"


def evidence_matrix(findings: pd.DataFrame, scorecard: pd.DataFrame) -> pd.DataFrame:
    """Metric x lens: how many flagged findings each lens raised (-1 = the lens could not assess it).

    Returns columns ``metric_id, name, register, behaviour, perception, linkage, verdict``.
    """
    rows = []
    for r in scorecard.to_dict("records"):
        mine = findings[findings[F.METRIC_ID].astype(str) == r["metric_id"]]
        missing = {lens for lens, _ in _not_assessed(mine)}
        row = {"metric_id": r["metric_id"], "name": r["name"]}
        for lens in JUDGED_LENSES:
            flagged = int((mine[F.LENS].eq(lens) & mine[F.SEVERITY].isin(FLAGGED)).sum())
            row[lens] = -1 if lens in missing and flagged == 0 else flagged
        row["verdict"] = r["verdict"]
        rows.append(row)
    return pd.DataFrame(rows, columns=["metric_id", "name", *JUDGED_LENSES, "verdict"])


def executive_summary(findings: pd.DataFrame, scorecard: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """The ``n`` most important findings (:func:`key_findings`) as plain sentences.

    Returns columns ``rank, metric, finding, where, lens``.
    """
    top = key_findings(findings, n=n)
    names = dict(zip(scorecard["metric_id"], scorecard["name"]))
    rows = [{"rank": i + 1, "metric": names.get(r[F.METRIC_ID], r[F.METRIC_ID]),
             "finding": brief(r[F.DETAIL]) or _title(r[F.CHECK]).capitalize(),
             "where": reader_scope(r[F.SCOPE]),
             "lens": f"{r[F.LENS]}: {_title(r[F.CHECK])}"}
            for i, r in enumerate(top.to_dict("records"))]
    return pd.DataFrame(rows, columns=["rank", "metric", "finding", "where", "lens"])


def metric_pages(findings: pd.DataFrame, scorecard: pd.DataFrame,
                 register: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`metric_summary` for every metric of the scorecard, stacked.

    Returns columns ``metric_id, name, verdict, question, answer`` (five rows per metric).
    """
    frames = []
    for metric_id, name, verdict in scorecard[["metric_id", "name", "verdict"]].itertuples(index=False):
        page = metric_summary(findings, scorecard, metric_id, register)
        page.insert(0, "verdict", verdict)
        page.insert(0, "name", name)
        page.insert(0, "metric_id", metric_id)
        frames.append(page)
    cols = ["metric_id", "name", "verdict", "question", "answer"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


# ----------------------------------------------------------------------------- quarter over quarter

def _flag_keyed(df: pd.DataFrame) -> pd.DataFrame:
    rows = df[df[F.LENS].isin(JUDGED_LENSES) & df[F.SEVERITY].isin(FLAGGED)]
    return rows.drop_duplicates(list(F.KEY)).set_index(list(F.KEY))


def _interval_change(cur: pd.Series, prev: pd.Series) -> tuple[float, float, float]:
    """Change of an index with a 95% interval, treating the two quarters as independent samples.

    Each quarter's standard error is recovered from its own 95% interval (half-width / 1.96).
    """
    change = float(cur[F.VALUE] - prev[F.VALUE])
    halves = [(r[F.CI_HIGH] - r[F.CI_LOW]) / 2 for r in (cur, prev)]
    if any(pd.isna(h) for h in halves):
        return change, math.nan, math.nan
    se = math.sqrt(sum((h / 1.959963984540054) ** 2 for h in halves))
    return change, change - 1.959963984540054 * se, change + 1.959963984540054 * se


def compare_quarters(current: pd.DataFrame, previous: pd.DataFrame, previous_period: str = "",
                     current_period: str = "", history: list[tuple[str, pd.DataFrame]] | None = None) -> dict:
    """What changed since the previous audit.

    Findings are matched on ``(lens, metric_id, check, scope)``; only flagged findings
    (medium/high) of the four lenses count as new, resolved or persisting.

    Returns
    -------
    dict
        ``previous_period``, ``current_period``, ``counts`` (dict), ``verdict_changes``
        (metric_id, previous, current), ``new``, ``resolved``, ``persisting`` (Findings rows;
        resolved rows are last quarter's), ``perception`` (metric_id, previous, current,
        change, ci_low, ci_high), ``kpi_trend`` (metric_id, one column per period, oldest first,
        and change = current - previous). ``history`` adds older quarters to the KPI trend:
        ``[(period, findings), ...]`` oldest first.
    """
    cur, prev = _flag_keyed(current), _flag_keyed(previous)
    new = cur.loc[cur.index.difference(prev.index, sort=False)].reset_index()[list(F.ALL)]
    resolved = prev.loc[prev.index.difference(cur.index, sort=False)].reset_index()[list(F.ALL)]
    persisting = cur.loc[cur.index.intersection(prev.index, sort=False)].reset_index()[list(F.ALL)]
    new, resolved, persisting = (make_findings(d.to_dict("records")) for d in (new, resolved, persisting))

    def verdicts(df):
        v = df[(df[F.LENS] == "scorecard") & (df[F.CHECK] == "verdict")]
        return dict(zip(v[F.METRIC_ID], v[F.LABEL]))

    vc, vp = verdicts(current), verdicts(previous)
    changes = [{"metric_id": m, "previous": vp[m], "current": vc[m]}
               for m in sorted(set(vc) & set(vp)) if vc[m] != vp[m]]
    changes += [{"metric_id": m, "previous": "", "current": vc[m]} for m in sorted(set(vc) - set(vp))]
    changes += [{"metric_id": m, "previous": vp[m], "current": ""} for m in sorted(set(vp) - set(vc))]
    verdict_changes = pd.DataFrame(changes, columns=["metric_id", "previous", "current"])

    def index_rows(df):
        r = df[(df[F.LENS] == "perception") & (df[F.CHECK] == "perception_index")
               & (df[F.SCOPE] == "overall") & df[F.VALUE].notna()]
        return r.drop_duplicates(F.METRIC_ID).set_index(F.METRIC_ID)

    ic, ip = index_rows(current), index_rows(previous)
    perception = []
    for m in sorted(set(ic.index) & set(ip.index)):
        change, lo, hi = _interval_change(ic.loc[m], ip.loc[m])
        perception.append({"metric_id": m, "previous": float(ip.loc[m, F.VALUE]),
                           "current": float(ic.loc[m, F.VALUE]), "change": change, "ci_low": lo, "ci_high": hi})
    perception = pd.DataFrame(perception, columns=["metric_id", "previous", "current", "change", "ci_low", "ci_high"])

    def kpi_rows(df):
        r = df[(df[F.LENS] == "register") & (df[F.CHECK] == "current_vs_target")
               & (df[F.SCOPE] == "overall") & df[F.VALUE].notna()]
        return r.drop_duplicates(F.METRIC_ID).set_index(F.METRIC_ID)[F.VALUE]

    kc, kp = kpi_rows(current), kpi_rows(previous)
    pl, cl = previous_period or "previous", current_period or "current"
    older = [(str(label), kpi_rows(df)) for label, df in (history or []) if str(label) not in (pl, cl)]
    trend = []
    for m in sorted(set(kc.index) & set(kp.index)):
        row = {"metric_id": m}
        row.update({label: float(values[m]) if m in values.index else math.nan for label, values in older})
        row.update({pl: float(kp[m]), cl: float(kc[m]), "change": float(kc[m] - kp[m])})
        trend.append(row)
    kpi_trend = pd.DataFrame(trend, columns=["metric_id", *[label for label, _ in older], pl, cl, "change"])
    return {"previous_period": previous_period, "current_period": current_period,
            "counts": {"new": len(new), "resolved": len(resolved), "persisting": len(persisting),
                       "verdict_changes": len(verdict_changes)},
            "verdict_changes": verdict_changes, "new": new, "resolved": resolved, "persisting": persisting,
            "perception": perception, "kpi_trend": kpi_trend}


def _read_report(folder: Path) -> tuple[str, pd.DataFrame, Path | None]:
    """(period, findings, its own previous folder or None) of a published report folder."""
    path = folder / "findings.json"
    if not path.is_file():
        raise RunError(f"previous report {folder} has no findings.json; set `previous:` in the params "
                       "file to a published report folder (reports/<client>/<period>) or to null.")
    try:
        found = read_json(path)
    except (ValueError, json.JSONDecodeError, KeyError) as exc:
        raise RunError(f"cannot read {path}: {exc}; it must be a findings.json written by kpi-audit run.") from exc
    period, earlier = folder.name, None
    run_json = folder / "run.json"
    if run_json.is_file():
        try:
            meta = json.loads(run_json.read_text(encoding="utf-8"))
            params = meta.get("params") or {}
            period = str(meta.get("period") or params.get("period") or period)
            earlier = Path(params["previous"]) if params.get("previous") else None
        except (ValueError, AttributeError, TypeError):
            pass
    return period, found, earlier


def compare_with_previous(findings: pd.DataFrame, previous_dir: str | Path, current_period: str = "",
                          max_quarters: int = 8) -> dict:
    """:func:`compare_quarters` against a previous report folder (its ``findings.json``).

    The previous period is read from the folder's ``run.json`` (key ``period``, or
    ``params.period``) and otherwise taken from the folder name. The KPI trend follows
    the chain of earlier reports (each ``run.json``'s ``params.previous``) back to
    ``max_quarters`` quarters in all; an earlier report that is gone ends the chain.

    Raises
    ------
    RunError
        When the folder or its ``findings.json`` is missing or unreadable.
    """
    previous_dir = Path(previous_dir)
    period, prev, earlier = _read_report(previous_dir)
    history, seen = [], {previous_dir.resolve()}
    while earlier is not None and len(history) + 2 < max_quarters and earlier.resolve() not in seen:
        seen.add(earlier.resolve())
        try:
            label, found, earlier_next = _read_report(earlier)
        except RunError:
            break
        history.insert(0, (label, found))
        earlier = earlier_next
    return compare_quarters(findings, prev, previous_period=period, current_period=current_period,
                            history=history)


def rollup_agents(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (lens, metric, check) for agent-level findings, for a reader rather than a database.

    Agent-scoped rows (``agent:<pseudonym>``) of the same lens, metric and check become one row
    whose scope reads ``3 agents``, severity is the highest among them and ``n`` is the count;
    other rows are unchanged. Output sorted like any Findings table.
    """
    if df.empty:
        return df
    is_agent = df[F.SCOPE].astype(str).str.startswith("agent:")
    keep = df[~is_agent]
    rows = []
    for (lens, metric, check), grp in df[is_agent].groupby([F.LENS, F.METRIC_ID, F.CHECK], sort=True):
        worst = grp.assign(_r=grp[F.SEVERITY].map(_SEV_RANK)).sort_values("_r", kind="mergesort").iloc[0]
        k = len(grp)
        detail = brief(worst[F.DETAIL])
        rows.append(finding(lens, metric, check, worst[F.SEVERITY], scope=f"{k} agent{'s' if k > 1 else ''}",
                            label=worst[F.LABEL], n=k,
                            detail=(f"{k} agents, e.g.: {detail}" if k > 1 else detail)))
    return concat([keep, make_findings(rows)])


def compare_for_audit(audit, findings: pd.DataFrame) -> dict | None:
    """:func:`compare_with_previous` against ``params.previous``; None for a first audit."""
    previous = getattr(audit.params, "previous_dir", None)
    if previous is None:
        return None
    return compare_with_previous(findings, previous, current_period=str(audit.params.period))


# ----------------------------------------------------------------------------- standalone notebook support

def collect_findings(audit, lenses=JUDGED_LENSES) -> tuple[pd.DataFrame, dict[str, str]]:
    """The lenses' Findings for the scorecard: saved ones first, the missing ones computed.

    Reads ``<run_dir>/findings/*.json`` (skipping the scorecard's own file). For each lens
    with no saved rows, calls ``audit_lib.<lens>.audit_findings(audit)``.

    Returns
    -------
    (DataFrame, dict)
        The Findings, and ``lens -> how it was obtained`` ("saved", "computed", or
        "not run: <reason>") so the notebook can say which lenses are missing.
    """
    import importlib

    folder = Path(audit.run_dir) / "findings"
    frames, status = [], {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            df = read_json(path)
            if (df[F.LENS] == "scorecard").any():
                # the scorecard's own earlier output (verdicts, and lens rows it computed then): never
                # evidence, and a lens that has run since must not be counted twice
                continue
            frames.append(df)
    saved = concat(frames) if frames else empty_findings()
    present = set(saved[F.LENS])
    for lens in lenses:
        if lens in present:
            status[lens] = "saved"
            continue
        try:
            module = importlib.import_module(f"audit_lib.{lens}")
        except ImportError as exc:
            status[lens] = f"not run: module audit_lib.{lens} is not available ({exc})"
            continue
        fn = getattr(module, LENS_ENTRY_POINTS[lens], None)
        if not callable(fn):
            status[lens] = f"not run: audit_lib.{lens} has no {LENS_ENTRY_POINTS[lens]}(audit)"
            continue
        frames.append(fn(audit))
        status[lens] = "computed"
    return concat(frames) if frames else empty_findings(), status


def findings_to_save(findings: pd.DataFrame, status: dict[str, str], scorecard_rows: pd.DataFrame) -> pd.DataFrame:
    """What the scorecard notebook saves: its own rows plus the rows of lenses it computed itself.

    A lens whose notebook did not run has no saved findings; saving the rows computed here
    keeps ``findings.json`` complete, so every verdict's cited evidence is in the report.
    """
    computed = [lens for lens, how in status.items() if how == "computed"]
    return concat([findings[findings[F.LENS].isin(computed)], scorecard_rows])


def lens_status_table(status: dict[str, str]) -> pd.DataFrame:
    """``collect_findings``' status as a table: lens, whether its evidence is in, how."""
    rows = [{"lens": lens, "evidence": "yes" if how in ("saved", "computed") else "missing",
             "how": {"saved": "saved by its section in this run", "computed": "computed now"}.get(how, how)}
            for lens, how in status.items()]
    return pd.DataFrame(rows, columns=["lens", "evidence", "how"])
