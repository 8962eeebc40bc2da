"""The ``--where NAME=V1,V2`` option shared by counts, analyse, emerging and trend (issue 12)."""
from __future__ import annotations

import click

WHERE_HELP = ("Keep incidents whose extract column NAME (declared in [extract.extras], or subcategory) has one of "
              "the values, e.g. --where victim_age_band=0-17,18-24 (repeatable; all must hold).")


def where_option(f):
    return click.option("--where", "where", multiple=True, metavar="NAME=V1,V2", help=WHERE_HELP)(f)
