"""index.html and findings.xlsx: self-contained, escaped, well-formed."""
from __future__ import annotations

import html
from html.parser import HTMLParser

import pandas as pd
import pytest
from openpyxl import load_workbook

from audit_lib import scorecard as sc
from audit_lib import site
from audit_lib.columns import Finding as F
from audit_lib.errors import RunError
from audit_lib.findings import finding, make_findings

#: hostile strings a client could type into any free-text field of the register or the survey
XSS = [
    '<img src=x onerror=alert(1)>',
    '"><script>alert("x")</script>',
    "' onmouseover='alert(1)",
    "javascript:alert(1)",
    '<a href="http://evil.example/">click</a>',
    "=HYPERLINK(\"http://evil.example\",\"x\")",
    '<style>body{background:url(http://evil.example/x.png)}</style>',
]

ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "div", "header", "p", "h1", "h2", "h3",
                "nav", "a", "section", "ol", "li", "strong", "span", "table", "thead", "tbody", "tr", "th",
                "td", "details", "summary", "footer", "dl", "dt", "dd"}


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text, self.styles = [], [], [], []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v) for k, v in attrs)
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)


def _parse(text: str) -> _Collector:
    p = _Collector()
    p.feed(text)
    p.close()
    return p


def _hostile_inputs(s: str):
    register = pd.DataFrame({"metric_id": ["AHT", "M2"], "name": [s, "Second " + s], "kpi": ["aht", "custom"],
                             "purpose": [s, s]})
    rows = [finding("register", "AHT", "purpose_restates_metric", "high", detail=f"Purpose {s} restates it."),
            finding("behaviour", "AHT", "threshold_bunching", "high", scope=f"team:{s}", detail=s, evidence=s),
            finding("perception", "M2", "comment_themes", "info", detail=f"Comment: {s}"),
            finding("perception", "M2", "perceived_gaming", "medium", scope=f"team:{s}", detail=s),
            finding("linkage", "M2", "linkage_class", "medium", label="adverse", scope=f"outcome:{s}", detail=s)]
    findings = make_findings(rows)
    card, recs, verdict_rows = sc.scorecard_findings(findings, register)
    allf = pd.concat([findings, verdict_rows], ignore_index=True)
    meta = {"client": s, "period": s, "generated_at": s,
            "provenance": {"params file": s, "input hashes": {s: s}, "versions": [s], "git revision": s}}
    sections = [{"title": s, "href": "01_register.html", "summary": s}]
    comparison = sc.compare_quarters(allf, make_findings([]), previous_period=s, current_period=s)
    return meta, sections, allf, card, recs, comparison


@pytest.mark.parametrize("hostile", XSS)
def test_every_client_string_is_text(hostile):
    meta, sections, allf, card, _, comparison = _hostile_inputs(hostile)
    page = site.render_index(meta, sections, allf, card, comparison)
    parsed = _parse(page)
    # only the page's own structure: no tag, attribute or style came from the client
    assert set(parsed.tags) <= ALLOWED_TAGS, set(parsed.tags) - ALLOWED_TAGS
    assert parsed.tags.count("style") == 1 and parsed.tags.count("script") == 0
    assert not [a for a in parsed.attrs if a[1].lower().startswith("on")]
    hrefs = [v for t, k, v in parsed.attrs if k == "href"]
    assert all(h.startswith("#") or h == "01_register.html" for h in hrefs), hrefs
    assert "".join(parsed.styles).strip() == site.REPORT_CSS.strip()
    # and the string itself is shown, as text, where the client wrote it
    text = "".join(parsed.text)
    assert text.count(hostile) >= 8


def test_page_is_self_contained_and_structured():
    meta, sections, allf, card, _, _ = _hostile_inputs("Harbour")
    page = site.render_index(meta, sections, allf, card)
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    assert "default-src 'none'" in page
    parsed = _parse(page)
    ids = [v for _, k, v in parsed.attrs if k == "id"]
    assert ids == ["summary", "scorecard", "recommendations", "sections", "findings"]
    assert "@media print" in site.REPORT_CSS
    # the scorecard can be read back from the verdict rows alone (what the runner passes)
    page2 = site.render_index(meta, sections, allf)
    assert "retire" in page2 and "<td>Second Harbour</td>" not in page2  # no register: ids stand in
    page3 = site.render_index({**meta, "metric_names": {"M2": "Second Harbour"}}, sections, allf)
    assert "<td>Second Harbour</td>" in page3


@pytest.mark.parametrize("href", ["javascript:alert(1)", "http://example.com/x.html", "/etc/passwd",
                                  "../other/index.html", "", "//host/x"])
def test_section_links_must_stay_in_the_report_folder(href):
    meta, _, allf, card, _, _ = _hostile_inputs("x")
    with pytest.raises(RunError, match="relative path inside the report folder"):
        site.render_index(meta, [{"title": "t", "href": href, "summary": ""}], allf, card)


def test_findings_table_must_have_the_contract_columns():
    with pytest.raises(RunError, match="lacks columns"):
        site.render_index({}, [], pd.DataFrame({"lens": []}))


def test_findings_xlsx_is_formatted_and_inert(tmp_path):
    hostile = XSS[5]
    meta, sections, allf, card, recs, _ = _hostile_inputs(hostile)
    allf.loc[0, F.DETAIL] = "bell\x07 character"  # illegal in XML: must be dropped, not crash
    path = site.write_findings_xlsx(allf, card, recs, tmp_path / "out" / "findings.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["scorecard", "findings", "recommendations"]
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2"
        assert ws.auto_filter.ref.startswith("A1:")
        assert ws["A1"].font.bold and ws["A1"].fill.fgColor.rgb.endswith("1D4E89")
    ws = wb["findings"]
    assert [c.value for c in ws[1]] == list(F.ALL)
    assert ws.max_row == len(allf) + 1
    cells = [c for row in ws.iter_rows(min_row=2) for c in row if isinstance(c.value, str)]
    formula_like = [c for c in cells if c.value.startswith("=")]
    assert formula_like and all(c.data_type == "s" for c in formula_like)
    assert any(c.value == "bell character" for c in cells)
    sheet = wb["scorecard"]
    assert [c.value for c in sheet[1]] == list(sc.SCORECARD_COLUMNS)
    assert sheet.column_dimensions["A"].width >= len("metric_id")
    assert wb["recommendations"]["A2"].value == 1


@pytest.mark.parametrize("hostile", XSS)
def test_notebook_fragments_escape_client_text(hostile):
    """The scorecard notebook shows these fragments as HTML outputs: they must escape too."""
    meta, sections, allf, card, recs, comparison = _hostile_inputs(hostile)
    register = pd.DataFrame({"metric_id": ["AHT", "M2"], "name": [hostile, hostile], "purpose": [hostile, hostile]})
    pages = sc.metric_pages(allf, card, register)
    summary = sc.executive_summary(allf, card)
    fragments = [site.scorecard_html(card), site.recommendations_html(recs), site.comparison_html(comparison),
                 site.comparison_html(None), site.summary_html(summary), site.metric_pages_html(pages),
                 site.table_html(sc.lens_status_table({"register": hostile})),
                 site.evidence_matrix_html(sc.evidence_matrix(allf, card))]
    for fragment in fragments:
        parsed = _parse(fragment)
        assert set(parsed.tags) <= ALLOWED_TAGS | {"code"}, set(parsed.tags) - ALLOWED_TAGS
        assert parsed.tags.count("style") == 1 and "".join(parsed.styles) == site.FRAGMENT_CSS
        assert not [a for a in parsed.attrs if a[1].lower().startswith("on")]
    assert hostile in "".join(_parse(site.metric_pages_html(pages)).text)
    assert hostile in "".join(_parse(site.summary_html(summary)).text)


@pytest.mark.parametrize("hostile", XSS)
def test_notebook_styled_tables_escape_headers_and_cells(hostile):
    """Team names become column headers in the register's current-value table: headers escape too."""
    from audit_lib import overview, plots_register
    df = pd.DataFrame({"metric": [hostile], f"Atlas {hostile}": [0.5], "n": [3]})
    for styler in (site.styled_table(df), overview.table(df, {"n": "{:,}"}), plots_register.show_table(df)):
        parsed = _parse(styler.to_html())
        assert set(parsed.tags) <= {"style", "table", "thead", "tbody", "tr", "th", "td"}, set(parsed.tags)
        assert not [a for a in parsed.attrs if a[1].lower().startswith("on")]
        assert "".join(parsed.text).count(hostile) == 2


def test_show_gives_full_escaped_text_and_an_index_free_plain_text():
    long = "FLAGGED in 15 of 53: " + ", ".join(f"Agent {i:05d}" for i in range(12)) + " <script>x</script>"
    t = site.show(pd.DataFrame({"metric": ["AHT", "FCR"], "what the data shows": [long, "no sign"]}))
    page = t._repr_html_()
    # pandas' own HTML cuts text at 50 characters and shows the index; the report table does neither
    assert html.escape(long) in page and "<script>" not in page and "<th" in page
    assert "...</td>" not in page and ">0<" not in page
    text = repr(t)
    assert text.splitlines()[0].split() == ["metric", "what", "the", "data", "shows"]
    assert text.splitlines()[1].lstrip().startswith("AHT")          # no index column before the values
    counts = site.show(pd.Series([4, 1], index=pd.Index(["keep", "retire"], name="verdict"), name="count"))
    assert list(counts.df.columns) == ["verdict", "count"] and "dtype" not in repr(counts)
