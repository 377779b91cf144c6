"""Chapter 6's protocol (adv2.experiments.ch06): ADV2 against a stand-in RTS and RTSA on a tiny linear
classifier, end to end, and the claim rules on hand-made Table 10 numbers."""
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from adv2 import attacks, defenses, results
from adv2.experiments import ch06
from torch import nn

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_table10.ipynb"
EPSILON = 0.1


def glue_keys_in_markdown(notebook: Path) -> set[str]:
    cells = json.loads(notebook.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return set(re.findall(r"\{glue(?::\w+)?\}`([^`]+)`", text))


class FakeRTS(nn.Module):
    """RTS's interface: ``rts(x, classes, confidence).mask`` (14x14, in [0, 1]) and its encoder's logits."""

    map_size = 14

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 10, 3, padding=1)
        self.enc = nn.Linear(28 * 28, 10)

    def forward(self, x, classes, confidence=0.0):
        m = torch.sigmoid(F.avg_pool2d(self.conv(x), 2))
        return SimpleNamespace(mask=m.gather(1, classes.view(-1, 1, 1, 1).expand(-1, 1, 14, 14)))

    def encoder_logits(self, x):
        return self.enc(x.flatten(1))


@pytest.fixture(scope="module")
def chapter():
    cache = {}

    def run(archs):
        key = tuple(archs)
        if key not in cache:
            torch.manual_seed(0)
            model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
            nets = {a: SimpleNamespace(model=model, rts=FakeRTS(1), rtsa=FakeRTS(2)) for a in archs}
            g = torch.Generator().manual_seed(0)
            x = torch.rand(200, 1, 28, 28, generator=g)
            y = model(x).argmax(1)
            cfg = attacks.default_config("rts", epsilon=EPSILON, step_size=0.02, stage1_steps=3, stage2_steps=3)
            cache[key] = ch06.attack(nets, x, y, n_images=6, num_classes=10, seed=0, attack_cfg=cfg,
                                     restrict_to_success=True)
        return cache[key]
    return run


@pytest.mark.parametrize("archs", [["densenet"], ["resnet"]])
def test_glue_covers_every_key_the_chapter_reads(chapter, archs):
    glued = chapter(archs).glue()
    wanted = glue_keys_in_markdown(NOTEBOOK)
    assert wanted, "no {glue} references found in the chapter's markdown"
    assert wanted <= set(glued), sorted(wanted - set(glued))
    other = ({"resnet", "densenet"} - set(archs)).pop()
    assert glued[f"ch6_{other}_adv2_l1_rts"] == "not run"
    assert glued[f"ch6_{other}_verdict_ratio"] == "not run"
    for name, value in glued.items():
        assert value is not None and not (isinstance(value, float) and math.isnan(value)), name


def test_numbers_per_image_and_check(chapter):
    result = chapter(["resnet"])
    n = result.numbers()
    assert set(n) == {"resnet", "paper", "attack"}
    assert set(defenses.TABLE10_KEYS) <= set(n["resnet"])
    assert set(n["resnet"]["seconds"]) == {"stage1", "rts", "rtsa"}
    assert n["paper"] == defenses.PAPER_TABLE10 and n["attack"]["stage2_steps"] == 3
    pi = result.per_image["resnet"]
    assert len(pi["adv2_l1_rts"]) == n["resnet"]["n_images"] == 6
    assert float(pi["benign_l1_rts_vs_rtsa"].mean()) == pytest.approx(n["resnet"]["benign_l1_rts_vs_rtsa"])
    assert float(pi["pgd_l1_rtsa"].mean()) == pytest.approx(n["resnet"]["pgd_l1_rtsa"])
    ok = pi["success_rts"]
    if ok.any():
        assert float(pi["adv2_l1_rts"][ok].mean()) == pytest.approx(n["resnet"]["adv2_l1_rts"])
    json.dumps(results._plain(n))
    ch06.check(result, epsilon=EPSILON)
    with pytest.raises(AssertionError, match=r"beyond the budget epsilon = 0.001"):
        ch06.check(result, epsilon=0.001)


def test_tables_and_figure_have_no_nan_or_none(chapter):
    result = chapter(["densenet"])
    text = ch06.table10_table(result) + ch06.transfer_table(result)
    assert "nan" not in text and "None" not in text
    cells, labels, fa = ch06.figure16_cells(result, [f"class {i}" for i in range(10)], rows=2)
    assert fa == "densenet" and len(cells) == len(labels) == 2 and len(cells[0]) == 7
    assert "ε = 0.1" in ch06.describe_attack(attacks.default_config("rts", epsilon=0.1))


def numbers(**kw):
    base = {"benign_l1_rts_vs_rtsa": 0.03, "adv2_l1_rts": 0.01, "adv2_l1_rtsa": 0.10, "adv2_l1_ratio": 10.0,
            "pgd_l1_rts": 0.1}
    return {**base, **kw}


def verdicts_of(m):
    res = ch06.Ch06Result.__new__(ch06.Ch06Result)
    res.archs, res.out = ["resnet"], {"resnet": {"numbers": m}}
    return ch06.verdicts(res)


def test_verdict_rules():
    v = verdicts_of(numbers())
    assert v["resnet_verdict_benign"] == v["resnet_verdict_adv2_rts"] == v["resnet_verdict_ratio"] == "holds"
    assert v["densenet_verdict_benign"] == "not run"
    v = verdicts_of(numbers(benign_l1_rts_vs_rtsa=0.06, adv2_l1_rts=0.06, adv2_l1_ratio=4.9))
    assert {v[f"resnet_verdict_{k}"] for k in ("benign", "adv2_rts", "ratio")} == {"does not hold"}
    v = verdicts_of(numbers(adv2_l1_ratio=float("nan"), pgd_l1_rts=float("nan")))
    assert v["resnet_verdict_ratio"] == v["resnet_verdict_adv2_rts"] == "n/a"


def test_notebook_cells_after_model_loading_are_short():
    """After the cell that loads ``nets``, each code cell is one call per section: at most 15 lines."""
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    loading = [i for i, c in enumerate(cells) if re.search(r"^nets\b[^=]*=", "".join(c["source"]), re.M)]
    assert loading, "no code cell assigns nets"
    long = {i: len("".join(c["source"]).splitlines()) for i, c in enumerate(cells)
            if i > loading[-1] and len("".join(c["source"]).splitlines()) > 15}
    assert not long, f"code cells over 15 lines (index: lines): {long}"
