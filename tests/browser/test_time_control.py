"""The map's time controls in a real headless Chromium, on gridtown (16 synthetic LSOAs, three months).

The server is the app itself in a thread of this process (werkzeug), in public mode, over the planted
gridtown of tests/web/conftest.py: three months, which the Wolverhampton server of the other browser tests
does not have. Screenshots go to <repo>/test-artifacts/ like the other browser tests'.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

pytestmark = pytest.mark.browser

TESTS = Path(__file__).resolve().parents[1]
ARTIFACTS = TESTS.parent / "test-artifacts"
READY = "() => document.body.dataset.state === 'ready'"
PATHS = "() => document.querySelectorAll('.leaflet-overlay-pane path').length >= 16"
PERIOD = "from=2024-01&to=2024-03&category=violent-crime"


def _plan() -> dict:
    """gridtown's planted incidents, from the web tests' conftest (one source for both)."""
    spec = importlib.util.spec_from_file_location("web_conftest_plan", TESTS / "web" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.PLAN


@pytest.fixture(scope="module")
def gridtown_server(tmp_path_factory):
    pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    from synthetic_bundle import build, cell_centre, police_csv
    from web import create_app
    b = build(tmp_path_factory.mktemp("gridtown-browser"))
    rows = []
    for month, cells in _plan().items():
        for (i, j), k in cells.items():
            x, y = cell_centre(i, j)
            rows += [(f"t{month}{i}{j}{q}", month, x + 10 * q, y + 5 * q, "Violence and sexual offences")
                     for q in range(k)]
    (b.root / "bundle" / "crime" / "planted.csv").write_text(police_csv(rows))
    config = load_config(b.config_path, env={}, data_dir=b.data_dir, instance_dir=b.instance_dir,
                         bundle=b.root / "bundle")
    install_bundle(config)
    ingest_paths(config, [b.root / "bundle" / "crime"])
    app = create_app(config.with_overrides(public_mode=True), test_config={"WARM_UP": False})
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def chromium(gridtown_server, chromium_session):
    return chromium_session


class Watched:
    """A page and what it did: the layer requests it made, page errors, requests that left the server."""

    def __init__(self, page, base):
        self.page, self.base = page, base
        self.layer_requests: list[dict] = []
        self.errors: list[str] = []
        self.external: list[str] = []

    def gistar_months(self) -> list[tuple[str, str]]:
        return [(q.get("from", [""])[0], q.get("to", [""])[0]) for q in self.layer_requests if q["_name"] == "gistar"]


@pytest.fixture
def watched(chromium, gridtown_server, offline_route, request):
    ctx = chromium.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    w = Watched(pg, gridtown_server)

    def on_request(r):
        url = urlparse(r.url)
        if r.url.startswith(gridtown_server) and url.path.startswith("/api/v1/layers/"):
            q = parse_qs(url.query)
            q["_name"] = url.path.rsplit("/", 1)[1].removesuffix(".geojson")
            w.layer_requests.append(q)
    pg.on("request", on_request)
    pg.on("pageerror", lambda e: w.errors.append(str(e)))

    offline_route(pg, gridtown_server, w.external)
    yield w
    ARTIFACTS.mkdir(exist_ok=True)
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        pg.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"))
    ctx.close()


def _open(w: Watched, query: str) -> None:
    w.page.goto(w.base + "/?" + query)
    w.page.wait_for_function(PATHS, timeout=30000)
    w.page.wait_for_function(READY, timeout=60000)


def _status(w: Watched) -> str:
    return w.page.inner_text("#time-status")


def _wait_status(w: Watched, text: str) -> None:
    w.page.wait_for_function("t => document.getElementById('time-status').textContent === t", arg=text,
                             timeout=15000)
    w.page.wait_for_function(READY, timeout=60000)


def _legend_titles(w: Watched) -> list[str]:
    return w.page.eval_on_selector_all("#legends .legend h3", "els => els.map(e => e.textContent)")


def test_stepping_to_month_two_asks_for_that_month_and_relabels_the_map(watched):
    w = watched
    _open(w, "layer=gistar&" + PERIOD)
    assert _status(w) == "Whole period: January 2024 to March 2024 (3 months)"
    assert w.gistar_months()[-1] == ("2024-01", "2024-03")
    before = _legend_titles(w)
    # keyboard: the slider takes the arrow keys, each step a month
    w.page.focus("#time-slider")
    w.page.keyboard.press("ArrowRight")
    _wait_status(w, "Month 1 of 3: January 2024")
    w.page.keyboard.press("ArrowRight")
    _wait_status(w, "Month 2 of 3: February 2024")
    assert w.gistar_months()[-1] == ("2024-02", "2024-02")  # the ordinary Gi* layer of that one month
    after = _legend_titles(w)
    assert after != before and any(t.endswith("February 2024") for t in after), after
    assert "2024-02" in w.page.inner_text("#summary")  # the side panel's heading names the month
    q = parse_qs(urlparse(w.page.url).query)  # shareable: the month is in the page's address
    assert q["month"] == ["2024-02"] and q["from"] == ["2024-01"] and q["to"] == ["2024-03"]
    dl = w.page.get_attribute("#download-links a.dl-csv", "href")
    assert "from=2024-02" in dl and "to=2024-02" in dl and "month=" not in dl
    assert w.page.get_attribute("#time-slider", "aria-valuetext") == "Month 2 of 3: February 2024"
    ARTIFACTS.mkdir(exist_ok=True)
    w.page.screenshot(path=str(ARTIFACTS / "time-control-month-2.png"))
    # buttons: back one, then the whole period again
    w.page.click("#time-prev")
    _wait_status(w, "Month 1 of 3: January 2024")
    assert w.page.is_disabled("#time-prev") and not w.page.is_disabled("#time-next")
    w.page.click("#time-all")
    _wait_status(w, "Whole period: January 2024 to March 2024 (3 months)")
    assert w.gistar_months()[-1] == ("2024-01", "2024-03")
    assert "month" not in parse_qs(urlparse(w.page.url).query)
    assert not w.errors and not w.external, (w.errors, w.external)


def test_a_shared_link_opens_on_its_month_and_play_stops_at_the_end(watched):
    w = watched
    _open(w, "layer=gistar&month=2024-02&" + PERIOD)
    assert _status(w) == "Month 2 of 3: February 2024"
    assert w.gistar_months() == [("2024-02", "2024-02")]
    w.page.click("#time-play")
    assert w.page.get_attribute("#time-play", "aria-pressed") == "true"
    _wait_status(w, "Month 3 of 3: March 2024")
    w.page.wait_for_function("() => document.getElementById('time-play').getAttribute('aria-pressed') === 'false'",
                             timeout=5000)
    w.page.wait_for_timeout(1800)  # one more tick: it has stopped, not wrapped round
    assert _status(w) == "Month 3 of 3: March 2024" and w.gistar_months()[-1] == ("2024-03", "2024-03")
    assert w.page.is_disabled("#time-next")
    assert not w.errors and not w.external, (w.errors, w.external)


def test_one_month_disables_the_control_and_says_why(watched):
    w = watched
    _open(w, "layer=gistar&from=2024-02&to=2024-02")
    assert w.page.is_visible("#time-control")
    assert _status(w) == "One month of data: the time control needs two or more"
    for sel in ("#time-prev", "#time-play", "#time-next", "#time-all", "#time-slider"):
        assert w.page.is_disabled(sel), sel


def test_emerging_step_and_time_neighbours_round_trip_and_too_few_steps_is_explained(watched):
    w = watched
    _open(w, PERIOD)
    assert w.page.is_hidden("#step") and w.page.is_hidden("#time_neighbours")
    w.page.select_option("#layer", "emerging")
    w.page.wait_for_function(READY, timeout=60000)
    assert w.page.is_visible("#step") and w.page.is_visible("#time_neighbours")
    # three months by month: the layer's own 4xx message, in the page's error banner
    w.page.wait_for_function("() => /3 time step/.test(document.getElementById('error').textContent)", timeout=15000)
    w.page.select_option("#step", "quarter")
    w.page.wait_for_function("() => /1 time step/.test(document.getElementById('error').textContent)", timeout=15000)
    w.page.wait_for_function(READY, timeout=60000)
    msg = w.page.inner_text("#error")
    assert w.page.is_visible("#error") and "at least 10" in msg and "shorter time step" in msg, msg
    emerging = [q for q in w.layer_requests if q["_name"] == "emerging"]
    assert emerging[-1]["step"] == ["quarter"] and emerging[-1]["time_neighbours"] == ["1"]
    w.page.select_option("#time_neighbours", "2")
    w.page.wait_for_function(READY, timeout=60000)
    q = parse_qs(urlparse(w.page.url).query)
    assert q["step"] == ["quarter"] and q["time_neighbours"] == ["2"] and q["layer"] == ["emerging"]
    w.page.reload()
    w.page.wait_for_function(READY, timeout=60000)
    assert w.page.input_value("#step") == "quarter" and w.page.input_value("#time_neighbours") == "2"
    w.page.select_option("#layer", "trend")  # trend has a step but no time neighbours
    w.page.wait_for_function(READY, timeout=60000)
    assert w.page.is_visible("#step") and w.page.is_hidden("#time_neighbours")
    assert not w.errors and not w.external, (w.errors, w.external)


def test_time_control_fits_a_phone(chromium, gridtown_server):
    ctx = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pg = ctx.new_page()
    try:
        pg.goto(gridtown_server + "/?layer=gistar&" + PERIOD)
        pg.wait_for_function(READY, timeout=60000)
        pg.click("#drawer-toggle")
        pg.wait_for_function("() => document.body.classList.contains('drawer-open')")
        pg.locator("#time-control").scroll_into_view_if_needed()
        box = pg.locator("#time-control").bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        for sel in ("#time-prev", "#time-play", "#time-next", "#time-all", "#time-slider"):
            b = pg.locator(sel).bounding_box()
            assert b and b["x"] + b["width"] <= box["x"] + box["width"] + 0.5, (sel, b, box)
        pg.click("#time-next")
        pg.wait_for_function("() => document.getElementById('time-status').textContent === "
                             "'Month 1 of 3: January 2024'", timeout=15000)
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "time-control-390.png"))
    finally:
        ctx.close()
