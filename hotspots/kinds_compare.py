"""The comparison layers: two sources side by side on one geography (issue 12, :mod:`hotspots.compare`).

``comparison`` maps the joint hot spots (Gi* 95 % hot in both sources, in only one, in neither) and carries
the side-by-side rankings and Spearman's rho; ``comparison_lisa`` maps the bivariate LISA clusters of the
same computation. Source A is the request's ``categories`` (police categories or ``src:NAME``), source B its
``versus``. Viewers' figures come from the protected counts of each source (each under its own disclosure
rule): ranks, rho, Gi* and the bivariate LISA are computed from them, and both count columns pass their
source's small-number rule (A's by the publish step, B's here).
"""
from __future__ import annotations

from dataclasses import replace

import geopandas as gpd
import numpy as np
import pandas as pd

from . import compare as cmp
from .aggregate import level_role
from .bundle import BNG
from .cache import cached
from .categories import category_label
from .config import Config
from .disclosure import effective_rule, suppress_table
from .errors import AnalysisError
from .layers import (AREA_COLUMNS, AREA_FIELDS, CRIME_USES, VALUE_COLUMNS, Analysed, LayerKind, analysis, counts,
                     filename, register)
from .request import SIGNIFICANCE, VARIABLES, Audience, LayerRequest
from .sources import describe, get_source, is_source, rule_for, source_name
from .weights import build_weights

POLICE_PLACE = "incident"
BV_COLOURS = {"High-High": "#ff0000", "Low-Low": "#0000ff", "Low-High": "#a7adf9", "High-Low": "#f4ada8",
              cmp.NOT_SIGNIFICANT: "#e0e0e0", cmp.NO_NEIGHBOURS: "#737373"}


def source_words(config: Config, categories) -> str:
    """A source in words: a partner source's title (and category), else the police categories."""
    cats = list(categories)
    src = [c for c in cats if is_source(c)]
    if src:
        parts = []
        for c in src:
            s = get_source(config, source_name(c))
            sub = c.split("/", 1)[1].replace("-", " ") if "/" in c else ""
            parts.append(s["title"] + (f" ({sub})" if sub else ""))
        police = [category_label(c) for c in cats if not is_source(c)]
        return " and ".join(parts + ([f"police: {', '.join(police)}"] if police else []))
    return "Police: " + (", ".join(category_label(c) for c in cats) or "all crime")


def _places(config: Config, categories) -> set[str]:
    return {get_source(config, source_name(c))["place"] if is_source(c) else POLICE_PLACE for c in categories}


def differences_note(config: Config, a, b) -> str:
    """Plain words on what the two sources count differently: place of incident against residence, and
    geographies converted by best-fit lookup."""
    notes = []
    pa, pb = _places(config, a), _places(config, b)
    from .sources import PLACES
    unknown = [source_words(config, c) for c, p in ((a, pa), (b, pb)) if "unknown" in p]
    if unknown:
        notes.append(f"{' and '.join(unknown)} do{'es' if len(unknown) == 1 else ''} not say whether a count is "
                     "placed where the incident happened or where the person lives: check with the supplier before "
                     "reading a difference between the two maps as a disagreement.")
    elif pa != pb:
        wa = " / ".join(PLACES[p] for p in sorted(pa))
        wb = " / ".join(PLACES[p] for p in sorted(pb))
        notes.append(f"The two sources place their counts differently: {source_words(config, a)} counts {wa}; "
                     f"{source_words(config, b)} counts {wb}. An area can be high in one and low in the other "
                     "because people are hurt away from home, not because either source is wrong.")
    for s in describe(config, list(a) + list(b))["sources"]:
        if s["conversion"]:
            notes.append(f"{s['title']}: {s['conversion']}.")
    return " ".join(notes)


def _suppress_b(frame: gpd.GeoDataFrame, rule, geography: str) -> tuple[np.ndarray, np.ndarray]:
    """Source B's counts as a viewer may see them (its rule, ward totals audited as for A) and a mask of
    the suppressed rows."""
    df = pd.DataFrame({"code": frame["code"], "ward_code": frame["ward_code"], "count": frame["count"].to_numpy()})
    sp = suppress_table(df, "count", rule, group_col="ward_code" if geography == "lsoa" else None, total=True,
                        derived={})
    shown = np.array(sp.frame["count"].tolist(), dtype=object)
    sup = np.array(sp.frame["suppressed"].tolist(), dtype=bool)
    lsoa = frame.attrs.get("lsoa_counts")
    if lsoa is not None:  # a ward whose total the LSOA map's audit hides stays hidden here
        audit = suppress_table(lsoa, "count", rule, group_col="ward_code", total=True)
        gt = audit.group_totals.to_dict("records") if audit.group_totals is not None else []
        force = frame["code"].isin({g["ward_code"] for g in gt if g.get("suppressed")}).to_numpy() & ~sup
        shown[force] = rule.secondary_label
        sup = sup | force
    return shown, sup


def compute(config: Config, req: LayerRequest, audience: Audience) -> tuple[gpd.GeoDataFrame, dict]:
    """The comparison table (every area: both counts, ranks, Gi* of each, joint class, bivariate LISA) and
    its metadata, once per request and audience (cached)."""
    key = ("comparison", req.geography, req.categories, req.versus, req.month_from, req.month_to, req.variable,
           req.weights, req.significance, req.alpha, req.permutations, audience.value)
    return cached(config, key, lambda: _compute(config, req, audience))


def _compute(config: Config, req: LayerRequest, audience: Audience) -> tuple[gpd.GeoDataFrame, dict]:
    if req.geography not in ("lsoa", "ward"):
        raise AnalysisError("a comparison is by LSOA or by ward: use geography=lsoa or geography=ward",
                            column="geography")
    if set(req.categories) == set(req.versus):
        raise AnalysisError("the two sources are the same: choose another 'versus'", column="versus")
    req_b = replace(req, categories=req.versus)
    fa, fb = counts(config, req, audience), counts(config, req_b, audience)
    col = VALUE_COLUMNS[req.variable]
    xa, xb = fa[col].to_numpy(dtype=float), fb[col].to_numpy(dtype=float)
    if req.variable != "count" and not (np.isfinite(xa).all() and np.isfinite(xb).all()):
        raise AnalysisError(f"no population for some areas of {req.geography}: use variable=count", column="variable")
    ga, gb = analysis(config, req, audience), analysis(config, req_b, audience)
    ta = pd.DataFrame(ga.table.drop(columns="geometry")).set_index("area_code").reindex(fa["code"])
    tb = pd.DataFrame(gb.table.drop(columns="geometry")).set_index("area_code").reindex(fa["code"])
    hot_a, hot_b = (ta["gi_bin"].fillna(0) >= 2).to_numpy(), (tb["gi_bin"].fillna(0) >= 2).to_numpy()
    w = build_weights(fa[["code", "geometry"]], req.weights, id_col="code", cache_dir=config.cache_dir)
    if tuple(w.ids) != tuple(fa["code"]):
        raise AnalysisError("internal: the weights are not in the areas' order")  # never: built from fa itself
    alpha = req.alpha / len(xa) if req.significance == "bonferroni" else req.alpha
    bv = cmp.bivariate_lisa(xa, xb, w, req.permutations, config.seed, alpha, fdr=req.significance == "fdr")
    rho = cmp.spearman(xa, xb)
    words_a, words_b = source_words(config, req.categories), source_words(config, req.versus)
    g = fa[[c for c in AREA_COLUMNS if c in fa.columns] + ["geometry"]].copy()
    add = {"count": fa["count"].to_numpy(), "count_b": fb["count"].to_numpy(), "value_a": xa, "value_b": xb,
           "rank_a": cmp.ranks(xa), "rank_b": cmp.ranks(xb), "gi_z_a": ta["gi_z"].to_numpy(float),
           "gi_z_b": tb["gi_z"].to_numpy(float), "hot_a": hot_a, "hot_b": hot_b,
           "joint": cmp.joint_classes(hot_a, hot_b), "bv_i": bv.Is, "bv_p_sim": bv.p_sim, "bv_label": list(bv.labels)}
    for c, v in add.items():
        g.insert(len(g.columns) - 1, c, v)
    g["rank_a"] = g["rank_a"].astype(object)
    g["rank_b"] = g["rank_b"].astype(object)
    meta = {"source_a": words_a, "source_b": words_b, "categories_a": list(req.categories),
            "categories_b": list(req.versus), "variable": req.variable,
            "spearman": {"rho": rho.rho, "p": rho.p, "n": rho.n,
                         "method": "Spearman's rank correlation (average ranks for ties), two-sided p from "
                                   "Student's t with n - 2 degrees of freedom"},
            "joint_hot_spots": {k: int((add["joint"] == k).sum()) for k in cmp.JOINT},
            "gistar": {"confidence": "95 %", "significance": SIGNIFICANCE[req.significance], "weights": req.weights},
            "bivariate_lisa": {"convention": "GeoDa / esda Moran_Local_BV: (n-1) * zx_i * lag(zy)_i / sum(zx^2), "
                                             "row-standardised weights",
                               "permutations": bv.permutations, "seed": bv.seed, "cutoff": bv.cutoff,
                               "p": "two-sided conditional-permutation pseudo p"},
            "note": differences_note(config, req.categories, req.versus),
            "computed_from": "protected tables" if audience is Audience.VIEWER else "exact counts"}
    if audience is Audience.VIEWER:  # B's counts under B's rule (A's: the publish step, by A's rule)
        rule_b = rule_for(config, req.versus, effective_rule(config))
        shown, sup = _suppress_b(fb, rule_b, req.geography)
        g["count_b"] = shown
        rank_b = np.array(g["rank_b"].tolist(), dtype=object)
        rank_b[sup] = None
        g["rank_b"] = rank_b
        meta["disclosure_b"] = {"rule": rule_b.name, "suppressed": int(sup.sum())}
        g.attrs["lsoa_counts"] = fa.attrs.get("lsoa_counts")
    return gpd.GeoDataFrame(g, geometry="geometry", crs=BNG), meta


def _fields(meta: dict) -> list:
    a, b = meta["source_a"], meta["source_b"]
    return AREA_FIELDS + [["count", a], ["count_b", b], ["rank_a", f"Rank: {a}"], ["rank_b", f"Rank: {b}"],
                          ["class_label", "Joint hot spot"], ["bv_label", "Bivariate LISA"]]


def _summary(g: gpd.GeoDataFrame) -> dict:
    lsoa = g.attrs.get("lsoa_counts")
    return {} if lsoa is None else {"lsoa_counts": lsoa}


def _joint(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    g, meta = compute(config, req, audience)
    summary = _summary(g)
    a, b = meta["source_a"], meta["source_b"]
    words = {"both": f"Hot spot in both ({a} and {b})", "a": f"Hot spot only in {a}",
             "b": f"Hot spot only in {b}", "neither": "Hot spot in neither"}
    plain = {"both": "Both sources see a cluster of high counts here",
             "a": f"{a} sees a cluster here, {b} does not", "b": f"{b} sees a cluster here, {a} does not",
             "neither": "Neither source sees a cluster of high counts here"}
    g = g.copy()
    g["class_label"] = [words[k] for k in g["joint"]]
    g["fill"] = [cmp.JOINT_COLOURS[k] for k in g["joint"]]
    g = gpd.GeoDataFrame(g[[c for c in g.columns if c != "geometry"] + ["geometry"]], geometry="geometry", crs=BNG)
    sp = meta["spearman"]
    rho = "not defined (a source is constant)" if not np.isfinite(sp["rho"]) else f"{sp['rho']:.2f} (p = {sp['p']:.3g})"
    legend = {"title": f"Joint hot spots: {a} against {b}",
              "items": [{"label": words[k], "colour": cmp.JOINT_COLOURS[k], "n": meta["joint_hot_spots"][k],
                         "plain": plain[k]} for k in cmp.JOINT],
              "explain": "Each source's Gi* hot spots (95 % confidence) on the same areas and weights; where "
                         "they agree and where they do not",
              "note": f"rank correlation (Spearman) of the {VARIABLES[req.variable]}s: rho = {rho}"
                      + (f". {meta['note']}" if meta["note"] else "")}
    title = f"Comparison: {a} against {b}, {req.period_text}"
    return Analysed("comparison", title, g, legend, _fields(meta), meta, level_role(req.geography),
                    filename(req, "crime", "vs_" + "+".join(req.versus)), summary=summary)


def _bivariate(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    g, meta = compute(config, req, audience)
    summary = _summary(g)
    a, b = meta["source_a"], meta["source_b"]
    g = g.copy()
    g["class_label"] = g["bv_label"]
    g["fill"] = [BV_COLOURS[x] for x in g["bv_label"]]
    g = gpd.GeoDataFrame(g[[c for c in g.columns if c != "geometry"] + ["geometry"]], geometry="geometry", crs=BNG)
    plain = {"High-High": f"High {a} here, and high {b} around it",
             "Low-Low": f"Low {a} here, and low {b} around it",
             "High-Low": f"High {a} here, but low {b} around it",
             "Low-High": f"Low {a} here, but high {b} around it",
             cmp.NOT_SIGNIFICANT: "No clear pattern between the two sources here",
             cmp.NO_NEIGHBOURS: "No neighbouring areas to compare with"}
    labels = g["class_label"].tolist()
    items = [{"label": k, "colour": c, "n": labels.count(k), "plain": plain[k]} for k, c in BV_COLOURS.items()
             if k != cmp.NO_NEIGHBOURS or labels.count(k)]
    bvm = meta["bivariate_lisa"]
    legend = {"title": f"Bivariate LISA: {a} (here) against {b} (around)", "items": items,
              "explain": "Each area's value of the first source against the average of the second source in "
                         "the neighbouring areas (GeoDa's bivariate local Moran)",
              "note": f"p ≤ {bvm['cutoff']:.4g} ({SIGNIFICANCE[req.significance]}); {bvm['permutations']:,} "
                      "permutations" + (f". {meta['note']}" if meta["note"] else "")}
    return Analysed("comparison_lisa", f"Bivariate LISA: {a} against {b}, {req.period_text}", g, legend,
                    _fields(meta) + [["bv_i", "Bivariate local Moran's I"], ["bv_p_sim", "p (permutation)"]],
                    meta, level_role(req.geography), filename(req, "crime", "bv_" + "+".join(req.versus)),
                    summary=summary)


_USES = CRIME_USES + ("variable", "weights", "significance", "alpha", "permutations", "versus")
_VIEWER = AREA_COLUMNS + ("count", "count_b", "rank_a", "rank_b", "hot_a", "hot_b", "joint", "bv_label")
_ANALYST = _VIEWER + ("value_a", "value_b", "gi_z_a", "gi_z_b", "bv_i", "bv_p_sim")
for _name, _title, _build in (("comparison", "Comparison of two sources: joint hot spots", _joint),
                              ("comparison_lisa", "Comparison of two sources: bivariate LISA", _bivariate)):
    register(LayerKind(_name, _title, "crime", _build, _USES, {Audience.ANALYST: _ANALYST, Audience.VIEWER: _VIEWER},
                       counts=("count", "count_b"), redact=("rank_a",)))
