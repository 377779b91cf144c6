"""Every number in the prose comes from the run or is the paper's own.

Scans every markdown cell of notebooks/*.ipynb and every page book/*.md for result-like numbers
(decimals, percentages, durations, counts of images) written as plain text. Numbers are fine inside
a glue role (computed by the run), math, code, a citation, a link target, a heading's number, a
Markdown table column headed "paper" (the paper's values beside ours), or the explicit allow-list
below (the paper's or its sources' own numbers, and facts of the data and recipes that are inputs,
each with the reason it is not a measurement of this run)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_PAGES = {"_run_info.md", "_claims.md"}  # generated at publish time from the run itself

# (file name, number as written, why it may stand as text). Keep it short: a number that describes
# this run's outcome belongs in a glue role, not here.
ALLOWED = {
    # the paper's own numbers, cited as such
    ("*", "0.031"): "the paper's attack budget, epsilon = 8/255",
    ("*", "0.03"): "the paper's Table 10 'Benign' entry (and Figure 15's table)",
    ("06_table10.ipynb", "0.01"): "the paper's Table 10, ADV2 on RTS",
    ("06_table10.ipynb", "0.10"): "the paper's Table 10, ADV2 on RTSA",
    ("06_table10.ipynb", "0.09"): "the paper's Table 10: 0.10 - 0.01, the numerator of its implied share",
    ("06_table10.ipynb", "0.47"): "the paper's implied share if PGD's L1 on RTSA were 0.20 (0.09 / 0.19)",
    ("06_table10.ipynb", "0.5"): "the threshold of the share claim (an input of the rule)",
    ("05_noise_sensitivity.ipynb", "0.01"): "the paper's Figure 15 table",
    ("05_noise_sensitivity.ipynb", "0.02"): "the paper's Figure 15 table",
    ("05_noise_sensitivity.ipynb", "0.09"): "the paper's Figure 15 table",
    ("05_noise_sensitivity.ipynb", "0.10"): "the paper's Figure 15 table",
    ("05_noise_sensitivity.ipynb", "0.17"): "the paper's Figure 15 table",
    ("*", "0 %"): "a noise level of the paper's Figure 15",
    ("*", "3 %"): "a noise level of the paper's Figure 15",
    ("*", "30 %"): "a noise level of the paper's Figure 15",
    ("*", "0.001"): "the RTS recipe's learning rate (pytorch-saliency)",
    ("02_interpreters.ipynb", "70 %"): "the RTS recipe's share of true-class training examples",
    ("03_adv2.ipynb", "100 images"): "the size of the folds in the authors' code",
    # inputs of the run, not measurements: data, parameter defaults, thresholds of rules and checks
    ("01_target_models.ipynb", "10 000 test images"): "the size of the Fashion-MNIST test split",
    ("*", "0.0125"): "the default sign step (params/*.yaml), the paper's alpha/epsilon ratio at 0.1",
    ("03_adv2.ipynb", "0.062"): "a budget the chapter's budget check tries (twice the paper's)",
    ("03_adv2.ipynb", "0.00392"): "1/255, the paper's step, in an exercise's command",
    ("03_adv2.ipynb", "5 %"): "step_scale 0.05 of the quick profile, as a share of the authors' steps",
    ("03_adv2.ipynb", "10 %"): "the smallest k of the IoU grid (a setting)",
    ("03_adv2.ipynb", "90 %"): "the largest k of the IoU grid (a setting)",
    ("*", "92 %"): "the accuracy the paper profile's check asks for (an input of the check)",
    ("*", "91 %"): "the accuracy the paper profile's check asks for (an input of the check)",
    ("*", "87 %"): "the accuracy the quick profile's check asks for (an input of the check)",
    ("*", "0.05"): "label smoothing of the training recipe; a claim rule's threshold",
    ("*", "0.15"): "the tolerance of the claim rule (an input of the rule)",
    ("05_noise_sensitivity.ipynb", "1.3"): "the threshold of the chapter's claim rule",
    ("*", "0.25"): "a parameter value an exercise asks the reader to try",
    ("*", "0.02"): "a parameter value an exercise asks the reader to try",
    ("*", "0.3"): "a parameter value of a recipe or an exercise",
    ("*", "0.1"): "the default budget epsilon (params/*.yaml), a recipe weight",
    ("*", "1.5"): "MASK's blur sigma at 28 pixels (a setting, not a result)",
    ("*", "95 %"): "the level of every interval (a setting of the claims layer)",
    ("performance.md", "5 %"): "issue 13's acceptance rule for the fast schedule (an input of the rule)",
    ("performance.md", "0.9"): "the fast schedule's stage-1 stopping threshold (a setting)",
    # identifiers, not quantities
    ("intro.md", "1812.00891"): "the paper's arXiv identifier",
    ("*", "4.0"): "the version of the CC BY licence",
    # owned by the runner helper (issue 12 item 11): the measured figure must be stated with its run
    ("rerunning.md", "20 minutes"): "the re-running page's duration statement (runner's page)",
}

PATTERNS = [
    re.compile(r"(?<![\w.])\d+(?:[ ,]\d{3})*(?:\.\d+)?\s?%"),  # 15.6 %, 9%
    re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])"),  # 0.63
    re.compile(r"(?<![\w.])\d+(?:[ ,]\d{3})*(?:\.\d+)?\s?(?:s|min|h|seconds|minutes|hours)\b"),
    re.compile(
        r"(?<![\w.])\d+(?:[ ,]\d{3})*\s(?:attacked |test |correctly classified )?"
        r"(?:images|photos)\b(?! of the paper)"
    ),
]

STRIP = [
    re.compile(r"^(`{3,}|~{3,})(?!\{)[^\n]*\n.*?^\1\s*$", re.S | re.M),  # code blocks (not directives)
    re.compile(r"\$\$.*?\$\$", re.S),  # display math
    re.compile(r"\{glue(?::\w+)?\}`[^`]*`"),  # glued values
    re.compile(r"\{(?:cite|numref|ref|doc|eq)(?::\w+)?\}`[^`]*`"),  # roles
    re.compile(r"`[^`\n]+`"),  # inline code
    re.compile(r"(?<![\\\w])\$[^$\n]+\$"),  # inline math
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"^#+\s*\d+(?:\.\d+)*\.?", re.M),  # heading numbers
    re.compile(r"^\s*:[\w-]+:.*$", re.M),  # directive options
    re.compile(r"https?://\S+"),
]


def strip_paper_columns(text: str) -> str:
    """Blank the cells of Markdown table columns headed "paper": the paper's numbers, cited."""
    out, paper_cols = [], None
    for line in text.split("\n"):
        if line.lstrip().startswith("|"):
            cells = line.strip().strip("|").split("|")
            if paper_cols is None:
                paper_cols = {i for i, c in enumerate(cells) if "paper" in c.lower()}
            elif not re.fullmatch(r"[\s|:-]+", line):
                cells = ["" if i in paper_cols else c for i, c in enumerate(cells)]
            out.append("|" + "|".join(cells) + "|")
        else:
            paper_cols = None
            out.append(line)
    return "\n".join(out)


def prose_numbers(text: str) -> list[str]:
    text = strip_paper_columns(text)
    for rx in STRIP:
        text = rx.sub(" ", text)
    found = []
    for rx in PATTERNS:
        found += [" ".join(m.group(0).split()) for m in rx.finditer(text)]
    return found


def allowed(fname: str, number: str) -> bool:
    return any(f in ("*", fname) and normal(num) == normal(number) for f, num in ALLOWED)


def sources():
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "markdown":
                yield nb.name, f"cell {i} ({cell.get('id')})", "".join(cell["source"])
    for page in sorted((ROOT / "book").glob("*.md")):
        if page.name not in SKIP_PAGES:
            yield page.name, "page", page.read_text()


def test_scanner_finds_and_ignores_what_it_should():
    assert prose_numbers("PGD succeeds on 9 % of images at 0.42, in 12 s on 30 images") == [
        "9 %",
        "0.42",
        "12 s",
        "30 images",
    ]
    assert (
        prose_numbers(
            "{glue:text}`ch3_x` % and $\\epsilon = 0.031$ and `-p epsilon 0.016` "
            "{cite:p}`a2020` [x](https://a.b/1.5)"
        )
        == []
    )
    table = "| q | paper | this run |\n|---|---|---|\n| L1 | 0.45 | 0.77 |"
    assert prose_numbers(table) == ["0.77"]


def test_every_number_in_the_prose_is_glued_or_allowed():
    bad = []
    for fname, where, text in sources():
        for number in prose_numbers(text):
            if not allowed(fname, number):
                bad.append(f"{fname} {where}: {number}")
    assert not bad, (
        "numbers written as text (glue them from the run, remove them, or add the "
        "paper's own to ALLOWED with the reason):\n" + "\n".join(bad)
    )


def normal(number: str) -> str:
    return re.sub(r"\s*%", " %", number).strip()


@pytest.mark.parametrize("key", sorted(ALLOWED))
def test_allow_list_entries_are_used(key):
    fname, number = key
    found = {normal(n) for f, _, text in sources() if fname in ("*", f) for n in prose_numbers(text)}
    assert normal(number) in found, f"{key} is allowed but appears nowhere: remove it from ALLOWED"
