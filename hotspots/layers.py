"""The layer kinds: what each map layer computes and which of its columns each audience may see.

Why a registry: a layer goes counts → analysis → publish → render, and only the first two steps differ
between kinds. Each kind here says how to compute its frame (``build``: counts from
:mod:`hotspots.aggregate`, statistics from :mod:`hotspots.analysis`) and lists, per audience, the columns
that may be published (``columns``: an allow-list; anything else a build adds is withheld by
:mod:`hotspots.publish`). A new kind (trend, emerging, grid, KDE) is one ``register`` call here; the CLI,
the API, downloads and the map pick it up from the registry.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable

import geopandas as gpd
import numpy as np
import pandas as pd

from . import filters, maps, overlays
from .aggregate import area_counts, level_role
from .bundle import BNG, load_boundary
from .cache import cached
from .categories import category_label
from .config import Config
from .errors import AnalysisError, HotspotsError, NotFoundError
from .filters import describe, key_text
from .request import SIGNIFICANCE, VARIABLES, Audience, Catalog, LayerRequest

GEOGRAPHY_LABELS = {"lsoa": "LSOA (2021)", "ward": "Ward"}
AREA_FIELDS = [["name", "Area"], ["code", "Code"], ["ward_name", "Ward"]]
IMD_FIELD = [["imd_decile", "IMD 2025 decile"]]
AREA_COLUMNS = ("code", "name", "ward_code", "ward_name", "imd_decile")
COUNT_COLUMNS = ("count", "population", "rate_per_1000", "eb_rate_per_1000")
#: analysis variable -> the column of the counts frame that holds it
VALUE_COLUMNS = {"count": "count", "rate": "rate_per_1000", "eb_rate": "eb_rate_per_1000"}


@dataclass
class Analysed:
    """The output of a kind's build (counts + analysis): every computed column, before publication."""

    name: str
    title: str
    frame: gpd.GeoDataFrame  # EPSG:27700, computed columns + class_label + fill
    legend: dict
    fields: list  # [column, label] for tooltips and tables
    metadata: dict
    role: str  # boundary role of the geometry
    filename: str
    summary: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LayerKind:
    """A map layer: how to build it and what each audience may see of it."""

    name: str
    title: str
    group: str  # crime | deprivation | boundary | overlay
    build: Callable[[Config, LayerRequest, Audience], Analysed]
    #: request fields the layer depends on (its cache key and its recorded parameters)
    uses: tuple[str, ...]
    #: audience -> the columns that may be published (an allow-list; geometry, class_label and fill always)
    columns: dict
    #: count columns that the small-number display rule applies to, for viewers
    counts: tuple[str, ...] = ()
    #: columns blanked on a row whose count the display rule suppresses (that count in another unit, or a
    #: statistic of it): the row keeps its class
    redact: tuple[str, ...] = ()
    #: a choropleth whose classes are redrawn from the published values of this column after the display rule
    #: (None: the analysis classes stay, as for Gi* and LISA, whose classes are computed on protected data)
    reclassify: str | None = None
    lazy: bool = True
    analyst_only: bool = False

    def normalise(self, req: LayerRequest) -> LayerRequest:
        """``req`` with every field the layer does not use reset, so unrelated changes share the cache."""
        base = LayerRequest(layer=self.name, categories=(), month_from=None, month_to=None)
        return replace(base, **{f: getattr(req, f) for f in self.uses})

    def allowed(self, audience: Audience) -> tuple[str, ...]:
        return tuple(self.columns.get(audience, self.columns.get(Audience.ANALYST, ())))


_KINDS: dict[str, LayerKind] = {}


def register(kind: LayerKind) -> LayerKind:
    _KINDS[kind.name] = kind
    return kind


def kinds(config: Config) -> list[LayerKind]:
    """Every kind available with this configuration, in layer-control order (crime, deprivation, wards,
    overlays). Cached per data version: every request looks its kind up, and the overlays come from a file."""
    def build() -> list[LayerKind]:
        out = [k for k in _KINDS.values() if k.group == "crime"]
        out += deprivation_kinds(config)
        out += [k for k in _KINDS.values() if k.group == "boundary"]
        out += overlay_kinds(config)
        return out
    return cached(config, ("kinds", tuple(_KINDS)), build)


def get(config: Config, name: str) -> LayerKind:
    for k in kinds(config):
        if k.name == name:
            return k
    raise NotFoundError(f"unknown layer {name!r}", column="layer")


def catalog(config: Config) -> Catalog:
    """Names the request parser accepts (cached per data version)."""
    def build() -> Catalog:
        from .aggregate import incident_columns
        from .errors import NotFoundError as _NoStore
        try:  # the months and categories the police incidents have (the default period: police data's)
            col = incident_columns(config)
            cats, months = tuple(col["categories"]), tuple(col["months"])  # each the sorted set of those present
        except _NoStore:
            cats, months = (), ()
        ks = kinds(config)
        doms: list[str] = ["imd"]
        for d in overlays.deprivation_sets(config):
            doms += [x["slug"] for x in overlays.deprivation_domains(config, d["key"]) if x["slug"] not in doms]
        try:
            where_menu = filters.menu(config)
        except _NoStore:
            where_menu = {}
        from .sources import catalog_categories  # partner sources: src:NAME and its categories
        return Catalog(layers=tuple(k.name for k in ks),
                       categories=tuple(dict.fromkeys((*cats, *catalog_categories(config)))), months=tuple(months),
                       domains=tuple(doms),
                       groups={k.name: k.group for k in ks},
                       private=tuple(k.name for k in ks if k.analyst_only), filters=where_menu)
    return cached(config, ("catalog",), build)


# -- helpers ---------------------------------------------------------------------------------------------

def filters_text(req: LayerRequest) -> str:
    cats = ", ".join(category_label(c) for c in req.categories) or "all categories"
    where = f" ({describe(req.where)})" if req.where else ""
    return f"{cats}{where}, {req.period_text}"


def subject(req: LayerRequest) -> str:
    cats = [category_label(c).lower() for c in req.categories]
    return " and ".join(cats) if cats else "crime"


def filename(req: LayerRequest, group: str, extra: str = "") -> str:
    parts = ["hotspots", req.layer]
    if group == "crime":
        parts += [req.geography, "+".join(req.categories) or "all", f"{req.month_from}_{req.month_to}"]
        if req.layer in ("gistar", "lisa"):
            parts += [req.variable, req.weights.replace(":", ""), req.significance]
    if extra:
        parts.append(extra)
    if req.where:
        parts.append(key_text(req.where).replace("=", "-").replace(";", "_"))
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", "_".join(x for x in parts if x))


def style(g: gpd.GeoDataFrame, st: maps.Styled) -> gpd.GeoDataFrame:
    """``class_label`` and ``fill`` from a styling; geometry last."""
    g = g.copy()
    labels = [it["label"] for it in st.legend["items"]]
    g["class_label"] = [labels[c] if c >= 0 else "No data" for c in st.classes]
    g["fill"] = st.fills
    cols = [c for c in g.columns if c != "geometry"] + ["geometry"]
    return gpd.GeoDataFrame(g[cols], geometry="geometry", crs=BNG)


def counts(config: Config, req: LayerRequest, audience: Audience, month_from: str | None = None,
           month_to: str | None = None) -> gpd.GeoDataFrame:
    """Step 1: counts for the request's filters (cached), with the IMD decile for LSOAs."""
    mf, mt = (month_from, month_to) if month_from else (req.month_from, req.month_to)

    def build() -> gpd.GeoDataFrame:
        g = area_counts(config, req.geography, list(req.categories), mf, mt, audience, req.where)
        dec = imd_deciles(config, level_role(req.geography))
        if dec is not None:
            g.insert(len(g.columns) - 1, "imd_decile", dec.reindex(g["code"]).to_numpy())
        return g
    return cached(config, ("counts", req.geography, req.categories, mf, mt, audience.value, req.where), build)


def imd_deciles(config: Config, role: str) -> pd.Series | None:
    if role != "lsoa21" or "iod2025" not in config.datasets:
        return None
    try:
        g = cached(config, ("deprivation-layer", "iod2025", "imd"),
                   lambda: overlays.deprivation_layer(config, "iod2025", "imd"))
    except HotspotsError:
        return None
    return pd.Series(g["decile"].to_numpy(), index=g["code"])


def analysis(config: Config, req: LayerRequest, audience: Audience, stats: tuple[str, ...] = ("gistar", "lisa", "moran"),
             seed: int | None = None):
    """Step 2 for gistar/lisa: Gi*, local and global Moran on the counts, once per (filters, variable,
    weights, significance, permutations, audience): the gistar and lisa layers, the panel and the CLI share it
    (the CLI may ask for fewer statistics or another seed)."""
    seed = config.seed if seed is None else seed
    key = ("analysis", req.geography, req.categories, req.month_from, req.month_to, req.variable, req.weights,
           req.significance, req.alpha, req.permutations, audience.value, tuple(stats), seed, req.where)

    def run():
        from .analysis import analyse_areas
        frame = counts(config, req, audience)
        value_col = VALUE_COLUMNS[req.variable]
        if req.variable != "count" and not np.isfinite(frame[value_col]).all():
            raise AnalysisError(f"no population for some areas of {req.geography}: use variable=count",
                                column="variable")
        if int(frame["count"].sum()) == 0:
            raise AnalysisError(f"no incidents in this period ({filters_text(req)}), so nothing to analyse: choose "
                                "another period or category", column="from")
        return analyse_areas(frame, "code", "count", name_col="name", ward_cols=("ward_code", "ward_name"),
                             stats=stats, weights=req.weights, permutations=req.permutations,
                             seed=seed, alpha=req.alpha, significance=req.significance,
                             variable=req.variable, population_col="population" if req.variable != "count" else None,
                             metadata={"categories": list(req.categories), "from": req.month_from,
                                       "to": req.month_to, "geography": req.geography, "subject": subject(req),
                                       "computed_from": "protected table" if audience is Audience.VIEWER
                                       else "exact counts"},
                             cache_dir=config.cache_dir)
    return cached(config, key, run)


def gi_note(cut: dict) -> str:
    g = cut["gi"]
    if cut["mode"] == "raw":
        return "90/95/99% confidence: |z| ≥ 1.645 / 1.960 / 2.576 (two-sided), no correction"
    return f"{SIGNIFICANCE[cut['mode']]}: p ≤ {g['90%']:.3g} / {g['95%']:.3g} / {g['99%']:.3g} for 90/95/99%"


# -- crime kinds -----------------------------------------------------------------------------------------

CRIME_USES = ("layer", "geography", "categories", "month_from", "month_to", "where")


def _choropleth(name: str) -> Callable[[Config, LayerRequest, Audience], Analysed]:
    def build(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
        g = counts(config, req, audience).copy()
        col = VALUE_COLUMNS[name if name != "count" else "count"]
        title = f"{CRIME_TITLES[name]}: {filters_text(req)}"
        st = maps.classify(g[col], req.classes, req.k, integer=name == "count", title=CRIME_TITLES[name])
        fields = AREA_FIELDS + [["count", "Incidents"], ["rate_per_1000", "Rate per 1,000"],
                                ["eb_rate_per_1000", "EB rate per 1,000"], ["population", "Residents (2021)"]] + IMD_FIELD
        meta = {"value": col, "classification": req.classes, "classes": req.k,
                "eb_method": "global empirical Bayes (Marshall 1991)" if name == "eb_rate" else None}
        return Analysed(name, title, style(g, st), st.legend, fields, meta, level_role(req.geography),
                        filename(req, "crime"), summary=_lsoa_cells(g))
    return build


def _lsoa_cells(frame: pd.DataFrame) -> dict:
    """For a viewer's ward layer: the LSOA counts it was summed from, so the publish step can hide a ward
    whose total the LSOA map's audit hides (the two maps never give back what the other hides)."""
    lsoa = frame.attrs.get("lsoa_counts")
    return {} if lsoa is None else {"lsoa_counts": lsoa}


def _stat_layer(name: str) -> Callable[[Config, LayerRequest, Audience], Analysed]:
    def build(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
        a = analysis(config, req, audience)
        frame = counts(config, req, audience)
        g = frame.copy()
        t = pd.DataFrame(a.table.drop(columns="geometry")).set_index("area_code")
        cols = (["value", "gi_z", "gi_p", "gi_p_sim", "gi_bin", "gi_label", "n_neighbours"] if name == "gistar"
                else ["value", "lisa_i", "lisa_q", "lisa_p_sim", "lisa_label", "n_neighbours"])
        for c in cols:
            g[c] = t[c].reindex(g["code"]).to_numpy()
        g = gpd.GeoDataFrame(g[[c for c in g.columns if c != "geometry"] + ["geometry"]], geometry="geometry",
                             crs=BNG)
        cut = a.metadata["cutoffs"]
        if name == "gistar":
            st = maps.style_gi(g["gi_bin"].where(~g["gi_label"].isin(["No neighbours", "Undefined"])),
                               note=gi_note(cut))
            fields = AREA_FIELDS + [["count", "Incidents"], ["rate_per_1000", "Rate per 1,000"],
                                    ["gi_z", "Gi* z-score"], ["gi_p", "p (two-sided)"],
                                    ["gi_p_sim", "p (permutation)"], ["gi_label", "Class"]] + IMD_FIELD
        else:
            note = (f"p ≤ {cut['lisa']:.4g} ({SIGNIFICANCE[req.significance]}); "
                    f"{a.metadata.get('permutations', req.permutations):,} permutations")
            st = maps.style_lisa(g["lisa_label"].tolist(), note=note)
            fields = AREA_FIELDS + [["count", "Incidents"], ["rate_per_1000", "Rate per 1,000"],
                                    ["lisa_i", "Local Moran's I"], ["lisa_p_sim", "p (permutation)"],
                                    ["lisa_label", "Cluster"]] + IMD_FIELD
        title = f"{CRIME_TITLES[name]} of {VARIABLES[req.variable]}: {filters_text(req)}"
        meta = {"method": {k: v for k, v in a.metadata.items() if k not in ("moran", "cutoffs")},
                "cutoffs": cut, "moran": a.metadata["moran"]}
        return Analysed(name, title, style(g, st), st.legend, fields, meta, level_role(req.geography),
                        filename(req, "crime"), summary=_lsoa_cells(frame))
    return build


def _change(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    """Counts of two periods per area and the exact test of their change (``hotspots.trend.count_change``,
    months as exposure), from the audience's counts: viewers' tests use the protected counts."""
    from .kinds_time import change_test_columns, style_change_test
    bf, bt = req.baseline()
    after = counts(config, req, audience)
    before = counts(config, req, audience, bf, bt)
    g = after[["code", "name", "ward_code", "ward_name"] + (["imd_decile"] if "imd_decile" in after else [])
              + ["geometry"]].copy()
    g.insert(len(g.columns) - 1, "count_before", before["count"].to_numpy())
    g.insert(len(g.columns) - 1, "count_after", after["count"].to_numpy())
    g.insert(len(g.columns) - 1, "change", g["count_after"] - g["count_before"])
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(g["count_before"] > 0, g["change"] / g["count_before"] * 100.0, np.nan)
    g.insert(len(g.columns) - 1, "pct_change", pct)
    test, note = change_test_columns(g["count_after"].to_numpy(), g["count_before"].to_numpy(), req, (bf, bt))
    for c, v in test.items():
        g.insert(len(g.columns) - 1, c, v)
    period_b = bf if bf == bt else f"{bf} to {bt}"
    conf = f"{100 * (1 - req.alpha):g}"
    st = style_change_test(g["change_class"], note=f"{req.period_text} against {period_b}; {note}")
    fields = AREA_FIELDS + [["count_before", f"Incidents {period_b}"], ["count_after", f"Incidents {req.period_text}"],
                            ["change", "Change"], ["pct_change", "Change %"], ["ci_low", f"{conf} % CI from (%)"],
                            ["ci_high", f"{conf} % CI to (%)"], ["p", "p (exact test)"],
                            ["change_class", "Change"]] + IMD_FIELD
    meta = {"baseline": {"from": bf, "to": bt}, "current": {"from": req.month_from, "to": req.month_to},
            "change_test": note}
    if int(g["count_before"].sum()) == 0:
        meta["warning"] = f"no incidents in the baseline period {period_b}: there is nothing to compare against"
    return Analysed("change", f"Change in count: {filters_text(req)} against {period_b}", style(g, st), st.legend,
                    fields, meta, level_role(req.geography), filename(req, "crime", f"vs_{bf}_{bt}"))


CRIME_TITLES = {"count": "Incident count", "rate": "Rate per 1,000 residents",
                "eb_rate": "EB-smoothed rate per 1,000", "gistar": "Gi* hot and cold spots",
                "lisa": "LISA clusters (local Moran's I)", "change": "Change between periods"}
_AREA = AREA_COLUMNS + COUNT_COLUMNS
_GI = ("value", "gi_z", "gi_p", "gi_p_sim", "gi_bin", "gi_label", "n_neighbours")
_LISA = ("value", "lisa_i", "lisa_q", "lisa_p_sim", "lisa_label", "n_neighbours")
_CHANGE_TEST = ("rate_ratio", "ci_low", "ci_high", "p", "change_class")
_CHANGE = AREA_COLUMNS + ("count_before", "count_after", "change", "pct_change") + _CHANGE_TEST

_RATES = ("rate_per_1000", "eb_rate_per_1000")
for _name in ("count", "rate", "eb_rate"):
    register(LayerKind(_name, CRIME_TITLES[_name], "crime", _choropleth(_name), CRIME_USES + ("classes", "k"),
                       {Audience.ANALYST: _AREA, Audience.VIEWER: _AREA}, counts=("count",), redact=_RATES,
                       reclassify=VALUE_COLUMNS[_name]))
_STAT_USES = CRIME_USES + ("variable", "weights", "significance", "alpha", "permutations")
register(LayerKind("gistar", CRIME_TITLES["gistar"], "crime", _stat_layer("gistar"), _STAT_USES,
                   {Audience.ANALYST: _AREA + _GI, Audience.VIEWER: _AREA + _GI}, counts=("count",), lazy=False,
                   redact=_RATES + ("value", "gi_z", "gi_p", "gi_p_sim")))
register(LayerKind("lisa", CRIME_TITLES["lisa"], "crime", _stat_layer("lisa"), _STAT_USES,
                   {Audience.ANALYST: _AREA + _LISA, Audience.VIEWER: _AREA + _LISA}, counts=("count",),
                   redact=_RATES + ("value", "lisa_i", "lisa_p_sim")))
register(LayerKind("change", CRIME_TITLES["change"], "crime", _change,
                   CRIME_USES + ("compare_from", "compare_to", "significance", "alpha"),
                   {Audience.ANALYST: _CHANGE, Audience.VIEWER: _CHANGE},
                   counts=("count_before", "count_after", "change"),
                   redact=("pct_change", "rate_ratio", "ci_low", "ci_high", "p", "change_class"),
                   reclassify="change_class"))


# -- public context kinds ------------------------------------------------------------------------------

def _wards(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    w = load_boundary(config, "ward")
    g = w[["code", "name", "geometry"]].copy()
    vintage = config.boundary("ward").vintage
    legend = {"title": "Ward boundaries", "items": [{"label": f"Wards ({len(g)})", "colour": "#333333",
                                                     "n": len(g), "outline": True}], "note": vintage}
    g["class_label"], g["fill"] = "Ward", "#333333"
    g = gpd.GeoDataFrame(g[["code", "name", "class_label", "fill", "geometry"]], geometry="geometry", crs=BNG)
    return Analysed("wards", "Ward boundaries", g, legend, [["name", "Ward"], ["code", "Code"]],
                    {"vintage": vintage}, "ward", filename(req, "boundary"))


register(LayerKind("wards", "Ward boundaries", "boundary", _wards, ("layer",),
                   {Audience.ANALYST: ("code", "name")}, lazy=False))


def deprivation_kinds(config: Config) -> list[LayerKind]:
    sets = overlays.deprivation_sets(config)
    out = []
    for d in sets:
        if any(d["key"].startswith(o["key"] + "_") for o in sets):
            continue  # a supplementary file: its domains are offered through the main set
        title = f"Deprivation: {d['key'].upper().replace('IOD', 'IoD')} deciles"
        out.append(LayerKind(d["key"], title, "deprivation", _deprivation, ("layer", "domain"),
                             {Audience.ANALYST: ("code", "name", "decile", "rank", "score")}))
    return out


def _deprivation(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    g = cached(config, ("deprivation-layer", req.layer, req.domain),
               lambda: overlays.deprivation_layer(config, req.layer, req.domain)).copy()
    label = g.attrs["domain_label"]
    st = maps.style_deciles(g["decile"], title=f"{label} decile ({req.layer.upper().replace('IOD', 'IoD')})")
    fields = [["name", "Area"], ["code", "Code"], ["decile", "Decile (1 = most deprived)"],
              ["rank", "Rank in England"], ["score", "Score"]]
    meta = {"dataset": g.attrs["dataset"], "domain": req.domain, "domain_label": label, "vintage": g.attrs["vintage"],
            "geography": g.attrs["geography"], "missing": g.attrs["missing"],
            "attribution_dataset": g.attrs["attribution"]}
    return Analysed(req.layer, f"{label} decile, {g.attrs['vintage']}", style(g, st), st.legend, fields, meta,
                    g.attrs["geography"], filename(req, "deprivation", req.domain))


def overlay_kinds(config: Config) -> list[LayerKind]:
    return [LayerKind(f"overlay-{o.id}", o.label, "overlay", _overlay, ("layer", "classes", "k"),
                      {Audience.ANALYST: ("code", "name", "value")}, analyst_only=True)
            for o in overlays.list_overlays(config)]


def _overlay(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    g = overlays.overlay_layer(config, req.layer[len("overlay-"):])
    ov = g.attrs["overlay"]
    note = []
    if ov["missing_codes"]:
        note.append(f"{len(ov['missing_codes'])} area(s) with no value")
    if ov["unknown_codes"]:
        note.append(f"{len(ov['unknown_codes'])} code(s) in {ov['source']} not on this map: "
                    + ", ".join(ov["unknown_codes"][:5]) + ("…" if len(ov["unknown_codes"]) > 5 else ""))
    st = maps.classify(g["value"], req.classes, req.k, title=ov["label"], palette=maps.PUBUGN, note="; ".join(note))
    return Analysed(req.layer, ov["label"], style(g, st), st.legend, [["name", "Area"], ["code", "Code"],
                    ["value", ov["label"]]], {"overlay": ov}, ov["geography"], filename(req, "overlay"))

from . import kinds_time  # noqa: E402,F401
from . import kinds_bivariate  # noqa: E402,F401
from . import kinds_grid  # noqa: E402,F401
from . import kinds_compare  # noqa: E402,F401
