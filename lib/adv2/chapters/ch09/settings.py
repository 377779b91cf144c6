"""Chapter 9's settings, set up as chapter 3 attacked them: the classifier, the four
interpreters, chapter 3's inputs (:func:`adv2.chapters.ch09.sources.gather`) and the separate
benign images that set the detector's threshold. One photo setting per photo classifier
(:func:`photo_settings`: ``"photos"`` for EfficientNet-Lite0, ``"photos_lite2"`` for
EfficientNet-Lite2, :func:`adv2.chapters.claims.photo_setting`), one per Fashion-MNIST classifier.

Chapter 9 does not import chapter 3 (chapters stay independent): the notebook hands over chapter 3's
code, and each setting receives it as one :class:`Chapter3Attacks`: the attack configurations
(``cfgs``), the interpreter factory (``make_interpreter``), a function that runs chapter 3's attack
on the interpreters the store lacks (``attack_missing``), and the budget and seed of the store's keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from adv2.chapters import claims
from adv2.chapters._common import PHOTO_BATCH, PHOTOS
from adv2.chapters._compare import pgd_steps
from adv2.chapters.ch09 import sources
from adv2.core import attacks
from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS
from adv2.trained import data, pretrained


@dataclass
class Setting:
    """What :func:`adv2.chapters.ch09.report.run_setting` needs for one setting."""

    name: str
    model: torch.nn.Module
    interpreters: dict[str, Any]
    src: sources.Sources
    calibration_x: torch.Tensor
    class_names: list[str]


@torch.no_grad()
def n_correct_photos(model: torch.nn.Module, photos: data.Dataset, device: Any) -> int:
    """How many labelled photos the classifier gets right (chapter 3's count behind ``n_images=0``)."""
    known = photos.y_test >= 0
    pred = torch.cat(
        [
            model(photos.x_test[i : i + PHOTO_BATCH].to(device)).argmax(1).cpu()
            for i in range(0, len(known), PHOTO_BATCH)
        ]
    )
    return int(((pred == photos.y_test) & known).sum())


def _outside(n_total: int, index: torch.Tensor) -> torch.Tensor:
    keep = torch.ones(n_total, dtype=torch.bool)
    keep[index] = False
    return keep.nonzero().flatten()


@dataclass
class Chapter3Attacks:
    """Chapter 3's attacks of one setting, as the notebook hands them over: its configurations,
    its interpreter factory, the attack it runs on the interpreters the store lacks (it writes the
    store), and the budget and seed the store's keys hold."""

    cfgs: Mapping[str, attacks.AttackConfig]
    make_interpreter: Callable[[str], Any]
    attack_missing: Callable[[list[str]], Any]
    step_scale: float
    mask_iterations: int
    seed: int
    artifacts_dir: str | None

    @classmethod
    def from_params(
        cls,
        p: Mapping[str, Any],
        chapter3: Any,
        cfgs: Any,
        attack_missing: Any,
        model: Any,
        rts_net: Any,
        prefix: str = "",
    ) -> Chapter3Attacks:
        """From the chapter's parameters ``p`` (the photo setting's budget is ``imagenet_``-prefixed)
        and chapter 3's code ``chapter3`` (its ``attacked_interpreter``)."""
        mask_iterations, seed = p[prefix + "mask_iterations"], p["seed"]
        return cls(
            cfgs, make_interpreter=lambda n: chapter3.attacked_interpreter(n, model, rts_net, mask_iterations, seed),
            attack_missing=attack_missing, step_scale=p[prefix + "step_scale"], mask_iterations=mask_iterations,
            seed=seed, artifacts_dir=p["artifacts_dir"],
        )  # fmt: skip

    def inputs(
        self, setting: str, model: torch.nn.Module, rts_net: Any, aset: Any, mask_n_images: int | None = None
    ) -> tuple[sources.Sources, dict[str, Any]]:
        """Chapter 3's inputs on the attack set ``aset`` (read from the store, else attacked) and
        the interpreters, by name."""
        keys = sources.keys(
            setting, self.cfgs, model=model, rts_net=rts_net if "rts" in self.cfgs else None, x=aset.x,
            target=aset.target, n_pgd=pgd_steps(self.step_scale), mask_iterations=self.mask_iterations,
            seed=self.seed, mask_n_images=mask_n_images,
        )  # fmt: skip
        src = sources.gather(setting, keys, aset.index, self.attack_missing, self.artifacts_dir)
        return src, {n: self.make_interpreter(n) for n in self.cfgs}


def photo_setting(
    model: torch.nn.Module,
    rts_net: Any,
    chapter3: Chapter3Attacks,
    *,
    n_images: int,
    device: Any,
    classifier: str = PHOTO_CLASSIFIER,
) -> Setting:
    """The photo classifier ``classifier`` (``model``) on the offline photos at its input side:
    chapter 3's attack set (``n_images`` 0: every photo it gets right, EfficientNet-Lite0 18 and
    -Lite2 20), its inputs, and as calibration every other offline photo (the labelled ones it gets
    wrong or chapter 3 did not attack, and the unlabelled ones: the detector needs no label). The
    setting is named :func:`adv2.chapters.claims.photo_setting` (``photos``, ``photos_lite2``)."""
    name = claims.photo_setting(classifier)
    photos = data.load_imagenet_sample(size=PHOTO_CLASSIFIERS[classifier])
    n_take = n_images or n_correct_photos(model, photos, device)
    aset = data.select_attack_set(
        model, photos.x_test, photos.y_test, n_take, seed=chapter3.seed, num_classes=1000, batch_size=8,
        device=device,
    )  # fmt: skip
    # chapter 3 stores every classifier's photo attacks under the setting PHOTOS: the classifier's
    # weights fingerprint and the attacked photos in the key tell them apart
    src, interps = chapter3.inputs(PHOTOS, model, rts_net, aset)
    src.setting = name
    calibration = photos.x_test[_outside(len(photos.x_test), aset.index)]
    return Setting(name, model, interps, src, calibration, photos.class_names)


def fmnist_setting(
    arch: str,
    model: torch.nn.Module,
    rts_net: Any,
    fmnist: data.Dataset,
    chapter3: Chapter3Attacks,
    *,
    n_images: int,
    mask_n_images: int,
    n_calibration: int,
    device: Any,
    also_correct: Sequence[torch.nn.Module] = (),
) -> Setting:
    """A Fashion-MNIST classifier: chapter 3's attack set and inputs (cut to MASK's first
    ``mask_n_images`` when MASK is in the ensemble), and the first ``n_calibration`` test images
    outside the attack set as calibration. ``also_correct``: the other training seeds'
    classifiers, which chapter 3 also asks to get each attacked image right (issue 27)."""
    aset = data.select_attack_set(
        model, fmnist.x_test, fmnist.y_test, n_images, seed=chapter3.seed, device=device,
        also_correct=also_correct,
    )  # fmt: skip
    src, interps = chapter3.inputs(arch_setting(arch), model, rts_net, aset, mask_n_images)
    src.setting = arch
    calibration = fmnist.x_test[_outside(len(fmnist.x_test), aset.index)[:n_calibration]]
    return Setting(arch, model, interps, src, calibration, list(fmnist.class_names))


def arch_setting(arch: str) -> str:
    """The store's setting name of a Fashion-MNIST classifier (chapter 3 writes it so)."""
    return f"fashion-mnist/{arch}"


# ----------------------------------------------------------------------------- from the notebook
def photo_from_params(
    p: Mapping[str, Any],
    chapter3: Any,
    *,
    device: Any,
    progress: bool,
    classifier: str = PHOTO_CLASSIFIER,
) -> tuple[Setting, attacks.ADV2Config]:
    """The photo setting of ``classifier`` from the chapter's parameters ``p``, with chapter 3's
    code handed over as ``chapter3`` (``photo_configs``, ``attacked_interpreter``, ``photo_rts``,
    ``attack_photos``), and the CAM schedule the adaptive attack runs on."""
    model = pretrained.efficientnet_lite(data.imagenet_class_names(), classifier).to(device)
    rts_net, rts_status = (
        chapter3.photo_rts(device, progress, p["artifacts_dir"], classifier)
        if "rts" in p["interpreters"]
        else (None, "")
    )
    budget = {
        "step_scale": p["imagenet_step_scale"],
        "mask_step_scale": p["imagenet_mask_step_scale"],
        "mask_checkpoints": p["mask_checkpoints"],
        "schedule": p["schedule"],
    }
    cfgs = chapter3.photo_configs(p["interpreters"], **budget)

    def attack_missing(names: list[str]) -> None:  # chapter 3's photo attack: it writes the store
        chapter3.attack_photos(
            interpreters=names, n_images=p["imagenet_n_images"], step_scale=p["imagenet_step_scale"],
            mask_step_scale=p["imagenet_mask_step_scale"], mask_checkpoints=p["mask_checkpoints"],
            mask_iterations=p["imagenet_mask_iterations"], seed=p["seed"], schedule=p["schedule"],
            rts_net=rts_net, rts_status=rts_status, artifacts_dir=p["artifacts_dir"], device=device,
            progress=progress, log=None, classifier=classifier,
        )  # fmt: skip

    handed = Chapter3Attacks.from_params(p, chapter3, cfgs, attack_missing, model, rts_net, "imagenet_")
    setting = photo_setting(
        model, rts_net, handed, n_images=p["imagenet_n_images"], device=device, classifier=classifier
    )
    return setting, chapter3.photo_configs(["cam"], **budget)["cam"]


def adaptive_on(p: Mapping[str, Any], classifier: str) -> bool:
    """Whether the adaptive attacks run on the photos of ``classifier``: ``adaptive`` and
    ``adaptive_classifiers`` names it (EfficientNet-Lite0 alone by default: they are the
    chapter's costliest part)."""
    return bool(p["adaptive"]) and classifier in _names(p["adaptive_classifiers"])


def photo_settings(
    p: Mapping[str, Any], chapter3: Any, *, device: Any, progress: bool
) -> Iterator[tuple[str, Setting, attacks.ADV2Config | None]]:
    """One photo setting per classifier of ``p["photo_classifiers"]``, in order (each built when
    the previous one is done): ``(classifier, setting, cam)`` with the CAM schedule of the
    adaptive attack where :func:`adaptive_on`, else None. Every name is checked before any work."""
    names = _names(p["photo_classifiers"])
    for c in names:
        claims.photo_setting(c)  # an unknown classifier: ValueError naming the valid ones, now
    for c in names:
        setting, cam = photo_from_params(p, chapter3, device=device, progress=progress, classifier=c)
        yield c, setting, (cam if adaptive_on(p, c) else None)


def _names(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def fmnist_from_params(
    p: Mapping[str, Any],
    arch: str,
    classifiers: Mapping[str, Any],
    accuracy: Mapping[str, float],
    rts_nets: Mapping[str, Any],
    fmnist: data.Dataset,
    chapter3: Any,
    *,
    device: Any,
    progress: bool,
    also_correct: Sequence[torch.nn.Module] = (),
) -> tuple[Setting, attacks.ADV2Config]:
    """A Fashion-MNIST setting from the chapter's parameters, with chapter 3's code handed over as
    ``chapter3`` (``fmnist_configs``, ``attacked_interpreter``, ``attack_fmnist``), and the CAM
    schedule the adaptive attack runs on; ``also_correct`` as :func:`fmnist_setting`'s."""
    budget = {
        "epsilon": p["epsilon"],
        "step_size": p["step_size"],
        "step_scale": p["step_scale"],
        "mask_step_scale": p["mask_step_scale"],
        "mask_checkpoints": p["mask_checkpoints"],
        "schedule": p["schedule"],
    }
    cfgs = chapter3.fmnist_configs(p["interpreters"], **budget)
    model, rts_net = classifiers[arch], rts_nets.get(arch)

    def attack_missing(names: list[str]) -> None:  # chapter 3's attack: it writes the store
        chapter3.attack_fmnist(
            dict(classifiers), fmnist, cfgs, archs=[arch], interpreters=names, rts_nets=dict(rts_nets),
            accuracy={arch: accuracy[arch]}, n_images=p["n_images"], mask_n_images=p["mask_n_images"],
            epsilon=p["epsilon"], step_size=p["step_size"], step_scale=p["step_scale"],
            mask_iterations=p["mask_iterations"], attack_batch_size=p["attack_batch_size"], seed=p["seed"],
            device=device, progress=progress, log=None, artifacts_dir=p["artifacts_dir"],
            also_correct={arch: list(also_correct)},
        )  # fmt: skip

    handed = Chapter3Attacks.from_params(p, chapter3, cfgs, attack_missing, model, rts_net)
    setting = fmnist_setting(
        arch, model, rts_net, fmnist, handed, n_images=p["n_images"], mask_n_images=p["mask_n_images"],
        n_calibration=p["n_calibration"], device=device, also_correct=also_correct,
    )  # fmt: skip
    return setting, chapter3.fmnist_configs(["cam"], **budget)["cam"]


def fmnist_seed_settings(
    p: Mapping[str, Any],
    arch: str,
    models: Mapping[int, Any],
    fmnist: data.Dataset,
    chapter3: Any,
    *,
    device: Any,
    progress: bool,
) -> Iterator[tuple[int, Setting, attacks.ADV2Config]]:
    """:func:`fmnist_from_params` once per training seed of ``models`` (issue 27: ``train_seed``
    first, then each further seed of ``train_seeds``; each with ``classifiers``, ``rts_nets`` and
    ``accuracy`` by arch, chapter 3's ``SeedModels``), each built when the previous one is done:
    ``(seed, setting, cam)``. Every seed's setting is on the same images, those every seed's
    classifier gets right, as chapter 3 attacked them."""
    for seed, m in models.items():
        others = [o.classifiers[arch] for s, o in models.items() if s != seed]
        setting, cam = fmnist_from_params(
            p, arch, m.classifiers, {arch: m.accuracy[arch]}, m.rts_nets, fmnist, chapter3, device=device,
            progress=progress, also_correct=others,
        )  # fmt: skip
        yield seed, setting, cam


__all__ = [
    "Chapter3Attacks",
    "Setting",
    "adaptive_on",
    "arch_setting",
    "fmnist_from_params",
    "fmnist_seed_settings",
    "fmnist_setting",
    "n_correct_photos",
    "photo_from_params",
    "photo_setting",
    "photo_settings",
]
