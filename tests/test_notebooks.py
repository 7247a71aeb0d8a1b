"""The notebook contract (docs/architecture.md "Notebook contract"), for every notebook.

* cell 1 is a markdown title;
* exactly one code cell is tagged ``parameters``; it holds literals only, each line in the
  ``name: type = default  # help`` form papermill documents, and its defaults point at the demo;
* the next code cell calls ``open_audit(params_path, run_dir)``;
* no ``def``, ``class``, ``lambda``, ``for``/``while`` loops or comprehensions anywhere;
* notebooks never read raw contacts (no ``load_contacts``, no reading of input files);
* headline numbers sit in cells marked ``# NBVAL_CHECK_OUTPUT`` (nbval compares them in ``make test``).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PARAM_LINE = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*): (?P<type>str|int|float|bool) = (?P<value>.+?)  # \S.*$")
FORBIDDEN = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.AsyncFor, ast.While, ast.Lambda,
             ast.comprehension)


def _ids(paths):
    return [p.stem for p in paths]


def _code(cell) -> str:
    """Cell source with IPython magics and shell escapes blanked so ``ast`` can parse it."""
    lines = []
    for line in cell.source.splitlines():
        stripped = line.lstrip()
        lines.append("" if stripped.startswith(("%", "!")) else line)
    return "\n".join(lines)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/NN_name.ipynb"
    assert (ROOT / "notebooks" / "00_overview.ipynb") in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_first_cell_is_a_markdown_title(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown"
    assert nb.cells[0].source.lstrip().startswith("# "), "cell 1 starts with a '# Title' heading"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_one_parameters_cell_with_documented_literals(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'"
    cell = tagged[0]
    assert cell.cell_type == "code"
    names = {}
    for line in cell.source.splitlines():
        if not line.strip():
            continue
        m = PARAM_LINE.match(line)
        assert m, f"{path.name}: parameter line not in 'name: type = default  # help' form: {line!r}"
        value = ast.literal_eval(m.group("value"))  # literals only: no derived values
        assert type(value).__name__ == m.group("type"), line
        names[m.group("name")] = value
    assert names.get("params_path") == "../params/demo.yaml"
    assert names.get("run_dir") == ""
    tree = ast.parse(cell.source)
    assert all(isinstance(node, ast.AnnAssign) for node in tree.body)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_next_code_cell_opens_the_audit(path):
    nb = nbformat.read(path, as_version=4)
    cells = _code_cells(nb)
    idx = next(i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    assert idx + 1 < len(cells)
    tree = ast.parse(_code(cells[idx + 1]))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", getattr(n.func, "attr", "")) == "open_audit"]
    assert calls, f"{path.name}: the cell after the parameters calls open_audit(params_path, run_dir)"
    args = [getattr(a, "id", None) for a in calls[0].args]
    assert args[:2] == ["params_path", "run_dir"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_no_definitions_or_loops(path):
    nb = nbformat.read(path, as_version=4)
    for n, cell in enumerate(_code_cells(nb), start=1):
        tree = ast.parse(_code(cell))
        bad = [type(node).__name__ for node in ast.walk(tree) if isinstance(node, FORBIDDEN)]
        assert not bad, f"{path.name} code cell {n}: {bad} belong in audit_lib, not in a notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_never_reads_raw_inputs(path):
    nb = nbformat.read(path, as_version=4)
    src = "\n".join(_code(c) for c in _code_cells(nb))
    for needle in ("load_contacts", "read_csv", "read_excel", "read_parquet", "io.validate", "open("):
        assert needle not in src, f"{path.name} reads inputs directly ({needle}); use audit.table(...)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_headline_numbers_are_checked_by_nbval(path):
    nb = nbformat.read(path, as_version=4)
    checked = [c for c in _code_cells(nb) if "# NBVAL_CHECK_OUTPUT" in c.source]
    assert checked, f"{path.name}: mark the headline cell with # NBVAL_CHECK_OUTPUT"
    for cell in checked:
        assert cell.outputs, f"{path.name}: a # NBVAL_CHECK_OUTPUT cell must be saved with its expected output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_saves_findings(path):
    nb = nbformat.read(path, as_version=4)
    src = "\n".join(c.source for c in _code_cells(nb))
    assert "save_findings(" in src, f"{path.name}: each notebook saves its Findings with audit.save_findings"
