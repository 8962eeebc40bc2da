"""Comparing two sources (issue 12): Spearman's rho against scipy, the bivariate LISA against esda's
Moran_Local_BV (same statistic; same p_sim given esda's permutations), joint hot spots against each
source's own Gi* layer, and the `hotspots compare` command."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from hotspots import pipeline, render
from hotspots.compare import bivariate_lisa, ranks, spearman
from hotspots.request import Audience

from test_sources import town  # noqa: F401  (the Gridtown + hospital source fixture)

VIEWER, ANALYST = Audience.VIEWER, Audience.ANALYST


def _esda_bv(x, y, w, permutations, seed):
    import libpysal
    from esda.moran import Moran_Local_BV
    W = libpysal.weights.WSP(w.matrix.astype(float)).to_W(silence_warnings=True)
    with warnings.catch_warnings():  # esda's own notice that its default alternative will change
        warnings.simplefilter("ignore", DeprecationWarning)
        return Moran_Local_BV(x, y, W, permutations=permutations, seed=seed)


def _lattice(n_side: int):
    import geopandas as gpd
    from shapely.geometry import box
    from hotspots.weights import build_weights
    g = gpd.GeoDataFrame({"code": [f"a{i:03d}" for i in range(n_side * n_side)]},
                         geometry=[box(j, i, j + 1, i + 1) for i in range(n_side) for j in range(n_side)],
                         crs="EPSG:27700")
    return build_weights(g, "queen", id_col="code")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spearman_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.poisson(2.0, 60).astype(float)  # many ties
    b = a + rng.poisson(1.5, 60)
    got = spearman(a, b)
    ref = sps.spearmanr(a, b)
    assert got.rho == pytest.approx(ref.statistic, abs=1e-12) and got.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert np.isnan(spearman(a, np.ones(60)).rho)


def test_ranks_are_league_table_ranks():
    assert ranks([5, 9, 9, 0, 3]).tolist() == [3, 1, 1, 5, 4]


def test_bivariate_lisa_equals_esda():
    from esda.crand import vec_permutations
    rng = np.random.default_rng(3)
    w = _lattice(10)
    x = rng.gamma(2.0, size=100)
    y = rng.gamma(2.0, size=100) + 0.6 * x
    ref = _esda_bv(x, y, w, 999, 7)
    perm = vec_permutations(int(w.cardinalities.max()), 100, 999, 7)
    got = bivariate_lisa(x, y, w, perm=perm)
    np.testing.assert_allclose(got.Is, ref.Is, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.p_folded, ref.p_sim)  # same permutations: the same p_sim
    # the quadrants (esda's default numbering: 1 HH, 2 LH, 3 LL, 4 HL)
    gq = {1: "High-High", 2: "Low-High", 3: "Low-Low", 4: "High-Low"}
    assert [gq[q] for q in ref.q] == [("High" if a > 0 else "Low") + "-" + ("High" if b > 0 else "Low")
                                      for a, b in zip(got.zx, got.lag)]
    # the engine's own draws: a two-sided p close to twice esda's folded one
    own = bivariate_lisa(x, y, w, permutations=9999, seed=7)
    assert np.corrcoef(own.p_sim, np.minimum(1, 2 * ref.p_sim))[0, 1] > 0.98


def test_comparison_layer_police_against_hospital(town):  # noqa: F811
    config = town[0]
    args = {"category": "violent-crime", "versus": "src:hospital", "from": "2024-01", "to": "2024-03"}
    req = pipeline.parse(config, args, "comparison", free=True)
    pub = pipeline.build_layer(config, req, ANALYST)
    rows = render.rows(pub)
    assert len(rows) == 16
    a = np.array([r["value_a"] for r in rows])
    b = np.array([r["value_b"] for r in rows])
    ref = sps.spearmanr(a, b)
    assert pub.metadata["spearman"]["rho"] == pytest.approx(ref.statistic, abs=1e-12)
    assert pub.metadata["spearman"]["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    # joint classes agree with each source's own Gi* layer
    gi_a = {r["code"]: r["gi_bin"] for r in render.rows(pipeline.build_layer(
        config, pipeline.parse(config, args, "gistar", free=True), ANALYST))}
    gi_b = {r["code"]: r["gi_bin"] for r in render.rows(pipeline.build_layer(
        config, pipeline.parse(config, {**args, "category": "src:hospital"}, "gistar", free=True), ANALYST))}
    for r in rows:
        want = {(True, True): "both", (True, False): "a", (False, True): "b", (False, False): "neither"}[
            (gi_a[r["code"]] >= 2, gi_b[r["code"]] >= 2)]
        assert r["joint"] == want
    assert {r["joint"] for r in rows} >= {"a", "b"}  # police SW corner, hospital NE corner
    # the bivariate LISA is esda's statistic on the same values and weights
    from hotspots.weights import build_weights
    w = build_weights(pub.frame[["code", "geometry"]], "queen", id_col="code")
    ref_bv = _esda_bv(a, b, w, 99, 1)
    np.testing.assert_allclose([r["bv_i"] for r in rows], ref_bv.Is, atol=1e-12)
    assert "where the person lives" in pub.metadata["note"] and "where the incident happened" in pub.metadata["note"]
    assert pub.legend["items"][0]["label"].startswith("Hot spot in both")


def test_viewer_comparison_is_protected_under_each_rule(town):  # noqa: F811
    config = town[0]
    req = pipeline.parse(config, {"category": "violent-crime", "versus": "src:hospital", "from": "2024-01",
                                  "to": "2024-03"}, "comparison")
    pub = pipeline.build_layer(config, req, VIEWER)
    rows = render.rows(pub)
    assert set(rows[0]) >= {"count", "count_b", "rank_a", "rank_b", "class_label"}
    assert not {"value_a", "value_b", "bv_i", "gi_z_a"} & set(rows[0])
    assert all(c in (0, "*") or (isinstance(c, int) and c % 5 == 0) for c in (r["count_b"] for r in rows))
    assert all(r["rank_b"] is None for r in rows if r["count_b"] == "*")
    assert pub.metadata["computed_from"] == "protected tables"


def test_comparison_needs_versus_and_a_matching_geography(town):  # noqa: F811
    config = town[0]
    from hotspots.errors import HotspotsError, NotFoundError
    assert pipeline.parse(config, {}, "comparison").versus == ("src:hospital",)  # the map's default
    with pytest.raises(HotspotsError, match="versus"):
        pipeline.parse(config, {"category": "src:hospital"}, "comparison")
    with pytest.raises(NotFoundError):
        pipeline.parse(config, {"versus": "src:nope"}, "comparison")


def test_cli_compare_by_ward(town, tmp_path):  # noqa: F811
    config, b, *_ = town
    from hotspots.cli import cli
    out = tmp_path / "cmp.csv"
    env = b.env() | {"HOTSPOTS_INSTANCE_DIR": str(config.instance_dir)}
    res = CliRunner().invoke(cli, ["compare", "police", "hospital", "--level", "ward", "--from", "2024-01",
                                   "--to", "2024-03", "--permutations", "999", "--out", str(out)], env=env)
    assert res.exit_code == 0, res.output
    assert "Spearman's rho" in res.output and "Joint hot spots" in res.output
    import pandas as pd
    t = pd.read_csv(out)
    assert len(t) == 4 and {"count", "count_b", "rank_a", "rank_b", "joint"} <= set(t.columns)
    assert t["count_b"].sum() == int(town[3][town[3].period >= "2024-01"].admissions.sum())


def test_note_on_an_unstated_place_and_a_converted_geography(town, tmp_path):  # noqa: F811
    config = town[0]
    from hotspots import store
    from hotspots.sources import add_source
    from synthetic_bundle import lsoa_code
    f = tmp_path / "yot.csv"
    f.write_text("LSOA11CD,month,n\n" + "".join(f"{lsoa_code(i, j, 'E0108')},2024-02,{i + j}\n"
                                                for i in range(4) for j in range(4)), encoding="utf-8")
    add_source(config, "yot11", f, "lsoa11", "month", "n", title="YOT cohort")
    try:
        req = pipeline.parse(config, {"category": "src:hospital", "versus": "src:yot11", "from": "2024-02",
                                      "to": "2024-02"}, "comparison", free=True)
        note = pipeline.build_layer(config, req, ANALYST).metadata["note"]
        assert "YOT cohort does not say whether a count is placed where the incident happened" in note
        assert "YOT cohort: LSOA 2011 converted to LSOA 2021 by best fit" in note
    finally:
        store.remove_source(config.db_path, "yot11")
