"""The map page's time controls on gridtown (three months): the month-by-month control and the emerging
layer's step / time-neighbour menus are in the page, labelled, and round-trip the URL's values; the
request the form makes for too few steps is a 4xx whose message the page shows (tests/browser for the
clicking)."""
from __future__ import annotations

import json
import re

from hotspots.request import STEPS, TIME_NEIGHBOURS_MENU


def _page(client, query: str) -> str:
    r = client.get("/?" + query)
    assert r.status_code == 200
    return r.get_data(as_text=True)


def _selected(html: str, name: str) -> list[str]:
    select = re.search(rf'<select id="{name}" name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, name
    return re.findall(r'<option value="([^"]+)" selected', select.group(1))


def test_step_and_time_neighbours_menus_round_trip_the_url(client):
    html = _page(client, "layer=emerging&step=quarter&time_neighbours=2")
    assert _selected(html, "step") == ["quarter"] and _selected(html, "time_neighbours") == ["2"]
    options = re.search(r'<select id="step".*?</select>', html, re.S).group(0)
    assert re.findall(r'value="(\w+)"', options) == list(STEPS)
    options = re.search(r'<select id="time_neighbours".*?</select>', html, re.S).group(0)
    assert re.findall(r'value="(\d+)"', options) == [str(k) for k in TIME_NEIGHBOURS_MENU]
    for name in ("step", "time_neighbours"):
        assert f'<label for="{name}">' in html
    state = json.loads(re.search(r'<script id="hotspots-state"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert state["params"]["step"] == "quarter" and state["params"]["time_neighbours"] == "2"
    # the defaults when the URL says nothing
    html = _page(client, "layer=emerging")
    assert _selected(html, "step") == ["month"] and _selected(html, "time_neighbours") == ["1"]


def test_the_time_control_is_in_the_page_and_labelled(client):
    html = _page(client, "layer=gistar&from=2024-01&to=2024-03")
    assert '<section id="time-control"' in html and 'aria-labelledby="time-heading"' in html
    assert '<label for="time-slider"' in html and '<input type="range" id="time-slider"' in html
    for button in ("time-prev", "time-play", "time-next", "time-all"):
        assert re.search(rf'<button type="button" id="{button}"[^>]*>[A-Z][a-z]', html), button


def test_the_forms_step_request_for_too_few_steps_is_a_4xx_with_the_reason(client):
    # what the page asks for when the user picks step = quarter on gridtown's three months
    r = client.get("/api/v1/layers/emerging.geojson?layer=emerging&from=2024-01&to=2024-03&step=quarter"
                   "&time_neighbours=1&category=violent-crime")
    assert r.status_code == 400
    body = r.get_json()
    assert body["ok"] is False and "1 time step(s)" in body["error"] and "at least 10" in body["error"]
    r = client.get("/api/v1/layers/trend.geojson?from=2024-01&to=2024-03&step=year")
    assert r.status_code == 400 and r.get_json()["column"] == "step" and "whole years" in r.get_json()["error"]
