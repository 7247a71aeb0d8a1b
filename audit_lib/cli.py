"""The ``kpi-audit`` command line.

Each sub-command calls one function of ``audit_lib``. Errors of the
:class:`~audit_lib.errors.AuditError` family become a short message on stderr and
the class's exit code (see ``EXIT_CODES``); nothing prints a traceback unless
``KPI_AUDIT_DEBUG=1`` is set.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import EXIT_CODES, AuditError

__all__ = ["main", "console", "build_parser"]


def _cmd_init(args) -> int:
    from . import params
    written = params.init_client(args.client, Path(args.dir))
    print(f"Wrote {len(written)} files for {args.client!r}:")
    for path in written:
        print(f"  {path}")
    print("Fill in the templates, edit the params file, then run: kpi-audit validate <params file>")
    return 0


def _cmd_validate(args) -> int:
    from . import io, params
    from .errors import InputDataError
    p = params.load_params(args.params)
    report = io.validate(p)
    print(report.format())
    if not report.ok:
        raise InputDataError(f"{len(report.errors)} problem(s) in the inputs of {args.params}; "
                             "fix them and run kpi-audit validate again.", problems=report.errors)
    return 0


def _cmd_demo(args) -> int:
    from . import demo
    path = demo.generate(Path(args.out), null=args.null, contacts=args.contacts, seed=args.seed,
                         quarter=args.quarter, fmt=args.format)
    kind = "null (nothing planted)" if args.null else "planted"
    print(f"Demo client ({kind}, quarter {args.quarter}) written to {Path(args.out)}")
    print(f"Params file: {path}")
    return 0


def _cmd_run(args) -> int:
    from . import report
    out = report.run(args.params, parallel=not args.serial, quiet=args.quiet)
    print(f"Report: {Path(out) / 'index.html'}")
    return 0


def _cmd_survey_template(args) -> int:
    from . import params, perception
    p = params.load_params(args.params)
    written = perception.write_survey_template(p, Path(args.out))
    for path in written:
        print(f"Wrote {path}")
    return 0


def _cmd_pdf(args) -> int:
    from . import pdf
    out = pdf.print_pdf(Path(args.report_dir), Path(args.out) if args.out else None)
    print(f"PDF: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kpi-audit",
        description="Metrics Audit Workbook: audit each KPI through four lenses "
                    "(why, behaviour, perception, linkage) and publish a shareable report.",
        epilog="Exit codes: " + "; ".join(f"{k} = {v}" for k, v in EXIT_CODES.items()),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="write a commented params file and blank input templates for a new client")
    p.add_argument("client", help="client name, e.g. 'Acme Energy'")
    p.add_argument("--dir", default=".", help="folder to write into (default: current folder)")
    p.set_defaults(func=_cmd_init)

    p = sub.add_parser("validate", help="check a params file and every input it names; exit 0 only when valid")
    p.add_argument("params", help="path of the params YAML file")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("demo", help="generate the demo client (inputs + params file)")
    p.add_argument("--out", default="demo_client", help="output folder (default: demo_client)")
    p.add_argument("--null", action="store_true", help="the same centre with no planted behaviour")
    p.add_argument("--contacts", type=int, default=150_000, help="number of contacts (default 150000)")
    p.add_argument("--seed", type=int, default=20260701, help="random seed (same seed, same files)")
    p.add_argument("--quarter", type=int, choices=(1, 2), default=1,
                   help="1 = 2026-Q3; 2 = the following quarter, with some behaviours fixed and one new")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv", help="contacts file format")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("run", help="validate, prepare, execute every notebook and publish the report")
    p.add_argument("params", help="path of the params YAML file")
    p.add_argument("--serial", action="store_true", help="run notebooks one at a time")
    p.add_argument("--quiet", action="store_true", help="print only the result")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("survey-template", help="write the staff perception questionnaire for a client's register")
    p.add_argument("params", help="path of the params YAML file")
    p.add_argument("--out", default="survey_template", help="output folder (default: survey_template)")
    p.set_defaults(func=_cmd_survey_template)

    p = sub.add_parser("pdf", help="print a report folder to PDF with a local Chromium")
    p.add_argument("report_dir", help="a published report folder (holds index.html)")
    p.add_argument("--out", default=None, help="PDF path (default: <report_dir>/report.pdf)")
    p.set_defaults(func=_cmd_pdf)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kpi-audit`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = os.environ.get("KPI_AUDIT_DEBUG") == "1"
    try:
        return int(args.func(args) or 0)
    except AuditError as exc:
        if debug:
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing was published", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal bug: short message, no traceback, a way to get one
        if debug:
            raise
        print(f"internal error: {type(exc).__name__}: {exc}\n"
              "This is a bug in kpi-audit. Re-run with KPI_AUDIT_DEBUG=1 for the traceback and report it.",
              file=sys.stderr)
        return 1


#: ``prctl`` option that turns transparent huge pages off for this process and its children
_PR_SET_THP_DISABLE = 41


def small_pages() -> bool:
    """Turn transparent huge pages off for this process and every process it starts (Linux).

    NumPy and Arrow's allocator ask for 2 MiB pages (``madvise(MADV_HUGEPAGE)``) for large
    buffers. On a machine whose memory is handed out on first touch, as on virtual machines,
    the kernel then zeroes 2 MiB at every first touch: 30 % of the CPU samples of validating
    10M contacts were that zeroing, and the process spent 7-9 s in the kernel against
    2.7-4.2 s with small pages (3 runs each). The setting is inherited by forked and executed
    children (the notebook kernels). ``KPI_AUDIT_HUGE_PAGES=1`` keeps the system's choice.
    Returns whether the setting was applied.
    """
    if os.environ.get("KPI_AUDIT_HUGE_PAGES") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):   # no libc prctl (unusual builds): keep the default
        return False


def console() -> None:
    """The ``kpi-audit`` console script: :func:`main`, then an exit without the interpreter's teardown.

    A run leaves about 1,700 modules loaded (pandas, DuckDB, Jupyter's client, matplotlib, …);
    tearing them down took 0.38–0.40 s after the report was published (demo, 2 runs), 2.7 % of
    a demo run. By then every file is closed and every child process gone, so the exit
    handlers run (``atexit``: logging, temporary folders), the output is flushed, and the
    process ends with :func:`os._exit`, skipping only the freeing of memory the system takes
    back anyway.
    """
    import atexit
    small_pages()
    code = main()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe (`kpi-audit ... | head`): nothing left to say
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
