"""The repository layout the README promises is the layout on disk (READMEs drift; tests don't)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_starts_with_the_two_commands():
    head = "\n".join(README.splitlines()[:8])
    assert "make demo" in head and "make test" in head


def test_every_path_in_the_readme_layout_table_exists():
    section = README.split("## Layout", 1)[1]
    paths = re.findall(r"^\| `([^`]+)`", section, flags=re.M)
    assert paths, "the README has a layout table"
    for cell in paths:
        path = cell.rstrip("/")
        assert (ROOT / path).exists(), f"README names {cell} but it does not exist"
    for extra in re.findall(r"`([\w./-]+\.(?:yml|toml))`", section):
        assert (ROOT / extra).exists(), extra


def test_every_notebook_the_readme_names_exists():
    for nb in re.findall(r"`(notebooks/[\w]+\.ipynb)`", README):
        assert (ROOT / nb).exists(), f"README names {nb}"


def test_fixed_top_level_layout():
    for name in ("notebooks", "audit_lib", "params", "reports", "tests", "environment.yml",
                 "pyproject.toml", "Makefile", ".ci/run"):
        assert (ROOT / name).exists(), name


def test_generated_reports_are_not_tracked():
    tracked = subprocess.run(["git", "ls-files", "reports"], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    assert set(tracked) <= {"reports/.gitkeep"}, tracked


def test_ci_script_runs_make_test():
    script = (ROOT / ".ci" / "run").read_text()
    assert "make test" in script and "set -euo pipefail" in script
