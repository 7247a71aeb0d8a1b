"""Kernels forked from the runner's fork server (``audit_lib.kernel_fork``): they run code, take
their own environment, exit with the server, and a failed server falls back to a normal launch."""
from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from audit_lib import kernel_fork, report

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kernels are forked on Linux only")]

PROBE = """\
import json as _j, os as _o, sys as _s
_j.dump({{"pid": _o.getpid(), "ppid": _o.getppid(), "sid": _o.getsid(0), "notebook": _o.environ.get("KPI_AUDIT_NOTEBOOK"),
         "preloaded": "pandas" in _s.modules and "audit_lib.linkage" in _s.modules}}, open({path!r}, "w"))
"""


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def registry():
    reg = report._Kernels()
    reg.fork_server = kernel_fork.ForkServer.start(report._kernel_env())
    assert reg.fork_server is not None
    yield reg
    reg.kill_all()


def _probe(kernel, tmp_path, name="probe.json") -> dict:
    path = tmp_path / name
    kernel.warm(PROBE.format(path=str(path)))
    return json.loads(path.read_text())


def test_forked_kernels_run_code_in_their_own_session_and_environment(registry, tmp_path):
    server = registry.fork_server
    first, second = report._Kernel(1, registry), report._Kernel(2, registry)
    try:
        a, b = _probe(first, tmp_path, "a.json"), _probe(second, tmp_path, "b.json")
        assert first.km.provisioner.forked and second.km.provisioner.forked
        assert a["ppid"] == b["ppid"] == server.pid and a["pid"] != b["pid"]
        assert a["sid"] == a["pid"] and b["sid"] == b["pid"]        # session leaders, like a normal launch
        assert a["preloaded"] and b["preloaded"]                    # the libraries came with the fork
        assert a["notebook"] == ""                                   # the kernel's own environment, not the server's
        pid = a["pid"]
    finally:
        first.stop()
        second.stop()
    assert _gone(pid)


def _thread_nices(pid: int) -> list[int]:
    """Niceness of each thread of ``pid`` (field 19 of /proc/<pid>/task/<tid>/stat)."""
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{task}/stat").read()
        except OSError:
            continue
        out.append(int(stat.rsplit(")", 1)[1].split()[16]))
    return out


def test_preload_imports_at_low_priority_and_kernels_keep_normal_priority(registry, tmp_path):
    """A large export's run asks the server to import while it validates: the imports run in a
    nice-19 thread (only idle CPU), and the kernels forked afterwards are normal-priority
    processes that have the libraries already."""
    server = registry.fork_server
    server.preload()
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and 19 not in seen:
        seen = _thread_nices(server.pid)
        time.sleep(0.01)
    assert 19 in seen                       # the import thread, while it runs
    assert 0 in seen                        # the main thread keeps its priority
    kernel = report._Kernel(1, registry)
    try:
        probe = _probe(kernel, tmp_path)
        assert probe["ppid"] == server.pid and probe["preloaded"]
        assert os.getpriority(os.PRIO_PROCESS, probe["pid"]) == 0
        # (threads a library starts while the import thread imports it, e.g. OpenBLAS's, are
        # nice 19 in the server; a fork keeps only the forking thread, so none reach a kernel)
        assert set(_thread_nices(probe["pid"])) == {0}
    finally:
        kernel.stop()


def test_a_kernel_exits_when_the_server_dies(registry, tmp_path):
    kernel = report._Kernel(1, registry)
    try:
        pid = _probe(kernel, tmp_path)["pid"]
        os.kill(registry.fork_server.pid, signal.SIGKILL)
        # the kernel's parent poller notices its parent is gone (it polls every second)
        assert _gone(pid, timeout=10)
    finally:
        kernel.stop()


def test_a_failed_server_falls_back_to_a_normal_kernel(registry, tmp_path):
    registry.fork_server.kill()
    kernel = report._Kernel(1, registry)
    try:
        info = _probe(kernel, tmp_path)
        assert not kernel.km.provisioner.forked
        assert info["ppid"] == os.getpid()
    finally:
        kernel.stop()


def test_only_ipykernel_commands_are_forked(registry):
    with pytest.raises(kernel_fork.ForkError, match="not an ipykernel command"):
        registry.fork_server.fork([sys.executable, "-c", "print(1)"], dict(os.environ), os.devnull)


def test_forking_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("KPI_AUDIT_FORK_KERNELS", "0")
    assert kernel_fork.ForkServer.start(dict(os.environ)) is None


def test_a_forked_kernel_shows_matplotlib_figures(registry):
    # the inline backend hooks into the kernel's IPython shell when it is imported: the server has
    # no shell, so it must not import it before the fork (every chart would then be missing)
    from jupyter_core.utils import run_sync
    kernel = report._Kernel(1, registry)
    try:
        kernel.warm(report._WARM)
        assert kernel.km.provisioner.forked
        outputs = []
        run_sync(kernel.kc.execute_interactive)(
            "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]);", timeout=60,
            output_hook=lambda msg: outputs.append(msg))
        assert any("image/png" in m["content"].get("data", {}) for m in outputs if m["msg_type"] == "display_data")
    finally:
        kernel.stop()


def test_each_chart_is_drawn_once_per_cell(registry, tmp_path):
    # pyplot's own post-cell redraw is disconnected by the runner's setup code: the inline
    # backend's PNG is the only rendering (it was the third of three: a wasted full draw before)
    from jupyter_core.utils import run_sync
    kernel = report._Kernel(1, registry)
    try:
        kernel.warm(report._WARM)
        kernel.warm(report._SETUP.format(stem="99_probe", path=str(tmp_path / "99_probe.ipynb"), folder=str(tmp_path)))
        outputs = []
        for code in ("import matplotlib.figure as _f\n_n = []\n_orig = _f.Figure.draw\n"
                     "_f.Figure.draw = lambda self, r: (_n.append(1), _orig(self, r))[1]",
                     "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]);",
                     "print('draws', len(_n))"):
            run_sync(kernel.kc.execute_interactive)(code, timeout=60, output_hook=outputs.append)
        images = [m for m in outputs if m["msg_type"] == "display_data" and "image/png" in m["content"]["data"]]
        printed = [m["content"]["text"] for m in outputs if m["msg_type"] == "stream"]
        assert len(images) == 1 and printed == ["draws 1\n"]
    finally:
        kernel.stop()
