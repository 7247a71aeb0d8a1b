"""Make a headless Chromium available for the browser test.

Run as ``python tests/browser_setup.py`` (``make test`` does, before pytest): when no
Chromium is on PATH and we are root on a Debian/Ubuntu system, install the
``chromium`` package with apt-get; otherwise say what to do. The browser test's
session fixture calls :func:`ensure_chromium` too, so ``pytest`` alone also works.
Exit code 0 when a Chromium is available afterwards, 1 when not (the browser test
then skips with the same message).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find() -> str | None:
    """Path of a Chromium/Chrome executable, or None."""
    override = os.environ.get("KPI_AUDIT_CHROMIUM", "").strip()
    if override:
        return shutil.which(override) or (override if os.path.isfile(override) else None)
    return next((p for p in (shutil.which(n) for n in CHROMIUM_NAMES) if p), None)


def ensure_chromium(install: bool = True, quiet: bool = False) -> tuple[str | None, str]:
    """Return ``(path, message)``; installs Debian's ``chromium`` package when missing and possible."""
    path = find()
    if path:
        return path, f"chromium found: {path}"
    can_install = (install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")
                   and os.environ.get("KPI_AUDIT_NO_BROWSER_INSTALL") != "1")
    if not can_install:
        return None, ("no Chromium found and it cannot be installed here (needs root and apt-get); install one "
                      "with `sudo apt-get update && sudo apt-get install -y chromium` or set KPI_AUDIT_CHROMIUM")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    out = subprocess.DEVNULL if quiet else None
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=out, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                       check=True, env=env, stdout=out, timeout=1200)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        return None, f"installing chromium with apt-get failed ({exc}); install it by hand: apt-get install -y chromium"
    path = find()
    return path, (f"installed chromium: {path}" if path else "apt-get ran but no chromium executable appeared")


if __name__ == "__main__":
    found, message = ensure_chromium()
    print(message)
    sys.exit(0 if found else 1)
