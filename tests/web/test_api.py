"""The JSON API: every route answers with the envelope, errors are 4xx JSON naming the parameter."""
from __future__ import annotations

import gzip
import json

import pytest

ROUTES_OK = [
    "/api/v1/", "/api/v1/health", "/api/v1/categories", "/api/v1/periods", "/api/v1/geographies",
    "/api/v1/areas", "/api/v1/areas?geography=ward", "/api/v1/layers", "/api/v1/layers/count",
    "/api/v1/layers/rate", "/api/v1/layers/eb_rate", "/api/v1/layers/gistar", "/api/v1/layers/lisa",
    "/api/v1/layers/change", "/api/v1/layers/wards", "/api/v1/downloads", "/api/v1/hotspots",
    "/api/v1/compare", "/api/v1/overlays", "/api/v1/hotspots?geography=ward&significance=fdr",
    "/api/v1/layers/gistar?variable=rate&weights=rook&significance=bonferroni",
    "/api/v1/layers/lisa?variable=eb_rate&weights=knn:3",
]


@pytest.mark.parametrize("url", ROUTES_OK)
def test_routes_answer_ok(client, url):
    r = client.get(url)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.is_json and r.get_json()["ok"] is True


ERRORS = [
    ("/api/v1/layers/count?category=no-such-crime", 404, "category", "unknown category"),
    ("/api/v1/layers/count?from=2024-13", 400, "from", "YYYY-MM"),
    ("/api/v1/layers/count?to=24-01", 400, "to", "YYYY-MM"),
    ("/api/v1/layers/count?from=2024-03&to=2024-01", 400, "from", "after"),
    ("/api/v1/layers/count?geography=county", 404, "geography", "unknown geography"),
    ("/api/v1/areas?geography=county", 404, "geography", "unknown geography"),
    ("/api/v1/layers/nosuchlayer", 404, "layer", "unknown layer"),
    ("/api/v1/layers/nosuchlayer.geojson", 404, "layer", "unknown layer"),
    ("/api/v1/downloads/count.shp", 404, "format", "unknown format"),
    ("/api/v1/hotspots?significance=magic", 400, "significance", "significance must be one of"),
    ("/api/v1/hotspots?alpha=2", 400, "alpha", "between"),
    ("/api/v1/hotspots?alpha=abc", 400, "alpha", "number"),
    ("/api/v1/hotspots?weights=hexagon", 400, "weights", "weights"),
    ("/api/v1/layers/count?classes=random", 400, "classes", "classes must be one of"),
    ("/api/v1/compare?compare_from=2024-01", 400, "compare_from", "both"),
    ("/api/v1/hotspots?category=no-such-crime", 404, "category", "unknown category"),
    ("/api/v1/layers/overlay-nothing", 404, "layer", "unknown layer"),
]


@pytest.mark.parametrize("url,status,column,text", ERRORS)
def test_errors_are_json_4xx(client, url, status, column, text):
    r = client.get(url)
    assert r.status_code == status, r.get_data(as_text=True)
    body = r.get_json()
    assert body["ok"] is False and body["status"] == status
    assert text.lower() in body["error"].lower()
    assert body.get("column") == column
    assert "/" not in body["error"].split("(")[0] or "YYYY" in body["error"]  # no server paths leak


def test_unknown_api_route_and_method_are_json(client):
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.get_json()["ok"] is False
    r = client.post("/api/v1/categories")
    assert r.status_code == 405 and r.get_json()["status"] == 405


def test_openapi_documents_every_route(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    documented = set(doc["paths"])
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            path = rule.rule.replace("<name>", "{name}").replace("<fmt>", "{fmt}")
            assert path in documented, f"{rule.rule} not in openapi.json"
    assert "/api/v1/layers/{name}.geojson" in documented
    for spec in doc["paths"].values():
        assert {"200", "400", "404"} <= set(spec["get"]["responses"])


def test_categories_and_periods(client):
    cats = client.get("/api/v1/categories").get_json()["categories"]
    assert {c["slug"] for c in cats} == {"violent-crime", "burglary"}
    assert client.get("/api/v1/periods").get_json()["months"] == ["2024-01", "2024-02", "2024-03"]


def test_areas_have_wards_and_population(client):
    areas = client.get("/api/v1/areas").get_json()["areas"]
    assert len(areas) == 16
    assert all(a["ward_name"].startswith("Ward ") and a["population"] >= 1000 for a in areas)


def test_map_geojson_is_rfc7946_and_styled(client):
    r = client.get("/api/v1/layers/gistar.geojson")
    assert r.mimetype == "application/geo+json"
    fc = json.loads(r.data)
    assert fc["type"] == "FeatureCollection" and "crs" not in fc
    assert len(fc["features"]) == 16
    assert fc["legend"]["title"].startswith("Getis-Ord Gi*")
    assert [i["label"] for i in fc["legend"]["items"]][:4] == [
        "Hot spot 99% confidence", "Hot spot 95% confidence", "Hot spot 90% confidence", "Not significant"]
    assert any("Open Government Licence" in a for a in fc["attribution"]) or fc["attribution"]
    for f in fc["features"]:
        p = f["properties"]
        assert p["fill"].startswith("#") and p["class_label"]
        for ring in f["geometry"]["coordinates"]:
            for lon, lat in ring:
                assert -3 < lon < 0 and 52 < lat < 53  # WGS84 lon/lat order
                assert round(lon, 5) == lon
    # the planted hot corner (cell 0,0) is a hot spot
    hot = {f["properties"]["code"]: f["properties"]["gi_bin"] for f in fc["features"]}
    assert hot["E01090000"] > 0


def test_layer_counts_match_filters(client):
    rows = client.get("/api/v1/layers/count?from=2024-01&to=2024-01&category=violent-crime").get_json()["rows"]
    by = {r["code"]: r["count"] for r in rows}
    # 29 planted in January (4 of them burglaries: q = 3 in each corner cell) + the bundle's own sample
    assert sum(by.values()) == 29 - 4 + 1
    all_cats = client.get("/api/v1/layers/count?from=2024-01&to=2024-01&category=violent-crime,burglary").get_json()
    assert sum(r["count"] for r in all_cats["rows"]) == 30


def test_significance_modes_show_cutoffs(client):
    raw = client.get("/api/v1/hotspots").get_json()
    fdr = client.get("/api/v1/hotspots?significance=fdr").get_json()
    bon = client.get("/api/v1/hotspots?significance=bonferroni").get_json()
    assert raw["cutoffs"]["gi"]["95%"] == 0.05
    assert bon["cutoffs"]["gi"]["95%"] == pytest.approx(0.05 / 16)
    assert 0 <= fdr["cutoffs"]["gi"]["95%"] <= 0.05
    assert bon["n_hot"] <= raw["n_hot"]
    assert any("Bonferroni" in m for m in bon["messages"])
    assert "Moran's I" in raw["moran_text"]
    assert raw["top"][0]["ward"].startswith("Ward ")


def test_period_comparison_table_and_layer_agree(client):
    c = client.get("/api/v1/compare?from=2024-03&to=2024-03").get_json()
    assert c["baseline"] == {"from": "2024-02", "to": "2024-02"}
    assert c["total_after"] - c["total_before"] == sum(r["change"] for r in c["rows"])
    assert "%" in c["sentence"]
    layer = client.get("/api/v1/layers/change?from=2024-03&to=2024-03&compare_from=2024-02&compare_to=2024-02")
    rows = {r["code"]: r["change"] for r in layer.get_json()["rows"]}
    assert rows == {r["code"]: r["change"] for r in c["rows"]}


def test_downloads_carry_filters_attribution_and_metadata(client):
    q = "from=2024-01&to=2024-02&category=violent-crime&significance=fdr"
    r = client.get(f"/api/v1/downloads/gistar.geojson?{q}")
    cd = r.headers["Content-Disposition"]
    assert "gistar" in cd and "2024-01_2024-02" in cd and "violent-crime" in cd and "fdr" in cd and cd.endswith('.geojson"')
    fc = json.loads(r.data)
    assert fc["type"] == "FeatureCollection" and "crs" not in fc
    assert fc["metadata"]["parameters"]["significance"] == "fdr"
    assert fc["metadata"]["method"]["permutations"] == 999
    assert fc["attribution"] and "note" in fc["metadata"]
    assert {"gi_z", "gi_p", "gi_label", "ward_name"} <= set(fc["features"][0]["properties"])
    csv = client.get(f"/api/v1/downloads/count.csv?{q}")
    text = csv.get_data(as_text=True)
    assert text.startswith("# ") and "police.uk" in text and "code,name" in text
    assert csv.headers["Content-Disposition"].endswith('.csv"')
    import geopandas as gpd
    import pyogrio
    gp = client.get(f"/api/v1/downloads/lisa.gpkg?{q}")
    path = __import__("tempfile").mktemp(suffix=".gpkg")
    with open(path, "wb") as fh:
        fh.write(gp.data)
    layers = [name for name, _ in pyogrio.list_layers(path)]
    assert "metadata" in layers
    g = gpd.read_file(path, layer=[n for n in layers if n != "metadata"][0])
    assert len(g) == 16 and "lisa_label" in g


def test_downloads_index_lists_every_layer(client):
    d = client.get("/api/v1/downloads?from=2024-01&to=2024-01").get_json()
    names = {x["layer"] for x in d["downloads"]}
    assert {"count", "gistar", "lisa", "change", "wards"} <= names
    assert all(set(x["formats"]) == {"geojson", "csv", "gpkg"} for x in d["downloads"])


def test_gzip_when_accepted(client):
    plain = client.get("/api/v1/layers/count.geojson")
    zipped = client.get("/api/v1/layers/count.geojson", headers={"Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(zipped.data) == plain.data
    assert len(zipped.data) < len(plain.data) / 2
    js = client.get("/static/hotspots.js", headers={"Accept-Encoding": "gzip"})
    assert js.headers.get("Content-Encoding") == "gzip"
    js.close()


def test_results_are_cached_per_filter_set(config):
    from hotspots import pipeline
    from hotspots.request import Audience
    p = pipeline.parse(config, {"layer": "gistar"})
    a = pipeline.build_layer(config, p, Audience.VIEWER)
    assert pipeline.build_layer(config, p, Audience.VIEWER) is a
    assert pipeline.build_layer(config, p, Audience.ANALYST) is not a
    assert pipeline.build_layer(config, pipeline.parse(config, {"layer": "gistar", "significance": "fdr"}),
                                Audience.VIEWER) is not a


def test_eb_rates_shrink_towards_the_mean(client):
    rows = client.get("/api/v1/layers/eb_rate?from=2024-01&to=2024-03").get_json()["rows"]
    raw = [r["rate_per_1000"] for r in rows]
    eb = [r["eb_rate_per_1000"] for r in rows]
    assert max(eb) <= max(raw) and min(eb) >= min(raw)
