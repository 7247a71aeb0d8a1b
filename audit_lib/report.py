"""``kpi-audit run``: validate, prepare, execute every notebook, publish one report folder.

Steps (each prints one progress line unless ``quiet``)::

    validate  → the inputs, once (InputDataError: nothing is written)
    prepare   → compact Parquet tables in a private work folder
    notebooks → notebooks/NN_*.ipynb with papermill (two at a time; the scorecard last,
                once the other notebooks have saved their findings), each rendered to HTML
    index     → index.html, findings.json, findings.xlsx, run.json
    publish   → rename into reports/<slug>/<period>/

Atomic publication
    Everything is written below a hidden temporary folder in the client folder
    (``reports/<slug>/.run-<period>-<pid>-<token>/``: ``report/`` becomes the period folder,
    ``work/`` holds prepared tables and per-notebook findings and is deleted).
    The finished ``report/`` is renamed into place; a previous report is moved aside and
    deleted only after the new one is in place (rename-swap). SIGINT/SIGTERM stop the kernels
    and delete the temporary folder; a folder left by SIGKILL is hidden and the next run of
    that client removes it once its process is gone.

Failure
    A failing notebook stops the run with :class:`~audit_lib.errors.RunError` naming the
    notebook, the cell (number in the notebook as saved, and its first line) and the error.
    The failed notebook is rendered into ``reports/<slug>/<period>.failed-<timestamp>/`` and
    the previous report stays byte-for-byte as it was.

Privacy
    Prepared tables (raw agent ids) never enter the report folder. The pseudonym key and the
    agent ↔ pseudonym map live in ``reports/<slug>/.restricted/``.

Kernels
    Every kernel runs this interpreter (``sys.executable``) over IPC sockets (no TCP port,
    hence no "unencrypted TCP" warning); its own stdout/stderr go to a log in its private
    socket folder, so the console shows only the runner's progress lines. On Linux the two
    kernels are forks of one fork server (:mod:`audit_lib.kernel_fork`) that starts first
    thing and imports the libraries once, while the inputs are validated (small exports) or,
    for large ones, in a nice-19 thread meanwhile, so that it takes only CPU the validation and
    preparation leave idle, and the kernels are forked once the inputs are prepared; elsewhere,
    or if the server fails, the kernels start the usual way first thing and import the
    libraries once the inputs are validated (small exports) or prepared (large ones). Each kernel runs
    several notebooks through one connected client, its namespace reset in between; the
    longest notebooks (by the client's previous report) start first, and the scorecard starts
    as soon as the others have saved their findings. A background thread writes the HTML
    pages and hashes the inputs meanwhile.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import html as html_mod
import json
import logging
import os
import platform
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import kernel_fork
from .columns import Register
from .errors import AuditError, ParamsError, RunError

__all__ = ["run", "NOTEBOOK_PATTERN", "notebooks_in", "execution_plan", "previous_seconds", "strip_external",
           "cleanup_stale", "notebook_to_html", "DEFAULT_NOTEBOOKS", "TEMP_PREFIX"]

NOTEBOOK_PATTERN = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")
DEFAULT_NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TEMP_PREFIX = ".run-"
_SOCKET_PREFIX = "kpa-"  # kernel socket folders in the system temp dir: kpa-<runner pid>-<random>
_SLUG_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PERIOD_OK = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]*$")
_VERSIONED = ("pandas", "numpy", "scipy", "statsmodels", "matplotlib", "seaborn", "pyarrow", "duckdb", "pandera",
              "pydantic", "pyyaml", "openpyxl", "papermill", "nbformat", "nbconvert", "nbclient", "ipykernel",
              "jupyter_client")


# ----------------------------------------------------------------------------- small helpers

def notebooks_in(folder: str | Path) -> list[Path]:
    """The report's notebooks: ``NN_name.ipynb`` files of ``folder`` in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"notebook folder {folder} does not exist")
    found = sorted(p for p in folder.iterdir() if p.is_file() and NOTEBOOK_PATTERN.match(p.name))
    if not found:
        raise RunError(f"no notebooks named NN_name.ipynb in {folder}")
    return found


def execution_plan(notebooks: list[Path], seconds: dict[str, float] | None = None) -> list[list[Path]]:
    """Stages to run in order: every notebook but the scorecard first, then the scorecard.

    The scorecard reads the other notebooks' findings, so it waits for all of them (for their
    saved findings, not for their last chart: see :func:`_run_stages`). Within
    the first stage the longest notebooks start first when ``seconds`` (per notebook stem, e.g.
    from the previous run) is given: with two kernels, starting the longest notebook last would
    leave one kernel idle while it finishes. A notebook without a known time counts as longest.
    Results do not depend on the order.
    """
    last = [p for p in notebooks if "scorecard" in p.stem]
    first = [p for p in notebooks if p not in last]
    if seconds:
        first = sorted(first, key=lambda p: -float(seconds.get(p.stem, float("inf"))))
    return [stage for stage in (first, last) if stage]


def previous_seconds(client_dir: str | Path) -> dict[str, float]:
    """Seconds per notebook recorded in the client's most recent published report (any period).

    Used only to order the notebooks (:func:`execution_plan`); empty when there is none or its
    ``run.json`` cannot be read.
    """
    runs = []
    for path in Path(client_dir).glob("*/run.json"):
        if path.parent.name.startswith("."):
            continue
        with contextlib.suppress(OSError):
            runs.append((path.stat().st_mtime, path))
    for _, path in sorted(runs, reverse=True):
        try:
            per = json.loads(path.read_text(encoding="utf-8")).get("timings", {}).get("per_notebook", {})
            return {str(k): float(v) for k, v in per.items() if isinstance(v, (int, float))}
        except (OSError, ValueError, AttributeError):
            continue
    return {}


_EXTERNAL_TAG = re.compile(
    r"<script\b[^>]*\bsrc\s*=[^>]*>.*?</script\s*>"      # <script src=...></script>
    r"|<script\b[^>]*\bsrc\s*=[^>]*/>"                   # <script src=... />
    r"|<link\b[^>]*\bhref\s*=[^>]*>",                    # <link href=...>
    flags=re.IGNORECASE | re.DOTALL)

# No script runs at all: the pages are static (tables, embedded PNGs, inline CSS), so even a
# client string that slipped into an output unescaped cannot execute.
_CSP = ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:; script-src 'none'; font-src data:; "
        "base-uri 'none'; form-action 'none'\">")


def strip_external(page: str) -> str:
    """Remove every ``<script src=…>`` and ``<link href=…>`` tag (CDN MathJax, require.js, fonts).

    A content-security policy that forbids any network load and any script is added to
    ``<head>``, so the page opens offline and makes no request even if a notebook output named a URL.
    """
    page = _EXTERNAL_TAG.sub("", page)
    return re.sub(r"<head([^>]*)>", lambda m: f"<head{m.group(1)}>{_CSP}", page, count=1, flags=re.IGNORECASE)


_export_lock = threading.Lock()
_exporter_instance = None


_NO_ALT_IMG = re.compile(r"<img(?![^>]*\salt=)", re.IGNORECASE)
# the elements nbconvert makes focusable: a cell's (markdown) input and each output area
_FOCUSABLE_DIV = re.compile(r'(<div class="(?:[^"]*\s)?(?:jp-Cell-inputWrapper|jp-OutputArea-output)(?:\s[^"]*)?")'
                            r'(?![^>]*\stabindex=)')
#: the words nbconvert gives a figure that has no description
IMAGE_ALT = "No description has been provided for this image"


def _exporter():
    """One HTML exporter per process: its templates compile once (callers hold ``_export_lock``)."""
    global _exporter_instance
    if _exporter_instance is None:
        from nbconvert import HTMLExporter
        from nbconvert.exporters.templateexporter import TemplateExporter

        class _PageExporter(HTMLExporter):
            """nbconvert's lab HTML without its two costly extras (the demo's six pages: 1.05 -> 0.24 s).

            ``HTMLExporter.from_notebook_node`` parses the finished page with BeautifulSoup only
            to give images without ``alt`` a placeholder description and make cell inputs and
            output areas focusable, then serialises it again: ~0.2 s per report page. The same two
            attributes are added here by pattern (the page is nbconvert's own markup; client
            text in it is escaped, so it holds no raw ``<img`` or ``<div``). Exporter also
            validates the notebook against the schema after each of its 12 preprocessors; the
            notebook comes straight from papermill, which has validated it.
            """

            def _validate_preprocessor(self, nbc, preprocessor):
                return None

            def from_notebook_node(self, nb, resources=None, **kw):
                from nbconvert.filters.highlight import Highlight2HTML
                from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

                lang = nb.metadata.get("language_info", {})
                lexer = lang.get("pygments_lexer", lang.get("name", None))
                resources = self._init_resources(resources)
                self.register_filter("highlight_code", self.filters.get(
                    "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)))
                self.register_filter("filter_data_type", WidgetsDataTypeFilter(
                    notebook_metadata=self._nb_metadata, parent=self, resources=resources))
                page, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
                page = _NO_ALT_IMG.sub(f'<img alt="{IMAGE_ALT}"', page)
                return _FOCUSABLE_DIV.sub(r'\1 tabindex="0"', page), resources

        exporter = _PageExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                                 exclude_output_prompt=True, embed_images=True)
        exporter.log.setLevel(logging.ERROR)
        _exporter_instance = exporter
    return _exporter_instance


def _skip_iri_format_checker() -> None:
    """Keep jsonschema from compiling its optional IRI grammar when nbformat imports it.

    ``jsonschema`` (imported by nbformat, papermill and nbconvert) loads ``rfc3987_syntax`` if it
    is installed (JupyterLab's dependencies install it), and that module builds a Lark parser for
    RFC 3987 at import: about 1.7 s of CPU on the 2-core benchmark machine, while the runner is
    validating the inputs. The notebook schema checks no ``iri`` format, so the runner marks the
    module as unavailable (jsonschema imports it inside ``suppress(ImportError)``). Nothing
    changes in a process where jsonschema is already imported.
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


@contextlib.contextmanager
def _pandera_without_hypothesis():
    """Keep pandera from importing Hypothesis while the runner validates the small tables.

    pandera imports its data-synthesis strategies, and with them Hypothesis, whenever Hypothesis
    is installed (the test dependencies install it): 0.15-0.3 s of the runner's validation,
    measured on the demo. Validation never synthesises data, so for the time of the block
    Hypothesis is marked unavailable (pandera imports it inside ``except ImportError``), and the
    mark is removed afterwards: a later ``import hypothesis`` in the same process works (pandera,
    imported meanwhile, then has no data strategies). Nothing changes in a process where pandera
    or Hypothesis is already imported.
    """
    if "pandera" in sys.modules or "hypothesis" in sys.modules:
        yield
        return
    sys.modules["hypothesis"] = None
    try:
        yield
    finally:
        if "hypothesis" in sys.modules and sys.modules["hypothesis"] is None:
            del sys.modules["hypothesis"]


def _warm_up() -> None:
    """Import nbconvert and compile the HTML templates before the first page is written (and
    load the index step's modules).

    Run in the background thread once the inputs are prepared, not during validation: it is
    about a second of Python that would hold the interpreter lock the validation needs, and no
    page is written before the first notebook finishes.
    """
    with contextlib.suppress(Exception):
        import papermill  # noqa: F401
        from nbformat.v4 import new_code_cell, new_notebook
        notebook_to_html(new_notebook(cells=[new_code_cell("1")]), "warm-up")
    # what the index step needs (openpyxl alone is 0.3 s of imports), loaded while the notebooks
    # run instead of after the last one
    with contextlib.suppress(Exception):
        import openpyxl.styles  # noqa: F401
        import openpyxl.utils  # noqa: F401

        from . import privacy, site  # noqa: F401


def notebook_to_html(nb, title: str = "", back_href: str = "index.html") -> str:
    """Render an executed notebook to self-contained HTML: code hidden, figures embedded, no CDN."""
    with _export_lock:  # the exporter's template environment is not meant to be shared across threads
        body, _ = _exporter().from_notebook_node(nb, resources={"metadata": {"name": title or "report"}})
    if back_href:
        link = (f'<p style="margin:1rem 2rem;font-family:sans-serif"><a href="{html_mod.escape(back_href)}">'
                "&larr; Back to the report summary</a></p>")
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + link, body, count=1)
    return strip_external(body)


def _title_and_summary(nb) -> tuple[str, str]:
    """Title (first markdown heading) and a one-paragraph summary of a notebook, as plain text."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = [ln.strip() for ln in cell.source.splitlines()]
        title = next((ln.lstrip("#").strip() for ln in lines if ln.startswith("#")), "")
        paras = [p.strip() for p in re.split(r"\n\s*\n", cell.source) if p.strip() and not p.strip().startswith("#")]
        summary = re.sub(r"[*_`]", "", paras[0]).replace("\n", " ") if paras else ""
        return title, summary
    return "", ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale(client_dir: str | Path) -> list[Path]:
    """Remove temporary run folders left by killed runs (their process no longer exists)."""
    client_dir = Path(client_dir)
    removed = []
    # kernel socket folders of runners that were killed (named after the runner's pid)
    for p in Path(tempfile.gettempdir()).glob(f"{_SOCKET_PREFIX}*"):
        m = re.match(rf"{_SOCKET_PREFIX}(\d+)-", p.name)
        if m and p.is_dir() and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)
    if not client_dir.is_dir():
        return removed
    for p in client_dir.iterdir():
        if not p.is_dir() or not (p.name.startswith(TEMP_PREFIX) or p.name.startswith(".old-")):
            continue
        m = re.search(r"-(\d+)-[0-9a-f]{8}$", p.name)
        if m and int(m.group(1)) != os.getpid() and _pid_alive(int(m.group(1))):
            continue  # another run of this client is in progress
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def _rmtree(path: Path) -> None:
    for _ in range(5):  # a finishing writer thread may add a file while we delete
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.2)


def _git_revision() -> dict:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return {}
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
        return {"revision": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {}


def _versions() -> dict:
    from importlib import metadata

    from . import __version__
    out = {"python": platform.python_version(), "audit_lib": __version__}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _params_dict(params) -> dict:
    if hasattr(params, "model_dump"):
        try:
            return json.loads(json.dumps(params.model_dump(mode="json"), default=str))
        except (TypeError, ValueError):
            pass
    return {"source": str(getattr(params, "source", ""))}


# ----------------------------------------------------------------------------- kernels

class _Kernels:
    """Live kernel managers, so an interrupt can stop them at once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._kms: list = []
        self.stopping = threading.Event()
        self.fork_server = None   # kernel_fork.ForkServer the kernels are forked from, if any

    def close_fork_server(self) -> None:
        server, self.fork_server = self.fork_server, None
        if server is not None:
            server.close()

    def add(self, km) -> None:
        with self._lock:
            self._kms.append(km)

    def remove(self, km) -> None:
        with self._lock:
            if km in self._kms:
                self._kms.remove(km)

    def kill_all(self) -> None:
        self.stopping.set()
        with self._lock:
            kms = list(self._kms)
        for km in kms:
            pid = getattr(getattr(km, "provisioner", None), "pid", None)
            if pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if getattr(km, "socket_dir", None):
                shutil.rmtree(km.socket_dir, ignore_errors=True)
        server, self.fork_server = self.fork_server, None
        if server is not None:
            server.kill()


def _engine_classes():
    """The papermill engine that runs notebooks in reusable kernels (see :func:`_kernel_manager_class`).

    ``AuditEngine`` accepts a kernel manager (``km``) that may already run a kernel: it then
    executes the notebook in that kernel and leaves it running for the next notebook, after a
    silent ``setup_code`` that resets the namespace, the working folder and the notebook name.
    Reusing two kernels for the whole run saves importing pandas, SciPy, statsmodels and
    matplotlib once per notebook (the bulk of a notebook's time on small data).
    """
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine
    from papermill.utils import merge_kwargs, remove_args

    class AuditClient(PapermillNotebookClient):
        setup_code = ""

        def papermill_execute_cells(self):
            if self.setup_code:
                msg_id = self.kc.execute(self.setup_code, silent=True, store_history=False)
                reply = self.wait_for_reply(msg_id)
                if reply is None or reply["content"].get("status") != "ok":
                    content = (reply or {}).get("content", {})
                    raise RuntimeError(f"kernel setup failed: {content.get('ename', '')}: {content.get('evalue', '')}")
            super().papermill_execute_cells()

    class AuditEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None,
                                     km=None, kc=None, launch=None, setup_code="", **kwargs):
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(kwargs, timeout=execution_timeout, startup_timeout=start_timeout,
                                 kernel_name=kernel_name, log_output=False, km=km)
            client = AuditClient(nb_man, **final)
            client.setup_code = setup_code
            client.log.setLevel(logging.ERROR)
            if kc is not None:  # the kernel's connected client, kept for its next notebook
                client.kc = kc
                kc.allow_stdin = False
            try:
                # launch options (env, log files) only matter when the kernel is not running yet
                return client.execute(**(launch or {}))
            finally:
                if client.kc is not None and client.kc is not kc:
                    client.kc.stop_channels()

    return AuditEngine


_ENGINE = "kpi-audit"
_engine_lock = threading.Lock()
_KM_CLASS = None
_ENGINE_REGISTERED = False


def _kernel_manager_class():
    """Kernel manager for this interpreter over IPC sockets (jupyter_client only, so the kernels
    can start before papermill and nbformat are imported)."""
    global _KM_CLASS
    with _engine_lock:
        if _KM_CLASS is not None:
            return _KM_CLASS
        import uuid

        from ipykernel.kernelspec import RESOURCES, get_kernel_dict
        from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
        from jupyter_client.manager import AsyncKernelManager

        class ThisPythonSpecs(KernelSpecManager):
            """Every kernel name resolves to this interpreter, whatever kernelspecs the machine has."""

            def get_kernel_spec(self, kernel_name, *args, **kwargs):
                return KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())

        class IpcKernelManager(AsyncKernelManager):
            def __init__(self, **kw):
                kw.setdefault("kernel_spec_manager", ThisPythonSpecs())
                super().__init__(**kw)
                self.transport = "ipc"  # local sockets: no TCP port, nothing to eavesdrop on
                # sockets in a private, short folder (a socket path must stay under ~100 characters;
                # the default would drop them into the kernel's working folder)
                self.socket_dir = tempfile.mkdtemp(prefix=f"{_SOCKET_PREFIX}{os.getpid()}-")
                os.chmod(self.socket_dir, 0o700)
                self.ip = os.path.join(self.socket_dir, "k")
                self.fork_server = None   # set: the kernel is forked from it (kernel_fork)

            async def _async_pre_start_kernel(self, **kw):
                if self.provisioner is None and self.fork_server is not None:
                    self.kernel_id = self.kernel_id or kw.pop("kernel_id", None) or str(uuid.uuid4())
                    self.provisioner = kernel_fork.provisioner_class()(
                        kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
                    self.provisioner.fork_server = self.fork_server
                return await super()._async_pre_start_kernel(**kw)

        _KM_CLASS = IpcKernelManager
        return _KM_CLASS


def _register_engine():
    """Register the engine with papermill once; return the kernel manager class."""
    global _ENGINE_REGISTERED
    km_class = _kernel_manager_class()
    from papermill.engines import papermill_engines
    with _engine_lock:
        if not _ENGINE_REGISTERED:
            papermill_engines.register(_ENGINE, _engine_classes())
            _ENGINE_REGISTERED = True
    return km_class


# Run silently in a reused kernel before each notebook: a fresh namespace, matplotlib settings
# as the kernel started with, default pandas options, the notebook's folder and name. One
# %reset (it collects garbage: ~0.15 s); the setup's own names are deleted at the end.
_SETUP = """\
get_ipython().run_line_magic("reset", "-f")
import os as _kpa_os, warnings as _kpa_w
import matplotlib as _kpa_m, matplotlib.pyplot as _kpa_plt, pandas as _kpa_pd
_kpa_plt.close("all")
if not hasattr(_kpa_m, "_kpa_rc"):
    _kpa_m._kpa_rc = {{k: v for k, v in _kpa_m.rcParams.items() if k not in ("backend", "interactive")}}
else:
    # style only: the inline backend turns interactive mode on when it activates, and without it
    # figures made in a later notebook would never be drawn into that notebook's outputs
    _kpa_m.rcParams.update(_kpa_m._kpa_rc)
with _kpa_w.catch_warnings():
    _kpa_w.simplefilter("ignore")
    _kpa_pd.reset_option("all")
# pyplot redraws every open figure after each cell when interactive, then the inline backend
# draws it again for its PNG: the first drawing, a whole rendering per chart, is thrown away.
# The backend is loaded now, so that no later switch puts pyplot's hook back
_kpa_plt.switch_backend(_kpa_m.rcParams["backend"])
_kpa_plt.uninstall_repl_displayhook()
_kpa_os.environ["KPI_AUDIT_NOTEBOOK"] = {stem!r}
_kpa_os.environ["JPY_SESSION_NAME"] = {path!r}
_kpa_os.chdir({folder!r})
get_ipython().run_line_magic("config", "InlineBackend.print_figure_kwargs = {{'bbox_inches': None}}")
get_ipython().execution_count = 1
del _kpa_os, _kpa_w, _kpa_m, _kpa_plt, _kpa_pd
"""


def _kernel_env(first_nb: Path | None = None) -> dict[str, str]:
    """Environment of a kernel (and of the fork server, which imports what the kernels use)."""
    return {**os.environ, "KPI_AUDIT_NOTEBOOK": first_nb.stem if first_nb else "",
            "JPY_SESSION_NAME": str(first_nb) if first_nb else "",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            # two kernels share two cores: one BLAS/OpenMP thread each, not two that contend
            **{k: os.environ.get(k, "1") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}


class _Kernel:
    """One reusable kernel, owned by one worker thread (started on first use)."""

    def __init__(self, number: int, registry: "_Kernels"):
        self.number, self.registry = number, registry
        self.km = None
        self.kc = None      # the client warm() connected: reused by every notebook of this kernel
        self.log = None

    def manager(self, first_nb: Path | None = None):
        if self.km is None:
            self.km = _kernel_manager_class()(kernel_name="python3")
            self.km.fork_server = self.registry.fork_server
            # the kernel's own output, in its private socket folder (removed with the kernel)
            self.log = open(os.path.join(self.km.socket_dir, "kernel.log"), "a", encoding="utf-8")  # noqa: SIM115
            self.registry.add(self.km)
        return self.km, {"env": _kernel_env(first_nb), "stdout": self.log, "stderr": self.log}

    def warm(self, code: str) -> None:
        """Start the kernel if it is not running, then run ``code`` silently (imports; "" = none)."""
        from jupyter_core.utils import run_sync
        km, launch = self.manager()
        if not km.has_kernel:
            if km.fork_server is not None:
                _register_engine()  # papermill loads first: a fork waits for the server's imports
            # like nbclient: no IPython history database (two kernels would share one SQLite file)
            run_sync(km.start_kernel)(extra_arguments=["--HistoryManager.hist_file=:memory:"], **launch)
        if self.kc is None:
            _register_engine()  # papermill loads here while the new kernel starts up
            kc = km.client()
            kc.start_channels()
            try:
                run_sync(kc.wait_for_ready)(timeout=120)
            except BaseException:
                kc.stop_channels()
                raise
            # kept connected: a new client per notebook would wait ~0.25 s in wait_for_ready (its
            # IOPub check and flush time out at 0.2 s each) before the first cell
            self.kc = kc
        kc = self.kc
        if code:
            msg_id = kc.execute(code, silent=True, store_history=False)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                msg = run_sync(kc.get_shell_msg)(timeout=300)
                if msg.get("parent_header", {}).get("msg_id") == msg_id:
                    break

    def client(self):
        """The connected client of this kernel, or None (the notebook client then makes one)."""
        kc = self.kc
        if kc is not None and not kc.channels_running:
            kc, self.kc = None, None
        return kc

    def stop(self) -> None:
        """Shut the kernel down (from the owning thread) and remove its sockets and log handle."""
        kc, self.kc = self.kc, None
        if kc is not None:
            with contextlib.suppress(Exception):
                kc.stop_channels()
        km, self.km = self.km, None
        if km is not None:
            with contextlib.suppress(Exception):
                from jupyter_core.utils import run_sync
                if km.has_kernel:
                    run_sync(km.shutdown_kernel)(now=True)
            self.registry.remove(km)
            shutil.rmtree(km.socket_dir, ignore_errors=True)
        if self.log is not None:
            self.log.close()
            self.log = None


# ----------------------------------------------------------------------------- one notebook

@dataclass
class _Result:
    path: Path
    seconds: float = 0.0
    error: BaseException | None = None
    html: Path | None = None
    executed: Path | None = None
    title: str = ""
    summary: str = ""
    pending: Any = None     # the HTML conversion, running in the converter thread (a Future)


def _cell_number(nb, index: int) -> tuple[int, str]:
    """1-based cell number in the notebook as saved (injected/marker cells not counted), first line."""
    n = 0
    for i, cell in enumerate(nb.cells[: index + 1]):
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            continue
        n += 1
    src = nb.cells[index].source if index < len(nb.cells) else ""
    first = next((ln.strip() for ln in src.splitlines() if ln.strip()), "")
    return n, first


def _execute(nb_path: Path, executed: Path, params_path: Path, work: Path, kernel: _Kernel):
    import papermill as pm
    _register_engine()
    km, launch = kernel.manager(nb_path)
    setup = _SETUP.format(stem=nb_path.stem, path=str(nb_path), folder=str(nb_path.parent))
    # written once at the end (or when a cell fails), not at every cell's start and end: papermill
    # would otherwise serialise and schema-validate the growing notebook twice per cell.
    # No ``cwd``: papermill would chdir the whole runner process, from two threads at once (the
    # runner's folder was then left at random); the setup code moves the kernel to the folder.
    return pm.execute_notebook(
        str(nb_path), str(executed), parameters={"params_path": str(params_path), "run_dir": str(work)},
        engine_name=_ENGINE, progress_bar=False, log_output=False,
        request_save_on_cell_execute=False, km=km, kc=kernel.client(), launch=launch, setup_code=setup)


def _run_one(nb_path: Path, report_dir: Path, params_path: Path, work: Path, kernel: _Kernel,
             converter: concurrent.futures.Executor | None = None) -> _Result:
    """Execute one notebook in ``kernel``; its HTML page is written by ``converter`` (a thread)
    when given, so the kernel can start its next notebook meanwhile, else here."""
    import nbformat
    res = _Result(nb_path)
    t0 = time.perf_counter()
    executed = work / "executed" / nb_path.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    nb = None
    try:
        nb = _execute(nb_path, executed, params_path, work, kernel)
    except BaseException as exc:  # noqa: BLE001 - reported to the main thread
        res.error = exc
        kernel.stop()  # never reuse a kernel whose notebook failed
    res.seconds = time.perf_counter() - t0
    if kernel.registry.stopping.is_set():
        return res
    res.executed = executed if executed.exists() else None
    if res.error is None and res.executed is not None:
        if nb is None:
            nb = nbformat.read(executed, as_version=4)
        res.title, res.summary = _title_and_summary(nb)
        res.html = report_dir / f"{nb_path.stem}.html"
        if converter is None:
            _write_page(nb, res.html, res.title or nb_path.stem, executed, report_dir / nb_path.name)
        else:
            res.pending = converter.submit(_write_page, nb, res.html, res.title or nb_path.stem, executed,
                                           report_dir / nb_path.name)
    return res


def _write_page(nb, html: Path, title: str, executed: Path, copy: Path) -> None:
    """The notebook's report page and a copy of the executed notebook next to it."""
    html.write_text(notebook_to_html(nb, title), encoding="utf-8")
    shutil.copyfile(executed, copy)


def _error_message(res: _Result) -> str:
    import nbformat
    exc = res.error
    name = res.path.name
    cell_index = getattr(exc, "cell_index", None)
    if cell_index is not None and res.executed is not None:
        try:
            nb = nbformat.read(res.executed, as_version=4)
            # papermill inserted an error banner at 0 and an anchor before the failing cell
            src_nb = [c for c in nb.cells if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
            target = next((i for i, c in enumerate(src_nb) if c.source == getattr(exc, "source", None)), None)
            if target is not None:
                nb.cells = src_nb
                number, first = _cell_number(nb, target)
                ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
                return f"notebook {name} failed in cell {number} (`{first}`): {ename}: {evalue}"
        except Exception:  # noqa: BLE001 - fall back to the plain message
            pass
    if hasattr(exc, "ename"):
        first = next((ln.strip() for ln in (getattr(exc, "source", "") or "").splitlines() if ln.strip()), "")
        return f"notebook {name} failed in cell `{first}`: {exc.ename}: {exc.evalue}"
    return f"notebook {name} could not be executed: {type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------- the run

@dataclass
class _Progress:
    quiet: bool
    lines: list = field(default_factory=list)

    def __call__(self, text: str) -> None:
        self.lines.append(text)
        if not self.quiet:
            print(text, flush=True)


class _Interrupted(BaseException):
    """Raised in the main thread by SIGTERM (SIGINT raises KeyboardInterrupt)."""


@contextlib.contextmanager
def _signals():
    """Turn SIGTERM into an exception in the main thread so cleanup runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):
        raise _Interrupted(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _check_target(params) -> tuple[Path, Path]:
    """``(client_dir, report_dir)``, refusing a slug or period that would leave the output folder."""
    report_dir = Path(params.report_dir)
    client_dir = report_dir.parent
    output_root = client_dir.parent
    slug, period = client_dir.name, report_dir.name
    if not _SLUG_OK.match(slug) or slug in (".", "..") or not _PERIOD_OK.match(period):
        raise ParamsError(f"the report folder {report_dir} is not <output_dir>/<slug>/<period> with a safe slug "
                          f"({slug!r}) and period ({period!r}); check `client` and `period` in {params.source}")
    try:
        report_dir.resolve().relative_to(output_root.resolve())
    except ValueError:
        raise ParamsError(f"the report folder {report_dir} lies outside the output folder {output_root}; "
                          f"check `client` and `output_dir` in {params.source}") from None
    return client_dir, report_dir


class _Worker(threading.Thread):
    """Runs notebooks one after another in its own reusable kernel."""

    def __init__(self, number: int, results: "queue.Queue", registry: _Kernels):
        super().__init__(name=f"notebooks-{number}", daemon=True)
        self.inbox: queue.Queue = queue.Queue()
        self.results = results
        self.args: tuple | None = None   # (report_dir, params_path, work, converter), set before any notebook
        self.kernel = _Kernel(number, registry)

    def run(self) -> None:
        try:
            while True:
                nb = self.inbox.get()
                if nb is None:
                    return
                if isinstance(nb, str):  # start-up or warm-up code, queued before any notebook
                    if self.kernel.registry.stopping.is_set():
                        continue
                    try:
                        self.kernel.warm(nb)
                    except Exception:  # noqa: BLE001 - a cold start later is only slower
                        self.kernel.stop()
                    continue
                report_dir, params_path, work, converter = self.args
                self.results.put((self, _run_one(nb, report_dir, params_path, work, self.kernel, converter)))
        finally:
            self.kernel.stop()


# Imported in each kernel while the runner validates and prepares: the modules the report
# notebooks use (missing optional modules are skipped).
_WARM = """\
from audit_lib.kernel_fork import KERNEL_MODULES as _kpa_m, import_all as _kpa_i
_kpa_i(_kpa_m)
del _kpa_m, _kpa_i
"""


#: estimated contacts below which kernels start at once (their ~0.5 GB overlaps the runner's peak)
EARLY_KERNELS_MAX_CONTACTS = 2_000_000


def _small_export(params) -> bool:
    """True when the contacts export is small enough to start the kernels during validation.

    Estimated from the file size (about 100 bytes per contact in CSV/XLSX, 15 in Parquet), since
    the row count is known only after reading it.
    """
    path = getattr(getattr(params.inputs, "contacts", None), "path", None)
    try:
        size = path.stat().st_size
    except (OSError, AttributeError):
        return True
    per_row = 15 if path.suffix.lower() in (".parquet", ".pq") else 100
    return size / per_row < EARLY_KERNELS_MAX_CONTACTS


def _boot_workers(n: int, registry: _Kernels, boot: bool = True):
    """Start ``n`` notebook workers; with ``boot`` each starts its kernel at once (Python and
    IPython only: ~60 MB, and ~0.6 s of CPU that overlaps reading the params). Kernels forked
    from the fork server start at warm-up instead, once the server has the libraries."""
    done: queue.Queue = queue.Queue()
    workers = [_Worker(i + 1, done, registry) for i in range(n)]
    for w in workers:
        if boot:
            w.inbox.put("")
        w.start()
    return workers, done


def _warm_workers(workers, report_dir: Path, params_path: Path, work: Path,
                  converter: concurrent.futures.Executor | None = None) -> None:
    """Give the workers their run folders and have their kernels import the report's libraries."""
    for w in workers:
        w.args = (report_dir, params_path, work, converter)
        w.inbox.put(_WARM)


def _stop_workers(workers, registry: _Kernels) -> None:
    for w in workers:
        w.inbox.put(None)
    if not registry.stopping.is_set():
        for w in workers:
            w.join(timeout=30)


def _run_stages(stages, workers, done: queue.Queue, registry, progress, findings_dir: Path | None = None
                ) -> list[_Result]:
    """Execute the stages in order, one notebook per worker at a time. Stop at the first failure.

    A later stage (the scorecard) needs only the earlier notebooks' findings, not their charts:
    it starts on an idle worker as soon as every earlier notebook has finished or saved
    ``findings_dir/<stem>.json`` (``Audit.save_findings`` writes it whole, by a rename). A
    notebook that saves no findings is waited for until it ends.
    """
    results: list[_Result] = []
    failed = False
    waiting = [list(stage) for stage in stages]            # per stage, not yet handed to a worker
    running: set[Path] = {p for stage in stages for p in stage}   # not finished yet
    idle = list(workers)
    busy = 0

    def may_start(i: int) -> bool:
        return all(p not in running or (findings_dir is not None and (findings_dir / f"{p.stem}.json").exists())
                   for stage in stages[:i] for p in stage)

    try:
        while (any(waiting) and not failed) or busy:
            blocked = False
            for i, pending in enumerate(waiting):
                if not pending:
                    continue
                if not may_start(i):
                    blocked = True
                    break
                while pending and idle and not failed:
                    idle.sort(key=lambda w: w.kernel.km is None)  # a warm kernel first
                    idle.pop(0).inbox.put(pending.pop(0))
                    busy += 1
                if pending:  # no worker left: later stages wait behind this one
                    break
            try:
                # short waits keep signals responsive; shorter while a worker waits for findings
                worker, r = done.get(timeout=0.02 if blocked and idle else 0.2)
            except queue.Empty:
                continue
            busy -= 1
            idle.append(worker)
            running.discard(r.path)
            results.append(r)
            mark = "✓" if r.error is None else "✗"
            progress(f"  {mark} {r.path.stem:<22} {r.seconds:6.1f} s")
            failed = failed or r.error is not None
    except BaseException:
        registry.kill_all()  # interrupted: stop the kernels now, do not wait for their notebooks
        raise
    return results


def run(params_path: str | os.PathLike, *, parallel: bool = True, quiet: bool = False,
        notebooks_dir: str | os.PathLike | None = None) -> Path:
    """Run the whole audit and publish ``reports/<slug>/<period>/``; return that folder.

    Parameters
    ----------
    params_path : the audit's params file.
    parallel : run up to two independent notebooks at once.
    quiet : print nothing (errors are still raised).
    notebooks_dir : folder of ``NN_name.ipynb`` notebooks (default: the project's ``notebooks/``).

    Raises
    ------
    ParamsError, InputDataError
        Invalid params or inputs (nothing is written).
    RunError
        A notebook or step failed; the previous report is untouched and the failing notebook
        is rendered into ``<period>.failed-<timestamp>/``.
    """
    _skip_iri_format_checker()
    progress = _Progress(quiet)
    t_start = time.perf_counter()
    started_at = dt.datetime.now(dt.timezone.utc)
    timings: dict = {}
    params_path = Path(params_path).resolve()
    nb_dir = Path(notebooks_dir).resolve() if notebooks_dir else DEFAULT_NOTEBOOKS
    notebooks = notebooks_in(nb_dir)
    registry = _Kernels()
    # the kernels' fork server (Linux) or the kernels themselves boot first thing: until
    # validation needs both cores, one of them is idle. pydantic, pandas, DuckDB and the
    # lenses' modules are imported while they boot
    registry.fork_server = kernel_fork.ForkServer.start(_kernel_env())
    workers, done = _boot_workers(2 if parallel else 1, registry, boot=registry.fork_server is None)
    try:
        from .demo_header import read_header
        from .params import load_params

        if params_path.is_file():
            demo_inputs = read_header(params_path)
            if demo_inputs is not None and demo_inputs.missing():  # a demo params file regenerates missing inputs
                from . import context
                context._ensure_inputs(params_path)
        params = load_params(params_path)
        client_dir, report_dir = _check_target(params)
    except BaseException:
        registry.kill_all()
        _stop_workers(workers, registry)
        raise
    progress(f"Audit {getattr(params, 'client', '')} · {report_dir.name} → {report_dir}")

    created_client_dir = not client_dir.exists()
    tmp = client_dir / f"{TEMP_PREFIX}{report_dir.name}-{os.getpid()}-{secrets.token_hex(4)}"
    out, work = tmp / "report", tmp / "work"
    published = False
    xlsx = None
    # one background thread writes the notebooks' HTML pages while the kernels go on, and
    # hashes the input files (hashlib releases the GIL: a 1 GB export takes ~0.8 s) meanwhile
    background = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-pages")
    try:
        with _signals(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in ("papermill", "nbclient", "traitlets", "nbconvert"):
                logging.getLogger(name).setLevel(logging.ERROR)
            client_dir.mkdir(parents=True, exist_ok=True)
            cleanup_stale(client_dir)
            out.mkdir(parents=True)
            work.mkdir()
            early = _small_export(params)
            if early:  # the kernels import the libraries while the inputs are validated and prepared
                _warm_workers(workers, out, params_path, work, background)
            elif registry.fork_server is not None:  # large export: the server imports on idle CPU only
                registry.fork_server.preload()
            from . import context, findings as fnd, privacy
            hashes = background.submit(_input_hashes, params)

            t = time.perf_counter()
            with _pandera_without_hypothesis():
                validation = context.validate_inputs(params)
            timings["validate"] = round(time.perf_counter() - t, 3)
            n_warn = len(getattr(validation, "warnings", []) or [])
            progress(f"[1/5] validate   {timings['validate']:6.1f} s  inputs valid"
                     + (f" ({n_warn} warning{'s' if n_warn != 1 else ''})" if n_warn else ""))

            t = time.perf_counter()
            context.ensure_prepared(params, work, report=validation)
            timings["prepare"] = round(time.perf_counter() - t, 3)
            manifest = json.loads((work / "prepared" / context.MANIFEST).read_text(encoding="utf-8"))
            progress(f"[2/5] prepare    {timings['prepare']:6.1f} s  {manifest.get('contacts', 0):,} contacts → "
                     f"{len(manifest.get('tables', {}))} tables")
            register = validation.tables.get("register")
            metric_names = ({} if register is None else
                            dict(zip(register[Register.METRIC_ID].astype(str), register[Register.NAME].astype(str))))
            del validation, register  # the loaded contacts are no longer needed; free them before the notebooks run
            background.submit(_warm_up)
            if not early:  # large export: the kernels start only now, so they do not add to the peak
                _warm_workers(workers, out, params_path, work, background)

            t = time.perf_counter()
            progress(f"[3/5] notebooks  ({len(notebooks)}, {'2 at a time' if parallel else 'one at a time'})")
            results = _run_stages(execution_plan(notebooks, previous_seconds(client_dir)), workers, done, registry,
                                  progress, findings_dir=work / "findings")
            _stop_workers(workers, registry)
            workers = []
            timings["notebooks"] = round(time.perf_counter() - t, 3)
            timings["per_notebook"] = {r.path.stem: round(r.seconds, 3) for r in results}
            failures = [r for r in results if r.error is not None]
            if failures:
                raise RunError(_failure(failures[0], client_dir, report_dir.name, progress))

            t = time.perf_counter()
            for r in results:       # every page written (an error in writing one is raised here)
                if r.pending is not None:
                    r.pending.result()
            sections = [{"title": r.title or r.path.stem, "href": r.html.name, "summary": r.summary}
                        for r in sorted(results, key=lambda r: r.path.name)]
            frames = [fnd.read_json(p) for p in sorted((work / "findings").glob("*.json"))]
            all_findings = fnd.concat(frames)
            inputs = hashes.result()        # long done: before the fork, so no thread is busy
            xlsx = _Aside("findings.xlsx", _write_xlsx, out, all_findings)  # on the other core meanwhile
            fnd.write_json(all_findings, out / "findings.json")
            provenance = _provenance(params, started_at, timings, parallel, nb_dir, inputs)
            comparison = _comparison(params, all_findings, report_dir.name, progress)
            _write_index(out, params, sections, all_findings, provenance, comparison, metric_names)
            xlsx.result()
            if getattr(getattr(params, "privacy", None), "pseudonymise_agents", True):
                import pandas as pd
                agents = pd.read_parquet(work / "prepared" / "agent_signatures.parquet", columns=["agent_id"])
                key = privacy.load_or_create_key(privacy.restricted_dir(client_dir))
                privacy.write_mapping(agents["agent_id"], key,
                                      privacy.restricted_dir(client_dir) / f"{report_dir.name}-agents.csv")
            timings["index"] = round(time.perf_counter() - t, 3)
            timings["total"] = round(time.perf_counter() - t_start, 3)
            provenance["timings"] = timings
            (out / "run.json").write_text(json.dumps(provenance, indent=1, sort_keys=True, ensure_ascii=False,
                                                     default=str) + "\n", encoding="utf-8")
            progress(f"[4/5] index      {timings['index']:6.1f} s  {len(all_findings)} findings, "
                     f"{int(all_findings['severity'].isin(fnd.FLAGGED).sum())} flagged")
            _publish(out, report_dir)
            published = True
            progress(f"[5/5] published  {time.perf_counter() - t_start:6.1f} s  {report_dir / 'index.html'}")
    except (KeyboardInterrupt, _Interrupted):
        registry.kill_all()
        raise KeyboardInterrupt("interrupted: nothing was published") from None
    except AuditError:
        registry.kill_all()
        raise
    except Exception as exc:
        registry.kill_all()
        raise RunError(f"the audit run failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if xlsx is not None:
            xlsx.cancel()
        if workers:
            _stop_workers(workers, registry)
        registry.close_fork_server()
        # a page being written (at most one) finishes before its folder is removed
        background.shutdown(wait=True, cancel_futures=True)
        _rmtree(tmp)
        if created_client_dir and not published:
            with contextlib.suppress(OSError):
                client_dir.rmdir()  # only when empty: a run that stopped early leaves no trace
    if not published:  # pragma: no cover - every path above either publishes or raises
        raise RunError(f"the run ended without publishing {report_dir}")
    return report_dir


def _failure(res: _Result, client_dir: Path, period: str, progress) -> str:
    """Render the failed notebook into ``<period>.failed-<timestamp>/`` and build the message."""
    import nbformat
    message = _error_message(res)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    failed_dir = client_dir / f"{period}.failed-{stamp}"
    staging = client_dir / f"{TEMP_PREFIX}failed-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    try:
        if res.executed is not None and res.executed.exists():
            nb = nbformat.read(res.executed, as_version=4)
            (staging / f"{res.path.stem}.html").write_text(notebook_to_html(nb, res.path.stem, back_href=""),
                                                           encoding="utf-8")
            shutil.copyfile(res.executed, staging / res.path.name)
        (staging / "error.txt").write_text(message + "\n", encoding="utf-8")
        os.rename(staging, failed_dir)
    finally:
        _rmtree(staging)
    progress(f"Run failed: {message}")
    progress(f"The failing notebook is rendered in {failed_dir}; the previous report is unchanged.")
    return f"{message}. Rendered for diagnosis in {failed_dir}; the previous report was not changed."


def _input_hashes(params) -> dict:
    """``{input name: {path, sha256, bytes}}`` of every input file."""
    from . import context
    return {name: {"path": str(path), "sha256": context.sha256_file(path), "bytes": path.stat().st_size}
            for name, path in sorted(context.input_files(params).items())}


def _provenance(params, started_at, timings, parallel, nb_dir: Path, inputs: dict) -> dict:
    """run.json's content; ``inputs`` is :func:`_input_hashes` (computed in the background)."""
    from . import context
    return {
        "client": getattr(params, "client", ""), "period": str(getattr(params, "period", "")),
        "params_file": {"path": str(params.source), "sha256": context.sha256_file(params.source)},
        "params": _params_dict(params), "inputs": inputs, "versions": _versions(), "git": _git_revision(),
        "notebooks": str(nb_dir), "parallel": parallel, "started_at": started_at.isoformat(timespec="seconds"),
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _comparison(params, all_findings, period, progress) -> dict | None:
    previous = getattr(params, "previous", None)
    if not previous:
        return None
    try:
        from .scorecard import compare_with_previous
    except ImportError:
        return None
    return compare_with_previous(all_findings, previous, current_period=period)


def _write_index(out: Path, params, sections, all_findings, provenance, comparison, metric_names) -> None:
    meta = {"client": getattr(params, "client", ""), "period": str(getattr(params, "period", "")),
            "generated_at": provenance["generated_at"], "metric_names": metric_names,
            "provenance": {"params file": provenance["params_file"]["path"],
                           **{f"{k} sha256": v["sha256"] for k, v in provenance["inputs"].items()},
                           "audit_lib": provenance["versions"].get("audit_lib", ""),
                           "git revision": provenance["git"].get("revision", "not available")}}
    from . import site
    page = site.render_index(meta, sections, all_findings, comparison=comparison)
    (out / "index.html").write_text(page, encoding="utf-8")


def _write_xlsx(out: Path, all_findings) -> None:
    from . import site
    site.write_findings_xlsx(all_findings, None, None, out / "findings.xlsx")


class _Aside:
    """``fn(*args)`` in a forked child process (Linux), so that it runs on the other core while
    the runner goes on; :meth:`result` waits for it and raises ``RunError`` ("writing
    ``what`` failed: <error>"). Where forking is not available or is turned off
    (``KPI_AUDIT_FORK_KERNELS=0``, as for the kernels), ``fn`` runs at once, here.

    For the index step's ``findings.xlsx`` (openpyxl, pure Python, 0.4-0.6 s on the demo's
    1,100 findings): a thread would hold the same interpreter lock as ``index.html``'s writing.
    The child inherits the findings table, writes only its own file, and ends with
    ``os._exit``; by the index step the kernels are stopped, every page is written and the
    input hashes are done, so no other thread holds anything the child could need.
    """

    def __init__(self, what: str, fn, *args):
        self.what = what
        self.pid: int | None = None
        self._error: BaseException | None = None
        if not (kernel_fork.enabled() and hasattr(os, "fork")):
            self._run_here(fn, args)
            return
        read, write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read)
            os.close(write)
            self._run_here(fn, args)
            return
        if pid == 0:                                   # the child: no return from here
            code = 1
            try:
                os.close(read)
                signal.signal(signal.SIGINT, signal.SIG_IGN)      # Ctrl-C is the runner's to handle
                fn(*args)
                code = 0
            except BaseException as exc:  # noqa: BLE001 - reported to the runner through the pipe
                with contextlib.suppress(Exception):
                    os.write(write, f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:4000])
            finally:
                os._exit(code)
        os.close(write)
        self.pid, self._read = pid, read

    def _run_here(self, fn, args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - raised by result(), where the caller expects it
            self._error = exc

    def result(self) -> None:
        if self.pid is None:
            if self._error is not None:
                raise RunError(f"writing {self.what} failed: {type(self._error).__name__}: {self._error}"
                               ) from self._error
            return
        chunks = []
        while chunk := os.read(self._read, 4096):        # until the child's end of the pipe closes
            chunks.append(chunk)
        os.close(self._read)
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        if os.waitstatus_to_exitcode(status) != 0:
            message = b"".join(chunks).decode("utf-8", "replace") or f"exit status {status}"
            raise RunError(f"writing {self.what} failed: {message}")

    def cancel(self) -> None:
        """Stop a child that is still running (the run failed or was interrupted)."""
        if self.pid is None:
            return
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.waitpid(self.pid, 0)
        with contextlib.suppress(OSError):
            os.close(self._read)
        self.pid = None


def _publish(new: Path, final: Path) -> None:
    """Move ``new`` to ``final``; an existing report is swapped out by rename, then deleted."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}-{secrets.token_hex(4)}")
        os.rename(final, old)
    try:
        os.rename(new, final)
    except OSError:
        if old is not None:
            os.rename(old, final)
        raise
    if old is not None:
        _rmtree(old)
