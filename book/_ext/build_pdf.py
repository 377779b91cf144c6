"""The whole book as one PDF, built offline: `python book/_ext/build_pdf.py` from the repository root.

1. Jupyter Book's single-page HTML builder renders every chapter into _build/singlehtml/index.html
   (the executed notebooks in book/notebooks, as `make html` does);
2. Debian's headless Chromium prints that page to _build/book.pdf;
3. the PDF is copied to _build/html/book/book.pdf, where the front page's link points (it also
   survives later `make html` runs: book/_ext/pdf_link.py copies it again after each HTML build).

Options: --output PATH (default _build/book.pdf), --jupyter-book PATH, --chromium PATH.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-pdf-header-footer", "--virtual-time-budget=20000",
                  "--run-all-compositor-stages-before-draw",
                  # bookmarks from the headings (page numbers: _static/adv2.css's @page footer)
                  "--generate-pdf-document-outline"]


def find_chromium(given: str | None) -> str:
    path = given or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        sys.exit("build_pdf: Chromium not found (apt-get install chromium, or pass --chromium PATH)")
    return path


def single_page(folder: Path) -> Path:
    """The page holding the whole book: index.html, or the root page it redirects to."""
    index = folder / "index.html"
    if index.is_file():
        m = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"', index.read_text())
        if m:
            return folder / m.group(1)
    return index


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output", type=Path, default=ROOT / "_build" / "book.pdf")
    ap.add_argument("--jupyter-book", default=str(Path(sys.executable).with_name("jupyter-book")))
    ap.add_argument("--chromium", default=None)
    args = ap.parse_args(argv)
    chromium = find_chromium(args.chromium)
    subprocess.run([args.jupyter_book, "build", str(ROOT), "--builder", "singlehtml",
                    "--warningiserror", "--keep-going", "--quiet"], check=True, cwd=ROOT)
    page = single_page(ROOT / "_build" / "singlehtml")
    if not page.is_file():
        sys.exit(f"build_pdf: the single-page build did not produce {page}")
    # The single page links its assets (_static/, _images/) relative to the build's root, while
    # Sphinx writes it below book/: print a copy placed at the root so styles, figures and MathJax load.
    folder = ROOT / "_build" / "singlehtml"
    printable = folder / "print.html" if page.parent != folder else page
    if printable != page:
        printable.write_text(page.read_text())
    page = printable
    args.output.parent.mkdir(parents=True, exist_ok=True)
    profile = ROOT / "_build" / ".chromium-pdf-profile"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                    f"--print-to-pdf={args.output.resolve()}", page.as_uri()],
                   check=True, cwd=ROOT, capture_output=True, timeout=600)
    if not args.output.is_file() or args.output.read_bytes()[:5] != b"%PDF-":
        sys.exit(f"build_pdf: Chromium did not write a PDF to {args.output}")
    html_copy = ROOT / "_build" / "html" / "book" / "book.pdf"
    if html_copy.parent.is_dir():
        shutil.copyfile(args.output, html_copy)
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KiB)")
    return args.output


if __name__ == "__main__":
    main()
