"""Benchmark: the Wolverhampton briefing pack (issue 13's target: under 5 s), against a named peer.

(a) cold: a new engine state (empty in-memory cache), the whole pack for a viewer: counts from the store,
    Gi* with 9,999 permutations, publish, the three A4 PDF pages; and the slide PNG;
(b) warm: the same once the layers are cached (what the web's "Download briefing (PDF)" does after the
    map has been drawn);
(c) peer: the map page alone drawn the usual way, ``GeoDataFrame.plot(column=..., legend=True)`` of the
    same published Gi* layer plus its ward outlines, saved as a one-page PDF with matplotlib — against
    our map page (drawn with a ``PatchCollection``, plus hatching, north arrow and scale bar).

Run::

    python benchmarks/briefing.py            # three repeats of each
    python benchmarks/briefing.py --quick    # one repeat

Prints numbers; it is not a test.
"""
from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hotspots import briefing, pipeline  # noqa: E402
from hotspots.cache import clear as clear_cache  # noqa: E402
from hotspots.config import load_config  # noqa: E402
from hotspots.request import Audience  # noqa: E402

ARGS = {"category": "violent-crime", "from": "2018-06", "to": "2018-06"}


def setup(workdir: Path):
    """Wolverhampton's bundle installed and its own incidents ingested under ``workdir`` (once)."""
    config = load_config(REPO / "config" / "hotspots.toml", env={}, data_dir=workdir / "data",
                         instance_dir=workdir / "instance", bundle=REPO.parent / "shared" / "data")
    if not (workdir / "instance" / "hotspots.sqlite").exists():
        from hotspots.bundle import install_bundle
        from hotspots.ingest import ingest_paths
        install_bundle(config)
        ingest_paths(config, [REPO.parent / "shared" / "data" / "crime" / "wolverhampton-police-api-2018-06"])
    return config


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def peer_map_pdf(b: briefing.Briefing) -> bytes:
    """The usual geopandas route for the same map: plot the published layer by its class, wards on top."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=briefing.A4)
    f = b.gi.frame
    f.plot(ax=ax, color=f["fill"], edgecolor="white", linewidth=0.25)
    if b.wards is not None:
        b.wards.frame.boundary.plot(ax=ax, color="#222222", linewidth=0.8)
    ax.set_axis_off()
    ax.set_title(b.title)
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf")
    plt.close(fig)
    return buf.getvalue()


def our_map_pdf(b: briefing.Briefing) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    fig = briefing._page_map(b)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workdir", type=Path)
    a = ap.parse_args()
    repeats = 1 if a.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        config = setup(a.workdir or Path(tmp))
        req = pipeline.parse(config, ARGS, "gistar")
        cold, warm, png, ours, peer = [], [], [], [], []
        for _ in range(repeats):
            clear_cache()
            t, pdf = timed(lambda: briefing.briefing_pdf(briefing.compose(config, req, Audience.VIEWER)))
            cold.append(t)
            t, pdf = timed(lambda: briefing.briefing_pdf(briefing.compose(config, req, Audience.VIEWER)))
            warm.append(t)
            b = briefing.compose(config, req, Audience.VIEWER)
            png.append(timed(lambda: briefing.briefing_png(b))[0])
            ours.append(timed(lambda: our_map_pdf(b))[0])
            peer.append(timed(lambda: peer_map_pdf(b))[0])
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        print(f"Wolverhampton briefing, violence 2018-06, viewer, 161 LSOAs ({rev}; median of {repeats})")
        pages = 3 + len(b.time_maps)  # the emerging and trend pages when the period has enough months
        notes = "".join(f"\n      ({n})" for n in b.time_notes)
        print(f"  (a) cold pack (counts + Gi* 9,999 permutations + {pages} PDF pages): {statistics.median(cold):6.2f} s"
              + notes)
        print(f"  (b) warm pack (layers cached):                                  {statistics.median(warm):6.2f} s"
              f"  ({len(pdf) / 1024:.0f} KB)")
        print(f"      slide PNG 1920x1080:                                        {statistics.median(png):6.2f} s")
        print(f"  (c) map page, ours (PatchCollection + hatch + arrow + scale):   {statistics.median(ours):6.2f} s")
        print(f"      map page, peer (GeoDataFrame.plot + boundary.plot):         {statistics.median(peer):6.2f} s")


if __name__ == "__main__":
    main()
