"""Metrics Audit Workbook: audit each KPI a client tracks through four lenses.

Modules: ``params`` (the params file), ``io``/``schemas`` (inputs and validation),
``demo`` (the demo client), ``prepare`` (compact tables), one module per lens
(``register``, ``behaviour``, ``perception``, ``linkage``), ``scorecard`` and
``report`` (the runner). See docs/architecture.md.
"""
__version__ = "0.1.0"
