"""The CLI turns errors into a short message and a documented exit code, never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from audit_lib import cli
from audit_lib.errors import EXIT_CODES, InputDataError, ParamsError, RunError


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audit_lib.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_help_lists_every_command():
    out = run_cli("--help").stdout
    for command in ("init", "validate", "demo", "run", "survey-template", "pdf"):
        assert command in out


def test_exit_codes_are_distinct_and_documented():
    codes = [ParamsError.exit_code, InputDataError.exit_code, RunError.exit_code]
    assert len(set(codes)) == 3 and 0 not in codes
    assert all(code in EXIT_CODES for code in codes)


@pytest.mark.parametrize("error, code", [(ParamsError("bad key 'x'"), 2),
                                         (InputDataError("bad file"), 3),
                                         (RunError("notebook failed"), 4)])
def test_audit_errors_become_message_and_exit_code(monkeypatch, capsys, error, code):
    def boom(args):
        raise error
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["validate"].set_defaults(func=boom)
    assert cli.main(["validate", "whatever.yaml"]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and error.message in err
    assert "Traceback" not in err


def test_internal_error_is_short_and_says_how_to_debug(monkeypatch, capsys):
    def boom(args):
        raise ZeroDivisionError("division by zero")
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["validate"].set_defaults(func=boom)
    assert cli.main(["validate", "x.yaml"]) == 1
    err = capsys.readouterr().err
    assert "KPI_AUDIT_DEBUG=1" in err and "Traceback" not in err


def test_missing_params_file_exits_2_without_traceback(tmp_path):
    result = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "nope.yaml" in result.stderr


def test_unknown_command_is_a_usage_error():
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_console_script_flushes_output_runs_exit_handlers_and_keeps_the_exit_code(tmp_path):
    """``console`` ends the process with ``os._exit`` (no interpreter teardown): the output is
    complete, atexit handlers (temporary folders, logging) still run, and main's code is the
    process's exit code, 0 or not."""
    script = ("import atexit, sys, tempfile, pathlib\n"
              "from audit_lib import cli\n"
              f"marker = pathlib.Path({str(tmp_path)!r}) / 'atexit-ran'\n"
              "atexit.register(marker.touch)\n"
              "sys.argv = ['kpi-audit', *sys.argv[1:]]\n"
              "print('before the command')\n"               # sits in stdout's buffer (a pipe)
              "cli.console()\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}   # buffered, as for a user
    missing = tmp_path / "no-such-params.yaml"
    done = subprocess.run([sys.executable, "-c", script, "validate", str(missing)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == ParamsError.exit_code
    assert done.stdout == "before the command\n" and "not found" in done.stderr
    assert (tmp_path / "atexit-ran").is_file()
    (tmp_path / "atexit-ran").unlink()
    out = tmp_path / "client"
    done = subprocess.run([sys.executable, "-c", script, "init", "Flush Test", "--dir", str(out)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and done.stdout.rstrip().endswith("kpi-audit validate <params file>")
    assert (tmp_path / "atexit-ran").is_file()


def _thp_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.startswith("THP_enabled:")), "")


@pytest.mark.skipif(not _thp_line(open("/proc/self/status").read() if os.path.exists("/proc/self/status") else ""),
                    reason="the kernel does not report THP_enabled (Linux 5.0+ only)")
@pytest.mark.parametrize("keep", [False, True])
def test_console_turns_huge_pages_off_for_itself_and_its_children(keep):
    """``console`` sets PR_SET_THP_DISABLE before the command runs, so the runner and every
    kernel it starts (forked or executed) use small pages; KPI_AUDIT_HUGE_PAGES=1 keeps the
    system's setting. The kernel's own report (/proc/<pid>/status) is the independent check."""
    child = ("import subprocess, sys; print(open('/proc/self/status').read()); print(subprocess.run([sys.executable, '-c', "
             "\"print(open('/proc/self/status').read())\"], capture_output=True, text=True).stdout)")
    script = ("import subprocess, sys\n"
              "from audit_lib import cli\n"
              "def main():\n"
              "    print(open('/proc/self/status').read())\n"
              f"    print(subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True).stdout)\n"
              "    return 0\n"
              "cli.main = main\n"
              "cli.console()\n")
    env = {k: v for k, v in os.environ.items() if k != "KPI_AUDIT_HUGE_PAGES"}
    if keep:
        env["KPI_AUDIT_HUGE_PAGES"] = "1"
    before = _thp_line(subprocess.run([sys.executable, "-c", "print(open('/proc/self/status').read())"],
                                      capture_output=True, text=True, env=env).stdout)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("THP_enabled:")]
    assert len(lines) == 3          # the console process, its child and its grandchild
    if keep:
        assert all(line == before for line in lines)
    else:
        assert all(line.split() == ["THP_enabled:", "0"] for line in lines), lines
