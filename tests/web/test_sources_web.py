"""Partner sources through the web (issue 12): a hospital-style source on Gridtown and on the real
Wolverhampton bundle (Heath Town high in the hospital data), its layers under the hospital rule for
viewers, the ward comparison table and the joint hot-spot layer over HTTP."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from scipy import stats as sps


def _client(config, sign_in, role: str):
    from argon2 import PasswordHasher
    from hotspots.users import UserStore
    from web import create_app
    user = UserStore.from_config(config, PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)).add_user(
        f"{role}1", f"{role}-password-1", role)
    return sign_in(create_app(config, test_config={"TESTING": True, "WARM_UP": False}).test_client(), user)


@pytest.fixture(scope="module")
def gridtown(tmp_path_factory, sign_in):
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    from hotspots.sources import add_source
    from source_fixture import gridtown_hospital
    from synthetic_bundle import build, cell_centre, police_csv
    tmp = tmp_path_factory.mktemp("sources-web")
    b = build(tmp)
    rows = [(f"w{m}{i}{j}{q}", m, *cell_centre(i, j), "Violence and sexual offences")
            for m in ("2024-01", "2024-02", "2024-03") for (i, j) in ((0, 0), (0, 1), (1, 0), (1, 1))
            for q in range(5)]
    (b.root / "bundle" / "crime" / "planted.csv").write_text(police_csv(rows))
    config = load_config(b.config_path, env={}, data_dir=b.data_dir, instance_dir=b.instance_dir,
                         bundle=b.root / "bundle")
    install_bundle(config)
    ingest_paths(config, [b.root / "bundle" / "crime"])
    path, _ = gridtown_hospital(tmp)
    add_source(config, "hospital", path, "lsoa21", "period", "admissions", category_col="age_band",
               disclosure="hospital", title="A&E assault admissions, under 25", place="residence")
    return _client(config, sign_in, "analyst"), _client(config, sign_in, "viewer")


def test_source_layers_and_category_list(gridtown):
    analyst, viewer = gridtown
    cats = analyst.get("/api/v1/categories").get_json()["categories"]
    assert any(c["slug"] == "src:hospital" and c["group"] == "A&E assault admissions, under 25" for c in cats)
    html = viewer.get("/").get_data(as_text=True)
    assert '<optgroup label="A&amp;E assault admissions, under 25">' in html and 'value="src:hospital/18-24"' in html
    body = viewer.get("/api/v1/layers/gistar?category=src:hospital&from=2024-01&to=2024-03").get_json()
    assert body["metadata"]["disclosure"]["rule"] == "hospital"
    assert all(r["count"] in (0, "*") or r["count"] % 5 == 0 for r in body["rows"])
    r = viewer.get("/api/v1/layers/count?category=src:hospital&geography=grid")
    assert r.status_code == 400 and "geography" in r.get_json()["error"]


def test_ward_comparison_table_and_joint_hot_spot_map(gridtown):
    analyst, viewer = gridtown
    q = "versus=src:hospital&category=violent-crime&from=2024-01&to=2024-03&permutations=999"
    body = analyst.get(f"/api/v1/layers/comparison?geography=ward&{q}").get_json()
    rows = body["rows"]
    assert len(rows) == 4 and {"rank_a", "rank_b", "count", "count_b", "joint", "class_label"} <= set(rows[0])
    ref = sps.spearmanr([r["value_a"] for r in rows], [r["value_b"] for r in rows])
    assert body["metadata"]["spearman"]["rho"] == pytest.approx(ref.statistic, abs=1e-12)
    fc = analyst.get(f"/api/v1/layers/comparison.geojson?{q}").get_json()
    classes = {f["properties"]["class_label"] for f in fc["features"]}
    assert any(c.startswith("Hot spot only in Police") for c in classes)
    assert any(c.startswith("Hot spot only in A&E") for c in classes)
    legend = analyst.get(f"/api/v1/layers/comparison?{q}").get_json()["legend"]
    assert [i["plain"] for i in legend["items"]][0] == "Both sources see a cluster of high counts here"
    v = viewer.get(f"/api/v1/layers/comparison?geography=ward&{q}").get_json()
    assert "value_b" not in v["rows"][0] and v["metadata"]["computed_from"] == "protected tables"
    r = analyst.get("/api/v1/layers/comparison?geography=lsoa&category=src:hospital")
    assert r.status_code == 400 and r.get_json()["column"] == "versus"


@pytest.mark.parametrize("who", ["analyst", "viewer"])
def test_comparison_downloads_are_typed(gridtown, who, tmp_path):
    import io
    import sqlite3
    import pandas as pd
    import pyogrio
    c = gridtown[0] if who == "analyst" else gridtown[1]
    q = "versus=src:hospital&category=violent-crime&from=2024-01&to=2024-03"
    path = tmp_path / "cmp.gpkg"
    r = c.get(f"/api/v1/downloads/comparison.gpkg?{q}")
    assert r.status_code == 200
    path.write_bytes(r.data)
    layer = next(n for n, _ in pyogrio.list_layers(path) if n != "metadata")
    with sqlite3.connect(path) as db:
        types = {row[1]: row[2] for row in db.execute(f'PRAGMA table_info("{layer}")')}
    assert {"count", "count_b", "rank_a", "rank_b"} <= set(types)
    assert all(types[k] != "TEXT" for k in ("count", "count_b", "rank_a", "rank_b")), types
    df = pd.read_csv(io.BytesIO(c.get(f"/api/v1/downloads/comparison.csv?{q}").data))
    assert pd.api.types.is_numeric_dtype(df["count_b"]) and len(df) == 16
    if who == "viewer":
        assert "count_b_status" in df.columns and df.loc[df["count_b"].isna(), "count_b_status"].str.len().gt(0).all()


@pytest.mark.bundle
def test_wolverhampton_heath_town_hospital_against_police(tmp_path_factory, sign_in):
    bundle = Path(os.environ.get("HOTSPOTS_BUNDLE") or Path(__file__).resolve().parents[3] / "shared" / "data")
    if not (bundle / "boundaries").is_dir():
        pytest.skip("real data bundle not found (set HOTSPOTS_BUNDLE or place shared/data beside the repo)")
    from hotspots.bundle import install_bundle, load_boundary
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    from hotspots.sources import add_source
    from source_fixture import HEATH_TOWN, wolverhampton_hospital
    root = tmp_path_factory.mktemp("wolves-sources")
    config = load_config(env={}, data_dir=root / "data", instance_dir=root / "instance", bundle=bundle)
    install_bundle(config)
    ingest_paths(config, [bundle / "crime" / "wolverhampton-police-api-2018-06"])
    path, rows = wolverhampton_hospital(root, load_boundary(config, "lsoa21")["code"])
    rep = add_source(config, "hospital", path, "lsoa21", "period", "admissions", category_col="age_band",
                     disclosure="hospital", title="Under-25 assault admissions", place="residence",
                     provenance="synthetic fixture in the shape of an NHS ISTV extract")
    assert rep.accepted == 161 * 12 * 2 and rep.adds_up
    analyst = _client(config, sign_in, "analyst")
    q = "category=violent-crime&versus=src:hospital&from=2018-06&to=2018-06&permutations=999"
    body = analyst.get(f"/api/v1/layers/comparison?geography=ward&{q}").get_json()
    wards = {r["code"]: r for r in body["rows"]}
    assert len(wards) == 20 and wards[HEATH_TOWN]["rank_b"] == 1  # first in the hospital data
    assert wards[HEATH_TOWN]["rank_a"] > 1  # not first in the police data
    lsoa = analyst.get(f"/api/v1/layers/comparison?geography=lsoa&{q}").get_json()
    joint = {r["code"]: r["joint"] for r in lsoa["rows"]}
    from source_fixture import HEATH_TOWN_LSOAS
    assert sum(joint[c] in ("b", "both") for c in HEATH_TOWN_LSOAS) >= 4
    assert "where the person lives" in lsoa["metadata"]["note"]
    # the source over a year: Gi* by month runs, and the hospital rule applies for viewers
    viewer = _client(config, sign_in, "viewer")
    g = viewer.get("/api/v1/layers/gistar?category=src:hospital&from=2018-01&to=2018-12").get_json()
    assert g["metadata"]["disclosure"]["rule"] == "hospital" and len(g["rows"]) == 161
    top = {r["code"]: r for r in g["rows"]}
    assert all(top[c]["gi_label"].startswith("Hot spot") for c in HEATH_TOWN_LSOAS[:3])
