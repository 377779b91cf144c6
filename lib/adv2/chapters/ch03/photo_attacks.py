"""Chapter 3 on the offline photos: PGD against ADV2 on a photo classifier (EfficientNet-Lite0 by
default, or any of :data:`adv2.core.config.PHOTO_CLASSIFIERS`) at the paper's ImageNet budget
(:func:`attack_photos`), the convergence curves, issue 14's acceptance, and the section's tables and
figures (its numbers and glue: :mod:`adv2.chapters.ch03.photo_report`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from adv2.chapters import attack_figures, attack_store, plotting
from adv2.chapters._common import NOT_RUN, PHOTOS, fmt_rows, is_missing
from adv2.chapters._compare import (
    PHOTO_EPSILON,
    PHOTO_STEP,
    attack_intervals,
    per_image_arrays,
    pgd_steps,
    shared_stage1,
    success_examples_figure,
    warm_starts,
)
from adv2.chapters.ch03.configs import (
    ALL_INTERPRETERS,
    attacked_interpreter,
    photo_configs,
    schedule_table,
)
from adv2.chapters.protocol import compare_pgd_adv2
from adv2.core import attacks, metrics
from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS
from adv2.core.formatting import fmt
from adv2.core.interpreters.rts import RTSInterpreter
from adv2.core.phrases import PHOTO_CLASSIFIER_LABELS
from adv2.trained import data, photomodels, pretrained
from adv2.trained.photo_recipes import PhotoRTSRecipe

# issue 14's acceptance on the photos: ADV2 success and ADV2/PGD mean-L1 ratio per interpreter
PHOTO_SUCCESS_TARGET = {"grad": 0.8, "cam": 0.9, "rts": 0.9, "mask": 0.9}
PHOTO_L1_RATIO_TARGET = {"grad": 1.0, "cam": 0.35, "rts": 0.35, "mask": 1.0}  # 1.0: below PGD's


def curve_note(schedule: str) -> str:
    """How the photo convergence curves were drawn (they follow the attacks' schedule)."""
    if schedule == "fast":
        return (
            "On the fast schedule ADV2's curve counts both of its stages from the clean photo and "
            "ends at its result (a photo that stopped early keeps its result), and PGD stops each "
            "photo once it is at the target; MASK has no curve here (each point would re-run "
            "MASK's optimisation on every photo)."
        )
    return (
        "ADV2's curve starts at its stage-1 warm start (a PGD iterate) and follows stage 2; MASK "
        "is evaluated only at its re-solves (each point re-runs MASK's optimisation) and PGD-MASK "
        "only at the end."
    )


@dataclass
class PhotoAttacks:
    """PGD and ADV2 against the photo classifier ``classifier`` on the offline photos (epsilon
    0.031, step 1/255).

    ``runs[name]`` is ``compare_pgd_adv2``'s dict per interpreter, ``per_image[name]`` its
    per-image arrays, ``curves[name]`` the convergence curves (:func:`photo_curves`),
    ``seconds[name]`` the wall time of each interpreter's part (``"pgd"``: the shared PGD run),
    ``cfgs`` the ADV2 schedules, ``n_pgd`` PGD's step count, ``n_labelled`` the labelled photos
    and ``n_correct`` how many of them the classifier gets right, ``rts_status`` where the RTS came
    from."""

    photos: data.Dataset
    attack_set: data.AttackSet
    x_pgd: torch.Tensor
    runs: dict[str, dict[str, Any]]
    per_image: dict[str, dict] = field(default_factory=dict)
    curves: dict[str, dict[str, dict[str, list]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cfgs: dict[str, attacks.AttackConfig] = field(default_factory=dict)
    n_pgd: int = 0
    n_labelled: int = 0
    n_correct: int = 0
    rts_status: str = NOT_RUN
    curve_every: int = 0
    classifier: str = field(default=PHOTO_CLASSIFIER)  # one of adv2.core.config.PHOTO_CLASSIFIERS

    @property
    def label(self) -> str:
        return PHOTO_CLASSIFIER_LABELS[self.classifier]

    @property
    def stats(self) -> dict[str, dict]:
        return {name: run["numbers"] for name, run in self.runs.items()}


def photo_rts(
    device: torch.device | str = "cpu",
    progress: bool = False,
    artifacts_dir: str | None = None,
    classifier: str = PHOTO_CLASSIFIER,
):
    """The RTS of the photo classifier ``classifier`` (``adv2.trained.photomodels.load_photo_rts``:
    the artifact cache, else the committed checkpoint, else trained) and the sentence saying which
    happened."""
    rts_net, artifact = photomodels.load_photo_rts(
        PhotoRTSRecipe(arch=classifier), device=device, progress=progress, artifacts_dir=artifacts_dir
    )
    return rts_net, photomodels.status_line(artifact)


def _labelled_correct(model: torch.nn.Module, photos: data.Dataset, device) -> tuple[int, int]:
    """How many photos carry an ImageNet label, and how many of those the model gets right."""
    known = photos.y_test >= 0
    with torch.no_grad():
        pred = torch.cat(
            [model(photos.x_test[i : i + 8].to(device)).argmax(1).cpu() for i in range(0, len(known), 8)]
        )
    return int(known.sum()), int(((pred == photos.y_test) & known).sum())


def _curve_steps(total: int, every: int) -> list[int]:
    """0, every, 2 every, ..., total (the last step always)."""
    return sorted(set(range(0, total + 1, max(1, every))) | {total})


def _curve_point(model, interp, x: torch.Tensor, target: torch.Tensor, benign: torch.Tensor, device):
    """Success (argmax is the target) and mean L1 of the target map to the benign map at ``x``."""
    x, target = x.to(device), target.to(device)
    with torch.no_grad():
        ok = (model(x).argmax(1) == target).float().mean()
    maps = interp(x, target).detach()
    return float(ok), float(metrics.l1_distance(maps.float().cpu(), benign.float().cpu()).mean())


def photo_curves(
    model: torch.nn.Module,
    interp: Any,
    name: str,
    cfg: attacks.AttackConfig,
    aset: data.AttackSet,
    benign: torch.Tensor,
    pgd_snaps: dict[int, torch.Tensor],
    adv2_snaps: dict[int, torch.Tensor],
    device,
) -> dict[str, dict[str, list]]:
    """Map L1 to the benign map and success vs step, for PGD and ADV2, counted from the clean image.

    PGD's points are its snapshots; ADV2's are its stage-1 warm start (a PGD snapshot, for the
    CE warm starts) then its stage-2 iterates, at step ``stage1_steps + k`` (fast schedule: its
    iterates at step ``k`` of both stages, from the clean image, then its result). The map is the
    interpreter's evaluation map w.r.t. the target (for Grad the true gradient, not the attack's
    smooth surrogate), and success is the iterate's argmax, not ADV2-Grad's p > 0.8 selection."""
    out = {}
    adv2_offset = 0 if cfg.schedule == "fast" else cfg.stage1_steps  # fast: steps from the clean image
    for att, snaps, offset in (("pgd", pgd_snaps, 0), ("adv2", adv2_snaps, adv2_offset)):
        pts = [
            (s + offset, *_curve_point(model, interp, x, aset.target, benign, device))
            for s, x in snaps.items()
        ]
        out[att] = {key: [p[i] for p in pts] for i, key in enumerate(("step", "success", "l1"))}
    return out


def attack_photos(
    *,
    interpreters: list[str],
    n_images: int,
    step_scale: float,
    mask_step_scale: float,
    mask_checkpoints: int,
    mask_iterations: int,
    seed: int,
    curve_every: int = 0,
    schedule: str = "authors",
    rts_net: Any = None,
    rts_status: str = NOT_RUN,
    artifacts_dir: str | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
    log: Callable[[str], None] | None = print,
    classifier: str = PHOTO_CLASSIFIER,
) -> PhotoAttacks:
    """The photo section: the photo classifier ``classifier`` (EfficientNet-Lite0 by default; the
    photos at its side), correctly classified photos, PGD vs ADV2.

    ``n_images`` photos (0: every labelled photo the classifier gets right), each with a seeded
    random target class; PGD runs once (``pgd_steps(step_scale)`` steps, its snapshots are the
    CE warm starts); then ``compare_pgd_adv2`` per interpreter. ``curve_every > 0`` records the
    convergence curves (:func:`photo_curves`) every that many steps (MASK: at its re-solves, the
    costly map; on the fast schedule none). ``schedule``: the attacks' step
    schedule (:func:`photo_configs`), PGD's too. RTS uses ``rts_net`` (default: :func:`photo_rts`, whose sentence becomes
    ``rts_status``)."""
    unknown = sorted(set(interpreters) - set(ALL_INTERPRETERS))
    if unknown:
        raise ValueError(f"imagenet_interpreters has {unknown}; valid: {list(ALL_INTERPRETERS)}")
    photos = data.load_imagenet_sample(size=PHOTO_CLASSIFIERS[classifier])
    lite = pretrained.efficientnet_lite(photos.class_names, classifier).to(device)
    if "rts" in interpreters and rts_net is None:
        rts_net, rts_status = photo_rts(device, progress, artifacts_dir, classifier)
    n_labelled, n_correct = _labelled_correct(lite, photos, device)
    n_take = n_correct if n_images == 0 else n_images
    photo = data.select_attack_set(
        lite, photos.x_test, photos.y_test, n_take, seed=seed, num_classes=1000, batch_size=8, device=device
    )
    cfgs = photo_configs(
        interpreters,
        step_scale=step_scale,
        mask_step_scale=mask_step_scale,
        mask_checkpoints=mask_checkpoints,
        schedule=schedule,
    )
    n_pgd = pgd_steps(step_scale)
    fast = schedule == "fast"
    warm = set(warm_starts(cfgs, n_pgd))
    pgd_curve = set(_curve_steps(n_pgd, curve_every)) if curve_every else set()
    t0 = time.time()
    snaps = attacks.pgd_snapshots(
        lite,
        photo.x,
        photo.target,
        sorted(warm | pgd_curve),
        epsilon=PHOTO_EPSILON,
        step_size=PHOTO_STEP,
        progress=progress,
        desc="PGD photos" + ("" if classifier == PHOTO_CLASSIFIER else f" ({classifier})"),
        schedule=schedule,
    )
    seconds = {"pgd": time.time() - t0}
    runs, per_image, curves = {}, {}, {}
    # the keys of chapter 9's cache of these attacks (attack_store: written here, read there)
    keys = {"classifier": attack_store.fingerprint(lite), "rts": attack_store.fingerprint(rts_net)}
    for name in interpreters:
        t0 = time.time()
        interp = (
            RTSInterpreter(lite, rts_net)
            if name == "rts"
            else attacked_interpreter(name, lite, None, mask_iterations, seed)
        )
        cfg = cfgs[name]
        budget = cfg.stage1_steps + cfg.stage2_steps
        if fast:  # both stages' steps counted from the clean image
            wanted, offset = set(_curve_steps(budget, curve_every)) - {0}, 0
        elif name == "mask":  # MASK's map is an optimisation: curve points at its re-solves only
            every = getattr(cfg, "resolve_every", cfg.stage2_steps)
            wanted = set(_curve_steps(cfg.stage2_steps, every)) - {0}
            offset = cfg.stage1_steps  # its own stage 1 (margin loss) runs inside: skip its steps
        else:
            wanted, offset = set(_curve_steps(cfg.stage2_steps, curve_every)), 0
        # MASK on the fast schedule: no curve (its checkpoints vary per image; each point would
        # re-run MASK's optimisation on every photo)
        drawn = curve_every and not (fast and name == "mask")
        hook = attacks.IterateRecorder(wanted, offset=offset) if drawn else None
        runs[name] = compare_pgd_adv2(
            lite,
            interp,
            photo.x,
            photo.y,
            photo.target,
            cfg,
            x_pgd=snaps[n_pgd],
            x_stage1=shared_stage1(cfg, snaps),
            progress=progress,
            desc=f"ADV2 {name} photos" + ("" if classifier == PHOTO_CLASSIFIER else f" ({classifier})"),
            recorder=hook,
        )
        per_image[name] = per_image_arrays(runs[name])
        attack_store.store(
            attack_store.attack_params(
                PHOTOS, name, cfg, **keys, x=photo.x, target=photo.target, n_pgd=n_pgd,
                mask_iterations=mask_iterations, seed=seed,
            ),
            attack_store.run_state(runs[name], photo.x, photo.y, photo.target, snaps[n_pgd]),
            time.time() - t0,
            artifacts_dir,
        )  # fmt: skip
        if hook is not None:
            adv_snaps = hook.tensors()
            if fast:  # images that stopped early keep their result: the curve ends at the budget
                adv_snaps = {0: photo.x, **adv_snaps, budget: runs[name]["adv2"].x_adv.cpu()}
            elif cfg.stage1_loss == "ce":
                adv_snaps = {0: snaps[cfg.stage1_steps], **adv_snaps}
            pgd_pts = {s: snaps[s] for s in sorted(pgd_curve)} if name != "mask" else {n_pgd: snaps[n_pgd]}
            curves[name] = photo_curves(
                lite, interp, name, cfg, photo, runs[name]["benign"], pgd_pts, adv_snaps, device
            )
        seconds[name] = time.time() - t0
        if log:
            s = runs[name]["numbers"]
            log(
                ("" if classifier == PHOTO_CLASSIFIER else f"{classifier} ")
                + f"{name:4s} ({seconds[name]:5.1f} s): success PGD {fmt(s['pgd']['success_rate'])} / "
                f"ADV2 {fmt(s['adv2']['success_rate'])}, L1 PGD {fmt(s['pgd']['l1_mean'])} / "
                f"ADV2 {fmt(s['adv2']['l1_mean'])}, IoU PGD {fmt(s['pgd']['iou_mean'])} / "
                f"ADV2 {fmt(s['adv2']['iou_mean'])}"
            )
    return PhotoAttacks(
        photos,
        photo,
        snaps[n_pgd],
        runs,
        per_image,
        curves,
        seconds,
        cfgs,
        n_pgd,
        n_labelled,
        n_correct,
        rts_status if "rts" in interpreters else NOT_RUN,
        curve_every,
        classifier,
    )


def photo_schedule_table(ph: PhotoAttacks, mask_iterations: int) -> str:
    """Markdown: the photo attacks' schedules (this run beside the paper's step counts)."""
    return schedule_table(ph.cfgs, ph.n_pgd, mask_iterations)


def photo_table(ph: PhotoAttacks) -> str:
    """The photo section's numbers with their 95 % intervals ("value [low, high]"): success,
    confidence (over successes), L1, L2 and mean IoU of PGD and ADV2, and the wall time."""
    est = attack_intervals(ph.per_image)
    rows = []
    for name, e in est.items():
        for att in ("pgd", "adv2"):
            rows.append(
                [
                    name.upper(),
                    att.upper(),
                    e[att]["success_rate"],
                    e[att]["confidence_mean"],
                    e[att]["l1_mean"],
                    e[att]["l2_mean"],
                    e[att]["iou_mean"],
                    ph.seconds.get("pgd" if att == "pgd" else name, float("nan")),
                ]
            )
    return plotting.markdown_table(
        fmt_rows(rows),
        ["interpreter", "attack", "success", "confidence", "L1", "L2", "mean IoU", "seconds"],
    )


def photo_iou_figure(ph: PhotoAttacks):
    """The IoU@k curves of PGD and ADV2 per interpreter on the photos."""
    return attack_figures.iou_curve_panels({"photos": ph.stats})


def photo_curve_figure(ph: PhotoAttacks):
    """The convergence curves: map L1 to the benign map (left) and success (right) vs step
    (counted from the clean image), PGD dashed-free per interpreter; None without curves."""
    if not ph.curves:
        return None
    fig, axes = plotting.panel_axes(2, cols=2, height=3.0)
    for col, key, label in ((0, "l1", "mean L1 to the benign map"), (1, "success", "success rate")):
        series = {}
        for name, c in ph.curves.items():
            for att in ("pgd", "adv2"):
                if len(c[att]["step"]):
                    series[f"{att.upper()} {name.upper()}"] = (c[att]["step"], c[att][key])
        plotting.curves(series, "attack step (from the clean image)", label, ax=axes[col])
    return fig


def photo_figures(ph: PhotoAttacks, n_show: int = 4) -> list:
    """Benign / PGD / ADV2 inputs and maps (with colour bars) of up to ``n_show`` photos ADV2
    succeeded on, per interpreter."""
    aset = ph.attack_set
    figs = [
        success_examples_figure(
            aset.x,
            aset.y,
            aset.target,
            ph.x_pgd,
            run,
            ph.photos.class_names,
            n_show,
            f"{name.upper()} on {ph.label}",
        )  # fmt: skip
        for name, run in ph.runs.items()
    ]
    return [f for f in figs if f is not None]


def photo_acceptance(ph: PhotoAttacks) -> dict[str, dict[str, Any]]:
    """Issue 14's acceptance on the photos, per interpreter: ADV2 success >= 0.9 (Grad 0.8),
    ADV2/PGD mean L1 <= 0.35 (CAM, RTS) or < 1 (Grad, MASK), ADV2 mean IoU above PGD's."""
    out = {}
    for name, s in ph.stats.items():
        p, a = s["pgd"], s["adv2"]
        ratio = a["l1_mean"] / p["l1_mean"] if not is_missing(a["l1_mean"]) and p["l1_mean"] else float("nan")
        need_s = PHOTO_SUCCESS_TARGET.get(name, 0.9)
        need_r = PHOTO_L1_RATIO_TARGET.get(name, 1.0)
        ok_s = a["success_rate"] >= need_s
        ok_r = ratio <= need_r if need_r < 1 else ratio < need_r
        ok_i = not is_missing(a["iou_mean"]) and a["iou_mean"] > p["iou_mean"]
        out[name] = {
            "success": a["success_rate"],
            "success_target": need_s,
            "l1_ratio": ratio,
            "l1_ratio_target": need_r,
            "iou_pgd": p["iou_mean"],
            "iou_adv2": a["iou_mean"],
            "met": bool(ok_s and ok_r and ok_i),
        }
    return out


def photo_acceptance_table(ph: PhotoAttacks) -> str:
    rows = [
        [
            n.upper(),
            f"{fmt(a['success'])} (≥ {a['success_target']:g})",
            f"{fmt(a['l1_ratio'])} ({'≤' if a['l1_ratio_target'] < 1 else '<'} {a['l1_ratio_target']:g})",
            f"{fmt(a['iou_adv2'])} vs {fmt(a['iou_pgd'])}",
            "met" if a["met"] else "not met",
        ]
        for n, a in photo_acceptance(ph).items()
    ]
    return plotting.markdown_table(
        rows,
        ["interpreter", "ADV2 success (target)", "L1 ADV2 / PGD (target)", "IoU ADV2 vs PGD", "this run"],
    )
