"""Filters on an extract's typed extra columns and on the sub-category (issue 12): ``--where NAME=V1,V2``.

Why here: a filter is parsed once into the request (``LayerRequest.where``: sorted names, each with its sorted
canonical values, so equal filters share the cache) and then turned into typed values for the store's one SQL
condition (:func:`hotspots.store.where_sql`). The names that can be filtered on are the extras declared in
``[extract.extras]`` (with their types) and ``subcategory``; viewers choose values from a finite menu, the
distinct values in the store (issue 14: bounded work per client).
"""
from __future__ import annotations

from typing import Any

from .config import Config

#: the built-in filter: the local offence an [extract.categories] mapping read
SUBCATEGORY = "subcategory"
#: a request's filter: ((name, (canonical value, ...)), ...), names and values sorted
Where = tuple[tuple[str, tuple[str, ...]], ...]
_TRUE, _FALSE = ("true", "t", "yes", "y", "1"), ("false", "f", "no", "n", "0")


def declared(config: Config) -> dict[str, str]:
    """Filterable names and their types: the declared extras, then ``subcategory`` (text)."""
    return {**config.extract.declared_extras, SUBCATEGORY: "text"}


def canonical(kind: str, value: Any) -> str | None:
    """The canonical text of ``value`` as ``kind`` (None when it is not of that type): what requests, cache
    keys and menus hold."""
    text = str(value).strip()
    if kind == "bool":
        low = text.casefold()
        return "true" if low in _TRUE else "false" if low in _FALSE else None
    if kind == "int":
        try:
            return str(int(text))
        except ValueError:
            return None
    if kind == "number":
        try:
            num = float(text)
        except ValueError:
            return None
        return repr(num) if num == num and abs(num) != float("inf") else None
    return text if text else None


def typed(kind: str, text: str) -> Any:
    """A canonical value as the JSON stores it (bool as 1/0, the way SQLite's json_extract returns it)."""
    if kind == "bool":
        return 1 if text == "true" else 0
    if kind == "int":
        return int(text)
    if kind == "number":
        return float(text)
    return text


def terms(config: Config, where: Where) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """The request's filter with typed values, for the store."""
    types = declared(config)
    return tuple((name, tuple(typed(types[name], v) for v in values)) for name, values in where)


def menu(config: Config) -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (type, distinct canonical values in the store) for every filterable name (cached per data
    version); names with no value stored have an empty menu."""
    from . import store
    from .cache import cached
    types = declared(config)

    def build() -> dict[str, tuple[str, tuple[str, ...]]]:
        raw = store.distinct_values(config.db_path, list(types), config.cache_dir)
        out = {}
        for name, kind in types.items():
            vals = {canonical(kind, "true" if v is True else "false" if v is False else v) for v in raw.get(name, [])}
            # a value holding the separators of ``where`` (``,`` ``;``) cannot be asked for: not offered
            out[name] = (kind, tuple(sorted(v for v in vals if v is not None and "," not in v and ";" not in v)))
        return out
    return cached(config, ("where-menu", tuple(types.items())), build)


#: most single-value combinations a viewer's filter may expand to (see ``atoms``)
MAX_ATOMS = 256


def atoms(where: Where) -> list[Where]:
    """The filter as its single-value parts: one value per name, every combination. An incident has one value
    per extra, so the parts are disjoint and the filter's cells are their sums. Viewers' filtered figures are
    summed from the parts' protected tables, so that ``{a, b}`` minus ``{b}`` is ``{a}``'s protected value
    again, not a new noisy estimate of it (different groupings cannot be averaged)."""
    from itertools import product

    from .errors import HotspotsError
    size = 1
    for _, values in where:
        size *= len(values)
    if size > MAX_ATOMS:
        raise HotspotsError(f"where: this filter combines {size:,} value combinations; at most {MAX_ATOMS} for a "
                            "protected map (choose fewer values)", column="where")
    names = [name for name, _ in where]
    return [tuple((n, (v,)) for n, v in zip(names, combo)) for combo in product(*[values for _, values in where])]


def compound(where: Where) -> bool:
    """True when some name of the filter has several values (a sum of single-value parts)."""
    return any(len(values) > 1 for _, values in where)


def describe(where: Where) -> str:
    """``victim age band 0-17 or 18-24; weapon flag true`` (titles and file metadata)."""
    return "; ".join(f"{name.replace('_', ' ')} {' or '.join(values)}" for name, values in where)


def key_text(where: Where) -> str:
    """One line naming the filter (the protected table's cell identity, file names)."""
    return ";".join(f"{name}={','.join(values)}" for name, values in where)


def parse(config: Config, items, free: bool = True) -> Where:
    """``--where`` options (or ``where`` arguments) checked as a request's are (the CLI: any value of the
    declared type)."""
    from .request import _where
    if not items:
        return ()  # no filter: nothing to check, and no store needed
    return _where({"where": list(items)}, menu(config), free)
