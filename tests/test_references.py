"""Every work the book cites can be found: each bibliography entry has a URL or a DOI, every
{cite} key used in a chapter or page exists, and the front page links the paper, the authors' code
and pytorch-saliency."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pybtex.database import parse_file

ROOT = Path(__file__).resolve().parents[1]
BIB = ROOT / "book" / "references.bib"
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")


def entries():
    return parse_file(str(BIB)).entries


def texts():
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                yield nb.name, "".join(cell["source"])
    for page in sorted((ROOT / "book").glob("*.md")):
        yield page.name, page.read_text()


def test_every_entry_has_a_url_or_doi():
    missing = [k for k, e in entries().items() if not (e.fields.get("url") or e.fields.get("doi"))]
    assert not missing, f"bibliography entries without url or doi: {missing}"


def test_every_cited_key_exists():
    keys = set(entries())
    unknown = [
        f"{name}: {k.strip()}"
        for name, text in texts()
        for m in CITE.finditer(text)
        for k in m.group(1).split(",")
        if k.strip() not in keys
    ]
    assert not unknown, "cited keys missing from book/references.bib:\n" + "\n".join(unknown)


def test_front_page_links_paper_code_and_saliency():
    intro = (ROOT / "book" / "intro.md").read_text()
    for needle in (
        "arxiv.org/abs/1812.00891",
        "usenix.org/conference/usenixsecurity20",
        "github.com/alps-lab/adv2",
        "github.com/PiotrDabkowski/pytorch-saliency",
    ):
        assert needle in intro, f"front page lacks a link to {needle}"
