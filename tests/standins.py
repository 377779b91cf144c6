"""Small stand-ins shared by the chapter-protocol tests (tests/test_experiments_ch0N.py)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def load_script(path: Path | str, name: str | None = None):
    """A script that is not part of the package (benchmarks/*.py, book/_ext/*.py) as a module,
    registered under ``name`` (default: the file's stem) so its dataclasses resolve."""
    path = REPO / path if not Path(path).is_absolute() else Path(path)
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def naive_pgd(model, x0, t, eps, alpha, steps, x=None):
    """Targeted sign-PGD written out plainly (summed CE, from ``x`` or ``x0``): the reference the
    library's PGD must equal bit for bit."""
    x = x0.clone() if x is None else x.clone()
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x), t, reduction="sum")
        (g,) = torch.autograd.grad(loss, x)
        x = torch.minimum(torch.maximum(x.detach() - alpha * g.sign(), x0 - eps), x0 + eps).clamp(0, 1)
    return x


def glue_keys_in_markdown(notebook: Path) -> set[str]:
    """Every name a markdown cell of ``notebook`` reads with ``{glue...}`name```."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return set(re.findall(r"\{glue(?::\w+)?\}`([^`]+)`", text))


def solution_code(notebook: Path) -> list[str]:
    """The Python blocks of ``notebook``'s worked solutions (its Solution admonitions, as
    :mod:`adv2.book.student` finds them), in order: a test runs them on a stand-in chapter."""
    from adv2.book import student  # the one parser of the exercise convention

    nb = json.loads(Path(notebook).read_text())
    blocks = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for solution in student.split_solutions("".join(cell["source"]))[1]:
                blocks += re.findall(r"^```python\n(.*?)^```\s*$", solution, re.S | re.M)
    return blocks


class FakeRTS(nn.Module):
    """RTS's interface: ``rts(x, classes, confidence).mask`` (14x14, in [0, 1]) and its encoder's
    logits, in a few weights."""

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


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str):
    """A tmpfs of ``size`` (e.g. "1m") mounted at ``folder`` for disk-full tests; skips the test
    where mounting is not allowed (needs root and mount rights)."""
    import pytest

    folder.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"cannot mount a tmpfs here: {err}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False, timeout=30)


class PlainSmoothReLU(torch.nn.Module):
    """The straightforward reference: autograd through smooth_relu_slope's ops."""

    def __init__(self, cap=None):
        super().__init__()
        self.cap = cap

    def forward(self, z):
        class Fn(torch.autograd.Function):
            @staticmethod
            def forward(ctx, z):
                ctx.save_for_backward(z)
                out = z.clamp(min=0)
                return out if self.cap is None else out.clamp(max=self.cap)

            @staticmethod
            def backward(ctx, g):
                (z,) = ctx.saved_tensors
                from adv2.core.smooth_relu import smooth_relu_slope

                return g * smooth_relu_slope(z, 1e-4, self.cap)

        return Fn.apply(z)


def plain_smooth_copy(model):
    """A smooth-ReLU copy written the obvious way (autograd through every op): the reference
    for adv2.core.models.smooth_backward_copy's fused backward."""
    import copy

    ref = copy.deepcopy(model)

    def swap(parent):
        for name, child in parent.named_children():
            if isinstance(child, torch.nn.ReLU6):
                setattr(parent, name, PlainSmoothReLU(6.0))
            elif isinstance(child, torch.nn.ReLU):
                setattr(parent, name, PlainSmoothReLU())
            else:
                swap(child)

    swap(ref)
    return ref
