"""A real browser opens the report: no JavaScript error, no network request, no injected code runs.

Headless Chromium is driven through its DevTools protocol (websocket-client). For every
page (index.html and every section it links to) the test records console errors,
uncaught exceptions, network requests to anything but file:/data:, and JavaScript
dialogs; it bypasses the page's Content-Security-Policy so an escaping bug would
actually execute (``alert``) and be caught, and it saves a full-page screenshot to
``test-artifacts/browser/`` for a human to look at.
"""
from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

import browser_setup
from audit_lib import pdf, site
from audit_lib import scorecard as sc
from audit_lib.findings import finding, make_findings

websocket = pytest.importorskip("websocket")

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
HOSTILE = '<img src=x onerror=alert(1)>'
ALLOWED_SCHEMES = ("file:", "data:", "about:", "chrome-error:")


class Browser:
    """A minimal DevTools client: one headless Chromium, one page target, flat sessions."""

    def __init__(self, executable: str, profile: Path):
        cmd = pdf.chromium_command(executable, profile, "--remote-debugging-port=0",
                                   "--window-size=1280,900", "about:blank")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        url, deadline = None, time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            url = match.group(1) if match else None
        if url is None:
            self.close()
            raise RuntimeError("Chromium did not start its DevTools endpoint within 30 s")
        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self._id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        # an escaping bug must execute, not be silently blocked by the page's own CSP
        self.call("Page.setBypassCSP", enabled=True, session=True)
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1,
                  mobile=False, session=True)

    def call(self, method: str, session: bool = False, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        self.ws.settimeout(60)  # wait_for/drain shorten it; a command reply may take a while (screenshots)
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _event(self, msg: dict) -> None:
        if "method" not in msg:
            return
        self.events.append(msg)
        if msg["method"] == "Page.javascriptDialogOpening":
            # dismiss at once, or the page would hang; the event stays recorded as a failure
            self.ws.send(json.dumps({"id": 10 ** 9 + len(self.events), "method": "Page.handleJavaScriptDialog",
                                     "params": {"accept": False}, "sessionId": self.session}))

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e["method"] == method for e in self.events):
                return
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                self._event(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                break
        raise AssertionError(f"page did not fire {method} within {timeout} s")

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ws.settimeout(max(0.05, end - time.monotonic()))
            try:
                self._event(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                return

    def open(self, url: str) -> dict:
        """Navigate, wait for load, and return what went wrong on the way."""
        self.events = []
        self.call("Page.navigate", url=url, session=True)
        self.wait_for("Page.loadEventFired")
        self.drain(0.5)
        problems = {"exceptions": [], "console_errors": [], "requests": [], "dialogs": []}
        for e in self.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.exceptionThrown":
                problems["exceptions"].append(p["exceptionDetails"].get("text", "") + " "
                                              + str(p["exceptionDetails"].get("exception", {}).get("description")))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                problems["console_errors"].append(" ".join(str(a.get("value", a.get("description")))
                                                           for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                problems["console_errors"].append(p["entry"].get("text", ""))
            elif m == "Network.requestWillBeSent":
                req_url = p["request"]["url"]
                if not req_url.startswith(ALLOWED_SCHEMES):
                    problems["requests"].append(req_url)
            elif m == "Page.javascriptDialogOpening":
                problems["dialogs"].append(p.get("message", ""))
        return problems

    def evaluate(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, session=True)
        return res.get("result", {}).get("value")

    def screenshot(self, path: Path, max_height: int = 8000) -> Path:
        metrics = self.call("Page.getLayoutMetrics", session=True)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": max(1280, int(size["width"])),
                "height": min(max_height, int(size["height"])), "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip,
                         session=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="session")
def chromium():
    path, message = browser_setup.ensure_chromium(quiet=True)
    if not path:
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    b = Browser(chromium, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


# DOM checks that hold whatever the CSP does: nothing the client typed became an element or a handler
DOM_PROBE = """(() => {
  const all = [...document.querySelectorAll('*')];
  const handlers = all.filter(el => [...el.attributes].some(a => a.name.toLowerCase().startsWith('on')));
  return {
    injected_imgs: document.querySelectorAll('img[src="x"], img[src="x.png"]').length,
    scripts_with_alert: [...document.scripts].filter(s => /alert\\(/.test(s.textContent)).length,
    handler_elements: handlers.map(el => el.tagName + ':' + el.outerHTML.slice(0, 80)),
    hostile_text_shown: document.body.innerText.includes('<img src=x onerror=alert(1)>'),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
  };
})()"""


def _check_page(browser: Browser, path: Path, shot: str, expect_hostile: bool) -> dict:
    problems = browser.open(path.resolve().as_uri())
    probe = browser.evaluate(DOM_PROBE)
    browser.screenshot(ARTIFACTS / shot)
    assert problems == {"exceptions": [], "console_errors": [], "requests": [], "dialogs": []}, (path, problems)
    assert probe["injected_imgs"] == 0 and probe["scripts_with_alert"] == 0, probe
    assert probe["handler_elements"] == [], probe["handler_elements"]
    if expect_hostile:
        assert probe["hostile_text_shown"], f"{path}: the client's text is not shown as text"
    return probe


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    """A report folder rendered by site.render_index with a hostile metric name everywhere, plus one
    plain section page styled with REPORT_CSS (the runner's sections are tested end to end elsewhere)."""
    out = tmp_path_factory.mktemp("report")
    register = pd.DataFrame({"metric_id": ["AHT", "FRT", "X1"], "name": [HOSTILE, "First reply time", HOSTILE],
                             "kpi": ["aht", "first_reply_time", "custom"]})
    rows = [finding("register", "AHT", "surrogation_risk", "high", detail="Tied to bonus."),
            finding("behaviour", "AHT", "threshold_bunching", "high", scope="team:Beacon", detail=HOSTILE),
            finding("register", "X1", "purpose_missing", "high", detail=f"Purpose of {HOSTILE} missing"),
            finding("register", "FRT", "counterbalance_missing", "high", detail="No counter-measure."),
            finding("perception", "FRT", "comment_themes", "info", detail=f"Comment: {HOSTILE}")]
    findings = make_findings(rows)
    card, _, vrows = sc.scorecard_findings(findings, register)
    allf = pd.concat([findings, vrows], ignore_index=True)
    meta = {"client": HOSTILE, "period": "2026-Q3", "generated_at": "2026-10-01 09:00 UTC",
            "provenance": {"params file": HOSTILE, "git revision": "abc123"}}
    sections = [{"title": "Register", "href": "01_register.html", "summary": HOSTILE}]
    comparison = sc.compare_quarters(allf, make_findings(rows[:2]), previous_period="2026-Q2",
                                     current_period="2026-Q3")
    (out / "index.html").write_text(site.render_index(meta, sections, allf, card, comparison), encoding="utf-8")
    (out / "01_register.html").write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{site.REPORT_CSS}</style></head>"
        f"<body><div class='page'><h1>Register</h1><p>{site.esc(HOSTILE)}</p></div></body></html>",
        encoding="utf-8")
    return out


@pytest.mark.slow
def test_index_and_sections_open_cleanly(browser, hostile_report):
    probe = _check_page(browser, hostile_report / "index.html", "hostile_index.png", expect_hostile=True)
    sections = sorted({h for h in probe["links"] if not h.startswith("#")})
    assert sections == ["01_register.html"]
    for href in sections:
        _check_page(browser, hostile_report / href, f"hostile_{Path(href).stem}.png", expect_hostile=True)


@pytest.mark.slow
def test_the_probe_catches_an_executed_injection(browser, tmp_path):
    """The test must be able to fail: a page that does run the payload is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(f"<html><body>{HOSTILE}<img src='http://example.invalid/pixel.png'></body></html>")
    problems = browser.open(bad.resolve().as_uri())
    assert problems["dialogs"] == ["1"]
    assert any(u.startswith("http://example.invalid") for u in problems["requests"])
    assert browser.evaluate(DOM_PROBE)["handler_elements"]


@pytest.mark.slow
def test_print_pdf(chromium, hostile_report, tmp_path):
    out = pdf.print_pdf(hostile_report, tmp_path / "r.pdf")
    data = out.read_bytes()
    assert data[:5] == b"%PDF-" and len(data) > 5000
    assert data.count(b"/Type /Page") - data.count(b"/Type /Pages") >= 1
    from audit_lib import cli
    assert cli.main(["pdf", str(hostile_report), "--out", str(tmp_path / "cli.pdf")]) == 0
    assert (tmp_path / "cli.pdf").read_bytes()[:5] == b"%PDF-"


# ----------------------------------------------------------------------------- the real report, end to end

HOSTILE_FIELDS = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>", '"><svg onload=alert(3)>']


def _event_handlers(text: str) -> list[str]:
    """Every ``on*=`` attribute and every script calling alert() in an HTML document."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Scan(HTMLParser):
        in_script = False

        def handle_starttag(self, tag, attrs):
            found.extend(f"<{tag} {k}={v!r}>" for k, v in attrs if k.lower().startswith("on"))
            self.in_script = tag == "script"

        def handle_endtag(self, tag):
            self.in_script = False

        def handle_data(self, data):
            if self.in_script and "alert(" in data:
                found.append(f"<script>{data[:60]}")

    Scan(convert_charrefs=True).feed(text)
    return found


@pytest.fixture(scope="module")
def hostile_demo_report(tmp_path_factory):
    """The demo client with hostile text in every free-text field of the register, in survey comments,
    teams and tenure bands, and in the contacts' team names, run through the full runner (`kpi-audit run`)."""
    from audit_lib import demo, report
    base = tmp_path_factory.mktemp("hostile_demo")
    params = demo.generate(base, contacts=20_000)
    text = params.read_text(encoding="utf-8")
    text = re.sub(r"^client:.*$", 'client: "<img src=x onerror=alert(1)> Utilities"', text, count=1, flags=re.M)
    params.write_text(text, encoding="utf-8")
    reg_path = base / "register.csv"
    reg = pd.read_csv(reg_path, dtype=str, keep_default_na=False)
    for i, col in enumerate(c for c in ("name", "purpose", "owner", "definition", "audience") if c in reg):
        reg[col] = [f"{v} {HOSTILE_FIELDS[(i + j) % len(HOSTILE_FIELDS)]}" for j, v in enumerate(reg[col])]
    reg.to_csv(reg_path, index=False)
    survey_path = base / "survey.csv"
    survey = pd.read_csv(survey_path, dtype=str, keep_default_na=False)
    for col in [c for c in survey.columns if c.endswith("__comment")]:
        survey[col] = [f"Target pressure {HOSTILE_FIELDS[j % 3]}" for j in range(len(survey))]
    # team names are client text too: they reach scopes, tables and chart labels
    team = {t: f"{t} {HOSTILE_FIELDS[2]}" for t in ("Atlas", "Beacon", "Comet", "Delta")}
    for col in ("team", "tenure_band"):
        if col in survey:
            survey[col] = [team.get(v, f"{v} {HOSTILE_FIELDS[1]}" if v else v) for v in survey[col]]
    survey.to_csv(survey_path, index=False)
    contacts_path = base / "contacts.csv"
    contacts = pd.read_csv(contacts_path, dtype=str, keep_default_na=False)
    contacts["team"] = contacts["team"].map(lambda v: team.get(v, v))
    contacts.to_csv(contacts_path, index=False)
    return report.run(params, quiet=True)


@pytest.mark.slow
def test_real_report_in_a_browser(browser, hostile_demo_report):
    """Every page of the real report: checked statically and in the browser; all problems reported at once."""
    pages = sorted(hostile_demo_report.glob("*.html"))
    assert (hostile_demo_report / "index.html") in pages and len(pages) >= 2
    failures: dict[str, list] = {}
    for page in pages:
        text = page.read_text(encoding="utf-8")
        bad = [f"raw client text {h!r}" for h in HOSTILE_FIELDS if h in text]
        # exporters re-serialise markup (<img src="x" onerror="alert(1)"/>), so look at the parsed tags too
        bad += [f"event handler from client text: {h}" for h in _event_handlers(text)[:3]]
        problems = browser.open(page.resolve().as_uri())
        probe = browser.evaluate(DOM_PROBE)
        browser.screenshot(ARTIFACTS / f"report_{page.stem}.png")
        bad += [f"{kind}: {v}" for kind, values in problems.items() for v in values[:3]]
        bad += [f"element with handler: {h}" for h in probe["handler_elements"][:3]]
        if page.name == "index.html":
            if not probe["hostile_text_shown"]:
                bad.append("the client's name is not shown as text")
            sections = sorted({h for h in probe["links"] if not h.startswith("#")})
            if sections != sorted(p.name for p in pages if p.name != "index.html"):
                bad.append(f"index links {sections} do not match the section pages")
        if bad:
            failures[page.name] = bad
    assert failures == {}, failures
    out = pdf.print_pdf(hostile_demo_report, hostile_demo_report.parent / "report.pdf")
    assert out.read_bytes()[:5] == b"%PDF-"


def test_print_pdf_explains_what_is_missing(tmp_path, monkeypatch):
    from audit_lib.errors import RunError
    with pytest.raises(RunError, match="holds no index.html"):
        pdf.print_pdf(tmp_path)
    (tmp_path / "index.html").write_text("<html></html>")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("KPI_AUDIT_CHROMIUM", raising=False)
    with pytest.raises(RunError, match=r"No Chromium found.*apt-get install -y chromium"):
        pdf.print_pdf(tmp_path)
    monkeypatch.setenv("KPI_AUDIT_CHROMIUM", str(tmp_path / "nope"))
    with pytest.raises(RunError, match="KPI_AUDIT_CHROMIUM=.*not an executable"):
        pdf.find_chromium()
