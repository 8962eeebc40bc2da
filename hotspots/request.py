"""What a layer is asked for: one typed, validated value (``LayerRequest``) and who asks (``Audience``).

Why one parser: the web's query string, the CLI's options and the tests all become the same frozen
``LayerRequest`` here, once; every later step (counts → analysis → publish → render) reads its fields and
never re-validates them. Expensive parameters are taken from finite menus (weights, permutations, alpha),
so that any request can be served from the cache and one client cannot make the server compute an
unbounded number of distinct analyses (issue 14); the CLI may pass ``free=True`` for arbitrary values.
"""
from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Mapping, Sequence

from .categories import normalise_category
from .errors import HotspotsError, NotFoundError

#: map geographies offered to users (the engine knows more).
GEOGRAPHIES = ("lsoa", "ward")
VARIABLES = {"count": "count", "rate": "rate per 1,000 residents", "eb_rate": "EB-smoothed rate per 1,000"}
SIGNIFICANCE = {"raw": "no correction", "fdr": "False Discovery Rate (Benjamini-Hochberg)",
                "bonferroni": "Bonferroni"}
#: the finite menus of expensive parameters (web requests; the CLI is free)
WEIGHTS_MENU = ("queen", "rook", "knn:3", "knn:5", "knn:8", "knn:12", "distance:250", "distance:500",
                "distance:750", "distance:1000", "distance:1500", "distance:2000")
PERMUTATIONS_MENU = (99, 999, 9999)
ALPHA_MENU = (0.1, 0.05, 0.01, 0.001)
CLASS_SCHEMES = ("quantiles", "fisherjenks", "equalinterval", "naturalbreaks")
K_RANGE = (3, 7)
#: time layers: steps of the space-time cube (month or coarser, for every audience) and time neighbours
STEPS = ("month", "quarter", "year")
TIME_NEIGHBOURS_MENU = (1, 2, 3)
#: grids and kernel density (hotspots.kinds_grid): the geography name, its layers, and the web's menus
GRID = "grid"
GRID_LAYERS = ("grid_count", "grid_gistar", "kde", "grid_emerging")
GRID_EQUIVALENT = {"count": "grid_count", "gistar": "grid_gistar", "emerging": "grid_emerging"}
GRID_CELL_MENU = (100, 250, 500, 1000)
GRID_SHAPES = ("square", "hex")
BANDWIDTH_MENU = (100, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000)
KDE_KERNELS = ("quartic", "gaussian")
#: layers comparing two sources (hotspots.kinds_compare), which take ``versus``
COMPARISON_LAYERS = ("comparison", "comparison_lisa")
#: months before this are refused (police.uk street-level data starts in 2010; extracts go back further)
FIRST_MONTH = "2001-01"
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class Audience(enum.Enum):
    """Who a layer is for. Viewers (and public visitors) get layers computed from the protected table;
    analysts get exact figures."""

    VIEWER = "viewer"
    ANALYST = "analyst"


def last_allowed_month(today: date | None = None) -> str:
    """The current month plus one (a store may hold this month's first records)."""
    today = today or date.today()
    y, m = today.year, today.month + 1
    if m == 13:
        y, m = y + 1, 1
    return f"{y:04d}-{m:02d}"


def check_month(value: str | None, name: str) -> str | None:
    """``None`` for blank; else a YYYY-MM month within FIRST_MONTH .. current month + 1."""
    if value is None or value == "":
        return None
    value = str(value).strip()
    if not MONTH.match(value):
        raise HotspotsError(f"{name} must be a month written YYYY-MM, got {value[:20]!r}", column=name)
    last = last_allowed_month()
    if not FIRST_MONTH <= value <= last:
        raise HotspotsError(f"{name} must be between {FIRST_MONTH} and {last}, got {value}", column=name)
    return value


def check_period(month_from: str | None, month_to: str | None,
                 names: tuple[str, str] = ("from", "to")) -> tuple[str | None, str | None]:
    month_from, month_to = check_month(month_from, names[0]), check_month(month_to, names[1])
    if month_from and month_to and month_from > month_to:
        raise HotspotsError(f"'{names[0]}' ({month_from}) is after '{names[1]}' ({month_to})", column=names[0])
    return month_from, month_to


def shift_month(month: str, delta: int) -> str:
    y, m = int(month[:4]), int(month[5:7])
    idx = y * 12 + (m - 1) + delta
    return f"{idx // 12:04d}-{idx % 12 + 1:02d}"


def months_between(a: str, b: str) -> int:
    """Number of months from ``a`` to ``b`` inclusive."""
    return (int(b[:4]) * 12 + int(b[5:7])) - (int(a[:4]) * 12 + int(a[5:7])) + 1


def month_range(a: str, b: str) -> list[str]:
    return [shift_month(a, i) for i in range(months_between(a, b))]


@dataclass(frozen=True)
class Catalog:
    """What the store and bundle offer, which the parser checks names against (computed by the pipeline,
    so parsing itself never touches the store)."""

    layers: tuple[str, ...]
    categories: tuple[str, ...]
    months: tuple[str, ...]
    domains: tuple[str, ...] = ("imd",)
    #: layer name -> "crime" | "deprivation" | "boundary" | "overlay"
    groups: Mapping[str, str] | None = None
    #: layers only analysts may ask for: never named in an error message (a viewer's 404 reveals nothing)
    private: tuple[str, ...] = ()
    #: filterable names (declared extras and subcategory) -> (type, distinct values in the store)
    filters: Mapping[str, tuple[str, tuple[str, ...]]] | None = None

    def group(self, layer: str) -> str:
        return (self.groups or {}).get(layer, "crime")


@dataclass(frozen=True)
class LayerRequest:
    """A validated filter set. Hashable: with the audience and the data version it is the cache key."""

    layer: str = "gistar"
    geography: str = "lsoa"
    categories: tuple[str, ...] = ()
    month_from: str | None = None
    month_to: str | None = None
    variable: str = "count"
    weights: str = "queen"
    significance: str = "raw"
    alpha: float = 0.05
    classes: str = "quantiles"
    k: int = 5
    domain: str = "imd"
    compare_from: str | None = None
    compare_to: str | None = None
    permutations: int = 9999
    #: time layers (issue 10): the cube's time step and ArcGIS's "neighbourhood time step"
    step: str = "month"
    time_neighbours: int = 1
    #: the bivariate layer's second variable: a deprivation domain of the LSOA 2021 index ("imd") or a
    #: risk-factor overlay ("overlay-<id>")
    against: str = "imd"
    # -- grids and kernel density (hotspots.kinds_grid) --
    cell: float = 250.0
    shape: str = "square"
    bandwidth: float = 400.0
    kernel: str = "quartic"
    optimized: bool = False
    #: filters on an extract's declared extras and sub-category (issue 12): ((name, (value, ...)), ...), sorted
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: the comparison layers (hotspots.kinds_compare): the second source's categories (``categories`` is the
    #: first), e.g. ``src:hospital`` against police violent crime
    versus: tuple[str, ...] = ()

    def query(self, **changes: Any) -> dict[str, str]:
        """The URL query string that reproduces this request (shareable link)."""
        p = replace(self, **changes)
        q = {"layer": p.layer, "geography": p.geography, "category": ",".join(p.categories),
             "from": p.month_from or "", "to": p.month_to or "", "variable": p.variable, "weights": p.weights,
             "significance": p.significance, "alpha": f"{p.alpha:g}", "classes": p.classes, "k": str(p.k),
             "domain": p.domain, "compare_from": p.compare_from or "", "compare_to": p.compare_to or "",
             "permutations": str(p.permutations), "step": p.step, "time_neighbours": str(p.time_neighbours),
             "against": p.against if p.against != "imd" else "", "cell": f"{p.cell:g}", "shape": p.shape,
             "bandwidth": f"{p.bandwidth:g}", "kernel": p.kernel, "optimized": "1" if p.optimized else "",
             "where": ";".join(f"{n}={','.join(v)}" for n, v in p.where),
             "versus": ",".join(p.versus)}
        return {k: v for k, v in q.items() if v != ""}

    @property
    def period_text(self) -> str:
        return self.month_from if self.month_from == self.month_to else f"{self.month_from} to {self.month_to}"

    def baseline(self) -> tuple[str, str]:
        """The comparison period: as given, else the same number of months immediately before."""
        if self.compare_from and self.compare_to:
            return self.compare_from, self.compare_to
        if not (self.month_from and self.month_to):
            raise HotspotsError("a period comparison needs 'from' and 'to'", column="from")
        n = months_between(self.month_from, self.month_to)
        return shift_month(self.month_from, -n), shift_month(self.month_from, -1)


def _first(args: Mapping, name: str, default: str | None = None) -> str | None:
    v = args.get(name)
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return default
    return str(v).strip()


def _choice(args: Mapping, name: str, allowed: Sequence[str], default: str) -> str:
    v = _first(args, name, default)
    if v not in allowed:
        raise HotspotsError(f"{name} must be one of {', '.join(allowed)}, got {str(v)[:40]!r}", column=name)
    return v


def number(args: Mapping, name: str, default: float, lo: float, hi: float) -> float:
    v = _first(args, name)
    if v is None:
        return default
    try:
        x = float(v)
    except ValueError:
        raise HotspotsError(f"{name} must be a number, got {v[:20]!r}", column=name) from None
    if not math.isfinite(x) or not lo <= x <= hi:
        raise HotspotsError(f"{name} must be between {lo:g} and {hi:g}, got {v[:20]}", column=name)
    return x


def _menu_number(args: Mapping, name: str, default: float, menu: Sequence[float], free: bool,
                 lo: float, hi: float) -> float:
    x = number(args, name, default, lo, hi)
    if free or any(math.isclose(x, m, rel_tol=1e-9) for m in menu) or math.isclose(x, default):
        return x
    raise HotspotsError(f"{name} must be one of {', '.join(f'{m:g}' for m in menu)}, got {x:g}", column=name)


def _categories(args: Mapping) -> list[str]:
    if hasattr(args, "getlist"):
        raw = args.getlist("category")
    else:
        v = args.get("category")
        raw = [v] if isinstance(v, str) else list(v or [])
    out: list[str] = []
    for c in raw:
        out += [normalise_category(x) for x in str(c).split(",") if x.strip()]
    return out


def parse_request(args: Mapping, catalog: Catalog, *, layer: str | None = None, defaults: Mapping | None = None,
                  free: bool = False) -> LayerRequest:
    """Validate query arguments (a dict or werkzeug MultiDict) into a ``LayerRequest``.

    ``defaults`` holds the configuration's analysis defaults (weights, permutations, alpha). Raises
    HotspotsError (400) for malformed values and NotFoundError (404) for unknown names, each naming the
    parameter. With ``free=False`` (every web request) weights, permutations and alpha must come from
    the menus."""
    d = dict(defaults or {})
    layer = layer or _first(args, "layer", "gistar")
    if layer not in catalog.layers:
        listed = [n for n in catalog.layers if n not in catalog.private]
        raise NotFoundError(f"unknown layer {str(layer)[:40]!r} (have: {', '.join(listed)})", column="layer")
    geography = _first(args, "geography", "lsoa")
    if geography not in GEOGRAPHIES and geography != GRID:
        raise NotFoundError(f"unknown geography {geography[:40]!r} (use one of: {', '.join(GEOGRAPHIES)})",
                            column="geography")
    cats = _categories(args)
    unknown = [c for c in cats if c not in catalog.categories]
    if unknown:
        raise NotFoundError(f"unknown category {', '.join(u[:40] for u in unknown)} (known: "
                            f"{', '.join(catalog.categories) or 'none'})", column="category")
    if not cats and "violent-crime" in catalog.categories:
        cats = ["violent-crime"]
    month_from, month_to = check_period(_first(args, "from"), _first(args, "to"))
    months = catalog.months
    if month_to is None and months:
        month_to = max(months[-1], month_from or "")
    if month_from is None and months:
        month_from = min(months[0], month_to or months[0])
    check_period(month_from, month_to)
    variable = _choice(args, "variable", tuple(VARIABLES), "count")
    significance = _choice(args, "significance", tuple(SIGNIFICANCE), "raw")
    classes = _choice(args, "classes", CLASS_SCHEMES, "quantiles")
    alpha = _menu_number(args, "alpha", float(d.get("alpha", 0.05)), ALPHA_MENU, free, 1e-6, 0.5)
    k = int(number(args, "k", 5, *K_RANGE))
    perms = int(_menu_number(args, "permutations", float(d.get("permutations", 9999)), PERMUTATIONS_MENU, free,
                             0 if free else 99, 999_999 if free else 9999))
    weights = _weights(_first(args, "weights", d.get("weights", "queen")), free)
    domain = _first(args, "domain", "imd")
    if domain not in catalog.domains:  # a finite set, for every layer: nothing free reaches a file or a key
        raise NotFoundError(f"unknown domain {domain[:40]!r} (have: {', '.join(catalog.domains)})", column="domain")
    if catalog.group(layer) != "deprivation":
        domain = "imd"  # does not apply to this layer: neither cached apart nor echoed
    cf, ct = check_period(_first(args, "compare_from"), _first(args, "compare_to"),
                          ("compare_from", "compare_to"))
    if (cf is None) != (ct is None):
        raise HotspotsError("give both compare_from and compare_to, or neither", column="compare_from")
    # -- time layers (issue 10): the time step, and how many steps back a bin's neighbourhood reaches
    step = _choice(args, "step", STEPS, "month")
    time_neighbours = number(args, "time_neighbours", 1, 0 if free else TIME_NEIGHBOURS_MENU[0],
                              120 if free else TIME_NEIGHBOURS_MENU[-1])
    if time_neighbours != int(time_neighbours):
        raise HotspotsError(f"time_neighbours must be a whole number, got {time_neighbours:g}", column="time_neighbours")
    # -- the bivariate layer's second variable (finite: a known domain or a registered overlay) ----------
    against = _first(args, "against", "imd")
    overlays = tuple(x for x in catalog.layers if x.startswith("overlay-"))
    if against not in catalog.domains and against not in overlays:  # overlay names are not listed: analysts'
        raise NotFoundError(f"unknown 'against' {against[:40]!r} (have: {', '.join(catalog.domains)}, or an "
                            "overlay as overlay-<id>)", column="against")
    if layer != "bivariate":
        against = "imd"  # does not apply to this layer: neither cached apart nor echoed
    # -- grids and kernel density (hotspots.kinds_grid): cell, shape, bandwidth, kernel, optimized --------
    cell = _menu_number(args, "cell", 250.0, GRID_CELL_MENU, free, 0 if free else 100, 1e6 if free else 1000)
    shape = _choice(args, "shape", GRID_SHAPES, "square")
    bandwidth = _menu_number(args, "bandwidth", 400.0, BANDWIDTH_MENU, free, 0 if free else 100,
                             1e6 if free else 2000)
    for name, metres in (("cell", cell), ("bandwidth", bandwidth)):
        if not metres > 0:
            raise HotspotsError(f"{name} size must be a finite number of metres > 0, got {metres:g}", column=name)
    kernel = _choice(args, "kernel", KDE_KERNELS, "quartic")
    optimized = _choice(args, "optimized", ("0", "1", "false", "true"), "0") in ("1", "true")
    if geography == GRID and layer not in GRID_LAYERS and (catalog.group(layer) != "crime" or layer == "points"):
        geography = "lsoa"  # a layer without a geography (wards, deprivation, overlays, points): grid does not apply
    elif geography == GRID or layer in GRID_LAYERS:
        if geography == GRID and layer in GRID_EQUIVALENT:
            layer = GRID_EQUIVALENT[layer]
        if layer not in GRID_LAYERS:
            raise HotspotsError(f"geography=grid is offered by the layers {', '.join(GRID_LAYERS)}, not "
                                f"{layer[:40]!r}", column="geography")
        if layer not in catalog.layers:
            raise NotFoundError(f"unknown layer {layer!r}", column="layer")
        geography = GRID
        if _first(args, "weights") is None:  # a grid's default band: two cells (the 8 or 12 nearest cells)
            weights = _weights(f"distance:{2 * cell:g}", True)
        if _first(args, "significance") is None:  # many cells: FDR by default, as the issue asks
            significance = "fdr"
    # -- filters on extract extras and the sub-category (issue 12): where NAME=V1,V2[;NAME=V] (repeatable) --
    where = _where(args, catalog.filters or {}, free)
    # -- the comparison layers: the second source (a finite set: the catalogue's categories) --------------
    versus = tuple(sorted({normalise_category(x) for x in (_first(args, "versus") or "").split(",") if x.strip()}))
    unknown = [c for c in versus if c not in catalog.categories]
    if unknown:
        raise NotFoundError(f"unknown category in versus: {', '.join(u[:40] for u in unknown)} (known: "
                            f"{', '.join(catalog.categories) or 'none'})", column="versus")
    if layer in COMPARISON_LAYERS and not versus:  # the map's default: the first partner source
        sources = [c for c in catalog.categories if c.startswith("src:") and "/" not in c and c not in cats]
        if not sources:
            raise HotspotsError("a comparison needs a second source: versus=src:NAME (add one with `hotspots "
                                "source add`) or police categories", column="versus")
        versus = (sources[0],)
    if layer not in COMPARISON_LAYERS:
        versus = ()  # does not apply to this layer: neither cached apart nor echoed
    return LayerRequest(layer=layer, geography=geography, categories=tuple(sorted(set(cats))), month_from=month_from,
                        month_to=month_to, variable=variable, weights=weights, significance=significance,
                        alpha=alpha, classes=classes, k=k, domain=domain, compare_from=cf, compare_to=ct,
                        permutations=perms, step=step, time_neighbours=int(time_neighbours), against=against,
                        cell=cell, shape=shape, bandwidth=bandwidth, kernel=kernel, optimized=optimized,
                        where=where, versus=versus)


#: at most this many filter clauses and values per request (the menus are finite; this bounds a free CLI too)
MAX_WHERE_CLAUSES, MAX_WHERE_VALUES = 8, 64


def _where(args: Mapping, menu: Mapping[str, tuple[str, tuple[str, ...]]],
           free: bool) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``where`` items (``NAME=V1,V2``, several joined by ``;`` or repeated; a name repeated adds values, as
    the map form sends ``where=NAME=V1&where=NAME=V2``) checked against the filterable names; values of the
    name's type (``free``) or from the store's distinct values (every web request)."""
    from .filters import canonical
    if hasattr(args, "getlist"):
        raw = args.getlist("where")
    else:
        v = args.get("where")
        raw = [v] if isinstance(v, str) else list(v or [])
    clauses = [c.strip() for item in raw for c in str(item).split(";") if c.strip()]
    if len(clauses) > MAX_WHERE_CLAUSES:
        raise HotspotsError(f"where: at most {MAX_WHERE_CLAUSES} filters, got {len(clauses)}", column="where")
    out: dict[str, tuple[str, ...]] = {}
    for clause in clauses:
        name, eq, values = clause.partition("=")
        name = name.strip()
        if not eq or not name:
            raise HotspotsError(f"where must be NAME=VALUE[,VALUE...], got {clause[:40]!r}", column="where")
        if name not in menu:
            known = ", ".join(menu) or "none; declare typed extras in [extract.extras]"
            raise NotFoundError(f"where: unknown filter {name[:40]!r} (filterable: {known})", column="where")
        kind, allowed = menu[name]
        picked = [v.strip() for v in values.split(",") if v.strip()]
        if not picked or len(picked) > MAX_WHERE_VALUES:
            raise HotspotsError(f"where: {name} needs 1 to {MAX_WHERE_VALUES} values", column="where")
        canon = []
        for v in picked:
            c = canonical(kind, v)
            if c is None or (not free and c not in allowed):
                shown = ", ".join(allowed[:30]) + (", ..." if len(allowed) > 30 else "")
                raise HotspotsError(f"where: {v[:40]!r} is not a value of {name} ({kind}; values: {shown or 'none'})",
                                    column="where")
            canon.append(c)
        out[name] = tuple(sorted(set(canon) | set(out.get(name, ()))))
        if len(out[name]) > MAX_WHERE_VALUES:
            raise HotspotsError(f"where: {name} needs 1 to {MAX_WHERE_VALUES} values", column="where")
    return tuple(sorted(out.items()))


def _weights(value: str, free: bool) -> str:
    from .errors import AnalysisError
    from .weights import parse_spec
    try:
        spec = str(parse_spec(value))
    except AnalysisError as exc:
        raise HotspotsError(exc.reason, column="weights") from None
    if not free and spec not in WEIGHTS_MENU:
        raise HotspotsError(f"weights must be one of {', '.join(WEIGHTS_MENU)}, got {value[:40]!r}",
                            column="weights")
    return spec
