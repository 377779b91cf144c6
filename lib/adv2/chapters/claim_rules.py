"""One function per claim of the paper: its rule and threshold applied to per-image arrays.

Every chapter and the front page call these functions, so one claim gets one verdict for one set
of numbers wherever it is shown. A claim function takes per-image arrays (success flags, map
distances; never pre-averaged numbers), computes an :class:`adv2.core.stats.Estimate` with its 95 %
interval and returns a :class:`adv2.chapters.claims.Verdict` (:func:`adv2.chapters.claims.decide`
says how). Claims stated "for every interpreter" (or noise type) take a mapping ``{name: per-image
array}`` and combine the per-name verdicts with :func:`adv2.chapters.claims.all_of`. Where a rule
says so, each array may be :class:`adv2.core.seed_stats.BySeed` (one per training seed, all or
none): the same checks on every seed, the pooled estimate decided (:func:`_per_seed`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from adv2.chapters.claims import (
    CLAIMS,
    LEVEL,
    MIN_IMAGES,
    NOT_MEASURABLE,
    Claim,
    Verdict,
    all_of,
    decide,
    verdict_of,
)
from adv2.core.seed_stats import (
    mean_ci_seeds,
    rate_diff_ci_seeds,
    ratio_ci_seeds,
    ratio_of_ratios_ci_seeds,
    share_ci_seeds,
    stack_by_seed,
)
from adv2.core.stats import as_vector, rate_diff_ci


# ----------------------------------------------------------------------------- building blocks
def _too_few(claim: Claim, n: int, min_images: int) -> Verdict | None:
    if n < max(2, min_images):
        what = "no image" if n == 0 else f"only {n} image{'s' if n != 1 else ''}"
        return verdict_of(
            claim,
            NOT_MEASURABLE,
            f"{what}: an illustration, not a measurement (a verdict needs at least {max(2, min_images)})",
        )
    return None


def _per_part(claim_id: str, one: Callable[..., Verdict], arrays: Sequence[Any]) -> Verdict:
    """Call ``one`` per part when the arrays are mappings ``{part: array}``, then :func:`all_of`."""
    if all(isinstance(a, Mapping) for a in arrays):
        keys = list(arrays[0])
        for a in arrays[1:]:
            if set(a) != set(keys):
                raise ValueError(
                    f"{claim_id}: the per-part inputs name different parts: {sorted(keys)} vs {sorted(a)}"
                )
        return all_of(claim_id, {k: one(*(a[k] for a in arrays)) for k in keys})
    if any(isinstance(a, Mapping) for a in arrays):
        raise ValueError(
            f"{claim_id}: pass either one array per input or one mapping {{part: array}} per input, not a mix"
        )
    return one(*arrays)


def _flags(x: Any, name: str) -> np.ndarray:
    f = as_vector(x, name)
    if np.any(np.isfinite(f) & (f != 0) & (f != 1)):
        raise ValueError(f"{name} must be success flags (bool or 0/1 per image)")
    return f


def _only_where(values: Any, flags: np.ndarray, name: str) -> np.ndarray:
    """Per-image ``values`` kept where ``flags`` is true, NaN elsewhere."""
    v = as_vector(values, name)
    if len(v) != len(flags):
        raise ValueError(
            f"{name} has {len(v)} values but the success flags describe "
            f"{len(flags)} images; pass one value per attacked image"
        )
    return np.where(flags == 1, v, np.nan)


def _per_seed(
    cid: str, prepare: Callable, arrays: Sequence, names: Sequence[str], estimator: Callable
) -> Verdict:
    """A rule on plain arrays or ``BySeed``: ``prepare`` (one seed's checks) per seed gives a verdict
    (the first ends the rule) or the arrays that ``estimator`` (:mod:`adv2.core.seed_stats`'s; one
    seed: bitwise :mod:`adv2.core.stats`'s) takes as lists over seeds; its estimate is decided."""
    seeds = stack_by_seed(arrays, names)
    runs = [arrays] if seeds is None else [[a[s] for a in seeds] for s in range(len(seeds[0]))]
    prepared = [prepare(*r) for r in runs]
    for v in prepared:
        if isinstance(v, Verdict):
            many = f", with one of the {len(runs)} training seeds" if len(runs) > 1 else ""
            return verdict_of(CLAIMS[cid], v.status, v.reason + many) if many else v
    return decide(cid, estimator(*(list(c) for c in zip(*prepared)), level=LEVEL))


def _both_finite(x: np.ndarray, y: np.ndarray, names: str, unit: str) -> np.ndarray:
    """Where two per-image measures of the same images are both finite (ValueError when their
    lengths differ)."""
    if len(x) != len(y):
        raise ValueError(f"{names} must describe the same images, got {len(x)} and {len(y)} {unit}")
    return np.isfinite(x) & np.isfinite(y)


# ----------------------------------------------------------------------------- the claims
def adv2_success_like_pgd(adv2_success: Any, pgd_success: Any, *, min_images: int = MIN_IMAGES) -> Verdict:
    """Chapter 3, claim 1: ADV2 reaches the target class about as often as PGD.

    ``adv2_success``, ``pgd_success``: per-image success flags on the same attacked images (or
    :class:`adv2.core.seed_stats.BySeed` of one flag array per training seed), or
    ``{interpreter: flags}`` for every interpreter (the claim must hold for each). Not measurable
    when PGD, the baseline, reaches no target: then both "fail alike" and nothing is compared.
    """
    cid = "adv2_success_like_pgd"
    claim = CLAIMS[cid]

    def one(a: Any, p: Any) -> Verdict:
        seeds = stack_by_seed((a, p), ("adv2_success", "pgd_success"))
        if seeds is not None:  # several training seeds: pooled, the interval covers them too
            fa, fp = (
                _flags(x.ravel(), name).reshape(x.shape)
                for x, name in zip(seeds, ("adv2_success", "pgd_success"))
            )
            keep = np.isfinite(fa) & np.isfinite(fp)
            short = _too_few(claim, int(keep.sum(1).min()), min_images)
            if short:
                return short
            if fp[keep].sum() == 0:
                return verdict_of(
                    claim,
                    NOT_MEASURABLE,
                    f"PGD reached the target on none of {int(keep.sum(1).min())} images with any of "
                    f"{len(fp)} training seeds: no successful baseline to compare with",
                )
            return decide(cid, rate_diff_ci_seeds(fa, fp, level=LEVEL))
        fa, fp = _flags(a, "adv2_success"), _flags(p, "pgd_success")
        keep = _both_finite(fa, fp, "adv2_success and pgd_success", "flags")
        fa, fp = fa[keep], fp[keep]
        short = _too_few(claim, len(fa), min_images)
        if short:
            return short
        if fp.sum() == 0:
            return verdict_of(
                claim,
                NOT_MEASURABLE,
                f"PGD reached the target on none of {len(fp)} images (ADV2 on "
                f"{int(fa.sum())}): no successful baseline to compare with",
            )
        return decide(cid, rate_diff_ci(fa, fp, paired=True, level=LEVEL))

    return _per_part(cid, one, (adv2_success, pgd_success))


def _maps_closer(cid: str, adv2_l1: Any, pgd_l1: Any, adv2_success: Any, min_images: int) -> Verdict:
    """ADV2's L1 (over its successes) over PGD's; every array may be ``BySeed``."""
    claim = CLAIMS[cid]

    def prepare(adv: Any, pgd: Any, success: Any) -> Verdict | tuple:
        ok = _flags(success, "adv2_success")
        num = _only_where(adv, ok, "adv2_l1")
        den = as_vector(pgd, "pgd_l1")
        if len(den) != len(ok):
            raise ValueError(
                f"pgd_l1 has {len(den)} values for {len(ok)} attacked images; ADV2 and "
                "PGD must attack the same images"
            )
        short = _too_few(claim, int(np.sum(np.isfinite(ok))), min_images)
        if short:
            return short
        n_ok = int(np.sum(np.isfinite(num)))
        if n_ok < 2:
            return verdict_of(
                claim,
                NOT_MEASURABLE,
                f"ADV2 reached the target on {n_ok} of {len(ok)} images: too few "
                "adversarial maps to measure (at least 2)",
            )
        den_ok = den[np.isfinite(den)]
        if len(den_ok) == 0 or not den_ok.mean() > 0:
            return verdict_of(
                claim, NOT_MEASURABLE, "PGD's maps equal the benign maps (mean L1 0): the ratio is undefined"
            )
        return num, den

    names = ("adv2_l1", "pgd_l1", "adv2_success")
    return _per_seed(cid, prepare, (adv2_l1, pgd_l1, adv2_success), names, ratio_ci_seeds)


def adv2_maps_closer_than_pgd(
    adv2_l1: Any, pgd_l1: Any, adv2_success: Any, *, min_images: int = MIN_IMAGES
) -> Verdict:
    """Chapter 3, claim 2: ADV2's maps are much closer to the benign maps than PGD's.

    Per attacked image: ``adv2_l1`` = L1(ADV2 map, benign map), ``pgd_l1`` = L1(PGD map, benign
    map), ``adv2_success`` flags (each a plain array, or :class:`adv2.core.seed_stats.BySeed` of one
    array per training seed); or ``{interpreter: array}`` each, for every interpreter. ADV2's
    distances count over its successful images, PGD's over all (the authors' statistics). The
    same rule as :func:`adv2_keeps_rts_maps_close`.
    """
    cid = "adv2_maps_closer_than_pgd"
    return _per_part(
        cid, lambda a, p, s: _maps_closer(cid, a, p, s, min_images), (adv2_l1, pgd_l1, adv2_success)
    )


def larger_inputs_help_adv2(
    small: Mapping[str, Any], large: Mapping[str, Any], *, min_images: int = MIN_IMAGES
) -> Verdict:
    """Chapter 7: does ADV2's advantage over PGD grow with the input size?

    ``small`` and ``large`` hold the per-image arrays of the same attacked images at the smallest
    and the largest input size: ``{"adv2_l1", "pgd_l1", "adv2_success"}`` each (every array may be
    :class:`adv2.core.seed_stats.BySeed`, all or none: pooled over training seeds), or
    ``{interpreter: {...}}`` for every interpreter. The estimate is the ADV2 / PGD L1 ratio at the
    large size over the one at the small size (paired bootstrap over images)."""
    cid = "larger_inputs_help_adv2"
    claim = CLAIMS[cid]
    keys = ("adv2_l1", "pgd_l1", "adv2_success")

    def prepare(*by_size: Any) -> Verdict | tuple:  # one seed's arrays, small then large
        arrays = []
        for name, (adv, pgd, success) in (("small", by_size[:3]), ("large", by_size[3:])):
            ok = _flags(success, f"{name} adv2_success")
            arrays += [_only_where(adv, ok, f"{name} adv2_l1"), as_vector(pgd, f"{name} pgd_l1")]
        if len({len(a) for a in arrays}) != 1:
            raise ValueError(f"{cid}: both sizes must describe the same attacked images")
        short = _too_few(claim, len(arrays[0]), min_images)
        if short:
            return short
        for name, a in (("smallest", arrays[0]), ("largest", arrays[2])):
            if int(np.isfinite(a).sum()) < 2:
                why = f"ADV2 reached the target on fewer than 2 images at the {name} size: too few maps"
                return verdict_of(claim, NOT_MEASURABLE, why)
        return arrays[2], arrays[3], arrays[0], arrays[1]

    def one(s: Mapping[str, Any], lg: Mapping[str, Any]) -> Verdict:
        for name, d in (("small", s), ("large", lg)):
            missing = [k for k in keys if k not in d]
            if missing:
                raise ValueError(f"{cid}: {name} lacks {missing}; expected keys {list(keys)}")
        names = [f"{size} {k}" for size in ("small", "large") for k in keys]
        return _per_seed(cid, prepare, [d[k] for d in (s, lg) for k in keys], names, ratio_of_ratios_ci_seeds)

    if set(small) <= set(keys) and set(large) <= set(keys):
        return one(small, large)
    if set(small) != set(large):
        raise ValueError(
            f"{cid}: the two sizes name different interpreters: {sorted(small)} vs {sorted(large)}"
        )
    return all_of(cid, {k: one(small[k], large[k]) for k in small})


def adv2_keeps_rts_maps_close(
    adv2_l1: Any, pgd_l1: Any, adv2_success: Any, *, min_images: int = MIN_IMAGES
) -> Verdict:
    """Chapter 6, Table 10: on RTS, ADV2's maps stay "fairly similar to benign cases".

    Chapter 3's rule (:func:`adv2_maps_closer_than_pgd`) applied to RTS: the same inputs and
    threshold give the same status in both chapters.
    """
    return _maps_closer("adv2_keeps_rts_maps_close", adv2_l1, pgd_l1, adv2_success, min_images)


def rtsa_like_rts_on_benign(benign_l1: Any, *, min_images: int = MIN_IMAGES) -> Verdict:
    """Chapters 4 and 6: "RTSA behaves almost identically to RTS on benign inputs".

    ``benign_l1``: per image, L1 between RTS's and RTSA's benign maps (true class); or ``BySeed``.
    """
    cid = "rtsa_like_rts_on_benign"

    def prepare(b: Any) -> Verdict | tuple:
        x = as_vector(b, "benign_l1")
        return _too_few(CLAIMS[cid], int(np.sum(np.isfinite(x))), min_images) or (x,)

    return _per_seed(cid, prepare, (benign_l1,), ("benign_l1",), mean_ci_seeds)


def rtsa_more_noise_sensitive(l1_rts: Any, l1_rtsa: Any, *, min_images: int = MIN_IMAGES) -> Verdict:
    """Chapter 5, Figure 15: RTSA's maps move more than RTS's under decision-changing noise.

    Per calibration image at the strongest noise level: ``l1_rts`` / ``l1_rtsa`` = L1(clean map,
    noisy map) of each interpreter (``BySeed``: pooled), or ``{noise type: array}`` for every type.
    """
    cid = "rtsa_more_noise_sensitive"
    claim = CLAIMS[cid]

    def prepare(rts: Any, rtsa: Any) -> Verdict | tuple:
        r, ra = as_vector(rts, "l1_rts"), as_vector(rtsa, "l1_rtsa")
        keep = _both_finite(r, ra, "l1_rts and l1_rtsa", "values")
        short = _too_few(claim, int(keep.sum()), min_images)
        if short:
            return short
        if not r[keep].mean() > 0:
            why = "RTS's maps did not move under this noise (mean L1 0): the ratio is undefined"
            return verdict_of(claim, NOT_MEASURABLE, why)
        return np.where(keep, ra, np.nan), np.where(keep, r, np.nan)  # pairs with both values

    def one(rts: Any, rtsa: Any) -> Verdict:
        return _per_seed(cid, prepare, (rts, rtsa), ("l1_rts", "l1_rtsa"), ratio_ci_seeds)

    return _per_part(cid, one, (l1_rts, l1_rtsa))


def _adv2_l1_ratio(
    cid: str, num: tuple[Any, Any, str], den: tuple[Any, Any, str], min_images: int
) -> Verdict:
    """Ratio of two attacks' mean ADV2 map L1 on the same images: ``num`` / ``den`` are
    ``(per-image L1, success flags, name)``; each mean is over that attack's successes (``BySeed``
    arrays: pooled)."""
    claim, labels = CLAIMS[cid], (num[2], den[2])
    names = [f"{k}_{n.lower()}" for n in labels for k in ("adv2_l1", "adv2_success")]

    def prepare(l1_n: Any, ok_n: Any, l1_d: Any, ok_d: Any) -> Verdict | tuple:
        flags = [_flags(ok, name) for ok, name in zip((ok_n, ok_d), names[1::2])]
        if len(flags[0]) != len(flags[1]):
            raise ValueError(
                f"both attacks must run on the same images, got {len(flags[0])} and {len(flags[1])} success flags"
            )
        short = _too_few(claim, len(flags[0]), min_images)
        if short:
            return short
        values = [_only_where(v, ok, name) for v, ok, name in zip((l1_n, l1_d), flags, names[::2])]
        for name, v in zip(labels, values):
            k = int(np.isfinite(v).sum())
            if k < 2:
                return verdict_of(
                    claim,
                    NOT_MEASURABLE,
                    f"ADV2 against {name} reached the target on {k} of {len(v)} images: "
                    "too few adversarial maps to measure (at least 2)",
                )
        if not np.nanmean(values[1]) > 0:
            return verdict_of(
                claim,
                NOT_MEASURABLE,
                f"ADV2's maps on {den[2]} equal the benign maps (mean L1 0): ratio undefined",
            )
        return tuple(values)

    return _per_seed(cid, prepare, (num[0], num[1], den[0], den[1]), names, ratio_ci_seeds)


def _adv2_l1_against_rtsa(cid: str, other: str, doc: str) -> Callable[..., Verdict]:
    """A chapter-6 rule: ADV2's mean map L1 against RTSA over its mean map L1 against ``other``
    (RTS, or the beta = 0 control), per attacked image (same images for both attacks), each mean
    over that attack's successes; arguments ``(l1 vs other, success vs other, l1 vs RTSA,
    success vs RTSA)``."""

    def rule(
        adv2_l1_other: Any,
        adv2_success_other: Any,
        adv2_l1_rtsa: Any,
        adv2_success_rtsa: Any,
        *,
        min_images: int = MIN_IMAGES,
    ) -> Verdict:
        return _adv2_l1_ratio(
            cid,
            (adv2_l1_rtsa, adv2_success_rtsa, "RTSA"),
            (adv2_l1_other, adv2_success_other, other),
            min_images,
        )

    rule.__name__ = rule.__qualname__ = cid
    rule.__doc__ = doc
    return rule


aid_separates_adv2_maps = _adv2_l1_against_rtsa(
    "aid_separates_adv2_maps",
    "RTS",
    """Chapter 6, Observation 9: against RTSA, ADV2's maps are "fairly distinguishable": ADV2's
    maps against RTSA over its maps against RTS (per-image L1 to each attack's own benign map).""",
)
aid_beats_its_control = _adv2_l1_against_rtsa(
    "aid_beats_its_control",
    "control",
    """Chapter 6: is the separation AID's? ADV2 against RTSA vs against the same fine-tuning with
    beta = 0 (the control).""",
)


def _share_of_gap(
    cid: str,
    attacks: Mapping[str, tuple[str, Any, str, Any, str]],
    pgd_l1: Any,
    pgd_name: str,
    no_gap: str,
    min_images: int,
) -> Verdict:
    """Where ADV2's ``value`` lies between a ``floor`` (0) and PGD's maps (1), per attacked image:
    ``attacks`` holds ``value`` and ``floor``, each ``(label, l1, l1 name, success, success name)``
    (ADV2's L1 counted where it succeeded), checked in their order; ``no_gap``: why there is no
    verdict when PGD's maps are no farther than the floor's (``BySeed`` arrays: pooled)."""
    claim = CLAIMS[cid]
    roles = list(attacks)

    def prepare(*arrays: Any) -> Verdict | tuple:
        named = dict(zip(roles, zip(arrays[0:-1:2], arrays[1:-1:2])))  # role: (l1, success)
        flags = {role: _flags(named[role][1], attacks[role][4]) for role in roles}
        pgd = as_vector(arrays[-1], pgd_name)
        if len({len(pgd), *map(len, flags.values())}) != 1:
            raise ValueError(f"{cid}: all three measures must describe the same images")
        short = _too_few(claim, len(pgd), min_images)
        if short:
            return short
        l1 = {role: _only_where(named[role][0], flags[role], attacks[role][2]) for role in roles}
        for role, (label, *_) in attacks.items():
            if int(np.isfinite(l1[role]).sum()) < 2:
                return verdict_of(
                    claim, NOT_MEASURABLE, f"ADV2 against {label} succeeded on fewer than 2 images"
                )
        if not np.nanmean(pgd) > np.nanmean(l1["floor"]):
            return verdict_of(claim, NOT_MEASURABLE, no_gap)
        return l1["value"], l1["floor"], pgd

    arrays = [x for role in roles for x in (attacks[role][1], attacks[role][3])] + [pgd_l1]
    names = [x for role in roles for x in (attacks[role][2], attacks[role][4])] + [pgd_name]
    return _per_seed(cid, prepare, arrays, names, share_ci_seeds)


def aid_removes_adv2_advantage(
    adv2_l1_rts: Any,
    adv2_success_rts: Any,
    adv2_l1_rtsa: Any,
    adv2_success_rtsa: Any,
    pgd_l1_rtsa: Any,
    *,
    min_images: int = MIN_IMAGES,
) -> Verdict:
    """Chapter 6: Table 10 read against its ceiling. ADV2 against an RTSA it cannot fool at all
    still leaves maps no farther than plain PGD's, so the share (L1_RTSA - L1_RTS) / (L1_PGD(RTSA)
    - L1_RTS) says how much of ADV2's advantage over PGD AID removes (1: all of it). Per attacked
    image; ADV2's means over its successes, PGD's over all images."""
    return _share_of_gap(
        "aid_removes_adv2_advantage",
        {
            "floor": ("RTS", adv2_l1_rts, "adv2_l1_rts", adv2_success_rts, "adv2_success_rts"),
            "value": ("RTSA", adv2_l1_rtsa, "adv2_l1_rtsa", adv2_success_rtsa, "adv2_success_rtsa"),
        },
        pgd_l1_rtsa,
        "pgd_l1_rtsa",
        "PGD's maps are no farther than ADV2's on RTS: no advantage to remove",
        min_images,
    )


def adv2_does_not_transfer(
    cell_l1: Any,
    cell_success: Any,
    diagonal_l1: Any,
    diagonal_success: Any,
    pgd_l1: Any,
    *,
    min_images: int = MIN_IMAGES,
) -> Verdict:
    """Chapter 9: one off-diagonal cell (source S, target T) of the transfer matrix. Per attacked
    image, each an L1 of T's map to T's benign map: ``cell_l1`` on ADV2-against-S inputs (counted
    where ``cell_success``), ``diagonal_l1`` on ADV2-against-T inputs (where ``diagonal_success``),
    ``pgd_l1`` on PGD's inputs (all images). The share (cell - diagonal) / (PGD - diagonal) is 0
    when S's attack fools T as well as T's own, 1 when it leaves T's map as far as PGD's."""
    return _share_of_gap(
        "adv2_does_not_transfer",
        {
            "value": ("the source", cell_l1, "cell_l1", cell_success, "cell_success"),
            "floor": (
                "the target (the diagonal)",
                diagonal_l1,
                "diagonal_l1",
                diagonal_success,
                "diagonal_success",
            ),
        },
        pgd_l1,
        "pgd_l1",
        "PGD's maps are no farther from the benign maps than the target's own attack's: no gap to place the cell in",
        min_images,
    )


__all__ = [
    "adv2_does_not_transfer",
    "adv2_keeps_rts_maps_close",
    "adv2_maps_closer_than_pgd",
    "adv2_success_like_pgd",
    "aid_beats_its_control",
    "aid_removes_adv2_advantage",
    "aid_separates_adv2_maps",
    "larger_inputs_help_adv2",
    "rtsa_like_rts_on_benign",
    "rtsa_more_noise_sensitive",
]
