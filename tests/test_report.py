"""``kpi-audit run`` end to end: files, offline HTML, privacy, determinism, failure and kill safety.

The full run uses the project's notebooks on a freshly generated demo client. Failure, kill and
slug tests use a small notebook folder (the overview plus a planted failing or slow notebook) so
they stay fast.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from audit_lib import demo, report
from audit_lib.errors import ParamsError, RunError
from audit_lib.params import load_params

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXTERNAL = re.compile(r"<script\b[^>]*\bsrc\s*=|<link\b[^>]*\bhref\s*=", re.IGNORECASE)
RAW_AGENT = re.compile(r"\bAG\d{3}\b")


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _notebook(cells: list[str], title: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_markdown_cell(f"# {title}")])
    nb.cells.append(new_code_cell('params_path: str = "../params/demo.yaml"  # the audit\'s params file\n'
                                  'run_dir: str = ""  # run folder', metadata={"tags": ["parameters"]}))
    nb.cells.extend(new_code_cell(src) for src in cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _small_notebooks(folder: Path, extra: dict[str, list[str]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(NOTEBOOKS / "00_overview.ipynb", folder / "00_overview.ipynb")
    for name, cells in (extra or {}).items():
        nbformat.write(_notebook(cells, name), folder / f"{name}.ipynb")
    return folder


OPEN = "from audit_lib.context import open_audit\naudit = open_audit(params_path, run_dir)"


@pytest.fixture(scope="module")
def demo_client(tmp_path_factory) -> Path:
    return demo.generate(tmp_path_factory.mktemp("report_demo"))


@pytest.fixture(scope="module")
def published(demo_client) -> Path:
    before = os.getcwd()
    out = report.run(demo_client, quiet=True)
    # two notebooks run at once from two threads: nothing may move the runner's working folder
    assert os.getcwd() == before
    return out


def _fake_previous(params_path: Path) -> tuple[Path, dict]:
    """A previous report in place (any content): it must survive failed or killed runs byte for byte."""
    target = Path(load_params(params_path).report_dir)
    target.mkdir(parents=True, exist_ok=True)
    (target / "index.html").write_text("<p>previous report</p>", encoding="utf-8")
    (target / "findings.json").write_text("[]\n", encoding="utf-8")
    return target, _tree_bytes(target)


def test_run_publishes_every_expected_file(published, demo_client):
    names = {p.name for p in published.iterdir()}
    assert {"index.html", "findings.json", "findings.xlsx", "run.json"} <= names
    for nb in report.notebooks_in(NOTEBOOKS):
        assert f"{nb.stem}.html" in names and nb.name in names
    # nothing private or temporary in the shareable folder, nothing half-written beside it
    assert not {"prepared", "work", "findings", "inputs"} & names
    client_dir = published.parent
    assert not [p for p in client_dir.iterdir() if p.name.startswith((report.TEMP_PREFIX, ".old-"))]
    restricted = client_dir / ".restricted"
    assert (restricted / "pseudonym.key").exists()
    agents = (restricted / f"{published.name}-agents.csv").read_text().splitlines()
    assert agents[0] == "agent_id,pseudonym" and len(agents) == 61


def test_html_opens_offline(published):
    pages = sorted(published.glob("*.html"))
    assert len(pages) >= 2
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not EXTERNAL.search(text), f"{page.name} loads an external script or stylesheet"
    overview = (published / "00_overview.html").read_text(encoding="utf-8")
    assert "Content-Security-Policy" in overview
    assert "data:image/png;base64" in overview  # figures embedded
    assert "open_audit" not in overview          # code hidden


def test_report_tables_are_the_reports_own(published):
    # a bare DataFrame output shows pandas' table: an index column and text cut at 50 characters
    for page in sorted(published.glob("*.html")):
        text = page.read_text(encoding="utf-8")
        assert 'class="dataframe"' not in text, f"{page.name}: show tables with site.show / site.table_html"


def _same_tree(page: str) -> str:
    from bs4 import BeautifulSoup
    return str(BeautifulSoup(page, features="html.parser"))


def test_pages_are_nbconvert_lab_pages(published):
    """Reference: nbconvert's own HTMLExporter (same options). The runner's exporter skips its
    BeautifulSoup pass, so the text differs in serialisation only: parsed, the trees are equal
    (same alt texts on figures, same focusable cells)."""
    from nbconvert import HTMLExporter
    ref = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                       exclude_output_prompt=True, embed_images=True)
    for nb_path in sorted(published.glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        ours, _ = report._exporter().from_notebook_node(nb, resources={"metadata": {"name": nb_path.stem}})
        theirs, _ = ref.from_notebook_node(nb, resources={"metadata": {"name": nb_path.stem}})
        assert _same_tree(ours) == _same_tree(theirs), nb_path.name
    page = (published / "02_behaviour.html").read_text(encoding="utf-8")
    assert page.count("<img") == page.count(f'alt="{report.IMAGE_ALT}"') > 0


def test_page_exporter_matches_nbconvert_on_hand_made_outputs():
    """Figures with and without a description, escaped look-alike text, markdown: same tree as nbconvert."""
    from nbconvert import HTMLExporter
    from nbformat.v4 import new_output
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    nb = new_notebook(cells=[new_markdown_cell("# Title\n\ntext with `<img src=x>` and <b>bold</b>"),
                             new_code_cell("x", outputs=[
                                 new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
                                 new_output("display_data", data={"text/html": '<img alt="given" src="data:,">'}),
                                 new_output("stream", name="stdout", text='<div class="jp-OutputArea-output"> <img\n'),
                             ])])
    ref = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                       exclude_output_prompt=True, embed_images=True)
    ours, _ = report._exporter().from_notebook_node(nb, resources={"metadata": {"name": "t"}})
    theirs, _ = ref.from_notebook_node(nb, resources={"metadata": {"name": "t"}})
    assert _same_tree(ours) == _same_tree(theirs)
    assert ours.count(f'alt="{report.IMAGE_ALT}"') == 1 and 'alt="given"' in ours


def test_front_page_names_metrics_as_the_register_does(published, demo_client):
    import html
    import pandas as pd
    register = pd.read_csv(Path(load_params(demo_client).inputs.register.path), dtype=str)
    page = html.unescape((published / "index.html").read_text(encoding="utf-8"))
    assert all(name in page for name in register["name"])
    assert "Average handle time" in page


def test_every_chart_cell_shows_its_figure(published):
    """Notebooks share two reused kernels: a chart in the third notebook must appear as surely as in the first."""
    missing = {}
    for nb_path in report.notebooks_in(NOTEBOOKS):
        nb = nbformat.read(published / nb_path.name, as_version=4)
        charts = [c for c in nb.cells if c.cell_type == "code" and re.search(r"\bplots_\w+\.(?!show_table\b|plain\b)\w+\(|_figure\(", c.source)]
        blank = [c.source.splitlines()[-1][:60] for c in charts
                 if not any("image/png" in o.get("data", {}) for o in c.outputs)]
        if blank:
            missing[nb_path.name] = blank
    assert not missing, f"chart cells without a figure: {missing}"


def test_no_raw_agent_ids_in_shareable_files(published):
    for path in published.iterdir():
        if path.suffix in (".html", ".json", ".ipynb"):
            found = RAW_AGENT.findall(path.read_text(encoding="utf-8"))
            assert not found, f"{path.name} shows raw agent ids {sorted(set(found))[:5]}"


def test_run_json_has_provenance(published, demo_client):
    meta = json.loads((published / "run.json").read_text(encoding="utf-8"))
    params = load_params(demo_client)
    contacts = Path(params.inputs.contacts.path)
    assert meta["inputs"]["contacts"]["sha256"] == hashlib.sha256(contacts.read_bytes()).hexdigest()
    assert set(meta["inputs"]) == {"register", "contacts", "survey", "outcomes"}
    assert {"pandas", "duckdb", "papermill", "python"} <= set(meta["versions"])
    t = meta["timings"]
    assert {"validate", "prepare", "notebooks", "total"} <= set(t)
    assert set(t["per_notebook"]) == {p.stem for p in report.notebooks_in(NOTEBOOKS)}
    assert meta["period"] == "2026-Q3"


def test_findings_json_is_byte_identical_across_runs(published, demo_client, monkeypatch):
    first = (published / "findings.json").read_bytes()
    # the second run takes the large-export path (the fork server imports in a low-priority
    # thread during validation, the kernels start after preparation): the same findings
    monkeypatch.setattr(report, "EARLY_KERNELS_MAX_CONTACTS", 0)
    again = report.run(demo_client, quiet=True)
    assert again == published
    assert (again / "findings.json").read_bytes() == first
    rows = json.loads(first)
    assert {r["lens"] for r in rows} >= {"overview"}
    assert not [p for p in again.parent.iterdir() if p.name.startswith((report.TEMP_PREFIX, ".old-"))]


def test_failing_notebook_keeps_previous_report(tmp_path):
    params = demo.generate(tmp_path / "client")
    nbs = _small_notebooks(tmp_path / "nbs", {"01_fail": [OPEN, "x = 1\nraise ValueError('planted failure')"]})
    previous, snapshot = _fake_previous(params)
    with pytest.raises(RunError) as info:
        report.run(params, notebooks_dir=nbs, quiet=True)
    msg = str(info.value)
    assert "01_fail.ipynb" in msg and "cell 4" in msg and "x = 1" in msg
    assert "ValueError: planted failure" in msg
    assert _tree_bytes(previous) == snapshot
    failed = sorted(previous.parent.glob(f"{previous.name}.failed-*"))
    assert len(failed) == 1
    page = (failed[0] / "01_fail.html").read_text(encoding="utf-8")
    assert "planted failure" in page and not EXTERNAL.search(page)
    assert not [p for p in previous.parent.iterdir() if p.name.startswith(report.TEMP_PREFIX)]


def _start_run(params: Path, nbs: Path) -> subprocess.Popen:
    code = ("import sys; from audit_lib import report; "
            "report.run(sys.argv[1], notebooks_dir=sys.argv[2], quiet=True)")
    return subprocess.Popen([sys.executable, "-c", code, str(params), str(nbs)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# the slow cell marks that it started (notebooks run with their own folder as working folder)
SLOW = "import time\nopen('01_slow.started', 'w').close()\ntime.sleep(120)"


def _wait_for_slow_notebook(client_dir: Path, nbs: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (nbs / "01_slow.started").exists() and list(client_dir.glob(f"{report.TEMP_PREFIX}*")):
            time.sleep(0.5)  # the run is inside the slow cell
            return
        time.sleep(0.2)
    raise AssertionError("the run never reached the slow notebook")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_run_leaves_nothing_half_written(tmp_path, sig):
    params = demo.generate(tmp_path / "client")
    nbs = _small_notebooks(tmp_path / "nbs", {"01_slow": [OPEN, SLOW]})
    previous, snapshot = _fake_previous(params)
    proc = _start_run(params, nbs)
    try:
        _wait_for_slow_notebook(previous.parent, nbs)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    leftovers = [p.name for p in previous.parent.iterdir() if p.name.startswith((report.TEMP_PREFIX, ".old-"))]
    assert leftovers == []
    assert _tree_bytes(previous) == snapshot


def test_killed_run_leaves_only_a_hidden_folder_that_the_next_run_removes(tmp_path):
    params = demo.generate(tmp_path / "client")
    nbs = _small_notebooks(tmp_path / "nbs", {"01_slow": [OPEN, SLOW]})
    previous, snapshot = _fake_previous(params)
    proc = _start_run(params, nbs)
    try:
        _wait_for_slow_notebook(previous.parent, nbs)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = [p for p in previous.parent.iterdir() if p.name.startswith(report.TEMP_PREFIX)]
    assert left and all(p.name.startswith(".") for p in left)
    assert _tree_bytes(previous) == snapshot
    assert report.cleanup_stale(previous.parent) == left
    assert not [p for p in previous.parent.iterdir() if p.name.startswith(report.TEMP_PREFIX)]


def test_client_slug_cannot_leave_the_reports_folder(tmp_path):
    params = demo.generate(tmp_path / "client")
    text = params.read_text(encoding="utf-8")
    params.write_text(re.sub(r"(?m)^client: .*$", "client: ../../x", text), encoding="utf-8")
    p = load_params(params)
    out = report.run(params, notebooks_dir=_small_notebooks(tmp_path / "nbs"), quiet=True)
    out.resolve().relative_to(p.output_path.resolve())  # raises when outside
    assert out.parent.name == "x" and (out / "index.html").exists()
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


def test_unsafe_report_target_is_refused(tmp_path):
    class Fake:
        report_dir = tmp_path / "reports" / ".." / "2026-Q3"
        source = tmp_path / "p.yaml"
    with pytest.raises(ParamsError, match="safe slug"):
        report._check_target(Fake())


def test_strip_external_removes_cdn_tags():
    page = ('<html><head><script src="https://cdn.example/require.js"></script>'
            '<link rel="stylesheet" href="https://cdn.example/x.css">'
            '<script type="text/x-mathjax-config">MathJax.Hub.Config({});</script>'
            '<SCRIPT SRC="//cdn.example/MathJax.js?config=TeX"></SCRIPT></head><body>ok</body></html>')
    out = report.strip_external(page)
    assert not EXTERNAL.search(out) and "ok" in out and "Content-Security-Policy" in out
    assert "script-src 'none'" in out  # no script may run in a report page


def test_scorecard_runs_last():
    paths = [Path(n) for n in ("00_overview.ipynb", "01_register.ipynb", "05_scorecard.ipynb", "02_behaviour.ipynb")]
    stages = report.execution_plan(paths)
    assert [p.name for p in stages[-1]] == ["05_scorecard.ipynb"]
    assert Path("05_scorecard.ipynb") not in stages[0]


def test_longest_notebooks_start_first_when_the_last_run_timed_them(tmp_path):
    paths = [Path(n) for n in ("00_overview.ipynb", "01_register.ipynb", "04_linkage.ipynb", "05_scorecard.ipynb",
                               "09_new.ipynb")]
    assert report.execution_plan(paths)[0] == paths[:3] + paths[4:]          # no history: file order
    seconds = {"00_overview": 1.5, "01_register": 4.0, "04_linkage": 9.0, "05_scorecard": 2.0}
    first, last = report.execution_plan(paths, seconds)
    # a notebook the last run did not have counts as longest; the scorecard still runs last
    assert [p.stem for p in first] == ["09_new", "04_linkage", "01_register", "00_overview"]
    assert [p.stem for p in last] == ["05_scorecard"]


def test_previous_seconds_reads_the_newest_published_run(tmp_path):
    client = tmp_path / "client"
    for name, per, age in (("2026-Q2", {"04_linkage": 3.0}, 100), ("2026-Q3", {"04_linkage": 7.5}, 0),
                           (".report-tmp", {"04_linkage": 99.0}, -100)):
        (client / name).mkdir(parents=True)
        run = client / name / "run.json"
        run.write_text(json.dumps({"timings": {"per_notebook": per}}), encoding="utf-8")
        os.utime(run, (time.time() - age, time.time() - age))
    assert report.previous_seconds(client) == {"04_linkage": 7.5}
    (client / "2026-Q3" / "run.json").write_text("{not json", encoding="utf-8")
    assert report.previous_seconds(client) == {"04_linkage": 3.0}     # unreadable: the next newest
    assert report.previous_seconds(tmp_path / "nobody") == {}


def test_console_shows_progress_but_no_kernel_warnings(tmp_path):
    params = demo.generate(tmp_path / "client")
    nbs = _small_notebooks(tmp_path / "nbs")
    proc = subprocess.run([sys.executable, "-c", "import sys; from audit_lib import report; "
                           "report.run(sys.argv[1], notebooks_dir=sys.argv[2])", str(params), str(nbs)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "[1/5] validate" in proc.stdout and "00_overview" in proc.stdout and "[5/5] published" in proc.stdout
    assert proc.stderr.strip() == "", proc.stderr
    assert "without encryption" not in proc.stdout + proc.stderr


def test_invalid_input_stops_before_anything_is_written(tmp_path):
    from audit_lib.errors import InputDataError
    params = demo.generate(tmp_path / "client")
    contacts = params.parent / "contacts.csv"
    lines = contacts.read_text(encoding="utf-8").splitlines()
    lines[0] = lines[0].replace("Agent", "Agnt")  # the required agent column is gone
    contacts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="contacts.csv"):
        report.run(params, notebooks_dir=_small_notebooks(tmp_path / "nbs"), quiet=True)
    assert not Path(load_params(params).report_dir).parent.exists()



class _FakeWorker:
    """Stands in for a notebook worker: each notebook is a script of ("save", seconds) and
    ("work", seconds) steps; "save" writes the notebook's findings file, as save_findings does."""

    def __init__(self, done, findings_dir: Path, scripts: dict, log: list):
        import queue
        import threading
        self.inbox, self.done, self.dir, self.scripts, self.log = queue.Queue(), done, findings_dir, scripts, log
        self.kernel = type("K", (), {"km": object()})()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while (nb := self.inbox.get()) is not None:
            self.log.append(("start", nb.stem, time.perf_counter()))
            for step, seconds in self.scripts[nb.stem]:
                time.sleep(seconds)
                if step == "save":
                    self.log.append(("save", nb.stem, time.perf_counter()))
                    (self.dir / f"{nb.stem}.json").write_text("[]\n")
            self.log.append(("end", nb.stem, time.perf_counter()))
            self.done.put((self, report._Result(path=nb, seconds=0.0)))


def _schedule(tmp_path, scripts: dict) -> dict:
    import queue
    findings_dir = tmp_path / "findings"
    findings_dir.mkdir()
    done, log = queue.Queue(), []
    workers = [_FakeWorker(done, findings_dir, scripts, log) for _ in range(2)]
    registry = type("R", (), {"kill_all": lambda self: None})()
    paths = [Path(f"{stem}.ipynb") for stem in scripts]
    results = report._run_stages(report.execution_plan(paths), workers, done, registry, lambda _: None,
                                 findings_dir=findings_dir)
    for w in workers:
        w.inbox.put(None)
    assert sorted(r.path.stem for r in results) == sorted(scripts)
    return {(kind, stem): t for kind, stem, t in log}


def test_scorecard_starts_once_every_section_has_saved_its_findings(tmp_path):
    # 01 saves at once, then draws for a long time; 00 ends early: the idle worker takes the
    # scorecard while 01 is still drawing
    t = _schedule(tmp_path, {"00_overview": [("save", 0.0), ("work", 0.1)],
                             "01_register": [("save", 0.05), ("work", 1.5)],
                             "05_scorecard": [("work", 0.05)]})
    assert t[("start", "05_scorecard")] < t[("end", "01_register")] - 0.8
    assert t[("start", "05_scorecard")] >= t[("start", "01_register")] + 0.05


def test_scorecard_waits_for_a_section_that_saves_late_or_never(tmp_path):
    # 01 saves only at its end, 02 saves nothing: the scorecard starts after both have ended
    t = _schedule(tmp_path, {"00_overview": [("save", 0.0)],
                             "01_register": [("work", 0.6), ("save", 0.0)],
                             "02_behaviour": [("work", 0.3)],
                             "05_scorecard": [("work", 0.01)]})
    assert t[("start", "05_scorecard")] >= max(t[("save", "01_register")], t[("end", "02_behaviour")])
    assert t[("start", "05_scorecard")] > t[("start", "01_register")] + 0.6


def test_runner_validates_without_importing_hypothesis(demo_params):
    # a fresh process, as `kpi-audit run` is: pandera checks the small tables as before,
    # Hypothesis (installed with the test dependencies) is not imported meanwhile, and it can be
    # imported afterwards (pytest's Hypothesis plugin does so at the end of a session)
    code = ("import sys\nfrom audit_lib import report, context, params\n"
            "with report._pandera_without_hypothesis():\n"
            "    v = context.validate_inputs(params.load_params(sys.argv[1]))\n"
            "    during = sys.modules.get('hypothesis', 'absent')\n"
            "after = sys.modules.get('hypothesis', 'absent')\n"
            "import hypothesis.internal\n"
            "print(v.ok, during, after, 'pandera' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(demo_params)], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.split()
    assert out == ["True", "None", "absent", "True"]
    # a process that already has pandera keeps whatever it had
    code = ("import sys, pandera.pandas\nfrom audit_lib import report\nwith report._pandera_without_hypothesis():\n"
            "    print(sys.modules.get('hypothesis', 'absent') is not None)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          check=True).stdout.strip() == "True"


# ---------------------------------------------------------------------------------------------
# findings.xlsx is written by a forked child while the runner writes the rest of the index step
# ---------------------------------------------------------------------------------------------

def _write_marker(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _fail(message: str) -> None:
    raise ValueError(message)


def _sleep_then_write(path: Path) -> None:
    time.sleep(60)
    path.write_text("too late", encoding="utf-8")


@pytest.mark.parametrize("fork", ["1", "0"])
def test_aside_runs_the_function_and_reports_its_error(tmp_path, monkeypatch, fork):
    """Forked (Linux) or in this process (KPI_AUDIT_FORK_KERNELS=0, other systems): the file is
    written, and a failure comes back as a RunError naming the error, not as a traceback."""
    monkeypatch.setenv("KPI_AUDIT_FORK_KERNELS", fork)
    done = report._Aside("out.txt", _write_marker, tmp_path / "out.txt", "written")
    assert (done.pid is not None) == (fork == "1")
    done.result()
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "written"
    failed = report._Aside("out.txt", _fail, "disk full (planted)")
    with pytest.raises(RunError, match=r"writing out.txt failed: ValueError: disk full \(planted\)"):
        failed.result()


def test_aside_cancel_stops_a_child_that_is_still_working(tmp_path, monkeypatch):
    monkeypatch.setenv("KPI_AUDIT_FORK_KERNELS", "1")
    aside = report._Aside("late.txt", _sleep_then_write, tmp_path / "late.txt")
    pid = aside.pid
    t = time.monotonic()
    aside.cancel()
    assert time.monotonic() - t < 5
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)                                 # gone, and reaped (no zombie left)
    assert not (tmp_path / "late.txt").exists()
    aside.cancel()                                      # a second cancel is harmless


def test_workbook_written_aside_equals_the_one_written_in_process(published, tmp_path, monkeypatch):
    from openpyxl import load_workbook

    from audit_lib import findings as fnd
    monkeypatch.setenv("KPI_AUDIT_FORK_KERNELS", "0")
    report._write_xlsx(tmp_path, fnd.read_json(published / "findings.json"))
    ours, reference = load_workbook(published / "findings.xlsx"), load_workbook(tmp_path / "findings.xlsx")
    assert ours.sheetnames == reference.sheetnames
    for a, b in zip(ours.worksheets, reference.worksheets):
        assert [[c.value for c in row] for row in a.iter_rows()] == [[c.value for c in row] for row in b.iter_rows()]


def test_a_failed_workbook_fails_the_run_and_keeps_the_previous_report(tmp_path, monkeypatch):
    params = demo.generate(tmp_path / "client")
    nbs = _small_notebooks(tmp_path / "nbs", {"01_ok": [OPEN, "x = 1"]})
    previous, snapshot = _fake_previous(params)

    def broken(out, all_findings):
        raise OSError(28, "No space left on device (planted)")
    monkeypatch.setattr(report, "_write_xlsx", broken)
    with pytest.raises(RunError, match="writing findings.xlsx failed: OSError.*No space left on device"):
        report.run(params, notebooks_dir=nbs, quiet=True)
    assert _tree_bytes(previous) == snapshot
    assert not [p for p in previous.parent.iterdir() if p.name.startswith(report.TEMP_PREFIX)]
