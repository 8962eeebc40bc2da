"""Deprivation layers and the real Wolverhampton bundle through the API (skipped without the bundle)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.bundle


@pytest.fixture(scope="module")
def real_client(tmp_path_factory, sign_in):
    bundle = Path(os.environ.get("HOTSPOTS_BUNDLE") or Path(__file__).resolve().parents[3] / "shared" / "data")
    if not (bundle / "boundaries").is_dir():
        pytest.skip("real data bundle not found (set HOTSPOTS_BUNDLE or place shared/data beside the repo)")
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    from web import create_app
    root = tmp_path_factory.mktemp("wolves-web")
    config = load_config(env={}, data_dir=root / "data", instance_dir=root / "instance", bundle=bundle)
    install_bundle(config)
    ingest_paths(config, [bundle / "crime" / "wolverhampton-police-api-2018-06"])
    from argon2 import PasswordHasher
    from hotspots.users import UserStore
    user = UserStore.from_config(config, PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)).add_user(
        "analyst", "analyst-password-1", "analyst")
    c = create_app(config, test_config={"TESTING": True, "WARM_UP": False}).test_client()
    return sign_in(c, user)


def test_first_real_map_counts(real_client):
    fc = real_client.get("/api/v1/layers/count.geojson").get_json()
    assert len(fc["features"]) == 161
    assert sum(f["properties"]["count"] for f in fc["features"]) == 728
    assert all(f["properties"]["ward_name"] for f in fc["features"])
    wards = real_client.get("/api/v1/layers/wards.geojson").get_json()
    assert len(wards["features"]) == 20


def test_iod2025_domains_and_deciles(real_client):
    ov = real_client.get("/api/v1/overlays").get_json()
    dep = {d["key"]: d for d in ov["deprivation"]}
    slugs = [d["slug"] for d in dep["iod2025"]["domains"]]
    assert slugs[0] == "imd" and "income" in slugs and "indoors-sub-domain" in slugs and len(slugs) == 16
    for domain in ("imd", "crime", "outdoors-sub-domain"):
        rows = real_client.get(f"/api/v1/layers/iod2025?domain={domain}").get_json()["rows"]
        assert len(rows) == 161 and all(1 <= r["decile"] <= 10 for r in rows)
    r = real_client.get("/api/v1/layers/iod2025?domain=happiness")
    assert r.status_code == 404 and r.get_json()["column"] == "domain"


def test_iod2019_stays_on_lsoa2011(real_client):
    body = real_client.get("/api/v1/layers/iod2019?domain=income-deprivation-affecting-children-index").get_json()
    assert len(body["rows"]) == 158 and body["rows"][0]["code"].startswith("E01")
    assert body["metadata"]["geography"] == "lsoa11"
    assert "2019" in body["metadata"]["vintage"]


def test_crime_layers_carry_imd_decile(real_client):
    rows = real_client.get("/api/v1/layers/gistar").get_json()["rows"]
    assert all(1 <= r["imd_decile"] <= 10 for r in rows)
