"""The CLI turns errors into a short message and a documented exit code, never a traceback."""
from __future__ import annotations

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
