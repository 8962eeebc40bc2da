"""The time layers wired into the pipeline: the tested change, emerging hot spots and trends.

The engine maths is tested against its references in tests/test_trend.py and tests/test_emerging.py; here
the wiring is: the cube the layers build equals the planted incidents, the columns are published, and a
viewer's figures come from the protected cells, never from exact counts."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import binomtest


def signed(pct: float) -> str:
    """A percentage as the sentences write it: whole numbers from 10 %, one decimal below, a true minus."""
    return (f"{pct:+.0f}" if abs(pct) >= 10 else f"{pct:+.1f}").replace("-", "−")

from hotspots import pipeline
from hotspots.aggregate import base_table
from hotspots.errors import AnalysisError, HotspotsError
from hotspots.request import Audience, month_range
from synthetic_bundle import N, build, cell_centre, lsoa_code, police_csv

pmk = pytest.importorskip("pymannkendall")

MONTHS = month_range("2023-01", "2023-12")


def planted() -> dict[tuple[str, str], int]:
    """(LSOA code, month) -> incidents: Poisson background, a south-west corner that heats up, a north-east
    corner that cools down."""
    rng = np.random.default_rng(7)
    plan = {}
    for t, month in enumerate(MONTHS):
        for i in range(N):
            for j in range(N):
                k = int(rng.poisson(4))
                if i < 2 and j < 2:
                    k += 2 * t
                if i >= 2 and j >= 2:
                    k += max(0, 12 - 2 * t)
                plan[(lsoa_code(i, j), month)] = k
    return plan


PLAN = planted()


@pytest.fixture(scope="module")
def city_bundle(tmp_path_factory):
    return build(tmp_path_factory.mktemp("gridtown-year"))


@pytest.fixture(scope="module")
def city(city_bundle):
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    b = city_bundle
    rows, n = [], 0
    for i in range(N):
        for j in range(N):
            x, y = cell_centre(i, j)
            for month in MONTHS:
                for q in range(PLAN[(lsoa_code(i, j), month)]):
                    n += 1
                    rows.append((f"yr{n}", month, x - 200 + (q * 37) % 400, y - 200 + (q * 53) % 400,
                                 "Violence and sexual offences"))
    (b.root / "bundle" / "crime" / "sample.csv").unlink()
    (b.root / "bundle" / "crime" / "year.csv").write_text(police_csv(rows))
    config = load_config(b.config_path, env={}, data_dir=b.data_dir, instance_dir=b.instance_dir,
                         bundle=b.root / "bundle")
    install_bundle(config)
    ingest_paths(config, [b.root / "bundle" / "crime"])
    return config


def planted_cube(codes) -> np.ndarray:
    return np.array([[PLAN[(c, m)] for m in MONTHS] for c in codes], dtype=float)


def req(config, layer: str, **args):
    base = {"category": "violent-crime", "from": MONTHS[0], "to": MONTHS[-1]}
    return pipeline.parse(config, {**base, **args}, layer, free=True)


def rows(published) -> list[dict]:
    from hotspots import render
    return render.rows(published)


# -- change ---------------------------------------------------------------------------------------------

def test_change_layer_has_the_exact_test_of_each_area(city):
    r = req(city, "change", **{"from": "2023-07", "to": "2023-12"})
    out = rows(pipeline.build_layer(city, r, Audience.ANALYST))
    assert {"rate_ratio", "ci_low", "ci_high", "p", "change_class"} <= set(out[0])
    for row in out:
        a, b = row["count_after"], row["count_before"]
        assert b == sum(PLAN[(row["code"], m)] for m in MONTHS[:6])
        assert a == sum(PLAN[(row["code"], m)] for m in MONTHS[6:])
        ref = binomtest(a, a + b, 0.5)
        assert row["p"] == pytest.approx(ref.pvalue, rel=1e-9)
        lo, hi = ref.proportion_ci(0.95, method="exact")
        assert row["ci_low"] == pytest.approx((lo / (1 - lo) - 1) * 100, rel=1e-6, abs=1e-9)
        assert row["ci_high"] == pytest.approx((hi / (1 - hi) - 1) * 100, rel=1e-6)
        want = ("No significant change" if ref.pvalue > 0.05 else
                "Significant rise" if a > b else "Significant fall")
        assert row["change_class"] == want
    classes = {row["change_class"] for row in out}
    assert {"Significant rise", "Significant fall"} <= classes


def test_change_with_fdr_uses_the_benjamini_hochberg_cutoff(city):
    from hotspots.stats import fdr_cutoff
    r = req(city, "change", **{"from": "2023-07", "to": "2023-12"}, significance="fdr")
    pub = pipeline.build_layer(city, r, Audience.ANALYST)
    out = rows(pub)
    p = np.array([row["p"] for row in out])
    cut = fdr_cutoff(p, 0.05)
    for row in out:
        assert (row["change_class"] != "No significant change") == (row["p"] <= cut)
    assert "False Discovery Rate" in pub.metadata["change_test"]


def test_comparison_sentence_gives_the_change_with_interval_and_p(city):
    r = req(city, "change", **{"from": "2023-07", "to": "2023-12"})
    c = pipeline.comparison(city, r, Audience.ANALYST)
    a, b = c["total_after"], c["total_before"]
    ref = binomtest(a, a + b, 0.5)
    assert f"{signed((a / b - 1) * 100)} %" in c["sentence"]
    assert "95 % CI" in c["sentence"] and "p" in c["sentence"]
    assert ref.pvalue < 0.05 or "no significant change" in c["sentence"]


def test_viewer_change_is_tested_on_protected_counts(city):
    r = req(city, "change", **{"from": "2023-07", "to": "2023-12"})
    viewer = {row["code"]: row for row in rows(pipeline.build_layer(city, r, Audience.VIEWER))}
    analyst = {row["code"]: row for row in rows(pipeline.build_layer(city, r, Audience.ANALYST))}
    base = base_table(city, "lsoa21", Audience.VIEWER)
    codes = list(viewer)
    after = base.totals(codes, ["violent-crime"], "2023-07", "2023-12", protected=True)
    before = base.totals(codes, ["violent-crime"], "2023-01", "2023-06", protected=True)
    differs = 0
    for code, a, b in zip(codes, after, before):
        row = viewer[code]
        if row["suppressed"]:
            assert row["p"] is None and row["ci_low"] is None and row["change_class"] is None
            continue
        assert row["p"] == pytest.approx(binomtest(int(a), int(a + b), 0.5).pvalue, rel=1e-9)
        differs += row["p"] != analyst[code]["p"]
    assert differs > 0  # the protected counts are not the exact ones


# -- emerging hot spots --------------------------------------------------------------------------------

def test_emerging_layer_equals_the_engine_on_the_planted_cube(city):
    from hotspots.emerging import emerging_hotspots
    from hotspots.weights import build_weights
    from hotspots.aggregate import area_counts
    r = req(city, "emerging")
    pub = pipeline.build_layer(city, r, Audience.ANALYST)
    out = rows(pub)
    codes = [row["code"] for row in out]
    areas = area_counts(city, "lsoa")
    w = build_weights(areas.set_index("code").loc[codes].reset_index(), "queen", id_col="code")
    ref = emerging_hotspots(planted_cube(codes), w, time_neighbours=1, alpha=0.05, fdr=True)
    assert [row["category"] for row in out] == list(ref.category)
    assert [row["category_code"] for row in out] == ref.category_code.tolist()
    assert [row["n_hot_steps"] for row in out] == ref.n_hot_steps.tolist()
    np.testing.assert_allclose([row["mk_tau"] for row in out], ref.mk_tau)
    assert [row["count"] for row in out] == planted_cube(codes).sum(axis=1).astype(int).tolist()
    assert any("hot spot" in c for c in ref.category)  # the planted corner is found
    assert pub.metadata["outcomes"] == {k: v for k, v in ref.counts().items()}
    assert sum(item["n"] for item in pub.legend["items"]) == len(out)
    assert all("plain" in item for item in pub.legend["items"])


def test_emerging_for_viewers_comes_from_the_protected_cube_and_shows_no_counts(city):
    from hotspots.emerging import emerging_hotspots
    from hotspots.weights import build_weights
    from hotspots.aggregate import area_counts
    r = req(city, "emerging")
    out = rows(pipeline.build_layer(city, r, Audience.VIEWER))
    codes = [row["code"] for row in out]
    assert "count" not in out[0]
    cube = base_table(city, "lsoa21", Audience.VIEWER).by_month(codes, ["violent-crime"], MONTHS, protected=True)
    assert not np.array_equal(cube, planted_cube(codes))
    w = build_weights(area_counts(city, "lsoa").set_index("code").loc[codes].reset_index(), "queen", id_col="code")
    ref = emerging_hotspots(cube, w, time_neighbours=1, alpha=0.05, fdr=True)
    np.testing.assert_allclose([row["mk_tau"] for row in out], ref.mk_tau)


def test_emerging_refuses_too_few_steps_with_the_reason(city):
    r = req(city, "emerging", **{"from": "2023-01", "to": "2023-06"})
    with pytest.raises(AnalysisError, match="at least 10"):
        pipeline.build_layer(city, r, Audience.ANALYST)
    with pytest.raises(AnalysisError, match="at least 10"):  # nothing was cached: the error comes again
        pipeline.build_layer(city, r, Audience.ANALYST)


def test_quarters_must_be_whole_and_sum_their_months(city):
    from hotspots.kinds_time import area_cube
    r = req(city, "trend", step="quarter")
    cube, labels = area_cube(city, r, Audience.ANALYST, [lsoa_code(0, 0)])
    assert labels == ["2023-Q1", "2023-Q2", "2023-Q3", "2023-Q4"]
    monthly = planted_cube([lsoa_code(0, 0)])[0]
    assert cube[0].tolist() == [monthly[i:i + 3].sum() for i in range(0, 12, 3)]
    with pytest.raises(AnalysisError, match="whole quarters"):
        pipeline.build_layer(city, replace(r, month_from="2023-02"), Audience.ANALYST)


def test_time_neighbours_come_from_a_menu_on_the_web(city):
    with pytest.raises(HotspotsError, match="time_neighbours"):
        pipeline.parse(city, {"time_neighbours": "7"}, "emerging")
    with pytest.raises(HotspotsError, match="step"):
        pipeline.parse(city, {"step": "day"}, "emerging")
    assert pipeline.parse(city, {"time_neighbours": "7"}, "emerging", free=True).time_neighbours == 7


# -- trend -------------------------------------------------------------------------------------------

def test_trend_layer_equals_pymannkendall_per_area_and_for_the_city(city):
    r = req(city, "trend")
    pub = pipeline.build_layer(city, r, Audience.ANALYST)
    out = rows(pub)
    cube = planted_cube([row["code"] for row in out])
    for row, series in zip(out, cube):
        ref = pmk.original_test(series)
        assert row["mk_p"] == pytest.approx(ref.p, abs=1e-12)
        assert row["mk_tau"] == pytest.approx(ref.Tau)
        assert row["sens_slope"] == pytest.approx(pmk.sens_slope(series).slope)
        want = {"increasing": "Significant increase", "decreasing": "Significant decrease",
                "no trend": "No significant trend"}[ref.trend]
        assert row["trend_class"] == want
    assert {"Significant increase", "Significant decrease"} <= {row["trend_class"] for row in out}
    city_ref = pmk.original_test(cube.sum(axis=0))
    assert pub.metadata["city_trend"]["p"] == pytest.approx(city_ref.p)
    assert "Sen's slope" in pub.metadata["city_trend"]["sentence"]


def test_trend_refuses_fewer_than_three_steps(city):
    with pytest.raises(AnalysisError, match="at least 3 time steps"):
        pipeline.build_layer(city, req(city, "trend", **{"from": "2023-01", "to": "2023-02"}), Audience.ANALYST)


def test_viewer_ward_trend_sums_protected_lsoa_cells(city):
    from hotspots.kinds_time import area_cube
    r = req(city, "trend", geography="ward")
    out = rows(pipeline.build_layer(city, r, Audience.VIEWER))
    assert "count" not in out[0]
    lsoa = base_table(city, "lsoa21", Audience.VIEWER).by_month(
        [lsoa_code(0, 0), lsoa_code(0, 1), lsoa_code(1, 0), lsoa_code(1, 1)], ["violent-crime"], MONTHS,
        protected=True)
    cube, _ = area_cube(city, r, Audience.VIEWER, ["E05990000"])
    assert cube[0].tolist() == lsoa.sum(axis=0).tolist()


# -- CLI ---------------------------------------------------------------------------------------------

@pytest.fixture
def cli_env(city, city_bundle, monkeypatch):
    for k, v in city_bundle.env().items():
        monkeypatch.setenv(k, v)
    return city


def run_cli(*args):
    from click.testing import CliRunner
    from hotspots.cli import cli
    return CliRunner().invoke(cli, list(args), obj={})


def test_cli_emerging_writes_the_layer_and_prints_the_outcomes(cli_env, tmp_path):
    import pandas as pd
    out = tmp_path / "ehsa.csv"
    r = run_cli("emerging", "--level", "lsoa", "--category", "violent-crime", "--from", "2023-01", "--to", "2023-12",
                "--step", "month", "--time-neighbours", "1", "--out", str(out))
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out, comment="#")
    pub = pipeline.build_layer(cli_env, req(cli_env, "emerging"), Audience.ANALYST)
    assert table["category"].tolist() == pub.frame["category"].tolist()
    for name, n in pub.metadata["outcomes"].items():
        assert (f"  {name}: {n}" in r.output) == (n > 0)


def test_cli_emerging_exits_1_with_too_few_steps(cli_env, tmp_path):
    r = run_cli("emerging", "--from", "2023-01", "--to", "2023-04", "--out", str(tmp_path / "x.geojson"))
    assert r.exit_code == 1 and "at least 10" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.geojson").exists()


def test_cli_trend_prints_the_city_trend_and_the_tested_change(cli_env, tmp_path):
    import json
    out = tmp_path / "trend.geojson"
    r = run_cli("trend", "--level", "ward", "--category", "violent-crime", "--from", "2023-07", "--to", "2023-12",
                "--compare-to", "2023-01:2023-06", "--out", str(out))
    assert r.exit_code == 0, r.output
    after = sum(v for (c, m), v in PLAN.items() if m >= "2023-07")
    before = sum(v for (c, m), v in PLAN.items() if m < "2023-07")
    ref = binomtest(after, after + before, 0.5)
    pct = signed((after / before - 1) * 100)
    assert f"{after:,} incidents in 2023-07 to 2023-12 against {before:,}" in r.output
    assert f"{pct} %" in r.output and ("p < 0.001" if ref.pvalue < 0.001 else f"p = {ref.pvalue:.3f}") in r.output
    assert "Mann-Kendall" in r.output
    fc = json.loads(out.read_text())
    assert len(fc["features"]) == 4 and "trend_class" in fc["features"][0]["properties"]
    r = run_cli("trend", "--from", "2023-01", "--to", "2023-12", "--compare-to", "last-week", "--out", str(out))
    assert r.exit_code == 1 and "previous-year" in r.output


def test_series_carries_the_emerging_bins_of_the_layer(city):
    code = lsoa_code(0, 0)
    r = req(city, "emerging")
    s = pipeline.series(city, r, code, Audience.ANALYST)
    pub = pipeline.build_layer(city, r, Audience.ANALYST)
    row = next(x for x in rows(pub) if x["code"] == code)
    assert s["counts"] == planted_cube([code])[0].astype(int).tolist()
    assert s["category"] == row["category"] and len(s["gi_bin"]) == 12
    assert sum(b > 0 for b in s["gi_bin"]) >= row["n_hot_steps"]
    assert s["trend"]["p"] == pytest.approx(pmk.original_test(planted_cube([code])[0]).p)


# -- the real bundle: Wolverhampton has one month -------------------------------------------------------

def test_wolverhampton_one_month_is_a_4xx_with_the_reason(wolverhampton):
    from web import create_app
    config, _ = wolverhampton
    app = create_app(config.with_overrides(public_mode=True), test_config={"TESTING": True, "WARM_UP": False})
    c = app.test_client()
    r = c.get("/api/v1/layers/emerging.geojson?category=violent-crime&from=2018-06&to=2018-06")
    assert r.status_code == 400
    assert "1 time step(s) but a trend needs at least 10" in r.get_json()["error"]
    r = c.get("/api/v1/layers/trend?category=violent-crime&from=2018-06&to=2018-06")
    assert r.status_code == 400 and "at least 3 time steps" in r.get_json()["error"]
    s = c.get("/api/v1/series?code=E05014838&geography=ward&category=violent-crime").get_json()
    assert s["ok"] and s["trend"] is None and "at least 10" in s["emerging_note"]
    cmp = c.get("/api/v1/compare?category=violent-crime&from=2018-06&to=2018-06").get_json()
    assert "no data in the baseline" in cmp["sentence"]
