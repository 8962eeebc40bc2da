"""`hotspots users add|remove|passwd|list`: accounts for the web app (stored in instance/users.db)."""
from __future__ import annotations

import sys

import click

from ..users import ROLES, UserError, user_store
from . import cli, get_config


def _read_password(password_stdin: bool, prompt: str = "Password") -> str:
    if password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UserError("no password on standard input", column="password")
        return line[:-1] if line.endswith("\n") else line
    return click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@cli.group()
def users() -> None:
    """Manage web accounts: viewer (aggregated maps, small numbers suppressed), analyst (also incident
    points, unsuppressed data, uploads, overlays), admin (also users)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="viewer, analyst or admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.pass_context
def users_add(ctx: click.Context, name: str, role: str, password_stdin: bool) -> None:
    """Add user NAME with a password (prompted twice unless --password-stdin; at least 10 characters)."""
    store = user_store(get_config(ctx))
    password = _read_password(password_stdin)
    user = store.add_user(name, password, role)
    click.echo(f"Added {user.username} ({user.role}).")


@users.command("remove")
@click.argument("name")
@click.pass_context
def users_remove(ctx: click.Context, name: str) -> None:
    """Remove user NAME (their sessions end at once, in every server process)."""
    store = user_store(get_config(ctx))
    ended = store.remove_user(name)
    click.echo(f"Removed {name.strip().lower()} ({_sessions(ended)} signed out).")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.pass_context
def users_passwd(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set a new password for NAME (their existing sessions end at once)."""
    store = user_store(get_config(ctx))
    if store.get_user(name) is None:
        raise UserError(f"no user {name.strip().lower()!r}", column="username")
    ended = store.set_password(name, _read_password(password_stdin, "New password"))
    click.echo(f"Password changed for {name.strip().lower()} ({_sessions(ended)} signed out).")


def _sessions(n: int) -> str:
    return f"{n} session{'' if n == 1 else 's'}"


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """List users with their role, creation and last sign-in times."""
    rows = user_store(get_config(ctx)).list_users()
    if not rows:
        click.echo("No users yet: add one with `hotspots users add NAME --role admin`.")
        return
    width = max(len(u.username) for u in rows)
    click.echo(f"{'username':<{width}}  {'role':<8}  {'created':<25}  last sign-in")
    for u in rows:
        click.echo(f"{u.username:<{width}}  {u.role:<8}  {u.created_at:<25}  {u.last_login_at or '-'}")
