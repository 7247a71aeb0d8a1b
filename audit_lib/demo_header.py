"""The first line of a demo params file, which records how its inputs were generated.

Kept apart from :mod:`audit_lib.demo` (NumPy, pandas, Arrow) so that the runner can tell
whether a demo's inputs are missing before it imports anything heavy, and start the notebook
kernels sooner.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import yaml

from .errors import ParamsError

__all__ = ["HEADER_TAG", "DemoHeader", "header_line", "read_header"]

HEADER_TAG = "# demo-generator:"
_SETTINGS = re.compile(r"quarter=(\d) null=(true|false) seed=(-?\d+) contacts=(\d+) format=(csv|parquet)")


class DemoHeader(NamedTuple):
    """How a demo params file's inputs were made, and where they are."""

    quarter: int
    null: bool
    seed: int
    contacts: int
    fmt: str
    inputs: dict[str, Path]     # table -> file, resolved against the params file's folder

    def missing(self) -> list[Path]:
        return [p for p in self.inputs.values() if not p.exists()]


def header_line(*, quarter: int, null: bool, seed: int, contacts: int, fmt: str) -> str:
    """The first line :func:`read_header` reads back."""
    return (f"{HEADER_TAG} quarter={quarter} null={str(bool(null)).lower()} seed={int(seed)} "
            f"contacts={int(contacts)} format={fmt}")


def read_header(params_path) -> DemoHeader | None:
    """The demo settings of a params file written by ``kpi-audit demo``; None for any other file.

    Raises
    ------
    ParamsError
        The file cannot be read, or it is a demo params file whose YAML is damaged.
    """
    path = Path(params_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParamsError(f"cannot read params file {path}: {exc.strerror}; check the path.") from exc
    first = text.splitlines()[0] if text else ""
    match = _SETTINGS.search(first) if first.startswith(HEADER_TAG) else None
    if match is None:
        return None
    quarter, null, seed, contacts, fmt = match.groups()
    try:
        doc = yaml.safe_load(text) or {}
        inputs = {k: path.parent / v["path"] for k, v in doc["inputs"].items()}
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise ParamsError(f"{path}: the demo params file is damaged ({exc}); restore it from the "
                          "repository or regenerate it with `kpi-audit demo`.") from exc
    return DemoHeader(int(quarter), null == "true", int(seed), int(contacts), fmt, inputs)
