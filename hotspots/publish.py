"""Step 3 of every layer: what an audience may see of it.

Why a separate step: the analysis of a viewer's layer is already computed from the protected table
(:mod:`hotspots.protect`), so no statistic can give exact counts back; what remains is *presentation* and
*scope*:

* **scope by allow-list** — only the columns the layer kind lists for the audience
  (``LayerKind.columns``) are published; a column a build adds without listing it is withheld, so a new
  statistic is private until someone publishes it on purpose;
* **the small-number rule** on the published count columns (``LayerKind.counts``): 1-4 shown as ``<5``
  (or the hospital rule), with the secondary-suppression audit over ward and city totals
  (:func:`hotspots.disclosure.suppress_table`), and, for the change layer, the nested-period rule
  (:func:`hotspots.disclosure.suppress_change`); the columns the kind lists in ``redact`` (rates, the
  analysis value and its statistics) are blanked on a suppressed row, whose class stays;
* the provenance metadata, with the rule and the protection method recorded.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from . import maps
from .bundle import BNG
from .config import Config
from .disclosure import DisclosureRule, effective_rule, rule_metadata, suppress_change, suppress_table
from .errors import ForbiddenError
from .export import jsonable, provenance
from .layers import Analysed, LayerKind, filters_text
from .protect import method_metadata
from .request import Audience, LayerRequest

SUPPRESSED_COLOUR = "#d9d9d9"
SUPPRESSED_LABEL = "Suppressed (small number)"
ALWAYS = ("class_label", "fill")


@dataclass
class Published:
    """A layer as one audience may see it: the frame every renderer reads (EPSG:27700)."""

    name: str
    title: str
    frame: gpd.GeoDataFrame
    legend: dict
    fields: list
    metadata: dict
    role: str
    filename: str
    audience: Audience
    summary: dict = field(default_factory=dict)
    #: renderings, built once per layer (display GeoJSON, downloads, rows)
    renders: dict = field(default_factory=dict, repr=False)


def rule_words(rule: DisclosureRule) -> str:
    words = f"1-{rule.max_suppressed} shown as {rule.label}" if rule.max_suppressed else "none hidden"
    if rule.round_to > 1:
        words += f", others rounded to {rule.round_to}"
    if rule.secondary:
        words += f", {rule.secondary_label} = hidden to protect another"
    return words


def publish(config: Config, kind: LayerKind, req: LayerRequest, a: Analysed, audience: Audience) -> Published:
    """The published layer for ``audience`` (see module doc)."""
    if kind.analyst_only and audience is Audience.VIEWER:
        raise ForbiddenError(f"{kind.title} is for analysts: sign in with an analyst account", column="layer")
    frame, legend, summary = a.frame, a.legend, dict(a.summary)
    rule = effective_rule(config) if audience is Audience.VIEWER else None
    if rule is not None:  # a layer on a partner source is shown under the strictest of its rules
        from .sources import rule_for
        rule = rule_for(config, req.categories, rule)
    if rule is not None and kind.counts:
        frame, legend, summary = _display_rule(kind, req, a, rule)
    allowed = kind.allowed(audience)
    keep = [c for c in frame.columns if c in allowed] + ([c for c in ("suppressed",) if c in frame.columns])
    keep += [c for c in ALWAYS if c in frame.columns]
    frame = gpd.GeoDataFrame(frame[keep + ["geometry"]], geometry="geometry", crs=BNG)
    fields = [f for f in a.fields if f[0] in keep]
    vintages = {ds.key: ds.vintage for ds in config.datasets.values()
                if ds.kind in ("boundary", "table") and ds.vintage}
    if rule is None:
        disc = rule_metadata("none")
        disc["disclosure"]["audience"] = "analyst: exact counts; do not publish without disclosure control"
    else:
        disc = rule_metadata(rule)
        disc["disclosure"]["audience"] = "viewer: computed from the protected table, small numbers suppressed"
        if kind.group == "crime":
            disc["disclosure"]["protection"] = method_metadata(rule)
        else:
            disc["disclosure"]["applies"] = "no incident counts in this layer"
    uses = {k: v for k, v in req.query().items() if k in {"layer", *_query_names(kind.uses)}}
    meta = provenance(config, a.title, {"layer": a.name, "parameters": uses, **a.metadata,
                                        "filters": filters_text(req) if kind.group == "crime" else None,
                                        "vintages": vintages, "crs_computed": BNG, "legend": legend, **disc})
    return Published(a.name, a.title, frame, legend, fields, jsonable(meta), a.role, a.filename, audience, summary)


_QUERY_NAMES = {"month_from": "from", "month_to": "to", "categories": "category"}


def _query_names(fields: tuple[str, ...]) -> set[str]:
    return {_QUERY_NAMES.get(f, f) for f in fields}


def _numeric(values) -> np.ndarray:
    return np.array(pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce"), dtype=float)


def _display_rule(kind: LayerKind, req: LayerRequest, a: Analysed, rule: DisclosureRule):
    g = a.frame.drop(columns=["class_label", "fill"])
    if "count_before" in kind.counts:  # two periods side by side
        g, sup, totals = _change_rule(req, g, rule)
    else:
        group = "ward_code" if req.geography == "lsoa" else None
        derived = {c: "count" for c in ("rate_per_1000", "eb_rate_per_1000") if c in g}
        sp = suppress_table(pd.DataFrame(g.drop(columns="geometry")), "count", rule, group_col=group, total=True,
                            derived=derived)
        sup = sp.frame["suppressed"].to_numpy(bool)
        for c in ["count", *derived]:
            g[c] = sp.frame[c].to_numpy(dtype=object)
        totals = {"count": sp.totals.get("count")}
        lsoa = a.summary.get("lsoa_counts")
        if lsoa is not None:  # a ward whose total the LSOA map's audit hides is hidden here too
            audit = suppress_table(lsoa, "count", rule, group_col="ward_code", total=True)
            hidden = {gt["ward_code"] for gt in (audit.group_totals.to_dict("records") if audit.group_totals
                                                  is not None else []) if gt.get("suppressed")}
            force = g["code"].isin(hidden).to_numpy() & ~sup
            if force.any():
                col = g["count"].astype(object)
                col[force] = rule.secondary_label
                g["count"] = col
                sup = sup | force
    for c in kind.redact:
        if c in g:
            col = g[c].astype(object)
            col[sup] = None
            g[c] = col
    g.insert(len(g.columns) - 1, "suppressed", sup)
    if "value" in g:  # the analysis variable as published (rounded under a rounding rule), never another figure
        from .layers import VALUE_COLUMNS
        pub = _numeric(g[VALUE_COLUMNS[req.variable]])
        g["value"] = [None if (s_ or not np.isfinite(v)) else float(v) for s_, v in zip(sup, pub)]
    if kind.reclassify is None:  # the class of every area stays (computed on protected data)
        g["class_label"] = a.frame["class_label"].to_numpy()
        g["fill"] = a.frame["fill"].to_numpy()
        legend = {**a.legend, "note": (a.legend.get("note") or "") + f"; counts: {rule_words(rule)}; statistics "
                  "computed from the protected table"}
        g = gpd.GeoDataFrame(g[[c for c in g.columns if c != "geometry"] + ["geometry"]], geometry="geometry",
                             crs=BNG)
        return g, legend, {"totals": totals}
    vals = _numeric(g[kind.reclassify])
    vals[sup] = np.nan
    if kind.reclassify == "change_class":  # the tested classes, from the protected counts; suppressed restyled below
        from .kinds_time import style_change_test
        st = style_change_test(a.frame["change_class"].tolist(), note=a.legend.get("note", ""))
    elif kind.reclassify == "change":
        st = maps.style_change(vals, title="Change in count", note=a.legend.get("note", ""))
    else:
        st = maps.classify(vals, req.classes, req.k, integer=kind.reclassify == "count", title=kind.title)
    g, legend = _restyle(g, st, sup, rule)
    return g, legend, {"totals": totals}


def _restyle(g: gpd.GeoDataFrame, st: maps.Styled, suppressed: np.ndarray, rule: DisclosureRule) -> tuple:
    """Classes of the published values, and one more class for the suppressed areas."""
    from .layers import style
    g = style(g, st)
    legend = {**st.legend, "items": [dict(i) for i in st.legend["items"]]}
    n = int(suppressed.sum())
    if n:
        g.loc[suppressed, "class_label"] = SUPPRESSED_LABEL
        g.loc[suppressed, "fill"] = SUPPRESSED_COLOUR
        shown = g["class_label"].value_counts()  # each class counts the areas that still show it
        for i in legend["items"]:
            if "n" in i:
                i["n"] = int(shown.get(i["label"], 0))
        legend["items"] = [i for i in legend["items"] if not (i["label"] == "No data" and i["n"] <= 0)]
        legend["items"].append({"label": SUPPRESSED_LABEL, "colour": SUPPRESSED_COLOUR, "n": n, "suppressed": True})
    legend["note"] = ((legend.get("note") or "") + ("; " if legend.get("note") else "")
                      + f"small numbers suppressed ({rule.name} rule: {rule_words(rule)})")
    return g, legend


def _change_rule(req: LayerRequest, g: gpd.GeoDataFrame, rule: DisclosureRule):
    """Both periods under the rule as their own maps show them, the change hidden where either is, and the
    nested-period rule when one period contains the other."""
    bf, bt = req.baseline()
    group = "ward_code" if req.geography == "lsoa" else None
    a_full = pd.DataFrame({"code": g["code"], "ward_code": g["ward_code"],
                           "count": pd.to_numeric(g["count_before"]).to_numpy()})
    b_full = pd.DataFrame({"code": g["code"], "count": pd.to_numeric(g["count_after"]).to_numpy()})
    after_contains = bf >= req.month_from and bt <= req.month_to
    before_contains = req.month_from >= bf and req.month_to <= bt
    if before_contains and not after_contains:  # the baseline holds the current period: swap the roles
        a2 = pd.DataFrame({"code": g["code"], "ward_code": g["ward_code"], "count": b_full["count"]})
        sc = suppress_change(a2, a_full[["code", "count"]], rule, group_col=group, nested=True)
        t = sc.attrs["disclosure"]["totals"]
        totals = {"count_before": t["count_b"].get("count_b"), "count_after": t["count_a"].get("count_a")}
        sc = sc.rename(columns={"count_a": "count_b", "count_b": "count_a", "count_a_suppressed": "count_b_suppressed",
                                "count_b_suppressed": "count_a_suppressed"})
        sc["change"] = [c if isinstance(c, str) else -c for c in sc["change"]]
    else:
        sc = suppress_change(a_full, b_full, rule, group_col=group, nested=after_contains)
        totals = {"count_before": sc.attrs["disclosure"]["totals"]["count_a"].get("count_a"),
                  "count_after": sc.attrs["disclosure"]["totals"]["count_b"].get("count_b")}
    sc = sc.set_index("code").reindex(g["code"])
    hide_a = sc["count_a_suppressed"].to_numpy(bool)
    hide_b = sc["count_b_suppressed"].to_numpy(bool)
    hide_c = sc["change_suppressed"].to_numpy(bool) | hide_a | hide_b
    ca = np.array(sc["count_a"].tolist(), dtype=object)
    cb = np.array(sc["count_b"].tolist(), dtype=object)
    ch = np.array(sc["change"].tolist(), dtype=object)
    ch[hide_c] = rule.secondary_label
    g = g.copy()
    g["count_before"], g["count_after"], g["change"] = ca, cb, ch
    na, nb = _numeric(ca), _numeric(cb)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where((na > 0) & ~hide_c, (nb - na) / na * 100.0, np.nan)
    g["pct_change"] = [None if not np.isfinite(v) else float(v) for v in pct]
    return g, hide_a | hide_b | hide_c, totals
