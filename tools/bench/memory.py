"""Peak memory of the extract stage on the largest documents its limits allow.

Two documents at the limits of :mod:`conveyor.processors.limits`, built from a demo-corpus scan:
a single image page of just under ``MAX_PIXELS`` (the scan tiled on a canvas) and a scanned PDF of
``MAX_PAGES`` image-only pages (every page OCR-ed). Each is extracted by
:func:`~conveyor.processors.extract.extract_bytes` in a fresh process (models loaded as in the
stage) and its peak resident set size (``VmHWM``) reported, against the 1.5 GB (1,430 MiB) target.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

TARGET_MIB = 1.5e9 / 2**20
"""The target: extract under 1.5 GB (decimal) = 1,430.5 MiB."""

_CHILD = """
import json, os, sys, time
from pathlib import Path
from conveyor.processors.extract import extract_bytes
from conveyor.tools.bench.cpu import status_mib
path = Path(sys.argv[1])
t = time.perf_counter()
out = extract_bytes(path.read_bytes(), path.name)
dt = time.perf_counter() - t
print(json.dumps({"pages": len(out.get("pages") or []), "chars": len(out.get("text") or ""),
                  "seconds": round(dt, 1), "peak_rss_mib": status_mib(os.getpid(), "VmHWM")}))
"""


def build_documents(scan: Path, out_dir: Path) -> list[Path]:
    """The two limit documents, written to ``out_dir``: ``largest-image.png`` and
    ``largest-scanned.pdf``.

    Raises:
        OSError: ``scan`` cannot be read or ``out_dir`` written.
    """
    from PIL import Image

    from conveyor.processors.limits import MAX_PAGES, MAX_PIXELS

    page = Image.open(scan).convert("RGB")
    side = int((MAX_PIXELS * 0.99) ** 0.5)  # a square canvas just under the pixel limit
    canvas = Image.new("RGB", (side, side), "white")
    for y in range(0, side, page.height):
        for x in range(0, side, page.width):
            canvas.paste(page, (x, y))
    out_dir.mkdir(parents=True, exist_ok=True)
    image = out_dir / "largest-image.png"
    canvas.save(image)
    pdf = out_dir / "largest-scanned.pdf"
    buf = io.BytesIO()
    page.save(buf, "JPEG", quality=85)
    pages = [Image.open(io.BytesIO(buf.getvalue())) for _ in range(MAX_PAGES)]
    pages[0].save(pdf, "PDF", resolution=300.0, save_all=True, append_images=pages[1:])
    return [image, pdf]


def extract_peak_rss(documents: list[Path]) -> list[dict]:
    """For each document: pages, characters, seconds and peak RSS (MiB) of a fresh process that
    extracts it, and whether that is under :data:`TARGET_MIB`.

    Raises:
        subprocess.CalledProcessError: the extraction failed.
    """
    out = []
    for doc in documents:
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", _CHILD, str(doc)], check=True, capture_output=True, text=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        out.append({"document": doc.name, "size_bytes": doc.stat().st_size, **row,
                    "process_seconds": round(time.perf_counter() - t, 1),
                    "target_mib": round(TARGET_MIB, 1), "met": row["peak_rss_mib"] <= TARGET_MIB})
    return out
