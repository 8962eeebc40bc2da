"""The ``hotspots`` command: one click group, each subcommand a thin shell over one engine call.

Errors from the engine (``HotspotsError``) print as one ``path:row: column: reason`` line on stderr and
exit with status 1; usage errors exit 2 (click's convention).
"""
from __future__ import annotations

import logging
import sys

import click

from ..config import Config, load_config
from ..errors import HotspotsError


class HotspotsGroup(click.Group):
    """Turns engine errors into one clear line and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HotspotsError as exc:
            click.echo(f"error: {exc.message}", err=True)
            ctx.exit(1)


@click.group(cls=HotspotsGroup)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="HOTSPOTS_CONFIG",
              help="Configuration TOML (default config/hotspots.toml).")
@click.option("-v", "--verbose", is_flag=True, help="Log analysis choices at INFO.")
@click.version_option(package_name="hotspots")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Find where serious violence concentrates: ingest, geocode, count, analyse and map incidents."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


def get_config(ctx: click.Context) -> Config:
    """The config for this invocation (loaded once, lazily, so `--help` never needs a valid file)."""
    root = ctx.find_root()
    root.ensure_object(dict)
    if "config" not in root.obj:
        root.obj["config"] = load_config(root.obj.get("config_path"))
    return root.obj["config"]


def _register() -> None:
    # Each module adds its commands to ``cli``; imported here so the group is complete.
    import importlib
    for name in ("data", "ingest", "counts", "analyse", "serve", "overlay", "users", "deploy", "emerging", "trend", "report",
                 "kde", "init", "hours", "source", "compare"):
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name != f"{__name__}.{name}":
                raise


_register()


def main() -> None:
    cli(obj={}, prog_name="hotspots")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
