"""KPI computation: the single place KPI values are computed from contacts.

Every KPI is a ratio ``numerator / denominator`` of SQL aggregates (``data/kpi_compute.yaml``),
so it aggregates exactly at any grain (agent-week, team-week, centre) and the denominator is
the ``n`` behind each value. DuckDB runs all of it, over pandas or Arrow input.

Before aggregating, :func:`derived_sql` adds the per-contact columns of
:class:`audit_lib.columns.Derived`:

``week``
    Monday (date) of the ISO week of ``started_at``.
``date``
    Calendar date of ``started_at``.
``followed_by_repeat``
    The same customer contacts again within ``thresholds.repeat_window_days`` after this
    contact (a later contact at most exactly N days later counts). NULL without ``customer_id``.
    Contacts of one customer are ordered by ``started_at`` then ``contact_id``, so a second
    contact at the very same second is "later" than the first and not the other way round.
``followed_by_complaint``
    A later contact of the same customer within the same window is a complaint
    (NULL without ``customer_id`` or ``complaint``).
``is_short``
    A voice contact that was not abandoned and lasted less than
    ``thresholds.short_contact_seconds``.
``answered_in_time``
    Not abandoned and ``queue_seconds <= thresholds.service_level_seconds``.

The window looks only at contacts in the data; contacts in the last N days of the period
cannot see their whole window (right-censoring), which slightly lowers repeat rates there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Iterable

import duckdb
import pandas as pd
import pyarrow as pa
import yaml

from .columns import Contact as C
from .columns import Derived as D
from .settings import Thresholds

__all__ = [
    "KpiFormula", "load_formulas", "computable_kpis", "formula_sql", "flags_sql", "derived_sql", "enrich",
    "kpi_columns_sql", "aggregate_sql", "kpi_values", "missing_optional_sql", "CONTACTS_COLUMN",
    "DERIVED_COLUMNS",
]

#: name of the contacts count column every aggregate carries
CONTACTS_COLUMN = "contacts"

DERIVED_COLUMNS = _DERIVED = (D.WEEK, D.DATE, D.FOLLOWED_BY_REPEAT, D.FOLLOWED_BY_COMPLAINT, D.IS_SHORT, D.ANSWERED_IN_TIME)
_SQL_TYPES = {**{c: "BOOLEAN" for c in C.BOOLEANS}, **{c: "DOUBLE" for c in C.DURATIONS + C.SCORES},
              **{c: "VARCHAR" for c in C.TEXT}}


@dataclass(frozen=True)
class KpiFormula:
    """One KPI's computation: SQL aggregates over (enriched) contacts."""
    kpi: str
    numerator: str = ""
    denominator: str = ""
    variants: dict = field(default_factory=dict)
    requires: tuple = ()
    scale: float = 1.0
    external: bool = False


@lru_cache(maxsize=1)
def load_formulas() -> dict[str, KpiFormula]:
    """Read ``data/kpi_compute.yaml`` into ``{kpi_id: KpiFormula}`` (file order)."""
    text = resources.files("audit_lib").joinpath("data/kpi_compute.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text) or {}
    out = {}
    for kpi, spec in raw.items():
        spec = spec or {}
        out[kpi] = KpiFormula(
            kpi=kpi, numerator=spec.get("numerator", ""), denominator=spec.get("denominator", ""),
            variants=dict(spec.get("variants") or {}), requires=tuple(spec.get("requires") or ()),
            scale=float(spec.get("scale", 1.0)), external=bool(spec.get("external", False)))
    return out


def computable_kpis(columns: Iterable[str]) -> list[str]:
    """KPI ids whose required contact columns are all present (external KPIs never are).

    Examples
    --------
    >>> computable_kpis(["contact_id", "agent_id", "started_at", "channel", "handle_seconds"])
    ['aht', 'short_contact_share']
    """
    cols = set(columns)
    return [k for k, f in load_formulas().items() if not f.external and set(f.requires) <= cols]


def _placeholders(thresholds: Thresholds) -> dict:
    return {"short_seconds": int(thresholds.short_contact_seconds),
            "sl_seconds": int(thresholds.service_level_seconds)}


def formula_sql(kpi: str, thresholds: Thresholds | None = None) -> tuple[str, str, float]:
    """``(numerator_sql, denominator_sql, scale)`` of one KPI with thresholds filled in.

    Service level takes its denominator from ``thresholds.service_level_variant``.
    """
    thresholds = thresholds or Thresholds()
    formulas = load_formulas()
    if kpi not in formulas:
        raise KeyError(f"unknown KPI {kpi!r}; known: {', '.join(formulas)}")
    f = formulas[kpi]
    if f.external:
        raise ValueError(f"KPI {kpi!r} needs data outside the contacts table (workforce or finance data)")
    den = f.denominator
    if f.variants:
        variant = thresholds.service_level_variant
        if variant not in f.variants:
            raise ValueError(f"KPI {kpi!r} has no variant {variant!r}; use one of {', '.join(f.variants)}")
        den = f.variants[variant]
    ph = _placeholders(thresholds)
    return f.numerator.format(**ph), den.format(**ph), f.scale


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def flags_sql(source: str, columns: Iterable[str], thresholds: Thresholds | None = None,
              row: str = "__row") -> str | None:
    """Narrow SELECT ``(row, followed_by_repeat, followed_by_complaint)`` for contacts with a customer.

    ``source`` must carry a unique integer column ``row``. Only the key columns go through the
    window sort, so large exports need far less memory and time than sorting every column.
    The result goes back onto the contacts by ``row``: ``prepare`` scatters it into two columns
    (no join), or :func:`derived_sql` joins it with ``flags=``. None without ``customer_id``.
    """
    thresholds = thresholds or Thresholds()
    have = set(columns)
    if C.CUSTOMER_ID not in have:
        return None
    days = int(thresholds.repeat_window_days)
    w = f"PARTITION BY {C.CUSTOMER_ID} ORDER BY {C.STARTED_AT}, {C.CONTACT_ID}"
    complaint = (f"min(CASE WHEN coalesce({C.COMPLAINT}, false) THEN {C.STARTED_AT} END) OVER "
                 f"({w} ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) <= {C.STARTED_AT} + INTERVAL {days} DAY"
                 if C.COMPLAINT in have else "CAST(NULL AS BOOLEAN)")
    return (f"SELECT {_q(row)}, coalesce(lead({C.STARTED_AT}) OVER ({w}) <= {C.STARTED_AT} + INTERVAL {days} DAY, "
            f"false) AS {D.FOLLOWED_BY_REPEAT}, "
            + (f"coalesce({complaint}, false)" if C.COMPLAINT in have else complaint)
            + f" AS {D.FOLLOWED_BY_COMPLAINT} FROM {source} "
            f"WHERE {C.CUSTOMER_ID} IS NOT NULL AND {C.STARTED_AT} IS NOT NULL")


def missing_optional_sql(columns: Iterable[str]) -> list[str]:
    """``CAST(NULL AS <type>) AS <column>`` for each optional contact column not in ``columns``.

    Added to a SELECT so that every formula and prepared query parses whatever the export has.
    """
    have = set(columns)
    return [f"CAST(NULL AS {_SQL_TYPES[c]}) AS {_q(c)}" for c in C.OPTIONAL if c not in have]


def derived_sql(source: str, columns: Iterable[str], thresholds: Thresholds | None = None, *,
                flags: str | None = None, windows: bool = True, row: str = "__row") -> str:
    """A SELECT over ``source`` (table/view name) returning every column plus ``Derived`` ones.

    Optional contact columns missing from ``columns`` are added as typed NULLs so every
    formula parses; :func:`computable_kpis` decides which KPIs are reported at all.
    Derived columns already present in ``columns`` are kept as they are.
    ``flags`` names a table from :func:`flags_sql` to join (by ``row``) instead of computing the
    windows here; ``windows=False`` leaves the repeat/complaint flags NULL (for queries that do
    not need them).
    """
    thresholds = thresholds or Thresholds()
    cols = list(columns)
    have = set(cols)
    extra = missing_optional_sql(have)
    days = int(thresholds.repeat_window_days)
    sl = int(thresholds.service_level_seconds)
    short = int(thresholds.short_contact_seconds)
    has_cust = C.CUSTOMER_ID in have
    has_complaint = C.COMPLAINT in have
    ab = f"coalesce({C.ABANDONED}, false)"

    inner_cols = ", ".join([_q(c) for c in cols] + extra)
    # One window pass in (started_at, contact_id) order per customer: the next contact's start,
    # and the start of the first later complaint. Either within N days -> the flag is true.
    if has_cust and flags:
        ranked = (f"SELECT {', '.join(['__s.' + _q(c) for c in cols] + extra)}, "
                  f"__f.{D.FOLLOWED_BY_REPEAT} AS __rep, __f.{D.FOLLOWED_BY_COMPLAINT} AS __comp "
                  f"FROM {source} AS __s LEFT JOIN {flags} AS __f ON __s.{_q(row)} = __f.{_q(row)}")
        null_cust = f"{C.CUSTOMER_ID} IS NULL OR {C.STARTED_AT} IS NULL"
        repeat = f"CASE WHEN {null_cust} THEN NULL ELSE coalesce(__rep, false) END"
        complaint = (f"CASE WHEN {null_cust} THEN NULL ELSE coalesce(__comp, false) END" if has_complaint
                     else "CAST(NULL AS BOOLEAN)")
    elif has_cust and windows:
        w = f"PARTITION BY {C.CUSTOMER_ID} ORDER BY {C.STARTED_AT}, {C.CONTACT_ID}"
        nxt = f"lead({C.STARTED_AT}) OVER ({w}) AS __next_at"
        nxt_c = (f"min(CASE WHEN coalesce({C.COMPLAINT}, false) THEN {C.STARTED_AT} END) OVER "
                 f"({w} ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS __next_complaint_at"
                 if has_complaint else "CAST(NULL AS TIMESTAMP) AS __next_complaint_at")
        ranked = f"SELECT {inner_cols}, {nxt}, {nxt_c} FROM {source}"
        null_cust = f"{C.CUSTOMER_ID} IS NULL OR {C.STARTED_AT} IS NULL"
        limit = f"{C.STARTED_AT} + INTERVAL {days} DAY"
        repeat = f"CASE WHEN {null_cust} THEN NULL ELSE coalesce(__next_at <= {limit}, false) END"
        if has_complaint:
            complaint = f"CASE WHEN {null_cust} THEN NULL ELSE coalesce(__next_complaint_at <= {limit}, false) END"
        else:
            complaint = "CAST(NULL AS BOOLEAN)"
    else:
        ranked = f"SELECT {inner_cols} FROM {source}"
        repeat = complaint = "CAST(NULL AS BOOLEAN)"

    derived = {
        D.WEEK: f"CAST(date_trunc('week', {C.STARTED_AT}) AS DATE)",
        D.DATE: f"CAST({C.STARTED_AT} AS DATE)",
        D.FOLLOWED_BY_REPEAT: repeat,
        D.FOLLOWED_BY_COMPLAINT: complaint,
        D.IS_SHORT: (f"({C.CHANNEL} = 'voice' AND NOT {ab} AND {C.HANDLE_SECONDS} < {short})"),
        D.ANSWERED_IN_TIME: f"(NOT {ab} AND {C.QUEUE_SECONDS} <= {sl})",
    }
    keep = [_q(c) for c in cols] + [_q(c) for c in C.OPTIONAL if c not in have]
    adds = [f"{expr} AS {_q(name)}" for name, expr in derived.items() if name not in have]
    return f"SELECT {', '.join(keep + adds)} FROM ({ranked}) AS __ranked"


def enrich(con: duckdb.DuckDBPyConnection, source: str, thresholds: Thresholds | None = None,
           *, into: str | None = None) -> duckdb.DuckDBPyRelation:
    """Add the derived columns to the contacts table/view ``source`` registered on ``con``.

    Parameters
    ----------
    con : duckdb connection holding ``source``.
    source : name of the contacts table or view (canonical columns).
    thresholds : window, short-contact and service-level settings.
    into : when given, materialise the result as this table (the window sort runs once).

    Returns
    -------
    The enriched relation.
    """
    columns = [r[0] for r in con.execute(f"DESCRIBE {source}").fetchall()]
    sql = derived_sql(source, columns, thresholds)
    if into:
        con.execute(f"CREATE OR REPLACE TABLE {_q(into)} AS {sql}")
        return con.table(into)
    return con.sql(sql)


def kpi_columns_sql(kpis: Iterable[str], thresholds: Thresholds | None = None) -> list[str]:
    """Aggregate expressions ``<kpi>`` (value, NULL when n = 0) and ``<kpi>__n`` for each KPI."""
    parts = []
    for kpi in kpis:
        num, den, scale = formula_sql(kpi, thresholds)
        parts.append(f"CAST({num} AS DOUBLE) / NULLIF({den}, 0) * {scale!r} AS {_q(kpi)}")
        parts.append(f"CAST({den} AS BIGINT) AS {_q(kpi + '__n')}")
    return parts


def aggregate_sql(source: str, by: list[str], kpis: Iterable[str],
                  thresholds: Thresholds | None = None) -> str:
    """SELECT of ``by`` columns, ``contacts`` and ``<kpi>``/``<kpi>__n`` per group over enriched ``source``.

    A value is NULL where its denominator is 0.
    """
    parts = [_q(b) for b in by] + [f"count(*) AS {CONTACTS_COLUMN}"] + kpi_columns_sql(kpis, thresholds)
    group = f" GROUP BY {', '.join(_q(b) for b in by)} ORDER BY {', '.join(_q(b) for b in by)}" if by else ""
    return f"SELECT {', '.join(parts)} FROM {source}{group}"


def kpi_values(contacts: pd.DataFrame | pa.Table, by: list[str] | tuple = (),
               thresholds: Thresholds | None = None) -> pd.DataFrame:
    """Every computable KPI per group: columns ``by``, ``contacts``, ``<kpi>`` and ``<kpi>__n``.

    Parameters
    ----------
    contacts : canonical contacts (pandas or Arrow); derived columns are added when absent.
    by : grouping columns (contact or derived columns, e.g. ``["team", "week"]``); empty = one row.
    thresholds : ``audit_lib.settings.Thresholds`` (default settings when omitted).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"contact_id": ["1", "2"], "agent_id": ["A", "A"],
    ...     "started_at": pd.to_datetime(["2026-07-01 09:00", "2026-07-01 10:00"]),
    ...     "channel": ["voice", "voice"], "handle_seconds": [100.0, 300.0]})
    >>> kpi_values(df, [])[["aht", "aht__n"]].to_dict("records")
    [{'aht': 200.0, 'aht__n': 2}]
    """
    thresholds = thresholds or Thresholds()
    by = list(by)
    table = contacts if isinstance(contacts, pa.Table) else pa.Table.from_pandas(contacts, preserve_index=False)
    missing = [c for c in C.REQUIRED if c not in table.column_names]
    if missing:
        raise ValueError(f"contacts lack required column(s) {missing}; have {table.column_names}")
    unknown = [b for b in by if b not in table.column_names and b not in _DERIVED]
    if unknown:
        raise ValueError(f"cannot group by {unknown}: not a contacts or derived column")
    con = duckdb.connect()
    try:
        con.register("__contacts_in", table)
        enrich(con, "__contacts_in", thresholds, into="__enriched")
        kpis = computable_kpis(table.column_names)
        df = con.execute(aggregate_sql("__enriched", by, kpis, thresholds)).df()
    finally:
        con.close()
    for kpi in kpis:
        df[kpi + "__n"] = df[kpi + "__n"].astype("int64")
        df[kpi] = df[kpi].astype("float64")
    return df.reset_index(drop=True)
