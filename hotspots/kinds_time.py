"""The time layer kinds (issue 10): the tested change, emerging hot spots and trends per area.

Why here: these kinds share one thing the snapshot kinds do not, the space-time cube (areas × time steps)
of the request's period, and the words that say whether a change is more than noise. They plug into the
registry of :mod:`hotspots.layers`; the engine maths is :mod:`hotspots.trend` and :mod:`hotspots.emerging`.
Every viewer figure is computed from the protected cells (``base_table(..., VIEWER)``), never from exact
counts; viewers' layers publish classes and statistics, not per-step counts.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import geopandas as gpd
import numpy as np

from . import maps
from .aggregate import base_table, level_role
from .bundle import BNG
from .config import Config
from .errors import AnalysisError
from .layers import (AREA_COLUMNS, AREA_FIELDS, CRIME_TITLES, IMD_FIELD, Analysed, LayerKind, counts, filename,
                     filters_text, register, style)
from .request import SIGNIFICANCE, Audience, LayerRequest, month_range, months_between
from .stats import fdr_cutoff
from .trend import (CHANGE_FALL, CHANGE_NO_BASELINE, CHANGE_NO_INCIDENTS, CHANGE_NONE, CHANGE_RISE, MIN_MK_STEPS,
                    count_change, mann_kendall, sens_slope)

# -- the tested change (the ``change`` kind of hotspots.layers) -------------------------------------------

#: change class -> colour: diverging (falls blue, rises red), a neutral grey, and two classes with no test.
CHANGE_TEST_CLASSES: dict[str, str] = {CHANGE_RISE: "#b2182b", CHANGE_NONE: "#f0f0f0", CHANGE_FALL: "#2166ac",
                                       CHANGE_NO_BASELINE: "#fdb863", CHANGE_NO_INCIDENTS: "#ffffff"}
CHANGE_TEST_PLAIN: dict[str, str] = {
    CHANGE_RISE: "More incidents than before, by more than chance alone would explain",
    CHANGE_NONE: "Up or down by no more than chance alone would explain: no clear change",
    CHANGE_FALL: "Fewer incidents than before, by more than chance alone would explain",
    CHANGE_NO_BASELINE: "None in the earlier period, so no percentage change can be given",
    CHANGE_NO_INCIDENTS: "No incidents in either period",
}
CHANGE_TEST_EXPLAIN = ("Each area's count is tested against its earlier count (exact test of the rate per month): "
                       "a change is called significant only when chance alone would rarely give one as large")


def style_classes(labels: Sequence[str], title: str, colours: dict[str, str], plain: dict[str, str],
                  explain: str, note: str = "") -> maps.Styled:
    """Named classes (label -> colour, in legend order) with their plain-words legend; other labels: no data."""
    names = list(colours)
    idx = np.array([names.index(v) if v in colours else -1 for v in labels], dtype=int)
    items = list(colours.items())
    return maps.Styled(idx, maps._fills(idx, [c for _, c in items]),
                       maps._legend(title, items, idx, note, plain=[plain[k] for k in names], explain=explain))


def style_change_test(labels: Sequence[str], note: str = "") -> maps.Styled:
    """The change layer's classes: significant rise / no significant change / significant fall, and the areas
    that cannot be tested."""
    return style_classes(labels, "Change between periods", CHANGE_TEST_CLASSES, CHANGE_TEST_PLAIN,
                         CHANGE_TEST_EXPLAIN, note)


def _finite(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, np.nan)


def change_test_columns(after: np.ndarray, before: np.ndarray, req: LayerRequest,
                        baseline: tuple[str, str]) -> tuple[dict[str, np.ndarray], str]:
    """The change layer's test columns (rate ratio, its interval as a % change, p, class) and the note that
    says how they were computed. Exposure = months in each period, so unequal periods compare rates."""
    t_after = months_between(req.month_from, req.month_to)
    t_before = months_between(*baseline)
    ct = count_change(after, before, t_after, t_before, alpha=req.alpha, fdr=req.significance == "fdr")
    labels = list(ct.labels)
    cutoff = ct.cutoff
    if req.significance == "bonferroni":
        tested = np.isfinite(ct.p) & (ct.c_before > 0)
        cutoff = req.alpha / max(int(tested.sum()), 1)
        labels = [lab if lab not in (CHANGE_RISE, CHANGE_FALL, CHANGE_NONE) else
                  (CHANGE_RISE if ct.rate_ratio[i] > 1 else CHANGE_FALL) if ct.p[i] <= cutoff else CHANGE_NONE
                  for i, lab in enumerate(labels)]
    cols = {"rate_ratio": _finite(ct.rate_ratio), "ci_low": _finite(ct.pct_change_low),
            "ci_high": _finite(ct.pct_change_high), "p": ct.p, "change_class": labels}
    note = (f"exact conditional test of the rate per month ({t_after} against {t_before} month(s)), "
            f"{100 * (1 - req.alpha):g} % exact interval; significant at p ≤ {cutoff:.3g} "
            f"({SIGNIFICANCE[req.significance]})")
    return cols, note


def change_sentence(after: int, before: int, req: LayerRequest, baseline: dict) -> str | None:
    """"−27 % (95 % CI −35 to −18 %, p = 0.003)" for a total, or None when the baseline is empty."""
    if before <= 0:
        return None
    ct = count_change([after], [before], months_between(req.month_from, req.month_to),
                      months_between(baseline["from"], baseline["to"]), alpha=req.alpha)
    conf = f"{100 * (1 - req.alpha):g}"
    from .analysis import format_p
    return (f"{_signed(ct.pct_change[0])} % ({conf} % CI {_signed(ct.pct_change_low[0])} to "
            f"{_signed(ct.pct_change_high[0])} %, {format_p(float(ct.p[0]))}; {ct.labels[0].lower()})")


def _signed(v: float) -> str:
    if not np.isfinite(v):
        return "∞" if v > 0 else "n/a"
    return (f"{v:+.0f}" if abs(v) >= 10 else f"{v:+.1f}").replace("-", "−")


# -- the space-time cube -------------------------------------------------------------------------------

STEP_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def time_steps(month_from: str, month_to: str, step: str) -> tuple[list[str], list[list[int]]]:
    """Labels of the time steps of a period and, for each, the positions of its months in the period.

    Quarters and years must be whole (a step of fewer months would look like a fall): a period that cuts one
    is refused with the nearest whole period."""
    months = month_range(month_from, month_to)
    if step == "month":
        return months, [[i] for i in range(len(months))]
    size = STEP_MONTHS[step]
    first, last = int(months[0][5:7]), int(months[-1][5:7])
    if (first - 1) % size or last % size:
        raise AnalysisError(f"step={step} needs whole {step}s: start the period in "
                            f"{'January' if step == 'year' else 'January, April, July or October'} and end it in "
                            f"{'December' if step == 'year' else 'March, June, September or December'} "
                            f"(got {month_from} to {month_to}), or use step=month", column="step")
    labels, groups = [], []
    for i in range(0, len(months), size):
        m = months[i]
        labels.append(m[:4] if step == "year" else f"{m[:4]}-Q{(int(m[5:7]) - 1) // 3 + 1}")
        groups.append(list(range(i, i + size)))
    return labels, groups


def area_cube(config: Config, req: LayerRequest, audience: Audience, codes: Sequence[str],
              ward_of: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(areas × steps) counts of the request's categories and period, zero-filled, and the step labels.

    Viewers: sums of protected cells; a viewer's ward is the sum of its best-fit LSOAs' protected cells, as
    on the count map."""
    labels, groups = time_steps(req.month_from, req.month_to, req.step)
    months = month_range(req.month_from, req.month_to)
    cats = list(req.categories)
    protected = audience is Audience.VIEWER
    from .sources import ward_only  # a ward-level partner source: its own (protected) ward cells
    if protected and req.geography == "ward" and not ward_only(config, cats):
        lsoa = counts(config, replace(req, geography="lsoa"), audience)
        base = base_table(config, "lsoa21", audience, req.where)
        by_lsoa = base.by_month(list(lsoa["code"]), cats, months, protected=True)
        pos = {c: i for i, c in enumerate(codes)}
        monthly = np.zeros((len(codes), len(months)), dtype=np.int64)
        for row, ward in zip(by_lsoa, lsoa["ward_code"]):
            if ward in pos:
                monthly[pos[ward]] += row
    else:
        base = base_table(config, level_role(req.geography), audience, req.where)
        monthly = base.by_month(list(codes), cats, months, protected=protected)
    cube = np.stack([monthly[:, g].sum(axis=1) for g in groups], axis=1)
    return cube, labels


def _areas(config: Config, req: LayerRequest, audience: Audience) -> gpd.GeoDataFrame:
    g = counts(config, req, audience)
    keep = [c for c in AREA_COLUMNS if c in g] + ["geometry"]
    return g[keep].copy()


def _with(g: gpd.GeoDataFrame, cols: dict) -> gpd.GeoDataFrame:
    for c, v in cols.items():
        g.insert(len(g.columns) - 1, c, v)
    return gpd.GeoDataFrame(g, geometry="geometry", crs=BNG)


def _check_incidents(cube: np.ndarray, req: LayerRequest) -> None:
    if not (cube > 0).any():
        raise AnalysisError(f"no incidents in this period ({filters_text(req)}): choose another period or category",
                            column="from")


# -- emerging hot spots --------------------------------------------------------------------------------

#: ArcGIS's 17 outcomes (hot in reds, cold in blues, darkest = newest), no pattern and islands.
EMERGING_COLOURS: dict[str, str] = {
    "New hot spot": "#67000d", "Consecutive hot spot": "#a50f15", "Intensifying hot spot": "#cb181d",
    "Persistent hot spot": "#ef3b2c", "Diminishing hot spot": "#fb6a4a", "Sporadic hot spot": "#fc9272",
    "Oscillating hot spot": "#fcbba1", "Historical hot spot": "#fee0d2",
    "New cold spot": "#08306b", "Consecutive cold spot": "#08519c", "Intensifying cold spot": "#2171b5",
    "Persistent cold spot": "#4292c6", "Diminishing cold spot": "#6baed6", "Sporadic cold spot": "#9ecae1",
    "Oscillating cold spot": "#c6dbef", "Historical cold spot": "#deebf7",
    "No pattern detected": "#f0f0f0", "No neighbours": "#737373",
}
#: outcome -> (hot words, cold words, the rule in plain words; {a} = "hot" or "cold", {b} the opposite)
_EMERGING_WORDS = {
    "New": ("Newly hot", "Newly cold", "{a} in the last time step only, never before"),
    "Consecutive": ("Hot for the last few steps", "Cold for the last few steps",
                    "{a} in an unbroken run of the last steps, never before that run"),
    "Intensifying": ("Hot and getting hotter", "Cold and getting colder",
                     "{a} in at least 90 % of steps, including the last, and the cluster is strengthening"),
    "Persistent": ("Hot throughout", "Cold throughout",
                   "{a} in at least 90 % of steps, including the last, with no clear change in strength"),
    "Diminishing": ("Hot but cooling", "Cold but warming",
                    "{a} in at least 90 % of steps, including the last, but the cluster is weakening"),
    "Sporadic": ("Hot on and off", "Cold on and off", "{a} now and at some earlier steps, and never {b}"),
    "Oscillating": ("Now hot, once cold", "Now cold, once hot", "{a} in the last step, {b} at some earlier step"),
    "Historical": ("Was hot, not now", "Was cold, not now", "{a} in at least 90 % of steps, but not in the last"),
}
EMERGING_PLAIN: dict[str, str] = {}
for _o, (_hot, _cold, _rule) in _EMERGING_WORDS.items():
    EMERGING_PLAIN[f"{_o} hot spot"] = f"{_hot}: " + _rule.format(a="a hot spot", b="a cold spot")
    EMERGING_PLAIN[f"{_o} cold spot"] = f"{_cold}: " + _rule.format(a="a cold spot", b="a hot spot")
EMERGING_PLAIN["No pattern detected"] = "No pattern: not a hot or cold spot in any of the ways above"
EMERGING_PLAIN["No neighbours"] = "No neighbours: an island, not tested"
EMERGING_EXPLAIN = ("A hot (cold) spot is an area whose neighbourhood, in that time step and the one(s) before, has "
                    "clearly more (fewer) incidents than chance would give; the pattern over the steps is named as "
                    "ArcGIS Pro names it")


def emerging_result(config: Config, req: LayerRequest, audience: Audience):
    """(areas, cube, EmergingResult) of the request, cached: the layer and an area's series share it."""
    from .cache import cached
    from .emerging import emerging_hotspots
    from .weights import build_weights
    key = ("emerging-result", req.geography, req.categories, req.month_from, req.month_to, req.step,
           req.time_neighbours, req.weights, req.alpha, audience.value, req.where)

    def run():
        g = _areas(config, req, audience)
        cube, steps = area_cube(config, req, audience, list(g["code"]))
        _check_incidents(cube, req)
        w = build_weights(g, req.weights, id_col="code", cache_dir=config.cache_dir)
        return g, cube, emerging_hotspots(cube, w, time_neighbours=req.time_neighbours, alpha=req.alpha, fdr=True,
                                          permutations=0, seed=config.seed, steps=steps)
    return cached(config, key, run)


def _emerging(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    g, cube, res = emerging_result(config, req, audience)
    g, steps = g.copy(), list(res.steps)
    g = _with(g, {"count": cube.sum(axis=1), "category": list(res.category), "category_code": res.category_code,
                  "mk_tau": res.mk_tau, "mk_z": res.mk_z, "mk_p": res.mk_p, "n_hot_steps": res.n_hot_steps,
                  "n_cold_steps": res.n_cold_steps})
    note = (f"{len(steps)} {req.step}s ({steps[0]} to {steps[-1]}), {req.time_neighbours} time step(s) back, "
            f"{req.weights} weights; bins significant at p ≤ {res.cutoff:.3g} (FDR at {req.alpha:g})")
    note += "".join(f". Warning: {w}" for w in res.warnings)
    st = style_classes(res.category, "Emerging hot spots", EMERGING_COLOURS, EMERGING_PLAIN, EMERGING_EXPLAIN, note)
    fields = AREA_FIELDS + [["category", "Pattern"], ["n_hot_steps", "Hot steps"], ["n_cold_steps", "Cold steps"],
                            ["mk_tau", "Trend of Gi* z (tau)"], ["mk_p", "Trend p"]] + IMD_FIELD
    meta = {"steps": list(steps), "step": req.step, "time_neighbours": req.time_neighbours, "alpha": req.alpha,
            "fdr": True, "bin_cutoff": res.cutoff, "bin_cutoffs": res.bin_cutoffs, "outcomes": res.counts(),
            "warnings": list(res.warnings), "method": "ArcGIS Pro Emerging Hot Spot Analysis (docs/methods.md)",
            "computed_from": "protected table" if audience is Audience.VIEWER else "exact counts"}
    return Analysed("emerging", f"Emerging hot spots: {filters_text(req)} by {req.step}", style(g, st), st.legend,
                    fields, meta, level_role(req.geography), filename(req, "crime", f"{req.step}_k{req.time_neighbours}"))


# -- trends per area ----------------------------------------------------------------------------------

TREND_CLASSES: dict[str, str] = {"Significant increase": "#b2182b", "No significant trend": "#f0f0f0",
                                 "Significant decrease": "#2166ac", "No incidents": "#ffffff"}
TREND_PLAIN: dict[str, str] = {
    "Significant increase": "Rising over the period, more steadily than chance alone would give",
    "No significant trend": "No clear rise or fall over the period",
    "Significant decrease": "Falling over the period, more steadily than chance alone would give",
    "No incidents": "No incidents in the period",
}
TREND_EXPLAIN = "Mann-Kendall test of the counts per time step; the slope is Sen's (the median of all pairwise slopes)"


def _trend_labels(mk_trend: np.ndarray, p: np.ndarray, empty: np.ndarray, z: np.ndarray,
                  req: LayerRequest) -> tuple[list[str], float]:
    testable = ~empty
    if req.significance == "fdr":
        cut = float(fdr_cutoff(p[testable], req.alpha)) if testable.any() else req.alpha
    elif req.significance == "bonferroni":
        cut = req.alpha / max(int(testable.sum()), 1)
    else:
        cut = req.alpha
    out = []
    for i in range(len(p)):
        if empty[i]:
            out.append("No incidents")
        elif p[i] <= cut and cut > 0 and z[i] != 0:
            out.append("Significant increase" if z[i] > 0 else "Significant decrease")
        else:
            out.append("No significant trend")
    return out, cut


def trend_sentence(series: np.ndarray, steps: Sequence[str], req: LayerRequest) -> dict:
    """The whole area's trend: Mann-Kendall and Sen's slope of the total per step, in words."""
    mk = mann_kendall(series.astype(float), alpha=req.alpha)
    slope, _ = sens_slope(series.astype(float))
    from .analysis import format_p
    word = {1: "a significant increase", -1: "a significant decrease", 0: "no significant trend"}[int(mk.trend)]
    sentence = (f"Whole area, {filters_text(req)}: {word} over {len(steps)} {req.step}s (Mann-Kendall tau = "
                f"{float(mk.tau):.2f}, {format_p(float(mk.p))}); Sen's slope {float(slope):+.1f} incidents per "
                f"{req.step}.").replace("+-", "−")
    return {"tau": float(mk.tau), "z": float(mk.z), "p": float(mk.p), "trend": int(mk.trend),
            "sens_slope": float(slope), "sentence": sentence}


def _trend(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    g = _areas(config, req, audience)
    cube, steps = area_cube(config, req, audience, list(g["code"]))
    if len(steps) < MIN_MK_STEPS:
        raise AnalysisError(f"a trend needs at least {MIN_MK_STEPS} time steps but {filters_text(req)} has "
                            f"{len(steps)} {req.step}(s): choose a longer period or a shorter step", column="from")
    _check_incidents(cube, req)
    mk = mann_kendall(cube.astype(float), alpha=req.alpha)
    slope, _ = sens_slope(cube.astype(float))
    empty = ~(cube > 0).any(axis=1)
    labels, cut = _trend_labels(mk.trend, np.asarray(mk.p), empty, np.asarray(mk.z), req)
    g = _with(g, {"count": cube.sum(axis=1), "mk_tau": np.asarray(mk.tau), "mk_z": np.asarray(mk.z),
                  "mk_p": np.asarray(mk.p), "sens_slope": np.asarray(slope), "trend_class": labels})
    city = trend_sentence(cube.sum(axis=0), steps, req)
    gaps = [steps[t] for t in np.flatnonzero(~(cube > 0).any(axis=0))]
    warnings = ([f"{len(gaps)} time step(s) have no incidents in any area ({', '.join(gaps)}): if that is a gap in "
                 "the source data rather than a quiet step, the trends are wrong"] if gaps else [])
    note = (f"{len(steps)} {req.step}s ({steps[0]} to {steps[-1]}); significant at p ≤ {cut:.3g} "
            f"({SIGNIFICANCE[req.significance]}). {city['sentence']}" + "".join(f" Warning: {w}" for w in warnings))
    st = style_classes(labels, "Trend per area", TREND_CLASSES, TREND_PLAIN, TREND_EXPLAIN, note)
    fields = AREA_FIELDS + [["trend_class", "Trend"], ["sens_slope", f"Sen's slope (per {req.step})"],
                            ["mk_tau", "Mann-Kendall tau"], ["mk_p", "p"]] + IMD_FIELD
    meta = {"steps": list(steps), "step": req.step, "alpha": req.alpha, "cutoff": cut, "city_trend": city,
            "warnings": warnings,
            "computed_from": "protected table" if audience is Audience.VIEWER else "exact counts"}
    return Analysed("trend", f"Trend: {filters_text(req)} by {req.step}", style(g, st), st.legend, fields, meta,
                    level_role(req.geography), filename(req, "crime", req.step))


# -- registration -------------------------------------------------------------------------------------

_TIME_USES = ("layer", "geography", "categories", "month_from", "month_to", "step", "alpha", "where")
_EMERGING = ("category", "category_code", "mk_tau", "mk_z", "mk_p", "n_hot_steps", "n_cold_steps")
_TREND = ("mk_tau", "mk_z", "mk_p", "sens_slope", "trend_class")
# Viewers get classes and statistics of the protected cube; the period total (a count) is for analysts only,
# so no published column is a count and the small-number rule has nothing to hide.
CRIME_TITLES.update(emerging="Emerging hot spots (over time)", trend="Trend per area (over time)")
register(LayerKind("emerging", "Emerging hot spots", "crime", _emerging,
                   _TIME_USES + ("weights", "time_neighbours"),
                   {Audience.ANALYST: AREA_COLUMNS + ("count",) + _EMERGING, Audience.VIEWER: AREA_COLUMNS + _EMERGING}))
register(LayerKind("trend", "Trend per area", "crime", _trend, _TIME_USES + ("significance",),
                   {Audience.ANALYST: AREA_COLUMNS + ("count",) + _TREND, Audience.VIEWER: AREA_COLUMNS + _TREND}))

__all__ = ["style_change_test", "change_test_columns", "change_sentence", "time_steps", "area_cube",
           "trend_sentence"]
