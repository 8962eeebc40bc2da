"""Exceptions that say which file, row and column are at fault.

The CLI prints them as one ``path:row: column: reason`` line and exits non-zero; the web layer turns them
into one JSON error shape. Nothing in the engine prints or returns None to mean failure.
"""
from __future__ import annotations

from pathlib import Path


class HotspotsError(Exception):
    """Base class: every error the engine raises on purpose."""

    status = 400

    def __init__(self, reason: str, *, path: str | Path | None = None, row: int | None = None,
                 column: str | None = None) -> None:
        self.reason = reason
        self.path = str(path) if path is not None else None
        self.row = row
        self.column = column
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = ""
        if self.path:
            where = self.path
            if self.row is not None:
                where += f":{self.row}"
            where += ": "
        col = f"{self.column}: " if self.column else ""
        return f"{where}{col}{self.reason}"

    def to_dict(self) -> dict:
        return {"error": self.reason, "file": self.path, "row": self.row, "column": self.column,
                "status": self.status}


class ConfigError(HotspotsError):
    """The configuration file is missing, malformed or names something that does not exist."""


class BundleError(HotspotsError):
    """A data-bundle file is missing, corrupt or does not match its recorded checksum."""

    status = 500


class IngestError(HotspotsError):
    """An incident file cannot be ingested at all (wrong columns, unreadable, not the claimed format)."""


class NotFoundError(HotspotsError):
    """An unknown category, geography, layer or area was asked for."""

    status = 404


class AnalysisError(HotspotsError):
    """A statistic cannot be computed on this input (too few areas, constant values, bad weights spec)."""


class ForbiddenError(HotspotsError):
    """The audience may not see this (a viewer asking for analyst-only data)."""

    status = 403
