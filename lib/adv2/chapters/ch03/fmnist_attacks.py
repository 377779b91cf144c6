"""Chapter 3 on Fashion-MNIST: PGD once per classifier (the baseline, ADV2's shared warm starts and
the paper's budgets), then PGD against ADV2 per interpreter (:func:`attack_fmnist`), and the
section's tables and figures.

The per-pair comparison itself is ``adv2.chapters.protocol.compare_pgd_adv2`` (the library's protocol).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from adv2.chapters import _compare, attack_figures, attack_store, plotting
from adv2.chapters._common import fmt_rows, is_missing
from adv2.chapters._loaders import load_classifiers, load_rts_nets
from adv2.chapters.ch03.configs import attacked_interpreter
from adv2.chapters.protocol import compare_pgd_adv2
from adv2.chapters.schema import train_seed_list
from adv2.core import attacks, paper
from adv2.core.formatting import MISSING, fmt
from adv2.trained import data

# PGD is also run at the paper's epsilon and twice it (the budget paragraph)
BUDGETS = (paper.PAPER_EPSILON, 2 * paper.PAPER_EPSILON)


@dataclass
class FmnistAttacks:
    """PGD and ADV2 on each classifier of ``archs`` and each interpreter of ``interpreters``.

    ``runs[arch][name]`` is ``adv2.chapters.protocol.compare_pgd_adv2``'s dict (``benign`` maps, ``pgd`` and
    ``adv2`` :class:`adv2.core.attacks.AttackResult`, ``numbers``); ``x_pgd[arch]`` the PGD inputs of
    all images (MASK is attacked on the first ``mask_n_images`` of them); ``budget_success[arch]``
    PGD's success at epsilon 0.031, 0.062 and this run's epsilon; ``per_image[arch][name]`` the
    per-image arrays of :func:`adv2.chapters._compare.per_image_arrays`."""

    archs: list[str]
    interpreters: list[str]
    epsilon: float
    step_size: float
    step_scale: float
    sets: dict[str, data.AttackSet]
    x_pgd: dict[str, torch.Tensor]
    runs: dict[str, dict[str, dict[str, Any]]]
    accuracy: dict[str, float]
    seconds: dict[tuple[str, str], float]
    budget_success: dict[str, dict[float, float]]
    per_image: dict[str, dict[str, dict]] = field(default_factory=dict)
    schedule: str = "authors"
    # issue 27: the classifiers' training seed, and the same attacks on the classifiers (and RTS) of
    # further training seeds, by seed (:func:`with_other_seeds`); the intervals and verdicts pool them
    train_seed: int = 0
    more_seeds: dict[int, FmnistAttacks] = field(default_factory=dict)

    @property
    def stats(self) -> dict[str, dict[str, dict]]:
        return {a: {n: self.runs[a][n]["numbers"] for n in self.interpreters} for a in self.archs}

    @property
    def train_seeds(self) -> list[int]:
        """The training seeds whose classifiers were attacked, ``train_seed`` first."""
        return [self.train_seed, *self.more_seeds]

    def per_image_by_seed(self, arch: str) -> list[dict[str, dict]]:
        """``arch``'s per-image arrays per interpreter, one dict per training seed (``train_seed``
        first): what :func:`adv2.chapters._compare.attack_intervals` pools over seeds."""
        return [self.per_image[arch], *(m.per_image[arch] for m in self.more_seeds.values())]

    def intervals(self, arch: str) -> dict[str, dict[str, Any]]:
        """``arch``'s 95 % intervals per interpreter, over images and the training seeds run."""
        return _compare.attack_intervals(self.per_image_by_seed(arch))


@torch.no_grad()
def _success(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> float:
    return float((model(x).argmax(1).cpu() == target.cpu()).float().mean())


def attack_fmnist(
    classifiers: dict[str, torch.nn.Module], fmnist: data.Dataset, cfgs: dict[str, attacks.ADV2Config], *,
    archs: list[str], interpreters: list[str], rts_nets: dict[str, Any] | None = None,
    accuracy: dict[str, float],
    n_images: int, mask_n_images: int, epsilon: float, step_size: float, step_scale: float,
    mask_iterations: int, attack_batch_size: int, seed: int,
    device: torch.device | str = "cpu", progress: bool = False, log: Callable[[str], None] | None = print,
    artifacts_dir: str | None = None, also_correct: dict[str, list[torch.nn.Module]] | None = None,
) -> FmnistAttacks:  # fmt: skip
    """The chapter's main experiment on Fashion-MNIST.

    Per classifier: the seeded attack set, one PGD run (the baseline and the warm starts of the
    CE-based ADV2 variants), PGD at the paper's budgets, then ``compare_pgd_adv2`` per interpreter.
    ``log`` receives one line per pair (None: silent). Each pair's inputs also go to the store
    of :mod:`adv2.chapters.attack_store` under ``artifacts_dir`` (default ``$ADV2_ARTIFACTS``).
    ``also_correct``: by arch, further classifiers (other training seeds') that must also classify
    each attacked image correctly, so that every seed attacks the same images and targets."""
    n_pgd = _compare.pgd_steps(step_scale)
    schedule = _compare.schedule_of(cfgs)
    sets, x_pgds, runs, seconds, budget, per_image = {}, {}, {}, {}, {}, {}
    for arch in archs:
        model = classifiers[arch]
        aset = data.select_attack_set(
            model, fmnist.x_test, fmnist.y_test, n_images, seed=seed, device=device,
            also_correct=(also_correct or {}).get(arch, ()),
        )  # fmt: skip
        sets[arch] = aset
        t0 = time.time()
        snaps = attacks.pgd_snapshots(
            model,
            aset.x,
            aset.target,
            _compare.warm_starts(cfgs, n_pgd),
            epsilon=epsilon,
            step_size=step_size,
            batch_size=attack_batch_size,
            progress=progress,
            desc=f"PGD {arch}",
            schedule=schedule,
        )
        seconds[(arch, "pgd")] = time.time() - t0
        x_pgds[arch] = snaps[n_pgd]
        # why this epsilon (see the text): the same PGD at the paper's 0.031 and at 0.062
        budget[arch] = {}
        for eps in BUDGETS:
            x_b = attacks.pgd(
                model,
                aset.x,
                aset.target,
                epsilon=eps,
                step_size=step_size * eps / epsilon,
                steps=n_pgd,
                batch_size=attack_batch_size,
                schedule=schedule,
            )
            budget[arch][eps] = _success(model, x_b, aset.target)
        budget[arch][epsilon] = _success(model, x_pgds[arch], aset.target)
        runs[arch], per_image[arch] = {}, {}
        for name in interpreters:
            t0 = time.time()
            interp = attacked_interpreter(name, model, (rts_nets or {}).get(arch), mask_iterations, seed)
            cfg = cfgs[name]
            k = min(mask_n_images, len(aset.x)) if name == "mask" else len(aset.x)
            warm = _compare.shared_stage1(cfg, snaps)
            runs[arch][name] = compare_pgd_adv2(
                model,
                interp,
                aset.x[:k],
                aset.y[:k],
                aset.target[:k],
                cfg,
                x_pgd=x_pgds[arch][:k],
                x_stage1=None if warm is None else warm[:k],
                batch_size=attack_batch_size,
                progress=progress,
                desc=f"ADV2 {name} {arch}",
            )
            seconds[(arch, name)] = time.time() - t0
            per_image[arch][name] = _compare.per_image_arrays(runs[arch][name])
            attack_store.store(  # chapter 9's cache of this attack (attack_store: read there)
                attack_store.attack_params(
                    f"fashion-mnist/{arch}", name, cfg, classifier=attack_store.fingerprint(model),
                    rts=attack_store.fingerprint((rts_nets or {}).get(arch)), x=aset.x[:k],
                    target=aset.target[:k], n_pgd=n_pgd, mask_iterations=mask_iterations, seed=seed,
                ),
                attack_store.run_state(runs[arch][name], aset.x[:k], aset.y[:k], aset.target[:k], x_pgds[arch][:k]),
                seconds[(arch, name)],
                artifacts_dir,
            )  # fmt: skip
            if log:
                s = runs[arch][name]["numbers"]
                log(
                    f"{arch:8s} {name:4s} ({k} images, {seconds[(arch, name)]:5.1f} s): "
                    f"success PGD {fmt(s['pgd']['success_rate'])} / ADV2 {fmt(s['adv2']['success_rate'])}, "
                    f"L1 PGD {fmt(s['pgd']['l1_mean'])} / ADV2 {fmt(s['adv2']['l1_mean'])}"
                )
    return FmnistAttacks(
        list(archs),
        list(interpreters),
        epsilon,
        step_size,
        step_scale,
        sets,
        x_pgds,
        runs,
        dict(accuracy),
        seconds,
        budget,
        per_image,
        schedule,
    )


@dataclass
class SeedModels:
    """The Fashion-MNIST classifiers of one training seed, their RTS (where RTS is attacked) and
    their test accuracy, by arch."""

    classifiers: dict[str, torch.nn.Module]
    rts_nets: dict[str, Any]
    accuracy: dict[str, float]


def load_other_seeds(
    params: dict[str, Any], fmnist: data.Dataset, *, device: torch.device | str = "cpu", progress: bool = False,
    log: Callable[[str], None] = print,
) -> dict[int, SeedModels]:  # fmt: skip
    """The classifiers and RTS of every training seed of ``params["train_seeds"]`` but
    ``params["train_seed"]`` (each the chapter's recipes with that ``train_seed``: loaded from the
    cache, else trained), by seed; empty with one seed (the default)."""
    seeds = train_seed_list(params["train_seed"], params.get("train_seeds") or [])
    out = {}
    for s in seeds[1:]:
        p = {**params, "train_seed": s}
        log(f"train_seed {s}:")
        classifiers, arts = load_classifiers(
            p, fmnist, params["archs"], device=device, artifacts_dir=params["artifacts_dir"], progress=progress,
            log=log,
        )  # fmt: skip
        rts_nets = {}
        if "rts" in params["interpreters"]:
            rts_nets, _ = load_rts_nets(
                p, fmnist, classifiers, arts, params["archs"], device=device,
                artifacts_dir=params["artifacts_dir"], progress=progress, log=log,
            )  # fmt: skip
        accuracy = {a: arts[a].metrics["test_accuracy"] for a in params["archs"]}
        out[s] = SeedModels(classifiers, rts_nets, accuracy)
    return out


def other_classifiers(others: dict[int, SeedModels], but: int | None = None) -> dict[str, list]:
    """Each arch's classifiers of the seeds in ``others`` (but seed ``but``): what
    :func:`attack_fmnist`'s ``also_correct`` takes so that every seed attacks the same images."""
    kept = [m for s, m in others.items() if s != but]
    archs = kept[0].classifiers if kept else {}
    return {a: [m.classifiers[a] for m in kept] for a in archs}


def with_other_seeds(
    fm: FmnistAttacks, classifiers: dict[str, torch.nn.Module], others: dict[int, SeedModels],
    params: dict[str, Any], fmnist: data.Dataset, cfgs: dict[str, attacks.ADV2Config], *,
    device: torch.device | str = "cpu", progress: bool = False, log: Callable[[str], None] | None = print,
) -> FmnistAttacks:  # fmt: skip
    """``fm`` (the attacks on ``classifiers``, ``params["train_seed"]``'s) with the same attacks on
    the models of every further training seed (``others``, :func:`load_other_seeds`), on the same
    images and targets (those every seed's classifier gets right). No further seed: ``fm``
    unchanged but for ``train_seed``."""
    more = {}
    for s, models in others.items():
        judges = other_classifiers(others, but=s)
        t0 = time.time()
        more[s] = attack_fmnist(
            models.classifiers, fmnist, cfgs, archs=fm.archs, interpreters=fm.interpreters,
            rts_nets=models.rts_nets, accuracy=models.accuracy, n_images=params["n_images"],
            mask_n_images=params["mask_n_images"], epsilon=fm.epsilon, step_size=fm.step_size,
            step_scale=fm.step_scale, mask_iterations=params["mask_iterations"],
            attack_batch_size=params["attack_batch_size"], seed=params["seed"], device=device,
            progress=progress, log=None, artifacts_dir=params["artifacts_dir"],
            also_correct={a: [classifiers[a], *judges.get(a, [])] for a in fm.archs},
        )  # fmt: skip
        same = all(torch.equal(more[s].sets[a].index, fm.sets[a].index) for a in fm.archs)
        if not same:  # a library bug: the sets are drawn with every seed's classifiers
            raise RuntimeError(
                f"train_seed {s} drew other attack images than train_seed {params['train_seed']}"
            )
        if log:
            log(f"train_seed {s}: every attack again, on the same images, in {time.time() - t0:.0f} s")
    return dataclasses.replace(fm, train_seed=params["train_seed"], more_seeds=more)


def _pm(s: dict, key: str) -> str:
    mean, std = s.get(f"{key}_mean"), s.get(f"{key}_std")
    return MISSING if is_missing(mean) else f"{fmt(mean)} ± {fmt(std)}"


def success_table(fm: FmnistAttacks) -> str:
    """Markdown: success rate (with its 95 % Wilson interval; over the training seeds too when
    several ran) and p(target) of PGD and ADV2 per pair (``train_seed``'s classifiers)."""
    rows = []
    for arch in fm.archs:
        est = fm.intervals(arch)
        for name in fm.interpreters:
            p, a = fm.stats[arch][name]["pgd"], fm.stats[arch][name]["adv2"]
            rows.append(
                [
                    arch,
                    name.upper(),
                    str(est[name]["pgd"]["success_rate"]),
                    str(est[name]["adv2"]["success_rate"]),
                    _pm(p, "confidence"),
                    _pm(a, "confidence"),
                    a["n"],
                ]
            )
    return plotting.markdown_table(
        rows,
        [
            "classifier",
            "interpreter",
            "success PGD",
            "success ADV2",
            "confidence PGD",
            "confidence ADV2",
            "images",
        ],
    )


def distance_figure(fm: FmnistAttacks):
    """L1 and L2 distances to the benign maps, one row of bars per classifier; error bars are the
    95 % bootstrap intervals over images (:func:`adv2.chapters._compare.attack_intervals`)."""
    fig, axes = plotting.panel_axes(2 * len(fm.archs), cols=2, height=2.7)
    for r, arch in enumerate(fm.archs):
        for c, metric in enumerate(("l1", "l2")):
            errors = {
                n: {att: estimates[att][f"{metric}_mean"] for att in ("pgd", "adv2")}
                # the bars are train_seed's run: its intervals over images
                for n, estimates in _compare.attack_intervals(fm.per_image[arch]).items()
            }
            attack_figures.attack_distance_bars(
                fm.stats[arch], metric, title=f"{arch}: {metric.upper()}", ax=axes[2 * r + c], errors=errors
            )
    return fig


def iou_table(fm: FmnistAttacks) -> str:
    """Mean IoU per pair with its 95 % interval ("value [low, high]")."""
    est = {a: fm.intervals(a) for a in fm.archs}
    rows = [
        [arch, name.upper(), est[arch][name]["pgd"]["iou_mean"], est[arch][name]["adv2"]["iou_mean"]]
        for arch in fm.archs
        for name in fm.interpreters
    ]
    return plotting.markdown_table(
        fmt_rows(rows), ["classifier", "interpreter", "mean IoU PGD", "mean IoU ADV2"]
    )


def example_figures(
    fm: FmnistAttacks, class_names: list[str], n_show: int, log: Callable[[str], None] | None = print
) -> list:
    """Benign / PGD / ADV2 inputs and maps of up to ``n_show`` images ADV2 succeeded on, per
    interpreter, on the first classifier."""
    arch = fm.archs[0]
    aset, figs = fm.sets[arch], []
    for name in fm.interpreters:
        run = fm.runs[arch][name]
        k = len(run["benign"])
        fig = _compare.success_examples_figure(
            aset.x[:k], aset.y, aset.target, fm.x_pgd[arch][:k], run, class_names, n_show,
            f"{name.upper()} on {arch}",
        )  # fmt: skip
        if fig is None:
            if log:
                log(f"{name}: ADV2 succeeded on no image")
            continue
        figs.append(fig)
    return figs


def history_figure(fm: FmnistAttacks):
    """Stage-2 curves of the Grad and MASK attacks (None when neither ran or recorded one)."""
    hist = {
        (a, n): fm.runs[a][n]["adv2"].history
        for a in fm.archs
        for n in ("grad", "mask")
        if n in fm.interpreters and fm.runs[a][n]["adv2"].history
    }
    if not hist:
        return None
    fig, axes = plotting.panel_axes(2, cols=2)
    plotting.curves(
        {f"{a} {n}": (h["step"], h["success"]) for (a, n), h in hist.items()},
        "stage-2 step",
        "images with a candidate",
        ax=axes[0],
    )
    plotting.curves(
        {f"{a} {n}": (h["step"], h["sq_distance"]) for (a, n), h in hist.items()},
        "stage-2 step",
        "squared distance of kept maps",
        ax=axes[1],
    )
    return fig
