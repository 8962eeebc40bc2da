"""Users: roles, Argon2 hashing, constant-time unknown users, throttling, secret key."""
from __future__ import annotations

import hashlib
import os
import stat
import time
from contextlib import closing

import pytest
from argon2 import PasswordHasher

from hotspots.config import load_config
from hotspots.errors import ConfigError
from hotspots.users import (PERMISSIONS, PUBLIC_VIEWER, LoginThrottle, LoginThrottled, UserError, UserStore,
                            secret_key)

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PW = "correct horse battery"


@pytest.fixture
def store(tmp_path):
    return UserStore(tmp_path / "instance" / "users.db", FAST)


def test_add_authenticate_roles(store):
    u = store.add_user("Alice", PW, "analyst")
    assert u.username == "alice" and u.role == "analyst"
    assert store.authenticate("alice", PW).username == "alice"
    assert store.authenticate(" ALICE ", PW).role == "analyst"
    assert store.authenticate("alice", PW + "x") is None
    assert store.authenticate("bob", PW) is None
    assert store.authenticate("../../etc", PW) is None
    assert store.authenticate("alice", "x" * 5000) is None
    assert u.has_role("viewer") and u.has_role("analyst") and not u.has_role("admin")
    assert u.can("view_incidents") and u.can("upload") and not u.can("manage_users")
    assert not PUBLIC_VIEWER.can("view_incidents") and PUBLIC_VIEWER.can("view_aggregates")
    assert PERMISSIONS["viewer"] < PERMISSIONS["analyst"] < PERMISSIONS["admin"]


def test_password_stored_hashed_argon2id(store):
    store.add_user("alice", PW, "viewer")
    raw = store.db_path.read_bytes()
    assert PW.encode() not in raw
    import sqlite3
    h = sqlite3.connect(store.db_path).execute("SELECT password_hash FROM users").fetchone()[0]
    assert h.startswith("$argon2id$")


def test_file_is_private(store):
    store.add_user("alice", PW, "viewer")
    assert stat.S_IMODE(store.db_path.stat().st_mode) == 0o600


@pytest.mark.parametrize("pw, msg", [("short", "at least 10 characters"), (" " * 12, "only spaces"),
                                     ("x" * 2000, "too long")])
def test_password_policy(store, pw, msg):
    with pytest.raises(UserError, match=msg):
        store.add_user("alice", pw, "viewer")
    assert store.list_users() == []


def test_bad_names_roles_duplicates(store):
    with pytest.raises(UserError, match="unknown role"):
        store.add_user("alice", PW, "root")
    for bad in ("", "a b", "<script>", "x" * 65, "-dash"):
        with pytest.raises(UserError, match="username"):
            store.add_user(bad, PW, "viewer")
    store.add_user("alice", PW, "viewer")
    with pytest.raises(UserError, match="already exists"):
        store.add_user("ALICE", PW, "admin")


def test_remove_passwd_list_and_sessions(store):
    store.add_user("alice", PW, "admin")
    store.add_user("bob", PW, "viewer")
    assert [u.username for u in store.list_users()] == ["alice", "bob"]
    a1, a2 = store.create_session("alice", 3600), store.create_session("alice", 3600)
    b1 = store.create_session("bob", 3600)
    assert store.session_user(a1).username == "alice" and store.session_user(b1).username == "bob"
    assert store.session_counts() == {"alice": 2, "bob": 1}
    assert store.set_password("alice", "another long password") == 2
    assert store.authenticate("alice", PW) is None
    assert store.authenticate("alice", "another long password") is not None
    assert store.session_user(a1) is None and store.session_user(a2) is None  # old sessions are void
    assert store.session_user(b1) is not None  # other users keep theirs
    assert store.remove_user("bob") == 1
    assert store.session_user(b1) is None
    b2 = store.create_session("alice", 3600)
    assert store.set_role("alice", "viewer") == 1 and store.session_user(b2) is None
    with pytest.raises(UserError, match="no user"):
        store.remove_user("bob")
    with pytest.raises(UserError, match="no user"):
        store.set_password("bob", PW)
    assert [u.username for u in store.list_users()] == ["alice"]


def test_unknown_user_takes_as_long_as_wrong_password(tmp_path):
    s = UserStore(tmp_path / "users.db", PasswordHasher(time_cost=2, memory_cost=16384, parallelism=1))
    s.add_user("alice", PW, "viewer")
    s.authenticate("nobody", PW)  # warm the dummy hash

    def timed(name):
        t = time.perf_counter()
        for _ in range(5):
            s.authenticate(name, "wrong password!")
        return time.perf_counter() - t

    known, unknown = timed("alice"), timed("nobody")
    assert unknown > 0.5 * known and known > 0.5 * unknown


def test_rehash_on_login_when_parameters_change(tmp_path):
    path = tmp_path / "users.db"
    UserStore(path, FAST).add_user("alice", PW, "viewer")
    stronger = UserStore(path, PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    assert stronger.authenticate("alice", PW) is not None
    import sqlite3
    h = sqlite3.connect(path).execute("SELECT password_hash FROM users").fetchone()[0]
    assert "t=2" in h and "m=2048" in h


class Clock:
    def __init__(self):
        self.t = 1_000_000.0

    def __call__(self):
        return self.t


def test_throttle_per_user_and_ip_survives_restart(store):
    store.add_user("alice", PW, "viewer")
    clock = Clock()
    th = LoginThrottle(store, max_failures=3, window=60, lockout=120, clock=clock)
    for _ in range(3):
        assert store.login("alice", "wrong password", "10.0.0.1", th) is None
        clock.t += 1
    with pytest.raises(LoginThrottled) as exc:
        store.login("alice", PW, "10.0.0.1", th)  # even the right password is refused while locked
    assert exc.value.status == 429 and 100 <= exc.value.retry_after <= 120
    assert th.allowed("alice", "10.0.0.2")  # another address is not locked
    # A new throttle object over the same database (a restarted server) still refuses.
    th2 = LoginThrottle(UserStore(store.db_path, FAST), max_failures=3, window=60, lockout=120, clock=clock)
    assert not th2.allowed("alice", "10.0.0.1")
    clock.t += 121
    assert th2.allowed("alice", "10.0.0.1")
    assert store.login("alice", PW, "10.0.0.1", th2).username == "alice"
    # Success clears the failures.
    assert th2.retry_after("alice", "10.0.0.1") == 0


def test_throttle_window_and_ip_limit(store):
    clock = Clock()
    th = LoginThrottle(store, max_failures=3, window=60, lockout=60, max_ip_failures=5, clock=clock)
    for _ in range(2):
        th.record_failure("alice", "1.2.3.4")
    clock.t += 61  # outside the window: the two old failures do not combine with a new one
    th.record_failure("alice", "1.2.3.4")
    assert th.allowed("alice", "1.2.3.4")
    for name in ("u1", "u2", "u3", "u4", "u5"):
        th.record_failure(name, "5.6.7.8")
    assert not th.allowed("someone-else", "5.6.7.8")  # spraying usernames from one address


def test_secret_key_env_and_file(tmp_path, monkeypatch):
    cfg = load_config(env={"HOTSPOTS_INSTANCE_DIR": str(tmp_path / "inst")})
    assert secret_key(cfg, env={"HOTSPOTS_SECRET_KEY": "k" * 40}) == "k" * 40
    with pytest.raises(ConfigError, match="too short"):
        secret_key(cfg, env={"HOTSPOTS_SECRET_KEY": "short"})
    k1 = secret_key(cfg, env={})
    path = tmp_path / "inst" / "secret_key"
    assert len(k1) == 64 and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_key(cfg, env={}) == k1  # stable across restarts
    os.chmod(path, 0o644)
    assert secret_key(cfg, env={}) == k1 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list((tmp_path / "inst").glob(".secret_key.*"))


def test_default_secret_key_location_is_git_ignored():
    from hotspots.config import REPO_ROOT
    ignore = (REPO_ROOT / ".gitignore").read_text()
    assert "/instance/" in ignore


def test_throttle_is_atomic_under_concurrent_guesses(store):
    """40 guesses at once against a limit of 5: at most 5 passwords are checked (check-and-count is one
    step), the rest are refused with 429, and none is lost."""
    import threading
    store.add_user("alice", PW, "viewer")
    th = LoginThrottle(store, max_failures=5, window=900, lockout=900)
    start = threading.Barrier(40)
    results: list[str] = []
    lock = threading.Lock()

    def guess(k: int) -> None:
        start.wait()
        try:
            out = "checked" if store.login("alice", f"wrong password {k}", "10.1.1.1", th) is None else "in"
        except LoginThrottled:
            out = "throttled"
        with lock:
            results.append(out)

    threads = [threading.Thread(target=guess, args=(k,)) for k in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 40 and "in" not in results
    assert results.count("checked") == 5 and results.count("throttled") == 35


def test_sessions_stored_hashed_expire_and_end(tmp_path):
    import sqlite3
    clock = Clock()
    store = UserStore(tmp_path / "users.db", FAST, clock=clock)
    store.add_user("alice", PW, "analyst")
    sid = store.create_session("alice", 60)
    assert len(sid) >= 40 and store.session_user(sid).role == "analyst"
    with closing(sqlite3.connect(store.db_path)) as con:
        rows = con.execute("SELECT id_hash, username, created, last_seen, expires FROM sessions").fetchall()
    assert rows == [(hashlib.sha256(sid.encode()).hexdigest(), "alice", clock.t, clock.t, clock.t + 60)]
    stored = b"".join(f.read_bytes() for f in store.db_path.parent.glob("users.db*"))
    assert sid.encode() not in stored and hashlib.sha256(sid.encode()).hexdigest().encode() in stored
    clock.t += 61
    assert store.session_user(sid) is None  # expired
    other = store.create_session("alice", 60)  # purges the expired one
    assert store.session_counts() == {"alice": 1}
    # a restarted server (a new store object over the same file) sees the same sessions
    assert UserStore(store.db_path, FAST, clock=clock).session_user(other).username == "alice"
    assert store.end_session(other) and not store.end_session(other)
    assert store.session_user(other) is None
    for bad in (None, "", "x" * 500, sid[:-1], 42):
        assert store.session_user(bad) is None
    with pytest.raises(UserError, match="no user"):
        store.create_session("nobody", 60)


def test_session_last_seen_is_written_at_most_once_a_minute(tmp_path):
    import sqlite3
    clock = Clock()
    store = UserStore(tmp_path / "users.db", FAST, clock=clock)
    store.add_user("alice", PW, "viewer")
    sid = store.create_session("alice", 3600)
    start = clock.t
    clock.t += 30
    store.session_user(sid)

    def seen() -> float:
        with closing(sqlite3.connect(store.db_path)) as con:
            return con.execute("SELECT last_seen FROM sessions").fetchone()[0]
    assert seen() == start
    clock.t += 31
    store.session_user(sid)
    assert seen() == clock.t
