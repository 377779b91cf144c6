"""The paper's claims the book tests: what each claim says (the registry :data:`CLAIMS`: statement,
rule, threshold, the paper's value, chapters) and how a verdict is decided from an estimate.

The claims themselves, one function each, are in :mod:`adv2.chapters.claim_rules`; each computes
an :class:`adv2.core.stats.Estimate` with its 95 % interval from per-image arrays and hands it to
:func:`decide`, which returns a :class:`Verdict`:

* ``holds`` -- the whole interval is on the claim's side of the threshold;
* ``does not hold`` -- the whole interval is on the other side;
* ``inconclusive`` -- the interval contains the threshold: inconclusive at this sample size, with
  ``n_needed``, roughly how many images would settle it;
* ``not measurable`` -- the inputs cannot support a verdict (fewer than :data:`MIN_IMAGES` images,
  no successful attack, all NaN), with the reason.

A claim made for every interpreter (or noise type) combines the per-part verdicts with
:func:`all_of`. The front page's table of them is :mod:`adv2.book.claimspage`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adv2.core import paper
from adv2.core.config import PHOTO_CLASSIFIER, PHOTO_CLASSIFIERS
from adv2.core.formatting import fmt
from adv2.core.phrases import PHOTO_CLASSIFIER_LABELS
from adv2.core.stats import PAIRED_RATE_DIFF, Estimate, images_needed

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"
NOT_MEASURABLE = "not measurable"
STATUSES = (HOLDS, DOES_NOT_HOLD, INCONCLUSIVE, NOT_MEASURABLE)

# Below this many images a setting is an illustration, not a measurement (issue 16): its verdicts
# are "not measurable" whatever the interval says.
MIN_IMAGES = 8
LEVEL = 0.95

# The thresholds (ours; the paper states these claims in words or with one number each).
SUCCESS_GAP = 0.15  # ADV2's success rate at most 0.15 below PGD's
MAPS_CLOSE_RATIO = 0.5  # ADV2's map L1 at most half of PGD's: "much closer"
BENIGN_L1_MAX = 0.05  # the paper's 0.03 plus a margin for coarser maps and shorter training
NOISE_RATIO_MIN = 1.3  # well above 1, below the paper's smallest ratio under either parse
AID_RATIO_MIN = 5.0  # half the paper's tenfold separation
AID_SHARE_MIN = 0.5  # AID removes at least half of ADV2's advantage over PGD on RTS
CONTROL_RATIO_MIN = 1.0  # ADV2's maps farther from benign on RTSA than on its beta = 0 control
SIZE_RATIO_MAX = 1.0  # chapter 7: any fall of the ADV2 / PGD ratio from the smallest to the largest size
# chapter 9: an off-diagonal cell of the transfer matrix lies nearer PGD's cell than the diagonal's
# (share 0: as close to the benign map as T's own attack; 1: as far as PGD). Chosen before the
# chapter's first run: the midpoint, the only value that splits "closer to PGD" from "closer to
# the diagonal" without favouring either side.
TRANSFER_SHARE_MIN = 0.5

AT_MOST, AT_LEAST = "at most", "at least"


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Claim:
    """One claim of the paper as the book tests it."""

    id: str
    statement: str  # the claim in words (front page, chapter tables)
    rule: str  # how the verdict is decided, in words
    measure: str  # what the estimate is
    threshold: float
    direction: str  # AT_MOST / AT_LEAST: the side of the threshold where it holds
    paper: str  # the paper's value, as the chapters show it
    chapters: tuple[int, ...]
    # Where the paper's number is another quantity than the rule's estimate (Table 10 gives ADV2's
    # L1 on RTS, the rule decides on its ratio to PGD's), the like quantity shown beside it:
    # (label, results stem, dotted path of an interval in its ``numbers`` with "{setting}").
    beside: tuple[str, str, str] | None = None

    @property
    def chapter(self) -> str:
        return ", ".join(str(c) for c in self.chapters)

    @property
    def threshold_text(self) -> str:
        """The rule in one short phrase, for a table: "L1 ratio ADV2 / PGD ≤ 0.5"."""
        sign = "≤" if self.direction == AT_MOST else "≥"
        return f"{self.measure} {sign} {self.threshold:g}"


def _ratio_text(r: dict[str, float]) -> str:
    return " / ".join(fmt(v, 2) for v in r.values())


_INTERVAL = "the 95 % interval"
CLAIMS: dict[str, Claim] = {
    c.id: c
    for c in (
        Claim(
            "adv2_success_like_pgd",
            "ADV2 fools the classifier about as often as PGD",
            f"holds when, for every interpreter, {_INTERVAL} of ADV2's success rate minus PGD's "
            f"(same images, {PAIRED_RATE_DIFF}) lies at or above -{SUCCESS_GAP}; "
            "not measurable when PGD reaches the target on no image",
            "ADV2 success rate - PGD success rate",
            -SUCCESS_GAP,
            AT_LEAST,
            "claimed (qualitative; numbers not recovered)",
            (3,),
        ),
        Claim(
            "adv2_maps_closer_than_pgd",
            "ADV2's maps stay much closer to the benign maps than PGD's",
            f"holds when, for every interpreter, {_INTERVAL} of the ratio of mean L1(ADV2 map, "
            "benign map) over ADV2's successes to mean L1(PGD map, benign map) over all images "
            f"(paired bootstrap over images) lies at or below {MAPS_CLOSE_RATIO}; not measurable "
            "with fewer than 2 successful ADV2 attacks",
            "L1 ratio ADV2 / PGD",
            MAPS_CLOSE_RATIO,
            AT_MOST,
            "claimed (qualitative; numbers not recovered)",
            (3,),
        ),
        Claim(
            "rtsa_like_rts_on_benign",
            "AID's RTSA behaves almost like RTS on benign inputs",
            f"holds when {_INTERVAL} of the mean L1 between RTS's and RTSA's benign maps "
            f"(bootstrap over images) lies at or below {BENIGN_L1_MAX}",
            "benign L1(RTS map, RTSA map)",
            BENIGN_L1_MAX,
            AT_MOST,
            f"{fmt(paper.PAPER_TABLE10['benign_l1_rts_vs_rtsa'], 1)} (Table 10)",
            (4, 6),
        ),
        Claim(
            "rtsa_more_noise_sensitive",
            "RTSA is more sensitive than RTS to noise that changes the decision (Figure 15)",
            f"holds when, for every noise type at the strongest level, {_INTERVAL} of RTSA's mean "
            "L1(clean map, noisy map) divided by RTS's (paired bootstrap over images) lies at or "
            f"above {NOISE_RATIO_MIN}",
            "L1 ratio RTSA / RTS under noise",
            NOISE_RATIO_MIN,
            AT_LEAST,
            f"ratio {_ratio_text(paper.fig15_ratio())} at 30 % (Figure 15, our reading of its "
            f"garbled table; the other reading: {_ratio_text(paper.fig15_ratio(paper.PAPER_FIG15_L1_H1))})",
            (5,),
        ),
        Claim(
            "adv2_keeps_rts_maps_close",
            "ADV2 keeps RTS's maps close to the benign maps (Table 10)",
            "the rule of 'ADV2's maps stay much closer than PGD's' on RTS: holds when "
            f"{_INTERVAL} of mean L1(ADV2 map, benign map) over ADV2's successes divided by mean "
            f"L1(PGD map, benign map) lies at or below {MAPS_CLOSE_RATIO}",
            "L1 ratio ADV2 / PGD on RTS",
            MAPS_CLOSE_RATIO,
            AT_MOST,
            "no ratio given (Table 10 has no PGD row; its L1 is shown beside ours below)",
            (6,),
            (
                f"ADV2's map L1 on RTS (paper: L1 {fmt(paper.PAPER_TABLE10['adv2_l1_rts'], 1)}, Table 10)",
                "06_table10",
                "intervals.{setting}.adv2_l1_rts",
            ),
        ),
        Claim(
            "aid_separates_adv2_maps",
            "Against RTSA, ADV2's maps end up about ten times further from the benign maps (Table 10)",
            f"holds when {_INTERVAL} of the ratio of ADV2's mean map L1 against RTSA to that "
            "against RTS (each over its successful attacks, paired bootstrap over images) lies at "
            f"or above {AID_RATIO_MIN:g}",
            "ADV2 L1 ratio RTSA / RTS",
            AID_RATIO_MIN,
            AT_LEAST,
            f"ratio {fmt(paper.PAPER_TABLE10_RATIO, 2)} (Table 10: "
            f"{fmt(paper.PAPER_TABLE10['adv2_l1_rtsa'], 2)} / "
            f"{fmt(paper.PAPER_TABLE10['adv2_l1_rts'], 1)})",
            (6,),
        ),
        Claim(
            "aid_removes_adv2_advantage",
            "AID takes away most of ADV2's advantage over PGD: against RTSA, ADV2's maps end up "
            "nearly as far from the benign maps as PGD's (Table 10, read against its ceiling)",
            f"holds when {_INTERVAL} of the share (L1 ADV2 on RTSA - L1 ADV2 on RTS) / (L1 PGD on "
            "RTSA - L1 ADV2 on RTS) (ADV2's means over its successes, PGD's over all images, paired "
            f"bootstrap over images) lies at or above {AID_SHARE_MIN:g}",
            "share of ADV2's advantage over PGD removed by AID",
            AID_SHARE_MIN,
            AT_LEAST,
            "not given (Table 10 has no PGD row); implied: 0.09 / (L1 PGD on RTSA - "
            f"{fmt(paper.PAPER_TABLE10['adv2_l1_rts'], 1)})",
            (6,),
        ),
        Claim(
            "aid_beats_its_control",
            "The separation is AID's: ADV2's maps end up farther from the benign maps on RTSA "
            "than on the same fine-tuning with the AID term off (beta = 0; the book's control)",
            f"holds when {_INTERVAL} of the ratio of ADV2's mean map L1 against RTSA to that "
            "against the beta = 0 control (each over its successful attacks, paired bootstrap "
            f"over images) lies at or above {CONTROL_RATIO_MIN:g}",
            "ADV2 L1 ratio RTSA / control",
            CONTROL_RATIO_MIN,
            AT_LEAST,
            "not in the paper (the book's control)",
            (6,),
        ),
        Claim(
            "larger_inputs_help_adv2",
            "On larger inputs ADV2's maps get closer to the benign maps, relative to PGD's "
            "(Fashion-MNIST upsampled; the book's question, not the paper's)",
            f"holds when, for every interpreter, {_INTERVAL} of the ADV2 / PGD L1 ratio (ADV2's "
            "L1 over its successes, PGD's over all images) at the largest input size divided by "
            "the same ratio at the smallest (the same images at both sizes, paired bootstrap) lies "
            f"at or below {SIZE_RATIO_MAX:g}",
            "ADV2 / PGD L1 ratio, largest size / smallest size",
            SIZE_RATIO_MAX,
            AT_MOST,
            "not in the paper (ImageNet only; the book's own experiment)",
            (7,),
        ),
        Claim(
            "adv2_does_not_transfer",
            "ADV2 against one interpreter does not carry over to another: the other interpreter's "
            "maps stay close to PGD's and far from its own attack's",
            f"holds for a cell (source S, target T != S) when {_INTERVAL} of the share (L1 of T's "
            "map on ADV2-against-S inputs - L1 on ADV2-against-T inputs) / (L1 on PGD inputs - L1 "
            "on ADV2-against-T inputs) (each L1 to T's benign map; ADV2's means over its "
            "successes, PGD's over all images; paired bootstrap over images) lies at or above "
            f"{TRANSFER_SHARE_MIN:g}: the cell is nearer PGD's than the diagonal's",
            "share of the way from the diagonal to PGD",
            TRANSFER_SHARE_MIN,
            AT_LEAST,
            "claimed (qualitative: ADV2's 'low transferability' across interpreters)",
            (9,),
        ),
    )
}

# The book's own questions (not claims of the paper): decided here, not on the front page.
BOOK_QUESTIONS: tuple[str, ...] = ("aid_beats_its_control", "larger_inputs_help_adv2")
# The front page's rows, in order, and its columns (settings).
FRONT_PAGE_CLAIMS: tuple[str, ...] = tuple(c for c in CLAIMS if c not in BOOK_QUESTIONS)
SETTINGS: dict[str, str] = {
    "photos": "photos (EfficientNet-Lite0)",
    "resnet": "Fashion-MNIST ResNet",
    "densenet": "Fashion-MNIST DenseNet",
}


def photo_setting(classifier: str = PHOTO_CLASSIFIER) -> str:
    """The setting (verdicts, results keys) of a photo classifier: ``"photos"`` for the default
    (EfficientNet-Lite0, the book's photo setting so far), ``"photos_lite2"`` for EfficientNet-Lite2."""
    if classifier not in PHOTO_CLASSIFIERS:
        raise ValueError(f"unknown photo classifier {classifier!r}; valid: {', '.join(PHOTO_CLASSIFIERS)}")
    return (
        "photos" if classifier == PHOTO_CLASSIFIER else "photos_" + classifier.removeprefix("efficientnet-")
    )


# the further photo classifiers' settings: a front-page column each, only where a results file holds them
PHOTO_SETTINGS: dict[str, str] = {
    photo_setting(c): f"photos ({PHOTO_CLASSIFIER_LABELS[c]})"
    for c in PHOTO_CLASSIFIERS
    if c != PHOTO_CLASSIFIER
}


def front_page_settings(found: Any = ()) -> dict[str, str]:
    """The front page's settings (columns) and labels: :data:`SETTINGS`, with each further photo
    classifier's setting (:data:`PHOTO_SETTINGS`) right after ``photos`` where ``found`` (setting
    names) holds it, so a page without their verdicts is unchanged."""
    found = set(found)
    out: dict[str, str] = {}
    for setting, label in SETTINGS.items():
        out[setting] = label
        if setting == "photos":
            out.update({s: lab for s, lab in PHOTO_SETTINGS.items() if s in found})
    return out


def is_front_page_setting(setting: str) -> bool:
    """A setting with a front-page column: :data:`SETTINGS` or :data:`PHOTO_SETTINGS`."""
    return setting in SETTINGS or setting in PHOTO_SETTINGS


# ----------------------------------------------------------------------------- verdicts
@dataclass(frozen=True)
class Verdict:
    """A claim's verdict on one run. ``str(verdict)`` is its status."""

    claim_id: str
    statement: str
    rule: str
    status: str  # "holds" | "does not hold" | "inconclusive" | "not measurable"
    reason: str
    estimate: Estimate | None
    n_needed: int | None
    parts: tuple[tuple[str, Verdict], ...] = field(default=())  # per interpreter / noise type

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def __str__(self) -> str:
        return self.status

    def cell(self) -> str:
        """Status with the estimate, for a table cell: "does not hold (0.630 [0.550, 0.710])"."""
        if self.estimate is None or self.estimate.value is None:
            return self.status
        return f"{self.status} ({self.estimate})"

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON (estimate as :meth:`Estimate.as_dict`, parts by name)."""
        return {
            "claim_id": self.claim_id,
            "statement": self.statement,
            "rule": self.rule,
            "status": self.status,
            "reason": self.reason,
            "estimate": None if self.estimate is None else self.estimate.as_dict(),
            "n_needed": self.n_needed,
            "parts": {name: v.as_dict() for name, v in self.parts},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        """Inverse of :meth:`as_dict` (the front page reads verdicts back from results files)."""
        est = d.get("estimate")
        return cls(
            d["claim_id"],
            d["statement"],
            d["rule"],
            d["status"],
            d.get("reason", ""),
            None if est is None else Estimate.from_dict(est),
            d.get("n_needed"),
            tuple((k, cls.from_dict(v)) for k, v in (d.get("parts") or {}).items()),
        )


def claim_named(claim_id: str) -> Claim:
    """The registered claim ``claim_id`` (ValueError naming the valid ones)."""
    try:
        return CLAIMS[claim_id]
    except KeyError:
        raise ValueError(
            f"claim_id {claim_id!r} is not a claim of the book; valid: {', '.join(CLAIMS)}"
        ) from None


def verdict_of(
    claim: Claim, status: str, reason: str, estimate: Estimate | None = None, n_needed: int | None = None
) -> Verdict:
    return Verdict(claim.id, claim.statement, claim.rule, status, reason, estimate, n_needed)


# an inconclusive interval over training seeds: images alone cannot narrow its seeds part
MORE_SEEDS = "more training seeds would settle it (their spread does not shrink with more images)"


def not_measurable(claim_id: str, reason: str) -> Verdict:
    """The verdict of a claim whose inputs cannot support it (``reason`` says why)."""
    return verdict_of(claim_named(claim_id), NOT_MEASURABLE, reason)


def decide(claim_id: str, estimate: Estimate) -> Verdict:
    """Apply claim ``claim_id``'s threshold to ``estimate`` (the rule shared by every chapter)."""
    claim = claim_named(claim_id)
    thr, e = claim.threshold, estimate
    if e.value is None:
        return verdict_of(claim, NOT_MEASURABLE, f"{claim.measure}: nothing to measure", e)
    if e.low is None or e.high is None:
        return verdict_of(claim, NOT_MEASURABLE, f"{claim.measure} {e} has no interval ({e.n} image(s))", e)
    shown = f"{claim.measure} {e} ({e.n} images)"
    t = f"{thr:g}"
    if claim.direction == AT_MOST:
        on_side, off_side = e.high <= thr, e.low > thr
        side_words, other_words = f"at or below {t}", f"above {t}"
    else:
        on_side, off_side = e.low >= thr, e.high < thr
        side_words, other_words = f"at or above {t}", f"below {t}"
    if on_side:
        return verdict_of(claim, HOLDS, f"{shown}: the whole interval is {side_words}", e)
    if off_side:
        return verdict_of(claim, DOES_NOT_HOLD, f"{shown}: the whole interval is {other_words}", e)
    need = images_needed(e, thr)
    if e.covers_seeds:
        more = f"; {MORE_SEEDS}"
    elif need is not None:
        more = f"; about {need} images would settle it"
    else:
        more = "; the value sits on the threshold"
    return verdict_of(
        claim, INCONCLUSIVE, f"inconclusive at this sample size: {shown} contains {t}{more}", e, need
    )


_PRECEDENCE = (DOES_NOT_HOLD, NOT_MEASURABLE, INCONCLUSIVE, HOLDS)


def all_of(claim_id: str, parts: Mapping[str, Verdict]) -> Verdict:
    """A claim made for every part (interpreter, noise type): the parts' verdicts combined.

    ``does not hold`` if any part does not hold; else ``not measurable`` if any part is not
    measurable (the claim cannot be checked for every part); else ``inconclusive`` if any part is;
    else ``holds``. The estimate is the deciding part's (for ``holds``: the part closest to the
    threshold); ``n_needed`` the largest of the inconclusive parts'.
    """
    claim = claim_named(claim_id)
    if not parts:
        return verdict_of(claim, NOT_MEASURABLE, "nothing was run for this claim")
    items = tuple(parts.items())
    status = next(s for s in _PRECEDENCE if any(v.status == s for _, v in items))
    deciding = [(k, v) for k, v in items if v.status == status]
    if status == HOLDS:
        name, part = min(deciding, key=lambda kv: abs(kv[1].estimate.value - claim.threshold))
    elif status == INCONCLUSIVE:
        name, part = max(deciding, key=lambda kv: kv[1].n_needed or 0)
    else:
        name, part = deciding[0]
    needs = [v.n_needed for _, v in deciding if v.n_needed is not None]
    n_needed = max(needs) if status == INCONCLUSIVE and needs else None
    reason = f"{name}: {part.reason}"
    if len(items) > 1:
        reason += " (all: " + "; ".join(f"{k} {v.cell()}" for k, v in items) + ")"
    return Verdict(claim.id, claim.statement, claim.rule, status, reason, part.estimate, n_needed, items)


__all__ = [
    "AID_RATIO_MIN",
    "AID_SHARE_MIN",
    "CONTROL_RATIO_MIN",
    "AT_LEAST",
    "AT_MOST",
    "BENIGN_L1_MAX",
    "CLAIMS",
    "DOES_NOT_HOLD",
    "FRONT_PAGE_CLAIMS",
    "HOLDS",
    "INCONCLUSIVE",
    "LEVEL",
    "MAPS_CLOSE_RATIO",
    "MIN_IMAGES",
    "NOISE_RATIO_MIN",
    "NOT_MEASURABLE",
    "SETTINGS",
    "PHOTO_SETTINGS",
    "front_page_settings",
    "is_front_page_setting",
    "photo_setting",
    "STATUSES",
    "SUCCESS_GAP",
    "Claim",
    "Verdict",
    "BOOK_QUESTIONS",
    "SIZE_RATIO_MAX",
    "TRANSFER_SHARE_MIN",
    "all_of",
    "claim_named",
    "decide",
    "not_measurable",
    "verdict_of",
]
