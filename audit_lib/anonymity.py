"""The anonymity guard: the single place every survey output passes through.

Staff survey answers are personal data. No table, chart, export, findings row or
message may reveal a group of respondents smaller than the anonymity threshold
(``thresholds.anonymity``, default 5; ``thresholds.comments_anonymity``, default 10,
for free-text comments) -- neither directly nor by subtraction from a total.

Rules (applied by :func:`guard_groups`):

* **Primary suppression.** A group with ``0 < n < threshold`` is hidden. Empty
  groups are not groups: they are dropped silently.
* **Complementary suppression (one-way tables).** When a total over the groups is
  (or may be) published, the hidden groups together are recoverable by
  subtraction. So the hidden set must hold at least two groups, their union must
  reach the threshold, and it must not be made only of single respondents (else
  every hidden count would be 1). Until that holds, the smallest shown group
  (ties: sorted by key, so the choice is the same in every table) is hidden too.
* **Cross-tabulations (two grouping columns, e.g. team x role).** Row and column
  margins are guarded as one-way tables first; a cell is hidden when it is small or
  its row/column margin is hidden; then every row and column with a published
  margin must satisfy the one-way rule above, and finally a linear-programming
  audit checks that no hidden cell's count is pinned down exactly by what is shown
  (cells, margins, grand total). Any failure hides one more cell (or margin) and the
  audit repeats. Cross-tabulations publish counts only: means are published for
  one-way groupings only.

* **One plan per grouping.** Tables over the same grouping (every per-metric team
  table, the response rates, the team x role counts) share the survey-wide plan of
  :func:`survey_guard` -- the same hidden teams and the same order of complementary
  suppression -- and a table that would need to hide more than the plan (missing
  answers) is withheld whole, so no two tables can be subtracted from each other.

Survey data are aggregated only through :func:`summarise` / :func:`guarded_rows`,
which call :func:`guard_groups`; a suppressed group is removed from the rows (its
label never appears), and the number of hidden groups is kept in ``df.attrs``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_THRESHOLD", "DEFAULT_COMMENTS_THRESHOLD", "SUPPRESSION_NOTE", "guard_groups",
    "hidden_mask", "crosstab_counts", "summarise", "guarded_rows", "feasible_range",
    "suppression_note", "survey_guard",
]

DEFAULT_THRESHOLD = 5
DEFAULT_COMMENTS_THRESHOLD = 10
SUPPRESSION_NOTE = ("Groups with fewer than {threshold} respondents are not shown, nor is any group "
                    "whose numbers could be worked out from the totals.")

_N = "n"
_MEAN = "mean"
_MEDIAN = "median"
_SD = "sd"
_TOTAL = "total"


def _check_threshold(threshold) -> int:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)) or threshold < 2:
        raise ValueError(f"anonymity threshold must be an integer >= 2, got {threshold!r}")
    return int(threshold)


def suppression_note(n_hidden: int, threshold: int) -> str:
    """Plain-language footnote for a table (does not say which groups are hidden)."""
    if not n_hidden:
        return ""
    return SUPPRESSION_NOTE.format(threshold=threshold)


# ---------------------------------------------------------------------------
# one-way tables
# ---------------------------------------------------------------------------
def _one_way_ok(hidden_counts: Sequence[float], threshold: int) -> bool:
    """Is a hidden set safe when its total is known by subtraction?"""
    real = [c for c in hidden_counts if c > 0]
    if not real:
        return True
    s = float(sum(real))
    return len(real) >= 2 and s >= threshold and s > len(real)


def _suppress_1d(counts: np.ndarray, keys: list, threshold: int, total: bool,
                 forced: np.ndarray | None = None, priority: dict | None = None) -> np.ndarray:
    """Boolean hidden mask for a one-way table of counts (all counts > 0)."""
    hidden = counts < threshold
    if forced is not None:
        hidden = hidden | forced
    if not total:
        return hidden

    # deterministic order of complementary candidates: smallest first (by the caller's
    # survey-wide priority when given, so every table hides the same partner), then key
    def rank(i):
        if priority is not None and keys[i] in priority:
            return (0, priority[keys[i]], str(keys[i]))
        return (1 if priority is not None else 0, counts[i], str(keys[i]))
    order = sorted(range(len(counts)), key=rank)
    while not _one_way_ok(counts[hidden], threshold):
        shown = [i for i in order if not hidden[i]]
        if not shown:
            break  # every group hidden; the caller must not show the total either
        hidden[shown[0]] = True
    return hidden


def hidden_mask(counts: Sequence[int], threshold: int = DEFAULT_THRESHOLD, *, total: bool = True,
                keys: Sequence | None = None) -> np.ndarray:
    """Which groups of a one-way table must be hidden.

    Parameters
    ----------
    counts : sequence of int
        Respondents per group (all > 0).
    threshold : int
        Smallest group ever shown.
    total : bool
        Whether a total over these groups is (or may be) published.
    keys : sequence, optional
        Group labels, used only to break ties deterministically.

    Returns
    -------
    numpy.ndarray of bool
    """
    threshold = _check_threshold(threshold)
    c = np.asarray(counts, dtype=float)
    keys = list(keys) if keys is not None else list(range(len(c)))
    return _suppress_1d(c, keys, threshold, total)


# ---------------------------------------------------------------------------
# cross-tabulations
# ---------------------------------------------------------------------------
def feasible_range(matrix: np.ndarray, hidden: np.ndarray, row_shown: np.ndarray,
                   col_shown: np.ndarray, total_shown: bool) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest value of every hidden cell consistent with what is published.

    What is published: the shown cells, the margins of shown rows and columns, and
    (if ``total_shown``) the grand total. Unknowns are the hidden cells, bounded
    below by 0. The constraints form a transportation-type (totally unimodular)
    system, so the LP bounds are the integer bounds.

    Returns
    -------
    (low, high) : arrays of the matrix's shape (NaN where the cell is shown).
    """
    from scipy.optimize import linprog

    m = np.asarray(matrix, dtype=float)
    idx = [tuple(ix) for ix in np.argwhere(hidden)]
    low = np.full(m.shape, np.nan)
    high = np.full(m.shape, np.nan)
    if not idx:
        return low, high
    pos = {ix: j for j, ix in enumerate(idx)}
    rows_eq, rhs = [], []

    def add(cells, value):
        coef = np.zeros(len(idx))
        known = 0.0
        for ix in cells:
            if ix in pos:
                coef[pos[ix]] = 1.0
            else:
                known += m[ix]
        if coef.any():
            rows_eq.append(coef)
            rhs.append(value - known)

    nr, nc = m.shape
    for i in range(nr):
        if row_shown[i]:
            add([(i, j) for j in range(nc)], m[i].sum())
    for j in range(nc):
        if col_shown[j]:
            add([(i, j) for i in range(nr)], m[:, j].sum())
    if total_shown:
        add([(i, j) for i in range(nr) for j in range(nc)], m.sum())
    a_eq = np.array(rows_eq) if rows_eq else None
    b_eq = np.array(rhs) if rhs else None
    bounds = [(0, None)] * len(idx)
    for ix, j in pos.items():
        c = np.zeros(len(idx))
        c[j] = 1.0
        lo = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        hi = linprog(-c, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        low[ix] = lo.fun if lo.status == 0 else 0.0
        # status 3 = unbounded: nothing published caps this cell
        high[ix] = -hi.fun if hi.status == 0 else np.inf
    return low, high


def _plan_2d(m: np.ndarray, row_keys: list, col_keys: list, threshold: int,
             hide_rows=(), row_priority: dict | None = None):
    """Hidden cells, shown rows, shown columns and whether the grand total is shown."""
    nr, nc = m.shape
    forced_rows = np.array([k in set(hide_rows) for k in row_keys], dtype=bool)
    forced_cols = np.zeros(nc, bool)
    extra = np.zeros(m.shape, bool)
    total_shown = m.sum() >= threshold
    for _ in range(4 * (nr * nc + nr + nc) + 4):
        r_tot, c_tot = m.sum(axis=1), m.sum(axis=0)
        row_hidden = _suppress_1d(r_tot, row_keys, threshold, True, forced_rows, row_priority)
        col_hidden = _suppress_1d(c_tot, col_keys, threshold, True, forced_cols)
        hidden = (m < threshold) | row_hidden[:, None] | col_hidden[None, :] | extra
        changed = False
        # line rule on every row / column whose margin is published
        for axis, line_hidden, forced in ((0, row_hidden, forced_rows), (1, col_hidden, forced_cols)):
            n_lines = nr if axis == 0 else nc
            for i in range(n_lines):
                if line_hidden[i]:
                    continue
                cells = m[i] if axis == 0 else m[:, i]
                hid = hidden[i] if axis == 0 else hidden[:, i]
                if _one_way_ok(cells[hid], threshold):
                    continue
                keys = col_keys if axis == 0 else row_keys
                shown = [j for j in sorted(range(len(cells)), key=lambda j: (cells[j], str(keys[j])))
                         if not hid[j]]
                if shown:
                    j = shown[0]
                    if axis == 0:
                        extra[i, j] = True
                    else:
                        extra[j, i] = True
                else:
                    forced[i] = True
                changed = True
                break
            if changed:
                break
        if changed:
            continue
        # LP audit: no hidden non-empty cell may be determined exactly
        low, high = feasible_range(m, hidden, ~row_hidden, ~col_hidden, total_shown)
        pinned = [tuple(ix) for ix in np.argwhere(hidden & (m > 0))
                  if not (high[tuple(ix)] - low[tuple(ix)] >= 1 - 1e-9)]
        if not pinned:
            return hidden, ~row_hidden, ~col_hidden, total_shown
        i, j = pinned[0]
        shown_in_row = [k for k in sorted(range(nc), key=lambda k: (m[i, k], str(col_keys[k])))
                        if not hidden[i, k]]
        shown_in_col = [k for k in sorted(range(nr), key=lambda k: (m[k, j], str(row_keys[k])))
                        if not hidden[k, j]]
        if shown_in_row:
            extra[i, shown_in_row[0]] = True
        elif shown_in_col:
            extra[shown_in_col[0], j] = True
        elif not row_hidden[i]:
            forced_rows[i] = True
        elif not col_hidden[j]:
            forced_cols[j] = True
        elif total_shown:
            total_shown = False
        else:  # pragma: no cover - nothing published can pin a cell
            break
    # could not converge: hide everything rather than risk a disclosure
    return (np.ones(m.shape, bool), np.zeros(nr, bool), np.zeros(nc, bool), False)


# ---------------------------------------------------------------------------
# the guard
# ---------------------------------------------------------------------------
def guard_groups(df: pd.DataFrame, group_cols: str | Sequence[str], count_col: str,
                 threshold: int = DEFAULT_THRESHOLD, *, total: bool = True, hide=(),
                 priority: dict | None = None) -> pd.DataFrame:
    """Keep only the groups that are safe to show.

    Parameters
    ----------
    df : DataFrame
        One row per group, with the grouping column(s) and a count column.
    group_cols : str or list of str
        One column (one-way table) or two (a cross-tabulation, e.g. team x role).
    count_col : str
        Respondents per group.
    threshold : int
        Smallest group ever shown (``thresholds.anonymity``).
    total : bool, default True
        Whether a total over these groups is (or may be) published anywhere. Leave it
        True unless the output is strictly the only one over this population.
    hide : iterable, optional
        Groups (of the first grouping column) hidden whatever their size: the groups a
        survey-wide guard already hides, so every table hides the same ones.
    priority : dict, optional
        Group (first grouping column) -> rank for complementary suppression (lower is
        hidden first), e.g. survey-wide respondent counts; keeps the choice of the second
        hidden group the same in every table, so two tables cannot be subtracted.

    Returns
    -------
    DataFrame
        The safe rows, sorted by the group columns. ``attrs["suppressed"]`` is the
        number of hidden groups and ``attrs["total_shown"]`` whether the total over
        all groups may be shown.

    Examples
    --------
    >>> t = pd.DataFrame({"team": ["A", "B", "C", "D"], "n": [20, 12, 9, 3]})
    >>> guard_groups(t, "team", "n", 5)["team"].tolist()   # D is small, C hides it from subtraction
    ['A', 'B']
    """
    threshold = _check_threshold(threshold)
    cols = [group_cols] if isinstance(group_cols, str) else list(group_cols)
    missing = [c for c in (*cols, count_col) if c not in df.columns]
    if missing:
        raise KeyError(f"guard_groups: columns {missing} not in the table (has {list(df.columns)})")
    # (a single column's own uniqueness check is much cheaper than a frame's duplicated())
    if (not df[cols[0]].is_unique) if len(cols) == 1 else df[cols].duplicated().any():
        raise ValueError(f"guard_groups: one row per group expected; {cols} has duplicates")
    data = df[df[count_col].fillna(0) > 0].sort_values(cols, kind="mergesort").reset_index(drop=True)
    counts = data[count_col].to_numpy(dtype=float)
    n_total = float(counts.sum())
    if len(cols) == 1:
        keys = data[cols[0]].tolist()
        forced = np.array([k in set(hide) for k in keys], dtype=bool)
        hidden = _suppress_1d(counts, keys, threshold, total, forced, priority)
        out = data[~hidden]
        total_shown = n_total >= threshold and _one_way_ok(counts[hidden], threshold)
    elif len(cols) == 2:
        r, c = cols
        wide = data.pivot(index=r, columns=c, values=count_col).fillna(0)
        m = wide.to_numpy(dtype=float)
        hidden, row_shown, col_shown, total_shown = _plan_2d(m, list(wide.index), list(wide.columns),
                                                             threshold, hide, priority)
        keep = {(wide.index[i], wide.columns[j]) for i, j in np.argwhere(~hidden)}
        mask = np.array([(a, b) in keep for a, b in zip(data[r], data[c])], dtype=bool)
        out = data[mask]
        hidden = ~mask
    else:
        raise ValueError("guard_groups handles one or two grouping columns")
    out = out.reset_index(drop=True)
    out.attrs = {"suppressed": int(hidden.sum()), "total_shown": bool(total_shown),
                 "threshold": threshold}
    return out


def crosstab_counts(survey: pd.DataFrame, row: str, col: str,
                    threshold: int = DEFAULT_THRESHOLD, *, hide=(), priority: dict | None = None
                    ) -> pd.DataFrame:
    """Respondent counts of a cross-tabulation (e.g. team x role), guarded, with margins.

    Rows and columns whose margin must stay hidden are left out entirely (their
    labels never appear); hidden cells inside shown rows and columns are ``<NA>``.
    The last row and column (``total``) are the margins. ``hide`` / ``priority`` apply
    to the rows as in :func:`guard_groups`.
    """
    threshold = _check_threshold(threshold)
    for name in (row, col):
        if name not in survey.columns:
            raise KeyError(f"crosstab_counts: column {name!r} not in the survey")
    counts = (survey.dropna(subset=[row, col]).groupby([row, col], observed=True).size()
              .rename(_N).reset_index())
    if counts.empty:
        return pd.DataFrame()
    counts[row] = counts[row].astype(str)
    counts[col] = counts[col].astype(str)
    wide = counts.pivot(index=row, columns=col, values=_N).fillna(0).sort_index().sort_index(axis=1)
    m = wide.to_numpy(dtype=float)
    hidden, row_shown, col_shown, total_shown = _plan_2d(m, list(wide.index), list(wide.columns),
                                                         threshold, hide, priority)
    table = pd.DataFrame(np.where(hidden, np.nan, m), index=wide.index, columns=wide.columns)
    table[_TOTAL] = m.sum(axis=1)
    table.loc[_TOTAL] = list(m.sum(axis=0)) + [m.sum() if total_shown else np.nan]
    rows_keep = [*wide.index[row_shown], _TOTAL]
    cols_keep = [*wide.columns[col_shown], _TOTAL]
    out = table.loc[rows_keep, cols_keep].astype("Int64")
    out.index.name, out.columns.name = row, col
    out.attrs = {"suppressed": int((hidden & (m > 0)).sum()), "total_shown": bool(total_shown),
                 "threshold": threshold}
    return out


def survey_guard(survey: pd.DataFrame, by: str, threshold: int = DEFAULT_THRESHOLD) -> dict:
    """Survey-wide suppression plan of one grouping column (e.g. team).

    Returns ``{"hide": set, "priority": dict}`` for :func:`summarise`,
    :func:`guard_groups` and :func:`crosstab_counts`: the groups hidden at respondent
    level, and respondent counts as the order of complementary suppression. Passing
    it to every table over this grouping keeps the hidden set the same everywhere, so
    one table cannot be subtracted from another.
    """
    if by not in survey.columns:
        return {"hide": set(), "priority": {}}
    counts = survey[by].dropna().astype(str).value_counts()
    table = pd.DataFrame({by: counts.index.astype(str), _N: counts.to_numpy()})
    shown = guard_groups(table, by, _N, threshold)
    return {"hide": set(table[by]) - set(shown[by]),
            "priority": {str(k): int(v) for k, v in counts.items()}}


def _group_frame(survey: pd.DataFrame, by: str, value_col: str | None) -> pd.DataFrame:
    if by not in survey.columns:
        raise KeyError(f"column {by!r} not in the survey (has {list(survey.columns)})")
    keep = survey[by].notna()
    if value_col is not None:
        if value_col not in survey.columns:
            raise KeyError(f"column {value_col!r} not in the survey")
        keep &= survey[value_col].notna()
    return survey[keep]


def summarise(survey: pd.DataFrame, by: str, value_col: str | None = None, *,
              threshold: int = DEFAULT_THRESHOLD, total: bool = True, hide=(),
              priority: dict | None = None) -> pd.DataFrame:
    """Per-group respondent count (and mean/median/sd of ``value_col``), guarded.

    The only way perception outputs aggregate survey rows by a group. Groups are
    counted over respondents with a non-missing ``value_col`` (the group as it
    appears in *this* statistic), then passed through :func:`guard_groups`.

    With a survey-wide plan (``hide`` and ``priority`` from :func:`survey_guard`)
    the table is **all or nothing**: if, because of missing answers, it would have to
    hide any group beyond the plan's, it is withheld entirely. So every table over
    this grouping shows exactly the same groups (or none), and the hidden groups'
    answers are only ever published as the same union.

    Returns
    -------
    DataFrame
        Columns ``[by, n]`` (+ ``mean, median, sd``), shown groups only, sorted by
        ``by``; ``attrs`` as in :func:`guard_groups` plus ``overall_n`` and
        ``overall_mean`` (NaN when the total may not be shown).
    """
    data = _group_frame(survey, by, value_col)
    g = data.groupby(by, observed=True, sort=True)
    table = g.size().rename(_N)
    if value_col is not None:
        # the same groups in the same order as the sizes: aligned by index, no merge needed
        stats = g[value_col].agg(["mean", "median", "std"])
        stats.columns = [_MEAN, _MEDIAN, _SD]
        table = pd.concat([table, stats], axis=1)
    table = table.reset_index()
    shown = guard_groups(table, by, _N, threshold, total=total, hide=hide, priority=priority)
    if priority is not None:
        expected = set(table[by]) - set(hide)
        if set(shown[by]) != expected:
            withheld = shown.iloc[:0].copy()
            withheld.attrs = {**shown.attrs, "suppressed": len(table), "withheld": True}
            shown = withheld
    attrs = dict(shown.attrs)
    n_all = len(data)
    attrs["overall_n"] = n_all if attrs["total_shown"] else math.nan
    if value_col is not None:
        attrs["overall_mean"] = float(data[value_col].mean()) if attrs["total_shown"] else math.nan
    shown.attrs = attrs
    return shown


def guarded_rows(survey: pd.DataFrame, by: str, value_col: str | None = None, *,
                 threshold: int = DEFAULT_THRESHOLD, total: bool = True, hide=(),
                 priority: dict | None = None) -> pd.DataFrame:
    """The respondent rows of the groups :func:`summarise` shows (for tests and plots).

    Rows of hidden groups are removed, so a statistic computed on the result
    (e.g. a Kruskal-Wallis test across teams) never uses a suppressed group.
    """
    data = _group_frame(survey, by, value_col)
    shown = summarise(survey, by, value_col, threshold=threshold, total=total, hide=hide,
                      priority=priority)
    out = data[data[by].isin(set(shown[by]))].copy()
    out.attrs = dict(shown.attrs)
    return out
