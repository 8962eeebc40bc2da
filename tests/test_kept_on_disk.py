"""What processes keep on disk for each other: the store's columnar snapshot and a grid's geography.

Each kept file must give back exactly what computing afresh gives (the same counts, the same protected
values, bit-identical cells), must never be read for another version of its inputs, and a broken file must
be a miss, never an error."""
from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
import shapely

from hotspots import cache, filecache, grid_cache, store
from hotspots.aggregate import base_table, incident_columns
from hotspots.grid import cell_geometry_texts, make_grid
from hotspots.protect import build_base
from hotspots.request import Audience
from synthetic_bundle import X0, Y0, build, ingested

VIOLENCE = "Violence and sexual offences"


def _rows(seed: int, n: int, month: str) -> list[tuple]:
    rnd = random.Random(seed)
    cats = [VIOLENCE, "Burglary", "Robbery"]
    return [(f"{seed}-{k}", month, round(X0 + rnd.uniform(1, 1999), 1), round(Y0 + rnd.uniform(1, 1999), 1),
             rnd.choice(cats)) for k in range(n)]


@pytest.fixture()
def town(tmp_path):
    """A synthetic city with 400 incidents over two months and three categories (function scope: tests write)."""
    b = build(tmp_path)
    config = ingested(b, "a.csv", _rows(1, 250, "2024-01") + _rows(2, 150, "2024-02"))
    cache.clear()
    return b, config


def _kept(config, pattern: str) -> list:
    return sorted(config.cache_dir.glob(pattern))


# -- the columnar snapshot ------------------------------------------------------------------------------------

def test_the_ingest_keeps_a_snapshot_equal_to_the_store(town):
    _, config = town
    (kept,) = _kept(config, "incidents-*.npz")  # written at the end of the ingest
    import stat  # exact locations: as private as the store
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and stat.S_IMODE(config.cache_dir.stat().st_mode) == 0o700
    col = store.incident_columns(config.db_path, config.cache_dir)
    con = store.connect(config.db_path, readonly=True)
    rows = con.execute("SELECT i.easting_dm, i.northing_dm, i.month, c.slug, a.code FROM incidents i "
                       "JOIN categories c ON c.id = i.category_id JOIN areas a ON a.id = i.lsoa21_id "
                       "WHERE i.in_area = 1").fetchall()
    con.close()
    got = sorted(zip(col["easting_dm"].tolist(), col["northing_dm"].tolist(),
                     [col["months"][i] for i in col["month_idx"]], [col["categories"][i] for i in col["cat_idx"]],
                     [col["lsoa21_codes"][i] for i in col["lsoa21_idx"]]))
    assert got == sorted(rows) and len(rows) == 400
    # the label lists are exactly the sorted sets present (the request catalogue offers them as they are)
    assert col["months"] == sorted({r[2] for r in rows}) and col["categories"] == sorted({r[3] for r in rows})


@pytest.mark.parametrize("audience", list(Audience))
def test_base_tables_from_the_snapshot_equal_the_sql_count(town, audience):
    """The LSOA and ward tables counted by numpy from the snapshot hold the cells, exact values and protected
    values that SQL's GROUP BY gives through build_base."""
    _, config = town
    from hotspots.aggregate import effective_rule, perturbation_key
    for role in ("lsoa21", "ward"):
        fast = base_table(config, role, audience)
        rule = effective_rule(config) if audience is Audience.VIEWER else None
        cells = pd.DataFrame(store.count_cells(config.db_path, role), columns=["code", "month", "category", "n"])
        slow = build_base(cells, role, rule, perturbation_key(config) if rule else None)
        assert (fast.codes, fast.months, fast.categories) == (slow.codes, slow.months, slow.categories)

        def keyed(t, values):
            return sorted(zip(t.area_idx.tolist(), t.month_idx.tolist(), t.cat_idx.tolist(), values.tolist()))
        assert keyed(fast, fast.exact) == keyed(slow, slow.exact)
        if rule is not None:
            assert keyed(fast, fast.protected) == keyed(slow, slow.protected)


def test_a_later_process_reads_the_snapshot_without_sql(town, monkeypatch):
    _, config = town
    first = store.incident_columns(config.db_path, config.cache_dir)

    def no_sql(*a, **k):
        raise AssertionError("the store was queried")
    monkeypatch.setattr(store, "_read", no_sql)
    again = store.incident_columns(config.db_path, config.cache_dir)
    assert again.keys() == first.keys()
    assert all(np.array_equal(again[k], first[k]) if isinstance(first[k], np.ndarray) else again[k] == first[k]
               for k in first)


def test_a_new_ingest_makes_a_new_snapshot_and_drops_the_old(town):
    b, config = town
    old = _kept(config, "incidents-*.npz")
    ingested(b, "b.csv", _rows(3, 50, "2024-03"))
    new = _kept(config, "incidents-*.npz")
    assert len(new) == 1 and new != old
    cache.clear()
    assert "2024-03" in incident_columns(config)["months"]
    assert int(base_table(config, "lsoa21").exact.sum()) == 450


def test_a_snapshot_is_not_kept_when_the_store_changes_while_it_is_read(town, monkeypatch):
    _, config = town
    for f in _kept(config, "incidents-*.npz"):
        f.unlink()
    versions = iter([("before",), ("after",)])
    monkeypatch.setattr(store, "_file_version", lambda db: next(versions))
    col = store.incident_columns(config.db_path, config.cache_dir)
    assert len(col["cat_idx"]) == 400 and _kept(config, "incidents-*.npz") == []


def test_a_broken_snapshot_is_a_miss(town):
    _, config = town
    (path,) = _kept(config, "incidents-*.npz")
    path.write_bytes(b"PK\x03\x04 not really a zip")
    col = store.incident_columns(config.db_path, config.cache_dir)
    assert len(col["cat_idx"]) == 400
    assert filecache.load(path) is not None  # written again, whole
    filecache.save(path, something=np.arange(3))  # a readable file that is not a snapshot: a miss too
    assert len(store.incident_columns(config.db_path, config.cache_dir)["cat_idx"]) == 400
    assert "cat_idx" in filecache.load(path)


# -- a grid's geography ------------------------------------------------------------------------------------

#: an irregular area (a notched polygon), so that many cells are cut by its boundary
AREA = shapely.Polygon([(X0, Y0), (X0 + 2000, Y0), (X0 + 2000, Y0 + 1330), (X0 + 1170, Y0 + 2000),
                        (X0, Y0 + 2000), (X0 + 610, Y0 + 990)])


@pytest.mark.parametrize("shape", ["square", "hex"])
def test_a_kept_grid_is_identical_to_make_grid(town, shape):
    _, config = town
    made = make_grid(AREA, 130, shape)
    assert made["partial"].sum() > 20
    first = grid_cache.grid(config, 130, shape, lambda: make_grid(AREA, 130, shape))
    assert len(_kept(config, "grid-cells-*.npz")) == 1

    def never():
        raise AssertionError("built again")
    kept = grid_cache.grid(config, 130, shape, never)
    for g in (first, kept):
        assert list(g.columns) == list(made.columns) and g.attrs == made.attrs
        assert g["code"].tolist() == made["code"].tolist()
        for c in ("ix", "iy", "share_inside", "partial"):
            assert np.array_equal(g[c].to_numpy(), made[c].to_numpy()) and g[c].dtype == made[c].dtype
        assert shapely.equals_identical(g.geometry.to_numpy(), made.geometry.to_numpy()).all()
        assert shapely.equals_identical(g["clipped"].to_numpy(), made["clipped"].to_numpy()).all()
        assert g.crs == made.crs and g["clipped"].crs == made["clipped"].crs


def test_a_grid_is_kept_per_boundary_file_and_a_broken_file_is_rebuilt(town, monkeypatch):
    _, config = town
    grid_cache.grid(config, 170, "square", lambda: make_grid(AREA, 170))
    (path,) = _kept(config, "grid-cells-*.npz")
    path.write_bytes(path.read_bytes()[:100])  # truncated
    g = grid_cache.grid(config, 170, "square", lambda: make_grid(AREA, 170))
    assert len(g) == len(make_grid(AREA, 170)) and filecache.load(path) is not None
    from hotspots import bundle
    lock = bundle.read_lock(config)
    for f in lock["files"]:
        if f["dataset"] == config.boundary("lsoa21").key:
            f["sha256"] = "0" * 64  # another LSOA boundary file: another grid
    monkeypatch.setattr(bundle, "read_lock", lambda cfg: lock)
    calls = []
    grid_cache.grid(config, 170, "square", lambda: calls.append(1) or make_grid(AREA, 170))
    assert calls == [1] and len(_kept(config, "grid-cells-*.npz")) == 2


def test_nothing_is_kept_without_a_bundle_lock(town):
    _, config = town
    config.lock_path.rename(config.lock_path.with_suffix(".moved"))
    try:
        g = grid_cache.grid(config, 190, "square", lambda: make_grid(AREA, 190))
    finally:
        config.lock_path.with_suffix(".moved").rename(config.lock_path)
    assert len(g) == len(make_grid(AREA, 190)) and _kept(config, "grid-cells-*.npz") == []


def test_kept_display_geometry_and_labels_equal_a_fresh_computation(town, monkeypatch):
    _, config = town
    cells = grid_cache.grid(config, 130, "square", lambda: make_grid(AREA, 130))
    labels = {}

    def name(frame):
        labels.update({c: f"cell {c}" for c in frame["code"]})
        return dict(labels)
    texts, names = grid_cache.display(config, cells, 5, name)
    assert texts == dict(zip(cells["code"], cell_geometry_texts(cells["clipped"].to_numpy(), 5)))
    assert names == labels
    from hotspots import grid as grid_module
    monkeypatch.setattr(grid_module, "cell_geometry_texts", lambda *a, **k: pytest.fail("computed again"))
    again = grid_cache.display(config, cells, 5, lambda frame: pytest.fail("named again"))
    assert again == (texts, names)
    json.loads(next(iter(texts.values())))  # GeoJSON geometry text


def test_each_incidents_cell_is_kept_per_grid_and_store_version(town, monkeypatch):
    """As the store keeps each incident's LSOA and ward, a grid keeps each incident's cell: equal to
    assign_cells, read back without assigning again, and made again (the old one removed) after an ingest."""
    from hotspots import grid as grid_module
    from hotspots.aggregate import grid_base_table, grid_cells
    b, config = town
    table = grid_base_table(config, 250, "square")
    (kept,) = _kept(config, "grid-index-*.npz")
    col = incident_columns(config)
    has = col["easting_dm"] >= 0
    cells = grid_cells(config, 250, "square")
    expected = grid_module.assign_cells(col["easting_dm"][has] / 10.0, col["northing_dm"][has] / 10.0, cells)
    assert np.array_equal(filecache.load(kept)["cell"], expected) and int(table.exact.sum()) == (expected >= 0).sum()
    cache.clear()
    monkeypatch.setattr(grid_module, "assign_cells", lambda *a: pytest.fail("assigned again"))
    again = grid_base_table(config, 250, "square")
    assert (again.codes, again.exact.tolist()) == (table.codes, table.exact.tolist())
    monkeypatch.undo()
    ingested(b, "b.csv", _rows(3, 50, "2024-03"))
    cache.clear()
    assert int(grid_base_table(config, 250, "square").exact.sum()) == int(table.exact.sum()) + 50
    (new,) = _kept(config, "grid-index-*.npz")
    assert new != kept
