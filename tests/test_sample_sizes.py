"""book/_ext/sample_sizes.py: the re-running page's sample sizes and half-widths come from the
profiles and the published results, and every substitution the page uses exists."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from adv2.chapters import schema

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import sample_sizes  # noqa: E402


def test_profile_sizes_follow_the_profiles_and_schema_defaults():
    for profile in sample_sizes.PROFILES:
        p3 = schema.profile_values("03_adv2", profile)
        sizes = sample_sizes.profile_sizes(profile)
        assert sizes[f"n_{profile}_03"].split()[0] == str(p3["n_images"])
        p6 = schema.profile_values("06_table10", profile)
        assert sizes[f"n_{profile}_06"].split()[0] == str(p6["n_images"])


def test_fewer_than_eight_images_is_an_illustration():
    assert sample_sizes.images(7) == "7 (illustration)"
    assert sample_sizes.images(8) == "8"
    cells = sample_sizes.interval_cells("k", {"value": 0.7, "low": 0.6, "high": 0.8, "n": 2})
    assert cells["nk"] == "2 (illustration)" and cells["xk"] == "illustration only"
    cells = sample_sizes.interval_cells("k", {"value": 1.05, "low": 0.9, "high": 1.2, "n": 32})
    assert cells == {"rk": "1.05 [0.900, 1.20]", "hwk": "0.150", "nk": "32", "xk": "no"}
    assert sample_sizes.interval_cells("k", None)["hwk"] == sample_sizes.NOT_IN_RUN


def test_every_substitution_of_the_page_is_defined():
    page = (ROOT / "book" / "rerunning.md").read_text()
    section = page[page.index("## Sample sizes") :]
    section = section[: section.index("\n## ", 1)]
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", section))
    assert used and used <= set(sample_sizes.substitutions()), sorted(
        used - set(sample_sizes.substitutions())
    )
