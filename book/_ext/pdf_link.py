"""Keep the front page's link to the whole-book PDF working: after an HTML build, copy
_build/book.pdf (made by `python book/_ext/build_pdf.py`) next to the front page."""
from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PDF = ROOT / "_build" / "book.pdf"


def copy_pdf(app, exception) -> None:
    if exception is None and app.builder.format == "html" and PDF.is_file():
        target = Path(app.outdir) / "book" / "book.pdf"
        if target.parent.is_dir():
            shutil.copyfile(PDF, target)


def setup(app):
    app.connect("build-finished", copy_pdf)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
