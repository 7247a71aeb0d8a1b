"""Raw contacts → compact Parquet tables: the one place raw contacts are read in full.

``prepare(params, run_dir)`` registers the contacts (an Arrow table) in DuckDB, adds the
per-contact derived columns once (``kpi_compute.enrich``), and writes the tables of
docs/architecture.md "Prepared tables" to ``<run_dir>/prepared/<name>.parquet`` plus a
``manifest.json`` (row counts, period covered, computable KPIs). Every lens works on these
compact tables, so notebooks stay fast whatever the size of the export.

Choices worth knowing
    * Aggregates cover contacts whose date lies in the audit period (``params.period_start``
      .. ``period_end``); the repeat/complaint windows still see contacts after the period end
      when the export has them. Rows outside the period are counted in the manifest.
    * An agent's ``team`` is the team with most of the agent's contacts in the period (ties:
      alphabetical), so an agent is one row per week even after a mid-quarter move.
    * ``week`` and ``date`` are stored as timestamps at midnight (pandas reads datetime64).
    * Histograms count handled contacts (abandoned excluded) at 1-second bins (60 s for
      ``resolution_seconds``); ``value`` is the bin's lower edge. Their rows come in no
      particular order (every other table is sorted by its keys).
    * ``first_replies`` targets come from the register: the target of the first metric whose
      ``kpi`` is ``first_reply_time`` (resp. ``resolution_time``); NULL counts when absent.
      Besides the documented columns it carries ``instant_slow_resolution`` (first reply
      ≤ 60 s and resolution above the resolution target).
    * The folder is written to a temporary sibling and renamed into place, so a reader never
      sees half a preparation and two concurrent preparations cannot mix.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from . import kpi_compute as kc
from .columns import Contact as C
from .columns import Derived as D
from .columns import Prepared as P
from .columns import Register as R
from .settings import Thresholds

__all__ = ["prepare", "TABLES", "HISTOGRAM_MEASURES", "INSTANT_REPLY_SECONDS", "register_targets"]

TABLES = (P.AGENT_WEEK, P.TEAM_WEEK, P.CENTRE_WEEK, P.TEAM_DAY, P.HISTOGRAMS, P.AGENT_SIGNATURES,
          P.CALLBACKS, P.FIRST_REPLIES, P.COVERAGE)
#: measure -> bin width in seconds
HISTOGRAM_MEASURES = {C.HANDLE_SECONDS: 1, C.QUEUE_SECONDS: 1, C.FIRST_REPLY_SECONDS: 1,
                      C.RESOLUTION_SECONDS: 60}
#: a first reply this fast is "instant" (an auto-acknowledgement rather than an answer)
INSTANT_REPLY_SECONDS = 60

_ENRICHED = "__enriched"
_ROW = "__row"
_AB = f"coalesce({C.ABANDONED}, false)"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def register_targets(register: pd.DataFrame | None) -> dict[str, float | None]:
    """``{kpi: target}`` for first_reply_time and resolution_time (first register row wins)."""
    out: dict[str, float | None] = {"first_reply_time": None, "resolution_time": None}
    if register is None or R.KPI not in register or R.TARGET not in register:
        return out
    for kpi in out:
        rows = register[register[R.KPI].astype(str).str.strip().str.lower() == kpi]
        values = pd.to_numeric(rows[R.TARGET], errors="coerce").dropna()
        out[kpi] = float(values.iloc[0]) if len(values) else None
    return out


def _sql_num(x: float | None) -> str:
    return "NULL" if x is None else repr(float(x))


def _thresholds(params) -> Thresholds:
    return getattr(params, "thresholds", None) or Thresholds()


def _period(params) -> tuple[str | None, str | None]:
    start, end = getattr(params, "period_start", None), getattr(params, "period_end", None)
    return (str(start) if start else None, str(end) if end else None)


def _copy(con, sql: str, path: Path) -> int:
    """Write a query to Parquet; return the number of rows written."""
    res = con.execute(f"COPY ({sql}) TO '{str(path)}' (FORMAT parquet, COMPRESSION zstd)").fetchone()
    return int(res[0]) if res else 0


def _coverage(table: pa.Table) -> pa.Table:
    rows = table.num_rows
    names = list(table.column_names)
    missing = [table.column(c).null_count for c in names]
    return pa.table({"column": pa.array(names, pa.string()),
                     "rows": pa.array([rows] * len(names), pa.int64()),
                     "missing": pa.array(missing, pa.int64()),
                     "missing_share": pa.array([m / rows if rows else None for m in missing], pa.float64())})


def _period_sql(start: str | None, end: str | None, date: str | None = None) -> str:
    """SQL condition: the contact is in the audit period (TRUE without one).

    On ``date`` (a DATE expression) when given; otherwise on ``started_at`` itself, from
    ``start`` 00:00 to before the day after ``end``: the same rows as on
    ``CAST(started_at AS DATE)``, without computing a date per contact.
    """
    where = []
    if start:
        where.append(f"{date} >= DATE '{start}'" if date else f"{C.STARTED_AT} >= TIMESTAMP '{start}'")
    if end:
        where.append(f"{date} <= DATE '{end}'" if date else f"{C.STARTED_AT} < TIMESTAMP '{end}' + INTERVAL 1 DAY")
    return " AND ".join(where) or "TRUE"


def _plain_sql(src: str, names: list[str], start: str | None, end: str | None) -> str:
    """The in-period contacts with their own columns (optional ones absent: typed NULLs)."""
    cols = [_q(c) for c in names] + kc.missing_optional_sql(names)
    return f"SELECT {', '.join(cols)} FROM {src} WHERE {_period_sql(start, end)}"


def _stats(con, start: str | None, end: str | None) -> tuple[tuple, dict[str, int]]:
    """The manifest's coverage figures: one narrow scan of the contacts plus the ``__base`` table.

    Returns ``(in period, outside it, first start, last start, weeks, agents, teams)`` and the
    in-period contacts per channel.
    """
    inside = _period_sql(start, end)
    rows = con.execute(
        f"SELECT {C.CHANNEL}, count(*) FILTER (WHERE {inside}), "
        f"count(*) FILTER (WHERE {C.STARTED_AT} IS NOT NULL AND NOT ({inside})), "
        f"min({C.STARTED_AT}) FILTER (WHERE {inside}), max({C.STARTED_AT}) FILTER (WHERE {inside}) "
        f"FROM __contacts GROUP BY 1 ORDER BY 1").fetchall()
    channels = {str(r[0]): int(r[1]) for r in rows if r[1]}
    firsts = [r[3] for r in rows if r[3] is not None]
    lasts = [r[4] for r in rows if r[4] is not None]
    weeks, agents, teams = con.execute(
        f"SELECT count(DISTINCT {D.WEEK}), count(DISTINCT {C.AGENT_ID}), count(DISTINCT {C.TEAM}) FROM __base"
    ).fetchone()
    stats = (sum(int(r[1]) for r in rows), sum(int(r[2]) for r in rows), min(firsts, default=None),
             max(lasts, default=None), weeks, agents, teams)
    return stats, channels


def _parts(th: Thresholds) -> dict[str, tuple[str, str, float]]:
    """Numerator/denominator SQL of every formula computable from contacts (additive aggregates)."""
    return {k: kc.formula_sql(k, th) for k, f in kc.load_formulas().items() if not f.external}


def _base_sql(src: str, th: Thresholds) -> str:
    """The agent x team x day base: contacts and every formula's numerator/denominator.

    Every KPI is a ratio of sums and counts, so the weekly and daily tables and the agent
    signatures are exact roll-ups of this small table (a few thousand rows), and the contacts
    are scanned once for all of them.
    """
    cols = [f"{C.AGENT_ID}", f"{C.TEAM}", f"{D.DATE}", f"any_value({D.WEEK}) AS {D.WEEK}", "count(*) AS contacts",
            f"sum({C.CSAT}) AS __csat_sum", f"count({C.CSAT}) AS __csat_cnt"]
    for kpi, (num, den, _) in _parts(th).items():
        cols.append(f"CAST({num} AS DOUBLE) AS {_q('__num_' + kpi)}")
        cols.append(f"CAST({den} AS BIGINT) AS {_q('__den_' + kpi)}")
    return f"SELECT {', '.join(cols)} FROM {src} GROUP BY {C.AGENT_ID}, {C.TEAM}, {D.DATE}"


def _rollup(kpis: list[str], th: Thresholds, prefix: str = "") -> str:
    """``, <kpi>, <kpi>__n`` roll-up expressions over the base table."""
    parts = _parts(th)
    out = []
    for kpi in kpis:
        scale = parts[kpi][2]
        out.append(f"CAST(sum({prefix}{_q('__num_' + kpi)}) AS DOUBLE) / NULLIF(sum({prefix}{_q('__den_' + kpi)}), 0)"
                   f" * {scale!r} AS {_q(kpi)}")
        out.append(f"CAST(sum({prefix}{_q('__den_' + kpi)}) AS BIGINT) AS {_q(kpi + '__n')}")
    return (", " + ", ".join(out)) if out else ""


def _queries(columns: set[str], kpis: list[str], th: Thresholds, targets: dict) -> dict[str, str]:
    """SQL of every prepared table: roll-ups of ``__base`` and three scans of ``__in_period``."""
    src = "__in_period"
    week = f"CAST({D.WEEK} AS TIMESTAMP) AS {D.WEEK}"
    q: dict[str, str] = {}
    # agent's main team over the period (most contacts; ties alphabetical)
    q["__agent_team"] = (
        f"SELECT {C.AGENT_ID}, {C.TEAM} FROM (SELECT {C.AGENT_ID}, {C.TEAM}, row_number() OVER "
        f"(PARTITION BY {C.AGENT_ID} ORDER BY n DESC, {C.TEAM} NULLS LAST) AS r FROM ("
        f"SELECT {C.AGENT_ID}, {C.TEAM}, sum(contacts) AS n FROM __base GROUP BY ALL)) WHERE r = 1")
    b = "b."
    q[P.AGENT_WEEK] = (
        f"SELECT b.{C.AGENT_ID}, any_value(t.{C.TEAM}) AS {C.TEAM}, CAST(b.{D.WEEK} AS TIMESTAMP) AS {D.WEEK}, "
        f"CAST(sum(b.contacts) AS BIGINT) AS contacts{_rollup(kpis, th, b)} "
        f"FROM __base b JOIN __agent_team t USING ({C.AGENT_ID}) "
        f"GROUP BY b.{C.AGENT_ID}, b.{D.WEEK} ORDER BY b.{C.AGENT_ID}, b.{D.WEEK}")
    q[P.TEAM_WEEK] = (f"SELECT {C.TEAM}, {week}, CAST(sum(contacts) AS BIGINT) AS contacts{_rollup(kpis, th)} "
                      f"FROM __base GROUP BY {C.TEAM}, {D.WEEK} ORDER BY {C.TEAM}, {D.WEEK}")
    q[P.CENTRE_WEEK] = (f"SELECT {week}, CAST(sum(contacts) AS BIGINT) AS contacts{_rollup(kpis, th)} "
                        f"FROM __base GROUP BY {D.WEEK} ORDER BY {D.WEEK}")
    q[P.TEAM_DAY] = (
        f"SELECT {C.TEAM}, CAST({D.DATE} AS TIMESTAMP) AS {D.DATE}, "
        f"CAST(isodow({D.DATE}) - 1 AS INTEGER) AS weekday, CAST(dayofmonth({D.DATE}) AS INTEGER) AS day_of_month, "
        f"CAST(date_diff('day', {D.DATE}, last_day({D.DATE})) AS INTEGER) AS days_to_month_end, "
        f"CAST(sum(contacts) AS BIGINT) AS contacts{_rollup(kpis, th)} "
        f"FROM __base GROUP BY {C.TEAM}, {D.DATE} ORDER BY {C.TEAM}, {D.DATE}")

    def s(kind, kpi):
        return f"sum(b.{_q(kind + kpi)})"

    q[P.AGENT_SIGNATURES] = (
        f"SELECT b.{C.AGENT_ID}, any_value(t.{C.TEAM}) AS {C.TEAM}, CAST(sum(b.contacts) AS BIGINT) AS contacts, "
        f"CAST({s('__den_', 'aht')} AS BIGINT) AS voice_handled, "
        f"CAST({s('__num_', 'short_contact_share')} AS BIGINT) AS short_contacts, "
        f"{s('__num_', 'aht')} / NULLIF({s('__den_', 'aht')}, 0) AS aht, "
        f"CAST({s('__num_', 'transfer_rate')} AS BIGINT) AS transfers, "
        f"CAST({s('__den_', 'transfer_rate')} AS BIGINT) AS transfer_n, "
        f"CAST({s('__num_', 'repeat_rate')} AS BIGINT) AS repeats, "
        f"CAST({s('__den_', 'repeat_rate')} AS BIGINT) AS repeat_n, "
        f"CAST({s('__num_', 'fcr_agent')} AS BIGINT) AS fcr_coded, "
        f"CAST({s('__den_', 'fcr_agent')} AS BIGINT) AS fcr_coded_n, "
        f"CAST({s('__num_', 'fcr_repeat')} AS BIGINT) AS fcr_repeat_ok, "
        f"CAST({s('__den_', 'fcr_repeat')} AS BIGINT) AS fcr_repeat_n, "
        f"CAST({s('__den_', 'callback_completion')} AS BIGINT) AS callbacks_promised, "
        f"CAST({s('__num_', 'callback_completion')} AS BIGINT) AS callbacks_completed, "
        f"CAST({s('__den_', 'csat')} AS BIGINT) AS csat_responses, "
        f"CAST({s('__num_', 'csat')} AS BIGINT) AS csat_top2, "
        f"sum(b.__csat_sum) / NULLIF(sum(b.__csat_cnt), 0) AS csat_mean "
        f"FROM __base b JOIN __agent_team t USING ({C.AGENT_ID}) GROUP BY b.{C.AGENT_ID} ORDER BY b.{C.AGENT_ID}")
    hist = []
    for measure, width in HISTOGRAM_MEASURES.items():
        if measure not in columns:
            continue
        hist.append(
            f"SELECT '{measure}' AS measure, {C.CHANNEL}, {C.TEAM}, {C.AGENT_ID}, "
            f"floor({measure} / {width}) * {width} AS value, CAST({width} AS INTEGER) AS resolution, count(*) AS count "
            f"FROM __plain WHERE {measure} IS NOT NULL AND NOT {_AB} GROUP BY ALL")
    if hist:
        # in no particular order: every reader groups and sorts the slice it needs, and sorting
        # 1.36M rows by four text keys took 0.9 of the 3.7 s of this table at 10M contacts
        q[P.HISTOGRAMS] = " UNION ALL ".join(hist)
    else:
        q[P.HISTOGRAMS] = (f"SELECT CAST(NULL AS VARCHAR) AS measure, CAST(NULL AS VARCHAR) AS {C.CHANNEL}, "
                           f"CAST(NULL AS VARCHAR) AS {C.TEAM}, CAST(NULL AS VARCHAR) AS {C.AGENT_ID}, "
                           "CAST(NULL AS DOUBLE) AS value, CAST(NULL AS INTEGER) AS resolution, "
                           "CAST(NULL AS BIGINT) AS count LIMIT 0")

    q[P.CALLBACKS] = (
        f"SELECT {C.TEAM}, {week}, coalesce({C.CALLBACK_COMPLETED}, false) AS kept, count(*) AS promised, "
        f"count(*) FILTER (WHERE {D.FOLLOWED_BY_REPEAT}) AS {D.FOLLOWED_BY_REPEAT}, "
        f"count(*) FILTER (WHERE {D.FOLLOWED_BY_COMPLAINT}) AS {D.FOLLOWED_BY_COMPLAINT} "
        f"FROM {src} WHERE {C.CALLBACK_PROMISED} GROUP BY ALL ORDER BY {C.TEAM}, {D.WEEK}, kept")
    frt, res = _sql_num(targets.get("first_reply_time")), _sql_num(targets.get("resolution_time"))
    fr, rs = C.FIRST_REPLY_SECONDS, C.RESOLUTION_SECONDS
    q[P.FIRST_REPLIES] = (
        f"SELECT {C.TEAM}, {C.AGENT_ID}, {C.CHANNEL}, count(*) AS replies, "
        f"count(*) FILTER (WHERE {fr} <= {INSTANT_REPLY_SECONDS}) AS instant_replies, "
        f"CAST(CASE WHEN {frt} IS NULL THEN NULL ELSE count(*) FILTER (WHERE {fr} <= {frt}) END AS BIGINT) AS within_target, "
        f"CAST(CASE WHEN {frt} IS NULL OR {res} IS NULL THEN NULL ELSE count(*) FILTER "
        f"(WHERE {fr} <= {frt} AND {rs} > {res}) END AS BIGINT) AS within_target_slow_resolution, "
        f"count({rs}) AS resolution_n, "
        f"CAST(CASE WHEN {res} IS NULL THEN NULL ELSE count(*) FILTER "
        f"(WHERE {fr} <= {INSTANT_REPLY_SECONDS} AND {rs} > {res}) END AS BIGINT) AS instant_slow_resolution "
        f"FROM __plain WHERE {fr} IS NOT NULL GROUP BY ALL ORDER BY {C.TEAM}, {C.AGENT_ID}, {C.CHANNEL}")
    return q


def _attach_flags(con, fsql: str, table: pa.Table) -> pa.Table:
    """``table`` with the repeat/complaint flags of ``fsql`` (:func:`kc.flags_sql`) as two more columns.

    The window runs on the key columns only and returns ``(row, flags)`` in no particular
    order; the flags are put back in place by row number (a NumPy scatter), instead of a hash
    join of every contact with its flags in each later scan (1.8 s of the base table's 3.9 s at
    10M contacts). Contacts without a customer or start time are not in ``fsql``'s result and
    get NULL, as ``derived_sql`` gives them.
    """
    flags = con.sql(fsql).to_arrow_table()
    rows = flags.column(_ROW).to_numpy()
    n = table.num_rows
    missing = np.ones(n, bool)
    missing[rows] = False
    for name in (D.FOLLOWED_BY_REPEAT, D.FOLLOWED_BY_COMPLAINT):
        if name in table.column_names:      # given by the caller: kept as it is (as derived_sql does)
            continue
        col = flags.column(name)
        if col.null_count == len(col):      # no complaint column: NULL throughout
            table = table.append_column(name, pa.nulls(n, pa.bool_()))
            continue
        values = np.zeros(n, bool)
        values[rows] = col.to_numpy(zero_copy_only=False)
        table = table.append_column(name, pa.array(values, mask=missing))
    return table


def prepare(params, run_dir: str | Path, contacts: pa.Table | pd.DataFrame | None = None,
            register: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write every prepared table of ``params``' contacts into ``<run_dir>/prepared/``.

    Parameters
    ----------
    params : audit_lib.params.Params (thresholds, period, inputs).
    run_dir : the run folder.
    contacts : the canonical contacts (Arrow preferred); read with ``io.load_contacts`` when None.
    register : the metric register (targets for ``first_replies``); read with ``io.load_register`` when None.

    Returns
    -------
    dict
        ``{table name: parquet path}`` in ``TABLES`` order.
    """
    t0 = time.perf_counter()
    if contacts is None:
        from . import io
        contacts = io.load_contacts(params)
    elif hasattr(contacts, "take_table"):  # handed over by the caller: this function holds the only reference
        contacts = contacts.take_table()
    table = contacts if isinstance(contacts, pa.Table) else pa.Table.from_pandas(contacts, preserve_index=False)
    del contacts
    if register is None:
        from . import io
        register = io.load_register(params)
    th = _thresholds(params)
    targets = register_targets(register)
    columns = set(table.column_names)
    kpis = kc.computable_kpis(columns)
    start, end = _period(params)

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / "prepared"
    tmp = Path(tempfile.mkdtemp(prefix=".prepared-", dir=run_dir))
    timings: dict[str, float] = {}
    try:
        con = duckdb.connect()
        try:
            threads = os.cpu_count() or 1
            con.execute(f"SET threads = {threads}")
            # insertion order is irrelevant (every output is ORDER BY'd); dropping it saves memory
            con.execute("SET preserve_insertion_order = false")
            # a row number lets the narrow window result join back without sorting every column
            coverage = _coverage(table)
            n_columns = table.num_columns
            names = list(table.column_names)
            table = table.append_column(_ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))
            con.register("__contacts", table)
            tq = time.perf_counter()
            fsql = kc.flags_sql("__contacts", names, th, row=_ROW)
            if fsql:
                table = _attach_flags(con, fsql, table)
                con.register("__contacts", table)
            # flags present as columns are kept by derived_sql; without a customer column they are NULL
            con.execute(f"CREATE VIEW {_ENRICHED} AS "
                        + kc.derived_sql("__contacts", list(table.column_names), th, windows=False, row=_ROW))
            timings["enrich"] = time.perf_counter() - tq
            cond = _period_sql(start, end, date=D.DATE)
            con.execute(f"CREATE VIEW __in_period AS SELECT * FROM {_ENRICHED} WHERE {cond}")
            # the histograms and first replies need raw columns only: a view without the derived
            # columns, filtered on the timestamp itself (the same rows as the date filter)
            con.execute(f"CREATE VIEW __plain AS {_plain_sql('__contacts', names, start, end)}")
            tq = time.perf_counter()
            con.execute(f"CREATE TEMP TABLE __base AS {_base_sql('__in_period', th)}")
            timings["base"] = time.perf_counter() - tq
            tq = time.perf_counter()
            stats, channels = _stats(con, start, end)
            timings["stats"] = time.perf_counter() - tq
            queries = _queries(columns, kpis, th, targets)
            con.execute(f"CREATE TEMP TABLE __agent_team AS {queries.pop('__agent_team')}")
            paths, rows = {}, {}
            for name in TABLES:
                tq = time.perf_counter()
                path = tmp / f"{name}.parquet"
                if name == P.COVERAGE:
                    import pyarrow.parquet as pq
                    pq.write_table(coverage, path, compression="zstd")
                else:
                    rows[name] = _copy(con, queries[name], path)
                timings[name] = time.perf_counter() - tq
                paths[name] = final / path.name
            rows[P.COVERAGE] = n_columns
        finally:
            con.close()
            # the contacts are freed here (this function held the only reference); Arrow's
            # allocator keeps freed pages for reuse unless asked to return them: 1.6 GB at 10M
            # contacts that the runner would otherwise hold while the notebooks run
            del table
            pa.default_memory_pool().release_unused()
        manifest = {
            "tables": rows, "kpis": kpis, "contacts": int(stats[0]), "outside_period": int(stats[1]),
            "first_contact": str(stats[2]) if stats[2] is not None else None,
            "last_contact": str(stats[3]) if stats[3] is not None else None,
            "weeks": int(stats[4]), "agents": int(stats[5]), "teams": int(stats[6]), "channels": channels,
            "period_start": start, "period_end": end, "columns": sorted(columns),
            "targets": targets, "seconds": {k: round(v, 3) for k, v in timings.items()},
        }
        manifest["seconds"]["total"] = round(time.perf_counter() - t0, 3)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        _publish(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return paths


def _publish(tmp: Path, final: Path) -> None:
    """Rename the finished folder into place (replacing an older preparation by rename-swap)."""
    if final.exists():
        old = final.with_name(f".prepared-old-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(final, old)
        except FileNotFoundError:
            old = None
        try:
            os.rename(tmp, final)
        except OSError:
            # another process published meanwhile: keep theirs, ours is identical input
            if old is not None and not final.exists():
                os.rename(old, final)
                old = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    else:
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
