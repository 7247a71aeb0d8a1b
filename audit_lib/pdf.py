"""Print a published report folder to PDF with a locally installed Chromium.

The report's ``index.html`` carries its own print style (``@media print`` in
``site.REPORT_CSS``): A4, no navigation bar, no rows split across pages. Chromium
runs headless with networking and background services off and a throw-away
profile, so printing never touches the network or the user's browser profile.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import RunError

__all__ = ["CHROMIUM_NAMES", "INSTALL_HINT", "find_chromium", "chromium_command", "print_pdf"]

#: executables tried in order (``KPI_AUDIT_CHROMIUM`` overrides them all)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

INSTALL_HINT = ("Install a Chromium browser: on Debian/Ubuntu `sudo apt-get update && sudo apt-get install -y "
                "chromium` (Ubuntu may call the package chromium-browser); on macOS `brew install --cask chromium`; "
                "or set KPI_AUDIT_CHROMIUM to the path of a Chromium or Chrome executable.")


def find_chromium() -> str:
    """Path of a local Chromium/Chrome executable.

    Raises
    ------
    RunError
        When none is found, with the command that installs one.
    """
    override = os.environ.get("KPI_AUDIT_CHROMIUM", "").strip()
    if override:
        found = shutil.which(override) or (override if Path(override).is_file() else None)
        if not found:
            raise RunError(f"KPI_AUDIT_CHROMIUM={override!r} is not an executable file. {INSTALL_HINT}")
        return found
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise RunError(f"No Chromium found on PATH (looked for {', '.join(CHROMIUM_NAMES)}). {INSTALL_HINT}")


def chromium_command(executable: str, profile_dir: str | Path, *extra: str) -> list[str]:
    """The headless, offline Chromium command line shared by printing and the browser test."""
    return [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--mute-audio", "--disable-dev-shm-usage",
            # any host name resolves to nothing: the report must not need the network
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile_dir}", *extra]


def print_pdf(report_dir: str | Path, out: str | Path | None = None, *, timeout: float = 120) -> Path:
    """Print ``<report_dir>/index.html`` to PDF.

    Parameters
    ----------
    report_dir : path
        A published report folder (holds ``index.html``).
    out : path, optional
        The PDF to write; default ``<report_dir>/report.pdf``.
    timeout : float
        Seconds before Chromium is stopped.

    Returns
    -------
    Path
        The PDF written.

    Raises
    ------
    RunError
        No ``index.html``, no Chromium (the message says how to install one), or
        Chromium failed or wrote no PDF.
    """
    report_dir = Path(report_dir)
    index = report_dir / "index.html"
    if not index.is_file():
        raise RunError(f"{report_dir} holds no index.html; pass a published report folder "
                       "(reports/<client>/<period>) made by `kpi-audit run`.")
    out = Path(out) if out is not None else report_dir / "report.pdf"
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    exe = find_chromium()
    with tempfile.TemporaryDirectory(prefix="kpi-audit-chromium-") as profile:
        tmp_pdf = Path(profile) / "print.pdf"
        cmd = chromium_command(exe, Path(profile) / "profile", "--no-pdf-header-footer",
                               f"--print-to-pdf={tmp_pdf}", index.resolve().as_uri())
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RunError(f"Chromium did not finish printing {index} within {timeout:.0f} s; "
                           "try again, or print index.html from a browser.") from exc
        except OSError as exc:
            raise RunError(f"cannot start Chromium ({exe}): {exc}. {INSTALL_HINT}") from exc
        if proc.returncode != 0 or not tmp_pdf.is_file() or tmp_pdf.read_bytes()[:5] != b"%PDF-":
            tail = "\n".join((proc.stderr or "").strip().splitlines()[-5:])
            raise RunError(f"Chromium ({exe}) could not print {index} (exit code {proc.returncode}). "
                           f"Its last messages:\n{tail}")
        shutil.move(str(tmp_pdf), out)
    return out
