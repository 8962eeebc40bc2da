"""What viewers see in the side panel and in the analysis value: published figures only."""
from __future__ import annotations

import csv
import io
import threading
import time

import pytest

SMALL = ["category=burglary", "category=violent-crime&from=2024-01&to=2024-01"]


def _hospital_app(gridtown_app_config):
    from web import create_app
    config = gridtown_app_config.with_overrides(disclosure={"rule": "hospital"})
    return create_app(config, test_config={"TESTING": True, "WARM_UP": False})


# -- 1: summary lines ------------------------------------------------------------------------------
@pytest.mark.parametrize("q", SMALL)
def test_panel_summary_lines_leak_no_hidden_count(public_client, client, q):
    """Public visitors: no suppressed area's count (or z) appears anywhere in the side-panel JSON."""
    full = {r["code"]: r for r in client.get(f"/api/v1/layers/gistar?{q}").get_json()["rows"]}
    view = {r["code"]: r for r in public_client.get(f"/api/v1/layers/gistar?{q}").get_json()["rows"]}
    hidden = [c for c, r in view.items() if r["suppressed"]]
    assert hidden
    s = public_client.get(f"/api/v1/hotspots?{q}").get_json()
    assert s["summary_lines"]
    lines = [ln for ln in s["summary_lines"] if any(c in ln for c in hidden)]
    if q == SMALL[0]:
        assert lines, "the fixture has a hidden 99% hot spot"
    for ln in lines:
        code = next(c for c in hidden if c in ln)
        assert "value" not in ln and "z =" not in ln, ln
        assert f"{full[code]['gi_z']:.2f}" not in ln
    for t in s["top"]:
        if t["code"] in hidden:
            assert t["value"] is None and t["z"] is None
    # the analyst still gets the engine's lines with values
    a = client.get(f"/api/v1/hotspots?{q}").get_json()
    assert any("value" in ln for ln in a["summary_lines"])


# -- 2: value under the hospital rule --------------------------------------------------------------
def test_hospital_rule_value_is_the_published_count(gridtown_app_config, users, sign_in):
    from hotspots.cache import clear as clear_cache
    app = _hospital_app(gridtown_app_config)
    c = sign_in(app.test_client(), users["vic"])
    q = "from=2024-01&to=2024-02&category=violent-crime"
    try:
        for layer in ("gistar", "lisa"):
            body = c.get(f"/api/v1/layers/{layer}?{q}").get_json()
            assert body["metadata"]["disclosure_rule"] == "hospital"
            for r in body["rows"]:
                if isinstance(r["count"], int):
                    assert r["value"] == r["count"], r
                else:
                    assert r["value"] is None, r
            text = c.get(f"/api/v1/downloads/{layer}.csv?{q}").get_data(as_text=True)
            rows = list(csv.DictReader(io.StringIO("\n".join(ln for ln in text.splitlines()
                                                             if not ln.startswith("#")))))
            for r in rows:
                if r["count"].isdigit():
                    assert float(r["value"]) == int(r["count"]), r
                else:
                    assert r["value"] == "", r
        s = c.get(f"/api/v1/hotspots?{q}").get_json()
        assert s["top"]
        for t in s["top"]:
            assert t["value"] is None if not isinstance(t["count"], int) else t["value"] == t["count"], t
        for ln in s["summary_lines"]:
            if "): value " in ln:
                v = float(ln.split("): value ")[1].split(",")[0])
                assert v % 5 == 0, ln
    finally:
        clear_cache()



# -- 9: one set of Gi* labels ----------------------------------------------------------------------
def test_gi_class_label_matches_engine_label_in_downloads(client, viewer_client):
    from hotspots.maps import GI_CLASSES
    from hotspots.stats import GI_LABELS
    assert {b: lab for b, (lab, _) in GI_CLASSES.items()} == GI_LABELS
    for c in (client, viewer_client):
        text = c.get("/api/v1/downloads/gistar.csv?category=violent-crime").get_data(as_text=True)
        rows = list(csv.DictReader(io.StringIO("\n".join(ln for ln in text.splitlines() if not ln.startswith("#")))))
        sig = [r for r in rows if r["gi_label"] in GI_LABELS.values()]
        assert sig and any(r["gi_label"].startswith("Hot") for r in sig)
        for r in sig:
            assert r["class_label"] == r["gi_label"], r


