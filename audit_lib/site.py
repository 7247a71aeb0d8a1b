"""The client-facing report page (``index.html``), its shared style, and ``findings.xlsx``.

``render_index`` builds one self-contained HTML page: inline CSS, no script, no
external resource, so it opens offline and prints cleanly. Every string that
comes from the client or from a finding (metric names, purposes, details,
comments, provenance values) goes through :func:`html.escape` and is shown as
text, never as markup. ``REPORT_CSS`` is also used by the runner to style the
notebook HTML sections the same way.

``write_findings_xlsx`` writes the client's follow-up workbook (scorecard,
findings, recommendations) with a styled, frozen, filterable header. Cells are
always written as text or numbers, never as formulas, so a client string that
starts with ``=`` cannot run as an Excel formula.
"""
from __future__ import annotations

import html
import math
import re
from copy import copy
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from .columns import Finding as F
from .errors import RunError
from .findings import FLAGGED, LENS_ORDER

__all__ = ["REPORT_CSS", "FRAGMENT_CSS", "VERDICT_COLOURS", "render_index", "write_findings_xlsx", "esc",
           "Table", "show", "scorecard_html", "recommendations_html", "comparison_html", "metric_pages_html",
           "summary_html", "table_html", "evidence_matrix_html", "styled_table"]

#: verdict -> (background, text) colours, shared by the page and the workbook
VERDICT_COLOURS = {
    "keep": ("#dcefe3", "#14532d"),
    "counterbalance": ("#dbe8f7", "#1e3a8a"),
    "rework": ("#fdebd3", "#7c2d12"),
    "retire": ("#f6dada", "#7f1d1d"),
    "not assessed": ("#eceff3", "#374151"),
}

REPORT_CSS = """
:root { --ink:#1f2933; --muted:#5b6673; --line:#d9dee5; --paper:#ffffff; --band:#f5f7fa;
        --accent:#1d4e89; --high:#b42318; --medium:#b54708; --low:#667085; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin:0; background:var(--band); color:var(--ink);
       font: 16px/1.55 "Segoe UI", "Helvetica Neue", Arial, "Liberation Sans", sans-serif; }
.page { max-width: 1120px; margin: 0 auto; padding: 0 24px 48px; background: var(--paper);
        min-height: 100vh; box-shadow: 0 0 0 1px var(--line); }
header.masthead { padding: 28px 0 16px; border-bottom: 3px solid var(--accent); margin-bottom: 8px; }
header.masthead .kicker { text-transform: uppercase; letter-spacing: .08em; font-size: 13px;
                          color: var(--muted); margin: 0; }
header.masthead h1 { margin: 4px 0 4px; font-size: 30px; line-height: 1.2; }
header.masthead .sub { color: var(--muted); margin: 0; }
nav.toc { position: sticky; top: 0; background: var(--paper); border-bottom: 1px solid var(--line);
          padding: 8px 0; margin-bottom: 8px; z-index: 2; font-size: 14px; }
nav.toc a { margin-right: 16px; color: var(--accent); text-decoration: none; white-space: nowrap; }
nav.toc a:hover, nav.toc a:focus { text-decoration: underline; }
h2 { font-size: 22px; margin: 32px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); }
h3 { font-size: 18px; margin: 20px 0 6px; }
p.lead { font-size: 17px; max-width: 70ch; }
p.note, .note { color: var(--muted); font-size: 14px; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0 4px; }
.tile { flex: 1 1 150px; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.tile .num { font-size: 30px; font-weight: 700; line-height: 1.1; }
.tile .lbl { font-size: 14px; color: var(--muted); }
ol.key-findings { padding-left: 22px; max-width: 80ch; }
ol.key-findings li { margin: 8px 0; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 14px; }
th, td { text-align: left; vertical-align: top; padding: 7px 10px; border-bottom: 1px solid var(--line); }
th { background: var(--band); font-weight: 600; border-bottom: 2px solid var(--line); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 13px;
         font-weight: 600; white-space: nowrap; border: 1px solid rgba(0,0,0,.08); }
.sev { font-weight: 600; font-size: 13px; white-space: nowrap; }
.sev-high { color: var(--high); } .sev-medium { color: var(--medium); } .sev-low { color: var(--low); }
.sev-not_assessable { color: var(--muted); font-style: italic; }
.evidence { color: var(--muted); font-size: 12.5px; }
table.matrix td.cell-flag { background: #fdebd3 !important; color: #7c2d12; font-weight: 600; }
table.matrix td.cell-ok { background: #eef7f1 !important; color: #14532d; }
table.matrix td.cell-na { background: #f1f3f6 !important; color: #5b6673; font-style: italic; }
table.matrix td, table.matrix th { text-align: center; }
table.matrix td:first-child, table.matrix th:first-child { text-align: left; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card h3 { margin: 0 0 4px; font-size: 16px; }
.card a { color: var(--accent); }
details { margin: 8px 0 16px; }
details > summary { cursor: pointer; color: var(--accent); font-weight: 600; }
footer.provenance { margin-top: 40px; border-top: 1px solid var(--line); padding-top: 12px;
                    color: var(--muted); font-size: 12.5px; }
footer.provenance dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }
footer.provenance dt { font-weight: 600; }
footer.provenance dd { margin: 0; overflow-wrap: anywhere; }
code, .mono { font-family: "SFMono-Regular", Consolas, "Liberation Mono", monospace; font-size: 12.5px; }
@media (max-width: 700px) { .page { padding: 0 12px 32px; } header.masthead h1 { font-size: 24px; } }
@media print {
  @page { size: A4; margin: 16mm 14mm; }
  body { background: #fff; font-size: 11pt; }
  .page { max-width: none; padding: 0; box-shadow: none; min-height: 0; }
  nav.toc { display: none; }
  a { color: inherit; text-decoration: none; }
  h2 { break-after: avoid; page-break-after: avoid; }
  tr, .card, .tile, li { break-inside: avoid; page-break-inside: avoid; }
  .metric-page { break-inside: avoid; page-break-inside: avoid; }
  .tiles { flex-wrap: nowrap; gap: 6px; }
  .tile { flex: 1 1 0; padding: 6px 8px; } .tile .num { font-size: 20pt; }
  h1 { font-size: 22pt; } h2 { font-size: 15pt; margin-top: 18px; }
  thead { display: table-header-group; }
  details > summary { display: none; }
  details { display: block; }
  .badge, th, tbody tr:nth-child(even) td, table.matrix td { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""

_SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2, "not_assessable": 3, "info": 4, "ok": 5}
_VERDICT_ORDER = ("retire", "rework", "counterbalance", "keep", "not assessed")


def esc(value) -> str:
    """Escape any value for HTML text or attribute context (missing values become '')."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return html.escape(str(value), quote=True)


def _safe_href(href: str) -> str:
    """Only relative links inside the report folder (offline; no scheme, no host, no traversal)."""
    text = str(href or "").strip()
    parsed = urlparse(text)
    if not text or parsed.scheme or parsed.netloc or text.startswith(("/", "\\")) or ".." in Path(
            parsed.path).parts:
        raise RunError(f"section link {text!r} is not a relative path inside the report folder; "
                       "index.html links only to files next to it (e.g. '01_register.html').")
    return esc(text)


def _fmt_num(x) -> str:
    """A number as a reader expects it: thousands separated, no scientific notation."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or pd.isna(x):
        return ""
    x = float(x)
    if x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:,.1f}"
    return f"{x:.3f}"


def _humanise(check: str) -> str:
    return str(check).replace("_", " ").capitalize()


def _metric_names(scorecard: pd.DataFrame | None) -> dict[str, str]:
    if scorecard is None or "name" not in scorecard:
        return {}
    return {str(k): str(v) for k, v in zip(scorecard[F.METRIC_ID], scorecard["name"]) if str(v)}


def _scorecard_from_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """The scorecard as stored in Findings rows (lens scorecard, check verdict)."""
    rows = findings[(findings[F.LENS] == "scorecard") & (findings[F.CHECK] == "verdict")]
    return pd.DataFrame({F.METRIC_ID: rows[F.METRIC_ID].astype(str).to_numpy(),
                         "name": rows[F.METRIC_ID].astype(str).to_numpy(),
                         "verdict": rows[F.LABEL].astype(str).to_numpy(),
                         "rationale": rows[F.DETAIL].astype(str).to_numpy(),
                         "evidence": rows[F.EVIDENCE].astype(str).to_numpy()})


def _recommendations_from_findings(findings: pd.DataFrame) -> pd.DataFrame:
    rows = findings[(findings[F.LENS] == "scorecard") & (findings[F.CHECK] == "recommendation")]
    out = pd.DataFrame({"priority": rows[F.VALUE].to_numpy(), F.METRIC_ID: rows[F.METRIC_ID].to_numpy(),
                        "action": rows[F.DETAIL].to_numpy(), "verdict": rows[F.LABEL].to_numpy(),
                        "evidence": rows[F.EVIDENCE].to_numpy()})
    return out.sort_values(["priority", F.METRIC_ID], kind="mergesort").reset_index(drop=True)


def _badge(verdict: str) -> str:
    if not verdict:
        return '<span class="note">not in that audit</span>'
    bg, fg = VERDICT_COLOURS.get(verdict, VERDICT_COLOURS["not assessed"])
    return f'<span class="badge" style="background:{bg};color:{fg}">{esc(verdict)}</span>'


def _sev(sev: str) -> str:
    label = "not assessable" if sev == "not_assessable" else sev
    return f'<span class="sev sev-{esc(sev)}">{esc(label)}</span>'


def _evidence_matrix(findings: pd.DataFrame, scorecard: pd.DataFrame) -> pd.DataFrame:
    from . import scorecard as sc_mod  # imported late: scorecard does not depend on site
    return sc_mod.evidence_matrix(findings, scorecard)


def _key_findings(findings: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    from . import scorecard  # imported late: scorecard does not depend on site
    return scorecard.key_findings(findings, n=n)


def _finding_sentence(row, names: dict[str, str]) -> str:
    metric = str(row[F.METRIC_ID])
    name = names.get(metric, metric)
    from . import scorecard  # imported late: scorecard does not depend on site
    text = scorecard.brief(row[F.DETAIL]) or _humanise(row[F.CHECK])
    scope = scorecard.reader_scope(str(row[F.SCOPE]))
    where = f' <span class="note">({esc(scope)})</span>' if scope else ""
    return (f"<strong>{esc(name)}</strong> — {esc(text)}{where} "
            f'<span class="evidence">[{esc(row[F.LENS])}: {esc(_humanise(row[F.CHECK]).lower())}]</span>')


def _table(df: pd.DataFrame, columns: list[tuple[str, str]], numeric: tuple[str, ...] = (),
           raw: dict | None = None) -> str:
    """An HTML table; every cell escaped unless it comes from ``raw`` (column -> formatter of safe HTML)."""
    raw = raw or {}
    head = "".join(f'<th{" class=num" if c in numeric else ""} scope="col">{esc(t)}</th>'
                   for c, t in columns)
    body = []
    for row in df.to_dict("records"):
        cells = []
        for c, _ in columns:
            v = row.get(c)
            if c in raw:
                cells.append(f"<td>{raw[c](v, row)}</td>")
            elif c in numeric:
                cells.append(f'<td class="num">{esc(_fmt_num(v))}</td>')
            else:
                cells.append(f"<td>{esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _summary_block(findings: pd.DataFrame, scorecard: pd.DataFrame, names: dict[str, str]) -> str:
    counts = scorecard["verdict"].value_counts() if len(scorecard) else pd.Series(dtype=int)
    tiles = [f'<div class="tile"><div class="num">{len(scorecard)}</div><div class="lbl">metrics audited</div></div>']
    for verdict in _VERDICT_ORDER:
        k = int(counts.get(verdict, 0))
        if k or verdict != "not assessed":
            bg, fg = VERDICT_COLOURS[verdict]
            tiles.append(f'<div class="tile" style="border-color:{bg}"><div class="num" style="color:{fg}">{k}</div>'
                         f'<div class="lbl">{esc(verdict)}</div></div>')
    lenses = findings[~findings[F.LENS].isin(("scorecard", "overview"))]
    flagged_rows = lenses[lenses[F.SEVERITY].isin(FLAGGED)]
    n_flagged = len(flagged_rows)
    n_metrics = flagged_rows[F.METRIC_ID].nunique()
    tally = (f"It flagged problems with {n_metrics} of them ({n_flagged} findings, counting each team, agent "
             f"and outcome separately)." if n_flagged else "It flagged no problem.")
    parts = ['<section id="summary"><h2>Summary</h2>',
             f'<p class="lead">This audit looked at {len(scorecard)} measures through four lenses — why each is '
             f'measured, what behaviour it drives, how staff see it and whether it moves with real outcomes. '
             f'{esc(tally)}</p>',
             f'<div class="tiles">{"".join(tiles)}</div>']
    top = _key_findings(findings)
    if len(top):
        items = "".join(f"<li>{_finding_sentence(r, names)}</li>" for r in top.to_dict("records"))
        heading = "The five findings that matter most" if len(top) == 5 else "The findings that matter most"
        parts.append(f'<h3>{heading}</h3><ol class="key-findings">{items}</ol>')
    else:
        parts.append('<p>No lens raised a flagged finding.</p>')
    parts.append("</section>")
    return "".join(parts)


def _scorecard_block(scorecard: pd.DataFrame, heading: bool = True, matrix: pd.DataFrame | None = None) -> str:
    h2 = "<h2>Scorecard</h2>" if heading else ""
    if not len(scorecard):
        return f'<section id="scorecard">{h2}<p>No verdicts were produced.</p></section>'
    order = {v: i for i, v in enumerate(_VERDICT_ORDER)}
    sc = scorecard.assign(_o=scorecard["verdict"].map(order).fillna(len(order)))
    sc = sc.sort_values(["_o", F.METRIC_ID], kind="mergesort")
    cols = [(F.METRIC_ID, "Metric"), ("name", "Name"), ("verdict", "Verdict"), ("rationale", "Why")]
    raw = {"verdict": lambda v, r: _badge(str(v)),
           "rationale": lambda v, r: esc(v) + (f'<div class="evidence">Evidence: {esc(r.get("evidence"))}</div>'
                                               if str(r.get("evidence") or "") else "")}
    grid = ""
    if matrix is not None and len(matrix):
        m = matrix.assign(_o=matrix["verdict"].map(order).fillna(len(order)))
        grid = ("<h3>Where the evidence comes from</h3>"
                '<p class="note">Flagged findings per lens (medium or high severity); '
                '"not assessed" means the data could not answer for that metric.</p>'
                + _matrix_block(m.sort_values(["_o", F.METRIC_ID], kind="mergesort"))
                + "<h3>Verdicts and reasons</h3>")
    return (f'<section id="scorecard">{h2}'
            '<p class="note">Keep: the measure works as intended. Counterbalance: keep it, but pair it with a '
            'measure that shows the harm its target can cause. Rework: redefine it, change its target or take '
            'it out of pay. Retire: stop using it as a target.</p>'
            + grid + _table(sc, cols, raw=raw) + "</section>")


def _matrix_cell(v) -> str:
    if v is None or pd.isna(v) or int(v) < 0:
        return '<td class="cell-na" title="not assessed">not assessed</td>'
    if int(v) == 0:
        return '<td class="cell-ok">no flags</td>'
    return f'<td class="cell-flag">{int(v)} flagged</td>'


def _matrix_block(matrix: pd.DataFrame) -> str:
    """Metric x lens grid: where the evidence for each verdict comes from."""
    if matrix is None or not len(matrix):
        return ""
    lenses = [c for c in ("register", "behaviour", "perception", "linkage") if c in matrix]
    head = "".join(f'<th scope="col">{esc(c.capitalize())}</th>' for c in ["Metric", *lenses, "Verdict"])
    body = "".join(
        f"<tr><td>{esc(r['name'])}</td>" + "".join(_matrix_cell(r[c]) for c in lenses)
        + f"<td>{_badge(str(r['verdict']))}</td></tr>" for r in matrix.to_dict("records"))
    return (f'<table class="matrix"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def _recommendations_block(recs: pd.DataFrame, heading: bool = True) -> str:
    if not len(recs):
        return "" if heading else "<p>Every measure can be kept as it is.</p>"
    items = "".join(f"<li>{_badge(str(r.get('verdict', '')))} {esc(r['action'])}</li>"
                    for r in recs.to_dict("records"))
    h2 = "<h2>What to do, in order</h2>" if heading else ""
    return f'<section id="recommendations">{h2}<ol class="key-findings">{items}</ol></section>'


def _comparison_block(comparison: dict | None, heading: bool = True) -> str:
    if not comparison:
        return ""
    prev = esc(comparison.get("previous_period") or "the previous audit")
    parts = [f'<section id="changes"><h2>Since the last audit ({prev})</h2>' if heading else
             f'<section id="changes"><p>Compared with the audit of {prev}.</p>']
    from . import scorecard as sc_mod  # imported late: scorecard does not depend on site
    # agent-level findings are rolled up (one row per lens, metric and check): a reader needs
    # "short contacts: 3 agents", not three rows of pseudonyms
    tables = {k: sc_mod.rollup_agents(comparison[k]) for k in ("new", "resolved", "persisting")
              if isinstance(comparison.get(k), pd.DataFrame)}
    vc = comparison.get("verdict_changes")
    n_vc = len(vc) if isinstance(vc, pd.DataFrame) else 0
    tiles = "".join(f'<div class="tile"><div class="num">{n}</div><div class="lbl">{esc(lbl)}</div></div>'
                    for n, lbl in ((len(tables.get("new", ())), "new findings"),
                                   (len(tables.get("resolved", ())), "resolved"),
                                   (len(tables.get("persisting", ())), "persisting"), (n_vc, "verdict changes")))
    parts.append(f'<div class="tiles">{tiles}</div>')
    if n_vc:
        parts.append("<h3>Verdict changes</h3>" + _table(
            vc, [(F.METRIC_ID, "Metric"), ("previous", "Before"), ("current", "Now")],
            raw={"previous": lambda v, r: _badge(str(v)), "current": lambda v, r: _badge(str(v))}))
    for key, title in (("new", "New findings"), ("resolved", "Resolved findings"),
                       ("persisting", "Persisting findings")):
        df = tables.get(key)
        if isinstance(df, pd.DataFrame) and len(df):
            table = _table(df, [(F.LENS, "Lens"), (F.METRIC_ID, "Metric"), (F.CHECK, "Check"),
                                (F.SCOPE, "Scope"), (F.SEVERITY, "Severity"), (F.DETAIL, "Detail")],
                           raw={F.SEVERITY: lambda v, r: _sev(str(v))})
            if key == "persisting":
                parts.append(f"<details><summary>{esc(title)} ({len(df)})</summary>{table}</details>")
            else:
                parts.append(f"<h3>{esc(title)} ({len(df)})</h3>{table}")
    pc = comparison.get("perception")
    if isinstance(pc, pd.DataFrame) and len(pc):
        pc = pc.assign(_interval=[_interval_text(lo, hi) for lo, hi in zip(pc["ci_low"], pc["ci_high"])],
                       _verdict=[_change_text(lo, hi) for lo, hi in zip(pc["ci_low"], pc["ci_high"])])
        two = {c: (lambda v, r: esc(f"{v:.2f}" if pd.notna(v) else "")) for c in ("previous", "current")}
        two["change"] = lambda v, r: esc(f"{v:+.2f}" if pd.notna(v) else "")
        parts.append("<h3>Staff perception index (1 = unfavourable, 5 = favourable)</h3>"
                     '<p class="note">A change counts as real when its 95% interval does not include zero.</p>'
                     + _table(pc, [(F.METRIC_ID, "Metric"), ("previous", "Before"), ("current", "Now"),
                                   ("change", "Change"), ("_interval", "95% interval"), ("_verdict", "Real change?")],
                              raw=two))
    kt = comparison.get("kpi_trend")
    if isinstance(kt, pd.DataFrame) and len(kt):
        cols = [(c, {F.METRIC_ID: "Metric", "change": "Change"}.get(str(c), str(c))) for c in kt.columns]
        parts.append("<h3>KPI values by quarter</h3>" + _table(
            kt, cols, numeric=tuple(c for c in kt.columns if c != F.METRIC_ID and c != "name")))
    parts.append("</section>")
    return "".join(parts)


def _interval_text(lo, hi) -> str:
    if pd.isna(lo) or pd.isna(hi):
        return "not available"
    return f"{lo:+.2f} to {hi:+.2f}"


def _change_text(lo, hi) -> str:
    if pd.isna(lo) or pd.isna(hi):
        return "cannot tell"
    if lo > 0:
        return "yes, better"
    if hi < 0:
        return "yes, worse"
    return "no clear change"


def _card_text(text: str) -> str:
    from . import scorecard  # imported late: scorecard does not depend on site
    return scorecard.brief(text, limit=220)


def _sections_block(sections: list[dict]) -> str:
    if not sections:
        return ""
    cards = "".join(
        f'<div class="card"><h3><a href="{_safe_href(s.get("href", ""))}">{esc(s.get("title", ""))}</a></h3>'
        f'<div class="note">{esc(_card_text(s.get("summary", "")))}</div></div>' for s in sections)
    return f'<section id="sections"><h2>The four lenses in detail</h2><div class="cards">{cards}</div></section>'


def _flagged_block(findings: pd.DataFrame, names: dict[str, str]) -> str:
    from . import scorecard as sc_mod  # imported late: scorecard does not depend on site
    df = findings[findings[F.SEVERITY].isin(FLAGGED + ("not_assessable",))
                  & ~findings[F.LENS].isin(("scorecard",))].copy()
    if not len(df):
        return ""
    n_rows = len(df)
    # the front page lists each problem once (agent rows rolled up, first sentence of each detail);
    # every row with its full detail is in findings.xlsx and in the lens sections
    df = sc_mod.rollup_agents(df)
    df[F.DETAIL] = df[F.DETAIL].map(sc_mod.brief)
    df["_r"] = df[F.SEVERITY].map(_SEVERITY_RANK)
    df["_l"] = df[F.LENS].map({k: i for i, k in enumerate(LENS_ORDER)})
    df = df.sort_values(["_l", F.METRIC_ID, "_r", F.CHECK, F.SCOPE], kind="mergesort")
    df["name"] = df[F.METRIC_ID].map(lambda m: names.get(str(m), str(m)))
    table = _table(df, [(F.LENS, "Lens"), ("name", "Metric"), (F.CHECK, "Check"), (F.SCOPE, "Scope"),
                        (F.SEVERITY, "Severity"), (F.DETAIL, "What we found")],
                   raw={F.SEVERITY: lambda v, r: _sev(str(v)),
                        F.CHECK: lambda v, r: esc(_humanise(v))})
    n_flag = int(df[F.SEVERITY].isin(FLAGGED).sum())
    return ('<section id="findings"><h2>All flagged findings</h2>'
            f'<p class="note">{n_rows} rows in all (every team, agent and outcome counted separately; agents '
            'grouped here). The full list with every detail is in findings.xlsx and in each lens section.</p>'
            f'<details open><summary>{n_flag} flagged problems, {len(df) - n_flag} not assessable</summary>'
            f'{table}</details></section>')


def _provenance_block(meta: dict) -> str:
    prov = meta.get("provenance") or {}
    rows = [("Generated", meta.get("generated_at", ""))]
    for key, value in prov.items():
        if isinstance(value, dict):
            value = "; ".join(f"{k}: {v}" for k, v in sorted(value.items()))
        elif isinstance(value, (list, tuple)):
            value = "; ".join(str(v) for v in value)
        rows.append((_humanise(key), value))
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    return ('<footer class="provenance"><strong>Provenance.</strong> This report is an immutable record of one '
            'audit run; a correction is a re-run, never an edit.'
            f"<dl>{items}</dl></footer>")


def render_index(meta: dict, sections: list[dict], findings: pd.DataFrame,
                 scorecard: pd.DataFrame | None = None, comparison: dict | None = None) -> str:
    """Render the report's front page as one self-contained HTML document.

    Parameters
    ----------
    meta : dict
        ``client``, ``period``, ``generated_at`` and ``provenance`` (dict: params file,
        input hashes, versions, git revision, ...). All shown as escaped text. Optional
        ``metric_names`` (metric_id -> name) names the metrics when no scorecard is passed.
    sections : list of dict
        ``{"title", "href", "summary"}`` per notebook section; ``href`` must be a
        relative path inside the report folder.
    findings : DataFrame
        The Findings table of the whole audit (every lens, including the scorecard rows).
    scorecard : DataFrame, optional
        ``metric_id, name, verdict, rationale, evidence`` (``audit_lib.scorecard.build_scorecard``);
        by default it is read from the findings' ``scorecard``/``verdict`` rows.
    comparison : dict, optional
        ``audit_lib.scorecard.compare_quarters`` output, shown as "Since the last audit".

    Returns
    -------
    str
        The HTML text (UTF-8), with inline CSS and no script or external resource.
    """
    missing = [c for c in F.ALL if c not in findings.columns]
    if missing:
        raise RunError(f"findings table passed to render_index lacks columns {missing}; "
                       "build it with audit_lib.findings.make_findings().")
    if scorecard is None:
        scorecard = _scorecard_from_findings(findings)
        names_given = {str(k): str(v) for k, v in (meta.get("metric_names") or {}).items()}
        scorecard["name"] = [names_given.get(m, m) for m in scorecard[F.METRIC_ID]]
    for col in ("name", "rationale", "evidence"):
        if col not in scorecard:
            scorecard = scorecard.assign(**{col: scorecard[F.METRIC_ID] if col == "name" else ""})
    names = _metric_names(scorecard)
    recs = _recommendations_from_findings(findings)
    client, period = meta.get("client", ""), meta.get("period", "")
    nav = [("#summary", "Summary")]
    if comparison:
        nav.append(("#changes", "Since last audit"))
    nav += [("#scorecard", "Scorecard")]
    if len(recs):
        nav.append(("#recommendations", "What to do"))
    nav += [(_safe_href(s.get("href", "")), s.get("title", "")) for s in sections]
    nav.append(("#findings", "All findings"))
    nav_html = "".join(f'<a href="{h if not h.startswith("#") else esc(h)}">{esc(t)}</a>' for h, t in nav)
    body = "".join([
        '<div class="page">',
        '<header class="masthead"><p class="kicker">KPI audit</p>',
        f"<h1>{esc(client)}</h1>",
        f'<p class="sub">Audit period {esc(period)} · report generated {esc(meta.get("generated_at", ""))}</p>',
        "</header>",
        f'<nav class="toc" aria-label="Report sections">{nav_html}</nav>',
        _summary_block(findings, scorecard, names),
        _comparison_block(comparison),
        _scorecard_block(scorecard, matrix=_evidence_matrix(findings, scorecard)),
        _recommendations_block(recs),
        _sections_block(sections),
        _flagged_block(findings, names),
        _provenance_block(meta),
        "</div>",
    ])
    title = f"KPI audit — {client} — {period}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            # a strict policy: nothing but the inline style may load, so a stray string can never fetch or run
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">"
            f"<title>{esc(title)}</title><style>{REPORT_CSS}</style></head>"
            f"<body>{body}</body></html>\n")


#: scoped style for fragments shown inside notebooks (JupyterLab's own table style right-aligns text)
FRAGMENT_CSS = """
.kpi-report { font-size: 14px; line-height: 1.5; }
.kpi-report table { border-collapse: collapse; width: 100%; margin: 6px 0 14px; table-layout: auto; }
.kpi-report th, .kpi-report td { text-align: left !important; vertical-align: top; padding: 6px 9px;
  border-bottom: 1px solid #d9dee5; white-space: normal; }
.kpi-report th { background: #f5f7fa; font-weight: 600; }
.kpi-report td.num { text-align: right !important; font-variant-numeric: tabular-nums; }
.kpi-report .badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12.5px;
  font-weight: 600; white-space: nowrap; }
.kpi-report .note, .kpi-report .evidence { color: #5b6673; }
.kpi-report .evidence { font-size: 12px; }
.kpi-report .sev-high { color: #b42318; font-weight: 600; } .kpi-report .sev-medium { color: #b54708; font-weight: 600; }
.kpi-report ol.key-findings li { margin: 6px 0; }
.kpi-report .tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
.kpi-report .tile { flex: 1 1 130px; border: 1px solid #d9dee5; border-radius: 8px; padding: 8px 12px; }
.kpi-report .tile .num { font-size: 24px; font-weight: 700; }
.kpi-report .metric-page { margin: 0 0 18px; }
.kpi-report table.matrix td.cell-flag { background: #fdebd3; color: #7c2d12; font-weight: 600; }
.kpi-report table.matrix td.cell-ok { background: #eef7f1; color: #14532d; }
.kpi-report table.matrix td.cell-na { background: #f1f3f6; color: #5b6673; font-style: italic; }
.kpi-report table.matrix td, .kpi-report table.matrix th { text-align: center !important; }
.kpi-report table.matrix td:first-child, .kpi-report table.matrix th:first-child { text-align: left !important; }
.kpi-report .metric-page h3 { margin: 14px 0 4px; }
"""


def _fragment(body: str) -> str:
    return f'<div class="kpi-report"><style>{FRAGMENT_CSS}</style>{body}</div>'


def scorecard_html(scorecard: pd.DataFrame) -> str:
    """The scorecard table (verdict badges, escaped text) as a notebook fragment."""
    return _fragment(_scorecard_block(scorecard, heading=False))


def evidence_matrix_html(matrix: pd.DataFrame) -> str:
    """The metric x lens grid (:func:`audit_lib.scorecard.evidence_matrix`) as a notebook fragment."""
    return _fragment(_matrix_block(matrix))


def recommendations_html(recs: pd.DataFrame) -> str:
    """The prioritised actions (:func:`audit_lib.scorecard.recommendations`) as a notebook fragment."""
    return _fragment(_recommendations_block(recs, heading=False))


def comparison_html(comparison: dict | None) -> str:
    """The "since the last audit" block of :func:`audit_lib.scorecard.compare_quarters`, as a fragment."""
    if not comparison:
        return _fragment('<p class="note">No previous audit is set (<code>previous:</code> in the params file), '
                         'so there is nothing to compare with yet.</p>')
    return _fragment(_comparison_block(comparison, heading=False))


def summary_html(summary: pd.DataFrame) -> str:
    """The executive summary (:func:`audit_lib.scorecard.executive_summary`) as a numbered list."""
    if not len(summary):
        return _fragment("<p>No lens raised a flagged finding.</p>")
    items = "".join(
        f"<li><strong>{esc(r['metric'])}</strong> — {esc(r['finding'])}"
        + (f' <span class="note">({esc(r["where"])})</span>' if r["where"] else "")
        + f' <span class="evidence">[{esc(r["lens"])}]</span></li>' for r in summary.to_dict("records"))
    return _fragment(f'<ol class="key-findings">{items}</ol>')


def styled_table(df: pd.DataFrame, formats: dict | None = None, na_rep: str = "", precision: int | None = None):
    """A pandas Styler over ``df`` without the index, every cell *and every header* HTML-escaped.

    The one place notebook tables are made safe: the Styler writes cell text and header labels
    (team names, metric names used as columns) into the page as they are, so a client string such
    as ``<svg onload=...>`` would become markup. ``formats`` (column -> format string) formats
    numbers after escaping.

    Examples
    --------
    >>> html = styled_table(pd.DataFrame({"<b>team</b>": ["<i>x</i>"]})).to_html()
    >>> "<b>" in html or "<i>" in html
    False
    """
    kwargs = {"escape": "html", "na_rep": na_rep}
    if precision is not None:
        kwargs["precision"] = precision
    styler = df.style.hide(axis="index").format(**kwargs)
    styler = styler.format_index(escape="html", axis=1)
    if formats:
        styler = styler.format({k: v for k, v in formats.items() if k in df.columns}, **kwargs)
    return styler


def table_html(df: pd.DataFrame) -> str:
    """Any small DataFrame as an escaped, left-aligned table fragment (full text, no truncation)."""
    return _fragment(_table(df, [(c, str(c)) for c in df.columns]))


class Table:
    """A DataFrame as a notebook shows it in a report: :func:`table_html` in the page (every cell
    escaped, no index, no truncated text), and its plain text without the index where only text
    is shown (a console, or what nbval compares in a ``# NBVAL_CHECK_OUTPUT`` cell).

    Examples
    --------
    >>> t = Table(pd.DataFrame({"team": ["<b>A</b>"], "n": [12]}))
    >>> "&lt;b&gt;A&lt;/b&gt;" in t._repr_html_() and "<b>A</b>" not in t._repr_html_()
    True
    >>> print(repr(t))
        team  n
    <b>A</b> 12
    """

    def __init__(self, df: pd.DataFrame):
        self.df = df

    def _repr_html_(self) -> str:
        return table_html(self.df)

    def __repr__(self) -> str:
        return self.df.to_string(index=False)


def show(df: pd.DataFrame | pd.Series) -> Table:
    """``df`` (a Series becomes its two columns) as a report :class:`Table`."""
    if isinstance(df, pd.Series):
        df = df.reset_index()
    return Table(df)


def metric_pages_html(pages: pd.DataFrame) -> str:
    """One block per metric (why / behaviour / perception / linkage / verdict), all text escaped."""
    cards = []
    for metric_id, grp in pages.groupby("metric_id", sort=True):
        first = grp.iloc[0]
        rows = "".join(f'<tr><th scope="row" style="width:24%">{esc(q)}</th><td>{esc(a)}</td></tr>'
                       for q, a in zip(grp["question"], grp["answer"]))
        cards.append(f'<section class="metric-page"><h3>{esc(first["name"])} <span class="note">'
                     f'({esc(metric_id)})</span> {_badge(str(first["verdict"]))}</h3>'
                     f"<table><tbody>{rows}</tbody></table></section>")
    return _fragment("".join(cards))


# ----------------------------------------------------------------------------- workbook

_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _cell_value(v):
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(v, (bool, int, float)):
        return v
    if hasattr(v, "item") and not isinstance(v, str):
        try:
            return v.item()
        except (AttributeError, ValueError):
            pass
    return _ILLEGAL_XML.sub("", str(v))


def _write_sheet(wb, title: str, df: pd.DataFrame) -> None:
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill("solid", fgColor="1D4E89")
    columns = [str(c) for c in df.columns]
    for j, name in enumerate(columns, start=1):
        cell = ws.cell(row=1, column=j, value=name)
        cell.font, cell.fill = header_font, header_fill
        cell.alignment = Alignment(vertical="center")
    widths = [len(c) for c in columns]
    # Assigning a style object makes openpyxl hash it into the workbook's style table, per cell:
    # the first short and the first long text cell are styled that way, and every later one
    # copies that cell's style indices (how openpyxl itself copies a style); a quarter of the time
    alignments = (Alignment(wrap_text=False, vertical="top"), Alignment(wrap_text=True, vertical="top"))
    styled: list = [None, None]
    for i, row in enumerate(df.itertuples(index=False), start=2):
        for j, v in enumerate(row, start=1):
            value = _cell_value(v)
            cell = ws.cell(row=i, column=j, value=value)
            if isinstance(value, str):
                cell.data_type = "s"   # never a formula, whatever the first character is
                long = len(value) > 60
                if styled[long] is None:
                    cell.alignment = alignments[long]
                    styled[long] = cell._style
                else:
                    cell._style = copy(styled[long])
            widths[j - 1] = max(widths[j - 1], min(len(str(value)) if value is not None else 0, 80))
    for j, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(j)].width = max(8, min(w + 2, 70))
    ws.freeze_panes = "A2"
    if columns:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(1, len(df) + 1)}"


def write_findings_xlsx(findings: pd.DataFrame, scorecard: pd.DataFrame | None,
                        recommendations: pd.DataFrame | None, path: str | Path) -> Path:
    """Write ``findings.xlsx``: sheets ``scorecard``, ``findings``, ``recommendations``.

    Each sheet has a bold coloured header row, frozen below the header, an
    autofilter over the data, and column widths fitted to the content. Text is
    stored as text (never as a formula).
    """
    from openpyxl import Workbook

    if scorecard is None:
        scorecard = _scorecard_from_findings(findings)
    if recommendations is None:
        recommendations = _recommendations_from_findings(findings)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    wb.remove(wb.active)
    _write_sheet(wb, "scorecard", scorecard.reset_index(drop=True))
    _write_sheet(wb, "findings", findings[list(F.ALL)].reset_index(drop=True))
    _write_sheet(wb, "recommendations", recommendations.reset_index(drop=True))
    wb.save(path)
    return path
