"""Serve MathJax from the built site instead of a CDN, so the book's formulas render offline.

MathJax 3 comes from the `django-static-mathjax` wheel (plain static files, no Django needed).
Its ES5 bundle is copied to `_static/mathjax/` and Sphinx's `mathjax_path` points there; without
the package the book keeps Sphinx's CDN default and says so in the build log."""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)
TARGET = "mathjax"  # inside _static
ENTRY = "tex-chtml.js"  # TeX input, HTML-CSS output: all the book's math needs
# The ES5 bundle loads these lazily; the rest (speech rules, SVG output, MathML input) is not used.
NEEDED = (ENTRY, "output/chtml", "input/tex", "ui", "a11y", "adaptors", "core.js", "startup.js", "loader.js")


def mathjax_es5_dir() -> Path | None:
    try:
        import mathjax  # the django-static-mathjax package
    except ImportError:
        return None
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    return es5 if (es5 / ENTRY).is_file() else None


def use_local_copy(app, config) -> None:
    if mathjax_es5_dir() is None:
        logger.info("offline_mathjax: django-static-mathjax is not installed; MathJax from the CDN")
        return
    config.mathjax_path = f"{TARGET}/{ENTRY}"


def copy_files(app, exception) -> None:
    es5 = mathjax_es5_dir()
    if exception is not None or es5 is None or app.builder.format != "html":
        return
    dest = Path(app.outdir) / "_static" / TARGET
    for name in NEEDED:
        src = es5 / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        elif src.is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def setup(app):
    app.connect("config-inited", use_local_copy)
    app.connect("build-finished", copy_files)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
