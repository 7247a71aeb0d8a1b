"""A fork server for the runner's notebook kernels: the libraries are imported once, not per kernel.

Each kernel of ``kpi-audit run`` imports IPython, pandas, matplotlib and the lenses' modules:
about 1.6 s of CPU per kernel, paid while the runner itself validates and prepares on the same
two cores. On Linux the runner instead starts one helper process
(``python -m audit_lib.kernel_fork``) that imports IPython's kernel modules at once and the
libraries when the first kernel is asked for (after preparation for a large export, so they do
not add to its memory peak), then starts every kernel as a ``fork`` of itself: a kernel is ready
in a few tenths of a second and shares the imported code with its siblings.

Protocol (one JSON object per line): the runner writes ``{"cmd": [...], "env": {...}, "log":
path}`` to the server's stdin; the server answers ``{"pid": N}`` (or ``{"error": "..."}``) on
its stdout. The child becomes the leader of a new session (like ``jupyter_client``'s own
launcher), takes ``env`` as its environment and runs ``ipykernel_launcher`` with the arguments
of ``cmd`` and the server as its parent (``--IPKernelApp.parent_handle``), so the kernel exits
when the server does. The server exits when its stdin closes, i.e. when the runner ends or dies.

Anything unexpected (another platform, a kernel command that is not ``python -m
ipykernel_launcher``, a server that fails to start or answer) makes :class:`ForkServer` return
``None`` or raise :class:`ForkError`, and the runner starts that kernel the usual way.
Set ``KPI_AUDIT_FORK_KERNELS=0`` to always start kernels the usual way.

macOS is left out on purpose: its system libraries (Accelerate, libdispatch) are not safe to
use in a forked child.
"""
from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import threading

__all__ = ["KERNEL_MODULES", "ForkError", "ForkServer", "ForkedProcess", "import_all", "provisioner_class",
           "serve"]

#: what a report notebook imports (missing optional modules are skipped); also warmed in
#: kernels that were not forked (``report._WARM``)
KERNEL_MODULES = ("pandas", "numpy", "matplotlib.pyplot",
                  "audit_lib.context", "audit_lib.findings", "audit_lib.kpis", "audit_lib.overview",
                  "audit_lib.register", "audit_lib.behaviour", "audit_lib.perception", "audit_lib.linkage",
                  "audit_lib.scorecard", "audit_lib.site", "audit_lib.anonymity", "audit_lib.plots_register",
                  "audit_lib.plots_behaviour", "audit_lib.plots_perception", "audit_lib.plots_linkage")

#: imported on first use inside the lenses: 0.13-0.41 s per kernel, 1.3 s of CPU over the six
#: notebooks of the demo. Only the low-priority preload of a large export imports them (idle
#: CPU); elsewhere the server's imports delay the first kernel, while each kernel's own
#: imports run beside the other kernel (the demo was 0.93x with them in KERNEL_MODULES)
FIRST_USE_MODULES = ("audit_lib.params", "audit_lib.demo", "audit_lib.privacy", "pyarrow.dataset",
                     "pandas.io.formats.style", "scipy.optimize", "matplotlib.backends.backend_agg")

# imported by the server as soon as it starts (light: ~60 MB, ~0.8 s of CPU). Not
# matplotlib_inline.backend_inline: importing it hooks figure display into the running IPython
# shell, and the server has none, so it is left for the kernel to import on its first figure
_KERNEL_SIDE = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell")


class ForkError(RuntimeError):
    """The fork server could not start a kernel (the caller falls back to a normal launch)."""


def enabled() -> bool:
    return sys.platform.startswith("linux") and os.environ.get("KPI_AUDIT_FORK_KERNELS", "1") != "0"


class ForkServer:
    """The runner's handle on the fork server process (thread-safe)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self._lock = threading.Lock()
        self.failed = False

    @classmethod
    def start(cls, env: dict[str, str]) -> "ForkServer | None":
        """Start the server with the kernels' environment; ``None`` where forking is not used."""
        if not enabled():
            return None
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "audit_lib.kernel_fork"], env=env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=None if os.environ.get("KPI_AUDIT_DEBUG") == "1" else subprocess.DEVNULL,
                text=True, bufsize=1)
        except OSError:
            return None
        return cls(proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def fork(self, cmd: list[str], env: dict[str, str], log: str) -> int:
        """Start a kernel (``cmd`` = ``[python, "-m", "ipykernel_launcher", ...]``); return its pid."""
        if len(cmd) < 3 or cmd[1:3] != ["-m", "ipykernel_launcher"]:
            raise ForkError(f"not an ipykernel command: {cmd[:3]}")
        with self._lock:
            if self.failed:
                raise ForkError("the fork server failed earlier")
            try:
                self.proc.stdin.write(json.dumps({"cmd": cmd, "env": env, "log": log}) + "\n")
                self.proc.stdin.flush()
                answer = self.proc.stdout.readline()
            except (OSError, ValueError) as exc:
                self.failed = True
                raise ForkError(f"the fork server is gone: {exc}") from None
            try:
                reply = json.loads(answer)
            except ValueError:
                self.failed = True
                raise ForkError(f"the fork server did not answer ({answer!r})") from None
        if "pid" not in reply:
            raise ForkError(reply.get("error", "no pid"))
        return int(reply["pid"])

    def preload(self) -> None:
        """Have the server import the kernels' libraries from now on, in the background at the
        lowest CPU priority (see :func:`serve`), before the first fork asks for them.

        No answer is awaited. A server that is gone is noticed by the next fork.
        """
        with self._lock:
            if self.failed:
                return
            try:
                self.proc.stdin.write(json.dumps({"preload": True}) + "\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                self.failed = True

    def close(self) -> None:
        """Let the server exit (its stdin closes) and reap it."""
        with self._lock:
            self.failed = True
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass


class ForkedProcess:
    """A ``Popen``-like handle on a kernel forked by the server (a child of the server, not of us:
    the server reaps it, so its exit code is not known)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = 0
            except PermissionError:  # the pid was reused by someone else's process: ours is gone
                self.returncode = 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        import time
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


_PROVISIONER = None


def provisioner_class():
    """``jupyter_client``'s local provisioner, launching through a :class:`ForkServer`
    (``self.fork_server``) and falling back to its own launch when that fails."""
    global _PROVISIONER
    if _PROVISIONER is None:
        from jupyter_client.provisioning import LocalProvisioner

        class ForkedProvisioner(LocalProvisioner):
            fork_server: ForkServer | None = None
            forked = False

            async def launch_kernel(self, cmd, **kwargs):
                server = self.fork_server
                if server is not None:
                    env = dict(kwargs.get("env") or os.environ)
                    log = getattr(kwargs.get("stdout"), "name", None)
                    try:
                        pid = server.fork(list(cmd), env, log if isinstance(log, str) else os.devnull)
                    except ForkError:
                        pass
                    else:
                        self.process = ForkedProcess(pid)
                        self.pid = self.pgid = pid   # a session leader: its group is its pid
                        self.cwd = kwargs.get("cwd", os.getcwd())
                        self.forked = True
                        return self.connection_info
                return await super().launch_kernel(cmd, **kwargs)

        _PROVISIONER = ForkedProvisioner
    return _PROVISIONER


# ----------------------------------------------------------------------------- the server

def import_all(names) -> None:
    """Import every installed module of ``names`` (the server's and an unforked kernel's warm-up).

    A module that fails to import is skipped: the notebook importing it reports the error.
    """
    import importlib
    import importlib.util
    for name in names:
        try:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the kernel will import (and report) it itself
            pass


def _child(request: dict) -> None:
    """In the forked child: become the kernel. Never returns."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        fd = os.open(request.get("log") or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.close(null)
        os.environ.clear()
        os.environ.update(request["env"])
        # the app's parent_handle default was read from the server's environment at import:
        # name the server as the parent, so the kernel exits when the server does
        sys.argv = ["ipykernel_launcher", *request["cmd"][3:], f"--IPKernelApp.parent_handle={os.getppid()}"]
        from ipykernel import kernelapp
        kernelapp.launch_new_instance()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _import_idle(names) -> None:
    """:func:`import_all` in a thread of the lowest priority (nice 19).

    Sent while a large export is validated and prepared: the runner keeps both cores busy
    then, and a normal-priority import took their CPU and gained nothing (3 paired 10M runs).
    At nice 19 the imports take only CPU the runner leaves idle. Niceness is per thread on
    Linux, so the server's main thread, which forks the kernels, keeps its own.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (OSError, AttributeError):
        pass
    import_all(names)


def serve() -> None:
    """The server's main loop (``python -m audit_lib.kernel_fork``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # Ctrl-C is the runner's to handle
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)      # forked kernels are reaped automatically
    import_all(_KERNEL_SIDE)
    preloaded = False
    background = None
    out = sys.stdout
    for line in sys.stdin:
        try:
            request = json.loads(line)
            if request.get("preload"):
                if background is None and not preloaded:
                    names = KERNEL_MODULES + FIRST_USE_MODULES
                    background = threading.Thread(target=_import_idle, args=(names,), daemon=True)
                    background.start()
                continue
            if not preloaded:
                if background is not None:
                    background.join()       # no other thread is left when the server forks
                import_all(KERNEL_MODULES)  # whatever the background left (nothing, normally)
                # the imported objects live as long as the kernels: out of the collector's sight,
                # a kernel's garbage collections do not write to (and so copy) the shared pages
                gc.collect()
                gc.freeze()
                preloaded = True
            pid = os.fork()
        except Exception as exc:  # noqa: BLE001
            out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
            out.flush()
            continue
        if pid == 0:
            _child(request)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()


if __name__ == "__main__":
    serve()
