"""Issue 12 on the web: the ``where`` filter in the API and the map form, typed extras from the incidents
API, and the hour × weekday table (GET /api/v1/hours) for analysts and viewers."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from conftest import PASSWORDS, ROLES, sign_in


@pytest.fixture(scope="module")
def force_web(tmp_path_factory):
    from argon2 import PasswordHasher

    from force_extract import ingested_extract
    from hotspots.users import UserStore
    from web import create_app
    b, config, rows = ingested_extract(tmp_path_factory.mktemp("force-web"))
    st = UserStore.from_config(config, PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    users = {n: st.add_user(n, PASSWORDS[n], ROLES[n]) for n in ("ana", "vic")}
    app = create_app(config, test_config={"TESTING": True, "WARM_UP": False})
    return app, users, rows


@pytest.fixture
def analyst(force_web):
    app, users, _ = force_web
    return sign_in(app.test_client(), users["ana"])


@pytest.fixture
def viewer(force_web):
    app, users, _ = force_web
    return sign_in(app.test_client(), users["vic"])


def test_layer_api_filters_by_where(analyst, viewer, force_web):
    rows = force_web[2]
    q = "/api/v1/layers/count?category=violent-crime&where=victim_age_band%3D0-17,18-24"
    body = analyst.get(q).get_json()
    keep = rows[rows["category"].eq("violent-crime") & rows["victim_age_band"].isin(["0-17", "18-24"])]
    got = {r["code"]: r["count"] for r in body["rows"]}
    assert sum(got.values()) == len(keep) and got == {c: int((keep["lsoa21"] == c).sum()) for c in got}
    assert body["metadata"]["parameters"]["where"] == "victim_age_band=0-17,18-24"
    assert "victim age band 0-17 or 18-24" in body["title"]
    v = viewer.get(q)
    assert v.status_code == 200 and v.get_json()["metadata"]["computed_from"] if "computed_from" in \
        v.get_json()["metadata"] else v.status_code == 200
    assert viewer.get("/api/v1/layers/count?where=victim_age_band%3D99-100").status_code == 400
    r = viewer.get("/api/v1/layers/gistar?where=secret%3Dx")
    assert r.status_code == 404 and "unknown filter" in r.get_json()["error"]
    g = viewer.get("/api/v1/layers/gistar.geojson?where=weapon_flag%3Dtrue")
    assert g.status_code == 200


def test_incidents_api_returns_typed_extras_and_filters(analyst, force_web):
    rows = force_web[2]
    body = analyst.get("/api/v1/incidents?where=weapon_flag%3Dtrue&category=violent-crime,burglary,vehicle-crime"
                       "&limit=10000").get_json()
    keep = rows[rows["weapon"]]
    assert body["total"] == len(keep) and body["parameters"]["where"] == "weapon_flag=true"
    inc = body["incidents"]
    assert all(i["extras"]["weapon_flag"] is True for i in inc)
    assert {i["extras"]["victim_age_band"] for i in inc} <= {"0-17", "18-24", "25-34", "35+"}
    assert all(i["time"] and i["subcategory"] for i in inc)
    csv = analyst.get("/api/v1/incidents?format=csv&limit=5&category=violent-crime").get_data(as_text=True)
    frame = pd.read_csv(io.StringIO(csv), comment=None, skiprows=2)
    assert {"victim_age_band", "weapon_flag", "beat", "time", "subcategory"} <= set(frame.columns)


def test_map_form_offers_the_filter_control(viewer, client):
    page = viewer.get("/?where=victim_age_band%3D18-24").get_data(as_text=True)
    assert 'id="where-filter"' in page and 'name="where"' in page
    assert '<option value="victim_age_band=18-24" selected>' in page
    assert 'value="weapon_flag=true"' in page and 'value="subcategory=8N"' in page
    # a configuration without declared extras shows no control
    assert 'id="where-filter"' not in client.get("/").get_data(as_text=True)


def test_hours_api(analyst, viewer, force_web):
    rows = force_web[2]
    lsoa = rows["lsoa21"].value_counts().index[0]
    body = analyst.get(f"/api/v1/hours?geography=lsoa&code={lsoa}&category=violent-crime").get_json()
    keep = rows[rows["lsoa21"].eq(lsoa) & rows["category"].eq("violent-crime")]
    want = keep.groupby(["weekday", "hour"]).size().unstack(fill_value=0).reindex(
        index=range(7), columns=range(24), fill_value=0).to_numpy()
    assert np.array_equal(np.array(body["counts"]), want) and body["has_times"] and body["total"] == len(keep)
    assert body["weekdays"][0] == "Monday" and body["computed_from"] == "exact counts"
    whole = analyst.get("/api/v1/hours?category=violent-crime").get_json()
    assert whole["scope"] == "the whole area" and whole["total"] == int(rows["category"].eq("violent-crime").sum())
    v = viewer.get(f"/api/v1/hours?geography=lsoa&code={lsoa}&category=violent-crime").get_json()
    flat = [x for row in v["counts"] for x in row]
    assert v["computed_from"] == "protected table" and v["rule"] == "default"
    assert all(x == "<5" or x == 0 or (isinstance(x, int) and x >= 5) for x in flat)
    assert any("display rule" in n for n in v["notes"])
    assert viewer.get("/api/v1/hours?geography=lsoa&code=E01999999").status_code == 404
    assert viewer.get(f"/api/v1/hours?geography=lsoa&code={lsoa}&codes={lsoa}").status_code == 400
    spot = sorted(rows["lsoa21"].unique())[:2]
    hs = analyst.get(f"/api/v1/hours?geography=lsoa&codes={','.join(spot)}&category=burglary").get_json()
    assert hs["total"] == int((rows["lsoa21"].isin(spot) & rows["category"].eq("burglary")).sum())
    assert viewer.get(f"/api/v1/hours?geography=lsoa&codes={','.join(spot)}").status_code == 403


def test_hours_without_times_says_so(client):
    body = client.get("/api/v1/hours").get_json()
    assert body["ok"] and not body["has_times"] and "no times in this data" in body["notes"][0]
