"""RTS against RTSA on benign inputs (chapter 4): both interpreters' maps of the same test images
for their true class, Dabkowski & Gal's preserve-and-destroy test of both, and the 95 % intervals
of the benign L1(RTS, RTSA) and of the preserve-and-destroy rates: over the images, or over the
images and the training seeds when each further seed's models were compared on the same images
(issue 27, :mod:`adv2.core.seed_stats`; one seed: bitwise the image-only intervals)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from adv2.chapters import aid_eval
from adv2.chapters._reporting import table
from adv2.core import paper
from adv2.core.metrics import l1_distance
from adv2.core.sanity import preserve_destroy_per_image
from adv2.core.seed_stats import mean_ci_seeds, rate_ci_seeds
from adv2.core.stats import Estimate

# the paper's "RTSA behaves almost identically to RTS on benign inputs": its Table 10 value; the
# rule and its threshold live in adv2.chapters.claims
PAPER_BENIGN_L1 = paper.PAPER_TABLE10["benign_l1_rts_vs_rtsa"]


@dataclass
class BenignComparison:
    """RTS and RTSA on the same benign test images, maps of the true class (one classifier)."""

    maps_rts: torch.Tensor
    maps_rtsa: torch.Tensor
    preserve_destroy_rts: dict[str, float]  # adv2.core.interpreters.rts.preserve_destroy of RTS's maps
    preserve_destroy_rtsa: dict[str, float]
    # per image (adv2.core.sanity.preserve_destroy_per_image), for the 95 % intervals
    flags_rts: dict[str, torch.Tensor] | None = None
    flags_rtsa: dict[str, torch.Tensor] | None = None
    l1: torch.Tensor = field(init=False)  # per image: L1(RTS map, RTSA map)

    def __post_init__(self) -> None:
        self.l1 = l1_distance(self.maps_rts, self.maps_rtsa)

    def summary(self) -> dict[str, float]:
        return {
            "l1_rts_vs_rtsa": float(self.l1.mean()),
            "l1_rts_vs_rtsa_std": float(self.l1.std()),
            "area_rts": float(self.maps_rts.mean()),
            "area_rtsa": float(self.maps_rtsa.mean()),
            "both_rts": self.preserve_destroy_rts["both"],
            "both_rtsa": self.preserve_destroy_rtsa["both"],
            "both_random": self.preserve_destroy_rts["random_both"],
        }

    def preserve_destroy_intervals(self) -> dict[str, Estimate]:
        """This comparison's preserve-and-destroy intervals (:func:`benign_intervals` of it alone)."""
        return {k: v for k, v in benign_intervals([self]).items() if k.startswith("preserve_destroy")}


def benign_intervals(by_seed: Sequence[BenignComparison]) -> dict[str, Estimate]:
    """95 % intervals of one classifier's comparison, one per training seed (the same images; the
    first is ``train_seed``'s): the benign L1(RTS, RTSA) (bootstrap) and, where every seed has its
    per-image flags, the preserve-and-destroy rates of RTS and RTSA (Wilson for the 0/1 outcomes)
    and of the random masks (bootstrap over their per-image fractions); pooled over the seeds."""
    out = {"benign_l1_rts_vs_rtsa": mean_ci_seeds([b.l1 for b in by_seed])}
    if all(b.flags_rts is not None and b.flags_rtsa is not None for b in by_seed):
        out["preserve_destroy_rts"] = rate_ci_seeds([b.flags_rts["both"] for b in by_seed])
        out["preserve_destroy_rtsa"] = rate_ci_seeds([b.flags_rtsa["both"] for b in by_seed])
        out["preserve_destroy_random"] = mean_ci_seeds([b.flags_rts["random_both"] for b in by_seed])
    return out


def compare_benign(
    nets: Mapping[str, Any], x: torch.Tensor, y: torch.Tensor, *, device: torch.device | str = "cpu"
) -> dict[str, BenignComparison]:
    """RTS vs RTSA maps of ``(x, y)`` and Dabkowski & Gal's preserve/destroy test of both."""
    out = {}
    for a, n in nets.items():
        m_rts = aid_eval.rts_maps(n.rts, x, y, device=device)
        m_rtsa = aid_eval.rts_maps(n.rtsa, x, y, device=device)
        with torch.no_grad():
            f_rts = preserve_destroy_per_image(n.model, x.to(device), y.to(device), m_rts.to(device))
            f_rtsa = preserve_destroy_per_image(n.model, x.to(device), y.to(device), m_rtsa.to(device))
        out[a] = BenignComparison(m_rts, m_rtsa, _means(f_rts, m_rts), _means(f_rtsa, m_rtsa), f_rts, f_rtsa)
    return out


def compare_other_seeds(
    others: Mapping[int, Mapping[str, Any]], x: torch.Tensor, y: torch.Tensor, **kw: Any
) -> dict[int, dict[str, BenignComparison]]:
    """:func:`compare_benign` (``kw``: its ``device``) of each further training seed's nets
    (:func:`adv2.chapters.aid_training.load_other_seeds`) on the same images, by seed."""
    return {s: compare_benign(nets, x, y, **kw) for s, nets in others.items()}


def _means(flags: Mapping[str, torch.Tensor], masks: torch.Tensor) -> dict[str, float]:
    """:func:`adv2.core.interpreters.rts.preserve_destroy`'s dict from its per-image flags."""
    return {**{k: float(v.mean()) for k, v in flags.items()}, "area": float(masks.mean())}


def benign_table(
    benign: Mapping[str, BenignComparison], more: Mapping[int, Mapping[str, BenignComparison]] | None = None
) -> str:
    """One row per classifier: the paper's L1, ours and the preserve-and-destroy rates with their
    95 % intervals (pooled over ``more``, the further training seeds' comparisons, when given) and
    the mean map values (``benign``'s own)."""
    rows = []
    for a, b in benign.items():
        s = b.summary()
        ci = benign_intervals([b, *(m[a] for m in (more or {}).values())])
        rows.append(
            [
                a,
                PAPER_BENIGN_L1,
                ci["benign_l1_rts_vs_rtsa"],
                s["area_rts"],
                s["area_rtsa"],
                ci.get("preserve_destroy_rts", s["both_rts"]),
                ci.get("preserve_destroy_rtsa", s["both_rtsa"]),
                ci.get("preserve_destroy_random", s["both_random"]),
            ]
        )
    return table(
        rows,
        [
            "classifier",
            "paper: L1(RTS, RTSA)",
            "ours: L1(RTS, RTSA) [95 % interval]",
            "mean map RTS",
            "mean map RTSA",
            "preserve & destroy RTS [95 %]",
            "preserve & destroy RTSA [95 %]",
            "random masks [95 %]",
        ],
    )


__all__ = [
    "PAPER_BENIGN_L1",
    "BenignComparison",
    "benign_intervals",
    "benign_table",
    "compare_benign",
    "compare_other_seeds",
]
