"""Every chapter notebook's code reads as one call per section: short cells, no machine paths,
no cut labels, no one-row panel strips (the book wraps panels and labels itself)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
CHAPTERS = ROOT / "lib" / "adv2" / "chapters"
EXPERIMENTS = sorted(CHAPTERS.glob("ch0*.py")) + sorted(CHAPTERS.glob("ch0*/*.py"))  # modules and packages
MAX_LINES = 15


def code_cells(path: Path):
    nb = nbformat.read(path, as_version=4)
    return [c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]


def test_every_chapter_notebook_found():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells_are_short(path):
    long = {
        c.id: len(c.source.splitlines()) for c in code_cells(path) if len(c.source.splitlines()) > MAX_LINES
    }
    assert not long, (
        f"{path.name}: code cells over {MAX_LINES} lines (id: lines), move code into adv2.chapters: {long}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_machine_paths_or_raw_reprs_printed(path):
    for c in code_cells(path):
        assert not re.search(r"\.source\b|\{path\}|\{[^}]*_dir\}", c.source), (c.id, c.source)
        # a bare dataclass repr is unreadable: the chapter modules describe configs in words
        assert not re.search(r"print\((\w*cfg|\w*config)\)", c.source), (c.id, c.source)


@pytest.mark.parametrize("path", NOTEBOOKS + EXPERIMENTS, ids=lambda p: p.name)
def test_no_cut_labels_or_one_row_panel_strips(path):
    text = "\n".join(c.source for c in code_cells(path)) if path.suffix == ".ipynb" else path.read_text()
    assert not re.search(r"class_names\[[^\]]*\]\)?\]?\[:\d+\]|\]\[:\d+\]\}", text), (
        f"{path.name}: a label is cut with [:N]; plotting wraps labels"
    )
    assert not re.search(r"subplots\(1,", text), f"{path.name}: use plotting.panel_axes(n, cols=2)"
    assert "tight_layout" not in text, f"{path.name}: panel_axes figures use constrained layout"


@pytest.mark.notebook
def test_every_figure_of_a_cell_sequence_is_shown(tmp_path):
    """After a chapter's setup (``start``), each figure made by adv2.chapters.plotting is displayed, not only
    the first one (an rc_context around the backend's first use switched interactive mode off)."""
    import nbclient

    nb = nbformat.v4.new_notebook()
    setup = "profile, device = 'smoke', 'cpu'\nfrom adv2.chapters import _common\n_common.start('01_target_models', globals())"
    nb.cells = [
        nbformat.v4.new_code_cell(s)
        for s in (
            "\n".join(
                f"{p.name} = {p.default!r}"
                for p in __import__("adv2.chapters.schema").chapters.schema.CHAPTERS["01_target_models"]
                if p.name not in ("profile", "device")
            ),
            setup,
            (
                "from adv2.chapters import plotting\nfig, axes = plotting.panel_axes(2)\n"
                "_ = plotting.curves({'a': ([0, 1], [0, 1])}, 'x', 'y', ax=axes[0])"
            ),
            "fig = plotting.curves({'a': ([0, 1], [1, 0])}, 'x', 'y')",
        )
    ]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    for cell in nb.cells[2:]:
        assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.source
