"""Grid, KDE and incident-point layers through the JSON API and the map page (issue 11)."""
from __future__ import annotations

import json

import numpy as np
import pytest

API = "/api/v1"


def test_grid_layers_in_the_layer_list_points_for_analysts_only(client, viewer_client):
    analyst = [x["name"] for x in client.get(f"{API}/layers").get_json()["layers"]]
    viewer = [x["name"] for x in viewer_client.get(f"{API}/layers").get_json()["layers"]]
    assert {"grid_count", "grid_gistar", "kde", "points"} <= set(analyst)
    assert {"grid_count", "grid_gistar", "kde"} <= set(viewer) and "points" not in viewer


def test_grid_gistar_geojson_for_the_map(client):
    r = client.get(f"{API}/layers/grid_gistar.geojson?cell=250&permutations=99&category=violent-crime")
    assert r.status_code == 200, r.get_data(as_text=True)
    fc = json.loads(r.get_data())
    assert fc["features"] and fc["features"][0]["geometry"]["type"] == "Polygon"
    p = fc["features"][0]["properties"]
    assert p["code"].startswith("sq250_") and "gi_z" in p and "fill" in p
    assert "distance:500 weights" in fc["legend"]["note"] and "False Discovery Rate" in fc["legend"]["note"]
    meta = client.get(f"{API}/layers/grid_gistar?cell=250&permutations=99").get_json()["metadata"]
    assert meta["grid"]["cell_m"] == 250 and meta["parameters"]["significance"] == "fdr"


def test_geography_grid_maps_count_to_grid_count(client):
    a = client.get(f"{API}/layers/count?geography=grid&cell=500&shape=hex").get_json()
    assert a["layer"] == "grid_count" and all(r["code"].startswith("hx500_") for r in a["rows"])


def test_viewer_grid_counts_never_show_1_to_4(viewer_client, client):
    assert viewer_client.get(f"{API}/layers/grid_count?cell=100&category=violent-crime").status_code == 400
    q = "cell=250&category=violent-crime"
    rows = viewer_client.get(f"{API}/layers/grid_count?{q}").get_json()["rows"]
    shown = [r["count"] for r in rows if not isinstance(r["count"], str)]
    assert shown and not any(1 <= v <= 4 for v in shown)
    assert any(isinstance(r["count"], str) for r in rows)
    exact = {r["code"]: r["count"] for r in client.get(f"{API}/layers/grid_count?{q}").get_json()["rows"]}
    assert any(exact[r["code"]] != r["count"] for r in rows)


def test_viewer_kde_minimum_bandwidth_is_a_400(viewer_client, client):
    r = viewer_client.get(f"{API}/layers/kde?cell=100&bandwidth=200")
    assert r.status_code == 400
    body = r.get_json()
    assert "250 m minimum published to viewers" in json.dumps(body)
    ok = viewer_client.get(f"{API}/layers/kde.geojson?cell=100&bandwidth=400")
    assert ok.status_code == 200
    legend = json.loads(ok.get_data())["legend"]
    assert legend["title"] == "Incidents per km²" and "no single incident can be located" in legend["note"]
    assert client.get(f"{API}/layers/kde?cell=100&bandwidth=200").status_code == 200


def test_kde_downloads_and_geotiff(client, tmp_path):
    import rasterio
    r = client.get(f"{API}/layers/kde.tif?cell=250&bandwidth=500")
    assert r.status_code == 200 and r.mimetype == "image/tiff"
    path = tmp_path / "k.tif"
    path.write_bytes(r.get_data())
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 27700 and src.tags()["kernel"] == "quartic"
        band = src.read(1)
    rows = client.get(f"{API}/layers/kde?cell=250&bandwidth=500").get_json()["rows"]
    assert np.nanmax(band) == pytest.approx(max(r["density"] for r in rows))
    csv = client.get(f"{API}/downloads/kde.csv?cell=250&bandwidth=500")
    assert csv.status_code == 200 and b"density" in csv.get_data()
    hexes = client.get(f"{API}/layers/kde.tif?cell=250&bandwidth=500&shape=hex")
    assert hexes.status_code == 400 and "square grid" in json.dumps(hexes.get_json())


def test_points_are_403_for_viewers_and_clustered_for_analysts(viewer_client, client):
    assert viewer_client.get(f"{API}/layers/points.geojson").status_code == 403
    assert viewer_client.get(f"{API}/downloads/points.csv").status_code == 403
    r = client.get(f"{API}/layers/points.geojson?category=violent-crime&from=2024-01&to=2024-01")
    assert r.status_code == 200
    fc = json.loads(r.get_data())
    assert fc["features"][0]["geometry"]["type"] == "Point"
    assert {"category_label", "month", "location", "outcome"} <= set(fc["features"][0]["properties"])
    page = client.get("/").get_data(as_text=True)
    assert "vendor/markercluster/leaflet.markercluster.js" in page and "MarkerCluster.css" in page


@pytest.mark.parametrize("query, status, text", [
    ("layer=grid_count&cell=0", 400, "cell"),
    ("layer=grid_count&cell=300", 400, "cell must be one of 100, 250, 500, 1000"),
    ("layer=kde&cell=500&bandwidth=250", 400, "smaller than the cell size"),
    ("layer=grid_count&category=burglary&from=2024-03&to=2024-03", 400, "no incidents in this period"),
    ("layer=grid_gistar&weights=distance:250&cell=500&permutations=99", 400, "has a neighbour"),
    ("layer=lisa&geography=grid", 400, "geography=grid is offered by the layers"),
])
def test_bad_grid_requests_are_json_4xx(client, query, status, text):
    name = query.split("&")[0].split("=")[1]
    r = client.get(f"{API}/layers/{name}?{query}")
    assert r.status_code == status, r.get_data(as_text=True)
    assert text in json.dumps(r.get_json(), ensure_ascii=False)


def test_geography_grid_does_not_break_layers_without_a_geography(client):
    """The map sends its filters (geography=grid included, once a grid layer is shown) to every visible layer."""
    assert client.get(f"{API}/layers/wards.geojson?geography=grid&cell=250").status_code == 200
    assert client.get(f"{API}/layers/points?geography=grid&category=violent-crime").status_code == 200


def test_grid_emerging_through_the_api_and_the_map_page(client, viewer_client):
    # one place: emerging hot spots with geography=grid are the grid_emerging kind
    r = client.get(f"{API}/layers/emerging?geography=grid&cell=250&category=violent-crime")
    body = r.get_json()
    # gridtown has three months: the cube is refused with the reason and the fix, by either name
    assert r.status_code == 400 and "at least 10" in body["error"] and "longer period" in body["error"]
    again = client.get(f"{API}/layers/grid_emerging?cell=250&category=violent-crime")
    assert again.status_code == 400 and again.get_json()["error"] == body["error"]
    # viewers: no cell below 250 m, refused before any work
    small = viewer_client.get(f"{API}/layers/grid_emerging?cell=100&category=violent-crime")
    assert small.status_code == 400 and "for analysts" in small.get_json()["error"]
    assert "grid_emerging" in [x["name"] for x in viewer_client.get(f"{API}/layers").get_json()["layers"]]
    # the map page lists the grid layers in its layer menu and carries the grid menus for the form
    page = viewer_client.get("/?layer=kde").get_data(as_text=True)
    state = json.loads(page.split('id="hotspots-state" type="application/json"')[1].split(">", 1)[1]
                       .split("</script>", 1)[0])
    assert state["grid"]["cell"] == [100, 250, 500, 1000] and "grid_emerging" in state["grid"]["layers"]
    assert all(w.startswith(("distance:", "knn:")) for w in state["grid"]["weights"])
    for name in ("grid_count", "grid_gistar", "kde", "grid_emerging"):
        assert f'<option value="{name}"' in page
