"""Incident files through the web (analysts): the same ingest pipeline as ``hotspots ingest``.

``POST /upload`` (multipart, field ``file``; optional ``format``): the size limit is ``[server]
max_upload_mb`` (Flask's ``MAX_CONTENT_LENGTH``: 413, JSON or HTML); the file name must end in .csv or .json
(or .jsonl/.ndjson) and its first bytes must look like that type (UTF-8 text: a CSV header row with a
comma, or JSON starting with ``[`` or ``{``); the format is then sniffed (police.uk CSV / police.uk API
JSON / local extract CSV) by ``hotspots.ingest.detect_format`` unless given. The file is saved under
``<instance>/uploads/`` with a server-made name (never the client's), ingested in one transaction
(``ingest_paths``), and the layer cache is cleared. The report page ``/uploads/<ingest id>`` lists the
accepted count and every rejected row (``rejects``: row, column, reason, raw). A JSON client gets the
same report as JSON (``Accept: application/json``).
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for

from hotspots.errors import HotspotsError, NotFoundError

from . import get_config, wants_json
from .auth import current_user, require

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


@bp.get("/upload")
@require("upload")
def upload():
    config = get_config()
    return render_template("upload.html", limit=config.max_upload_mb, formats=FORMATS, recent=_recent(config),
                           error=None, config=config)


@bp.post("/upload")
@require("upload")
def upload_post():
    config = get_config()
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
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = uploads_dir(config) / f"{stamp}-{secrets.token_hex(8)}{ext}"
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(head)
        while chunk := f.stream.read(1 << 20):
            out.write(chunk)
    from hotspots.ingest import detect_format, ingest_paths
    try:
        if fmt == "auto":
            fmt = detect_format(path)
        if EXTENSIONS[ext] == "json" and fmt != "police-api-json" or EXTENSIONS[ext] == "csv" and fmt == "police-api-json":
            raise UploadError(f"format {fmt} does not match a {ext} file", column="format")
        errors: list[Exception] = []
        summaries = ingest_paths(config, [path], fmt, on_error=errors.append)
    except HotspotsError as exc:
        path.unlink(missing_ok=True)
        raise UploadError(f"{shown}: {exc.reason}", column=getattr(exc, "column", None) or "file") from None
    if errors or not summaries:
        path.unlink(missing_ok=True)
        reason = getattr(errors[0], "reason", str(errors[0])) if errors else "nothing was read"
        exc = UploadError(f"{shown} was not ingested: {reason}", column=getattr(errors[0], "column", None)
                          if errors else "file")
        exc.status = 422
        raise exc
    s = summaries[0]
    _data_changed()
    entry = {"ingest_id": s.ingest_id, "file": shown, "stored_as": path.name, "format": s.format,
             "user": current_user().username, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "rows_read": s.rows_read, "accepted": s.accepted, "duplicates": s.duplicates, "rejected": s.rejected,
             "outside_area": s.outside_area}
    _record(config, entry)
    logger.info("%s uploaded %s as %s: %s accepted, %s rejected", entry["user"], shown, path.name, s.accepted,
                s.rejected)
    if wants_json():
        return jsonify({"ok": True, **_report(config, s.ingest_id)}), 201
    return redirect(url_for("uploads.report", ingest_id=s.ingest_id), code=303)


def _report(config, ingest_id: int) -> dict:
    from hotspots import store
    con = store.connect(config.db_path, readonly=True)
    try:
        g = con.execute("SELECT id, format, started_at, sha256 FROM ingests WHERE id = ?", (ingest_id,)).fetchone()
        if g is None:
            raise NotFoundError(f"no upload or ingest {ingest_id}", column="ingest_id")
        n_rej = con.execute("SELECT COUNT(*) FROM rejects WHERE ingest_id = ?", (ingest_id,)).fetchone()[0]
        rej = con.execute("SELECT row_no, column_name, reason, raw FROM rejects WHERE ingest_id = ? ORDER BY row_no "
                          "LIMIT ?", (ingest_id, REPORT_ROWS)).fetchall()
        stored = con.execute("SELECT COUNT(*) FROM incidents WHERE ingest_id = ?", (ingest_id,)).fetchone()[0]
    finally:
        con.close()
    entry = _entry_for(config, ingest_id) or {}
    return {"ingest_id": ingest_id, "format": g[1], "started_at": g[2], "sha256": g[3],
            "file": entry.get("file"), "user": entry.get("user"), "rows_read": entry.get("rows_read"),
            "accepted": entry.get("accepted", stored), "stored": stored, "duplicates": entry.get("duplicates"),
            "outside_area": entry.get("outside_area"), "rejected": n_rej,
            "rejects": [{"row": r[0], "column": r[1], "reason": r[2], "raw": r[3]} for r in rej],
            "rejects_shown": len(rej)}


@bp.get("/uploads/<int:ingest_id>")
@require("upload")
def report(ingest_id: int):
    config = get_config()
    rep = _report(config, ingest_id)
    if wants_json():
        return jsonify({"ok": True, **rep})
    return render_template("upload_report.html", r=rep, config=get_config())


def upload_error_page(exc: UploadError) -> Response:
    config = get_config()
    html = render_template("upload.html", limit=config.max_upload_mb, formats=FORMATS, recent=_recent(config),
                           error=exc.reason, config=config)
    return Response(html, status=exc.status, mimetype="text/html")


@bp.errorhandler(UploadError)
def _upload_error(exc: UploadError):
    if wants_json():
        from . import error_response
        return error_response(exc.status, exc.reason, column=getattr(exc, "column", None))
    return upload_error_page(exc)
