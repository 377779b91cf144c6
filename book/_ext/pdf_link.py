"""Keep the front page's link to the whole-book PDF working: the link ({{ pdf_link }}) is written
only when _build/book.pdf exists (made by `make pdf`, `python book/_ext/build_pdf.py`), else the
page says how to make it; after an HTML build the PDF is copied next to the front page. So `make
html` never leaves a dead link (issue 26 item 5)."""

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


def link_text() -> str:
    if PDF.is_file():
        return '<a href="book.pdf">book.pdf</a>'
    return "not built in this copy of the site (`make pdf` writes `_build/book.pdf` and links it here)"


def add_substitution(app, config) -> None:
    config.myst_substitutions = {"pdf_link": link_text(), **(config.myst_substitutions or {})}


def setup(app):
    app.connect("config-inited", add_substitution, priority=900)
    app.connect("build-finished", copy_pdf)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
