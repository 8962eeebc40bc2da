"""`hotspots users add|remove|passwd|list` through click, against a temporary instance folder."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from hotspots.cli import cli
from hotspots.users import UserStore

PW = "correct horse battery"


@pytest.fixture
def env(tmp_path):
    return {"HOTSPOTS_INSTANCE_DIR": str(tmp_path / "inst"), "HOTSPOTS_DATA_DIR": str(tmp_path / "data")}


def run(env, *args, input=None):
    return CliRunner().invoke(cli, list(args), env=env, input=input, obj={})


def test_add_list_passwd_remove(env, tmp_path):
    r = run(env, "users", "add", "Alice", "--role", "admin", "--password-stdin", input=PW + "\n")
    assert r.exit_code == 0, r.output
    assert "Added alice (admin)" in r.output
    r = run(env, "users", "add", "bob", "--role", "viewer", input=f"{PW}\n{PW}\n")  # prompt + confirmation
    assert r.exit_code == 0, r.output
    r = run(env, "users", "list")
    assert r.exit_code == 0 and "alice" in r.output and "bob" in r.output and "viewer" in r.output
    assert PW not in r.output
    store = UserStore(tmp_path / "inst" / "users.db")
    assert store.authenticate("bob", PW) is not None
    r = run(env, "users", "passwd", "bob", "--password-stdin", input="a brand new password\n")
    assert r.exit_code == 0, r.output
    assert store.authenticate("bob", "a brand new password") is not None
    r = run(env, "users", "remove", "bob")
    assert r.exit_code == 0 and store.get_user("bob") is None


def test_errors_exit_1(env):
    r = run(env, "users", "add", "carol", "--role", "analyst", "--password-stdin", input="short\n")
    assert r.exit_code == 1 and "at least 10 characters" in r.output
    r = run(env, "users", "remove", "nobody")
    assert r.exit_code == 1 and "no user" in r.output
    r = run(env, "users", "passwd", "nobody", "--password-stdin", input=PW + "\n")
    assert r.exit_code == 1 and "no user" in r.output
    run(env, "users", "add", "carol", "--role", "analyst", "--password-stdin", input=PW + "\n")
    r = run(env, "users", "add", "carol", "--role", "analyst", "--password-stdin", input=PW + "\n")
    assert r.exit_code == 1 and "already exists" in r.output
    r = run(env, "users", "add", "dave", "--role", "analyst", "--password-stdin", input="")
    assert r.exit_code == 1 and "no password" in r.output


def test_mismatched_confirmation_reprompts(env):
    r = run(env, "users", "add", "erin", "--role", "viewer",
            input=f"{PW}\nsomething else\n{PW}\n{PW}\n")
    assert r.exit_code == 0, r.output
    assert "do not match" in r.output.lower() or "match" in r.output.lower()


def test_usage_errors_exit_2(env):
    assert run(env, "users", "add", "frank", "--role", "root").exit_code == 2
    assert run(env, "users", "add", "frank").exit_code == 2  # --role is required
    assert run(env, "users", "remove").exit_code == 2


def test_empty_list(env):
    r = run(env, "users", "list")
    assert r.exit_code == 0 and "No users yet" in r.output
