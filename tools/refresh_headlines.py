"""Re-execute notebooks on their defaults (the demo client) and save their headline outputs.

nbval (``make test``) compares the output of every cell marked ``# NBVAL_CHECK_OUTPUT`` with
the output saved in the notebook file; every other cell is saved without output
(docs/architecture.md, "Notebook contract"). After a change that moves a headline number on
purpose, run::

    make headlines                          # every notebook
    .venv/bin/python tools/refresh_headlines.py notebooks/02_behaviour.ipynb

and review the diff (``git diff notebooks/``): a headline that moved is a change in results.
The notebooks run exactly as nbval runs them: in ``notebooks/``, in this interpreter's kernel.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat
from jupyter_client import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
MARK = "# NBVAL_CHECK_OUTPUT"


def refresh(path: Path) -> list[int]:
    """Execute ``path`` and keep outputs only in its checked cells; returns their cell numbers."""
    nb = nbformat.read(path, as_version=4)
    executed = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="kpa-refresh-") as sockets:
        # IPC sockets: no TCP port, so the kernel prints no "unencrypted TCP" warning
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        try:
            NotebookClient(executed, km=km, timeout=600,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        finally:
            # the client leaves a kernel it did not create running: stop it here, not when this
            # process exits (each orphan printed "Parent appears to have exited")
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    checked = []
    count = 0
    for n, (cell, ran) in enumerate(zip(nb.cells, executed.cells), start=1):
        if cell.cell_type != "code":
            continue
        count += 1
        if MARK in cell.source:
            # numbered by position, output and cell alike, so a refresh that changes no result
            # changes no byte (the kernel's own counter depends on how it was started)
            cell.outputs = ran.outputs
            cell.execution_count = count
            for out in cell.outputs:
                if "execution_count" in out:
                    out["execution_count"] = count
            checked.append(n)
        else:
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(nb, path)
    return checked


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="notebooks to refresh (default: all of notebooks/)")
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        cells = refresh(path.resolve())
        print(f"{path.name}: saved the output of cell(s) {', '.join(map(str, cells)) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
