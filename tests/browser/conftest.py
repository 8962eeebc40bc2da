"""A real `hotspots serve` on a free port over the real Wolverhampton bundle, and a headless Chromium.

The bundle is found via HOTSPOTS_BUNDLE or <repo>/../shared/data (tests skip with a reason if absent). The
test installs it into a tmp dir, ingests the 2018-06 police.uk API files, and adds a derived 2018-05 file
(every second violent crime of June, re-dated) so that a period comparison has two periods to compare.
Every request leaving 127.0.0.1 is blocked and recorded: the page must work offline.

The server runs in public mode (anonymous visitors are viewers: the map tests see what the public sees),
with an analyst account (``ANALYST``) made through the CLI and a risk-factor overlay whose label is an
XSS payload (``XSS_LABEL``). Every page records Content-Security-Policy violations and dialogs.
"""
from __future__ import annotations

import csv
import glob
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
ANALYST = ("ana", "browser-analyst-pw-1")
XSS_LABEL = '<img src=x onerror="window.__xss=1;alert(1)">'
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _bundle() -> Path | None:
    p = Path(os.environ.get("HOTSPOTS_BUNDLE") or REPO.parent / "shared" / "data")
    return p if (p / "boundaries").is_dir() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("hotspots")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "hotspots.cli"]


def _may_run(cmd, env):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def _previous_month_csv(bundle: Path, out: Path) -> None:
    rows = []
    for f in sorted(glob.glob(str(bundle / "crime" / "wolverhampton-police-api-2018-06" / "*.json"))):
        for rec in json.loads(Path(f).read_text()):
            if rec.get("category") == "violent-crime":
                rows.append(rec)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Crime ID", "Month", "Reported by", "Falls within", "Longitude", "Latitude", "Location",
                    "LSOA code", "LSOA name", "Crime type", "Last outcome category", "Context"])
        for i, rec in enumerate(rows[::2]):
            loc = rec["location"]
            w.writerow([f"test-may-{i}", "2018-05", "West Midlands Police", "West Midlands Police", loc["longitude"],
                        loc["latitude"], "On or near somewhere", "", "", "Violence and sexual offences", "", ""])


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    bundle = _bundle()
    if bundle is None:
        pytest.skip("real data bundle not found: set HOTSPOTS_BUNDLE or place shared/data beside the repo")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("browser")
    env = {**os.environ, "HOTSPOTS_DATA_DIR": str(root / "data"), "HOTSPOTS_INSTANCE_DIR": str(root / "instance"),
           "HOTSPOTS_BUNDLE": str(bundle), "HOTSPOTS_TILES": "none", "HOTSPOTS_PUBLIC": "1"}
    env.pop("HOTSPOTS_CONFIG", None)
    env.pop("HOTSPOTS_SECRET_KEY", None)
    _may_run(_cli() + ["data", "install", str(bundle)], env)
    may = root / "2018-05-derived-street.csv"
    _previous_month_csv(bundle, may)
    _may_run(_cli() + ["ingest", str(bundle / "crime" / "wolverhampton-police-api-2018-06"), str(may)], env)
    r = subprocess.run(_cli() + ["users", "add", ANALYST[0], "--role", "analyst", "--password-stdin"], env=env,
                       input=ANALYST[1] + "\n", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lsoas = json.loads(next((root / "data" / "boundaries").glob("*lsoa21*.geojson")).read_text())["features"]
    ind = root / "indicator.csv"
    ind.write_text("code,value\n" + "".join(f"{f['properties']['LSOA21CD']},{i % 7}\n" for i, f in enumerate(lsoas)))
    _may_run(_cli() + ["overlay", "add", str(ind), "--key", "code", "--value", "value", "--label", XSS_LABEL], env)
    port = _free_port()
    log = open(root / "server.log", "w+")
    proc = subprocess.Popen(_cli() + ["serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"hotspots serve exited with {proc.returncode}:\n{log.read()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            log.seek(0)
            pytest.fail(f"hotspots serve did not listen on {port} within 60 s:\n{log.read()}")
        yield {"url": f"http://127.0.0.1:{port}", "log": root / "server.log", "root": root, "env": env}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def chromium_session():
    """One headless /usr/bin/chromium for the whole session (Playwright's sync API allows one running instance per
    thread); test modules that run their own server (tests/browser/test_time_control.py) use it directly."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def offline_only(page, base: str, external: list) -> None:
    """Let the page reach ``base`` (and data: URLs) only; record and abort every other request."""
    def route(r):
        if r.request.url.startswith(base) or r.request.url.startswith("data:"):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()
    page.route("**/*", route)


@pytest.fixture(scope="session")
def offline_route():
    """``offline_only`` for test modules that make their own pages (not importable: tests/web has a conftest too)."""
    return offline_only


@pytest.fixture(scope="session")
def browser(server, chromium_session):
    return chromium_session


class PageWatch:
    def __init__(self, page, base):
        self.page, self.base = page, base
        self.console_errors: list[str] = []
        self.external: list[str] = []
        self.failed: list[str] = []
        self.dialogs: list[str] = []

    def csp_violations(self) -> list:
        return self.page.evaluate("window.__csp || []")

    def sign_in(self, username: str, password: str, then: str = "/") -> None:
        self.page.goto(self.base + "/login?next=" + then)
        self.page.fill("#username", username)
        self.page.fill("#password", password)
        with self.page.expect_navigation():
            self.page.click("#login-form button[type=submit]")


#: records CSP violations in the page (Chromium also logs them as console errors, which _clean catches)
CSP_WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push({directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample});
});
"""


@pytest.fixture
def page(browser, server, request):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    ctx.add_init_script(CSP_WATCH)
    pg = ctx.new_page()
    # The CSP has no 'unsafe-eval'; Playwright evaluates a *string expression* predicate with eval inside
    # the page, but a function predicate through the debugger protocol: wrap expressions as functions.
    _wait = pg.wait_for_function

    def wait_for_function(expression, *a, **kw):
        if isinstance(expression, str) and not expression.lstrip().startswith(("(", "function", "async")):
            expression = f"() => ({expression})"
        return _wait(expression, *a, **kw)
    pg.wait_for_function = wait_for_function
    w = PageWatch(pg, server["url"])
    w.analyst, w.xss_label = ANALYST, XSS_LABEL  # (not imported from conftest: tests/web has one too)

    def on_dialog(d):
        w.dialogs.append(d.message)
        d.dismiss()
    pg.on("dialog", on_dialog)
    pg.on("console", lambda m: w.console_errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: w.console_errors.append(str(e)))
    pg.on("requestfailed", lambda r: w.failed.append(r.url) if r.url.startswith(server["url"]) else None)

    offline_only(pg, server["url"], w.external)
    yield w
    ARTIFACTS.mkdir(exist_ok=True)
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        pg.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"))
        print(Path(server["log"]).read_text()[-4000:])
    ctx.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
