"""Crime categories: one vocabulary across the police.uk archive CSV, the police.uk API and local extracts.

The API uses slugs (``violent-crime``), the archive uses names ("Violence and sexual offences"). We store
the slug and show the name; local extracts' own offence names are slugified and kept as they are.
"""
from __future__ import annotations

import re

#: police.uk API slug -> archive CSV name (data.police.uk "crime categories").
POLICE_CATEGORIES: dict[str, str] = {
    "anti-social-behaviour": "Anti-social behaviour",
    "bicycle-theft": "Bicycle theft",
    "burglary": "Burglary",
    "criminal-damage-arson": "Criminal damage and arson",
    "drugs": "Drugs",
    "other-theft": "Other theft",
    "possession-of-weapons": "Possession of weapons",
    "public-order": "Public order",
    "robbery": "Robbery",
    "shoplifting": "Shoplifting",
    "theft-from-the-person": "Theft from the person",
    "vehicle-crime": "Vehicle crime",
    "violent-crime": "Violence and sexual offences",
    "other-crime": "Other crime",
    "public-disorder-weapons": "Public disorder and weapons",
}
_NAME_TO_SLUG = {name.lower(): slug for slug, name in POLICE_CATEGORIES.items()}
# Older archive names that mean the same thing.
_NAME_TO_SLUG.update({"violent crime": "violent-crime", "violence and sexual offences": "violent-crime",
                      "criminal damage & arson": "criminal-damage-arson"})


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")


def normalise_category(value: str) -> str:
    """Slug for a category given as an API slug, an archive name or free text (case-insensitive)."""
    v = value.strip()
    low = v.lower()
    if low.startswith("src:"):  # a partner source (hotspots.sources): src:NAME or src:NAME/<category>
        name, _, sub = low[4:].partition("/")
        return f"src:{slugify(name)}" + (f"/{slugify(sub)}" if sub else "")
    if low in POLICE_CATEGORIES:
        return low
    if low in _NAME_TO_SLUG:
        return _NAME_TO_SLUG[low]
    return slugify(v)


def category_label(slug: str) -> str:
    if slug.startswith("src:"):
        name, _, sub = slug[4:].partition("/")
        return f"{name}: {sub.replace('-', ' ')}" if sub else f"{name} (all)"
    return POLICE_CATEGORIES.get(slug, slug.replace("-", " ").capitalize())
