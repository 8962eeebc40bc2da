"""One frozen configuration object, loaded from ``config/*.toml`` and overridden by the environment.

Why one object: the CLI, the web app and the tests all build the same ``Config`` and pass it down
explicitly, so nothing that matters lives in module globals and another local authority is only a
different TOML file.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: the checkout this package runs from (for an editable install); outside a checkout nothing depends on it
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "config" / "hotspots.toml"
CONFIG_NAME = Path("config") / "hotspots.toml"


def default_config_path(env: dict[str, str] | None = None, cwd: Path | None = None) -> Path:
    """``HOTSPOTS_CONFIG``, else ``./config/hotspots.toml`` in the working directory, else the checkout's
    (so ``pip install .`` outside a checkout works from a folder holding ``config/``, or with ``--config``)."""
    env = dict(os.environ if env is None else env)
    if env.get("HOTSPOTS_CONFIG"):
        return Path(env["HOTSPOTS_CONFIG"])
    here = (cwd or Path.cwd()) / CONFIG_NAME
    if here.exists():
        return here
    if DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    raise ConfigError(f"no configuration: pass --config FILE, set HOTSPOTS_CONFIG, or run from a folder holding "
                      f"{CONFIG_NAME} (looked in {here.parent} and {DEFAULT_CONFIG.parent})")


def config_base(path: Path) -> Path:
    """Relative paths in a configuration are relative to the folder that holds its ``config/`` folder (the
    repository root for config/hotspots.toml), or to the file's own folder when it is not in ``config/``."""
    path = Path(path).resolve()
    return path.parent.parent if path.parent.name == "config" else path.parent

#: Environment variables that override the file, and the config field each one sets.
ENV_OVERRIDES = {
    "HOTSPOTS_DATA_DIR": "data_dir",
    "HOTSPOTS_INSTANCE_DIR": "instance_dir",
    "HOTSPOTS_BUNDLE": "bundle",
    "HOTSPOTS_HOST": "host",
    "HOTSPOTS_PORT": "port",
    "HOTSPOTS_TILES": "tiles",
    "HOTSPOTS_PUBLIC": "public_mode",
    "HOTSPOTS_SECURE_COOKIES": "secure_cookies",
    "HOTSPOTS_MAX_UPLOAD_MB": "max_upload_mb",
    "HOTSPOTS_TRUSTED_PROXY": "trusted_proxy",
    "HOTSPOTS_ANALYSIS_WORKERS": "analysis_workers",
    "HOTSPOTS_ANALYSIS_QUEUE": "analysis_queue",
    "HOTSPOTS_ANALYSIS_PER_CLIENT": "analysis_per_client",
    "HOTSPOTS_ANALYSIS_BUDGET_S": "analysis_budget_s",
    "HOTSPOTS_ANALYSIS_PROCESSES": "analysis_processes",
}
#: [server] keys of the bounded analysis pool (hotspots.jobs.AnalysisPool) and their types
POOL_KEYS = {"analysis_workers": int, "analysis_queue": int, "analysis_per_client": int, "analysis_budget_s": float}

BOUNDARY_ROLES = ("lsoa21", "lsoa11", "ward", "ward_pre2023")


@dataclass(frozen=True)
class Dataset:
    """One file of the data bundle, as the config describes it."""

    key: str
    kind: str  # boundary | table | incidents
    path: str  # relative to the data dir; may be a glob for incidents
    format: str
    role: str = ""
    code: str = ""
    name: str = ""
    value: str = ""
    geography: str = ""
    vintage: str = ""
    licence: str = ""
    attribution: str = ""
    disclosure: str = ""  # disclosure rule name for this dataset (e.g. "hospital"); "" = the [disclosure] rule
    lad_column: str = ""  # boundary column with the local authority code, to keep only [area] lad_codes


@dataclass(frozen=True)
class ExtractMapping:
    """Column names of a local incident extract (CSV)."""

    id: str = "incident_id"
    date: str = "date"
    month: str = ""
    category: str = "offence"
    longitude: str = "longitude"
    latitude: str = "latitude"
    easting: str = "easting"
    northing: str = "northing"
    extras: tuple[str, ...] = ()
    #: strptime pattern of the date column (e.g. "%d/%m/%Y %H:%M" for UK extracts); "" = ISO 8601
    #: (YYYY-MM-DD, optionally followed by T or a space and HH:MM[:SS]). The time of day is kept when the
    #: pattern (or the ISO value) has one.
    date_format: str = ""
    #: ``[extract.categories]``: local offence names and Home Office offence codes -> police.uk category slug,
    #: keys normalised by :func:`offence_key` (case and spacing do not matter). Pairs, so the mapping is hashable.
    categories: tuple[tuple[str, str], ...] = ()
    #: what happens to an offence the mapping does not name: "reject" (the row, with the known names) or
    #: "keep" (stored under its own slugified name); "" = "reject" when a mapping is given, else "keep"
    unmapped: str = ""
    #: ``[extract.extras]`` as a table: extra column -> type (text, bool, int, number); a plain list of
    #: ``extras`` declares text columns. Typed values are stored typed and can be filtered on (``--where``).
    extra_types: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        fmt = self.date_format
        if fmt and not ("%d" in fmt and ("%m" in fmt or "%b" in fmt or "%B" in fmt) and "%Y" in fmt):
            raise ConfigError(f"[extract] date_format {fmt!r} must name the day (%d), month (%m, %b or %B) and "
                              "four-digit year (%Y): a date without them is ambiguous")
        if self.unmapped not in ("", "keep", "reject"):
            raise ConfigError(f"[extract] unmapped must be \"keep\" or \"reject\", got {self.unmapped!r}")
        for name, kind in self.extra_types:
            if kind not in EXTRA_TYPES:
                raise ConfigError(f"[extract.extras] {name} has type {kind!r}; use one of {', '.join(EXTRA_TYPES)}")

    @property
    def category_map(self) -> dict[str, str]:
        return dict(self.categories)

    @property
    def keep_unmapped(self) -> bool:
        return self.unmapped == "keep" or (self.unmapped == "" and not self.categories)

    @property
    def declared_extras(self) -> dict[str, str]:
        """Extra column -> type, for every declared extra (a plain list's columns are text)."""
        types = dict(self.extra_types)
        return {name: types.get(name, "text") for name in self.extras}


#: types an extra column may be declared with
EXTRA_TYPES = ("text", "bool", "int", "number")


def offence_key(name: str) -> str:
    """How a local offence name or Home Office code is matched: case-folded, runs of spaces made one."""
    return " ".join(str(name).split()).casefold()


def _extract_mapping(ext: dict, path: Path) -> ExtractMapping:
    """``[extract]`` with its ``categories`` table (checked against the police.uk categories) and ``extras``
    as a list (text) or a table of types."""
    from .categories import POLICE_CATEGORIES, normalise_category
    values = dict(ext)
    unknown = set(values) - set(ExtractMapping.__dataclass_fields__) - {"extras"}
    if unknown or "extra_types" in values:
        raise ConfigError(f"[extract] has unknown keys: {', '.join(sorted(unknown | ({'extra_types'} & set(values))))}",
                          path=path)
    extras = values.pop("extras", ())
    if isinstance(extras, dict):
        values["extra_types"] = tuple((str(k), str(v)) for k, v in extras.items())
    values["extras"] = tuple(str(x) for x in extras)
    cats = values.pop("categories", {}) or {}
    if not isinstance(cats, dict):
        raise ConfigError("[extract.categories] must be a table of offence name or code = police.uk category",
                          path=path)
    pairs: dict[str, str] = {}
    for local, target in cats.items():
        slug = normalise_category(str(target))
        if slug not in POLICE_CATEGORIES:
            raise ConfigError(f"[extract.categories] {local!r} maps to {target!r}, which is not a police.uk "
                              f"category (use one of: {', '.join(POLICE_CATEGORIES)})", path=path)
        key = offence_key(local)
        if key in pairs and pairs[key] != slug:
            raise ConfigError(f"[extract.categories] {local!r} is mapped twice (to {pairs[key]} and {slug}) once case "
                              "and spacing are ignored", path=path)
        pairs[key] = slug
    values["categories"] = tuple(sorted(pairs.items()))
    try:
        return ExtractMapping(**values)
    except ConfigError as exc:
        raise ConfigError(exc.reason, path=path) from None


@dataclass(frozen=True)
class IngestLimits:
    """``[ingest]``: what one incident file may cost before it is refused whole (nothing written).

    Why: a 28 MB gzip can expand to 6 GB and a 10 MB upload of ``[0,0,...]`` to five million rejects; both
    must be a clear error naming the file, not a ``MemoryError`` or a store grown by a gigabyte."""

    #: largest decompressed (or plain) file, in MiB: bounds memory directly. Real police.uk gzip/JSON
    #: expands about 7x, so a ratio cap would only add false refusals of repetitive but honest files.
    max_expanded_mb: float = 2048.0
    #: largest JSON text, in MiB: parsed JSON takes about ten times its text in Python objects (the
    #: bundle's largest month, 26.6 MB of JSON Lines, is far below)
    max_json_mb: float = 512.0
    #: a file with more rejects than this is refused whole, whatever its size
    max_rejects: int = 100_000
    #: ... and so is a file of at least ``reject_share_min_rows`` rows of which more than this share is rejected
    max_reject_share: float = 0.5
    reject_share_min_rows: int = 1_000


@dataclass(frozen=True)
class Config:
    area_name: str
    lad_code: str
    data_dir: Path
    instance_dir: Path
    bundle: Path
    datasets: dict[str, Dataset]
    extract: ExtractMapping = field(default_factory=ExtractMapping)
    ingest: IngestLimits = field(default_factory=IngestLimits)
    centre: tuple[float, float] = (52.5866, -2.1276)
    #: Local authority codes to keep from boundary files that cover more (regional or national files);
    #: empty keeps every feature. Applies to boundary datasets that name their ``lad_column``.
    lad_codes: tuple[str, ...] = ()
    zoom: int = 12
    host: str = "127.0.0.1"
    port: int = 5000
    tiles: str = "none"
    tiles_attribution: str = ""
    permutations: int = 9999
    seed: int = 12345
    alpha: float = 0.05
    weights: str = "queen"
    public_mode: bool = False
    #: [disclosure] table: {"rule": "default"} or a custom rule (see hotspots.disclosure.rule_from_mapping)
    disclosure: dict = field(default_factory=lambda: {"rule": "default"})
    #: session cookie Secure flag: "auto" (when the request is HTTPS), "true" or "false"
    secure_cookies: str = "auto"
    session_hours: float = 12.0
    max_upload_mb: float = 50.0
    #: behind one TLS-terminating reverse proxy: take scheme, host and client address from its
    #: X-Forwarded-Proto/-Host/-For headers (never set it when clients reach the server directly)
    trusted_proxy: bool = False
    #: the bounded pool for uncached analyses (hotspots.jobs.AnalysisPool): threads, queued jobs, jobs per
    #: client (address or signed-in user), and seconds a request waits before a 503 with Retry-After
    analysis_workers: int = 1
    analysis_queue: int = 4
    analysis_per_client: int = 2
    analysis_budget_s: float = 20.0
    #: compute picklable analyses in a child process (the kernels hold the GIL; measured: docs/benchmarks.md)
    analysis_processes: bool = False
    source: Path | None = None
    #: protective marking printed on the print view and briefings (Government Security Classifications)
    marking: str = "OFFICIAL"
    #: smallest KDE bandwidth (metres) published to viewers: below it a surface can locate one incident
    kde_min_bandwidth_m: float = 250.0

    # -- derived paths -------------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.instance_dir / "hotspots.db"

    @property
    def cache_dir(self) -> Path:
        return self.instance_dir / "cache"

    @property
    def lock_path(self) -> Path:
        return self.data_dir / "bundle.lock.json"

    def dataset(self, key: str) -> Dataset:
        try:
            return self.datasets[key]
        except KeyError:
            raise ConfigError(f"no dataset {key!r} in the configuration (have: {', '.join(self.datasets)})",
                              path=self.source) from None

    def boundary(self, role: str) -> Dataset:
        """The boundary dataset playing ``role`` (lsoa21, lsoa11, ward, ward_pre2023)."""
        for ds in self.datasets.values():
            if ds.kind == "boundary" and ds.role == role:
                return ds
        raise ConfigError(f"no boundary dataset with role {role!r} in the configuration", path=self.source)

    def table(self, role: str, geography: str | None = None) -> list[Dataset]:
        return [d for d in self.datasets.values() if d.kind == "table" and d.role == role
                and (geography is None or d.geography == geography)]

    def with_overrides(self, **kw: Any) -> "Config":
        return replace(self, **kw)

    def attributions(self) -> list[str]:
        """Distinct attribution lines of every dataset, in config order (shown on maps and downloads)."""
        seen: list[str] = []
        for ds in self.datasets.values():
            if ds.attribution and ds.attribution not in seen:
                seen.append(ds.attribution)
        return seen


def _resolve(base: Path, value: str | Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _number(kind: type, value: Any, what: str, path: Path) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, got {value!r}", path=path) from None


def _ingest_limits(table: dict, path: Path) -> IngestLimits:
    """The ``[ingest]`` table, each limit checked to be a positive number of the right kind."""
    known = IngestLimits.__dataclass_fields__
    unknown = set(table) - set(known)
    if unknown:
        raise ConfigError(f"[ingest] has unknown keys: {', '.join(sorted(unknown))}", path=path)
    values: dict[str, Any] = {}
    for key, value in table.items():
        kind = int if key in ("max_rejects", "reject_share_min_rows") else float
        if isinstance(value, bool) or not isinstance(value, (int, float)) or kind is int and not isinstance(value, int) \
                or value <= 0 or key == "max_reject_share" and value > 1:
            raise ConfigError(f"[ingest] {key} must be a positive {'integer' if kind is int else 'number'}"
                              f"{' at most 1' if key == 'max_reject_share' else ''}, got {value!r}", path=path)
        values[key] = kind(value)
    return IngestLimits(**values)


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None, **overrides: Any) -> Config:
    """Load the TOML file (``HOTSPOTS_CONFIG`` or ``config/hotspots.toml``), then apply the environment,
    then ``overrides``. Relative paths in the file are relative to :func:`config_base` (the repository root for
    ``config/hotspots.toml``)."""
    env = dict(os.environ if env is None else env)
    path = Path(path) if path else default_config_path(env)
    if not path.exists():
        raise ConfigError("configuration file not found", path=path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    area = raw.get("area") or {}
    for key in ("name", "lad_code"):
        if key not in area:
            raise ConfigError(f"[area] needs {key!r}", path=path)
    paths = raw.get("paths", {})
    server = raw.get("server", {})
    analysis = raw.get("analysis", {})
    datasets: dict[str, Dataset] = {}
    known = set(Dataset.__dataclass_fields__)
    for key, spec in (raw.get("datasets") or {}).items():
        unknown = set(spec) - known
        if unknown:
            raise ConfigError(f"[datasets.{key}] has unknown keys: {', '.join(sorted(unknown))}", path=path)
        for req in ("kind", "path", "format"):
            if req not in spec:
                raise ConfigError(f"[datasets.{key}] needs {req!r}", path=path)
        datasets[key] = Dataset(key=key, **spec)
    extract = _extract_mapping(raw.get("extract", {}), path)
    ingest_limits = _ingest_limits(raw.get("ingest") or {}, path)
    values: dict[str, Any] = dict(
        area_name=area["name"], lad_code=area["lad_code"],
        centre=tuple(area.get("centre", (52.5866, -2.1276))), zoom=int(area.get("zoom", 12)),
        lad_codes=tuple(str(c) for c in area.get("lad_codes", ())),
        data_dir=_resolve(config_base(path), paths.get("data_dir", "data")),
        instance_dir=_resolve(config_base(path), paths.get("instance_dir", "instance")),
        bundle=_resolve(config_base(path), paths.get("bundle", "../shared/data")),
        host=server.get("host", "127.0.0.1"), port=int(server.get("port", 5000)),
        tiles=server.get("tiles", "none"), tiles_attribution=server.get("tiles_attribution", ""),
        permutations=int(analysis.get("permutations", 9999)), seed=int(analysis.get("seed", 12345)),
        alpha=float(analysis.get("alpha", 0.05)), weights=analysis.get("weights", "queen"),
        public_mode=bool(server.get("public_mode", False)),
        secure_cookies=str(server.get("secure_cookies", "auto")).lower(),
        session_hours=float(server.get("session_hours", 12.0)),
        max_upload_mb=float(server.get("max_upload_mb", 50.0)),
        trusted_proxy=bool(server.get("trusted_proxy", False)),
        analysis_processes=bool(server.get("analysis_processes", False)),
        **{k: _number(kind, server[k], f"[server] {k}", path) for k, kind in POOL_KEYS.items() if k in server},
        disclosure=dict(raw.get("disclosure") or {"rule": "default"}),
        datasets=datasets, extract=extract, ingest=ingest_limits, source=path,
        marking=str((raw.get("report") or {}).get("marking", "OFFICIAL")),
        kde_min_bandwidth_m=float(analysis.get("kde_min_bandwidth_m", 250.0)),
    )
    for var, fld in ENV_OVERRIDES.items():
        if env.get(var):
            v: Any = env[var]
            if fld in ("data_dir", "instance_dir", "bundle"):
                v = Path(v).expanduser().resolve()
            elif fld == "port":
                v = int(v)
            elif fld in ("public_mode", "trusted_proxy", "analysis_processes"):
                v = v.lower() in ("1", "true", "yes", "on")
            elif fld == "secure_cookies":
                v = v.lower()
            elif fld == "max_upload_mb":
                v = float(v)
            elif fld in POOL_KEYS:
                v = _number(POOL_KEYS[fld], v, var, path)
            values[fld] = v
    values.update(overrides)
    for fld in ("data_dir", "instance_dir", "bundle"):
        values[fld] = Path(values[fld])
    if values["secure_cookies"] in ("1", "yes", "on"):
        values["secure_cookies"] = "true"
    if values["secure_cookies"] in ("0", "no", "off"):
        values["secure_cookies"] = "false"
    if values["secure_cookies"] not in ("auto", "true", "false"):
        raise ConfigError(f"[server] secure_cookies must be auto, true or false, got {values['secure_cookies']!r}",
                          path=path)
    if not 0 < float(values["max_upload_mb"]) <= 4096:
        raise ConfigError("[server] max_upload_mb must be between 0 and 4096", path=path)
    if not (values.get("analysis_workers", 1) >= 1 and values.get("analysis_queue", 4) >= 0
            and values.get("analysis_per_client", 2) >= 1 and values.get("analysis_budget_s", 20.0) > 0):
        raise ConfigError("[server] analysis_workers and analysis_per_client must be at least 1, analysis_queue "
                          "at least 0 and analysis_budget_s above 0", path=path)
    from .disclosure import rule_from_mapping, get_rule  # validate the rules now, not on the first request
    rule_from_mapping(values["disclosure"])
    for ds in values["datasets"].values():
        if ds.disclosure:
            get_rule(ds.disclosure)
    return Config(**values)
