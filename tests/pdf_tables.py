"""Reading the briefing PDF back as text (pypdf): its pages and the count cells of its two tables."""
from __future__ import annotations

import io
import re

SMALL = {"1", "2", "3", "4"}
#: a top-10 row ends "<incidents> <z> <class>": the z-score has two decimals (or is "–" when suppressed)
TOP_ROW = re.compile(r"\s(\S+)\s(?:−?\d+\.\d\d|–)\s(?:Hot spot|Cold spot|Not significant)")


def pdf_text(body: bytes) -> tuple[int, str]:
    import pypdf
    r = pypdf.PdfReader(io.BytesIO(body))
    return len(r.pages), "\n".join(p.extract_text() for p in r.pages)


def top_count_cells(text: str) -> list[str]:
    """The Incidents cell of every top-10 row."""
    return [m.group(1) for m in TOP_ROW.finditer(text)]


def change_count_cells(text: str) -> list[str]:
    """The Before and After cells of every change-table row (the rows after its header, up to the marking)."""
    lines = text.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith("Area Ward Before After Change"))
    except StopIteration:
        return []
    out = []
    for ln in lines[start + 1:]:
        if ln.startswith("OFFICIAL"):
            break
        out += ln.split()[-3:-1]
    return out
