"""Loading and lazy validation of a client's exports.

Every table named in the params file is read once, parsed into canonical names and
types (:mod:`audit_lib.schemas`), and checked. Problems are *collected*, never raised
one at a time: :func:`validate` returns a :class:`ValidationReport` listing each one
with the file, the column (client name and canonical name), a reason code, how many
rows, the first offending rows numbered as in the client's file (header = row 1 for a
CSV, so the first data row is 2; an XLSX with its header on row 3 starts its data on
row 4; Parquet has no header, its records count from 1) and the fix.

Contacts can be tens of millions of rows: they are read in Arrow record batches
(``pyarrow.csv`` streaming reader or Parquet row groups) and every check is a
vectorised Arrow or DuckDB expression — never a Python loop over rows. The three small
tables are parsed with pandas and their values checked with pandera schemas built from
the same declarations.

Rows are counted as records, the way a spreadsheet shows a CSV: a quoted value spanning
two lines stays one row.
"""
from __future__ import annotations

import bisect
import codecs
import csv
import datetime as dt
import difflib
import queue
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import schemas
from .columns import ITEM_BANK, SURVEY_SEP, Contact, Outcome, Register, Survey
from .errors import InputDataError

__all__ = [
    "Problem", "ValidationReport", "validate", "load_register", "load_contacts", "load_survey",
    "load_outcomes", "MAX_ROWS_SHOWN",
]

MAX_ROWS_SHOWN = 5          # first offending rows listed per problem
MAX_EXAMPLES = 3            # offending values quoted per problem
BATCH_BYTES = 32 << 20      # CSV block size: ~32 MB of text per Arrow batch
PARQUET_BATCH_ROWS = 1 << 20
HEADER_SEARCH_ROWS = 30     # rows scanned for the header when it is not where params say
CSAT_MISSING_WARN = 0.5     # warn when more than this share of contacts has no score
REQUIRED_MISSING_WARN = 0.05


# =========================================================================== report

@dataclass
class Problem:
    """One problem found in the inputs.

    Attributes
    ----------
    file : str
        The file as named in the params file (absolute path).
    column : str
        The client's column name and, when different, the canonical one: ``'Call ID' (contact_id)``.
        Empty for file-level problems.
    reason : str
        A code from :data:`audit_lib.schemas.REASONS`.
    count : int
        Number of offending rows (or values).
    rows : list of int
        The first offending rows, numbered as in the client's file.
    message : str
        What is wrong, in words, with example values.
    fix : str
        How to fix it.
    table : str
        register / contacts / survey / outcomes.
    row_word : str
        ``row`` (CSV/XLSX lines) or ``record`` (Parquet).
    """

    file: str
    column: str
    reason: str
    count: int
    rows: list
    message: str
    fix: str
    table: str = ""
    row_word: str = "row"

    def format(self) -> str:
        """One readable paragraph."""
        where = Path(self.file).name if self.file else self.table
        col = f", column {self.column}" if self.column else ""
        rows = ""
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows)
            more = f" (first {len(self.rows)} of {self.count:,})" if self.count > len(self.rows) else ""
            rows = f"\n      {self.row_word}s: {shown}{more}"
        return (f"  [{self.reason}] {where}{col}: {self.message}{rows}"
                f"\n      fix: {self.fix}")

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("table", "file", "column", "reason", "count", "rows",
                                              "message", "fix")}


@dataclass
class ValidationReport:
    """Everything :func:`validate` found, and the loaded canonical tables.

    ``tables`` maps register / contacts / survey / outcomes to the loaded data (contacts as a
    ``pyarrow.Table``, the others as DataFrames; ``None`` for an absent optional table or one
    that could not be read), so a run never reads the files twice.
    """

    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    tables: dict = field(default_factory=dict)
    rows: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    source: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self) -> str:
        """Readable text: a summary line per table, then every error, then every warning."""
        head = f"Validation of {self.source}" if self.source else "Validation"
        lines = [head]
        for name in schemas.TABLE_ORDER:
            if name not in self.files:
                if name in ("survey", "outcomes"):
                    lines.append(f"  {name:<9} (not provided)")
                continue
            n_err = sum(p.table == name for p in self.errors)
            n_warn = sum(p.table == name for p in self.warnings)
            status = "ok" if not n_err else f"{n_err} error(s)"
            if n_warn:
                status += f", {n_warn} warning(s)"
            n = self.rows.get(name)
            size = f"{n:,} rows" if n is not None else "not read"
            lines.append(f"  {name:<9} {Path(self.files[name]).name}: {size}; {status}")
        if self.errors:
            lines.append(f"\nERRORS ({len(self.errors)}): the audit cannot run until these are fixed")
            lines.extend(p.format() for p in self.errors)
        if self.warnings:
            lines.append(f"\nWARNINGS ({len(self.warnings)}): shown in the report; the audit can run")
            lines.extend(p.format() for p in self.warnings)
        lines.append("\nResult: " + ("valid" if self.ok else f"INVALID ({len(self.errors)} error(s))"))
        return "\n".join(lines)

    def raise_for_errors(self, table: str | None = None) -> None:
        """Raise :class:`InputDataError` with the formatted report when there are errors."""
        errors = [p for p in self.errors if table is None or p.table == table]
        if errors:
            scope = f"the {table} input" if table else "the inputs"
            raise InputDataError(f"{len(errors)} problem(s) in {scope}:\n" + "\n".join(p.format() for p in errors),
                                 problems=errors)


class _Collector:
    """Accumulates problems of one table across batches (counts, first rows, examples)."""

    def __init__(self, table: str, path: Path, report: ValidationReport, names: dict | None = None):
        self.table, self.path, self.report = table, path, report
        self.names = names or {}        # canonical -> client column name
        self.row_word = "row"
        self._acc: dict = {}

    def label(self, canonical: str | None, client: str | None = None) -> str:
        if not canonical and not client:
            return ""
        client = client or self.names.get(canonical, canonical)
        return f"{client!r}" if client == canonical or not canonical else f"{client!r} ({canonical})"

    def add(self, reason: str, column: str, message: str, fix: str, *, count: int = 1, rows=(),
            warning: bool = False, canonical: str | None = None) -> None:
        col = self.label(canonical, column) if canonical or column else ""
        problem = Problem(str(self.path), col, reason, int(count), [int(r) for r in rows][:MAX_ROWS_SHOWN],
                          message, fix, self.table, self.row_word)
        (self.report.warnings if warning else self.report.errors).append(problem)

    # -- batch-wise accumulation ------------------------------------------------------------
    def accumulate(self, canonical: str, reason: str, mask, raw, rows_of, message: str, fix: str,
                   *, warning: bool = False) -> None:
        """Record the rows where ``mask`` is true (``rows_of`` maps batch positions to file rows)."""
        n = pc.sum(mask).as_py() or 0      # nulls are not counted: they are no offence
        if not n:
            return
        mask = pc.fill_null(mask, False)
        key = (canonical, reason)
        acc = self._acc.setdefault(key, {"count": 0, "rows": [], "examples": [], "message": message,
                                         "fix": fix, "warning": warning})
        acc["count"] += n
        if len(acc["rows"]) < MAX_ROWS_SHOWN:
            idx = pc.indices_nonzero(mask).slice(0, MAX_ROWS_SHOWN - len(acc["rows"]))
            acc["rows"].extend(rows_of(idx.to_numpy()))
            if raw is not None:
                for value in pc.take(raw, idx).to_pylist():
                    if len(acc["examples"]) < MAX_EXAMPLES and value is not None:
                        acc["examples"].append(value)

    def flush(self) -> None:
        for (canonical, reason), acc in self._acc.items():
            examples = ", ".join(repr(_plain(v)) for v in acc["examples"])
            # plain replacement, not str.format: client values in the message may hold braces
            message = acc["message"].replace("{n:,}", f"{acc['count']:,}").replace("{examples}",
                                                                                  examples or "(blank)")
            self.add(reason, self.names.get(canonical, canonical), message, acc["fix"], count=acc["count"],
                     rows=acc["rows"], warning=acc["warning"], canonical=canonical)
        self._acc.clear()


def _plain(value):
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    return value


# =========================================================================== raw readers

class _Source:
    """A client file opened for reading: header names and batches of raw Arrow columns."""

    row_word = "row"

    def __init__(self, path: Path, header_row: int):
        self.path = path
        self.header_row = header_row
        self.columns: list[str] = []
        self.skipped: list[int] = []    # file rows dropped by the reader (wrong number of fields)

    def rows_of(self, offset: int):
        """Function mapping positions within a batch starting at data index ``offset`` to file rows."""
        first = self.header_row + 1
        skipped = self.skipped

        def mapper(positions) -> list[int]:
            out = []
            for p in np.asarray(positions, dtype=np.int64):
                row = first + offset + int(p)
                if skipped:
                    prev = -1
                    while prev != row:      # shift past rows the reader skipped before this one
                        prev = row
                        row = first + offset + int(p) + bisect.bisect_right(skipped, row)
                out.append(row)
            return out
        return mapper

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:  # pragma: no cover - abstract
        raise NotImplementedError


class _ReadFailure(Exception):
    """A file-level problem that stops reading one table (already recorded in the collector)."""


def _arrow_encoding(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    return "utf8" if name in ("utf-8", "utf-8-sig") else encoding


def _find_bad_bytes(path: Path, encoding: str) -> tuple[int, bytes] | None:
    """(line number, offending bytes) of the first byte sequence invalid in ``encoding``, else None."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return line + chunk[:exc.start].count(b"\n"), chunk[exc.start:exc.start + 4]
            line += chunk.count(b"\n")
    return None


def _encoding_fix(table: str, path: Path) -> str:
    with open(path, "rb") as fh:
        sample = fh.read(1 << 20)
    guess = "latin-1"
    if any(0x80 <= b <= 0x9F for b in sample):     # bytes only Windows-1252 gives meaning to
        guess = "cp1252"
    return f"set inputs.{table}.format.encoding: {guess} (or re-save the file as UTF-8)"


class _CsvSource(_Source):
    def __init__(self, path: Path, fmt, table: str, col: _Collector):
        super().__init__(path, fmt.header_row)
        self.fmt, self.table, self.col = fmt, table, col
        self.encoding = fmt.encoding

    def head_rows(self, n: int) -> list[list[str]]:
        """The first ``n`` rows of the file (for the header and header search)."""
        rows = []
        try:
            with open(self.path, encoding=self.encoding, newline="") as fh:
                reader = csv.reader(fh, delimiter=self.fmt.delimiter)
                for row in reader:
                    rows.append(row)
                    if len(rows) >= n:
                        break
        except UnicodeDecodeError:
            self._bad_encoding()
        except csv.Error as exc:
            self.col.add("unreadable_file", "", f"the file cannot be read as CSV: {exc}",
                         "check the delimiter (inputs.%s.format.delimiter) and quoting" % self.table)
            raise _ReadFailure from None
        return rows

    def _bad_encoding(self):
        found = _find_bad_bytes(self.path, self.encoding)
        line, snippet = found if found else (None, b"")
        self.col.add("bad_encoding", "",
                     f"the file is not valid {self.encoding} text (bytes {snippet!r} on line {line})",
                     _encoding_fix(self.table, self.path), rows=[line] if line else [])
        raise _ReadFailure

    def open(self) -> list[str]:
        with open(self.path, "rb") as fh:
            start = fh.read(4096)
        if not start.strip():
            self.col.add("empty_file", "", "the file is empty (no header, no data)",
                         "export the table again; the file must start with a header row")
            raise _ReadFailure
        rows = self.head_rows(self.header_row)
        if len(rows) < self.header_row:
            self.col.add("header_not_found", "", f"the file has only {len(rows)} row(s), so there is no header "
                         f"on row {self.header_row}", f"set inputs.{self.table}.format.header_row to the row "
                         "holding the column names", rows=[self.header_row])
            raise _ReadFailure
        self.columns = [c.strip().lstrip("\ufeff") for c in rows[self.header_row - 1]]
        return self.columns

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        import pyarrow.csv as pcsv
        bad_rows: list[str] = []

        def on_invalid(row):
            bad_rows.append(row.text)
            return "skip"

        header = list(self.columns)
        names = {f"c{header.index(c)}": c for c in columns}
        previous_hook = sys.unraisablehook

        def quiet(unraisable):
            # pyarrow cannot decode a bad row holding an undecodable byte, prints that as an
            # "Exception ignored" traceback, then raises: the except below reports it as bad_encoding
            if unraisable.object is not on_invalid:
                previous_hook(unraisable)

        sys.unraisablehook = quiet
        try:
            # opening reads the first block already, so it can fail like any later block
            reader = pcsv.open_csv(
                self.path,
                read_options=pcsv.ReadOptions(encoding=_arrow_encoding(self.encoding), skip_rows=self.header_row,
                                              column_names=[f"c{i}" for i in range(len(header))],
                                              block_size=BATCH_BYTES, use_threads=True),
                parse_options=pcsv.ParseOptions(delimiter=self.fmt.delimiter, ignore_empty_lines=False,
                                                invalid_row_handler=on_invalid),
                # UTF-8 is checked by _check_utf8, faster on ASCII blocks than the reader's check
                convert_options=pcsv.ConvertOptions(
                    column_types={f"c{i}": pa.string() for i in range(len(header))},
                    include_columns=list(names), strings_can_be_null=False, quoted_strings_can_be_null=False,
                    check_utf8=False),
            )
            for batch in _prefetched(reader, _check_utf8):
                if bad_rows and not self.skipped:
                    self._locate_bad_rows(len(header))
                yield pa.RecordBatch.from_arrays(batch.columns, names=[names[n] for n in batch.schema.names])
        except pa.ArrowInvalid as exc:
            # an undecodable byte can also surface as a parse error: the reader cannot hand a row
            # with the wrong field count to on_invalid when that row holds a bad byte
            if "utf8" in str(exc).lower() or "decode" in str(exc).lower() or _find_bad_bytes(self.path, self.encoding):
                self._bad_encoding()
            self.col.add("unreadable_file", "", f"the file cannot be read as CSV: {exc}",
                         f"check inputs.{self.table}.format (delimiter, encoding) and the file's quoting")
            raise _ReadFailure from None
        finally:
            sys.unraisablehook = previous_hook
        if bad_rows and not self.skipped:
            self._locate_bad_rows(len(header))

    def _locate_bad_rows(self, n_fields: int) -> None:
        # Error path only: find the file rows with the wrong number of fields (csv module).
        # Undecodable bytes cannot change a field count (delimiters are ASCII), and a bad byte
        # inside a row the reader skipped must not crash the report: replace them here.
        with open(self.path, encoding=self.encoding, errors="replace", newline="") as fh:
            for number, row in enumerate(csv.reader(fh, delimiter=self.fmt.delimiter), start=1):
                if number > self.header_row and row and len(row) != n_fields:
                    self.skipped.append(number)
        self.col.add("bad_row", "", f"{len(self.skipped):,} row(s) have a different number of fields than the "
                     f"header's {n_fields} (a stray delimiter or an unquoted value containing one); "
                     "they were left out", "quote values that contain the delimiter, or remove the stray fields",
                     count=len(self.skipped), rows=self.skipped)


PREFETCH_BATCHES = 2    # blocks read ahead of the one being checked (~50 MB of Arrow each)


def _prefetched(batches: Iterator, check=None, depth: int = PREFETCH_BATCHES) -> Iterator:
    """Iterate ``batches`` (calling ``check`` on each) in a background thread, ``depth`` ahead.

    Reading and decoding a CSV block (Arrow, outside the interpreter lock) then overlaps the
    parsing and checking of the previous one: 10M contacts validate in 8.7–8.9 s instead of
    12–14 s on 2 cores, for ~60 MB more memory. Items arrive in order; an exception raised while
    reading is raised here, in the caller's thread; closing this generator stops the thread.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                items.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in batches:
                if check is not None:
                    check(item)
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the caller, which decides what it means
            put(("error", exc))

    worker = threading.Thread(target=work, name="csv-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = items.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        # it finishes the block it is reading; a stuck read (a dead network share) must not hang
        # an interrupted run, and the thread is a daemon
        worker.join(timeout=10)


def _check_utf8(batch: pa.RecordBatch) -> None:
    """Raise ``ArrowInvalid`` (naming utf8) when a column of a CSV block is not valid UTF-8.

    The same check as the CSV reader's ``check_utf8``, which validates every byte and took a
    quarter of the reading time; a block of plain ASCII (most exports) is valid UTF-8 as it is,
    so only a column holding a byte >= 0x80 is validated in full.
    """
    for arr in batch.columns:
        offsets, data = _string_buffers(arr)
        if offsets is not None and offsets[-1] > offsets[0] and data[offsets[0]:offsets[-1]].max() >= 0x80:
            try:
                arr.validate(full=True)
            except pa.ArrowInvalid as exc:
                raise pa.ArrowInvalid(f"invalid utf8 data: {exc}") from None


class _XlsxSource(_Source):
    def __init__(self, path: Path, fmt, table: str, col: _Collector):
        super().__init__(path, fmt.header_row)
        self.fmt, self.table, self.col = fmt, table, col
        self._rows: list[tuple] = []

    def head_rows(self, n: int) -> list[list[str]]:
        return [["" if v is None else str(v) for v in row] for row in self._rows[:n]]

    def open(self) -> list[str]:
        import openpyxl
        try:
            wb = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises several types for a damaged or non-xlsx file
            self.col.add("unreadable_file", "", f"the file cannot be opened as an Excel workbook ({exc})",
                         "save it again from Excel as .xlsx")
            raise _ReadFailure from None
        try:
            sheet = self.fmt.sheet
            if sheet is None:
                ws = wb.worksheets[0]
            elif isinstance(sheet, int):
                if sheet > len(wb.worksheets):
                    self.col.add("unreadable_file", "", f"the workbook has {len(wb.worksheets)} sheet(s), "
                                 f"not {sheet}", f"set inputs.{self.table}.format.sheet to one of "
                                 f"{wb.sheetnames}")
                    raise _ReadFailure
                ws = wb.worksheets[sheet - 1]
            elif sheet in wb.sheetnames:
                ws = wb[sheet]
            else:
                self.col.add("unreadable_file", "", f"the workbook has no sheet {sheet!r}",
                             f"set inputs.{self.table}.format.sheet to one of {wb.sheetnames}")
                raise _ReadFailure
            self._rows = [tuple(r) for r in ws.iter_rows(values_only=True)]
        finally:
            wb.close()
        # trailing rows that are entirely empty are Excel formatting, not data
        while self._rows and all(v is None or (isinstance(v, str) and not v.strip()) for v in self._rows[-1]):
            self._rows.pop()
        if not self._rows:
            self.col.add("empty_file", "", "the sheet is empty (no header, no data)",
                         "put the header on the first row and the data below it")
            raise _ReadFailure
        if len(self._rows) < self.header_row:
            self.col.add("header_not_found", "", f"the sheet has only {len(self._rows)} row(s), so there is "
                         f"no header on row {self.header_row}",
                         f"set inputs.{self.table}.format.header_row to the row holding the column names")
            raise _ReadFailure
        header = self._rows[self.header_row - 1]
        self.columns = ["" if v is None else str(v).strip() for v in header]
        return self.columns

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        data = self._rows[self.header_row:]
        arrays = []
        for name in columns:
            i = self.columns.index(name)
            arrays.append(_excel_column([row[i] if i < len(row) else None for row in data]))
        yield pa.RecordBatch.from_arrays(arrays, names=columns)


def _excel_column(values: list) -> pa.Array:
    """An Arrow array from one Excel column's cell values (types as Excel stored them)."""
    present = [v for v in values if v is not None and not (isinstance(v, str) and not v.strip())]
    kinds = {type(v) for v in present}
    if not present:
        return pa.array([None] * len(values), type=pa.string())
    if kinds <= {dt.time, dt.timedelta}:
        # a cell formatted h:mm:ss: Excel stores a fraction of a day, openpyxl a time/timedelta
        def secs(v):
            if v is None or isinstance(v, str):
                return None
            if isinstance(v, dt.timedelta):
                return v.total_seconds()
            return v.hour * 3600 + v.minute * 60 + v.second + v.microsecond / 1e6
        return pa.array([secs(v) for v in values], type=pa.float64())
    if kinds <= {int, float} and not any(isinstance(v, bool) for v in present):
        return pa.array([float(v) if isinstance(v, (int, float)) else None for v in values], type=pa.float64())
    if kinds <= {bool}:
        return pa.array([v if isinstance(v, bool) else None for v in values], type=pa.bool_())
    if kinds <= {dt.datetime, dt.date}:
        return pa.array([None if v is None or isinstance(v, str) else
                         (v if isinstance(v, dt.datetime) else dt.datetime(v.year, v.month, v.day))
                         for v in values], type=pa.timestamp("us"))

    def text(v):
        if v is None:
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        if isinstance(v, dt.datetime):
            return v.isoformat(sep=" ")
        return str(v)
    return pa.array([text(v) for v in values], type=pa.string())


class _ParquetSource(_Source):
    row_word = "record"

    def __init__(self, path: Path, fmt, table: str, col: _Collector):
        super().__init__(path, 0)    # no header: record 1 is the first row
        self.table, self.col = table, col
        self._file = None

    def head_rows(self, n: int) -> list[list[str]]:
        return []

    def open(self) -> list[str]:
        import pyarrow.parquet as pq
        try:
            self._file = pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a damaged file
            self.col.add("unreadable_file", "", f"the file cannot be read as Parquet ({exc})",
                         "write it again as Parquet, or export CSV instead")
            raise _ReadFailure from None
        self.columns = list(self._file.schema_arrow.names)
        return self.columns

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        for batch in self._file.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            yield batch


def _open_source(table: str, inp, col: _Collector) -> _Source:
    kind = inp.kind
    cls = {"csv": _CsvSource, "xlsx": _XlsxSource, "parquet": _ParquetSource}[kind]
    src = cls(inp.path, inp.format, table, col)
    col.row_word = src.row_word
    return src


# =========================================================================== column resolution

def _norm(name: str) -> str:
    return re.sub(r"[\s\-\.]+", "_", str(name).strip().lower())


def _resolve_columns(spec: schemas.TableSpec, inp, src: _Source, col: _Collector, *,
                     dynamic=None) -> dict[str, str]:
    """canonical -> client column; records missing columns, mapping errors, header problems.

    ``dynamic(client_name) -> canonical or None`` accepts pattern columns (survey items, outcomes).
    """
    header = src.columns
    present = set(header)
    mapping: dict[str, str] = {}
    for client, canonical in inp.columns.items():
        if client in present:
            mapping[canonical] = client
        else:
            close = difflib.get_close_matches(client, header, n=1)
            col.add("missing_column", client,
                    f"inputs.{spec.name}.columns maps {client!r} to {canonical!r}, but the file has no column "
                    f"{client!r}", (f"did you mean {close[0]!r}? " if close else "")
                    + f"correct the mapping to one of the file's columns: {', '.join(map(repr, header[:30]))}",
                    canonical=canonical)
            mapping[canonical] = None
    mapped_clients = {c for c in mapping.values() if c}
    by_norm = {}
    for name in header:
        if name and name not in mapped_clients:
            by_norm.setdefault(_norm(name), name)
    for f in spec.fields:
        if f.name in mapping:
            continue
        if f.name in present and f.name not in mapped_clients:
            mapping[f.name] = f.name
        elif _norm(f.name) in by_norm:
            mapping[f.name] = by_norm[_norm(f.name)]
    if dynamic is not None:
        for name in header:
            if name and name not in set(mapping.values()):
                canonical = inp.columns.get(name) or dynamic(name)
                if canonical and canonical not in mapping:
                    mapping[canonical] = name
    missing = [f for f in spec.fields if f.required and not mapping.get(f.name) and f.name not in mapping]
    if missing and header is not None:
        found = [f for f in spec.fields if mapping.get(f.name)]
        if not found and _header_search(spec, inp, src, col):
            # the header is elsewhere: listing every column as missing would only add noise
            missing = []
        for f in missing:
            close = difflib.get_close_matches(f.name, [h for h in header if h], n=1, cutoff=0.5)
            hint = (f"rename {close[0]!r} or map it: inputs.{spec.name}.columns: {{{close[0]!r}: {f.name}}}"
                    if close else f"add the column, or map your name for it: inputs.{spec.name}.columns: "
                    f"{{'<your column>': {f.name}}}")
            col.add("missing_column", f.name, f"required column {f.name!r} ({f.meaning.rstrip('.')}) is not "
                    f"in the file", hint, canonical=f.name, count=0)
    col.names.update({k: v for k, v in mapping.items() if v})
    return {k: v for k, v in mapping.items() if v}


def _header_search(spec: schemas.TableSpec, inp, src: _Source, col: _Collector) -> bool:
    """None of the expected columns is in the header: look for the real header row nearby.

    Returns True when it recorded a ``header_not_found`` problem.
    """
    wanted = {_norm(f.name) for f in spec.fields} | {_norm(c) for c in inp.columns}
    rows = src.head_rows(HEADER_SEARCH_ROWS)
    for number, row in enumerate(rows, start=1):
        hits = sum(_norm(v) in wanted for v in row if v)
        if number != src.header_row and hits >= max(1, min(2, len(spec.required))):
            col.add("header_not_found", "", f"row {src.header_row} does not hold the column names; they seem "
                    f"to be on row {number}", f"set inputs.{spec.name}.format.header_row: {number}",
                    rows=[src.header_row])
            return True
    header_cells = [c for c in src.columns if c]
    if isinstance(src, _CsvSource) and len(header_cells) == 1:
        # one wide header cell: the file is split on another character
        for other in (";", "\t", "|", ","):
            if other != src.fmt.delimiter and header_cells[0].count(other) >= 2:
                shown = "\\t" if other == "\t" else other
                col.add("header_not_found", "", f"row {src.header_row} is a single column "
                        f"{header_cells[0][:60]!r}: the file is separated by {shown!r}, not "
                        f"{src.fmt.delimiter!r}", f'set inputs.{spec.name}.format.delimiter: "{shown}"',
                        rows=[src.header_row])
                return True
    if src.row_word == "row":
        col.add("header_not_found", "", f"row {src.header_row} holds none of the expected column names "
                f"({', '.join(spec.required)})", f"check inputs.{spec.name}.format.header_row and "
                f"inputs.{spec.name}.format.delimiter, or map the client's names in inputs.{spec.name}.columns",
                rows=[src.header_row])
        return True
    return False


# =========================================================================== value parsers (Arrow)

_NUMBER_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_HMS_RE = r"^(?:(?P<h>\d+):)?(?P<m>\d+):(?P<s>[0-5]?\d(?:\.\d+)?)$"


def _first_untrimmed_byte() -> int:
    """The byte above every ASCII character ``utf8_trim_whitespace`` removes (0x21, after space).

    Asked of Arrow itself, so the fast path in :func:`_text` cannot disagree with the trim it skips.
    """
    chars = [chr(b) for b in range(128)]
    trimmed = pc.utf8_trim_whitespace(pa.array(chars, pa.string())).to_pylist()
    return max(b for b, (t, c) in enumerate(zip(trimmed, chars)) if t != c) + 1


_FIRST_UNTRIMMED_BYTE = _first_untrimmed_byte()


def _text(arr: pa.Array) -> pa.Array:
    """Trimmed strings, blank -> null (whatever the raw type)."""
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.string())
    if pa.types.is_floating(arr.type):
        # 12.0 read from a number column is the id "12"
        as_int = pc.equal(pc.floor(arr), arr)
        arr = pc.if_else(as_int, pc.cast(pc.cast(arr, pa.int64(), safe=False), pa.string()), pc.cast(arr, pa.string()))
    elif not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    if pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    # Trimming copies every string; most columns of an export need none: when every value
    # starts and ends with a byte that is neither whitespace nor part of a multi-byte character
    # (Unicode spaces are multi-byte), trimming would change nothing. Checked on all bytes at
    # once first (fast: ids, codes), then on each value's first and last byte, so that spaces
    # inside values ("Meter reading", "2026-07-01 09:15:00") cost no copy.
    offsets, data = _string_buffers(arr)
    if offsets is None or offsets[-1] == offsets[0]:
        return pa.nulls(len(arr), pa.string())      # every value is empty or null
    filled = offsets[1:] != offsets[:-1]
    if _may_need_trim(data[offsets[0]:offsets[-1]]) and _may_need_trim(_edge_bytes(offsets, data, filled)):
        arr = pc.utf8_trim_whitespace(arr)
        offsets, _ = _string_buffers(arr)
        if offsets is None:
            return pa.nulls(len(arr), pa.string())  # nothing but whitespace
        filled = offsets[1:] != offsets[:-1]
    if filled.all():
        return arr
    if arr.offset == 0 and arr.null_count == 0:
        # blank -> null by a validity bitmap over the same strings, instead of copying them
        validity = pa.py_buffer(np.packbits(filled, bitorder="little"))
        return pa.Array.from_buffers(pa.string(), len(arr), [validity, *arr.buffers()[1:]])
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def _may_need_trim(chars: np.ndarray) -> bool:
    """True when some byte of ``chars`` may be (part of) whitespace: ASCII space or control, or non-ASCII."""
    return bool(len(chars)) and (chars.min() < _FIRST_UNTRIMMED_BYTE or chars.max() >= 0x80)


def _edge_bytes(offsets: np.ndarray, data: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """The first and the last byte of every non-empty value."""
    starts, ends = (offsets[:-1], offsets[1:]) if filled.all() else (offsets[:-1][filled], offsets[1:][filled])
    return np.concatenate([data[starts], data[ends - 1]])


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(value offsets, character bytes) of a ``string`` array as NumPy views, or (None, None) if empty."""
    _, offsets, data = arr.buffers()
    if not len(arr) or data is None:
        return None, None
    return np.frombuffer(offsets, np.int32)[arr.offset:arr.offset + len(arr) + 1], np.frombuffer(data, np.uint8)


def _numbers(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(float values, mask of non-blank values that are not numbers) from trimmed text."""
    try:
        # fast path: a clean column casts in one pass; Arrow also accepts nan/inf, which are not
        # numbers a client meant, so those fall through to the exact check below
        values = pc.cast(text, pa.float64())
        if pc.all(pc.is_finite(values), min_count=0).as_py():       # blanks (null) are skipped
            return values, pa.array(np.zeros(len(text), bool))
    except pa.ArrowInvalid:
        pass
    ok = pc.match_substring_regex(text, _NUMBER_RE)
    values = pc.cast(pc.if_else(ok, text, pa.scalar(None, pa.string())), pa.float64())
    bad = pc.and_(pc.is_valid(text), pc.invert(pc.fill_null(ok, False)))
    return values, bad


# The parsers below take ``text``, the column's :func:`_text` when the caller already has it
# (contacts compute it once per column for the blank-row check too); None computes it here.

def _parse_number(arr: pa.Array, text: pa.Array | None = None) -> tuple[pa.Array, pa.Array]:
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        return pc.cast(arr, pa.float64()), pa.array(np.zeros(len(arr), bool))
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.float64()), pa.array(np.zeros(len(arr), bool))
    return _numbers(_text(arr) if text is None else text)


def _parse_duration(arr: pa.Array, mode: str, text: pa.Array | None = None) -> tuple[pa.Array, pa.Array]:
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return _parse_number(arr)     # numeric cells are seconds whatever the text format
    text = _text(arr) if text is None else text
    if mode == "seconds":
        return _numbers(text)
    parts = pc.extract_regex(text, _HMS_RE)
    h = pc.struct_field(parts, "h")
    m = pc.struct_field(parts, "m")
    s = pc.struct_field(parts, "s")
    h_num = pc.cast(pc.if_else(pc.equal(h, ""), "0", h), pa.float64())
    m_num = pc.cast(m, pa.float64())
    s_num = pc.cast(s, pa.float64())
    # with hours present, minutes must be < 60 ("1:75:00" is a typo); "75:30" alone means 75 minutes
    valid = pc.and_(pc.is_valid(parts), pc.or_(pc.equal(h, ""), pc.less(m_num, 60)))
    seconds = pc.add(pc.add(pc.multiply(h_num, 3600.0), pc.multiply(m_num, 60.0)), s_num)
    values = pc.if_else(valid, seconds, pa.scalar(None, pa.float64()))
    bad = pc.and_(pc.is_valid(text), pc.invert(pc.fill_null(valid, False)))
    return values, bad


def _parse_boolean(arr: pa.Array, fmt, text: pa.Array | None = None) -> tuple[pa.Array, pa.Array]:
    if pa.types.is_boolean(arr.type):
        return arr, pa.array(np.zeros(len(arr), bool))
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.bool_()), pa.array(np.zeros(len(arr), bool))
    text = _text(arr) if text is None else text
    # one lookup in all spellings, yes first: a position below len(true) is yes (a spelling listed
    # as both yes and no reads as yes); no position (null) is blank or unknown
    true = list(dict.fromkeys(fmt.true_values))
    spellings = true + [v for v in dict.fromkeys(fmt.false_values) if v not in true]
    idx = pc.index_in(text, value_set=pa.array(spellings, pa.string()))
    values = pc.less(idx, len(true))
    bad = pc.and_(pc.is_valid(text), pc.is_null(idx))
    return values, bad


def _parse_timestamp(arr: pa.Array, fmt_text: str, con, text: pa.Array | None = None) -> tuple[pa.Array, pa.Array]:
    if pa.types.is_timestamp(arr.type):
        if arr.type.tz is not None:   # keep the local wall-clock time of the export's zone
            arr = pc.local_timestamp(arr)
        return pc.cast(arr, pa.timestamp("us")), pa.array(np.zeros(len(arr), bool))
    if pa.types.is_date(arr.type):
        return pc.cast(pc.cast(arr, pa.date32()), pa.timestamp("us")), pa.array(np.zeros(len(arr), bool))
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.timestamp("us")), pa.array(np.zeros(len(arr), bool))
    text = _text(arr) if text is None else text
    con.register("raw_text", pa.table({"x": text}))
    try:
        if fmt_text == "iso":
            # DuckDB's cast rejects impossible dates (Arrow's strptime would roll 30 Feb into March)
            out = con.sql("SELECT TRY_CAST(x AS TIMESTAMP) AS t FROM raw_text").to_arrow_table()
        else:
            out = con.sql("SELECT TRY_STRPTIME(x, $fmt) AS t FROM raw_text",
                          params={"fmt": fmt_text}).to_arrow_table()
    finally:
        con.unregister("raw_text")
    values = pc.cast(out.column("t").combine_chunks(), pa.timestamp("us"))
    bad = pc.and_(pc.is_valid(text), pc.is_null(values))
    return values, bad


def _parse_date(arr: pa.Array, fmt_text: str, con) -> tuple[pa.Array, pa.Array]:
    values, bad = _parse_timestamp(arr, "iso", con)
    if fmt_text != "iso" and pc.any(bad).as_py():
        alt, alt_bad = _parse_timestamp(arr, fmt_text, con)
        values = pc.if_else(bad, alt, values)
        bad = pc.and_(bad, alt_bad)
    if fmt_text != "iso" and pc.any(bad).as_py():
        # a date-only column written with the date part of the timestamp format
        date_part = fmt_text.split(" ")[0]
        alt, alt_bad = _parse_timestamp(arr, date_part, con)
        values = pc.if_else(bad, alt, values)
        bad = pc.and_(bad, alt_bad)
    return values, bad


def _fix_format(table: str, key: str, example: str) -> str:
    return f"correct these values, or set inputs.{table}.format.{key} to match the file ({example})"


def _parse_field(f: schemas.Field, raw: pa.Array, fmt, con, table: str, col: _Collector, rows_of,
                 text: pa.Array | None = None):
    """Parse one raw column into its canonical type, recording unparseable values.

    ``text`` is ``_text(raw)`` when the caller has it already (None: computed as needed).
    """
    if f.kind in ("text", "choice"):
        return _text(raw) if text is None else text
    if f.kind == "number":
        values, bad = _parse_number(raw, text)
        col.accumulate(f.name, "wrong_type", bad, raw, rows_of,
                       "{n:,} value(s) are not numbers, e.g. {examples}",
                       "write plain numbers with a dot for decimals (no units or thousands separators)")
        return values
    if f.kind == "duration":
        values, bad = _parse_duration(raw, fmt.duration, text)
        expected = "seconds (e.g. 312 or 312.5)" if fmt.duration == "seconds" else "h:mm:ss or mm:ss (e.g. 0:05:12)"
        other = "hms" if fmt.duration == "seconds" else "seconds"
        col.accumulate(f.name, "unparseable_duration", bad, raw, rows_of,
                       f"{{n:,}} duration(s) cannot be read as {expected}, e.g. {{examples}}",
                       f"correct these values; if the whole column is written differently set "
                       f"inputs.{table}.format.duration: {other}")
        return values
    if f.kind == "boolean":
        values, bad = _parse_boolean(raw, fmt, text)
        col.accumulate(f.name, "unparseable_boolean", bad, raw, rows_of,
                       "{n:,} value(s) are not a known yes/no spelling, e.g. {examples}",
                       f"correct them, or add the spelling to inputs.{table}.format.true_values or "
                       f"false_values (now yes = {list(fmt.true_values)}, no = {list(fmt.false_values)})")
        return values
    if f.kind == "timestamp":
        values, bad = _parse_timestamp(raw, fmt.timestamp, con, text)
        shown = "ISO 8601 (2026-07-01 09:15:00)" if fmt.timestamp == "iso" else f"{fmt.timestamp!r}"
        col.accumulate(f.name, "unparseable_timestamp", bad, raw, rows_of,
                       f"{{n:,}} date-time(s) do not match the format {shown} or are impossible dates, "
                       "e.g. {examples}",
                       _fix_format(table, "timestamp", 'a strftime pattern such as "%d/%m/%Y %H:%M", or "iso"'))
        return values
    if f.kind == "date":
        values, bad = _parse_date(raw, fmt.timestamp, con)
        col.accumulate(f.name, "unparseable_timestamp", bad, raw, rows_of,
                       "{n:,} date(s) cannot be read (expected YYYY-MM-DD or the timestamp format), "
                       "e.g. {examples}", "write dates as YYYY-MM-DD, e.g. 2026-07-01")
        return values
    raise ValueError(f"no parser for kind {f.kind}")  # programming error: schemas declares kinds


# =========================================================================== contacts (large)

def _contacts(params, report: ValidationReport, con) -> pa.Table | None:
    inp = params.inputs.contacts
    spec = schemas.CONTACTS
    col = _Collector("contacts", inp.path, report)
    report.files["contacts"] = str(inp.path)
    try:
        src = _open_source("contacts", inp, col)
        src.open()
        mapping = _resolve_columns(spec, inp, src, col)
        _unused_columns(spec, src, mapping, col)
        if any(p.table == "contacts" and p.reason == "header_not_found" for p in report.errors):
            return None
        # with a required column missing the table is unusable, but the other columns are still
        # checked so that one run of validate lists every problem
        unusable = any(p.table == "contacts" and p.reason == "missing_column" for p in report.errors)
        client_cols = [mapping[f.name] for f in spec.fields if f.name in mapping]
        if not client_cols:       # nothing recognisable to check (the missing columns are reported)
            col.flush()
            return None
        parsed_batches = []
        offset = 0
        blank_total, blank_rows = 0, []
        for batch in src.batches(client_cols):
            rows_of = src.rows_of(offset)
            raw = {f.name: batch.column(mapping[f.name]) for f in spec.fields if f.name in mapping}
            # trimmed once per column: the blank-row check and the parsers both need it
            texts = {name: _text(arr) for name, arr in raw.items()
                     if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)}
            # rows with no value at all (blank lines, Excel padding) are dropped with a warning
            blank = None
            for name, arr in raw.items():
                empty = pc.is_null(texts.get(name, arr))
                blank = empty if blank is None else pc.and_(blank, empty)
            n_blank = pc.sum(pc.cast(blank, pa.int64())).as_py() or 0
            out = {}
            for f in spec.fields:
                if f.name in raw:
                    out[f.name] = _parse_field(f, raw[f.name], inp.format, con, "contacts", col, rows_of,
                                               texts.get(f.name))
            if Contact.CHANNEL in out:
                out[Contact.CHANNEL] = _map_values(out[Contact.CHANNEL], schemas.CHANNEL_SYNONYMS)
            table = pa.table(out)
            if n_blank:
                blank_total += n_blank
                if len(blank_rows) < MAX_ROWS_SHOWN:
                    blank_rows += rows_of(pc.indices_nonzero(blank).slice(0, MAX_ROWS_SHOWN).to_numpy())
                keep = pc.invert(blank)
                table = table.filter(keep)
                # row numbers of later checks are positions in the kept table: remember where they come from
                positions = pc.indices_nonzero(keep).to_numpy()
                rows_of = _composed(rows_of, positions)
            _contact_values(spec, table, col, rows_of, params)
            parsed_batches.append((table, rows_of))
            offset += batch.num_rows
        col.flush()
    except _ReadFailure:
        col.flush()
        return None
    except OSError as exc:
        col.flush()
        col.add("unreadable_file", "", f"the file cannot be read ({exc.strerror or exc})",
                "check that the file exists and is readable, then run validate again")
        return None
    if not parsed_batches:
        col.add("empty_file", "", _no_rows(col),
                "export the contacts of the audit period again", count=0)
        return None
    tables = [t for t, _ in parsed_batches]
    contacts = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    report.rows["contacts"] = contacts.num_rows
    if blank_total:
        col.add("blank_row", "", f"{blank_total:,} row(s) hold no values; they are ignored",
                "delete the empty rows from the export", count=blank_total, rows=blank_rows, warning=True)
    if contacts.num_rows == 0:
        col.add("empty_file", "", _no_rows(col),
                "export the contacts of the audit period again", count=0)
        return None
    _contacts_table_checks(spec, contacts, parsed_batches, col, params, con)
    return None if unusable else contacts


def _no_rows(col: _Collector) -> str:
    return "the file has no rows" if col.row_word == "record" else "the file holds a header but no data rows"


def _composed(rows_of, positions):
    def mapper(idx):
        return rows_of(positions[np.asarray(idx, dtype=np.int64)])
    return mapper


def _contact_values(spec, table: pa.Table, col: _Collector, rows_of, params) -> None:
    """Per-batch value checks (the vectorised equivalent of the pandera checks of the small tables)."""
    if Contact.CHANNEL in table.column_names:
        ch = table.column(Contact.CHANNEL)
        bad = pc.and_(pc.is_valid(ch), pc.invert(pc.is_in(ch, value_set=pa.array(schemas.CHANNELS))))
        col.accumulate(Contact.CHANNEL, "invalid_value", bad, ch, rows_of,
                       "{n:,} value(s) are not a channel this audit knows, e.g. {examples}",
                       f"map them to {', '.join(schemas.CHANNELS)} in the export (phone/call = voice, "
                       "webchat = chat, e-mail = email)")
    for f in spec.fields:
        if f.name not in table.column_names:
            continue
        arr = table.column(f.name)
        if not f.nullable:
            col.accumulate(f.name, "missing_value", pc.is_null(arr), None, rows_of,
                           "{n:,} row(s) have no value in this required column",
                           "fill in the missing values, or remove those rows from the export")
        if f.min is not None and f.kind in ("duration", "number"):
            low = pc.less(arr, f.min)
            high = pc.greater(arr, f.max) if f.max is not None else None
            bad = pc.or_(low, high) if high is not None else low
            what = ("negative duration(s)" if f.kind == "duration"
                    else f"value(s) outside {f.allowed_label}")
            col.accumulate(f.name, "out_of_range", bad, arr, rows_of, "{n:,} " + what + ", e.g. {examples}",
                           "correct the values in the export" + (" (durations cannot be negative)"
                                                                 if f.kind == "duration" else
                                                                 f" ({f.name} is on a {f.allowed_label} scale)"))
    if Contact.STARTED_AT in table.column_names:
        ts = table.column(Contact.STARTED_AT)
        start = pa.scalar(dt.datetime.combine(params.period_start, dt.time()), pa.timestamp("us"))
        end = pa.scalar(dt.datetime.combine(params.period_end + dt.timedelta(days=1), dt.time()),
                        pa.timestamp("us"))
        outside = pc.or_(pc.less(ts, start), pc.greater_equal(ts, end))
        col.accumulate(Contact.STARTED_AT, "outside_period", outside, ts, rows_of,
                       f"{{n:,}} contact(s) start outside the audit period {params.period_start} .. "
                       f"{params.period_end}, e.g. {{examples}}",
                       "export only the audit period, or correct period / period_start / period_end in the "
                       "params file")


def _contacts_table_checks(spec, contacts: pa.Table, parsed, col: _Collector, params, con) -> None:
    """Checks that need the whole table: duplicate ids, empty and sparse columns."""
    dup = None
    if Contact.CONTACT_ID in contacts.column_names:
        ids = contacts.column(Contact.CONTACT_ID)
        dup = _duplicate_ids(ids, con)
    if dup is not None and dup.num_rows:
        n_rows = int(pc.sum(dup.column("n")).as_py())
        mask = pc.is_in(ids, value_set=dup.column("id").combine_chunks())
        rows = _rows_across(parsed, mask)
        examples = ", ".join(repr(v) for v in dup.column("id").slice(0, MAX_EXAMPLES).to_pylist())
        col.add("duplicate_id", col.names.get(Contact.CONTACT_ID), f"{dup.num_rows:,} contact id(s) appear on "
                f"more than one row ({n_rows:,} rows in all), e.g. {examples}",
                "each contact must appear once: remove duplicated rows, or map a unique id column to contact_id",
                count=n_rows, rows=rows, canonical=Contact.CONTACT_ID)
    total = contacts.num_rows
    for f in spec.fields:
        if f.name not in contacts.column_names:
            continue
        missing = contacts.column(f.name).null_count
        name = col.names.get(f.name)
        if missing == total and f.nullable:
            col.add("empty_column", name, "the column is entirely blank, so the checks that need it cannot run",
                    "fill it in, or leave the column out of the export", count=total, warning=True,
                    canonical=f.name)
        elif f.name in Contact.SCORES and missing / total > CSAT_MISSING_WARN:
            col.add("mostly_missing", name, f"{f.name} is present on {1 - missing / total:.1%} of contacts "
                    f"({total - missing:,} of {total:,}); findings about {f.name} rest on the surveyed "
                    "contacts only", "nothing to fix if this is the survey response rate", count=missing,
                    warning=True, canonical=f.name)
        elif f.required and f.nullable and missing / total > REQUIRED_MISSING_WARN:
            col.add("mostly_missing", name, f"{missing:,} of {total:,} contacts ({missing / total:.1%}) have no "
                    "value", "check the export; rows without it are left out of the KPIs that need it",
                    count=missing, warning=True, canonical=f.name)


def _duplicate_ids(ids, con) -> pa.Table:
    """Ids appearing more than once, with their counts (columns ``id``, ``n``), sorted by id.

    Grouping tens of millions of strings needs a large hash table; instead the ids are hashed
    to 64 bits (8 bytes each), sorted in place, and only ids whose hash repeats are compared
    exactly. Equal ids always share a hash, so nothing is missed; a hash collision between
    different ids is filtered out by the exact comparison.
    """
    con.register("contact_ids", pa.table({"id": ids}))
    try:
        hashes = con.sql("SELECT hash(id) AS h FROM contact_ids WHERE id IS NOT NULL").fetchnumpy()["h"]
        hashes = np.asarray(hashes, dtype=np.uint64)
        hashes.sort()
        repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
        del hashes
        if not len(repeated):
            return pa.table({"id": pa.array([], pa.string()), "n": pa.array([], pa.int64())})
        con.register("repeated_hashes", pa.table({"h": pa.array(repeated, pa.uint64())}))
        try:
            return con.sql("SELECT id, count(*) AS n FROM contact_ids WHERE hash(id) IN "
                           "(SELECT h FROM repeated_hashes) AND id IS NOT NULL GROUP BY id "
                           "HAVING count(*) > 1 ORDER BY id").to_arrow_table()
        finally:
            con.unregister("repeated_hashes")
    finally:
        con.unregister("contact_ids")


def _rows_across(parsed, mask) -> list[int]:
    rows, start = [], 0
    mask = mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask
    for table, rows_of in parsed:
        part = mask.slice(start, table.num_rows)
        start += table.num_rows
        idx = pc.indices_nonzero(pc.fill_null(part, False)).slice(0, MAX_ROWS_SHOWN - len(rows)).to_numpy()
        rows += rows_of(idx)
        if len(rows) >= MAX_ROWS_SHOWN:
            break
    return rows


def _unused_columns(spec, src: _Source, mapping: dict, col: _Collector) -> None:
    used = set(mapping.values())
    unused = [c for c in src.columns if c and c not in used]
    if unused:
        col.add("unused_column", "", f"{len(unused)} column(s) are not used by the audit: "
                f"{', '.join(map(repr, unused[:12]))}{' ...' if len(unused) > 12 else ''}",
                f"nothing to fix if they are not needed; otherwise map them in inputs.{spec.name}.columns "
                f"to one of: {', '.join(n for n in spec.names if n not in mapping)}", count=len(unused),
                warning=True)


# =========================================================================== small tables (pandas + pandera)

def _read_small(table: str, inp, report: ValidationReport, con, *, dynamic=None):
    """Read a small table: (raw Arrow table, canonical -> client mapping, collector, source), or None."""
    spec = schemas.TABLES[table]
    col = _Collector(table, inp.path, report)
    report.files[table] = str(inp.path)
    src = _open_source(table, inp, col)
    try:
        src.open()
        mapping = _resolve_columns(spec, inp, src, col, dynamic=dynamic)
        _unused_columns(spec, src, mapping, col)
        if any(p.table == table and p.reason == "header_not_found" for p in report.errors):
            col.flush()
            return None
        batches = list(src.batches(list(dict.fromkeys(mapping.values()))))
    except _ReadFailure:
        col.flush()
        return None
    except OSError as exc:
        col.add("unreadable_file", "", f"the file cannot be read ({exc.strerror or exc})",
                "check that the file exists and is readable, then run validate again")
        return None
    raw = pa.Table.from_batches(batches) if batches else None
    if raw is None or raw.num_rows == 0:
        col.add("empty_file", "", _no_rows(col),
                f"fill in the {table} rows below the header", count=0)
        return None
    return raw, mapping, col, src


def _pandera_problems(schema, df: pd.DataFrame, col: _Collector) -> None:
    """Run a pandera schema lazily and turn every failure into a Problem (index = file rows)."""
    import pandera.errors as pe
    try:
        schema.validate(df, lazy=True)
    except pe.SchemaErrors as exc:
        fc = exc.failure_cases
        for (column, check), group in fc.groupby(["column", "check"], sort=True, dropna=False):
            check = str(check)
            reason, message, fix = _pandera_reason(check, schemas.TABLES[col.table].by_name.get(column), group)
            rows = sorted(int(i) for i in group["index"].dropna().unique())
            count = len(group) if reason != "duplicate_id" else len(rows)
            col.add(reason, col.names.get(column, column), message, fix, count=count, rows=rows,
                    canonical=column)


def _pandera_reason(check: str, spec_field, group: pd.DataFrame) -> tuple[str, str, str]:
    """(reason code, message, fix) for one group of pandera failure cases."""
    examples = ", ".join(repr(_plain(v)) for v in group["failure_case"].dropna().unique()[:MAX_EXAMPLES])
    n = len(group)
    if "not_nullable" in check or check == "nullable":
        return "missing_value", f"{n:,} row(s) have no value in this required column", \
            "fill in the missing values"
    if "unique" in check:
        return "duplicate_id", f"the same value appears on several rows, e.g. {examples}", \
            "each value must appear once: remove the duplicate rows or correct the ids"
    if check.startswith("invalid_value") or check.startswith("isin"):
        allowed = spec_field.allowed_label if spec_field else ""
        return "invalid_value", f"{n:,} value(s) are not allowed, e.g. {examples}", \
            f"use one of: {allowed}"
    if check.startswith("out_of_range") or check.startswith("in_range"):
        allowed = spec_field.allowed_label if spec_field else ""
        return "out_of_range", f"{n:,} value(s) are out of range ({allowed}), e.g. {examples}", \
            "correct the values"
    return "invalid_value", f"{n:,} value(s) fail the check {check}, e.g. {examples}", "correct the values"


def _to_pandas(columns: dict[str, pa.Array], index) -> pd.DataFrame:
    df = pd.DataFrame({name: _arrow_to_series(arr) for name, arr in columns.items()})
    df.index = pd.Index(index, name="row")
    return df


def _arrow_to_series(arr: pa.Array) -> pd.Series:
    if pa.types.is_string(arr.type):
        return pd.Series(arr.to_pylist(), dtype="str")
    if pa.types.is_boolean(arr.type):
        return pd.Series(arr.to_pylist(), dtype="boolean")
    if pa.types.is_timestamp(arr.type):
        return pd.Series(arr.to_pandas(), dtype="datetime64[us]")
    return pd.Series(arr.to_numpy(zero_copy_only=False), dtype="float64")


def _register(params, report: ValidationReport, con) -> pd.DataFrame | None:
    inp = params.inputs.register
    spec = schemas.REGISTER
    read = _read_small("register", inp, report, con)
    if read is None:
        return None
    raw, mapping, col, src = read
    rows_of = src.rows_of(0)
    parsed = {}
    for f in spec.fields:
        if f.name not in mapping:
            continue
        arr = raw.column(mapping[f.name]).combine_chunks()
        if f.name == Register.TARGET:
            arr = _percent_target(arr)
        parsed[f.name] = _parse_field(f, arr, inp.format, con, "register", col, rows_of)
        if f.kind == "choice":
            parsed[f.name] = pc.utf8_lower(parsed[f.name])
    col.flush()
    df = _to_pandas(parsed, rows_of(np.arange(raw.num_rows)))
    df = _drop_blank_rows(df, col)
    _pandera_problems(schemas.pandera_schema(spec, df.columns), df, col)
    report.rows["register"] = len(df)
    return df.reset_index(drop=True)


def _percent_target(arr: pa.Array) -> pa.Array:
    if not pa.types.is_string(arr.type):
        return arr
    text = _text(arr)
    is_pct = pc.fill_null(pc.match_substring_regex(text, r"^[+-]?(\d+\.?\d*|\.\d+)\s*%$"), False)
    number = pc.cast(pc.if_else(is_pct, pc.replace_substring_regex(text, r"\s*%$", ""),
                                pa.scalar(None, pa.string())), pa.float64())
    as_share = pc.cast(pc.divide(number, 100.0), pa.string())
    return pc.if_else(is_pct, as_share, text)


def _drop_blank_rows(df: pd.DataFrame, col: _Collector) -> pd.DataFrame:
    blank = df.isna().all(axis=1)
    if blank.any():
        rows = list(df.index[blank])
        col.add("blank_row", "", f"{int(blank.sum())} row(s) hold no values; they are ignored",
                "delete the empty rows", count=int(blank.sum()), rows=rows, warning=True)
    return df.loc[~blank]


def _survey_dynamic(name: str) -> str | None:
    return name if schemas.survey_column_parts(name) else None


def _survey(params, report: ValidationReport, con, register: pd.DataFrame | None,
            contacts: pa.Table | None) -> pd.DataFrame | None:
    inp = params.inputs.survey
    if inp is None:
        return None
    spec = schemas.SURVEY
    read = _read_small("survey", inp, report, con, dynamic=_survey_dynamic)
    if read is None:
        return None
    raw, mapping, col, src = read
    rows_of = src.rows_of(0)
    index = rows_of(np.arange(raw.num_rows))
    parsed: dict = {}
    for f in spec.fields:
        if f.name in mapping:
            parsed[f.name] = _parse_field(f, raw.column(mapping[f.name]).combine_chunks(), inp.format, con,
                                          "survey", col, rows_of)
    if Survey.ROLE in parsed:
        parsed[Survey.ROLE] = _map_values(parsed[Survey.ROLE], schemas.ROLE_SYNONYMS)
    items = []
    known_metrics = (set(register[Register.METRIC_ID].dropna())
                     if register is not None and Register.METRIC_ID in register.columns else None)
    unknown_metric: dict[str, list[str]] = {}
    labels = {" ".join(k.lower().split()): v for k, v in params.perception.labels.items()}
    for canonical, client in sorted(mapping.items(), key=lambda kv: list(mapping.values()).index(kv[1])):
        parts = schemas.survey_column_parts(canonical)
        if canonical in spec.by_name or parts is None:
            continue
        metric, item = parts
        arr = raw.column(client).combine_chunks()
        if item == Survey.COMMENT:
            parsed[canonical] = _text(arr)
        elif item in ITEM_BANK:
            parsed[canonical] = _likert(arr, labels, canonical, col, rows_of)
            items.append(canonical)
        else:
            close = difflib.get_close_matches(item, list(ITEM_BANK), n=1)
            col.add("unknown_item", client, f"{item!r} is not an item of the survey's item bank",
                    (f"did you mean {metric}{SURVEY_SEP}{close[0]}? " if close else "")
                    + f"items are: {', '.join(ITEM_BANK)}, or {Survey.COMMENT}", canonical=canonical, count=0)
            continue
        if known_metrics is not None and metric not in known_metrics:
            unknown_metric.setdefault(metric, []).append(client)
    for metric, clients in sorted(unknown_metric.items()):
        close = difflib.get_close_matches(metric, sorted(known_metrics), n=1)
        col.add("unknown_metric", ", ".join(clients[:3]) + (" ..." if len(clients) > 3 else ""),
                f"{len(clients)} survey column(s) ask about metric {metric!r}, which is not in the register "
                f"({Path(params.inputs.register.path).name})",
                (f"did you mean {close[0]!r}? " if close else "")
                + "rename the columns to <metric_id>__<item> with a metric_id of the register, or add the "
                "metric to the register", count=len(clients))
    if not items:
        col.add("missing_column", "", "the survey has no answer columns (<metric_id>__<item>, e.g. "
                f"AHT{SURVEY_SEP}fair)", "name the answer columns <metric_id>__<item>, with items "
                f"{', '.join(ITEM_BANK)}", count=0)
    col.flush()
    df = _to_pandas(parsed, index)
    for name in items:
        df[name] = df[name].round().astype("Int64")
    # a respondent with no answer at all is not a respondent: it would inflate group sizes
    if items:
        no_answer = df[items].isna().all(axis=1)
        if no_answer.any():
            rows = list(df.index[no_answer])
            col.add("blank_row", "", f"{int(no_answer.sum())} row(s) hold no answer to any item; they are ignored",
                    "delete those rows, or fill in their answers", count=int(no_answer.sum()), rows=rows,
                    warning=True)
            df = df.loc[~no_answer]
        blanks = df[items].isna()
        n_blank = int(blanks.to_numpy().sum())
        if n_blank:
            per_col = blanks.sum().sort_values(ascending=False)
            worst = ", ".join(f"{mapping.get(c, c)!r} ({int(k)})" for c, k in per_col.head(3).items() if k)
            rows = list(df.index[blanks.any(axis=1)])
            col.add("missing_value", "", f"{n_blank:,} answer(s) are blank in {int((per_col > 0).sum())} item "
                    f"column(s) (most: {worst}); a blank counts as not answered",
                    "nothing to fix if the questions were skipped", count=n_blank, rows=rows, warning=True)
    # The answers are not given to pandera: _likert has already reported every answer that is not a
    # whole number 1..5 and blanked it, so a range check on the Int64 items could never fail, and
    # with ~80 item columns building and running it was most of the survey's validation time.
    _pandera_problems(schemas.pandera_schema(spec, df.columns), df, col)
    if Survey.TEAM in df.columns and contacts is not None and Contact.TEAM in contacts.column_names:
        teams = set(pc.unique(contacts.column(Contact.TEAM)).drop_null().to_pylist())
        bad = df[Survey.TEAM].notna() & ~df[Survey.TEAM].isin(teams)
        if bad.any():
            names = sorted(df.loc[bad, Survey.TEAM].unique())
            col.add("unknown_team", mapping.get(Survey.TEAM), f"{int(bad.sum())} respondent(s) name team(s) "
                    f"that do not exist among the contacts' teams: {', '.join(map(repr, names[:5]))}",
                    f"use the contacts' team names ({', '.join(sorted(teams)[:10])})", count=int(bad.sum()),
                    rows=list(df.index[bad]), canonical=Survey.TEAM)
    report.rows["survey"] = len(df)
    return df.reset_index(drop=True)


def _map_values(arr: pa.Array, synonyms: dict) -> pa.Array:
    """Lower-cased, spaces collapsed, synonyms replaced by their canonical value."""
    # mapped on the distinct values (a channel or role column holds a handful), then spread back
    encoded = pc.dictionary_encode(arr)
    lowered = pc.utf8_lower(encoded.dictionary)
    collapsed = pc.replace_substring_regex(lowered, r"\s+", " ")
    keys = pa.array(list(synonyms), pa.string())
    vals = pa.array(list(synonyms.values()), pa.string())
    idx = pc.index_in(collapsed, value_set=keys)
    mapped = pc.if_else(pc.is_valid(idx), pc.take(vals, pc.fill_null(idx, 0)), collapsed)
    return pc.take(mapped, encoded.indices)


def _likert(arr: pa.Array, labels: dict, canonical: str, col: _Collector, rows_of) -> pa.Array:
    """Answers 1..5 as floats (later Int64); labels mapped case-insensitively; problems recorded."""
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        values = pc.cast(arr, pa.float64())
        text = None
    else:
        text = _text(arr)
        values, _ = _numbers(text)
    if text is not None:
        key = pc.replace_substring_regex(pc.utf8_lower(text), r"\s+", " ")
        idx = pc.index_in(key, value_set=pa.array(list(labels), pa.string()))
        mapped = pc.take(pa.array([float(v) for v in labels.values()], pa.float64()), pc.fill_null(idx, 0))
        values = pc.if_else(pc.is_valid(idx), mapped, values)
        unknown = pc.and_(pc.is_valid(text), pc.is_null(values))
    else:
        unknown = pa.array(np.zeros(len(arr), bool))
    fraction = pc.fill_null(pc.not_equal(pc.floor(values), values), False)
    unknown = pc.or_(pc.fill_null(unknown, False), fraction)
    col.accumulate(canonical, "invalid_answer", unknown, arr, rows_of,
                   "{n:,} answer(s) are neither a whole number 1..5 nor a known label, e.g. {examples}",
                   "correct them, or add the label to perception.labels in the params file (labels are "
                   f"case-insensitive; known: {', '.join(repr(k) for k in labels)})")
    out_of_range = pc.or_(pc.less(values, schemas.LIKERT_MIN), pc.greater(values, schemas.LIKERT_MAX))
    col.accumulate(canonical, "out_of_range", out_of_range, arr, rows_of,
                   f"{{n:,}} answer(s) are outside the {schemas.LIKERT_MIN}..{schemas.LIKERT_MAX} scale, "
                   "e.g. {examples}", f"answers must be {schemas.LIKERT_MIN} (strongly disagree) to "
                   f"{schemas.LIKERT_MAX} (strongly agree); rescale or correct them")
    # invalid answers are kept out of the table (reported above)
    return pc.if_else(pc.or_(unknown, pc.fill_null(out_of_range, False)), pa.scalar(None, pa.float64()), values)


def _outcomes(params, report: ValidationReport, con, contacts: pa.Table | None) -> pd.DataFrame | None:
    inp = params.inputs.outcomes
    if inp is None:
        return None
    spec = schemas.OUTCOMES
    read = _read_small("outcomes", inp, report, con,
                       dynamic=lambda name: _norm(name) if re.fullmatch(r"\w+", _norm(name)) else None)
    if read is None:
        return None
    raw, mapping, col, src = read
    rows_of = src.rows_of(0)
    parsed = {}
    for f in spec.fields:
        if f.name in mapping:
            parsed[f.name] = _parse_field(f, raw.column(mapping[f.name]).combine_chunks(), inp.format, con,
                                          "outcomes", col, rows_of)
    measures = [c for c in mapping if c not in spec.by_name]
    for name in measures:
        arr = raw.column(mapping[name]).combine_chunks()
        values, bad = _parse_number(arr)
        col.accumulate(name, "wrong_type", bad, arr, rows_of, "{n:,} value(s) of this outcome are not numbers, "
                       "e.g. {examples}", "outcome columns must be numbers (a rate as 0.05, a count as 12); "
                       "remove text columns or correct the values")
        parsed[name] = values
    if not measures:
        col.add("missing_column", "", "the outcomes file has no outcome column besides period and team",
                "add at least one numeric outcome column (e.g. churn_rate, complaints)", count=0)
    col.flush()
    df = _to_pandas(parsed, rows_of(np.arange(raw.num_rows)))
    df = _drop_blank_rows(df, col)
    if Outcome.TEAM in df.columns:
        dups = df.duplicated([Outcome.PERIOD, Outcome.TEAM], keep=False)
    else:
        dups = df.duplicated([Outcome.PERIOD], keep=False) if Outcome.PERIOD in df.columns else None
    if dups is not None and dups.any():
        col.add("duplicate_id", mapping.get(Outcome.PERIOD), f"{int(dups.sum())} rows repeat the same period "
                "(and team)", "keep one row per period and team", count=int(dups.sum()),
                rows=list(df.index[dups]), canonical=Outcome.PERIOD)
    _pandera_problems(schemas.pandera_schema(spec, df.columns), df, col)
    for name in measures:
        if df[name].isna().all():
            col.add("empty_column", mapping[name], "the outcome column is entirely blank", "fill it in or remove it",
                    count=len(df), warning=True, canonical=name)
    if Outcome.TEAM in df.columns and contacts is not None and Contact.TEAM in contacts.column_names:
        teams = set(pc.unique(contacts.column(Contact.TEAM)).drop_null().to_pylist())
        bad = df[Outcome.TEAM].notna() & ~df[Outcome.TEAM].isin(teams)
        if bad.any():
            col.add("unknown_team", mapping.get(Outcome.TEAM), "outcome rows name team(s) that do not exist "
                    f"among the contacts' teams: {', '.join(map(repr, sorted(df.loc[bad, Outcome.TEAM].unique())[:5]))}",
                    "use the contacts' team names; these rows cannot be linked", count=int(bad.sum()),
                    rows=list(df.index[bad]), warning=True, canonical=Outcome.TEAM)
    if Outcome.PERIOD in df.columns and df[Outcome.PERIOD].notna().any():
        start = pd.Timestamp(params.period_start)
        end = pd.Timestamp(params.period_end)
        inside = df[Outcome.PERIOD].between(start - pd.Timedelta(days=31), end)
        if not inside.any():
            col.add("outside_period", mapping.get(Outcome.PERIOD), "no outcome row falls in the audit period "
                    f"{params.period_start} .. {params.period_end}", "export the outcomes of the audit period",
                    count=len(df), rows=list(df.index[:MAX_ROWS_SHOWN]), canonical=Outcome.PERIOD)
    report.rows["outcomes"] = len(df)
    return df.reset_index(drop=True)


# =========================================================================== public API

def _check_files(params, report: ValidationReport) -> set:
    """Tables whose file is missing (params validation normally catches this first)."""
    missing = set()
    for name, inp in params.inputs.tables().items():
        if not Path(inp.path).is_file():
            report.files[name] = str(inp.path)
            report.errors.append(Problem(str(inp.path), "", "missing_file", 0, [], "the file does not exist",
                                         f"correct inputs.{name}.path in the params file", name))
            missing.add(name)
    return missing


def validate(params) -> ValidationReport:
    """Load and check every input of an audit; collect every problem.

    Parameters
    ----------
    params : audit_lib.params.Params

    Returns
    -------
    ValidationReport
        ``.ok`` is true when there is no error; ``.tables`` holds the loaded canonical tables
        (register, contacts, survey, outcomes).
    """
    import duckdb
    report = ValidationReport(source=str(params.source or ""))
    missing = _check_files(params, report)
    con = duckdb.connect()
    try:
        register = None if "register" in missing else _register(params, report, con)
        contacts = None if "contacts" in missing else _contacts(params, report, con)
        survey = None if "survey" in missing else _survey(params, report, con, register, contacts)
        outcomes = None if "outcomes" in missing else _outcomes(params, report, con, contacts)
    finally:
        con.close()
        # return the reader's blocks and the parsers' temporaries to the OS (~0.4 GB at 10M
        # contacts): Arrow's allocator would keep them through the prepare step
        pa.default_memory_pool().release_unused()
    report.tables = {"register": register, "contacts": contacts, "survey": survey, "outcomes": outcomes}
    return report


def _single(params, table: str):
    import duckdb
    report = ValidationReport(source=str(params.source or ""))
    inp = getattr(params.inputs, table)
    if inp is None:
        return None, report
    if _check_files(params, report) & {table}:
        report.raise_for_errors(table)
    con = duckdb.connect()
    try:
        if table == "register":
            out = _register(params, report, con)
        elif table == "contacts":
            out = _contacts(params, report, con)
        elif table == "survey":
            reg = _register(params, ValidationReport(), con)
            cont = _contacts_teams(params, con)
            out = _survey(params, report, con, reg, cont)
        else:
            out = _outcomes(params, report, con, _contacts_teams(params, con))
    finally:
        con.close()
    report.raise_for_errors(table)
    return out, report


def _contacts_teams(params, con) -> pa.Table | None:
    """Only the contacts' distinct teams (for the survey/outcomes team check when loaded alone).

    Reads the one column, so loading the survey never parses millions of contacts again.
    The contacts' own problems are reported by :func:`load_contacts` / :func:`validate`.
    """
    inp = params.inputs.contacts
    col = _Collector("contacts", inp.path, ValidationReport())
    try:
        src = _open_source("contacts", inp, col)
        src.open()
        client = _resolve_columns(schemas.CONTACTS, inp, src, col).get(Contact.TEAM)
        if client is None:
            return None
        teams: set = set()
        for batch in src.batches([client]):
            teams |= set(pc.unique(_text(batch.column(0))).drop_null().to_pylist())
    except (_ReadFailure, OSError, pa.ArrowException):
        return None
    return pa.table({Contact.TEAM: pa.array(sorted(teams), pa.string())})


def load_register(params) -> pd.DataFrame:
    """The metric register in canonical names and types; raises InputDataError on errors."""
    return _single(params, "register")[0]


def load_contacts(params) -> pa.Table:
    """The contacts as a ``pyarrow.Table`` in canonical names and types.

    Text as strings (``channel`` lower-cased to voice/chat/email), durations as float
    seconds, booleans as nullable booleans, ``started_at`` as ``timestamp[us]``, scores as
    floats. Raises InputDataError (with the formatted problems) on errors.
    """
    return _single(params, "contacts")[0]


def load_survey(params) -> pd.DataFrame | None:
    """The staff survey (wide, answers Int64 1..5), or None when the params name no survey."""
    return _single(params, "survey")[0]


def load_outcomes(params) -> pd.DataFrame | None:
    """The outcomes table, or None when the params name none."""
    return _single(params, "outcomes")[0]
