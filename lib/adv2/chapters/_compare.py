"""The attack comparison every chapter runs the same way (chapters 3, 6 and 7): PGD's step count
and snapshots (the baseline and ADV2's shared warm starts), the per-image arrays of one PGD / ADV2
comparison, their 95 % intervals, chapter 3's two claims on them, and the figure of the images ADV2
succeeded on. The photo budget (epsilon 0.031, step 1/255) is the paper's ImageNet setting as the
book applies it to EfficientNet-Lite0 (chapters 3 and 6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from adv2.chapters import attack_figures, claim_rules
from adv2.chapters.claims import Verdict
from adv2.core import attacks, metrics, paper
from adv2.core.seed_stats import mean_ci_seeds, one_or_by_seed, rate_ci_seeds, ratio_ci_seeds

PHOTO_EPSILON, PHOTO_STEP = paper.PAPER_EPSILON, paper.PAPER_STEP_SIZE  # the paper's ImageNet budget


def pgd_steps(step_scale: float) -> int:
    """PGD's step count: the authors' 1200 scaled (at least one)."""
    return max(1, round(1200 * step_scale))


def schedule_of(cfgs: dict[str, attacks.AttackConfig]) -> str:
    """The one schedule of a chapter's attacks (PGD follows it: early stopping on the fast one)."""
    found = {c.schedule for c in cfgs.values()} or {"authors"}
    if len(found) > 1:
        raise ValueError(f"the attacks mix schedules {sorted(found)}; a chapter runs one")
    return found.pop()


def warm_starts(cfgs: dict[str, attacks.AttackConfig], n_pgd: int) -> list[int]:
    """The PGD snapshots a chapter takes: the baseline, and on the authors' schedule the shared
    CE warm starts of ADV2's stage 1 (on the fast one each attack runs its own, which stops early
    and hands its unused steps to the joint stage)."""
    if schedule_of(cfgs) == "fast":
        return [n_pgd]
    return sorted({c.stage1_steps for c in cfgs.values() if c.stage1_loss == "ce"} | {n_pgd})


def shared_stage1(cfg: attacks.AttackConfig, snaps: dict[int, torch.Tensor]) -> torch.Tensor | None:
    """ADV2's warm start from the shared PGD run (authors' schedule, CE stage 1), else None: the
    attack runs its own stage 1."""
    if cfg.schedule == "fast" or cfg.stage1_loss != "ce":
        return None
    return snaps[cfg.stage1_steps]


def per_image_arrays(run: dict[str, Any]) -> dict[str, dict[str, list]]:
    """Success, p(target), L1, L2 and mean IoU of every attacked image, for PGD and ADV2.

    Distances are listed for every image (with ``success`` beside them): the chapter's means
    restrict ADV2's to its successes, as :func:`adv2.core.metrics.summarize` does."""
    benign = run["benign"].detach().float().cpu()
    out = {}
    for att in ("pgd", "adv2"):
        res = run[att]
        maps = res.maps.detach().float().cpu()
        out[att] = {
            "success": res.success.cpu().bool().tolist(),
            "confidence": res.confidence.detach().float().cpu().tolist(),
            "l1": metrics.l1_distance(maps, benign).tolist(),
            "l2": metrics.l2_distance(maps, benign).tolist(),
            "iou": metrics.iou_curve(maps, benign).mean(1).tolist(),
        }
    return out


def _successes(values: list, success: list) -> list[float]:
    """``values`` where the attack succeeded, NaN elsewhere (the means ADV2's numbers use)."""
    return [v if ok else float("nan") for v, ok in zip(values, success)]


def _by_seed(per_image: dict[str, dict] | Sequence[dict[str, dict]]) -> list[dict[str, dict]]:
    """One setting's ``{interpreter: per_image_arrays(...)}`` per training seed (a single dict: one
    seed); every seed must have run the same interpreters."""
    runs = [per_image] if isinstance(per_image, Mapping) else list(per_image)
    if not runs or any(set(r) != set(runs[0]) for r in runs):
        raise ValueError(
            "per-image arrays by training seed must name the same interpreters for every seed, got "
            + (" / ".join(str(sorted(r)) for r in runs) or "no seed")
        )
    return runs


def _rows(pis: list[dict], att: str, key: str, successes_only: bool) -> list[list]:
    """One attack's per-image ``key`` per seed (NaN where it failed when ``successes_only``)."""
    return [_successes(p[att][key], p[att]["success"]) if successes_only else p[att][key] for p in pis]


def attack_intervals(per_image: dict[str, dict] | Sequence[dict[str, dict]]) -> dict[str, dict[str, Any]]:
    """95 % intervals of one setting's headline numbers, ``{interpreter: {...}}``.

    ``per_image`` is ``{interpreter: per_image_arrays(...)}``, or a list of them, one per training
    seed (the same images attacked on each seed's classifier): then each number pools the seeds and
    its interval covers them too (:mod:`adv2.core.seed_stats`; one seed: exactly the interval over
    images). Per attack: ``success_rate`` (Wilson), ``confidence_mean`` (over successes),
    ``l1_mean``, ``l2_mean``, ``iou_mean`` (bootstrap over images; ADV2's over its successes, PGD's
    over all, as the chapter's numbers); and ``l1_ratio_adv2_over_pgd`` (paired bootstrap, the
    estimate claim 2 is decided on). With one seed each value equals the number in ``numbers()``
    it belongs to."""
    runs = _by_seed(per_image)
    out: dict[str, dict[str, Any]] = {}
    for name in runs[0]:
        pis = [r[name] for r in runs]
        out[name] = {}
        for att in ("pgd", "adv2"):
            # ADV2's distances over its successes, PGD's over all images
            out[name][att] = {
                "success_rate": rate_ci_seeds(_rows(pis, att, "success", False)),
                "confidence_mean": mean_ci_seeds(_rows(pis, att, "confidence", True)),
                **{
                    f"{m}_mean": mean_ci_seeds(_rows(pis, att, m, att == "adv2")) for m in ("l1", "l2", "iou")
                },
            }
        out[name]["l1_ratio_adv2_over_pgd"] = ratio_ci_seeds(
            _rows(pis, "adv2", "l1", True), _rows(pis, "pgd", "l1", False)
        )
    return out


# chapters 4 and 5 (issue 27): their photo sections stay at one training seed (the photo RTS and
# RTSA ship as checkpoints, trained once), whatever train_seeds says
PHOTO_ONE_SEED = (
    "; the photo sections' intervals cover the photos only (one photo RTS and RTSA, trained once)"
)


def interval_scope_text(
    train_seeds: list[int],
    models: str = "classifiers and RTS",
    images: str = "attacked images",
    measured: str = "attacked",
    shown: str = "the tables' other columns and the figures",
) -> str:
    """What a chapter's Fashion-MNIST intervals cover, for the prose ("... on 95 % intervals
    <this>"): the ``images`` (chapters 3 and 6: the attacked ones), and the training seeds when
    several ran (chapters 3-7; ``models``: what each seed trains, ``measured``: what the protocol
    did to them; ``shown``: what on the page is seed ``train_seeds[0]``'s run alone)."""
    if len(train_seeds) == 1:
        return (
            f"over the {images} only: the {models} of one training seed "
            f"({train_seeds[0]}), so a classifier retrained with another seed, or on another machine, "
            "can give numbers outside them (`train_seeds` widens them to cover training too)"
        )
    seeds = ", ".join(map(str, train_seeds[:-1])) + f" and {train_seeds[-1]}"
    return (
        f"over the {images} and the training seeds {seeds}: the {models} of each "
        f"seed were {measured} with the same protocol, each number pools the seeds, and its interval adds "
        f"Student's t over the seeds to the one over images ({shown} show seed {train_seeds[0]}'s run)"
    )


def setting_verdicts(per_image: dict[str, dict] | Sequence[dict[str, dict]]) -> dict[str, Verdict]:
    """Chapter 3's two claims on one setting (``{interpreter: per_image_arrays(...)}``, or a list of
    them, one per training seed: decided on the intervals over images and seeds), each decided by
    :mod:`adv2.chapters.claims` for every interpreter."""
    runs = _by_seed(per_image)

    def each(att: str, key: str) -> dict[str, Any]:
        return {n: one_or_by_seed(r[n][att][key] for r in runs) for n in runs[0]}

    return {
        "adv2_success_like_pgd": claim_rules.adv2_success_like_pgd(
            each("adv2", "success"), each("pgd", "success")
        ),
        "adv2_maps_closer_than_pgd": claim_rules.adv2_maps_closer_than_pgd(
            each("adv2", "l1"), each("pgd", "l1"), each("adv2", "success")
        ),
    }


def success_examples_figure(
    x: torch.Tensor, y: torch.Tensor, target: torch.Tensor, x_pgd: torch.Tensor, run: dict[str, Any],
    class_names: list[str], n_show: int, suptitle: str,
):  # fmt: skip
    """Benign / PGD / ADV2 inputs and maps of up to ``n_show`` images ADV2 succeeded on, titled
    *true class → target* (``run``: ``compare_pgd_adv2``'s dict; ``x``, ``x_pgd``: its attacked
    images and PGD's); None when ADV2 succeeded on none."""
    ok = run["adv2"].success.cpu().nonzero().flatten()[:n_show]
    if len(ok) == 0:
        return None
    labels = [f"{class_names[int(y[i])]}\n→ {class_names[int(target[i])]}" for i in ok]
    return attack_figures.attack_triptych(
        x[ok],
        run["benign"][ok].cpu(),
        x_pgd[ok].cpu(),
        run["pgd"].maps[ok].cpu(),
        run["adv2"].x_adv[ok].cpu(),
        run["adv2"].maps[ok].cpu(),
        row_labels=labels,
        suptitle=suptitle,
    )
