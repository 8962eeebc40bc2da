"""Layer parameters: paging keeps filters, expensive parameters come from finite menus, each layer is keyed
by the fields it uses."""
from __future__ import annotations

import csv
import io
import threading
import time

import pytest

# -- 4: incidents paging keeps repeated filters ----------------------------------------------------
def test_incidents_next_link_keeps_repeated_categories(client):
    from urllib.parse import parse_qs, urlsplit
    r = client.get("/api/v1/incidents?category=burglary&category=violent-crime&limit=5").get_json()
    assert r["total"] > 5 and set(r["parameters"]["category"]) == {"burglary", "violent-crime"}
    q = parse_qs(urlsplit(r["next"]).query)
    assert sorted(q["category"]) == ["burglary", "violent-crime"] and q["offset"] == ["5"] and q["limit"] == ["5"]
    nxt = client.get(r["next"]).get_json()
    assert nxt["total"] == r["total"] and nxt["offset"] == 5


# -- 5: limits on expensive parameters -------------------------------------------------------------
@pytest.mark.parametrize("q,column,limit", [
    ("weights=knn:31", "weights", "knn:12"), ("weights=knn:100000", "weights", "knn:12"),
    ("weights=distance:5001", "weights", "distance:2000"), ("weights=distance:1000000", "weights", "distance:2000"),
    ("weights=knn:7", "weights", "knn:8"), ("weights=distance:1234", "weights", "distance:1500"),
    ("permutations=10000", "permutations", "9999"), ("permutations=99999", "permutations", "9999"),
    ("permutations=1234", "permutations", "999"), ("alpha=0.04", "alpha", "0.05")])
@pytest.mark.parametrize("who", ["public_client", "client"])
def test_expensive_parameters_are_capped(request, who, q, column, limit):
    c = request.getfixturevalue(who)
    r = c.get(f"/api/v1/hotspots?category=burglary&{q}")
    assert r.status_code == 400
    body = r.get_json()
    assert body["ok"] is False and body["column"] == column and limit in body["error"], body


def test_menu_values_are_accepted_and_the_cli_is_free(config):
    from hotspots import pipeline
    from hotspots.request import ALPHA_MENU, PERMUTATIONS_MENU, WEIGHTS_MENU
    for w in WEIGHTS_MENU:
        assert pipeline.parse(config, {"weights": w}).weights == w
    for n in PERMUTATIONS_MENU:
        assert pipeline.parse(config, {"permutations": str(n)}).permutations == n
    for a in ALPHA_MENU:
        assert pipeline.parse(config, {"alpha": str(a)}).alpha == a
    free = pipeline.parse(config, {"weights": "knn:30", "permutations": "12345", "alpha": "0.04"}, free=True)
    assert (free.weights, free.permutations, free.alpha) == ("knn:30", 12345, 0.04)



# -- 8: layers that ignore the crime filters are cached once ---------------------------------------
def test_non_crime_layers_do_not_rebuild_when_filters_change(config):
    from hotspots import cache, pipeline
    from hotspots.request import Audience
    cache.clear()
    a = pipeline.build_layer(config, pipeline.parse(config, {"category": "burglary", "from": "2024-01",
                                                             "to": "2024-01"}, layer="wards"), Audience.VIEWER)
    b = pipeline.build_layer(config, pipeline.parse(config, {"category": "violent-crime", "weights": "rook",
                                                             "from": "2024-02", "to": "2024-03"}, layer="wards"),
                             Audience.VIEWER)
    assert a is b, "the ward boundaries were rebuilt for another category"
    assert a.metadata["parameters"] == {"layer": "wards"}


def test_layer_cache_key_holds_only_the_fields_a_layer_uses(config):
    from hotspots import layers
    from hotspots.request import LayerRequest

    dep = layers.LayerKind("iod2025", "IoD", "deprivation", layers._deprivation, ("layer", "domain"), {})

    def used(p):  # a deprivation kind as every configured IoD dataset gets one
        return (dep if p.layer == "iod2025" else layers.get(config, p.layer)).normalise(p)
    p1 = LayerRequest(layer="iod2025", categories=("burglary",), month_from="2024-01", month_to="2024-01",
                      weights="rook", domain="income", classes="fisherjenks")
    p2 = LayerRequest(layer="iod2025", categories=("violent-crime",), month_from="2024-02", month_to="2024-03",
                      domain="income")
    assert used(p1) == used(p2)
    assert used(p1) != used(LayerRequest(layer="iod2025", domain="imd"))
    c1 = LayerRequest(layer="count", categories=("burglary",), weights="rook", classes="equalinterval", k=4)
    c2 = LayerRequest(layer="count", categories=("burglary",), weights="queen", classes="equalinterval", k=4)
    assert used(c1) == used(c2) != used(LayerRequest(layer="count", categories=("burglary",), k=4))
    g = LayerRequest(layer="gistar", categories=("burglary",))
    assert used(g) == g
