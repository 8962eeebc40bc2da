"""hotspots: where serious violence concentrates, with honest statistics.

The engine is a library (no Flask): config, bundle, ingest, geocode, store, aggregate, weights, stats,
overlays and maps, one module per concern. ``web/`` and ``hotspots.cli`` are thin layers over it.
"""
from .config import Config, load_config
from .errors import (AnalysisError, BundleError, ConfigError, HotspotsError, IngestError, NotFoundError)

__version__ = "0.1.0"

__all__ = ["Config", "load_config", "HotspotsError", "ConfigError", "BundleError", "IngestError",
           "NotFoundError", "AnalysisError", "__version__"]
