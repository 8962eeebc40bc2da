"""Fixtures for the web tests: Gridtown (4x4 synthetic LSOAs, 4 wards) with planted incidents over three
months, ingested once per session, and an app + test client over it (no warm-up thread)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

#: incidents per (row, col) cell and month: a hot south-west corner that cools in March.
PLAN = {
    "2024-01": {(0, 0): 9, (0, 1): 7, (1, 0): 6, (1, 1): 5, (2, 2): 1, (3, 3): 1},
    "2024-02": {(0, 0): 8, (0, 1): 6, (1, 0): 7, (1, 1): 4, (3, 2): 2},
    "2024-03": {(0, 0): 3, (0, 1): 2, (1, 0): 2, (2, 3): 1, (3, 3): 2},
}


@pytest.fixture(scope="session")
def gridtown_app_config(tmp_path_factory):
    from hotspots.bundle import install_bundle
    from hotspots.config import load_config
    from hotspots.ingest import ingest_paths
    from synthetic_bundle import build, cell_centre, police_csv
    tmp = tmp_path_factory.mktemp("gridtown-web")
    b = build(tmp)
    rows, n = [], 0
    for month, cells in PLAN.items():
        for (i, j), k in cells.items():
            x, y = cell_centre(i, j)
            for q in range(k):
                n += 1
                crime = "Violence and sexual offences" if q % 3 else ("Burglary" if q % 2 else "Violence and sexual offences")
                rows.append((f"web{n}", month, x + 10 * q, y + 5 * q, crime))
    (b.root / "bundle" / "crime" / "planted.csv").write_text(police_csv(rows))
    config = load_config(b.config_path, env={}, data_dir=b.data_dir, instance_dir=b.instance_dir,
                         bundle=b.root / "bundle")
    install_bundle(config)
    ingest_paths(config, [b.root / "bundle" / "crime"])
    return config


@pytest.fixture(scope="session")
def app(gridtown_app_config):
    from web import create_app
    return create_app(gridtown_app_config, test_config={"TESTING": True, "WARM_UP": False})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def config(gridtown_app_config):
    return gridtown_app_config
