"""The one engine call behind every layer: counts → analysis → publish, each step once, cached.

``build_layer(config, request, audience)`` returns a :class:`hotspots.publish.Published` layer that the
renderers of :mod:`hotspots.render` turn into the map's GeoJSON, a download, table rows or panel text. The
web and the CLI parse their input into a :class:`hotspots.request.LayerRequest` (``parse``), make this one
call, and respond. No step calls back into an earlier one.
"""
from __future__ import annotations

from typing import Mapping

from . import layers, render
from .aggregate import category_totals
from .cache import cached
from .config import Config
from .disclosure import effective_rule, suppress_value
from .publish import Published, publish
from .request import Audience, Catalog, LayerRequest, parse_request


def catalog(config: Config) -> Catalog:
    return layers.catalog(config)


def defaults(config: Config) -> dict:
    return {"weights": config.weights, "permutations": config.permutations, "alpha": config.alpha}


def parse(config: Config, args: Mapping, layer: str | None = None, *, free: bool = False) -> LayerRequest:
    """A request from query arguments or CLI options, checked against what the store and bundle offer."""
    return parse_request(args, catalog(config), layer=layer, defaults=defaults(config), free=free)


def build_layer(config: Config, req: LayerRequest, audience: Audience) -> Published:
    """The published layer for ``req`` and ``audience`` (cached per data version)."""
    kind = layers.get(config, req.layer)
    req = kind.normalise(req)
    return cached(config, ("layer", req, audience.value),
                  lambda: publish(config, kind, req, kind.build(config, req, audience), audience))


def analyse(config: Config, req: LayerRequest, audience: Audience, stats: tuple[str, ...] | None = None,
            seed: int | None = None):
    """Counts and the statistics table (Gi*, LISA, global Moran) for ``req``: the CLI's ``analyse --level``,
    through the layers' cached analysis step."""
    from .analysis import STATS
    return layers.counts(config, req, audience), layers.analysis(config, req, audience, tuple(stats or STATS), seed)


def keep_layer(config: Config, req: LayerRequest, audience: Audience, layer: Published) -> Published:
    """Cache a layer built elsewhere (the analysis process) under the key ``build_layer`` would use."""
    kind = layers.get(config, req.layer)
    return cached(config, ("layer", kind.normalise(req), audience.value), lambda: layer)


def is_cached(config: Config, req: LayerRequest, audience: Audience) -> bool:
    from .cache import peek
    kind = layers.get(config, req.layer)
    return peek(config, ("layer", kind.normalise(req), audience.value))


def panel(config: Config, req: LayerRequest, audience: Audience) -> dict:
    """The side panel of the Gi* layer for ``req``."""
    from dataclasses import replace
    gi = build_layer(config, replace(req, layer="gistar"), audience)
    # cached: the map asks for the panel with every view, and building it walks the layer's table
    return cached(config, ("panel", req, audience.value), lambda: render.panel(config, req, gi))


def comparison(config: Config, req: LayerRequest, audience: Audience) -> dict:
    from dataclasses import replace
    req = replace(req, layer="change")
    return render.comparison(req, build_layer(config, req, audience))


def categories(config: Config, audience: Audience) -> list[dict]:
    """Categories with totals as ``audience`` may see them (viewers: protected, small numbers labelled)."""
    def build() -> list[dict]:
        cats = category_totals(config, audience)
        if audience is Audience.VIEWER:
            rule = effective_rule(config)
            from .sources import rule_for  # a partner source's total under its own rule
            return [{**c, "count": suppress_value(c["count"], rule_for(config, [c["slug"]], rule))} for c in cats]
        return cats
    return cached(config, ("categories", audience.value), build)


def layer_catalogue(config: Config, audience: Audience) -> list[dict]:
    """Every layer an audience may ask for, with its title and kind, in layer-control order."""
    return cached(config, ("layer_catalogue", audience.value), lambda: _layer_catalogue(config, audience))


def _layer_catalogue(config: Config, audience: Audience) -> list[dict]:
    from . import overlays
    out = []
    for k in layers.kinds(config):
        if k.analyst_only and audience is Audience.VIEWER:
            continue
        entry = {"name": k.name, "title": k.title, "kind": k.group, "lazy": k.lazy}
        if k.group == "deprivation":
            d = next(x for x in overlays.deprivation_sets(config) if x["key"] == k.name)
            entry.update(geography=d["geography"], vintage=d["vintage"],
                         domains=[{"slug": x["slug"], "label": x["label"]}
                                  for x in overlays.deprivation_domains(config, k.name)])
        if k.group == "overlay":
            entry["geography"] = overlays.get_overlay(config, k.name[len("overlay-"):]).geography
        out.append(entry)
    return out


def prewarm(config: Config) -> None:
    """Compute the default view (Gi* for both audiences, wards, panel) so the first visitor does not wait."""
    req = parse(config, {})
    for audience in Audience:
        render.display_geojson(config, build_layer(config, req, audience))
        panel(config, req, audience)
    from dataclasses import replace
    render.display_geojson(config, build_layer(config, replace(req, layer="wards"), Audience.VIEWER))
    # the default grid's cells, display geometry and labels are kept on disk for every later process
    render.display_geojson(config, build_layer(config, parse(config, {"layer": "grid_count"}), Audience.VIEWER))


def series(config: Config, req: LayerRequest, code: str, audience: Audience) -> dict:
    """One area's counts per time step (viewers: protected cells under the small-number rule), its trend
    (Mann-Kendall, Sen's slope line) and, with enough steps, its Gi* class per step and emerging outcome.

    The emerging analysis is the layer's own (cached), so the chart and the map agree."""
    from .emerging import MIN_STEPS
    from .errors import HotspotsError, NotFoundError
    from .kinds_time import area_cube, emerging_result
    from .trend import MIN_MK_STEPS, mann_kendall, sens_slope
    areas = layers.counts(config, req, audience)
    match = areas.index[areas["code"] == code]
    if not len(match):
        raise NotFoundError(f"no {req.geography} area with code {str(code)[:20]!r}", column="code")
    row = areas.loc[match[0]]
    cube, steps = area_cube(config, req, audience, [code])
    y = cube[0].astype(float)
    out: dict = {"code": code, "name": row["name"], "ward_name": row.get("ward_name"), "geography": req.geography,
                 "step": req.step, "steps": steps, "parameters": req.query(layer="emerging"),
                 "computed_from": "protected table" if audience is Audience.VIEWER else "exact counts"}
    if audience is Audience.VIEWER:
        from .sources import rule_for  # a partner source's counts under its own rule
        rule = rule_for(config, req.categories, effective_rule(config))
        out["counts"] = [suppress_value(int(v), rule) for v in cube[0]]
        out["rule"] = rule.name
    else:
        out["counts"] = [int(v) for v in cube[0]]
    out["trend"] = None
    if len(steps) >= MIN_MK_STEPS:
        mk = mann_kendall(y, alpha=req.alpha)
        slope, intercept = sens_slope(y)
        out["trend"] = {"tau": float(mk.tau), "p": float(mk.p), "trend": int(mk.trend), "sens_slope": float(slope),
                        "intercept": float(intercept)}
    out["gi_bin"], out["category"], out["emerging_note"] = None, None, None
    if len(steps) < MIN_STEPS:
        out["emerging_note"] = (f"Gi* per {req.step} needs at least {MIN_STEPS} steps; this period has "
                                f"{len(steps)}")
    else:
        try:
            g, _, res = emerging_result(config, req, audience)
        except HotspotsError as exc:
            out["emerging_note"] = exc.reason
        else:
            i = list(g["code"]).index(code)
            out["gi_bin"] = [int(b) for b in res.gi_bin[i]]
            out["category"] = res.category[i]
    return out
