"""Shared test fixtures: deterministic plotting, and the demo clients generated once per session."""
from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib

matplotlib.use("Agg")

import pytest


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every matplotlib figure after each test (no leaks between tests)."""
    yield
    import matplotlib.pyplot as plt
    plt.close("all")


@pytest.fixture(scope="session")
def demo_params(tmp_path_factory):
    """The planted demo client (quarter 1), generated once per session; returns its params path."""
    from audit_lib import demo
    return demo.generate(tmp_path_factory.mktemp("demo"), null=False)


@pytest.fixture(scope="session")
def null_demo_params(tmp_path_factory):
    """The same centre with nothing planted; returns its params path."""
    from audit_lib import demo
    return demo.generate(tmp_path_factory.mktemp("demo_null"), null=True)


@pytest.fixture(scope="session")
def demo_audit(demo_params, tmp_path_factory):
    """The planted demo opened as a notebook would (validated and prepared once)."""
    from audit_lib.context import open_audit
    return open_audit(str(demo_params), str(tmp_path_factory.mktemp("demo_run")))


@pytest.fixture(scope="session")
def null_demo_audit(null_demo_params, tmp_path_factory):
    """The null demo opened as a notebook would (validated and prepared once)."""
    from audit_lib.context import open_audit
    return open_audit(str(null_demo_params), str(tmp_path_factory.mktemp("null_run")))
