"""Where the real data bundle is (importable from any test; conftest modules are not)."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def real_bundle_path() -> Path | None:
    """The real data bundle: HOTSPOTS_BUNDLE, else ../shared/data beside the repo; None if absent."""
    p = Path(os.environ.get("HOTSPOTS_BUNDLE") or REPO.parent / "shared" / "data")
    return p if (p / "boundaries").is_dir() else None
