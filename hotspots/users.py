"""Users, roles, password hashing, login throttling and the web secret key.

Where users live: a separate SQLite file, ``users.db``, in the instance folder (mode 0600), not tables of
the incident store. The incident store can be deleted and rebuilt by re-ingesting; the accounts must
survive that, and the web process opens the incident store read-only while it must write logins.

Roles are ordered ``viewer < analyst < admin``; each includes the rights of the ones before it:

* ``viewer``: aggregated layers only, small numbers suppressed (what public mode gives anonymous visitors);
* ``analyst``: also incident points, unsuppressed data, uploads and overlays;
* ``admin``: also user management.

Passwords are hashed with Argon2id (argon2-cffi ``PasswordHasher``); hashes are upgraded on the next
successful sign-in when the parameters change. Authenticating an unknown user verifies against a dummy
hash so the time taken does not reveal which usernames exist. ``LoginThrottle`` counts failures per
username + client address (and per address) in the same database, so a restart does not reset it.

Sessions live here too (table ``sessions``), not only in the signed cookie: the cookie carries a random
session id (``secrets.token_urlsafe(32)``), the table its SHA-256 with the username and expiry. Every
request looks the id up (one primary-key lookup joined to ``users``), so signing out, a password or
role change and removing a user end sessions at once, in every process, and a copied cookie is worth
nothing afterwards; a restart keeps valid sessions valid. Only hashes are stored, so a copy of
``users.db`` does not let anyone sign in.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import sqlite3
import stat
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .config import Config
from .store import transaction
from .errors import ConfigError, HotspotsError

logger = logging.getLogger(__name__)

ROLES = ("viewer", "analyst", "admin")
ROLE_RANK = {r: i for i, r in enumerate(ROLES)}

#: What each role may do (cumulative). The web layer checks permissions, not role names.
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"view_aggregates"}),
    "analyst": frozenset({"view_aggregates", "view_incidents", "view_unsuppressed", "upload", "overlays",
                          "download_unsuppressed"}),
    "admin": frozenset({"view_aggregates", "view_incidents", "view_unsuppressed", "upload", "overlays",
                        "download_unsuppressed", "manage_users"}),
}

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # hashing megabytes of "password" is a denial of service, not security
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
SECRET_KEY_ENV = "HOTSPOTS_SECRET_KEY"
MIN_SECRET_KEY_LENGTH = 32

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
    password_hash TEXT NOT NULL,
    auth_stamp TEXT NOT NULL,      -- changes with the password or role (kept for existing users.db files)
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_login_at TEXT
);
CREATE TABLE IF NOT EXISTS login_failures (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    ip TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_login_failures_user_ip ON login_failures(username, ip, at);
CREATE INDEX IF NOT EXISTS ix_login_failures_ip ON login_failures(ip, at);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,      -- SHA-256 (hex) of the session id the cookie carries; never the id itself
    username TEXT NOT NULL,
    created REAL NOT NULL,         -- Unix times
    last_seen REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_sessions_username ON sessions(username);
"""

#: ``last_seen`` is written at most this often per session (a write per request would serialise reads)
SESSION_TOUCH_SECONDS = 60.0


class UserError(HotspotsError):
    """A user cannot be added, changed or found (bad name, role or password; unknown user)."""


class LoginThrottled(HotspotsError):
    """Too many failed sign-ins for this username and address: wait ``retry_after`` seconds."""

    status = 429

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"too many failed sign-in attempts; try again in {self.retry_after} s")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class User:
    username: str
    role: str
    created_at: str = ""
    updated_at: str = ""
    last_login_at: str | None = None
    auth_stamp: str = ""

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())

    def has_role(self, role: str) -> bool:
        """At least ``role`` (admin has analyst rights, analyst has viewer rights)."""
        return ROLE_RANK.get(self.role, -1) >= ROLE_RANK[check_role(role)]

    @property
    def is_analyst(self) -> bool:
        return self.has_role("analyst")

    @property
    def is_admin(self) -> bool:
        return self.has_role("admin")


#: Anonymous visitor in public mode.
PUBLIC_VIEWER = User("(public)", "viewer")


def check_role(role: str) -> str:
    if role not in ROLE_RANK:
        raise UserError(f"unknown role {role!r} (use one of: {', '.join(ROLES)})", column="role")
    return role


def normalise_username(username: str) -> str:
    name = (username or "").strip().lower()
    if not USERNAME_RE.match(name):
        raise UserError("username must be 1-64 characters: letters, digits, '.', '_', '@' or '-', starting "
                        "with a letter or digit", column="username")
    return name


def check_password(password: str) -> str:
    """The password policy: at least 10 characters (any characters, spaces allowed), at most 1024."""
    if not isinstance(password, str):
        raise UserError("password must be text", column="password")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password is too short: it needs at least {MIN_PASSWORD_LENGTH} characters "
                        f"(got {len(password)})", column="password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"password is too long (at most {MAX_PASSWORD_LENGTH} characters)", column="password")
    if not password.strip():
        raise UserError("password must not be only spaces", column="password")
    return password


def _create_private_file(path: Path) -> None:
    """Create ``path`` with mode 0600 if it does not exist (the umask cannot widen it)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
    except FileExistsError:
        pass


class UserStore:
    """Accounts and sessions in ``users.db``. Each call opens and closes its own connection, except the
    per-request session lookup, which reuses one per thread (safe across threads and processes: WAL and
    a busy timeout)."""

    def __init__(self, db_path: Path | str, hasher: PasswordHasher | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.db_path = Path(db_path)
        self.hasher = hasher or PasswordHasher()
        self.clock = clock
        self._dummy_hash: str | None = None
        self._initialised = False
        self._local = threading.local()

    @classmethod
    def from_config(cls, config: Config, hasher: PasswordHasher | None = None) -> "UserStore":
        return cls(config.instance_dir / "users.db", hasher)

    # -- connection -----------------------------------------------------------------------------
    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        if not self._initialised:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            _create_private_file(self.db_path)
        con = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA busy_timeout = 30000")
            if not self._initialised:
                con.execute("PRAGMA journal_mode = WAL")
                con.executescript(SCHEMA)
                self._initialised = True
            yield con
        finally:
            con.close()

    def _reader(self) -> sqlite3.Connection:
        """This thread's long-lived connection for the per-request session lookup: opening one costs
        about five times the lookup itself (measured 160 µs against 35 µs). Autocommit, so it holds no
        read lock between requests and sees every other process's writes."""
        con = getattr(self._local, "con", None)
        if con is None:
            with self.connect():  # creates the file and schema on first use
                pass
            con = self._local.con = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            con.execute("PRAGMA busy_timeout = 30000")
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as con, transaction(con):
            yield con

    # -- hashing --------------------------------------------------------------------------------
    def _hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(24))
        return self._dummy_hash

    # -- management -----------------------------------------------------------------------------
    def add_user(self, username: str, password: str, role: str = "viewer") -> User:
        name = normalise_username(username)
        check_role(role)
        check_password(password)
        digest = self._hash(password)
        now = _now()
        with self._tx() as con:
            if con.execute("SELECT 1 FROM users WHERE username = ?", (name,)).fetchone():
                raise UserError(f"user {name!r} already exists (use `hotspots users passwd {name}` to change "
                                "the password)", column="username")
            con.execute("INSERT INTO users (username, role, password_hash, auth_stamp, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (name, role, digest, secrets.token_hex(16), now, now))
        logger.info("added user %s (%s)", name, role)
        return self.get_user(name)  # type: ignore[return-value]

    def remove_user(self, username: str) -> int:
        """Remove the account and end its sessions (in one transaction); the number of sessions ended."""
        name = normalise_username(username)
        with self._tx() as con:
            cur = con.execute("DELETE FROM users WHERE username = ?", (name,))
            if cur.rowcount == 0:
                raise UserError(f"no user {name!r}", column="username")
            ended = self._end_sessions(con, name)
        logger.info("removed user %s (%d sessions ended)", name, ended)
        return ended

    def set_password(self, username: str, password: str) -> int:
        """Set a new password and end every session of the user; the number of sessions ended."""
        name = normalise_username(username)
        check_password(password)
        digest = self._hash(password)
        return self._update_and_end_sessions(name, "password_hash", digest)

    def set_role(self, username: str, role: str) -> int:
        """Change the role and end every session of the user (they sign in again with the new rights)."""
        name = normalise_username(username)
        check_role(role)
        return self._update_and_end_sessions(name, "role", role)

    def _update_and_end_sessions(self, name: str, column: str, value: str) -> int:
        assert column in ("password_hash", "role")
        with self._tx() as con:
            cur = con.execute(f"UPDATE users SET {column} = ?, auth_stamp = ?, updated_at = ? WHERE username = ?",
                              (value, secrets.token_hex(16), _now(), name))
            if cur.rowcount == 0:
                raise UserError(f"no user {name!r}", column="username")
            ended = self._end_sessions(con, name)
        logger.info("changed %s of %s (%d sessions ended)", column.split("_")[0], name, ended)
        return ended

    def list_users(self) -> list[User]:
        with self.connect() as con:
            rows = con.execute("SELECT username, role, created_at, updated_at, last_login_at, auth_stamp "
                               "FROM users ORDER BY username").fetchall()
        return [User(*r) for r in rows]

    def get_user(self, username: str) -> User | None:
        try:
            name = normalise_username(username)
        except UserError:
            return None
        with self.connect() as con:
            r = con.execute("SELECT username, role, created_at, updated_at, last_login_at, auth_stamp "
                            "FROM users WHERE username = ?", (name,)).fetchone()
        return User(*r) if r else None

    # -- sessions -------------------------------------------------------------------------------
    @staticmethod
    def _session_hash(session_id: str) -> str:
        return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()

    def create_session(self, username: str, lifetime: float) -> str:
        """A new session for ``username`` lasting ``lifetime`` seconds: returns the id for the cookie
        (only its hash is stored). Expired sessions are purged here."""
        name = normalise_username(username)
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        with self._tx() as con:
            if not con.execute("SELECT 1 FROM users WHERE username = ?", (name,)).fetchone():
                raise UserError(f"no user {name!r}", column="username")
            con.execute("INSERT INTO sessions (id_hash, username, created, last_seen, expires) VALUES (?, ?, ?, ?, ?)",
                        (self._session_hash(session_id), name, now, now, now + lifetime))
            con.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
        return session_id

    def session_user(self, session_id: str | None) -> User | None:
        """The user of a live session, or None (unknown, ended or expired id, or the account is gone).
        One indexed lookup; ``last_seen`` is refreshed at most every ``SESSION_TOUCH_SECONDS``."""
        if not isinstance(session_id, str) or not 20 <= len(session_id) <= 100:
            return None
        now = self.clock()
        digest = self._session_hash(session_id)
        con = self._reader()
        r = con.execute("SELECT u.username, u.role, u.created_at, u.updated_at, u.last_login_at, u.auth_stamp, "
                        "s.last_seen FROM sessions s JOIN users u ON u.username = s.username "
                        "WHERE s.id_hash = ? AND s.expires > ?", (digest, now)).fetchone()
        if r is None:
            return None
        if now - r[6] >= SESSION_TOUCH_SECONDS:
            con.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (now, digest))
        return User(*r[:6])

    def end_session(self, session_id: str | None) -> bool:
        """End one session (sign-out); whether it existed."""
        if not isinstance(session_id, str):
            return False
        with self._tx() as con:
            return con.execute("DELETE FROM sessions WHERE id_hash = ?", (self._session_hash(session_id),)).rowcount > 0

    def end_sessions(self, username: str) -> int:
        """End every session of ``username`` ("sign out everywhere"); how many there were."""
        name = normalise_username(username)
        with self._tx() as con:
            return self._end_sessions(con, name)

    @staticmethod
    def _end_sessions(con: sqlite3.Connection, name: str) -> int:
        return con.execute("DELETE FROM sessions WHERE username = ?", (name,)).rowcount

    def session_counts(self) -> dict[str, int]:
        """Live sessions per username (for the admin page)."""
        with self.connect() as con:
            return dict(con.execute("SELECT username, COUNT(*) FROM sessions WHERE expires > ? GROUP BY username",
                                    (self.clock(),)).fetchall())

    # -- authentication -------------------------------------------------------------------------
    def authenticate(self, username: str, password: str) -> User | None:
        """The user, or None for a wrong name or password. Takes the same time either way: an unknown
        (or malformed) username is verified against a dummy hash."""
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
            self._verify(self._dummy(), "x" * MIN_PASSWORD_LENGTH)
            return None
        try:
            name = normalise_username(username)
        except UserError:
            name = None
        row = None
        if name is not None:
            with self.connect() as con:
                row = con.execute("SELECT password_hash FROM users WHERE username = ?", (name,)).fetchone()
        if row is None:
            self._verify(self._dummy(), password)
            return None
        stored = row[0]
        if not self._verify(stored, password):
            return None
        with self._tx() as con:
            if self.hasher.check_needs_rehash(stored):
                con.execute("UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?",
                            (self._hash(password), name, stored))
            con.execute("UPDATE users SET last_login_at = ? WHERE username = ?", (_now(), name))
        return self.get_user(name)

    def login(self, username: str, password: str, ip: str, throttle: "LoginThrottle | None" = None) -> User | None:
        """Sign-in as the web form needs it: refuse (LoginThrottled, HTTP 429) while throttled; otherwise
        authenticate, record a failure or clear the failures, and return the user or None."""
        throttle = throttle or LoginThrottle(self)
        throttle.acquire(username, ip)  # counted as a failure until the password proves right
        user = self.authenticate(username, password)
        if user is not None:
            throttle.record_success(username, ip)
        return user


class LoginThrottle:
    """After ``max_failures`` failed sign-ins for one username from one address within ``window``
    seconds, refuse that pair for ``lockout`` seconds from the last failure; after ``max_ip_failures``
    from one address (any usernames), refuse the address likewise. Stored in ``users.db``."""

    def __init__(self, store: UserStore, max_failures: int = 5, window: float = 900.0, lockout: float = 900.0,
                 max_ip_failures: int = 50, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.max_ip_failures = max_ip_failures
        self.clock = clock

    @staticmethod
    def _key(username: str) -> str:
        return (username or "").strip().lower()[:128]

    def retry_after(self, username: str, ip: str) -> float:
        """Seconds until this username + address may try again (0: now)."""
        with self.store.connect() as con:
            return self._retry_after(con, username, ip, self.clock())

    def _retry_after(self, con: sqlite3.Connection, username: str, ip: str, now: float) -> float:
        since = now - self.window - self.lockout
        pair = [r[0] for r in con.execute(
            "SELECT at FROM login_failures WHERE username = ? AND ip = ? AND at > ? ORDER BY at",
            (self._key(username), ip, since))]
        by_ip = [r[0] for r in con.execute(
            "SELECT at FROM login_failures WHERE ip = ? AND at > ? ORDER BY at", (ip, since))]
        return max(self._wait(pair, self.max_failures, now), self._wait(by_ip, self.max_ip_failures, now))

    def acquire(self, username: str, ip: str) -> None:
        """Check and count one sign-in attempt in one write transaction, before its password is checked.

        Why: checking first and counting after the (slow) password check let 40 concurrent guesses all
        pass a limit of 5. ``BEGIN IMMEDIATE`` makes concurrent attempts (threads or processes) queue
        here, so each sees the ones before it; the attempt stays counted as a failure unless
        ``record_success`` clears it. Raises ``LoginThrottled`` (and counts nothing) while locked."""
        now = self.clock()
        with self.store._tx() as con:
            wait = self._retry_after(con, username, ip, now)
            if wait > 0:
                raise LoginThrottled(wait)
            self._insert_failure(con, username, ip, now)

    def _wait(self, times: list[float], limit: int, now: float) -> float:
        """Locked until ``lockout`` after the last of any ``limit`` failures that fell within ``window``."""
        wait = 0.0
        for i in range(limit - 1, len(times)):
            if times[i] - times[i - limit + 1] <= self.window:
                wait = max(wait, times[i] + self.lockout - now)
        return max(wait, 0.0)

    def allowed(self, username: str, ip: str) -> bool:
        return self.retry_after(username, ip) <= 0

    def record_failure(self, username: str, ip: str) -> None:
        with self.store._tx() as con:
            self._insert_failure(con, username, ip, self.clock())

    def _insert_failure(self, con: sqlite3.Connection, username: str, ip: str, now: float) -> None:
        con.execute("INSERT INTO login_failures (username, ip, at) VALUES (?, ?, ?)",
                    (self._key(username), ip, now))
        con.execute("DELETE FROM login_failures WHERE at < ?", (now - 2 * (self.window + self.lockout),))

    def record_success(self, username: str, ip: str) -> None:
        with self.store._tx() as con:
            con.execute("DELETE FROM login_failures WHERE username = ? AND ip = ?", (self._key(username), ip))


# ---------------------------------------------------------------------------------- module helpers
def user_store(config: Config, hasher: PasswordHasher | None = None) -> UserStore:
    return UserStore.from_config(config, hasher)


def add_user(config: Config, username: str, password: str, role: str = "viewer") -> User:
    return user_store(config).add_user(username, password, role)


def remove_user(config: Config, username: str) -> int:
    return user_store(config).remove_user(username)


def set_password(config: Config, username: str, password: str) -> int:
    return user_store(config).set_password(username, password)


def list_users(config: Config) -> list[User]:
    return user_store(config).list_users()


def authenticate(config: Config, username: str, password: str) -> User | None:
    return user_store(config).authenticate(username, password)


def secret_key(config: Config, env: dict[str, str] | None = None) -> str:
    """The Flask secret key: ``HOTSPOTS_SECRET_KEY`` from the environment, else ``instance_dir/secret_key``,
    generated (64 hex characters, mode 0600) on first run. The instance folder is git-ignored."""
    env = os.environ if env is None else env
    value = env.get(SECRET_KEY_ENV)
    if value:
        if len(value) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(f"{SECRET_KEY_ENV} is too short: use at least {MIN_SECRET_KEY_LENGTH} random "
                              "characters (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
        return value
    path = config.instance_dir / "secret_key"
    config.instance_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic, and fails if another process won the race
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning("%s was readable by others (mode %o); setting it to 0600", path, mode)
        os.chmod(path, 0o600)
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(f"secret key file is too short (at least {MIN_SECRET_KEY_LENGTH} characters); delete it "
                          "to generate a new one", path=path)
    return key
