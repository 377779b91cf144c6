"""Reader-facing hygiene of the chapters' prose (issue 12, item 8 and 10): learning goals at the top,
every acronym spelled out in the chapter's "Terms" paragraph, no internal working language, and the
plumbing cells (parameters, imports and validation, saving results, invariants) collapsed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ACRONYMS = [
    "PGD",
    "IoU",
    "CAM",
    "RTS",
    "MASK",
    "AID",
    "RTSA",
    "ADV2",
    "CE",
    "AUC",
    "CNN",
    "IDLS",
    "TV",
    "DNN",
    "GPU",
    "CPU",
    "ISIC",
    "ReLU",
    "Adam",
    "AdamW",
    "BatchNorm",
    "MNIST",
]
INTERNAL = ["method notes", "development run", "parse H1", "parse H2", "TODO", "FIXME"]


def cells(nb: Path) -> list[dict]:
    return json.loads(nb.read_text())["cells"]


def prose(nb: Path) -> str:
    return "\n".join("".join(c["source"]) for c in cells(nb) if c["cell_type"] == "markdown")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_opens_with_learning_goals_and_terms(nb):
    first = "".join(cells(nb)[0]["source"])
    assert first.startswith("# "), "the first cell is the chapter's title"
    assert "{admonition} Learning goals" in first.split("\n\n", 2)[1], "learning goals follow the title"
    terms = first[first.index("**Terms.**") :]
    used = [a for a in ACRONYMS if re.search(rf"(?<![\w-]){re.escape(a)}(?![\w-])", prose(nb))]
    missing = [a for a in used if not re.search(rf"(?<![\w-]){re.escape(a)}(?![\w-])", terms)]
    assert not missing, f"acronyms used but not spelled out under Terms: {missing}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_internal_working_language(nb):
    text = prose(nb).lower()
    found = [w for w in INTERNAL if w.lower() in text]
    assert not found, f"internal working language in the prose: {found}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_plumbing_cells_are_collapsed(nb):
    code = [c for c in cells(nb) if c["cell_type"] == "code"]
    plumbing = [
        c
        for c in code
        if "parameters" in c["metadata"].get("tags", [])
        or "import adv2" in "".join(c["source"])
        or "save_results(" in "".join(c["source"])
        or "".join(c["source"]).startswith("# invariants")
    ]
    assert len(plumbing) >= 4
    shown = [
        "".join(c["source"]).split("\n")[0]
        for c in plumbing
        if "hide-input" not in c["metadata"].get("tags", [])
    ]
    assert not shown, f"plumbing cells shown in full: {shown}"
