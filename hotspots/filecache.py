"""Arrays kept on disk between processes: weights, grid geography and the columnar point snapshot.

Why one module: every on-disk cache here has the same three needs. A reader must never see half a file
(two writers of one key, the server and a CLI, write to their own temporary file and rename it); a broken
or foreign file is a miss, never an error, because a cache is an optimisation; and strings are kept
without pickle (``np.load(allow_pickle=False)``), so a cache file can never run code when it is read.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


def key_of(*parts: object) -> str:
    """A short stable hash of ``parts`` (their ``repr``), to name a cache file."""
    return hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=16).hexdigest()


def load(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of ``path``, or None when it is missing, truncated or not ours."""
    try:  # our own handle: np.load leaks its file when the archive is corrupt
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # FileNotFoundError, BadZipFile, EOFError, ValueError (a pickled array), ...
        return None


def save(path: Path, *, compress: bool = False, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` whole or not at all; an OSError (disk full, read-only instance) is ignored."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # private, as the instance folder is
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp.npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                (np.savez_compressed if compress else np.savez)(fh, **arrays)
            os.replace(name, path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
    except OSError:
        pass


def remove_others(path: Path, pattern: str) -> None:
    """Delete the files matching ``pattern`` beside ``path`` except ``path`` itself (older versions of one
    cache: the point snapshot keeps one file per store, not one per write)."""
    try:
        for other in path.parent.glob(pattern):
            if other != path and not other.name.endswith(".tmp.npz"):
                other.unlink(missing_ok=True)
    except OSError:
        pass


def pack_strings(values: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes of all the strings joined, offsets in characters): strings without pickle."""
    values = list(values)
    text = "".join(values)
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum([len(v) for v in values], out=offsets[1:])
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8), offsets


def unpack_strings(blob: np.ndarray, offsets: Sequence[int]) -> list[str]:
    text = blob.tobytes().decode("utf-8")
    o = np.asarray(offsets).tolist()
    return [text[a:b] for a, b in zip(o[:-1], o[1:])]
