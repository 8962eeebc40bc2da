"""The upload worker: one background thread per app that ingests uploaded files, one job at a time.

Why a worker: ingesting a large file takes seconds to minutes, and inside the request thread it held a
server thread (and the client) for all of it. The request now only saves the file and enqueues a job;
the worker ingests it (one transaction per file, and SQLite allows one writer, so one thread is enough)
and the client follows the job's state and progress at ``/uploads/jobs/<id>``.

Files: an upload is stored content-addressed, ``uploads/<sha256>.<ext>``, so the same bytes uploaded
twice are one file (and, while the first is queued or running, one job). When its job ends, done or
failed, the file is **removed**, exactly once: the store keeps what it gave (incidents, every rejected
row with its raw text, and the file's SHA-256 in ``ingests``), so nothing is lost. A file left behind by
a crash (its transaction rolled back) is removed when the next worker starts (the server is one process
per instance folder: ``hotspots serve``); its uploader uploads it again (ingest is idempotent).

Jobs live in memory (the last ``KEEP_FINISHED`` finished ones are kept for their pages); the report of a
finished job is the ingest's report at ``/uploads/<ingest id>``, which lives in the store.
"""
from __future__ import annotations

import logging
import queue
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from hotspots.config import Config
from hotspots.errors import HotspotsError

logger = logging.getLogger("web")

#: jobs waiting at most; a further upload is refused with 503 and Retry-After
MAX_QUEUED = 16
#: finished jobs kept in memory for their pages
KEEP_FINISHED = 200
STORED_NAME = re.compile(r"^[0-9a-f]{64}\.[a-z]+$")
PART_NAME = re.compile(r"^\.incoming-[0-9a-f]{16}\.part\.[a-z]+$")
JOB_ID = re.compile(r"^[0-9a-f]{24}$")


class QueueFull(HotspotsError):
    status = 503


@dataclass
class Job:
    """One upload's ingest. ``state``: queued → parsing → storing → done | failed."""

    id: str
    user: str
    file: str                       # the client's name, cleaned, for display only
    path: Path = field(repr=False)  # uploads/<sha256>.<ext>
    sha256: str
    format: str
    state: str = "queued"
    rows_stored: int = 0            # incidents written so far (progress while storing)
    rows_read: int | None = None
    accepted: int | None = None
    duplicates: int | None = None
    rejected: int | None = None
    outside_area: int | None = None
    ingest_id: int | None = None
    error: str | None = None
    error_status: int | None = None
    error_column: str | None = None
    file_removed: bool = False
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    @property
    def over(self) -> bool:
        return self.state in ("done", "failed")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("path")
        d["stored_as"] = self.path.name
        return d


#: ingest(path, fmt, progress) -> summary with rows_read, accepted, duplicates, rejected, outside_area, ingest_id
IngestFn = Callable[[Path, str, Callable[[int], None]], object]


class UploadWorker:
    """A queue of upload jobs and the one thread that runs them (started on the first job)."""

    def __init__(self, folder: Path, ingest: IngestFn, on_done: Callable[[Job, bool], None]) -> None:
        self.folder = folder
        self.ingest = ingest
        self.on_done = on_done
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.lock = threading.Lock()
        self.queue: queue.Queue[Job] = queue.Queue()
        self.thread: threading.Thread | None = None
        self._sweep()

    def _sweep(self) -> None:
        """Remove upload files a crashed server left behind (called before this worker saves any)."""
        for p in self.folder.iterdir():
            if STORED_NAME.match(p.name) or PART_NAME.match(p.name):
                logger.warning("removing %s, left in the uploads folder by an earlier server (re-upload it)", p.name)
                p.unlink(missing_ok=True)

    def part_path(self, ext: str) -> Path:
        """Where a request writes an upload while it arrives (the extension kept: formats are told by it)."""
        return self.folder / f".incoming-{secrets.token_hex(8)}.part{ext}"

    def active_for(self, sha256: str) -> Job | None:
        with self.lock:
            return next((j for j in self.jobs.values() if j.sha256 == sha256 and not j.over), None)

    def get(self, job_id: str) -> Job | None:
        if not JOB_ID.match(job_id or ""):
            return None
        with self.lock:
            return self.jobs.get(job_id)

    def pending(self, user: str) -> list[Job]:
        with self.lock:
            return [j for j in self.jobs.values() if j.user == user and not j.over]

    def submit(self, part: Path, sha256: str, ext: str, user: str, shown: str, fmt: str) -> tuple[Job, bool]:
        """Move the saved part file to its content address and queue a job; (job, new). The same bytes
        already queued or running give that job back (one file, one ingest)."""
        with self.lock:
            same = next((j for j in self.jobs.values() if j.sha256 == sha256 and not j.over), None)
            if same is not None:
                part.unlink(missing_ok=True)
                return same, False
            if sum(not j.over for j in self.jobs.values()) >= MAX_QUEUED:
                part.unlink(missing_ok=True)
                raise QueueFull(f"{MAX_QUEUED} uploads are waiting to be ingested; try again in a minute",
                                column="file")
            path = self.folder / f"{sha256}{ext}"
            part.replace(path)
            job = Job(secrets.token_hex(12), user, shown, path, sha256, fmt)
            self.jobs[job.id] = job
            self._forget_old()
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="hotspots-uploads", daemon=True)
                self.thread.start()
        self.queue.put(job)
        return job, True

    def _forget_old(self) -> None:
        finished = [k for k, j in self.jobs.items() if j.over]
        for k in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self.jobs[k]

    def _run(self) -> None:
        while True:
            job = self.queue.get()
            try:
                self._ingest(job)
            finally:
                self.queue.task_done()

    def _ingest(self, job: Job) -> None:
        job.started, job.state = time.time(), "parsing"

        def progress(k: int) -> None:
            job.state = "storing"
            job.rows_stored += k

        try:
            s = self.ingest(job.path, job.format, progress)
            job.rows_read, job.accepted, job.duplicates = s.rows_read, s.accepted, s.duplicates
            job.rejected, job.outside_area, job.ingest_id = s.rejected, s.outside_area, s.ingest_id
            job.rows_stored = max(job.rows_stored, s.accepted)
            outcome = "done"
        except HotspotsError as exc:
            job.error, job.error_status = f"{job.file} was not ingested: {exc.reason}", 422
            job.error_column = exc.column or "file"
            outcome = "failed"
        except Exception:  # a bug, not bad input: the job fails, the worker lives on
            logger.exception("upload job %s (%s) failed", job.id, job.path.name)
            job.error, job.error_status, job.error_column = "internal error; the server log has the details", 500, None
            outcome = "failed"
        finally:
            job.path.unlink(missing_ok=True)  # removed once, whatever happened (see the module docstring)
            job.file_removed = True
        try:
            self.on_done(job, outcome == "done")
        except Exception:
            logger.exception("after upload job %s", job.id)
        # only now is the job over: a client that sees "done" finds the upload recorded and the caches cleared
        job.finished, job.state = time.time(), outcome


def ingest_one(config: Config) -> IngestFn:
    """The worker's ingest: ``hotspots.ingest.ingest_file`` with a progress callback, the geocoder made
    once per worker (boundaries are read once, not per upload)."""
    geocoder = None

    def run(path: Path, fmt: str, progress: Callable[[int], None]):
        nonlocal geocoder
        from hotspots import store
        from hotspots.geocode import Geocoder
        from hotspots.ingest import ingest_file, record_areas
        if geocoder is None:
            geocoder = Geocoder.from_config(config)
        con = store.connect(config.db_path)
        try:
            record_areas(con, geocoder)
            return ingest_file(con, geocoder, path, fmt, config, progress=progress,
                               allowed_roots=[config.instance_dir / "uploads"])
        finally:
            con.close()
    return run
