"""Attacks on what viewers see (issue 14): a determined viewer with many requests and some algebra.

Two worlds are built that differ in ONE small cell only: world B has one more incident in an area whose
count is small (1-4) in world A. Every attack below is run in both worlds from viewer outputs alone:

* the Gi* inversion that recovered every suppressed Wolverhampton count before: z-scores under several
  weight specifications, as linear equations in the unknown counts, solved by least squares;
* category differencing ((violence + burglary) minus burglary), overlapping-period differencing
  ((Jan-Feb) minus Feb) and ward-minus-LSOAs differencing;
* and, generally, every viewer output of every registered crime layer kind (so a new kind is attacked
  automatically): map rows, the map's GeoJSON, the side panel, the comparison table, category totals.

An attack that could recover exact small counts would give different answers in the two worlds. Each gives
the same answer in both, so it cannot tell 2 from 3 (or 1 from 2); what it does recover is the protected
table (``hotspots.protect``): the least-squares solve returns the protected area totals to 1e-6.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from hotspots import layers, pipeline, render
from hotspots.aggregate import area_counts
from hotspots.errors import HotspotsError
from hotspots.request import GRID_LAYERS, Audience
from hotspots.weights import build_weights

VIEWER, ANALYST = Audience.VIEWER, Audience.ANALYST
GI_SPECS = ("queen", "rook", "knn:3", "knn:5", "knn:8")


@dataclass
class World:
    config: object
    name: str


def _two_worlds(tmp: Path, base_files: list[Path], extra_csv: str, make_config) -> tuple[World, World]:
    """World A: the base files; world B: the same plus one more incident (``extra_csv``)."""
    from hotspots.ingest import ingest_paths
    a = make_config(tmp / "a")
    ingest_paths(a, base_files)
    b = make_config(tmp / "b")
    ingest_paths(b, base_files)
    extra = tmp / "extra.csv"
    extra.write_text(extra_csv, encoding="utf-8")
    ingest_paths(b, [extra])
    return World(a, "A"), World(b, "B")


# -- the synthetic city ------------------------------------------------------------------------------------

#: incidents per (row, col) LSOA of Gridtown and month; (2, 2) has 2 violent crimes in 2024-01 (small)
PLAN = {"2024-01": {(0, 0): 9, (0, 1): 7, (1, 0): 6, (1, 1): 5, (2, 2): 2, (3, 3): 1, (0, 3): 3},
        "2024-02": {(0, 0): 8, (0, 1): 6, (1, 0): 7, (1, 1): 4, (3, 2): 2, (2, 2): 6},
        "2024-03": {(0, 0): 3, (0, 1): 2, (1, 0): 2, (2, 3): 1, (3, 3): 2}}
TARGET = (2, 2)


@pytest.fixture(scope="module")
def gridtown_worlds(tmp_path_factory):
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from synthetic_bundle import build, cell_centre, police_csv
    tmp = tmp_path_factory.mktemp("attack-gridtown")
    b = build(tmp)
    rows, n = [], 0
    for month, cells in PLAN.items():
        for (i, j), k in cells.items():
            x, y = cell_centre(i, j)
            for q in range(k):
                n += 1
                rows.append((f"atk{n}", month, x + 10 * q, y + 5 * q, "Violence and sexual offences"))
                if q % 2:
                    n += 1
                    rows.append((f"atk{n}", month, x - 7 * q, y - 3 * q, "Burglary"))
    planted = b.root / "bundle" / "crime" / "planted.csv"
    planted.write_text(police_csv(rows))

    def make(inst: Path):
        c = load_config(b.config_path, env={}, data_dir=b.data_dir, instance_dir=inst, bundle=b.root / "bundle")
        if not (b.data_dir / "bundle.lock.json").exists():
            install_bundle(c)
        return c
    x, y = cell_centre(*TARGET)
    extra = police_csv([("atk-extra", "2024-01", x + 37, y - 41, "Violence and sexual offences")])
    return _two_worlds(tmp, [planted], extra, make)


def _target_code(config) -> str:
    from synthetic_bundle import lsoa_code
    return lsoa_code(*TARGET)


def _exact(config, code, cats=("violent-crime",), mf="2024-01", mt="2024-01") -> int:
    g = area_counts(config, "lsoa", list(cats), mf, mt, ANALYST)
    return int(g.set_index("code").loc[code, "count"])


def test_worlds_differ_only_in_one_small_cell(gridtown_worlds):
    a, b = gridtown_worlds
    code = _target_code(a.config)
    assert (_exact(a.config, code), _exact(b.config, code)) == (2, 3)
    ga = area_counts(a.config, "lsoa", ["violent-crime"], "2024-01", "2024-03", ANALYST)
    gb = area_counts(b.config, "lsoa", ["violent-crime"], "2024-01", "2024-03", ANALYST)
    diff = (gb["count"].to_numpy() - ga["count"].to_numpy())
    assert diff.sum() == 1 and diff[list(ga["code"]).index(code)] == 1


# -- 1. Gi* inversion ----------------------------------------------------------------------------------

def _gi_inversion(config, req, specs=GI_SPECS) -> dict:
    """The attack of issue 14: every published Gi* z under several weights is one linear equation
    sum_j w_ij x_j - xbar W_i - S c_i z_i = 0 in the unknowns (x, xbar, S); with xbar = mean(x) and the
    published counts as further equations, least squares gives x back."""
    rows0 = render.rows(pipeline.build_layer(config, replace(req, weights=specs[0]), VIEWER))
    codes = [r["code"] for r in rows0]
    n = len(codes)
    eqs, rhs = [], []
    areas = area_counts(config, req.geography, list(req.categories), req.month_from, req.month_to, VIEWER)
    for spec in specs:
        rows = render.rows(pipeline.build_layer(config, replace(req, weights=spec), VIEWER))
        w = build_weights(areas, spec, id_col="code")  # the boundaries are public: so are the weights
        order = {c: i for i, c in enumerate(w.ids)}
        for r in rows:
            z = r.get("gi_z")
            if z is None:
                continue
            i = order[r["code"]]
            row = np.zeros(n + 2)
            idx = [codes.index(w.ids[j]) for j in w.neighbours(i)] + [codes.index(r["code"])]
            row[idx] = 1.0
            wi = float(len(idx))
            row[n] = -wi
            row[n + 1] = -z * np.sqrt((n * wi - wi * wi) / (n - 1))
            eqs.append(row)
            rhs.append(0.0)
    mean_row = np.zeros(n + 2)
    mean_row[:n] = 1.0
    mean_row[n] = -n
    eqs.append(mean_row)
    rhs.append(0.0)
    for r in rows0:  # the published counts
        if isinstance(r["count"], (int, float)) and not r.get("suppressed"):
            row = np.zeros(n + 2)
            row[codes.index(r["code"])] = 1.0
            eqs.append(row)
            rhs.append(float(r["count"]))
    sol = np.linalg.lstsq(np.array(eqs), np.array(rhs), rcond=None)[0]
    return dict(zip(codes, sol[:n]))


def test_gi_inversion_recovers_the_protected_table_not_the_counts(gridtown_worlds):
    a, b = gridtown_worlds
    req = pipeline.parse(a.config, {"layer": "gistar", "category": "violent-crime", "from": "2024-01",
                                    "to": "2024-01", "permutations": "99"})
    code = _target_code(a.config)
    got = {w.name: _gi_inversion(w.config, req) for w in (a, b)}
    protected = area_counts(a.config, "lsoa", ["violent-crime"], "2024-01", "2024-01", VIEWER).set_index("code")
    for c, v in got["A"].items():  # the attack works: it recovers what viewers' statistics come from ...
        assert v == pytest.approx(float(protected.loc[c, "count"]), abs=1e-6)
        assert got["B"][c] == pytest.approx(v, abs=1e-9)  # ... which is the same in both worlds
    exact = (_exact(a.config, code), _exact(b.config, code))
    assert exact == (2, 3)
    recovered = round(got["A"][code])
    assert not (recovered == exact[0] and round(got["B"][code]) == exact[1]), \
        "the attack told the two worlds apart"


# -- 2. differencing ------------------------------------------------------------------------------------

def _viewer_count(config, code, **q) -> object:
    req = pipeline.parse(config, {"layer": "count", **q})
    rows = {r["code"]: r for r in render.rows(pipeline.build_layer(config, req, VIEWER))}
    return rows[code]["count"]


def _difference(x, y):
    return x - y if isinstance(x, int) and isinstance(y, int) else None


@pytest.mark.parametrize("attack", ["category", "period", "ward"])
def test_differencing_gives_the_same_answer_in_both_worlds(gridtown_worlds, attack):
    a, b = gridtown_worlds
    code = _target_code(a.config)
    est = {}
    for w in (a, b):
        if attack == "category":  # (violence + burglary) - burglary = violence?
            both = _viewer_count(w.config, code, category="violent-crime,burglary", **{"from": "2024-01", "to": "2024-01"})
            burg = _viewer_count(w.config, code, category="burglary", **{"from": "2024-01", "to": "2024-01"})
            est[w.name] = _difference(both, burg)
        elif attack == "period":  # (Jan + Feb) - Feb = Jan?
            jf = _viewer_count(w.config, code, category="violent-crime", **{"from": "2024-01", "to": "2024-02"})
            feb = _viewer_count(w.config, code, category="violent-crime", **{"from": "2024-02", "to": "2024-02"})
            est[w.name] = _difference(jf, feb)
        else:  # ward total minus the ward's other LSOAs
            req = pipeline.parse(w.config, {"layer": "count", "category": "violent-crime", "from": "2024-01",
                                            "to": "2024-01"})
            lsoa = render.rows(pipeline.build_layer(w.config, req, VIEWER))
            ward = {r["code"]: r for r in render.rows(pipeline.build_layer(w.config, replace(req, geography="ward"),
                                                                          VIEWER))}
            mine = next(r for r in lsoa if r["code"] == code)
            others = [r["count"] for r in lsoa if r["ward_code"] == mine["ward_code"] and r["code"] != code]
            total = ward[mine["ward_code"]]["count"]
            est[w.name] = (total - sum(others) if isinstance(total, int) and all(isinstance(o, int) for o in others)
                           else None)
    assert est["A"] == est["B"], est
    exact = (_exact(a.config, code), _exact(b.config, code))
    assert exact == (2, 3)
    if est["A"] is not None:  # what the difference gives is the protected cell, not the count
        prot = area_counts(a.config, "lsoa", ["violent-crime"], "2024-01", "2024-01", VIEWER)
        assert est["A"] == int(prot.set_index("code").loc[code, "count"])
        assert not (est["A"] == exact[0] and est["B"] == exact[1])


# -- 3. every viewer output of every crime kind ---------------------------------------------------------

REQUESTS = [
    {"category": "violent-crime", "from": "2024-01", "to": "2024-01"},
    {"category": "violent-crime,burglary", "from": "2024-01", "to": "2024-02"},
    {"category": "burglary", "from": "2024-01", "to": "2024-03", "geography": "ward"},
    {"category": "violent-crime", "from": "2024-02", "to": "2024-03", "variable": "rate", "significance": "fdr",
     "weights": "knn:5"},
    {"category": "violent-crime", "from": "2024-01", "to": "2024-03", "variable": "eb_rate",
     "significance": "bonferroni", "weights": "rook"},
    {"category": "violent-crime", "from": "2024-02", "to": "2024-02", "compare_from": "2024-01",
     "compare_to": "2024-01"},
]


def _outputs(config, kind: str, q: dict, audience: Audience):
    """Everything ``audience`` can get for one kind and query, with the generation time removed."""
    try:
        req = pipeline.parse(config, {"layer": kind, "permutations": "99", **q})
        r = pipeline.build_layer(config, req, audience)
    except HotspotsError as exc:
        return ("error", exc.status, exc.reason)
    out = [render.rows(r), render.display_geojson(config, r), r.legend, r.summary.get("totals"),
           {k: v for k, v in r.metadata.items() if k not in ("generated_at",)}]
    if kind == "gistar":
        out.append(pipeline.panel(config, req, audience))
    if kind == "change":
        out.append(pipeline.comparison(config, req, audience))
    return out


def _strip_times(x):
    if isinstance(x, dict):
        return {k: _strip_times(v) for k, v in x.items() if k not in ("generated_at",)}
    if isinstance(x, list):
        return [_strip_times(v) for v in x]
    return x


def test_every_viewer_output_of_every_crime_kind_is_the_same_in_both_worlds(gridtown_worlds):
    a, b = gridtown_worlds
    # Grid kinds resolve a small area into cells, so one more incident can turn an empty cell into "<5": they
    # are checked with worlds one incident apart inside an already non-empty cell (tests/test_kinds_grid.py).
    kinds = [k.name for k in layers.kinds(a.config) if k.group == "crime" and not k.analyst_only
             and k.name not in GRID_LAYERS]
    assert {"count", "rate", "eb_rate", "gistar", "lisa", "change"} <= set(kinds)
    compared = 0
    analyst_differs = False
    for kind in kinds:
        for q in REQUESTS:
            va, vb = (_strip_times(_outputs(w.config, kind, q, VIEWER)) for w in (a, b))
            assert va == vb, f"viewer output of {kind} {q} tells the worlds apart"
            compared += 1
            if _strip_times(_outputs(a.config, kind, q, ANALYST)) != _strip_times(_outputs(b.config, kind, q,
                                                                                          ANALYST)):
                analyst_differs = True
    assert compared >= 36
    assert analyst_differs, "analysts see the extra incident (the worlds really differ)"
    assert pipeline.categories(a.config, VIEWER) == pipeline.categories(b.config, VIEWER)
    assert pipeline.categories(a.config, ANALYST) != pipeline.categories(b.config, ANALYST)


def test_a_column_a_kind_does_not_list_is_withheld_from_viewers(gridtown_worlds):
    """Disclosure by allow-list: a new statistic column reaches viewers only once the kind lists it."""
    a, _ = gridtown_worlds
    base = layers.get(a.config, "gistar")

    def build(config, req, audience):
        an = base.build(config, req, audience)
        an.frame = an.frame.assign(secret_stat=np.arange(len(an.frame), dtype=float))
        return an
    hidden = layers.LayerKind("gistar_test", "test", "crime", build, base.uses, base.columns, counts=base.counts,
                              redact=base.redact)
    listed = replace(hidden, name="gistar_test2",
                     columns={aud: cols + ("secret_stat",) for aud, cols in base.columns.items()})
    from hotspots.publish import publish
    req = pipeline.parse(a.config, {"layer": "gistar", "permutations": "99"})
    for kind, shown in ((hidden, False), (listed, True)):
        r = publish(a.config, kind, req, kind.build(a.config, req, VIEWER), VIEWER)
        assert ("secret_stat" in r.frame.columns) is shown
        assert any("secret_stat" in row for row in render.rows(r)) is shown


# -- 4. the real Wolverhampton bundle -------------------------------------------------------------------

@pytest.fixture(scope="module")
def wolverhampton_worlds(tmp_path_factory, real_bundle):
    import pandas as pd
    from hotspots.bundle import install_bundle, load_boundary
    from hotspots.config import load_config
    from hotspots.geocode import bng_to_lonlat
    tmp = tmp_path_factory.mktemp("attack-wolves")
    data = tmp / "data"

    def make(inst: Path):
        c = load_config(env={}, data_dir=data, instance_dir=inst, bundle=real_bundle)
        if not (data / "bundle.lock.json").exists():
            install_bundle(c)
        return c
    files = [real_bundle / "crime" / "wolverhampton-police-api-2018-06"]
    probe = make(tmp / "probe")
    from hotspots.ingest import ingest_paths
    ingest_paths(probe, files)
    g = area_counts(probe, "lsoa", ["violent-crime"], "2018-06", "2018-06", ANALYST)
    code = str(g[g["count"] == 2].sort_values("code")["code"].iloc[0])
    shutil.rmtree(tmp / "probe", ignore_errors=True)
    poly = load_boundary(probe, "lsoa21").set_index("code").loc[code, "geometry"]
    p = poly.representative_point()
    lon, lat = bng_to_lonlat(np.array([p.x]), np.array([p.y]))
    header = ("Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,Crime type,"
              "Last outcome category,Context\n")
    extra = header + (f"attack-extra-1,2018-06,West Midlands Police,West Midlands Police,{lon[0]:.6f},{lat[0]:.6f},"
                      f"On or near Test Street,{code},,Violence and sexual offences,,\n")
    wa, wb = _two_worlds(tmp, files, extra, make)
    return wa, wb, code, pd


@pytest.mark.bundle
def test_wolverhampton_attacks_fail(wolverhampton_worlds):
    a, b, code, _ = wolverhampton_worlds
    q = {"category": "violent-crime", "from": "2018-06", "to": "2018-06"}
    ex = [int(area_counts(w.config, "lsoa", ["violent-crime"], "2018-06", "2018-06", ANALYST)
              .set_index("code").loc[code, "count"]) for w in (a, b)]
    assert ex == [2, 3]
    # Gi* inversion over nine weight specifications: the protected table, the same in both worlds
    req = pipeline.parse(a.config, {"layer": "gistar", "permutations": "99", **q})
    specs = GI_SPECS + ("knn:12", "distance:1000", "distance:1500", "distance:2000")
    got = [_gi_inversion(w.config, req, specs) for w in (a, b)]
    prot = area_counts(a.config, "lsoa", ["violent-crime"], "2018-06", "2018-06", VIEWER).set_index("code")["count"]
    assert max(abs(v - prot[c]) for c, v in got[0].items()) < 1e-6
    assert max(abs(got[0][c] - got[1][c]) for c in got[0]) < 1e-9
    assert not (round(got[0][code]) == 2 and round(got[1][code]) == 3)
    # every viewer output of every crime kind
    for kind in [k.name for k in layers.kinds(a.config) if k.group == "crime" and not k.analyst_only
                 and k.name not in GRID_LAYERS]:
        for extra in ({}, {"geography": "ward"}, {"variable": "rate", "weights": "knn:8", "significance": "fdr"}):
            va, vb = (_strip_times(_outputs(w.config, kind, {**q, **extra}, VIEWER)) for w in (a, b))
            assert va == vb, f"{kind} {extra}"
    # ward minus its other LSOAs
    lsoa = render.rows(pipeline.build_layer(a.config, pipeline.parse(a.config, {"layer": "count", **q}), VIEWER))
    assert next(r for r in lsoa if r["code"] == code)["count"] == "<5"


# -- 5. a partner source under the hospital rule (issue 12) ----------------------------------------------

SOURCE_REQUESTS = [
    {"category": "src:hospital", "from": "2024-01", "to": "2024-01"},
    {"category": "src:hospital/18-24", "from": "2023-04", "to": "2024-03"},
    {"category": "src:hospital", "from": "2024-01", "to": "2024-03", "geography": "ward"},
    {"category": "src:hospital", "from": "2023-11", "to": "2024-01", "variable": "rate", "significance": "fdr"},
    {"category": "violent-crime", "versus": "src:hospital", "from": "2024-01", "to": "2024-03"},
    {"category": "src:hospital", "versus": "violent-crime,burglary", "from": "2024-01", "to": "2024-03",
     "geography": "ward"},
]


@pytest.fixture(scope="module")
def hospital_worlds(tmp_path_factory, gridtown_worlds):
    """Both worlds hold the same police incidents (world A's) and a hospital source; world B's source has
    one more admission in one small cell (an LSOA-month-age band of 2, made 3)."""
    import csv
    from hotspots.sources import add_source
    from source_fixture import gridtown_hospital, write_csv
    a, _ = gridtown_worlds
    tmp = tmp_path_factory.mktemp("attack-hospital")
    path_a, rows = gridtown_hospital(tmp)
    target = next(r for r in rows if r["admissions"] == 2 and r["period"] == "2024-01")
    rows_b = [dict(r, admissions=r["admissions"] + 1) if r is target else r for r in rows]
    (tmp / "b").mkdir()
    path_b = write_csv(tmp / "b" / "hospital.csv", rows_b)
    worlds = []
    for name, path in (("A", path_a), ("B", path_b)):
        inst = tmp / f"inst-{name}"
        shutil.copytree(a.config.instance_dir, inst)  # the same police store
        config = replace(a.config, instance_dir=inst)
        add_source(config, "hospital", path, "lsoa21", "period", "admissions", category_col="age_band",
                   disclosure="hospital", place="residence")
        worlds.append(World(config, name))
    assert list(csv.DictReader(path_a.read_text().splitlines()))[rows.index(target)]["admissions"] == "2"
    return worlds[0], worlds[1], target


def test_hospital_source_viewer_outputs_are_the_same_in_both_worlds(hospital_worlds):
    a, b, target = hospital_worlds
    ex = [int(area_counts(w.config, "lsoa", ["src:hospital/" + target["age_band"]], "2024-01", "2024-01", ANALYST)
              .set_index("code").loc[target["LSOA21CD"], "count"]) for w in (a, b)]
    assert ex == [2, 3]
    kinds = [k.name for k in layers.kinds(a.config) if k.group == "crime" and not k.analyst_only
             and k.name not in GRID_LAYERS]
    assert {"count", "gistar", "lisa", "change", "comparison", "comparison_lisa"} <= set(kinds)
    compared, answered = 0, 0
    for kind in kinds:
        for q in SOURCE_REQUESTS:
            if ("versus" in q) != kind.startswith("comparison"):
                continue
            va, vb = (_strip_times(_outputs(w.config, kind, q, VIEWER)) for w in (a, b))
            assert va == vb, f"viewer output of {kind} {q} tells the worlds apart"
            compared += 1
            answered += va[0] != "error"
    assert compared >= 30 and answered >= 25
    assert pipeline.categories(a.config, VIEWER) == pipeline.categories(b.config, VIEWER)
    # analysts do see the difference (the worlds really differ)
    q = {"category": "src:hospital", "from": "2024-01", "to": "2024-01"}
    assert _strip_times(_outputs(a.config, "count", q, ANALYST)) != _strip_times(_outputs(b.config, "count", q, ANALYST))
