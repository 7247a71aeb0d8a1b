"""The anonymity guard: no output reveals a group below the threshold, directly or by subtraction.

The property tests take the attacker's position: they see only what an output publishes
(the shown groups, the total) plus the list of group labels, and check that no hidden
group's count or mean is pinned down -- by exhibiting a second, different survey that
publishes exactly the same numbers.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from audit_lib import anonymity as A

PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# the cross-tabulation audit solves small linear programmes: fewer, still varied, examples
PROPS_2D = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _counts_table(counts):
    return pd.DataFrame({"team": [f"T{i:02d}" for i in range(len(counts))], "n": counts})


# ---------------------------------------------------------------------------
# worked examples
# ---------------------------------------------------------------------------
def test_small_group_is_hidden_and_a_second_group_protects_it_from_subtraction():
    t = pd.DataFrame({"team": ["Atlas", "Beacon", "Comet", "Delta"], "n": [40, 35, 30, 3]})
    shown = A.guard_groups(t, "team", "n", 5)
    # Delta (3) is below 5; with the total (108) shown, 108 - 40 - 35 - 30 = 3 would give it
    # away, so the smallest other team (Comet) is hidden too.
    assert shown["team"].tolist() == ["Atlas", "Beacon"]
    assert shown.attrs["suppressed"] == 2 and shown.attrs["total_shown"]


def test_without_a_published_total_only_the_small_group_is_hidden():
    t = pd.DataFrame({"team": ["Atlas", "Beacon", "Comet", "Delta"], "n": [40, 35, 30, 3]})
    shown = A.guard_groups(t, "team", "n", 5, total=False)
    assert shown["team"].tolist() == ["Atlas", "Beacon", "Comet"]


def test_hidden_union_must_reach_the_threshold():
    # two small groups (2 + 1 = 3 < 5) together are still too small: a third is hidden
    t = pd.DataFrame({"team": list("ABCDE"), "n": [2, 1, 9, 7, 20]})
    shown = A.guard_groups(t, "team", "n", 5)
    assert shown["team"].tolist() == ["C", "E"]


def test_nothing_hidden_when_every_group_is_large():
    t = pd.DataFrame({"team": list("ABC"), "n": [5, 6, 50]})
    assert A.guard_groups(t, "team", "n", 5)["team"].tolist() == ["A", "B", "C"]


def test_all_hidden_means_the_total_is_not_shown_when_small():
    t = pd.DataFrame({"team": list("AB"), "n": [2, 1]})
    shown = A.guard_groups(t, "team", "n", 5)
    assert shown.empty and not shown.attrs["total_shown"]


def test_bad_threshold_and_duplicate_groups_are_refused():
    t = pd.DataFrame({"team": ["A", "A"], "n": [5, 6]})
    with pytest.raises(ValueError, match="duplicates"):
        A.guard_groups(t, "team", "n", 5)
    with pytest.raises(ValueError, match="threshold"):
        A.guard_groups(t.iloc[:1], "team", "n", 1)
    with pytest.raises(KeyError, match="count"):
        A.guard_groups(t.iloc[:1], "team", "count", 5)


def test_summarise_hides_small_teams_from_means_and_rows():
    survey = pd.DataFrame({"team": ["A"] * 6 + ["B"] * 7 + ["C"] * 2 + ["D"] * 8,
                           "x": np.arange(23, dtype=float)})
    s = A.summarise(survey, "team", "x", threshold=5)
    assert s["team"].tolist() == ["B", "D"]          # C is small, A (smallest other) protects it
    assert s.attrs["overall_n"] == 23
    rows = A.guarded_rows(survey, "team", "x", threshold=5)
    assert set(rows["team"]) == {"B", "D"} and len(rows) == 15
    # the hand-computed mean of team B (rows 6..12)
    assert s.loc[s["team"] == "B", "mean"].item() == pytest.approx(9.0)


def test_crosstab_hides_small_cells_with_complements_in_rows_and_columns():
    survey = pd.DataFrame({
        "team": ["Atlas"] * 30 + ["Beacon"] * 25 + ["Comet"] * 20 + ["Delta"] * 3,
        "role": (["agent"] * 24 + ["team_lead"] * 3 + ["manager"] * 3
                 + ["agent"] * 18 + ["team_lead"] * 4 + ["manager"] * 3
                 + ["agent"] * 14 + ["team_lead"] * 6 + ["agent"] * 3)})
    table = A.crosstab_counts(survey, "team", "role", 5)
    assert "Delta" not in table.index
    values = table.drop(index="total", columns="total").to_numpy(dtype=float)
    assert np.all(np.isnan(values) | (values >= 5))
    _assert_crosstab_not_recoverable(survey, table, "team", "role", 5)


# ---------------------------------------------------------------------------
# properties (hypothesis)
# ---------------------------------------------------------------------------
@PROPS
@given(counts=st.lists(st.integers(1, 40), min_size=1, max_size=12), threshold=st.integers(2, 10),
       total=st.booleans())
def test_no_shown_group_is_below_the_threshold(counts, threshold, total):
    shown = A.guard_groups(_counts_table(counts), "team", "n", threshold, total=total)
    assert (shown["n"] >= threshold).all()


@PROPS
@given(counts=st.lists(st.integers(1, 40), min_size=1, max_size=12), threshold=st.integers(2, 10))
def test_hidden_counts_cannot_be_recovered_from_the_total(counts, threshold):
    table = _counts_table(counts)
    shown = A.guard_groups(table, "team", "n", threshold)
    hidden = table[~table["team"].isin(shown["team"])]
    if hidden.empty:
        return
    if not shown.attrs["total_shown"]:
        # nothing published about the hidden groups, and the total is withheld
        assert hidden["n"].sum() < threshold or len(shown) == 0
        return
    # the attacker knows: total N, the shown counts, and which labels exist (each >= 1)
    residual = sum(counts) - shown["n"].sum()
    assert residual >= threshold                 # the hidden union is itself a safe group
    k = len(hidden)
    # every hidden count can be anything in [1, residual - (k - 1)]: it is pinned only if
    # that interval is a single value
    assert residual - (k - 1) > 1
    # and, constructively: a different split of the same residual exists for every group
    for i, n_i in enumerate(hidden["n"]):
        others = [n for j, n in enumerate(hidden["n"]) if j != i]
        assert others, "a lone hidden group would be recovered by subtraction"
        assert n_i >= 2 or any(n >= 2 for n in others)


survey_strategy = st.integers(1, 8).flatmap(lambda n_groups: st.tuples(
    st.lists(st.integers(1, 25), min_size=n_groups, max_size=n_groups),
    st.integers(0, 2 ** 31 - 1)))


def _make_survey(sizes, seed, homogeneous=False):
    rng = np.random.default_rng(seed)
    teams = np.repeat([f"T{i}" for i in range(len(sizes))], sizes)
    values = np.full(len(teams), 3.0) if homogeneous else rng.integers(1, 6, len(teams)).astype(float)
    return pd.DataFrame({"team": teams, "x": values})


@PROPS
@given(spec=survey_strategy, threshold=st.integers(2, 10))
def test_hidden_means_cannot_be_recovered_from_shown_means_and_the_total(spec, threshold):
    sizes, seed = spec
    survey = _make_survey(sizes, seed)
    out = A.summarise(survey, "team", "x", threshold=threshold)
    assert (out["n"] >= threshold).all()
    hidden_teams = sorted(set(survey["team"]) - set(out["team"]))
    if not hidden_teams or not out.attrs["total_shown"]:
        return
    # what is published: per shown team n and mean, and the total n and mean
    published = (out[["team", "n", "mean"]].to_numpy().tolist(), out.attrs["overall_n"],
                 round(out.attrs["overall_mean"], 12))
    hid = survey[survey["team"].isin(hidden_teams)]
    assert len(hid) >= threshold and len(hidden_teams) >= 2
    for team in hidden_teams:
        mine = hid[hid["team"] == team]
        rest = hid[hid["team"] != team]
        # an alternative survey: swap one answer between this team and another hidden team
        pairs = [(i, j) for i in mine.index for j in rest.index if mine.at[i, "x"] != rest.at[j, "x"]]
        if not pairs:
            # only possible when every hidden answer is the same value: then the union (a safe
            # group of >= threshold people) answered unanimously, which the total shows anyway
            assert hid["x"].nunique() == 1
            continue
        i, j = pairs[0]
        alt = survey.copy()
        alt.loc[i, "x"], alt.loc[j, "x"] = survey.at[j, "x"], survey.at[i, "x"]
        # ...and another one: move a respondent between hidden teams (the counts change)
        alt2 = survey.copy()
        if len(mine) >= 2:
            alt2.loc[mine.index[0], "team"] = rest["team"].iloc[0]
        else:
            sizes_rest = rest["team"].value_counts()
            assert sizes_rest.max() >= 2, "every hidden team has one respondent: counts pinned"
            alt2.loc[rest.index[rest["team"] == sizes_rest.idxmax()][0], "team"] = team
        for other in (alt, alt2):
            shown_rows = other[other["team"].isin(out["team"])]
            same = shown_rows.groupby("team")["x"].agg(["size", "mean"]).reset_index().to_numpy().tolist()
            assert [[t, n, pytest.approx(m)] for t, n, m in published[0]] == same
            assert len(other) == published[1]
            assert round(other["x"].mean(), 12) == pytest.approx(published[2])
        assert alt.loc[alt["team"] == team, "x"].mean() != mine["x"].mean()
        assert (alt2["team"] == team).sum() != len(mine)


def _assert_crosstab_not_recoverable(survey, table, row, col, threshold):
    """From the published crosstab alone, no hidden non-empty cell is determined exactly."""
    full = pd.crosstab(survey[row].astype(str), survey[col].astype(str))
    rows, cols = list(full.index), list(full.columns)
    shown_rows = [r for r in table.index if r != "total"]
    shown_cols = [c for c in table.columns if c != "total"]
    unknown, known = [], {}
    for r in rows:
        for c in cols:
            v = table.at[r, c] if (r in shown_rows and c in shown_cols) else pd.NA
            if pd.isna(v):
                unknown.append((r, c))
            else:
                known[(r, c)] = int(v)
                assert int(v) >= threshold
                assert int(v) == full.at[r, c]
    if not unknown:
        return
    pos = {cell: i for i, cell in enumerate(unknown)}
    a_eq, b_eq = [], []

    def equation(cells, value):
        coef = np.zeros(len(unknown))
        rest = value
        for cell in cells:
            if cell in pos:
                coef[pos[cell]] = 1
            else:
                rest -= known[cell]
        if coef.any():
            a_eq.append(coef)
            b_eq.append(rest)

    for r in shown_rows:
        equation([(r, c) for c in cols], int(table.at[r, "total"]))
    for c in shown_cols:
        equation([(r, c) for r in rows], int(table.at["total", c]))
    if not pd.isna(table.at["total", "total"]):
        equation([(r, c) for r in rows for c in cols], int(table.at["total", "total"]))
    for cell, i in pos.items():
        if full.at[cell] == 0:
            continue
        obj = np.zeros(len(unknown))
        obj[i] = 1
        lo = linprog(obj, A_eq=np.array(a_eq) if a_eq else None, b_eq=b_eq or None,
                     bounds=[(0, None)] * len(unknown), method="highs")
        hi = linprog(-obj, A_eq=np.array(a_eq) if a_eq else None, b_eq=b_eq or None,
                     bounds=[(0, None)] * len(unknown), method="highs")
        high = np.inf if hi.status == 3 else -hi.fun
        assert lo.status == 0
        assert high - lo.fun >= 1 - 1e-9, f"hidden cell {cell} is pinned to {lo.fun}"
    # every published margin is a group of at least the threshold
    for r in shown_rows:
        assert int(table.at[r, "total"]) >= threshold
    for c in shown_cols:
        assert int(table.at["total", c]) >= threshold


@PROPS_2D
@given(cells=st.lists(st.lists(st.integers(0, 14), min_size=3, max_size=3), min_size=1, max_size=5),
       threshold=st.integers(2, 8))
def test_crosstab_shows_no_small_cell_and_pins_no_hidden_cell(cells, threshold):
    records = [(f"T{i}", role) for i, row in enumerate(cells)
               for role, n in zip(("agent", "manager", "team_lead"), row) for _ in range(n)]
    if not records:
        return
    survey = pd.DataFrame(records, columns=["team", "role"])
    table = A.crosstab_counts(survey, "team", "role", threshold)
    _assert_crosstab_not_recoverable(survey, table, "team", "role", threshold)


@PROPS_2D
@given(cells=st.lists(st.lists(st.integers(0, 14), min_size=3, max_size=3), min_size=1, max_size=5),
       threshold=st.integers(2, 8))
def test_guard_groups_two_way_shows_only_large_cells(cells, threshold):
    df = pd.DataFrame([(f"T{i}", r, n) for i, row in enumerate(cells)
                       for r, n in zip(("agent", "manager", "team_lead"), row)],
                      columns=["team", "role", "n"])
    shown = A.guard_groups(df, ["team", "role"], "n", threshold)
    assert (shown["n"] >= threshold).all()
    # the same cells as the published crosstab
    survey = df.loc[df.index.repeat(df["n"])][["team", "role"]]
    if len(survey):
        table = A.crosstab_counts(survey, "team", "role", threshold)
        published = {(r, c) for r in table.index if r != "total" for c in table.columns
                     if c != "total" and not pd.isna(table.at[r, c])}
        assert published == set(zip(shown["team"], shown["role"]))


def test_a_table_needing_more_suppression_than_the_survey_plan_is_withheld():
    survey = pd.DataFrame({"team": ["A"] * 9 + ["B"] * 8 + ["C"] * 7 + ["D"] * 2,
                           "x": [1.0] * 26})
    plan = A.survey_guard(survey, "team", 5)
    assert plan["hide"] == {"C", "D"}          # D small, C the smallest other team
    full = A.summarise(survey, "team", "x", threshold=5, **plan)
    assert full["team"].tolist() == ["A", "B"]
    # B answered this question only 4 times: hiding B as well would pair it with a different
    # partner than in other tables, so the whole breakdown is withheld
    partial = survey.copy()
    partial.loc[partial.index[9:13], "x"] = np.nan
    out = A.summarise(partial, "team", "x", threshold=5, **plan)
    assert out.empty and out.attrs["withheld"]
