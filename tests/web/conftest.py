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


#: test accounts (made once per session with cheap Argon2 parameters; the app verifies any parameters)
PASSWORDS = {"ana": "analyst-password-1", "vic": "viewer-password-1", "root": "admin-password-12"}
ROLES = {"ana": "analyst", "vic": "viewer", "root": "admin"}


@pytest.fixture(scope="session")
def users(gridtown_app_config):
    from argon2 import PasswordHasher
    from hotspots.users import UserStore
    st = UserStore.from_config(gridtown_app_config, PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    return {name: st.add_user(name, PASSWORDS[name], ROLES[name]) for name in PASSWORDS}


@pytest.fixture(scope="session")
def app(gridtown_app_config, users):
    from web import create_app
    return create_app(gridtown_app_config, test_config={"TESTING": True, "WARM_UP": False})


def sign_in(client, user):
    """Start a server-side session for ``user`` and put its id in the client's cookie (what a successful
    POST /login does)."""
    from web.auth import SESSION_KEY, open_session
    with client.application.app_context():
        sid = open_session(user.username)
    with client.session_transaction() as s:
        s[SESSION_KEY] = sid
    return client


@pytest.fixture(name="sign_in", scope="session")
def sign_in_fixture():
    """The ``sign_in(client, user)`` helper (a fixture: tests/browser has a conftest module too)."""
    return sign_in


@pytest.fixture(name="PASSWORDS", scope="session")
def passwords_fixture():
    return PASSWORDS


@pytest.fixture(name="ROLES", scope="session")
def roles_fixture():
    return ROLES


@pytest.fixture
def client(app, users):
    """An analyst's client: unsuppressed data, as the pre-issue-5 tests expect."""
    return sign_in(app.test_client(), users["ana"])


@pytest.fixture
def viewer_client(app, users):
    return sign_in(app.test_client(), users["vic"])


@pytest.fixture
def admin_client(app, users):
    return sign_in(app.test_client(), users["root"])


@pytest.fixture
def anon_client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def public_app(gridtown_app_config, users):
    from web import create_app
    return create_app(gridtown_app_config.with_overrides(public_mode=True),
                      test_config={"TESTING": True, "WARM_UP": False})


@pytest.fixture
def public_client(public_app):
    return public_app.test_client()


@pytest.fixture
def config(gridtown_app_config):
    return gridtown_app_config
