"""Tunable settings of the audit, one pydantic model per section of the params file.

These are lightweight (pydantic only) so the CLI can parse a params file fast.
``audit_lib.params.Params`` composes them. Every field has a documented default;
a params file only needs to name what it changes. Unknown keys are errors.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Strict", "Thresholds", "PrivacySettings", "BehaviourSettings", "PerceptionSettings",
    "LinkageSettings", "ScorecardSettings",
]


class Strict(BaseModel):
    """Base for every params section: unknown keys are errors, values are validated on assignment."""
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Thresholds(Strict):
    anonymity: int = Field(5, ge=2, description="Smallest survey group ever shown (respondents).")
    comments_anonymity: int = Field(10, ge=2, description="Smallest group whose comments are shown.")
    min_surveys: int = Field(30, ge=1, description="Minimum customer surveys behind any agent or team claim.")
    min_contacts_agent: int = Field(50, ge=1, description="Minimum contacts before an agent is assessed.")
    min_weeks: int = Field(8, ge=2, description="Minimum weeks of data for trends and linkage.")
    repeat_window_days: int = Field(7, ge=1, le=90, description="Same customer again within N days = repeat contact.")
    short_contact_seconds: int = Field(10, ge=1, le=600, description="Voice contacts shorter than this are 'short'.")
    service_level_seconds: int = Field(20, ge=1, le=3600, description="T in 'answered within T seconds'.")
    service_level_variant: Literal["offered", "answered", "answered_plus_abandoned_after_t"] = Field(
        "offered", description="Denominator of service level: offered calls, answered calls, "
                               "or answered + abandoned after T.")
    review_stale_days: int = Field(365, ge=1, description="A register review date older than this is stale.")

    @model_validator(mode="after")
    def _comments_at_least_anonymity(self):
        if self.comments_anonymity < self.anonymity:
            raise ValueError(
                f"comments_anonymity ({self.comments_anonymity}) must be at least anonymity "
                f"({self.anonymity}); comments identify people more easily than scores")
        return self


class PrivacySettings(Strict):
    pseudonymise_agents: bool = Field(True, description="Show agents under stable pseudonyms in shareable output.")


class BehaviourSettings(Strict):
    """Behaviour-lens detector thresholds (documented in audit_lib.behaviour)."""
    bootstrap: int = Field(200, ge=0, le=10000, description="Bootstrap replicates for bunching intervals.")
    seed: int = Field(20261123, description="Seed for every random draw in the lens.")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="Family-wise error rate per detector (multiple agents/teams).")
    bunching_bins: int = Field(16, ge=8, le=200, description="Bins fitted each side of a target in the bunching check.")
    bunching_binwidth: float = Field(0, ge=0, description="Bunching bin width in seconds; 0 = target / 24 rounded "
                                                          "to the histogram resolution (15 s at 360 s).")
    bunching_excluded_bins: int = Field(4, ge=1, le=20, description="Bins just under the target where excess mass "
                                                                    "is measured (4 x 15 s = the last minute).")
    bunching_poly: int = Field(4, ge=1, le=9, description="Degree of the counterfactual polynomial.")
    bunching_heap_seconds: int = Field(60, ge=0, description="Round-number heaps removed before fitting (exact "
                                                             "multiples of this many seconds; 0 = none).")
    bunching_min_b: float = Field(1.0, ge=0, description="Smallest normalised excess mass b flagged.")
    bunching_min_b_agent: float = Field(1.5, ge=0, description="Smallest b flagged for a single agent.")
    bunching_min_count: int = Field(1000, ge=100, description="Fewest contacts around the target for a scope.")
    displacement_min_drop: float = Field(0.15, ge=0, lt=1, description="Displacement: AHT at least this far below "
                                                                        "the median agent.")
    displacement_min_ratio: float = Field(1.5, ge=1, description="Displacement: transfer or repeat rate at least "
                                                                 "this many times the median agent's.")
    selection_max_response_ratio: float = Field(0.6, gt=0, le=1, description="Survey selection: response rate at "
                                                                              "most this share of the median agent's.")
    selection_min_gain: float = Field(0.05, ge=0, lt=1, description="Survey selection: share of 4-5 answers at "
                                                                    "least this far above peers.")
    funnel_level: float = Field(0.998, gt=0.5, lt=1, description="Funnel-plot control limit flagged (short contacts).")
    short_min_ratio: float = Field(3.0, ge=1, description="Short-contact share must also be this many times peers'.")
    fcr_max_gap: float = Field(0.10, gt=0, lt=1, description="Coded minus repeat-based FCR that is flagged.")
    callback_min_rr: float = Field(2.0, ge=1, description="Smallest complaint risk ratio (unkept vs kept) flagged.")
    callback_target: float = Field(0.95, gt=0, le=1, description="Completion target when the register has none.")
    callback_margin: float = Field(0.10, ge=0, lt=1, description="Team completion this far below target is flagged.")
    hollow_min_share: float = Field(0.10, ge=0, le=1, description="Share of first replies within 60 s worth a look.")
    hollow_min_slow: float = Field(0.25, ge=0, le=1, description="Share of those instant replies resolved slower "
                                                                 "than the resolution target that is flagged.")
    surge_week_day: int = Field(4, ge=0, le=6, description="Last working day of the week (0 = Monday, 4 = Friday).")
    surge_month_days: int = Field(2, ge=1, le=10, description="Last calendar days of a month counted as month end.")
    surge_min_change: float = Field(0.10, gt=0, lt=1, description="Relative improvement at period end that is flagged.")


class PerceptionSettings(Strict):
    """Perception-lens settings."""
    labels: dict[str, int] = Field(
        default_factory=lambda: {"strongly disagree": 1, "disagree": 2,
                                 "neither agree nor disagree": 3, "neutral": 3,
                                 "agree": 4, "strongly agree": 5},
        description="Answer label (case-insensitive) -> score 1..5, for form-tool exports that store labels.")
    min_alpha: float = Field(0.6, ge=0, le=1, description="Cronbach's alpha below this: index unreliable.")


class LinkageSettings(Strict):
    """Linkage-lens settings."""
    max_lag: int = Field(4, ge=0, le=12, description="Lags 0..max_lag weeks (metric in t vs outcome in t+k).")
    bootstrap: int = Field(500, ge=0, le=10000, description="Cluster-bootstrap replicates.")
    importance_bootstrap: int = Field(100, ge=0, le=2000, description="Bootstrap replicates for the "
                                                                      "relative-importance intervals.")
    seed: int = Field(20261123, description="Seed for every random draw in the lens.")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="1 - confidence level of every interval in the lens.")
    min_rho: float = Field(0.1, ge=0, lt=1, description="Smallest |Spearman rho| called 'linked' (smaller but "
                                                        "significant = 'weak').")
    min_change: float = Field(0.05, ge=0, le=1, description="Smallest improvement of a metric over the period, "
                                                            "relative to its mean level, that counts in decoupling.")
    min_cell_n: int = Field(5, ge=1, description="Agent-weeks with fewer outcome observations are skipped.")
    min_clusters: int = Field(10, ge=2, description="Fewest agents for agent-week linkage; with fewer teams "
                                                    "than this, team-week intervals resample weeks.")
    counts_per_1000: bool = Field(True, description="Outcome-file columns holding whole counts are turned into "
                                                    "a rate per 1,000 contacts of the team-week.")
    outcome_directions: dict[str, Literal["higher", "lower"]] = Field(
        default_factory=dict, description="Better direction of outcome-file columns the KPI library does not "
                                          "know (churn_rate, escalations, ... are known).")


class ScorecardSettings(Strict):
    """Scorecard settings: overrides of the verdict rule table (see audit_lib.scorecard)."""
    rules: dict[str, Literal["keep", "counterbalance", "rework", "retire"]] = Field(
        default_factory=dict,
        description="check name (or linkage_class:<label>) -> verdict a flagged finding of it triggers; "
                    "overrides audit_lib.scorecard.DEFAULT_RULES.")
    summary_findings: int = Field(5, ge=1, le=20, description="How many findings the executive summary lists.")
