"""What every notebook calls first: ``audit = open_audit(params_path, run_dir)``.

``open_audit`` loads the params file, makes sure the inputs exist (the bundled demo client is
generated on first use), validates them once, prepares the compact tables once, and returns an
:class:`Audit` holding everything a notebook needs. Notebooks never read raw contacts.

Run folders
    Under ``kpi-audit run`` the runner validates and prepares before any notebook starts and
    passes its ``run_dir``; ``open_audit`` then finds ``<run_dir>/prepared/manifest.json`` and
    only loads the small tables (register, survey, outcomes). With ``run_dir=""`` (a notebook
    opened on its own in JupyterLab) the tables are prepared into a cache folder next to the
    params file, ``<params dir>/.cache/<slug>-<hash>/``, keyed by the params file, every input
    file and the computation code, so re-opening is fast and a changed input is re-prepared.

Notebook name
    ``audit.save_findings(df)`` writes ``<run_dir>/findings/<notebook stem>.json``. The stem is,
    in order: ``save_findings(df, name=...)``, ``open_audit(..., name=...)``, the
    ``KPI_AUDIT_NOTEBOOK`` environment variable the runner sets for each kernel, the
    notebook path Jupyter gives its kernel (``__session__`` / ``JPY_SESSION_NAME``), and
    finally the findings' lens names (e.g. ``overview.json`` under nbval).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from .columns import Contact as C
from .errors import InputDataError, ParamsError, RunError

__all__ = [
    "Audit", "open_audit", "validate_inputs", "ensure_prepared", "input_files", "sha256_file",
    "cache_dir", "notebook_name", "MANIFEST", "VALIDATION_FILE", "NOTEBOOK_ENV",
]

MANIFEST = "manifest.json"
_SMALL_DIR = "inputs"
_SMALL = ("register", "survey", "outcomes")
VALIDATION_FILE = "validation.json"
NOTEBOOK_ENV = "KPI_AUDIT_NOTEBOOK"
_INPUTS = ("register", "contacts", "survey", "outcomes")
# code whose change must invalidate a cached preparation
_CODE = ("kpi_compute.py", "prepare.py", "data/kpi_compute.yaml")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def input_files(params) -> dict[str, Path]:
    """``{table: path}`` of every input file the params name (optional tables only when set)."""
    out = {}
    for name in _INPUTS:
        spec = getattr(params.inputs, name, None)
        path = getattr(spec, "path", None) if spec is not None else None
        if path:
            out[name] = Path(path)
    return out


def _code_hash() -> str:
    h = hashlib.sha256()
    pkg = resources.files("audit_lib")
    for rel in _CODE:
        try:
            h.update(pkg.joinpath(rel).read_bytes())
        except FileNotFoundError:
            h.update(b"-")
    return h.hexdigest()


def _inputs_key(params) -> str:
    """Hash of the params file, every input file and the preparation code."""
    h = hashlib.sha256()
    h.update(Path(params.source).read_bytes())
    for name, path in sorted(input_files(params).items()):
        h.update(name.encode())
        h.update(sha256_file(path).encode() if path.exists() else b"missing")
    h.update(_code_hash().encode())
    return h.hexdigest()


def cache_dir(params) -> Path:
    """``<params dir>/.cache/<slug>-<hash>``: where a notebook opened on its own prepares."""
    return Path(params.source).resolve().parent / ".cache" / f"{params.slug}-{_inputs_key(params)[:16]}"


def _issue_dict(issue: Any) -> dict:
    if dataclasses.is_dataclass(issue) and not isinstance(issue, type):
        d = dataclasses.asdict(issue)
    elif isinstance(issue, dict):
        d = dict(issue)
    elif hasattr(issue, "model_dump"):
        d = issue.model_dump()
    else:
        d = {"message": str(issue)}
    d.setdefault("message", str(issue))
    return {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v)) for k, v in d.items()}


def validate_inputs(params):
    """Validate every input once (``audit_lib.io.validate``); raise InputDataError when invalid."""
    from . import io
    report = io.validate(params)
    if not report.ok:
        raise InputDataError(
            f"{len(report.errors)} problem(s) in the inputs of {params.source}:\n{report.format()}\n"
            f"Fix them and run `kpi-audit validate {params.source}` again.", problems=list(report.errors))
    return report


def ensure_prepared(params, run_dir: str | Path, report=None, contacts=None) -> Path:
    """Prepare the compact tables into ``run_dir`` unless its manifest already exists.

    Writes ``<run_dir>/validation.json`` (the validation warnings, shown by the overview).
    Returns ``run_dir``.
    """
    from . import prepare as prep
    run_dir = Path(run_dir)
    if (run_dir / "prepared" / MANIFEST).exists():
        return run_dir
    if report is None:
        report = validate_inputs(params)
    run_dir.mkdir(parents=True, exist_ok=True)
    tables = getattr(report, "tables", None) or {}
    tables = tables if isinstance(tables, dict) else {}
    _write_small_inputs(run_dir, tables)
    _write_validation(run_dir, report)
    if contacts is None:
        # hand the loaded contacts over instead of keeping a second reference: prepare drops
        # them once DuckDB holds what it needs, which lowers the peak memory on large exports
        contacts = tables.pop("contacts", None)
    box = _Handover(contacts) if contacts is not None else None
    del contacts    # the box holds the only reference now (a local name here would keep them alive)
    prep.prepare(params, run_dir, contacts=box, register=tables.get("register"))
    return run_dir


class _Handover:
    """A one-owner box: ``prepare`` takes the table out and the caller keeps no reference."""

    def __init__(self, value):
        self.value = value

    def take_table(self):
        value, self.value = self.value, None
        return value


def _write_small_inputs(run_dir: Path, tables: dict) -> None:
    """Keep the validated register, survey and outcomes next to the prepared tables.

    Notebooks then read them back instantly instead of re-parsing (and re-validating) the
    exports in every kernel. Pickle keeps the exact pandas dtypes; the folder is private to
    the run (never published).
    """
    folder = run_dir / _SMALL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name in _SMALL:
        df = tables.get(name)
        path = folder / f"{name}.pkl"
        if name in tables:
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            pd.to_pickle(df, tmp)
            os.replace(tmp, path)


def _write_validation(run_dir: Path, report) -> None:
    warnings = [_issue_dict(w) for w in (getattr(report, "warnings", None) or [])]
    tmp = run_dir / f".{VALIDATION_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"warnings": warnings}, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    os.replace(tmp, run_dir / VALIDATION_FILE)


def notebook_name() -> str:
    """The running notebook's stem, when the environment tells it (else "")."""
    if os.environ.get(NOTEBOOK_ENV):
        return Path(os.environ[NOTEBOOK_ENV]).stem
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        shell = None
    if shell is not None:
        for key in ("__session__", "__vsc_ipynb_file__"):
            value = shell.user_ns.get(key)
            if isinstance(value, str) and value.endswith(".ipynb"):
                return Path(value).stem
    session = os.environ.get("JPY_SESSION_NAME", "")
    return Path(session).stem if session.endswith(".ipynb") else ""


class Audit:
    """Everything a notebook needs: params, small input tables, prepared tables, pseudonyms.

    Attributes
    ----------
    params : audit_lib.params.Params
    run_dir : Path — the run folder (prepared tables, findings).
    register, survey, outcomes : DataFrame (``outcomes`` is None when not supplied).
    validation_warnings : list of dict — warnings of the input validation.
    name : str — notebook stem used by :meth:`save_findings` ("" when unknown).
    """

    def __init__(self, params, run_dir: Path, *, name: str = ""):
        self.params = params
        self.run_dir = Path(run_dir)
        self.name = name
        self._tables: dict[str, pd.DataFrame] = {}
        self._key: bytes | None = None

    def __repr__(self) -> str:
        return f"Audit(client={getattr(self.params, 'client', '')!r}, run_dir={str(self.run_dir)!r})"

    # ------------------------------------------------------------------ small inputs
    def _small(self, name: str):
        path = self.run_dir / _SMALL_DIR / f"{name}.pkl"
        if path.exists():
            return pd.read_pickle(path)
        from . import io  # a run folder prepared without them: load (and validate) the export
        if name != "register" and name not in input_files(self.params):
            return None
        return getattr(io, f"load_{name}")(self.params)

    @cached_property
    def register(self) -> pd.DataFrame:
        return self._small("register")

    @cached_property
    def survey(self) -> pd.DataFrame | None:
        return self._small("survey")

    @cached_property
    def outcomes(self) -> pd.DataFrame | None:
        return self._small("outcomes")

    @cached_property
    def kpis(self):
        """The KPI library catalogue (``audit_lib.kpis.load_library()``)."""
        from . import kpis
        return kpis.load_library()

    @property
    def thresholds(self):
        return self.params.thresholds

    @cached_property
    def validation_warnings(self) -> list[dict]:
        path = self.run_dir / VALIDATION_FILE
        if not path.exists():
            return []
        return json.loads(path.read_text(encoding="utf-8")).get("warnings", [])

    @cached_property
    def manifest(self) -> dict:
        """The prepare step's manifest (tables, rows, period, computable KPIs)."""
        return json.loads((self.run_dir / "prepared" / MANIFEST).read_text(encoding="utf-8"))

    # ------------------------------------------------------------------ prepared tables
    def table(self, name: str) -> pd.DataFrame:
        """A prepared table (``audit_lib.columns.Prepared``) as a DataFrame (read once, then cached)."""
        if name not in self._tables:
            path = self.run_dir / "prepared" / f"{name}.parquet"
            if not path.exists():
                known = sorted(p.stem for p in (self.run_dir / "prepared").glob("*.parquet"))
                raise KeyError(f"no prepared table {name!r} in {self.run_dir / 'prepared'}; "
                               f"available: {', '.join(known)}")
            self._tables[name] = pd.read_parquet(path)
        return self._tables[name].copy()

    # ------------------------------------------------------------------ privacy
    @property
    def pseudonymise_agents(self) -> bool:
        privacy = getattr(self.params, "privacy", None)
        return bool(getattr(privacy, "pseudonymise_agents", True))

    def _pseudonym_key(self) -> bytes:
        if self._key is None:
            from . import privacy
            client_dir = Path(self.params.report_dir).parent
            self._key = privacy.load_or_create_key(privacy.restricted_dir(client_dir))
        return self._key

    def pseudonym(self, agent_id: str) -> str:
        """The agent's stable pseudonym (the id itself when ``privacy.pseudonymise_agents`` is false)."""
        if not self.pseudonymise_agents:
            return str(agent_id)
        from . import privacy
        return privacy.pseudonym(str(agent_id), self._pseudonym_key())

    def pseudonymise(self, df: pd.DataFrame, column: str = C.AGENT_ID) -> pd.DataFrame:
        """A copy of ``df`` whose ``column`` holds pseudonyms instead of agent ids."""
        if not self.pseudonymise_agents:
            return df.copy()
        from . import privacy
        return privacy.pseudonymise(df, self._pseudonym_key(), column)

    # ------------------------------------------------------------------ findings
    def save_findings(self, df: pd.DataFrame, name: str | None = None) -> Path:
        """Write this notebook's Findings to ``<run_dir>/findings/<name>.json``.

        ``name`` defaults to the notebook stem (see the module docstring); pass it when
        running outside Jupyter and the runner.
        """
        from . import findings
        from .columns import Finding as F
        stem = Path(name).stem if name else (self.name or notebook_name())
        if not stem:
            # outside Jupyter and the runner (e.g. under nbval): one file per lens is still unique
            lenses = sorted(set(df[F.LENS])) if F.LENS in df and len(df) else []
            stem = "-".join(lenses)
        if not stem:
            raise RunError("cannot tell which notebook is saving these (empty) findings; call "
                           "audit.save_findings(df, name='NN_name') or open_audit(..., name='NN_name')")
        return findings.write_json(df, self.run_dir / "findings" / f"{stem}.json")


def _ensure_inputs(params_path: Path) -> None:
    """Generate a demo params file's inputs when they are missing (other params files: no-op)."""
    try:
        from . import demo
    except ImportError:
        return
    ensure = getattr(demo, "ensure_demo_inputs", None)
    if ensure is not None:
        ensure(params_path)


def open_audit(params_path: str | os.PathLike, run_dir: str | os.PathLike = "", *, name: str = "") -> Audit:
    """Validate params and inputs, prepare the compact tables if needed, return an :class:`Audit`.

    Parameters
    ----------
    params_path : the audit's params YAML file.
    run_dir : run folder with prepared tables; "" = a cache folder next to the params file.
    name : notebook stem for :meth:`Audit.save_findings` (detected when running in Jupyter
        or under ``kpi-audit run``).

    Raises
    ------
    ParamsError, InputDataError
        When the params file or an input is invalid (the message lists every problem).
    """
    from .params import load_params
    if not str(params_path):
        raise ParamsError("params_path is empty; pass the audit's params file, e.g. ../params/demo.yaml")
    params_path = Path(params_path)
    if params_path.is_file():
        # before load_params: it checks that the input files exist
        _ensure_inputs(params_path)
    params = load_params(params_path)
    if run_dir and str(run_dir).strip():
        target = Path(run_dir)
        ensure_prepared(params, target)
    else:
        target = cache_dir(params)
        if not (target / "prepared" / MANIFEST).exists():
            ensure_prepared(params, target)
            _prune_cache(target)
    return Audit(params, target, name=name or notebook_name())


def _prune_cache(current: Path) -> None:
    """Remove older cache folders of the same client (keep the one just prepared)."""
    slug = current.name.rsplit("-", 1)[0]
    for other in current.parent.glob(f"{slug}-*"):
        if other != current and other.is_dir() and other.name.rsplit("-", 1)[0] == slug:
            shutil.rmtree(other, ignore_errors=True)
