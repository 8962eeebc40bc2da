"""Place names people know for small areas: "St Peters ward, north-east part, by Heath Town".

Why: LSOA names such as "Wolverhampton 020H" mean nothing to officers (issue 13). The bundle has no
locality names below the ward, so the label is built from what it has: the best-fit ward (the same one
as the counts' ``ward_name``), which part of that ward the area lies in (compass direction of its
centroid from the ward's centroid, "central" near the middle) and, for an area on the ward's edge, the
neighbouring ward it shares the longest border with. Computed from the boundaries in EPSG:27700.
"""
from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import shapely

from .aggregate import best_fit_wards
from .bundle import load_boundary
from .cache import cached
from .config import Config

#: an area whose centroid lies within this share of the ward's "radius" (sqrt(area / pi)) is "central"
CENTRAL_SHARE = 0.3
#: a shared border shorter than this (metres) is a corner touch, not "by" that ward
MIN_SHARED_BORDER_M = 50.0
COMPASS = ("east", "north-east", "north", "north-west", "west", "south-west", "south", "south-east")


def compass_word(dx: float, dy: float) -> str:
    """One of eight compass directions for an offset in easting/northing."""
    angle = math.degrees(math.atan2(dy, dx)) % 360.0
    return COMPASS[int(((angle + 22.5) % 360.0) // 45.0)]


def place_names(config: Config, role: str) -> dict[str, str]:
    """area code -> "<ward> ward, <part>[, by <neighbouring ward>]" for areas below ward level; ``{}`` for
    wards themselves (their name already is the place)."""
    if role == "ward":
        return {}
    return cached(config, ("place-names", role), lambda: _place_names(config, role))


def _place_names(config: Config, role: str) -> dict[str, str]:
    areas = load_boundary(config, role)
    wards = load_boundary(config, "ward")
    fit = best_fit_wards(config, role).set_index("code")
    wgeom = dict(zip(wards["code"], wards.geometry))
    wname = dict(zip(wards["code"], wards["name"]))
    tree = shapely.STRtree(wards.geometry.boundary.to_numpy())
    out: dict[str, str] = {}
    for code, geom in zip(areas["code"], areas.geometry):
        wc = fit["ward_code"].get(code)
        if not isinstance(wc, str) or wc not in wgeom:
            continue
        ward = wgeom[wc]
        c, wcent = geom.centroid, ward.centroid
        radius = math.sqrt(ward.area / math.pi)
        dx, dy = c.x - wcent.x, c.y - wcent.y
        part = "central part" if math.hypot(dx, dy) < CENTRAL_SHARE * radius else f"{compass_word(dx, dy)} part"
        out[code] = f"{wname[wc]} ward, {part}" + _by(geom, wc, wards, tree)
    return out


def _by(geom, own: str, wards: gpd.GeoDataFrame, tree: shapely.STRtree) -> str:
    """", by <ward>" for the other ward sharing the longest border with ``geom``, else ""."""
    edge = geom.boundary
    best, best_len = None, MIN_SHARED_BORDER_M
    for i in tree.query(geom.buffer(1.0)):
        code = wards["code"].iat[int(i)]
        if code == own:
            continue
        shared = edge.intersection(wards.geometry.iat[int(i)].buffer(1.0)).length
        if shared > best_len:
            best, best_len = wards["name"].iat[int(i)], shared
    return f", by {best}" if best else ""


#: between an area's own name and where it is, in the label a tooltip leads with
LABEL_DASH = " — "


def place_labels(config: Config, role: str, frame: gpd.GeoDataFrame) -> dict[str, str]:
    """code -> the line a tooltip leads with, for any layer's frame (EPSG:27700):

    * an area below ward level: "Wolverhampton 020H — St Peters ward, north part, by Heath Town";
    * a ward: "St Peters ward";
    * a grid cell: "Grid cell in St Peters ward" or "Grid cell mostly in St Peters ward" (the ward holding
      the largest share of the cell's area);
    * anything else (incident points): ``{}``.

    Why here and not per kind: the label depends only on the geometry's role and the area codes, so the
    display step adds it to every layer of that role at once (cached per data version)."""
    if role.startswith("grid:"):
        return cached(config, ("place-labels", role, len(frame)), lambda: _cell_labels(config, frame))
    if role == "points" or "name" not in frame.columns:
        return {}
    if role == "ward":
        return {c: f"{n} ward" for c, n in zip(frame["code"], frame["name"]) if isinstance(n, str) and n}
    places = place_names(config, role)
    out = {}
    for code, name in zip(frame["code"], frame["name"]):
        head = name if isinstance(name, str) and name else code
        out[code] = f"{head}{LABEL_DASH}{places[code]}" if code in places else head
    return out


def _cell_labels(config: Config, frame: gpd.GeoDataFrame) -> dict[str, str]:
    wards = load_boundary(config, "ward")
    cells, ward_geoms = frame.geometry.to_numpy(), wards.geometry.to_numpy()
    tree = shapely.STRtree(ward_geoms)
    ci, wi = tree.query(cells, predicate="intersects")
    shares = np.zeros(len(ci))
    wi_within = np.full(len(cells), -1, dtype=np.int64)  # most cells lie within one ward: no overlay for them
    c_in, w_in = tree.query(cells, predicate="within")
    wi_within[c_in] = w_in
    whole = wi_within[ci] == wi
    shares[whole] = shapely.area(cells[ci[whole]])
    shares[~whole] = shapely.area(shapely.intersection(cells[ci[~whole]], ward_geoms[wi[~whole]]))
    total = np.bincount(ci, weights=shares, minlength=len(cells))
    order = np.lexsort((-shares, ci))  # per cell, the ward with the largest share first
    first = order[np.r_[True, ci[order][1:] != ci[order][:-1]]] if len(order) else order
    codes, names = frame["code"].to_numpy(), wards["name"].to_numpy()
    out = {}
    for c, w, a in zip(ci[first].tolist(), wi[first].tolist(), shares[first].tolist()):
        where = "in" if a >= 0.99 * total[c] else "mostly in"
        out[codes[c]] = f"Grid cell {where} {names[w]} ward"
    return out


def label(name: str, code: str, place: str | None) -> str:
    """"Wolverhampton 020H (E01010520): St Peters ward, north part" — the official name, code and place."""
    head = f"{name} ({code})" if name and name != code else code
    return f"{head}: {place}" if place else head


__all__ = ["place_names", "place_labels", "label", "compass_word"]
