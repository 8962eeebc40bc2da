"""Disclosure control on every viewer-level output: map layers, tooltips, legends, API tables, downloads,
side panel, period comparison, category counts. Analysts see the full data."""
from __future__ import annotations

import csv
import io
import json

import pytest

Q = "from=2024-01&to=2024-01&category=violent-crime"


def _rows(c, layer, q=Q):
    r = c.get(f"/api/v1/layers/{layer}?{q}")
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def _small(v):
    return isinstance(v, int) and 1 <= v <= 4


def test_viewer_counts_1_to_4_shown_as_label_analyst_sees_all(client, viewer_client):
    full = {r["code"]: r for r in _rows(client, "count")["rows"]}
    body = _rows(viewer_client, "count")
    view = {r["code"]: r for r in body["rows"]}
    assert any(_small(r["count"]) for r in full.values())  # the fixture has small counts to hide
    for code, r in view.items():
        assert not _small(r["count"]), r
        if _small(full[code]["count"]):  # one month, one category: one protected cell per area
            assert r["count"] == "<5" and r["suppressed"] is True
            assert r["rate_per_1000"] is None and r["eb_rate_per_1000"] is None
            assert r["class_label"].startswith("Suppressed")
        if full[code]["count"] == 0:
            assert r["count"] == 0
        if r["suppressed"] is False:  # the protected value: the count plus a noise of at most 2, never small
            assert abs(r["count"] - full[code]["count"]) <= 2 and r["count"] >= 5 or r["count"] == 0
    # over every category and month (many cells), the published counts are the protected table's sums
    q = "category=" + ",".join(c["slug"] for c in client.get("/api/v1/categories").get_json()["categories"])
    full_all = {r["code"]: r["count"] for r in _rows(client, "count", q)["rows"]}
    view_all = [(r["count"], full_all[r["code"]]) for r in _rows(viewer_client, "count", q)["rows"]
                if not r["suppressed"] and r["count"]]
    assert len(view_all) >= 3 and sum(v != f for v, f in view_all) >= 1, view_all
    # secondary suppression: no ward has exactly one hidden LSOA while its total is published
    meta = body["metadata"]
    assert meta["disclosure_rule"] == "default" and meta["disclosure"]["rule"] == "default"
    assert any(i["label"].startswith("Suppressed") for i in body["legend"]["items"])
    labels = " ".join(i["label"] for i in body["legend"]["items"])
    for n in ("1 –", "2 –", "3 –", "4 –"):
        assert not labels.startswith(n)
    assert "default rule" in body["legend"]["note"]
    assert full[next(iter(full))]["suppressed"] if "suppressed" in full[next(iter(full))] else True


def test_ward_totals_hide_what_protects_lsoas(client, viewer_client):
    lsoa = _rows(viewer_client, "count")["rows"]
    wards = {r["code"]: r for r in _rows(viewer_client, "count", Q + "&geography=ward")["rows"]}
    for w in {r["ward_code"] for r in lsoa}:
        cells = [r for r in lsoa if r["ward_code"] == w]
        hidden = [r for r in cells if r["suppressed"]]
        if len(hidden) == 1:
            assert wards[w]["suppressed"], f"ward {w} total would give back its one hidden LSOA"
        if not wards[w]["suppressed"] and hidden:
            shown = sum(r["count"] for r in cells if not r["suppressed"])
            assert len(hidden) >= 2 and wards[w]["count"] - shown >= 2


def test_gistar_keeps_class_blanks_statistics_of_suppressed(client, viewer_client):
    full = {r["code"]: r for r in _rows(client, "gistar")["rows"]}
    view = _rows(viewer_client, "gistar")["rows"]
    hidden = [r for r in view if r["suppressed"]]
    assert hidden
    for r in hidden:
        assert r["gi_z"] is None and r["gi_p"] is None and r["value"] is None and r["gi_p_sim"] is None
        assert r["gi_label"] and r["class_label"] == r["gi_label"]  # the class stays
    # statistics are the viewer's own analysis of the protected table, not the analyst's exact one
    shown = [r for r in view if not r["suppressed"]]
    assert all(isinstance(r["gi_z"], float) for r in shown)
    assert any(r["gi_z"] != pytest.approx(full[r["code"]]["gi_z"]) for r in shown)


def test_map_geojson_and_tooltips_are_suppressed(viewer_client):
    fc = viewer_client.get(f"/api/v1/layers/lisa.geojson?{Q}").get_json()
    props = [f["properties"] for f in fc["features"]]
    assert not any(_small(p["count"]) for p in props)
    assert any(p["count"] == "<5" for p in props)
    assert all(p["lisa_i"] is None for p in props if p["suppressed"])


@pytest.mark.parametrize("fmt", ["csv", "geojson", "gpkg"])
def test_downloads_are_suppressed_and_record_the_rule(viewer_client, fmt):
    r = viewer_client.get(f"/api/v1/downloads/count.{fmt}?{Q}")
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    if fmt == "csv":
        text = r.get_data(as_text=True)
        rows = list(csv.DictReader(io.StringIO(text)))  # data only: the rule is in the zip's metadata.json
        assert not any(row["count"] in ("1", "2", "3", "4") for row in rows)
        assert any(row["count"] == "" and row["count_status"] == "suppressed: 1-4" for row in rows)
    elif fmt == "geojson":
        fc = json.loads(r.data)
        assert fc["metadata"]["disclosure_rule"] == "default"
        assert not any(_small(f["properties"]["count"]) for f in fc["features"])
    else:
        assert r.data[:15] == b"SQLite format 3"


def test_analyst_download_records_no_suppression(client):
    fc = json.loads(client.get(f"/api/v1/downloads/count.geojson?{Q}").data)
    assert fc["metadata"]["disclosure_rule"] == "none"
    assert "analyst" in fc["metadata"]["disclosure"]["audience"]


def test_panel_and_comparison_for_viewers(client, viewer_client):
    s = viewer_client.get(f"/api/v1/hotspots?{Q}").get_json()
    assert any("suppressed" in m for m in s["messages"])
    for t in s["top"]:
        assert not _small(t["count"])
    c = viewer_client.get("/api/v1/compare?from=2024-03&to=2024-03&category=violent-crime").get_json()
    for row in c["rows"]:
        assert not _small(row["count_before"]) and not _small(row["count_after"])
        if row["count_before"] in ("<5", "*") or row["count_after"] in ("<5", "*"):
            assert row["change"] == "*" and row["pct_change"] is None
    full = client.get("/api/v1/compare?from=2024-03&to=2024-03&category=violent-crime").get_json()
    assert any(_small(r["count_after"]) for r in full["rows"])
    ch = viewer_client.get("/api/v1/layers/change?from=2024-03&to=2024-03").get_json()
    assert ch["metadata"]["disclosure_rule"] == "default"


def test_nested_periods_hide_small_differences(viewer_client):
    # baseline January inside the current January-March: the change is itself a count
    c = viewer_client.get("/api/v1/compare?from=2024-01&to=2024-03&compare_from=2024-01&compare_to=2024-01"
                          "&category=violent-crime").get_json()
    for row in c["rows"]:
        if isinstance(row["change"], int):
            assert row["change"] == 0 or row["change"] >= 5


def test_category_counts_suppressed_for_viewers(viewer_client, client):
    v = {c["slug"]: c["count"] for c in viewer_client.get("/api/v1/categories").get_json()["categories"]}
    f = {c["slug"]: c["count"] for c in client.get("/api/v1/categories").get_json()["categories"]}
    for slug, n in f.items():  # sums of protected cells, the small-number rule on top
        assert not (isinstance(v[slug], int) and 1 <= v[slug] <= 4)
        if n == 0:
            assert v[slug] == 0
        if n >= 100:
            assert abs(v[slug] - n) <= 0.2 * n


def test_hospital_rule_per_dataset(gridtown_app_config, users, sign_in):
    """A dataset naming the hospital rule makes crime layers use it: 1-7 hidden, others rounded to 5."""
    from dataclasses import replace
    from web import create_app
    from hotspots.cache import clear as clear_cache
    ds = dict(gridtown_app_config.datasets)
    key = next(k for k, d in ds.items() if d.kind == "incidents") if any(
        d.kind == "incidents" for d in ds.values()) else None
    if key:
        ds[key] = replace(ds[key], disclosure="hospital")
        config = gridtown_app_config.with_overrides(datasets=ds)
    else:
        config = gridtown_app_config.with_overrides(disclosure={"rule": "hospital"})
    app = create_app(config, test_config={"TESTING": True, "WARM_UP": False})
    c = sign_in(app.test_client(), users["vic"])
    body = c.get("/api/v1/layers/count?from=2024-01&to=2024-02&category=violent-crime").get_json()
    assert body["metadata"]["disclosure_rule"] == "hospital"
    counts = [r["count"] for r in body["rows"]]
    assert "*" in counts
    assert all(v == 0 or v == "*" or (isinstance(v, int) and v % 5 == 0 and v >= 10) or v == 5 for v in counts)
    assert not any(isinstance(v, int) and 1 <= v <= 7 for v in counts)
    clear_cache()


def test_config_disclosure_rule_parsed(tmp_path):
    from hotspots.config import DEFAULT_CONFIG, load_config
    from hotspots.errors import ConfigError
    text = DEFAULT_CONFIG.read_text().replace('[disclosure]\nrule = "default"', '[disclosure]\nrule = "hospital"')
    p = tmp_path / "h.toml"
    p.write_text(text)
    assert load_config(p, env={}).disclosure == {"rule": "hospital"}
    p.write_text(text.replace('rule = "hospital"', 'rule = "nope"'))
    with pytest.raises(ConfigError):
        load_config(p, env={})


@pytest.mark.parametrize("layer", ["count", "change"])
def test_legend_counts_add_up_to_the_areas_shown(viewer_client, layer):
    """Each legend class counts the areas drawn in it, the suppressed class included (no area twice)."""
    body = viewer_client.get(f"/api/v1/layers/{layer}?from=2024-02&to=2024-02&category=violent-crime").get_json()
    drawn = {}
    for r in body["rows"]:
        drawn[r["class_label"]] = drawn.get(r["class_label"], 0) + 1
    for item in body["legend"]["items"]:
        if "n" in item:
            assert item["n"] == drawn.get(item["label"], 0), item
    assert sum(i.get("n", 0) for i in body["legend"]["items"]) == len(body["rows"])
