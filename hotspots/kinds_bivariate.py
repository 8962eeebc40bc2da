"""The bivariate layer: crime against deprivation (or any overlay) in one 3×3 choropleth (issue 13).

Why: two filled layers drawn together blend into mud; a bivariate map shows in one fill where much crime
meets much deprivation. Each axis has three classes: crime (the request's variable: count, rate or EB rate)
in tertiles; deprivation by decile (1-3 most deprived = high, 4-7 middle, 8-10 least deprived = low) of
the request's ``against`` domain of the LSOA 2021 index, or an overlay's values in tertiles (overlays are
unvetted local data: analysts only). Viewers' crime values come from the protected table (``counts`` with
the viewer audience), the crime axis's lowest class then always holds every count up to the small-number
limit (so "low" never tells 0 from a suppressed count), and the published counts pass the display rule.
The legend carries a ``bivariate`` 3×3 grid that the map draws as its legend square.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from .aggregate import level_role
from .bundle import BNG
from .cache import cached
from .categories import category_label
from .config import Config
from .disclosure import effective_rule
from .errors import AnalysisError, ForbiddenError
from .layers import (AREA_COLUMNS, AREA_FIELDS, COUNT_COLUMNS, CRIME_USES, VALUE_COLUMNS, Analysed, LayerKind,
                     counts, filename, register)
from .places import place_names
from .request import VARIABLES, Audience, LayerRequest

#: Joshua Stevens' pink-blue 3×3 scheme: GRID[against class - 1][crime class - 1]
GRID = (("#e8e8e8", "#e4acac", "#c85a5a"),
        ("#b0d5df", "#ad9ea5", "#985356"),
        ("#64acbe", "#627f8c", "#574249"))
LEVELS = ("low", "middle", "high")
NO_DATA = "#ffffff"
DEPRIVATION_SET = "iod2025"


def tertile_classes(values: np.ndarray, floor: float | None = None) -> tuple[np.ndarray, list[float]]:
    """1/2/3 by the tertiles of the finite values (0 where not finite). With ``floor``, the first break is at
    least ``floor``: every value up to it is in class 1."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    if not ok.any():
        return np.zeros(len(v), dtype=int), [float("nan"), float("nan")]
    b1, b2 = (float(x) for x in np.quantile(v[ok], [1 / 3, 2 / 3]))
    if floor is not None:
        b1 = max(b1, floor)
        b2 = max(b2, b1)
    cls = np.where(ok, 1 + (v > b1).astype(int) + (v > b2).astype(int), 0)
    return cls, [b1, b2]


def decile_classes(deciles: np.ndarray) -> np.ndarray:
    """Deprivation level from the IoD decile (1 = most deprived): 1-3 high (3), 4-7 middle (2), 8-10 low (1)."""
    d = np.asarray(deciles, dtype=float)
    return np.where(~np.isfinite(d), 0, np.where(d <= 3, 3, np.where(d <= 7, 2, 1))).astype(int)


def _against(config: Config, req: LayerRequest, audience: Audience, codes: pd.Series) -> tuple:
    """(classes, values, label, short name, class words) of the second variable for ``codes``."""
    if req.against.startswith("overlay-"):
        if audience is Audience.VIEWER:
            raise ForbiddenError("risk-factor overlays are for analysts: sign in with an analyst account",
                                 column="against")
        from .overlays import overlay_layer
        g = overlay_layer(config, req.against[len("overlay-"):])
        ov = g.attrs["overlay"]
        if ov["geography"] != level_role(req.geography):
            raise AnalysisError(f"overlay {ov['label']!r} is on {ov['geography']}, not on "
                                f"{level_role(req.geography)}: choose a deprivation domain", column="against")
        vals = pd.Series(g["value"].to_numpy(dtype=float), index=g["code"]).reindex(codes).to_numpy()
        cls, br = tertile_classes(vals)
        return cls, vals, ov["label"], ov["label"], f"tertiles (breaks {br[0]:.3g} and {br[1]:.3g})"
    from .overlays import deprivation_layer
    g = cached(config, ("deprivation-layer", DEPRIVATION_SET, req.against),
               lambda: deprivation_layer(config, DEPRIVATION_SET, req.against))
    dec = pd.Series(g["decile"].to_numpy(dtype=float), index=g["code"]).reindex(codes).to_numpy()
    label = g.attrs["domain_label"]
    return decile_classes(dec), dec, label, "deprivation", "deciles 1-3 high, 4-7 middle, 8-10 low"


def _build(config: Config, req: LayerRequest, audience: Audience) -> Analysed:
    if req.geography != "lsoa" or DEPRIVATION_SET not in config.datasets:
        raise AnalysisError("the bivariate map needs geography=lsoa and the IoD 2025 deprivation data",
                            column="geography")
    g = counts(config, req, audience).copy()
    col = VALUE_COLUMNS[req.variable]
    floor = None
    if audience is Audience.VIEWER:  # a count up to the small-number limit is always "low" (see module doc)
        rule = effective_rule(config)
        floor = float(rule.max_suppressed) if req.variable == "count" else None
    xc, xb = tertile_classes(g[col].to_numpy(dtype=float), floor)
    yc, yv, ylabel, short, ywords = _against(config, req, audience, g["code"])
    cats = " and ".join(category_label(c) for c in req.categories) or "All crime"
    crime = f"{cats} ({VARIABLES[req.variable]})"
    labels = [[f"Crime {LEVELS[x]}, {short} {LEVELS[y]}" for x in range(3)] for y in range(3)]
    ok = (xc > 0) & (yc > 0)
    g.insert(len(g.columns) - 1, "against_value", yv)
    g.insert(len(g.columns) - 1, "crime_class", xc)
    g.insert(len(g.columns) - 1, "against_class", yc)
    places = place_names(config, level_role(req.geography))
    g.insert(len(g.columns) - 1, "place", [places.get(c) for c in g["code"]])
    g["class_label"] = [labels[y - 1][x - 1] if o else "No data" for x, y, o in zip(xc, yc, ok)]
    g["fill"] = [GRID[y - 1][x - 1] if o else NO_DATA for x, y, o in zip(xc, yc, ok)]
    g = gpd.GeoDataFrame(g[[c for c in g.columns if c != "geometry"] + ["geometry"]], geometry="geometry", crs=BNG)
    n = [[int(((xc == x + 1) & (yc == y + 1)).sum()) for x in range(3)] for y in range(3)]
    items = [{"label": labels[y][x], "colour": GRID[y][x], "n": n[y][x]} for y in (2, 1, 0) for x in range(3)]
    if (~ok).any():
        items.append({"label": "No data", "colour": NO_DATA, "n": int((~ok).sum())})
    legend = {"title": f"{crime} against {ylabel}", "items": items,
              "explain": "Dark purple: much crime and much deprivation together; red: much crime, little "
                         "deprivation; blue: much deprivation, little crime",
              "note": f"crime in tertiles (breaks {xb[0]:.4g} and {xb[1]:.4g}); {ylabel}: {ywords}",
              "bivariate": {"x": crime, "y": ylabel, "levels": list(LEVELS), "grid": [list(r) for r in GRID],
                            "n": n}}
    fields = AREA_FIELDS + [["place", "Place"], ["count", "Incidents"], ["rate_per_1000", "Rate per 1,000"],
                            ["against_value", ylabel], ["class_label", "Class"]]
    meta = {"against": req.against, "crime_breaks": xb, "against_classes": ywords, "variable": req.variable}
    return Analysed("bivariate", f"Bivariate: {crime} against {ylabel}", g, legend, fields, meta,
                    level_role(req.geography), filename(req, "crime", f"against_{req.against}"))


_COLUMNS = AREA_COLUMNS + COUNT_COLUMNS + ("place", "against_value", "crime_class", "against_class")
register(LayerKind("bivariate", "Bivariate: crime against deprivation", "crime", _build,
                   CRIME_USES + ("variable", "against"), {Audience.ANALYST: _COLUMNS, Audience.VIEWER: _COLUMNS},
                   counts=("count",), redact=("rate_per_1000", "eb_rate_per_1000")))
