"""Sample sizes per profile and the interval widths they reached (no number typed by hand).

The re-running page states, per profile, how many images each attack setting uses (from
params/<profile>.yaml over the chapter's schema defaults) and, for the run the book shows, the
half-width of the 95 % intervals of the key ratios, read from the published results'
``intervals`` blocks: chapter 3's ADV2/PGD map-L1 ratio per classifier and interpreter, and
Table 10's RTSA/RTS ratio per classifier. A setting with fewer than ``ILLUSTRATION_BELOW`` images
is labelled an illustration, not a measurement. The values become MyST substitutions
({{ n_quick_03 }}, {{ hw03_resnet_grad }}, ...) used by book/rerunning.md."""

from __future__ import annotations

import json
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("smoke", "quick", "full", "paper")
ILLUSTRATION_BELOW = 8  # issue 16: a setting with fewer images is an illustration
NOT_IN_RUN = "not in this run"
SMOKE_NOTE = "illustration: fewer than 8 images per setting or too few to settle a claim"
# chapter 3's settings: (key, results path under intervals, interpreter)
CH03 = [
    (f"{cls}_{i}", ("fashion-mnist", cls, i))
    for cls in ("resnet", "densenet")
    for i in ("grad", "cam", "rts", "mask")
]
CH03 += [(f"lite0_{i}", ("imagenet-sample", "efficientnet-lite0", i)) for i in ("grad", "cam")]
CH06 = ("resnet", "densenet")


def _results(stem: str) -> dict:
    path = ROOT / "results" / f"{stem}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _params(profile: str, stem: str) -> dict:
    """A chapter's parameters at ``profile``: schema defaults, then the profile's common section
    (names the chapter declares), then its own section; what ``python -m adv2 run`` would use."""
    from adv2.chapters import schema
    from adv2.core import config

    declared = schema.chapter_schema(stem)
    return {
        **schema.defaults(stem),
        **{k: v for k, v in config.load_profile(profile, stem).items() if k in declared},
    }


def images(n: int | None) -> str:
    if n is None:
        return "none"
    return f"{n} (illustration)" if n < ILLUSTRATION_BELOW else str(n)


def profile_sizes(profile: str) -> dict[str, str]:
    """Images per attack setting at ``profile`` (the counts sampled; chapter 3 and Table 10 keep
    the correctly classified ones)."""
    p3, p6 = _params(profile, "03_adv2"), _params(profile, "06_table10")
    n3 = p3["n_images"]
    return {
        f"n_{profile}_03": images(n3),
        f"n_{profile}_03_mask": images(min(p3["mask_n_images"], n3)),
        f"n_{profile}_03_photos": images(p3["imagenet_n_images"] if p3["imagenet_sample"] else None),
        f"n_{profile}_06": images(p6["n_images"]),
    }


def shown_profile() -> str:
    return _results("03_adv2").get("params", {}).get("profile", "not published")


def status(profile: str) -> str:
    if profile == shown_profile():
        return "the run the book shows: half-widths below"
    if profile == "smoke":
        return SMOKE_NOTE
    return "published run" if (ROOT / "results" / f"timings-{profile}.json").is_file() else "not run yet"


def _fmt(x: float) -> str:
    from adv2.core.formatting import fmt

    return fmt(x)


def interval_cells(key: str, est: dict | None) -> dict[str, str]:
    """Ratio with its interval, half-width and images of one setting's estimate (as saved)."""
    if not est or est.get("value") is None:
        return {f"{c}{key}": NOT_IN_RUN for c in ("r", "hw", "n", "x")}
    low, high, n = est.get("low"), est.get("high"), int(est.get("n", 0))
    if low is None or high is None:
        return {
            f"r{key}": _fmt(est["value"]),
            f"hw{key}": "no interval",
            f"n{key}": images(n),
            f"x{key}": "no interval",
        }
    # the ratios test a difference from 1 (no effect): does the interval leave 1 out?
    return {
        f"r{key}": f"{_fmt(est['value'])} [{_fmt(low)}, {_fmt(high)}]",
        f"hw{key}": _fmt((high - low) / 2),
        f"n{key}": images(n),
        f"x{key}": ("illustration only" if n < ILLUSTRATION_BELOW else "no" if low <= 1 <= high else "yes"),
    }


def _get(d: dict, path: tuple[str, ...]) -> dict | None:
    for k in path:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def substitutions() -> dict[str, str]:
    subs = {"sizes_shown_profile": shown_profile()}
    for profile in PROFILES:
        subs.update(profile_sizes(profile))
        subs[f"sizes_{profile}_status"] = status(profile)
    iv3 = _results("03_adv2").get("numbers", {}).get("intervals", {})
    for key, path in CH03:
        subs.update(interval_cells(f"03_{key}", _get(iv3, (*path, "l1_ratio_adv2_over_pgd"))))
    iv6 = _results("06_table10").get("numbers", {}).get("intervals", {})
    for cls in CH06:
        subs.update(interval_cells(f"06_{cls}", _get(iv6, (cls, "adv2_l1_ratio"))))
    return subs


def add_substitutions(app, config) -> None:
    subs = substitutions()
    if NOT_IN_RUN in subs.values():
        logger.info("sample_sizes: some intervals are missing from results/")
    config.myst_substitutions = {**subs, **(config.myst_substitutions or {})}


def setup(app):
    app.connect("config-inited", add_substitutions, priority=901)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
