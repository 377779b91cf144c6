"""The imagenet profile (chapter 01 only) end to end, on a tiny generated ImageNet-style folder
with random-weight torchvision models saved where torchvision's pretrained files would be."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adv2.book import runner
from adv2.chapters import schema
from adv2.core import config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_target_models.ipynb"
WNIDS = ("n01440764", "n01443537", "n01484850")


def test_profile_claims_chapter_01_only():
    import yaml

    data = yaml.safe_load((config.PARAMS_DIR / "imagenet.yaml").read_text())
    assert set(data) - {"common"} == {"01_target_models"}
    # the other chapters train on Fashion-MNIST and say so (chapter 8 only reads a sweep)
    for stem in [s for s in schema.STEMS[1:] if "dataset" in schema.chapter_schema(s)]:
        with pytest.raises(config.ParameterError, match="'dataset'.*'imagenet'.*'fashion-mnist'"):
            schema.validate_chapter(stem, {"dataset": "imagenet"})


def test_missing_imagenet_dir_fails_before_a_kernel_starts():
    with pytest.raises(config.ParameterError, match="'dataset'.*'imagenet'.*'imagenet_dir'"):
        runner.notebook_parameters(NOTEBOOK, "imagenet", {}, None)
    params = runner.notebook_parameters(NOTEBOOK, "imagenet", {"imagenet_dir": "/data/val"}, None)
    assert params["dataset"] == "imagenet" and params["imagenet_dir"] == "/data/val"


def make_folder(root: Path) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for wnid in WNIDS:
        (root / wnid).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / wnid / f"ILSVRC2012_val_{wnid}_{i}.JPEG")
    return root


def save_random_weights(torch_home: Path) -> None:
    """Random-weight ResNet-50 / DenseNet-169 under the file names of torchvision's IMAGENET1K_V1."""
    import torch
    import torchvision

    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for fn, weights in (
        ("resnet50", torchvision.models.ResNet50_Weights),
        ("densenet169", torchvision.models.DenseNet169_Weights),
    ):
        net = getattr(torchvision.models, fn)(weights=None)
        torch.save(net.state_dict(), checkpoints / weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1])


@pytest.mark.notebook
def test_run_01_with_the_imagenet_profile(tmp_path):
    folder = make_folder(tmp_path / "val")
    save_random_weights(tmp_path / "torch")
    out = tmp_path / "run"
    env = dict(
        os.environ,
        TORCH_HOME=str(tmp_path / "torch"),
        ADV2_STANDIN_WEIGHTS="1",  # random weights under torchvision's names: not its hashes
        ADV2_THREADS=os.environ.get("ADV2_THREADS", "1"),
        PYTHONPATH=os.pathsep.join([str(ROOT / "lib"), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "adv2",
            "run",
            "01",
            "--profile",
            "imagenet",
            "-p",
            "imagenet_dir",
            str(folder),
            "--output-dir",
            str(out),
            "--no-progress",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    saved = json.loads((out / "01_target_models.json").read_text())
    numbers = saved["numbers"]
    assert set(numbers["imagenet"]) == {"resnet50", "densenet169"}
    assert all(0.0 <= acc <= 1.0 for acc in numbers["imagenet"].values())
    assert numbers["fashion_mnist"] == {} and numbers["efficientnet_lite0"] == {}  # skipped
    executed = (out / "01_target_models.ipynb").read_text()
    assert "on 6 sampled validation images" in executed


def _old_style_densenet_keys(state_dict: dict) -> dict:
    """DenseNet's published checkpoints name layers ``norm.1`` (torchvision renames them on load)."""
    import re

    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))((?:[12])\.(?:weight|bias|running_mean|running_var))$"
    )
    return {
        (f"{m.group(1)}.{m.group(2)}" if (m := pattern.match(k)) else k): v for k, v in state_dict.items()
    }


def test_densenet_checkpoint_with_published_key_names_loads(tmp_path, monkeypatch):
    import torch
    import torchvision

    from adv2.trained import pretrained

    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    weights = torchvision.models.DenseNet169_Weights.IMAGENET1K_V1
    state = _old_style_densenet_keys(torchvision.models.densenet169(weights=None).state_dict())
    assert any(".norm.1." in k for k in state)
    torch.save(state, checkpoints / weights.url.rsplit("/", 1)[-1])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("ADV2_STANDIN_WEIGHTS", "1")  # random weights: not torchvision's hash
    pretrained.torchvision_imagenet("densenet", list(WNIDS))
