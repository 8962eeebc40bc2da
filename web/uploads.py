"""Incident files through the web (analysts): the same ingest pipeline as ``hotspots ingest``, run by a
background worker rather than the request thread.

``POST /upload`` (multipart, field ``file``; optional ``format``): the size limit is ``[server]
max_upload_mb`` (Flask's ``MAX_CONTENT_LENGTH``: 413, JSON or HTML); the file name must end in .csv or .json
(or .jsonl/.ndjson) and its first bytes must look like that type (UTF-8 text: a CSV header row with a
comma, or JSON starting with ``[`` or ``{``); the format is then sniffed (police.uk CSV / police.uk API
JSON / local extract CSV) by ``hotspots.ingest.detect_format`` unless given. The file is saved as
``<instance>/uploads/<sha256>.<ext>`` (a server-made, content-addressed name, never the client's) and
handed to the app's upload worker (``web.upload_jobs``): the answer is **202** with the job's URL
(``Location``, and ``url`` in JSON), ``/uploads/jobs/<id>``, which shows the job's state and progress
(rows stored) and, once the file is ingested (one transaction), redirects (303) to the report page
``/uploads/<ingest id>``, or shows why it failed (422). The report lists the accepted count and every
rejected row (``rejects``: row, column, reason, raw). A JSON client gets the same as JSON (``Accept:
application/json``): the job, and when it is done the report's fields beside it. When the job ends the
file is removed (see ``web.upload_jobs``); the layer cache is cleared through ``_data_changed()``.
Malformed, out-of-range or unknown ids in these paths answer 404.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from datetime import datetime, timezone
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, render_template, request, url_for

from hotspots.errors import HotspotsError, NotFoundError

from . import get_config, wants_json
from .auth import can, current_user, require
from .upload_jobs import Job, QueueFull, UploadWorker, ingest_one

logger = logging.getLogger("web")

bp = Blueprint("uploads", __name__)

EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json"}
FORMATS = ("auto", "police-csv", "police-api-json", "extract")
REPORT_ROWS = 500


class UploadError(HotspotsError):
    status = 400


def _data_changed() -> None:
    """New incidents: every cached layer is stale (the data version changes too; this frees memory now)."""
    from hotspots.cache import clear
    clear()


def uploads_dir(config) -> Path:
    d = config.instance_dir / "uploads"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def _log_path(config) -> Path:
    return uploads_dir(config) / "uploads.jsonl"


def clean_name(name: str) -> str:
    """The client's file name for display only (never used on disk): base name, safe characters, 100 max."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._ ()+-]", "_", base).strip(" .")
    return base[:100] or "upload"


def sniff(head: bytes, kind: str) -> None:
    """Refuse a file whose first bytes do not look like its extension says."""
    if b"\x00" in head:
        raise UploadError("the file is binary, not a CSV or JSON text file", column="file")
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    try:
        sample = text[:4096].decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(text[:4096]) - 4:  # not just a character cut at the end of the sample
            raise UploadError("the file is not UTF-8 text", column="file") from None
        sample = text[:exc.start].decode("utf-8")
    if not sample:
        raise UploadError("the file is empty", column="file")
    if kind == "json":
        if sample[0] not in "[{":
            raise UploadError("a .json file must hold JSON (police.uk API records), starting with [ or {",
                              column="file")
    else:
        first = sample.split("\n", 1)[0]
        if sample[0] in "[{" or "," not in first:
            raise UploadError("a .csv file must start with a header row of comma-separated column names",
                              column="file")


def _record(config, entry: dict) -> None:
    with open(_log_path(config), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")


def _recent(config, n: int = 20) -> list[dict]:
    p = _log_path(config)
    if not p.exists():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines()[-n:]:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return list(reversed(out))


def _entry_for(config, ingest_id: int) -> dict | None:
    for e in _recent(config, 10_000):
        if e.get("ingest_id") == ingest_id:
            return e
    return None


#: ingest ids are SQLite integers: longer digit strings are not ids (and would overflow the binding)
INGEST_ID = re.compile(r"^[1-9][0-9]{0,17}$")
_worker_lock = threading.Lock()


def worker(app: Flask | None = None) -> UploadWorker:
    """This app's upload worker, made on first use (its thread starts with the first job). Made before any
    upload is saved, so its sweep of files left by a crashed server never meets a live one."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    with _worker_lock:
        w = app.extensions.get("hotspots_uploads")
        if w is None:
            config = app.config["HOTSPOTS"]
            w = app.extensions["hotspots_uploads"] = UploadWorker(
                uploads_dir(config), ingest_one(config), lambda job, ok: _job_done(app, job, ok))
    return w


def _job_done(app: Flask, job: Job, ok: bool) -> None:
    """In the worker thread, after a job (before it is marked over): for a stored file, clear the caches
    and record the upload."""
    if not ok:
        logger.info("%s's upload %s failed: %s", job.user, job.file, job.error)
        return
    with app.app_context():
        _data_changed()
        entry = {"ingest_id": job.ingest_id, "file": job.file, "stored_as": job.path.name, "format": job.format,
                 "user": job.user, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "rows_read": job.rows_read, "accepted": job.accepted, "duplicates": job.duplicates,
                 "rejected": job.rejected, "outside_area": job.outside_area}
        _record(app.config["HOTSPOTS"], entry)
    logger.info("%s uploaded %s as %s: %s accepted, %s rejected", job.user, job.file, job.path.name, job.accepted,
                job.rejected)


def _upload_page(error: str | None = None, status: int = 200) -> Response:
    config = get_config()
    html = render_template("upload.html", limit=config.max_upload_mb, formats=FORMATS, recent=_recent(config),
                           pending=worker().pending(current_user().username), error=error, config=config)
    return Response(html, status=status, mimetype="text/html")


@bp.get("/upload")
@require("upload")
def upload():
    return _upload_page()


@bp.post("/upload")
@require("upload")
def upload_post():
    f = request.files.get("file")
    if f is None or not f.filename:
        raise UploadError("choose a file to upload (form field 'file')", column="file")
    shown = clean_name(f.filename)
    ext = "".join(Path(shown.lower()).suffixes[-1:])
    if ext not in EXTENSIONS:
        raise UploadError(f"only .csv and .json files are accepted (got {shown!r})", column="file")
    fmt = request.form.get("format") or "auto"
    if fmt not in FORMATS:
        raise UploadError(f"format must be one of {', '.join(FORMATS)}", column="format")
    head = f.stream.read(8192)
    sniff(head, EXTENSIONS[ext])
    w = worker()  # before saving anything (its first-use sweep)
    part = w.part_path(ext)
    digest = hashlib.sha256(head)
    fd = os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(head)
            while chunk := f.stream.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
        from hotspots.ingest import detect_format
        if fmt == "auto":
            fmt = detect_format(part)
        if EXTENSIONS[ext] == "json" and fmt != "police-api-json" or EXTENSIONS[ext] == "csv" and fmt == "police-api-json":
            raise UploadError(f"format {fmt} does not match a {ext} file", column="format")
        job, new = w.submit(part, digest.hexdigest(), ext, current_user().username, shown, fmt)
    except QueueFull as exc:
        resp = _error(exc.status, exc.reason, exc.column)
        resp.headers["Retry-After"] = "60"
        return resp
    except HotspotsError as exc:
        raise UploadError(f"{shown}: {exc.reason}", column=getattr(exc, "column", None) or "file") from None
    finally:
        part.unlink(missing_ok=True)  # moved to its content address by submit, unless refused
    logger.info("%s queued %s as %s (job %s%s)", job.user, shown, job.path.name, job.id, "" if new else ", same file")
    url = url_for("uploads.job", job_id=job.id)
    if wants_json():
        resp = jsonify({"ok": True, "url": url, "job": job.to_dict()})
    else:
        resp = Response(render_template("upload_job.html", job=job, config=get_config()), mimetype="text/html")
    resp.status_code = 202
    resp.headers["Location"] = url
    return resp


def _error(status: int, message: str, column: str | None = None, **extra) -> Response:
    from . import error_response
    return error_response(status, message, column=column, **extra)


@bp.get("/uploads/jobs/<job_id>")
@require("upload")
def job(job_id: str):
    """A job's state and progress; when done, the report (JSON) or a redirect to it (HTML); when failed,
    why (422, or 500 for a server fault). Only its uploader (or an admin) sees it; others get 404."""
    j = worker().get(job_id)
    if j is None or not (j.user == current_user().username or can("manage_users")):
        raise NotFoundError("no such upload job (jobs are kept until the server restarts)", column="job")
    if j.state == "failed":
        if wants_json():
            return _error(j.error_status or 422, j.error or "failed", j.error_column, job=j.to_dict())
        return _upload_page(j.error, j.error_status or 422)
    if j.state == "done" and not wants_json():
        return redirect(url_for("uploads.report", ingest_id=j.ingest_id), code=303)
    if wants_json():
        body = {"ok": True, "url": url_for("uploads.job", job_id=j.id), "job": j.to_dict()}
        if j.state == "done":
            body.update(_report(get_config(), j.ingest_id))
            body["report_url"] = url_for("uploads.report", ingest_id=j.ingest_id)
        return jsonify(body)
    return render_template("upload_job.html", job=j, config=get_config())


def _report(config, ingest_id: int) -> dict:
    from hotspots import store
    rep = store.upload_report(config.db_path, ingest_id, REPORT_ROWS)
    if rep is None:
        raise NotFoundError("no such upload or ingest", column="ingest_id")
    entry = _entry_for(config, ingest_id) or {}
    return {**rep, "file": entry.get("file"), "user": entry.get("user"), "rejects_shown": len(rep["rejects"])}


@bp.get("/uploads/<ingest_id>")
@require("upload")
def report(ingest_id: str):
    """An ingest's report. Any id that is not a stored ingest (malformed, out of range, unknown) is 404."""
    if not INGEST_ID.match(ingest_id):
        raise NotFoundError("no such upload or ingest", column="ingest_id")
    config = get_config()
    rep = _report(config, int(ingest_id))
    if wants_json():
        return jsonify({"ok": True, **rep})
    return render_template("upload_report.html", r=rep, config=config)


@bp.errorhandler(UploadError)
def _upload_error(exc: UploadError):
    if wants_json():
        return _error(exc.status, exc.reason, getattr(exc, "column", None))
    return _upload_page(exc.reason, exc.status)
