"""environment.yml (conda users) and pyproject.toml (pip/venv) must name the same dependencies."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge publishes a few packages under another name than PyPI
CONDA_TO_PYPI = {"python-duckdb": "duckdb"}
NOT_DEPENDENCIES = {"python", "pip"}


def _split(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    name = m.group(1).lower().replace("_", "-")
    return CONDA_TO_PYPI.get(name, name), m.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    specs = list(data["project"]["dependencies"])
    for extra in data["project"].get("optional-dependencies", {}).values():
        specs += extra
    return dict(_split(s) for s in specs)


def _environment() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            specs += [s for s in dep.get("pip", []) if not s.startswith("-")]
        else:
            specs.append(dep)
    out = dict(_split(s) for s in specs)
    return {k: v for k, v in out.items() if k not in NOT_DEPENDENCIES}


def test_same_dependency_names():
    py, env = _pyproject(), _environment()
    assert set(py) == set(env), (
        f"only in pyproject.toml: {sorted(set(py) - set(env))}; "
        f"only in environment.yml: {sorted(set(env) - set(py))}")


def test_same_version_bounds():
    py, env = _pyproject(), _environment()
    differ = {k: (py[k], env[k]) for k in py if k in env and py[k] != env[k]}
    assert not differ, f"version bounds differ (pyproject, environment.yml): {differ}"


def test_environment_pins_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]


def test_the_packages_the_project_is_built_on_are_declared():
    # named by the user: jupyterlab, papermill, pandas, seaborn, nbval, pytest
    py = _pyproject()
    for name in ("jupyterlab", "papermill", "pandas", "seaborn", "nbval", "pytest"):
        assert name in py, name
