"""Grid layers, KDE and incident points through the layer pipeline and the CLI, checked against independent
computations: a brute-force point-in-polygon count, esda's Gi*, a direct kernel sum, and the protected table."""
from __future__ import annotations

import json
import math
import random

import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from hotspots import pipeline, render
from hotspots.aggregate import grid_base_table, grid_cells, incident_points
from hotspots.cli import cli
from hotspots.errors import AnalysisError, ForbiddenError, HotspotsError
from hotspots.kde import kde
from hotspots.request import Audience
from synthetic_bundle import build, cell_centre, police_csv

VIOLENCE = "Violence and sexual offences"


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """Gridtown (2 km × 2 km) with 600 violent incidents clustered in the south-west LSOAs in January, 200
    burglaries spread evenly in February, and a few incidents exactly on 250 m cell edges."""
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    tmp = tmp_path_factory.mktemp("patrol")
    b = build(tmp)
    rnd = random.Random(11)
    rows = []
    for n in range(600):
        x, y = cell_centre(rnd.randrange(2), rnd.randrange(2))
        rows.append((f"a{n}", "2024-01", round(x + rnd.uniform(-240, 240), 1), round(y + rnd.uniform(-240, 240), 1),
                     VIOLENCE))
    for n in range(200):
        rows.append((f"b{n}", "2024-02", round(400_005 + rnd.uniform(0, 1990), 1),
                     round(300_005 + rnd.uniform(0, 1990), 1), "Burglary"))
    rows += [(f"e{n}", "2024-01", 400_500.0, 300_250.0 + 250 * n, VIOLENCE) for n in range(4)]  # on edges
    (b.root / "bundle" / "crime" / "p.csv").write_text(police_csv(rows))
    config = load_config(b.config_path, env={}, data_dir=b.data_dir, instance_dir=b.instance_dir,
                         bundle=b.root / "bundle")
    install_bundle(config)
    ingest_paths(config, [b.root / "bundle" / "crime"])
    return b, config


def layer(config, args, audience=Audience.ANALYST):
    return pipeline.build_layer(config, pipeline.parse(config, args), audience)


def brute_force_counts(grid, pts) -> dict[str, int]:
    """Every point against every clipped cell; a point on a shared edge goes to the smallest code."""
    codes = grid["code"].to_numpy()
    geoms = grid["clipped"].to_numpy()
    out: dict[str, int] = {}
    for x, y in zip(pts["easting"], pts["northing"]):
        p = shapely.Point(x, y)
        hits = sorted(c for c, g in zip(codes, geoms) if g.intersects(p))
        if hits:
            out[hits[0]] = out.get(hits[0], 0) + 1
    return out


@pytest.mark.parametrize("shape", ["square", "hex"])
def test_grid_counts_equal_a_brute_force_point_in_polygon_count(city, shape):
    _, config = city
    r = layer(config, {"layer": "grid_count", "cell": "250", "shape": shape, "category": "violent-crime",
                       "from": "2024-01", "to": "2024-02"})
    pts = incident_points(config)
    expected = brute_force_counts(grid_cells(config, 250, shape), pts[pts["category"] == "violent-crime"])
    got = dict(zip(r.frame["code"], r.frame["count"]))
    assert {k: v for k, v in got.items() if v} == expected
    assert sum(expected.values()) == int((pts["category"] == "violent-crime").sum()) >= 604 and r.frame.crs.to_epsg() == 27700
    gj = json.loads(render.display_geojson(config, r))
    assert len(gj["features"]) == len(r.frame) and gj["features"][0]["geometry"]["type"] == "Polygon"


def test_viewer_grid_counts_are_protected(city):
    _, config = city
    with pytest.raises(HotspotsError, match="for analysts"):  # 100 m cells could place a single incident
        layer(config, {"layer": "grid_count", "cell": "100", "category": "violent-crime"}, Audience.VIEWER)
    args = {"layer": "grid_count", "cell": "250", "category": "violent-crime"}
    exact = layer(config, args)
    viewer = layer(config, args, Audience.VIEWER)
    shown = [v for v in viewer.frame["count"] if not isinstance(v, str)]
    assert not any(1 <= v <= 4 for v in shown)
    # (this city has no small 250 m cell; small cells are labelled as for areas: tests/web/test_grid_api.py)
    base = grid_base_table(config, 250, "square", Audience.VIEWER)
    assert (base.protected != base.exact).any()
    ex = dict(zip(exact.frame["code"], exact.frame["count"]))
    big = [(ex[c], v) for c, v in zip(viewer.frame["code"], viewer.frame["count"]) if not isinstance(v, str) and v > 4]
    assert big and any(a != b for a, b in big)
    assert viewer.metadata["disclosure"]["protection"]["version"] == "cellkey-1"


def test_grid_gistar_equals_esda_and_defaults_to_fdr(city):
    from esda.getisord import G_Local
    from libpysal.weights import DistanceBand
    _, config = city
    r = layer(config, {"layer": "grid_gistar", "cell": "250", "permutations": "99"})
    assert r.metadata["parameters"]["significance"] == "fdr" and r.metadata["parameters"]["weights"] == "distance:500"
    cells = grid_cells(config, 250, "square")
    c = cells.geometry.centroid
    counts = pd.Series(r.frame["count"].to_numpy(float), index=r.frame["code"]).reindex(cells["code"]).to_numpy()
    w = DistanceBand(np.column_stack([c.x, c.y]), threshold=500 * (1 + 1e-9), binary=True, silence_warnings=True)
    ref = G_Local(counts, w, transform="B", star=True, permutations=0)
    ours = pd.Series(r.frame["gi_z"].to_numpy(float), index=r.frame["code"]).reindex(cells["code"]).to_numpy()
    np.testing.assert_allclose(ours, ref.Zs, rtol=1e-9, atol=1e-12)
    hot = r.frame.loc[r.frame["gi_bin"] == 3, "code"]
    assert len(hot) and all(int(code.split("_E")[1].split("_")[0]) < 401_000 for code in hot)


def test_optimized_grid_gistar_states_the_chosen_distance(city):
    from hotspots.scale import optimized_distance
    _, config = city
    r = layer(config, {"layer": "grid_gistar", "cell": "100", "optimized": "1", "permutations": "99"})
    od = r.metadata["optimized_distance"]
    cells = grid_cells(config, 100, "square")
    c = cells.geometry.centroid
    counts = pd.Series(r.frame["count"].to_numpy(float), index=r.frame["code"]).reindex(cells["code"]).to_numpy()
    ref = optimized_distance(counts, np.column_stack([c.x, c.y]))
    assert od["distance_m"] == pytest.approx(ref.distance_m)
    assert f"{ref.distance_m:,.0f} m" in r.legend["note"] and "ArcGIS" in od["why"]
    assert r.metadata["method"]["weights"].startswith("distance:")


def quartic_direct(points, targets, h):
    d2 = ((targets[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1)
    u2 = d2 / (h * h)
    k = np.where(u2 < 1, 3 / math.pi * (1 - u2) ** 2, 0.0)
    return k.sum(axis=1) / (h * h) * 1e6


def test_kde_layer_equals_a_direct_sum_for_analysts_and_protected_cells_for_viewers(city):
    _, config = city
    args = {"layer": "kde", "cell": "100", "bandwidth": "400", "category": "violent-crime"}
    r = layer(config, args)
    cells = grid_cells(config, 100, "square")
    c = cells.geometry.centroid
    targets = np.column_stack([c.x, c.y])
    pts = incident_points(config)
    pts = pts[pts["category"] == "violent-crime"][["easting", "northing"]].to_numpy(float)
    ours = pd.Series(r.frame["density"].to_numpy(float), index=r.frame["code"]).reindex(cells["code"]).to_numpy()
    np.testing.assert_allclose(ours, quartic_direct(pts, targets, 400.0), rtol=1e-9, atol=1e-9)
    assert "Incidents per km²" == r.legend["title"] and "quartic" in r.legend["note"]
    v = layer(config, args, Audience.VIEWER)
    base = grid_base_table(config, 100, "square", Audience.VIEWER)
    w = base.totals(list(cells["code"]), ["violent-crime"], None, None, protected=True).astype(float)
    expected = kde(targets[w > 0], targets, 400.0, "quartic", weights=w[w > 0])
    got = pd.Series(v.frame["density"].to_numpy(float), index=v.frame["code"]).reindex(cells["code"]).to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert not np.allclose(got, ours)
    assert "no single incident can be located: bandwidth ≥ 250 m" in v.legend["note"]


def test_kde_geotiff_download(city, tmp_path):
    import rasterio
    _, config = city
    r = layer(config, {"layer": "kde", "cell": "250", "bandwidth": "500", "kernel": "gaussian"})
    body, mimetype, name = render.download(config, r, "tif")
    assert mimetype == "image/tiff" and name.endswith(".tif")
    (tmp_path / name).write_bytes(body)
    with rasterio.open(tmp_path / name) as src:
        assert src.crs.to_epsg() == 27700 and src.res == (250.0, 250.0)
        tags = src.tags()
        band = src.read(1)
    assert tags["kernel"] == "gaussian" and tags["bandwidth_m"] == "500"
    assert np.nanmax(band) == pytest.approx(float(np.max(r.frame["density"])))


def test_viewer_kde_bandwidth_minimum_and_bad_input(city):
    _, config = city
    with pytest.raises(AnalysisError, match="below the 250 m minimum published to viewers"):
        layer(config, {"layer": "kde", "cell": "100", "bandwidth": "200"}, Audience.VIEWER)
    assert layer(config, {"layer": "kde", "cell": "100", "bandwidth": "200"}).name == "kde"  # analysts may
    with pytest.raises(AnalysisError, match="smaller than the cell size"):
        layer(config, {"layer": "kde", "cell": "500", "bandwidth": "250"})
    with pytest.raises(HotspotsError, match="cell must be between 100 and 1000"):
        pipeline.parse(config, {"layer": "grid_count", "cell": "50"})
    with pytest.raises(HotspotsError, match="cell must be one of 100, 250, 500, 1000"):
        pipeline.parse(config, {"layer": "grid_count", "cell": "300"})
    with pytest.raises(AnalysisError, match="no incidents in this period"):
        layer(config, {"layer": "grid_count", "category": "burglary", "from": "2024-01", "to": "2024-01"})
    with pytest.raises(AnalysisError, match="no cell of the 250 m square grid has a neighbour"):
        pipeline.build_layer(config, pipeline.parse(config, {"layer": "grid_gistar", "weights": "distance:100",
                                                             "permutations": "99"}, free=True), Audience.ANALYST)
    with pytest.raises(HotspotsError, match="geography=grid is offered by the layers"):
        pipeline.parse(config, {"layer": "lisa", "geography": "grid"})


def test_points_for_analysts_only(city):
    _, config = city
    r = layer(config, {"layer": "points", "category": "violent-crime"})
    pts = incident_points(config)
    assert len(r.frame) == int((pts["category"] == "violent-crime").sum()) and {"category_label", "month", "location", "outcome"} <= set(r.frame.columns)
    gj = json.loads(render.display_geojson(config, r))
    assert gj["features"][0]["geometry"]["type"] == "Point"
    with pytest.raises(ForbiddenError):
        layer(config, {"layer": "points"}, Audience.VIEWER)
    names = [e["name"] for e in pipeline.layer_catalogue(config, Audience.VIEWER)]
    assert "points" not in names and {"grid_count", "grid_gistar", "kde"} <= set(names)


def run_cli(b, *args):
    return CliRunner(env=b.env()).invoke(cli, list(args), obj={}, catch_exceptions=False)


def test_cli_grid_analyse_and_kde(city, tmp_path):
    b, _ = city
    out = tmp_path / "gi.geojson"
    r = run_cli(b, "analyse", "--level", "grid", "--cell", "250", "--shape", "hex", "--category", "violent-crime",
                "--permutations", "99", "--out", str(out))
    assert r.exit_code == 0, r.output
    fc = json.loads(out.read_text())
    assert fc["features"] and "gi_z" in fc["features"][0]["properties"] and "hexagonal" in r.output
    tif = tmp_path / "k.tif"
    r = run_cli(b, "kde", "--cell", "100", "--bandwidth", "400", "--kernel", "gaussian", "--out", str(tif))
    assert r.exit_code == 0, r.output
    assert tif.read_bytes()[:2] in (b"II", b"MM")
    r = run_cli(b, "kde", "--cell", "100", "--bandwidth", "400", "--out", str(tmp_path / "k.csv"))
    assert r.exit_code == 0 and "density" in (tmp_path / "k.csv").read_text()


@pytest.mark.parametrize("args, message", [
    (("analyse", "--level", "grid", "--cell", "0"), "cell size must be a finite number of metres > 0, got 0"),
    (("analyse", "--level", "grid", "--cell", "2"), "below the minimum of 5 m"),
    (("kde", "--cell", "250", "--bandwidth", "100"), "smaller than the cell size"),
    (("kde", "--from", "2023-01", "--to", "2023-02"), "no incidents in this period"),
])
def test_cli_bad_input_exits_1(city, tmp_path, args, message):
    b, _ = city
    out = tmp_path / "x.geojson"
    r = run_cli(b, *args, "--out", str(out))
    assert r.exit_code == 1 and message in r.output and not out.exists()


# -- disclosure: two worlds one incident apart, in a grid cell that already holds a small number --------

@pytest.fixture(scope="module")
def grid_worlds(tmp_path_factory):
    """World A: a cluster of violence and small groups of 2 incidents in 100 m cells; world B: the same plus
    one incident 3 m from one of the pairs (the same 100 m and 250 m cell, 2 → 3)."""
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    tmp = tmp_path_factory.mktemp("grid-worlds")
    b = build(tmp)
    rnd = random.Random(5)
    rows = [(f"c{n}", "2024-01", round(400_130 + rnd.uniform(0, 220), 1), round(300_130 + rnd.uniform(0, 220), 1),
             VIOLENCE) for n in range(120)]
    pairs = [(401_140.0, 301_160.0), (401_640.0, 300_660.0), (400_640.0, 301_640.0), (401_360.0, 300_340.0)]
    for k, (x, y) in enumerate(pairs):
        rows += [(f"s{k}a", "2024-01", x, y, VIOLENCE), (f"s{k}b", "2024-01", x + 20, y + 15, VIOLENCE)]
    planted = tmp / "planted.csv"
    planted.write_text(police_csv(rows))
    worlds = []
    for name, extra in (("a", []), ("b", [("x1", "2024-01", pairs[0][0] + 3, pairs[0][1] + 2, VIOLENCE)])):
        c = load_config(b.config_path, env={}, data_dir=b.data_dir, instance_dir=tmp / name, bundle=b.root / "bundle")
        if not (b.data_dir / "bundle.lock.json").exists():
            install_bundle(c)
        files = [planted]
        if extra:
            (tmp / "extra.csv").write_text(police_csv(extra))
            files.append(tmp / "extra.csv")
        ingest_paths(c, files)
        worlds.append(c)
    return worlds


def _no_times(x):
    if isinstance(x, dict):
        return {k: _no_times(v) for k, v in x.items() if k != "generated_at"}
    if isinstance(x, list):
        return [_no_times(v) for v in x]
    return x


def _viewer_outputs(config, args, audience=Audience.VIEWER):
    r = layer(config, args, audience)
    return [render.rows(r), render.display_geojson(config, r), r.legend, _no_times(r.metadata)]


GRID_WORLD_ARGS = [
    {"layer": "grid_count", "cell": "250"}, {"layer": "grid_count", "cell": "250", "shape": "hex"},
    {"layer": "grid_gistar", "cell": "250", "permutations": "99"},
    {"layer": "grid_gistar", "cell": "250", "optimized": "1", "permutations": "99"},
    {"layer": "kde", "cell": "100", "bandwidth": "250"}, {"layer": "kde", "cell": "100", "bandwidth": "400",
                                                           "kernel": "gaussian"},
    {"layer": "kde", "cell": "250", "bandwidth": "400", "variable": "rate"},  # dual KDE: residents are public
]


@pytest.mark.parametrize("args", GRID_WORLD_ARGS)
def test_viewer_grid_outputs_do_not_tell_the_worlds_apart(grid_worlds, args):
    a, b = grid_worlds
    q = {**args, "category": "violent-crime", "from": "2024-01", "to": "2024-01"}
    assert _viewer_outputs(a, q) == _viewer_outputs(b, q)
    assert _viewer_outputs(a, q, Audience.ANALYST) != _viewer_outputs(b, q, Audience.ANALYST)


# -- emerging hot spots on grid cells: twelve months, a corner that heats up, small cells elsewhere -------------

YEAR = [f"2024-{m:02d}" for m in range(1, 13)]
#: (x, y) of pairs of incidents, every month: 250 m cells holding 2 incidents a month (the small range)
YEAR_PAIRS = [(401_140.0, 301_160.0), (401_640.0, 300_660.0), (400_640.0, 301_640.0), (401_360.0, 300_340.0)]


def year_rows(rnd: random.Random) -> list[tuple]:
    """Background violence over the whole city, a south-west 500 m square that heats up month by month, and
    the pairs of :data:`YEAR_PAIRS`."""
    rows = []
    for t, month in enumerate(YEAR):
        for n in range(60):
            rows.append((f"g{t}_{n}", month, round(400_005 + rnd.uniform(0, 1990), 1),
                         round(300_005 + rnd.uniform(0, 1990), 1), VIOLENCE))
        for n in range(3 * t):
            rows.append((f"h{t}_{n}", month, round(400_010 + rnd.uniform(0, 480), 1),
                         round(300_010 + rnd.uniform(0, 480), 1), VIOLENCE))
        for k, (x, y) in enumerate(YEAR_PAIRS):
            rows += [(f"s{t}_{k}a", month, x, y, VIOLENCE), (f"s{t}_{k}b", month, x + 20, y + 15, VIOLENCE)]
    return rows


def _ingest_world(b, tmp, name: str, files: list):
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    c = load_config(b.config_path, env={}, data_dir=b.data_dir, instance_dir=tmp / name, bundle=b.root / "bundle")
    if not (b.data_dir / "bundle.lock.json").exists():
        install_bundle(c)
    ingest_paths(c, files)
    return c


@pytest.fixture(scope="module")
def year_worlds(tmp_path_factory):
    """Two worlds of twelve months one incident apart: world B has one more incident 3 m from a pair, in a month
    when the pair is alone in its 250 m cell (2 → 3)."""
    tmp = tmp_path_factory.mktemp("grid-year")
    b = build(tmp)
    rows = year_rows(random.Random(23))
    planted = tmp / "year.csv"
    planted.write_text(police_csv(rows))

    def cell(x, y):
        return (x // 250, y // 250)
    # a month and pair whose 250 m cell holds only the pair (2 incidents): the extra one makes it 3, still small
    month, (x, y) = next((m, p) for m in YEAR[5:] for p in YEAR_PAIRS
                         if sum(r[1] == m and cell(r[2], r[3]) == cell(*p) for r in rows) == 2)
    extra = tmp / "extra.csv"
    extra.write_text(police_csv([("x1", month, x + 3, y + 2, VIOLENCE)]))
    return _ingest_world(b, tmp, "a", [planted]), _ingest_world(b, tmp, "b", [planted, extra]), b


def direct_spacetime_gistar(cube: np.ndarray, xy: np.ndarray, band: float, k: int) -> np.ndarray:
    """Gi* z of every bin by the formula, bin by bin: the neighbourhood of (i, t) is every cell within ``band``
    metres of i (itself included) at steps t−k … t; mean and population SD over the whole cube."""
    n, steps = cube.shape
    xbar, s, nt = cube.mean(), cube.std(), cube.size
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    z = np.empty(cube.shape)
    for i in range(n):
        near = np.flatnonzero(d[i] <= band * (1 + 1e-9))
        for t in range(steps):
            window = cube[np.ix_(near, range(max(0, t - k), t + 1))]
            w = window.size
            z[i, t] = (window.sum() - xbar * w) / (s * math.sqrt((nt * w - w * w) / (nt - 1)))
    return z


def test_grid_emerging_gi_per_bin_equals_a_direct_computation(year_worlds):
    from hotspots.kinds_grid import grid_emerging_result
    config = year_worlds[0]
    req = pipeline.parse(config, {"layer": "emerging", "geography": "grid", "cell": "250", "category": "violent-crime",
                                  "from": "2024-01", "to": "2024-12"})
    assert req.layer == "grid_emerging" and req.weights == "distance:500"
    g, cube, res = grid_emerging_result(config, req, Audience.ANALYST)
    cells = grid_cells(config, 250, "square").set_index("code").loc[list(g["code"])]
    pts = incident_points(config)
    brute = np.array([[brute_force_counts(grid_cells(config, 250, "square"),
                                          pts[pts["month"] == m]).get(c, 0) for m in YEAR] for c in g["code"]])
    np.testing.assert_array_equal(cube, brute)
    c = cells.geometry.centroid
    ref = direct_spacetime_gistar(brute.astype(float), np.column_stack([c.x, c.y]), 500.0, 1)
    np.testing.assert_allclose(res.gi_z, ref, rtol=1e-9, atol=1e-12)
    r = layer(config, {"layer": "grid_emerging", "cell": "250", "category": "violent-crime", "from": "2024-01",
                       "to": "2024-12"})
    hot = r.frame.loc[r.frame["category"].str.endswith("hot spot"), "code"]
    assert len(hot) and all(int(code.split("_E")[1].split("_")[0]) < 400_750 for code in hot)
    assert {"category", "mk_tau", "count"} <= set(r.frame.columns) and "Emerging hot spots" in r.title
    assert r.metadata["grid"]["cells"] == len(g) and r.metadata["computed_from"] == "exact counts"


def test_grid_emerging_viewers_get_the_protected_cube(year_worlds):
    from hotspots.kinds_grid import grid_emerging_result
    config = year_worlds[0]
    q = {"layer": "grid_emerging", "cell": "250", "category": "violent-crime", "from": "2024-01", "to": "2024-12"}
    req = pipeline.parse(config, q)
    g, exact, res_a = grid_emerging_result(config, req, Audience.ANALYST)
    _, prot, res_v = grid_emerging_result(config, req, Audience.VIEWER)
    base = grid_base_table(config, 250, "square", Audience.VIEWER)
    np.testing.assert_array_equal(prot, base.by_month(list(g["code"]), ["violent-crime"], YEAR, protected=True))
    assert (prot != exact).any() and not np.allclose(res_v.gi_z, res_a.gi_z)
    v = layer(config, q, Audience.VIEWER)
    assert "count" not in v.frame.columns and v.metadata["computed_from"] == "protected table"
    with pytest.raises(HotspotsError, match="for analysts"):  # the viewer minimum cell
        layer(config, {**q, "cell": "100"}, Audience.VIEWER)
    assert layer(config, {**q, "cell": "100"}).metadata["grid"]["cell_m"] == 100


def test_grid_emerging_viewer_outputs_do_not_tell_the_worlds_apart(year_worlds):
    a, b, _ = year_worlds
    for extra in ({}, {"shape": "hex"}, {"weights": "knn:8"}):
        q = {"layer": "grid_emerging", "cell": "250", "category": "violent-crime", "from": "2024-01",
             "to": "2024-12", **extra}
        assert _viewer_outputs(a, q) == _viewer_outputs(b, q), extra
        assert _viewer_outputs(a, q, Audience.ANALYST) != _viewer_outputs(b, q, Audience.ANALYST), extra


def test_cli_emerging_on_a_grid(year_worlds, tmp_path):
    a, _, b = year_worlds
    env = {**b.env(), "HOTSPOTS_INSTANCE_DIR": str(a.instance_dir)}
    out = tmp_path / "e.geojson"
    r = CliRunner(env=env).invoke(cli, ["emerging", "--level", "grid", "--cell", "250", "--shape", "hex",
                                        "--category", "violent-crime", "--from", "2024-01", "--to", "2024-12",
                                        "--out", str(out)], obj={}, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    gj = json.loads(out.read_text())
    assert gj["features"] and gj["features"][0]["properties"]["code"].startswith("hx250_")
    bad = CliRunner(env=env).invoke(cli, ["emerging", "--cell", "250", "--out", str(tmp_path / "x.csv")], obj={})
    assert bad.exit_code == 1 and "--level grid" in bad.output and not (tmp_path / "x.csv").exists()


def test_every_grid_kind_is_attacked_by_a_two_worlds_test():
    """tests/test_attacks.py leaves grid kinds to this module: each must be in one of its two-worlds tests (the
    one-month worlds above, or the twelve-month worlds of grid_emerging)."""
    from hotspots.request import GRID_LAYERS
    assert {a["layer"] for a in GRID_WORLD_ARGS} | {"grid_emerging"} == set(GRID_LAYERS)


@pytest.mark.parametrize("args", [
    {"layer": "grid_gistar", "cell": "250", "weights": "distance:500", "permutations": "99"},
    {"layer": "gistar", "permutations": "99"},
    {"layer": "kde", "cell": "100", "bandwidth": "300"},
])
def test_the_display_geojson_writes_every_value_of_the_layer(city, args):
    """The column-by-column writer gives each feature the published row's values, compacted as before (four
    significant figures below 1,000, one decimal above), nulls for NaN, and the place label."""
    from hotspots.export import jsonable
    _, config = city
    for audience in Audience:
        r = layer(config, dict(args, category="violent-crime"), audience)
        gj = json.loads(render.display_geojson(config, r))
        frame = r.frame.drop(columns="geometry").reset_index(drop=True)
        assert len(gj["features"]) == len(frame)
        for feat, (_, row) in zip(gj["features"], frame.iterrows()):
            props = feat["properties"]
            label = props.pop("place_label")
            assert isinstance(label, str) and (label.startswith("Grid cell ") if "grid" in r.role else label)
            assert list(props) == list(frame.columns)
            for col, value in row.items():
                v = jsonable(value)
                if isinstance(v, float):
                    v = float(f"{v:.4g}") if abs(v) < 1000 else round(v, 1)
                assert props[col] == v, (col, value)
            assert feat["geometry"] is not None


def test_grid_gistar_says_how_its_inference_was_made(city):
    """Shared permutation draws for the cells' Gi*, the analytical tests for the grid's global Moran's I; and
    weights given to analyse_areas must be the areas' own."""
    from hotspots.analysis import analyse_areas
    from hotspots.weights import build_weights
    _, config = city
    r = layer(config, {"layer": "grid_gistar", "cell": "250", "weights": "distance:500", "permutations": "99",
                       "category": "violent-crime"})
    assert r.metadata["method"]["draws"] == "shared" and r.metadata["method"]["moran_permutations"] == 0
    moran = r.metadata["moran"]
    assert moran["p_sim"] is None and 0 <= moran["p_rand"] <= 1 and moran["permutations"] == 0
    g = grid_cells(config, 250, "square")
    import geopandas as gpd
    frame = gpd.GeoDataFrame({"code": g["code"], "count": np.arange(len(g)) % 7}, geometry=g.geometry.to_numpy(),
                             crs=27700)
    w = build_weights(frame.iloc[::-1], "distance:500", id_col="code")
    with pytest.raises(AnalysisError, match="not for these areas"):
        analyse_areas(frame, "code", "count", weights="distance:500", spatial_weights=w)


def test_dual_kde_per_1000_residents_equals_a_direct_computation(city, tmp_path):
    """variable=rate: 1,000 × the incidents' quartic density over the residents', each LSOA's Census residents
    shared among the cells by area, every sum written out here point by point and pair by pair."""
    import rasterio
    from hotspots.bundle import load_boundary, load_population
    b, config = city
    args = {"layer": "kde", "cell": "250", "bandwidth": "400", "category": "violent-crime", "variable": "rate"}
    r = layer(config, args)
    cells = grid_cells(config, 250, "square")
    c = cells.geometry.centroid
    targets = np.column_stack([c.x, c.y])
    pop = load_population(config)
    residents = np.zeros(len(cells))
    for _, area in load_boundary(config, "lsoa21").iterrows():  # areal weighting, one pair at a time
        for i, cell in enumerate(cells["clipped"]):
            residents[i] += pop[area["code"]] * cell.intersection(area.geometry).area / area.geometry.area
    assert residents.sum() == pytest.approx(pop.sum())
    pts = incident_points(config)
    pts = pts[pts["category"] == "violent-crime"][["easting", "northing"]].to_numpy(float)
    d2 = ((targets[:, None, :] - targets[None, :, :]) ** 2).sum(axis=-1) / 400.0 ** 2
    people = (np.where(d2 < 1, 3 / math.pi * (1 - d2) ** 2, 0.0) * residents[None, :]).sum(axis=1) / 400.0 ** 2 * 1e6
    expected = 1000 * quartic_direct(pts, targets, 400.0) / people
    got = pd.Series(r.frame["density"].to_numpy(float), index=r.frame["code"]).reindex(cells["code"]).to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert r.legend["title"] == "Incidents per 1,000 residents" and "dual KDE" in r.legend["note"]
    assert r.metadata["kde"]["dual"] is True and "per 1,000 residents" in r.title
    body, _, name = render.download(config, r, "tif")
    (tmp_path / name).write_bytes(body)
    with rasterio.open(tmp_path / name) as src:
        assert src.tags()["units"] == "incidents per 1,000 residents" and "per1000" in name
    viewer = layer(config, args, Audience.VIEWER)  # from the protected cells, as the viewer's density is
    assert viewer.legend["title"] == "Incidents per 1,000 residents"
    assert not np.allclose(viewer.frame["density"].to_numpy(float), r.frame["density"].to_numpy(float))
    with pytest.raises(HotspotsError, match="per 1,000 residents"):
        layer(config, dict(args, variable="eb_rate"))


def test_prewarm_builds_the_default_views_and_keeps_the_default_grid(city):
    """What the server computes at start (web/__init__.py runs it in the background and only logs a failure, so
    a failure here is the only place it shows): the default layers, and the default grid's files on disk."""
    _, config = city
    pipeline.prewarm(config)
    assert list(config.cache_dir.glob("grid-cells-*.npz")) and list(config.cache_dir.glob("grid-display-*.npz"))
    assert list(config.cache_dir.glob("grid-index-*.npz"))
