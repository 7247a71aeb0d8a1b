"""The KPI library: a catalogue of standard contact-centre KPIs and their known side effects.

The catalogue lives in ``audit_lib/data/kpi_library.yaml`` and is validated on load by the
pydantic models below (unknown keys, unknown gaming types, unknown detector checks,
counterbalances or tensions naming a KPI that does not exist, asymmetric tensions and
incomplete citations are all errors). Computation is *not* here: the SQL for the same KPI
ids lives in ``data/kpi_compute.yaml`` (see :mod:`audit_lib.kpi_compute`).

Examples
--------
>>> lib = load_library()
>>> lib.get("aht").better
'lower'
>>> lib.checks_for("aht")
['displacement', 'end_of_period_surge', 'short_contacts', 'threshold_bunching']
>>> lib.counterbalances("fcr_agent")
['repeat_rate', 'fcr_repeat', 'complaint_rate']
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterator, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .columns import Contact, Derived
from .errors import InputDataError

__all__ = [
    "GAMING_TYPES", "BEHAVIOUR_CHECKS", "NO_CHECK", "OUTCOMES", "UNITS", "CUSTOM_KPI",
    "Citation", "Unintended", "Formula", "Kpi", "KpiLibrary", "load_library", "parse_library",
]

#: Hood's (2006) gaming types, plus selection and misreporting
GAMING_TYPES = ("threshold", "ratchet", "output_distortion", "selection", "misreporting")
#: the behaviour-lens detectors (check names of docs/architecture.md)
BEHAVIOUR_CHECKS = ("threshold_bunching", "short_contacts", "displacement", "fcr_integrity",
                    "callback_unkept", "hollow_first_reply", "end_of_period_surge", "survey_selection")
#: value of ``unintended[].check`` when contact data cannot reveal the behaviour
NO_CHECK = "none"
#: outcome ids a KPI can serve, with the better direction of each
OUTCOMES = {"csat": "higher", "nps": "higher", "repeat_rate": "lower", "complaint_rate": "lower",
            "churn_rate": "lower", "escalations": "lower"}
UNITS = ("seconds", "share", "points", "score", "currency")
#: the register's ``kpi`` value for a metric that is not in the library
CUSTOM_KPI = "custom"

_CONTACT_COLUMNS = {v for k, v in vars(Contact).items() if k.isupper() and isinstance(v, str)}
_DERIVED_COLUMNS = {v for k, v in vars(Derived).items() if k.isupper() and isinstance(v, str)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Citation(_Strict):
    """A published source: author(s), year, title and where it appeared."""
    author: str = Field(min_length=2)
    year: int = Field(ge=1900, le=2100)
    title: str = Field(min_length=2)
    source: str = ""

    @property
    def surnames(self) -> list[str]:
        """Authors' surnames, from ``"Surname, I. & Surname, I."``."""
        tokens = [t.strip() for t in self.author.replace(" & ", ", ").split(",") if t.strip()]
        return tokens[0::2]

    @property
    def short(self) -> str:
        """``"Bevan & Hood (2006)"`` style reference (``et al.`` beyond three authors)."""
        names = self.surnames
        if len(names) > 3:
            who = f"{names[0]} et al."
        elif len(names) > 1:
            who = ", ".join(names[:-1]) + " & " + names[-1]
        else:
            who = names[0] if names else self.author
        return f"{who} ({self.year})"

    def __str__(self) -> str:
        tail = f" {self.source}." if self.source else ""
        return f"{self.author} ({self.year}). {self.title}.{tail}"


class Unintended(_Strict):
    """One known unintended behaviour of a KPI and the data signature that would reveal it."""
    behaviour: str = Field(min_length=3)
    gaming_type: Literal[GAMING_TYPES]
    mechanism: str = Field(min_length=10)
    check: Literal[BEHAVIOUR_CHECKS + (NO_CHECK,)]
    signature: str = Field(min_length=5)
    citation: Citation
    #: contact column the detector examines (e.g. handle_seconds for bunching under an AHT target)
    measure: str | None = None
    #: where bunching is expected: "target" (the register's target) or a Thresholds field name
    threshold: str | None = None

    @field_validator("measure")
    @classmethod
    def _canonical_measure(cls, v):
        if v is not None and v not in _CONTACT_COLUMNS:
            raise ValueError(f"measure {v!r} is not a canonical contact column (audit_lib.columns.Contact)")
        return v

    @field_validator("threshold")
    @classmethod
    def _known_threshold(cls, v):
        from .settings import Thresholds
        if v is not None and v != "target" and v not in Thresholds.model_fields:
            raise ValueError(f"threshold {v!r} must be 'target' or a thresholds setting "
                             f"({', '.join(Thresholds.model_fields)})")
        return v


class Formula(_Strict):
    """The formula in words, its published variants and the thresholds field choosing one."""
    text: str = Field(min_length=5)
    variants: dict[str, str] = Field(default_factory=dict)
    variant_setting: str | None = None

    @model_validator(mode="after")
    def _variants_need_setting(self):
        if self.variants and not self.variant_setting:
            raise ValueError("a formula with variants must name the thresholds field that selects one "
                             "(variant_setting)")
        return self


class Kpi(_Strict):
    """One KPI of the library (see the header of ``data/kpi_library.yaml`` for each field)."""
    id: str
    name: str = Field(min_length=2)
    aliases: tuple[str, ...] = ()
    definition: str = Field(min_length=10)
    formula: Formula
    computed_from: tuple[str, ...] | Literal["external"]
    better: Literal["higher", "lower"]
    unit: Literal[UNITS]
    intended: str = Field(min_length=5)
    unintended: tuple[Unintended, ...]
    counterbalances: tuple[str, ...]
    tensions: tuple[str, ...] = ()
    serves: tuple[str, ...] = ()

    @field_validator("computed_from")
    @classmethod
    def _canonical_columns(cls, v):
        if v == "external":
            return v
        unknown = sorted(set(v) - _CONTACT_COLUMNS - _DERIVED_COLUMNS)
        if unknown:
            raise ValueError(f"computed_from names non-canonical column(s) {unknown}; use names from "
                             "audit_lib.columns.Contact / Derived, or 'external'")
        if not v:
            raise ValueError("computed_from is empty; list the contact columns or write 'external'")
        return v

    @field_validator("unintended", "counterbalances")
    @classmethod
    def _not_empty(cls, v, info):
        # checked after the items validate, so a bad item is reported once, not twice
        if not v:
            raise ValueError(f"{info.field_name} needs at least one entry")
        return v

    @field_validator("serves")
    @classmethod
    def _known_outcomes(cls, v):
        unknown = sorted(set(v) - set(OUTCOMES))
        if unknown:
            raise ValueError(f"serves names unknown outcome(s) {unknown}; known: {', '.join(OUTCOMES)}")
        return v

    @property
    def external(self) -> bool:
        """True when the contacts table cannot give this KPI (workforce or finance data)."""
        return self.computed_from == "external"

    @property
    def checks(self) -> list[str]:
        """Behaviour-lens checks named by its unintended behaviours (sorted, no ``none``)."""
        return sorted({u.check for u in self.unintended if u.check != NO_CHECK})

    @property
    def names(self) -> tuple[str, ...]:
        """Every way of writing this KPI's name: id, name and aliases (lower case)."""
        return tuple(dict.fromkeys(s.lower() for s in (self.id, self.name, *self.aliases)))


class KpiLibrary(_Strict):
    """The catalogue: ``{id: Kpi}`` in file order, with cross-references checked."""
    kpis: dict[str, Kpi]

    @model_validator(mode="after")
    def _cross_references(self):
        problems = []
        ids = set(self.kpis)
        for kid, kpi in self.kpis.items():
            if kpi.id != kid:
                problems.append(f"{kid}: id field {kpi.id!r} differs from its key")
            for field in ("counterbalances", "tensions"):
                refs = getattr(kpi, field)
                for ref in refs:
                    if ref not in ids:
                        problems.append(f"{kid}.{field}: {ref!r} is not a KPI of the library")
                    elif ref == kid:
                        problems.append(f"{kid}.{field}: names itself")
            for ref in kpi.tensions:
                if ref in ids and kid not in self.kpis[ref].tensions:
                    problems.append(f"{kid}.tensions names {ref!r} but {ref}.tensions does not name "
                                    f"{kid!r} (tensions are symmetric)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # --- access -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Kpi]:  # type: ignore[override]
        return iter(self.kpis.values())

    def __len__(self) -> int:
        return len(self.kpis)

    def __contains__(self, kpi_id: object) -> bool:
        return kpi_id in self.kpis

    @property
    def ids(self) -> list[str]:
        """KPI ids in file order."""
        return list(self.kpis)

    def get(self, kpi_id: str) -> Kpi:
        """The KPI with this id; a clear error naming the known ids otherwise."""
        try:
            return self.kpis[kpi_id]
        except KeyError:
            raise KeyError(f"{kpi_id!r} is not in the KPI library; known KPIs: {', '.join(self.kpis)} "
                           f"(or '{CUSTOM_KPI}' for a metric of the client's own)") from None

    def counterbalances(self, kpi_id: str) -> list[str]:
        """Natural counterbalances (paired indicators) of a KPI, most important first."""
        return list(self.get(kpi_id).counterbalances)

    def tensions(self, kpi_id: str) -> list[str]:
        """KPIs that pull against this one (symmetric)."""
        return list(self.get(kpi_id).tensions)

    def checks_for(self, kpi_id: str) -> list[str]:
        """Behaviour-lens checks that look for this KPI's unintended behaviours (sorted)."""
        return self.get(kpi_id).checks

    def serves(self, kpi_id: str) -> list[str]:
        """Outcome ids this KPI is meant to improve."""
        return list(self.get(kpi_id).serves)

    def better(self, kpi_id: str) -> str:
        """``"higher"`` or ``"lower"``."""
        return self.get(kpi_id).better

    def is_tension(self, a: str, b: str) -> bool:
        """True when KPIs ``a`` and ``b`` pull against each other."""
        return a in self.kpis and b in self.tensions(a)

    # --- tables -------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """One row per KPI: id, name, definition, formula, unit, better, counterbalances, serves, checks."""
        rows = [{"kpi": k.id, "name": k.name, "definition": k.definition, "formula": k.formula.text,
                 "computed_from": "external" if k.external else ", ".join(k.computed_from),
                 "unit": k.unit, "better": k.better, "intended": k.intended,
                 "counterbalances": ", ".join(k.counterbalances), "tensions": ", ".join(k.tensions),
                 "serves": ", ".join(k.serves), "checks": ", ".join(k.checks)} for k in self]
        return pd.DataFrame(rows)

    def risks_frame(self) -> pd.DataFrame:
        """One row per known unintended behaviour: kpi, behaviour, gaming type, mechanism, check, citation."""
        rows = [{"kpi": k.id, "behaviour": u.behaviour, "gaming_type": u.gaming_type,
                 "mechanism": u.mechanism, "check": u.check, "signature": u.signature,
                 "citation": u.citation.short, "reference": str(u.citation)}
                for k in self for u in k.unintended]
        return pd.DataFrame(rows, columns=["kpi", "behaviour", "gaming_type", "mechanism", "check",
                                           "signature", "citation", "reference"])


def parse_library(raw: object, *, source: str = "kpi_library.yaml") -> KpiLibrary:
    """Validate a parsed YAML mapping ``{id: entry}`` into a :class:`KpiLibrary`.

    Raises
    ------
    InputDataError
        listing every problem (entry, field, message) at once.
    """
    if not isinstance(raw, dict) or not raw:
        raise InputDataError(f"{source}: expected a mapping of KPI id -> entry, got {type(raw).__name__}")
    entries = {}
    for kid, entry in raw.items():
        if not isinstance(entry, dict):
            raise InputDataError(f"{source}: entry {kid!r} must be a mapping, got {type(entry).__name__}")
        entries[str(kid)] = {"id": str(kid), **entry}
    try:
        return KpiLibrary(kpis=entries)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in err['loc'][1:]) or 'library'}: {err['msg']}"
                    for err in exc.errors()]
        raise InputDataError(f"{source} is invalid ({len(problems)} problem(s)): " + "; ".join(problems)
                             + ". Fix the entries named above.", problems=problems) from None


@lru_cache(maxsize=1)
def load_library(path: str | None = None) -> KpiLibrary:
    """Load and validate the KPI library (the bundled one unless ``path`` is given); cached.

    Parameters
    ----------
    path : optional path to another library YAML with the same schema.
    """
    if path is None:
        text = resources.files("audit_lib").joinpath("data/kpi_library.yaml").read_text(encoding="utf-8")
        source = "audit_lib/data/kpi_library.yaml"
    else:
        p = Path(path)
        if not p.is_file():
            raise InputDataError(f"KPI library file {p} does not exist; pass the path of a YAML file")
        text, source = p.read_text(encoding="utf-8"), str(p)
    try:
        # libyaml's parser when present (10x faster, same safe constructor and result)
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise InputDataError(f"{source} is not valid YAML: {exc}") from None
    return parse_library(raw, source=source)
