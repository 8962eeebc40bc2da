"""The time layers through the API on gridtown (three months: a trend, but too few steps for emerging hot
spots): status codes, messages, columns, and what a viewer may see."""
from __future__ import annotations

import pytest
from scipy.stats import binomtest

from conftest import PLAN


def signed(pct: float) -> str:
    """A percentage as the sentences write it: whole numbers from 10 %, one decimal below, a true minus."""
    return (f"{pct:+.0f}" if abs(pct) >= 10 else f"{pct:+.1f}").replace("-", "−")


def test_emerging_with_three_months_is_a_4xx_naming_the_problem(client):
    for url in ("/api/v1/layers/emerging?from=2024-01&to=2024-03", "/api/v1/layers/emerging.geojson",
                "/api/v1/downloads/emerging.csv"):
        r = client.get(url)
        assert r.status_code == 400, url
        body = r.get_json()
        assert body["ok"] is False and "at least 10" in body["error"] and "3 time step" in body["error"]


def test_time_layers_are_listed_for_viewers_and_analysts(client, viewer_client):
    for c in (client, viewer_client):
        names = [x["name"] for x in c.get("/api/v1/layers").get_json()["layers"]]
        assert "emerging" in names and "trend" in names


def test_time_parameters_come_from_menus(client):
    r = client.get("/api/v1/layers/trend?step=day")
    assert r.status_code == 400 and r.get_json()["column"] == "step"
    r = client.get("/api/v1/layers/emerging?time_neighbours=9")
    assert r.status_code == 400 and r.get_json()["column"] == "time_neighbours"


def test_trend_layer_per_area_and_for_the_city(client):
    pmk = pytest.importorskip("pymannkendall")
    body = client.get("/api/v1/layers/trend?category=violent-crime,burglary&from=2024-01&to=2024-03").get_json()
    assert body["ok"] and body["metadata"]["city_trend"]["sentence"].startswith("Whole area")
    months = sorted(PLAN)
    city = [sum(PLAN[m].values()) for m in months]
    assert body["metadata"]["city_trend"]["p"] == pytest.approx(pmk.original_test(city).p)
    assert all(it.get("plain") for it in body["legend"]["items"])
    assert {"trend_class", "sens_slope", "mk_p", "count"} <= set(body["rows"][0])


def test_viewer_trend_and_emerging_publish_no_counts(viewer_client):
    body = viewer_client.get("/api/v1/layers/trend?category=violent-crime,burglary").get_json()
    assert body["ok"] and "count" not in body["rows"][0] and "trend_class" in body["rows"][0]
    assert body["metadata"]["computed_from"] == "protected table"


def test_change_layer_and_comparison_carry_the_test(client):
    body = client.get("/api/v1/layers/change?category=violent-crime,burglary&from=2024-02&to=2024-02"
                      "&compare_from=2024-01&compare_to=2024-01").get_json()
    for row in body["rows"]:
        a, b = row["count_after"], row["count_before"]
        if a + b:
            assert row["p"] == pytest.approx(binomtest(a, a + b, 0.5).pvalue)
        if b == 0:
            assert row["change_class"] in ("No data in the baseline", "No incidents")
    assert {it["label"] for it in body["legend"]["items"]} >= {"Significant rise", "No significant change",
                                                                "Significant fall"}
    c = client.get("/api/v1/compare?category=violent-crime,burglary&from=2024-03&to=2024-03").get_json()
    a, b = c["total_after"], c["total_before"]
    assert f"{signed((a / b - 1) * 100)} %" in c["sentence"]
    assert "95 % CI" in c["sentence"] and "ci_low" in c["rows"][0]


def test_viewer_change_never_shows_small_numbers_or_their_test(viewer_client):
    body = viewer_client.get("/api/v1/layers/change?category=violent-crime,burglary&from=2024-03&to=2024-03"
                             ).get_json()
    assert body["ok"]
    for row in body["rows"]:
        for col in ("count_before", "count_after"):
            assert not (isinstance(row[col], int) and 1 <= row[col] <= 4)
        if row["suppressed"]:
            assert row["p"] is None and row["ci_low"] is None and row["ci_high"] is None
            assert row["rate_ratio"] is None and row["change_class"] is None
    assert any(row["suppressed"] for row in body["rows"])


def test_series_of_an_area_per_month(client, viewer_client):
    from synthetic_bundle import lsoa_code
    code = lsoa_code(0, 0)
    body = client.get(f"/api/v1/series?code={code}&category=violent-crime,burglary&from=2024-01&to=2024-03").get_json()
    assert body["ok"] and body["steps"] == ["2024-01", "2024-02", "2024-03"]
    sample = [1, 0, 0]  # synthetic_bundle's own sample incident, 2024-01 in cell (0, 0)
    assert body["counts"] == [PLAN[m].get((0, 0), 0) + s for m, s in zip(body["steps"], sample)]
    assert body["trend"]["sens_slope"] == pytest.approx(-3.5)  # 10, 8, 3: median of -2, -5, -3.5
    assert body["gi_bin"] is None and "at least 10" in body["emerging_note"]
    v = viewer_client.get(f"/api/v1/series?code={code}&category=violent-crime,burglary").get_json()
    assert v["ok"] and v["computed_from"] == "protected table"
    assert not any(isinstance(c, int) and 1 <= c <= 4 for c in v["counts"])
    small = viewer_client.get(f"/api/v1/series?code={lsoa_code(3, 3)}&category=violent-crime,burglary").get_json()
    assert all(c == 0 or isinstance(c, str) or c >= 5 for c in small["counts"])


def test_series_refuses_unknown_or_missing_codes(client):
    assert client.get("/api/v1/series").status_code == 400
    r = client.get("/api/v1/series?code=E01999999")
    assert r.status_code == 404 and r.get_json()["column"] == "code"
