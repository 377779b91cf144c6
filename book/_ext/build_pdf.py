"""The whole book as one PDF, built offline: `python book/_ext/build_pdf.py` from the repository root.

1. Jupyter Book's single-page HTML builder renders every chapter into _build/singlehtml/index.html
   (the executed notebooks in book/notebooks, as `make html` does);
2. Debian's headless Chromium prints that page to _build/book.pdf;
3. the PDF is copied to _build/html/book/book.pdf, where the front page's link points (it also
   survives later `make html` runs: book/_ext/pdf_link.py copies it again after each HTML build).

On paper a folded drop-down cannot be opened, so the page Chromium prints moves the exercises'
worked solutions into an appendix at the end (:func:`solutions_to_appendix`): each exercise stays in
its chapter, numbered (Exercise 7.1) and followed by a link to its solution (Solution 7.1) in the
appendix, which links back. The HTML pages keep their drop-downs.

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
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-pdf-header-footer",
    "--virtual-time-budget=20000",
    "--run-all-compositor-stages-before-draw",
    # bookmarks from the headings (page numbers: _static/adv2.css's @page footer)
    "--generate-pdf-document-outline",
]


SOLUTION, EXERCISE = "Solution", "Exercise"  # the admonitions' titles (adv2.book.student's convention)
APPENDIX_ID = "appendix-solutions"
APPENDIX_TITLE = "Appendix: solutions to the exercises"


def _title(div) -> str:
    title = div.find(class_="admonition-title")
    return title.get_text(" ", strip=True) if title is not None else ""


def _heading_text(h) -> str:
    """A heading's text without its permalink ("#")."""
    return " ".join(
        s.strip()
        for s in h.find_all(string=True)
        if not s.find_parent("a", class_="headerlink") and s.strip()
    )


def solutions_to_appendix(html: str) -> str:
    """The single-page book with every Solution admonition moved to an appendix at its end.

    A solution belongs to the chapter whose heading (the nearest ``h2`` before it; "7. ..." gives
    number 7) precedes it and is numbered within it; the exercise before it gets the same number, an
    id and a link to the solution; the solution, no longer a drop-down, links back. The appendix has
    one heading per chapter, so the PDF's outline lists it. A page without solutions is returned as
    it is."""
    from bs4 import BeautifulSoup  # jupyter-book's theme depends on it; only the PDF build needs it

    soup = BeautifulSoup(html, "html.parser")
    solutions = [
        d
        for d in soup.find_all("div", class_="admonition")
        if "dropdown" in d.get("class", []) and _title(d) == SOLUTION
    ]
    if not solutions:
        return html
    article = soup.find("article") or soup.body or soup
    host = article.find("section", recursive=False) or article
    appendix = soup.new_tag("section", id=APPENDIX_ID, style="break-before: page")
    heading = soup.new_tag("h2")
    heading.string = APPENDIX_TITLE
    appendix.append(heading)
    chapters: dict[str, tuple[str, list]] = {}  # number -> (chapter heading, its solutions)
    for sol in solutions:
        h2 = sol.find_previous("h2")
        chapter = _heading_text(h2) if h2 is not None else "The book"
        m = re.match(r"(\d+)\.\s", chapter)
        number = m.group(1) if m else str(len(chapters) + 1)
        chapters.setdefault(number, (chapter, []))[1].append(sol)
    for number, (chapter, sols) in chapters.items():
        section = soup.new_tag("section", id=f"solutions-{number}")
        h3 = soup.new_tag("h3")
        h3.string = chapter if chapter[:1].isdigit() else f"{number}. {chapter}"
        section.append(h3)
        for k, sol in enumerate(sols, 1):
            label = f"{number}.{k}"
            exercise = sol.find_previous_sibling("div", class_="admonition")
            if exercise is not None and _title(exercise) == EXERCISE:
                exercise["id"] = f"exercise-{number}-{k}"
                exercise.find(class_="admonition-title").string = f"{EXERCISE} {label}"
            ref = soup.new_tag("p", attrs={"class": "solution-ref"})
            link = soup.new_tag("a", href=f"#solution-{number}-{k}")
            link.string = f"{SOLUTION} {label}: in the appendix at the end of the book"
            ref.append(link)
            sol.replace_with(ref)
            sol["class"] = [c for c in sol.get("class", []) if c not in ("dropdown", "toggle-hidden")] + [
                "solution"
            ]
            sol["id"] = f"solution-{number}-{k}"
            title = sol.find(class_="admonition-title")
            title.clear()
            title.append(f"{SOLUTION} {label} ")
            if exercise is not None and exercise.get("id"):
                back = soup.new_tag("a", href=f"#{exercise['id']}")
                back.string = "(the exercise)"
                title.append(back)
            section.append(sol)
        appendix.append(section)
    host.append(appendix)
    return str(soup)


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
    subprocess.run(
        [
            args.jupyter_book,
            "build",
            str(ROOT),
            "--builder",
            "singlehtml",
            "--warningiserror",
            "--keep-going",
            "--quiet",
        ],
        check=True,
        cwd=ROOT,
    )
    page = single_page(ROOT / "_build" / "singlehtml")
    if not page.is_file():
        sys.exit(f"build_pdf: the single-page build did not produce {page}")
    # The single page links its assets (_static/, _images/) relative to the build's root, while
    # Sphinx writes it below book/: print a copy placed at the root so styles, figures and MathJax load.
    folder = ROOT / "_build" / "singlehtml"
    printable = folder / "print.html" if page.parent != folder else page
    # one copy to print, the exercises' solutions moved to an appendix (written even when it is the
    # page itself: the single-page build is only ever printed)
    printable.write_text(solutions_to_appendix(page.read_text()))
    page = printable
    args.output.parent.mkdir(parents=True, exist_ok=True)
    profile = ROOT / "_build" / ".chromium-pdf-profile"
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--print-to-pdf={args.output.resolve()}",
            page.as_uri(),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
        timeout=600,
    )
    if not args.output.is_file() or args.output.read_bytes()[:5] != b"%PDF-":
        sys.exit(f"build_pdf: Chromium did not write a PDF to {args.output}")
    html_copy = ROOT / "_build" / "html" / "book" / "book.pdf"
    if html_copy.parent.is_dir():
        shutil.copyfile(args.output, html_copy)
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KiB)")
    return args.output


if __name__ == "__main__":
    main()
