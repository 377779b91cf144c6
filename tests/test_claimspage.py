"""The front page's claims table: one column per setting, filled from the results files'
``verdicts`` blocks by the claims layer, "—" where a setting was not run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adv2.book import claimspage
from adv2.chapters import claim_rules, claims
from adv2.core.formatting import MISSING, fmt


def _write(folder, stem, verdicts):
    blocks = {s: {cid: v.as_dict() for cid, v in by.items()} for s, by in verdicts.items()}
    (folder / f"{stem}.json").write_text(json.dumps({"notebook": stem, "numbers": {"verdicts": blocks}}))


def _success(n_ok_adv2, n_ok_pgd, n=20):
    return np.arange(n) < n_ok_adv2, np.arange(n) < n_ok_pgd


@pytest.fixture
def results(tmp_path):
    rng = np.random.default_rng(0)
    a, p = _success(20, 20)
    holds = claim_rules.adv2_success_like_pgd(*_success(80, 80, n=80))  # [-0.046, 0.046]: holds
    none = claim_rules.adv2_success_like_pgd(*_success(0, 0))  # 0 % success
    tiny = claim_rules.adv2_success_like_pgd(*_success(2, 2, n=2))  # an illustration
    maps = claim_rules.adv2_maps_closer_than_pgd(0.05 + 0.01 * rng.random(20), 0.4 + 0.1 * rng.random(20), a)
    _write(
        tmp_path,
        "03_adv2",
        {
            "resnet": {"adv2_success_like_pgd": holds, "adv2_maps_closer_than_pgd": maps},
            "densenet": {"adv2_success_like_pgd": none},
            "photos": {"adv2_success_like_pgd": tiny},
        },
    )
    benign = claim_rules.rtsa_like_rts_on_benign(0.01 + 0.005 * rng.random(20))
    _write(tmp_path, "04_aid_defense", {"resnet": {"rtsa_like_rts_on_benign": benign}})
    (tmp_path / "05_noise_sensitivity.json").write_text("{broken")  # unreadable: contributes nothing
    (tmp_path / "timings-smoke.json").write_text(json.dumps({"seconds": {}}))
    return tmp_path, holds, benign


def test_verdicts_are_read_back_per_setting(results):
    folder, holds, benign = results
    v = claimspage.verdicts_from_results(folder)
    assert set(v) == {"resnet", "densenet", "photos"}
    assert v["resnet"]["adv2_success_like_pgd"] == holds
    assert v["resnet"]["rtsa_like_rts_on_benign"].status == benign.status
    assert v["densenet"]["adv2_success_like_pgd"].status == claims.NOT_MEASURABLE


def test_table_fills_all_three_columns_and_dashes_what_was_not_run(results):
    folder, holds, _ = results
    text = claimspage.render_claims_table(folder)
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| claim of the paper"))
    lines = [ln for ln in lines[start:] if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[4:7] == ["photos (EfficientNet-Lite0)", "Fashion-MNIST ResNet", "Fashion-MNIST DenseNet"]
    rows = {r[0]: r for r in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:])}
    success = rows[claims.CLAIMS["adv2_success_like_pgd"].statement]
    assert success[2] == "ADV2 success rate - PGD success rate ≥ -0.15"  # the threshold beside the verdict
    assert success[4] == "not measurable"  # photos: 2 images, an illustration
    assert success[5] == claimspage.status_cell(holds) and success[5].startswith("holds: ")
    assert success[6] == "not measurable"  # 0 % success: nothing to compare
    noise = rows[claims.CLAIMS["rtsa_more_noise_sensitive"].statement]
    assert noise[4:7] == ["—", "—", "—"]  # chapter 5's file was unreadable
    aid = rows[claims.CLAIMS["rtsa_like_rts_on_benign"].statement]
    assert aid[4] == "—" and aid[5].startswith("holds") and aid[6] == "—"
    assert "nan" not in text and "None" not in text
    assert "fewer than 8 images" in text


def test_write_is_atomic_and_only_publish_calls_it(results, tmp_path):
    import inspect

    from adv2.book import publish, runner

    folder, _, _ = results
    out = claimspage.write_claims_table(folder, tmp_path / "book" / "_claims.md")
    assert out.read_text() == claimspage.render_claims_table(folder)
    assert not list(out.parent.glob(".*.tmp"))
    assert "write_claims_table" in inspect.getsource(publish.publish)
    assert "write_claims_table" not in inspect.getsource(runner)


def test_photo_verdicts_of_chapters_4_to_6_fill_the_photos_column(tmp_path):
    """Chapters 4-6 join their photo verdicts to their results under ``photos``
    (``_common.add_setting``); the front page shows each in the photos column, computed by the
    claims layer, beside the Fashion-MNIST ones."""
    from adv2.chapters._common import add_setting, verdicts_block

    rng = np.random.default_rng(1)
    fm = {
        "resnet": {
            "rtsa_like_rts_on_benign": claim_rules.rtsa_like_rts_on_benign(0.02 + 0.01 * rng.random(16))
        }
    }
    rts, rtsa = 0.05 + 0.01 * rng.random(12), 0.2 + 0.05 * rng.random(12)
    ok = np.ones(12, bool)
    photo = {
        "photos": {
            "rtsa_like_rts_on_benign": claim_rules.rtsa_like_rts_on_benign(0.2 + 0.01 * rng.random(12)),
            "aid_separates_adv2_maps": claim_rules.aid_separates_adv2_maps(rts, ok, rtsa, ok),
        }
    }
    numbers = add_setting(
        {"resnet": {}, "verdicts": verdicts_block(fm)}, {"photos": {}, "verdicts": verdicts_block(photo)}
    )
    (tmp_path / "06_table10.json").write_text(json.dumps({"notebook": "06_table10", "numbers": numbers}))
    v = claimspage.verdicts_from_results(tmp_path)
    assert v["photos"]["rtsa_like_rts_on_benign"].status == claims.DOES_NOT_HOLD
    assert v["photos"]["aid_separates_adv2_maps"] == photo["photos"]["aid_separates_adv2_maps"]
    assert v["resnet"]["rtsa_like_rts_on_benign"].status == claims.HOLDS
    rows = claimspage.claims_table(v, results_dir=tmp_path)
    headers = claimspage.claims_table_headers()
    col = headers.index(claims.SETTINGS["photos"])
    by_claim = {r[0]: r for r in rows}
    cell = by_claim[claims.CLAIMS["aid_separates_adv2_maps"].statement][col]
    assert cell == claimspage.status_cell(photo["photos"]["aid_separates_adv2_maps"])
    assert by_claim[claims.CLAIMS["rtsa_more_noise_sensitive"].statement][col] == MISSING


# ----------------------------------------------------------------------------- issue 26 item 1
PUBLISHED = claimspage.PUBLISHED_RESULTS_DIR


def _copy_results(tmp_path):
    import shutil

    out = tmp_path / "results"
    out.mkdir()
    for p in PUBLISHED.glob("*.json"):
        shutil.copy(p, out / p.name)
    return out


def _rows(text, first):
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(first))
    out = []
    for ln in lines[start + 2 :]:
        if not ln.startswith("| "):
            break
        out.append([c.strip() for c in ln.strip("|").split("|")])
    return out


@pytest.mark.skipif(not (PUBLISHED / "03_adv2.json").is_file(), reason="no published chapter 3")
def test_per_interpreter_rows_show_where_a_claim_holds(tmp_path):
    """A claim made for every interpreter gets one row per interpreter: the photos' map claim
    reads "does not hold" as a whole, but its CAM and RTS rows say where it holds; each row's
    cell is that part's own verdict from the results file."""
    folder = _copy_results(tmp_path)
    text = claimspage.render_claims_table(folder)
    rows = _rows(text, "| claim of the paper")
    stmt = claims.CLAIMS["adv2_maps_closer_than_pgd"].statement
    i = next(k for k, r in enumerate(rows) if r[0] == stmt)
    v = claimspage.verdicts_from_results(folder)["photos"]["adv2_maps_closer_than_pgd"]
    parts = dict(v.parts)
    below = {r[0]: r for r in rows[i + 1 : i + 1 + len(parts)]}
    for name, part in parts.items():
        assert below[f"↳ {claimspage.part_label(name)}"][4] == claimspage.status_cell(part)
    holding = [claimspage.part_label(n) for n, p in parts.items() if p.status == claims.HOLDS]
    for label in holding:
        assert label in rows[i][4]
    # the summary says the same, with the threshold
    summary = text.split("| chapter | title")[0]
    assert claims.CLAIMS["adv2_maps_closer_than_pgd"].threshold_text in summary
    line = next(
        ln for ln in summary.splitlines() if claims.CLAIMS["adv2_maps_closer_than_pgd"].statement in ln
    )
    for label in holding:
        assert label in line.split("does not hold")[0]


@pytest.mark.skipif(not (PUBLISHED / "06_table10.json").is_file(), reason="no published chapter 6")
def test_table10_row_puts_an_l1_beside_the_papers_l1(tmp_path):
    """The paper's Table 10 gives ADV2's L1 on RTS; the rule decides on the ratio to PGD. The
    ratio's row no longer carries the paper's L1; a row below shows our L1 (from chapter 6's
    intervals), and changing it in a copy of the results changes the cell."""
    folder = _copy_results(tmp_path)
    text = claimspage.render_claims_table(folder)
    rows = _rows(text, "| claim of the paper")
    header = next(ln for ln in text.splitlines() if ln.startswith("| claim of the paper"))
    resnet = [c.strip() for c in header.strip("|").split("|")].index("Fashion-MNIST ResNet")
    label = claims.CLAIMS["adv2_keeps_rts_maps_close"].beside[0]
    row = next(r for r in rows if r[0] == f"↳ {label}")
    assert "L1 0.01" in label and "ratio" not in row[0]
    data = json.loads((folder / "06_table10.json").read_text())
    est = data["numbers"]["intervals"]["resnet"]["adv2_l1_rts"]
    assert row[resnet].startswith(fmt(est["value"]))
    est["value"], est["low"], est["high"] = 0.0123, 0.011, 0.014
    (folder / "06_table10.json").write_text(json.dumps(data))
    rows = _rows(claimspage.render_claims_table(folder), "| claim of the paper")
    row = next(r for r in rows if r[0] == f"↳ {label}")
    assert row[resnet] == "0.0123 [0.0110, 0.0140]"
    ratio = next(r for r in rows if r[0] == claims.CLAIMS["adv2_keeps_rts_maps_close"].statement)
    assert "L1 0.01" not in ratio[3]


@pytest.mark.skipif(not (PUBLISHED / "03_adv2.json").is_file(), reason="no published chapter 3")
def test_summary_is_computed_from_the_results(tmp_path):
    """Changing a part's verdict in a copy of the results changes the summary's sentence."""
    folder = _copy_results(tmp_path)
    before = claimspage.render_claims_table(folder)
    data = json.loads((folder / "03_adv2.json").read_text())
    grad = data["numbers"]["verdicts"]["resnet"]["adv2_maps_closer_than_pgd"]["parts"]["grad"]
    grad["status"], grad["estimate"]["value"] = claims.HOLDS, 0.321
    (folder / "03_adv2.json").write_text(json.dumps(data))
    after = claimspage.render_claims_table(folder)
    summary = lambda t: t.split("| chapter | title")[0]
    assert summary(before) != summary(after)
    assert "Grad 0.321" in summary(after) and "Grad 0.321" not in summary(before)


def test_a_new_chapter_appears_in_the_chapter_table_and_other_verdicts(results):
    """A chapter 9 with results (a claim on a new setting) shows up without a change to the page."""
    folder, _, _ = results
    rng = np.random.default_rng(2)
    a = np.ones(20, bool)
    v = claim_rules.adv2_maps_closer_than_pgd(0.05 + 0.01 * rng.random(20), 0.4 + 0.1 * rng.random(20), a)
    _write(folder, "09_new_chapter", {"vgg_imagenet": {"adv2_maps_closer_than_pgd": v}})
    text = claimspage.render_claims_table(folder)
    chapters = _rows(text, "| chapter | title")
    assert [r[0] for r in chapters][-1] == "9"
    assert chapters[-1][2] == "1 holds"
    others = _rows(text, "| claim or question")
    assert any(r[1] == "9" and r[2] == "vgg_imagenet" and r[4].startswith("holds") for r in others)


def test_photo_curves_note_reads_the_curves():
    from adv2.book import frontpage

    still = {
        "photos": {
            "schedule": "the fast schedule (...)",
            "curves": {
                "cam": {
                    "pgd": {"step": [0, 3, 6, 9], "l1": [0.4, 0.2, 0.21, 0.21]},
                    "adv2": {"step": [0, 3, 6, 9], "l1": [0.4, 0.2, 0.1, 0.05]},
                }
            },
        }
    }
    note = frontpage.photo_curves_note(still)
    assert "after step 6 of its 9" in note and "still moving" in note and "falling" in note
    flat = json.loads(json.dumps(still))
    flat["photos"]["curves"]["cam"]["adv2"]["l1"] = [0.4, 0.1, 0.05, 0.05]
    note = frontpage.photo_curves_note(flat)
    assert "flattened for CAM from step 6 of 9" in note and "still moving" not in note
    assert frontpage.photo_curves_note({}) == ""


def test_a_lite2_column_appears_only_where_a_results_file_holds_its_verdicts(results):
    """Issue 27: EfficientNet-Lite2's photo verdicts (setting ``photos_lite2``) get their own column
    right after Lite0's photos; without them the page is byte-for-byte what it was."""
    folder, holds, _ = results
    before = claimspage.render_claims_table(folder)
    assert "EfficientNet-Lite2" not in before
    data = json.loads((folder / "03_adv2.json").read_text())
    data["numbers"]["verdicts"]["photos_lite2"] = {"adv2_success_like_pgd": holds.as_dict()}
    (folder / "03_adv2.json").write_text(json.dumps(data))
    assert claims.photo_setting("efficientnet-lite2") == "photos_lite2"
    assert claims.photo_setting("efficientnet-lite0") == "photos"
    assert set(claimspage.verdicts_from_results(folder)) == {"resnet", "densenet", "photos", "photos_lite2"}
    text = claimspage.render_claims_table(folder)
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| claim of the paper"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    assert header[4:8] == [
        "photos (EfficientNet-Lite0)",
        "photos (EfficientNet-Lite2)",
        "Fashion-MNIST ResNet",
        "Fashion-MNIST DenseNet",
    ]
    rows = {r[0]: r for r in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines[start + 1 :])}
    success = rows[claims.CLAIMS["adv2_success_like_pgd"].statement]
    assert success[4] == "not measurable" and success[5] == claimspage.status_cell(holds)
    assert rows[claims.CLAIMS["rtsa_like_rts_on_benign"].statement][5] == "—"
    assert "photos (EfficientNet-Lite2)" in text.split("**The paper's claims**")[0]  # the summary names it
    # not listed again among the other verdicts
    assert not [r for r in claimspage.other_verdicts_table(folder) if "Lite2" in r[2] or "lite2" in r[2]]
    # the Lite2 verdicts removed again: the page is what it was
    del data["numbers"]["verdicts"]["photos_lite2"]
    (folder / "03_adv2.json").write_text(json.dumps(data))
    assert claimspage.render_claims_table(folder) == before
