"""The front page's claims table: one column per setting, filled from the results files'
``verdicts`` blocks by the claims layer, "—" where a setting was not run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adv2.book import claimspage
from adv2.chapters import claim_rules, claims
from adv2.core.formatting import MISSING


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
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[3:] == ["photos (EfficientNet-Lite0)", "Fashion-MNIST ResNet", "Fashion-MNIST DenseNet"]
    rows = {r[0]: r for r in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:])}
    success = rows[claims.CLAIMS["adv2_success_like_pgd"].statement]
    assert success[3] == "not measurable"  # photos: 2 images, an illustration
    assert success[4] == holds.cell() and success[4].startswith("holds (")
    assert success[5] == "not measurable"  # 0 % success: nothing to compare
    noise = rows[claims.CLAIMS["rtsa_more_noise_sensitive"].statement]
    assert noise[3:] == ["—", "—", "—"]  # chapter 5's file was unreadable
    aid = rows[claims.CLAIMS["rtsa_like_rts_on_benign"].statement]
    assert aid[3] == "—" and aid[4].startswith("holds") and aid[5] == "—"
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
    rows = claimspage.claims_table(v)
    headers = claimspage.claims_table_headers()
    col = headers.index(claims.SETTINGS["photos"])
    by_claim = {r[0]: r for r in rows}
    cell = by_claim[claims.CLAIMS["aid_separates_adv2_maps"].statement][col]
    assert cell == photo["photos"]["aid_separates_adv2_maps"].cell()
    assert by_claim[claims.CLAIMS["rtsa_more_noise_sensitive"].statement][col] == MISSING
