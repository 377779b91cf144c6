"""AID on the photos: does a bigger training pool let RTSA learn without drifting? (issue 23)

    python benchmarks/bench_photo_aid.py              # both pools, every setting (~1 h, 1 thread)
    python benchmarks/bench_photo_aid.py --pools packages-v2 --settings published

For each photo pool (``packages``: 42 photographs, the committed RTS; ``packages-v2``: 72) this
trains the photo RTS (cached) and, by the library's own :func:`load_photo_rtsa`, each AID setting
of :data:`SETTINGS` on it (its cache key is its recipe; a beta = 0 control beside the strongest
ones). Every RTSA is then measured on the **selection photos**: the usable labelled photos that
chapter 6 does not attack at ``quick`` (positions ``--skip`` on of the seeded order of
:func:`adv2.chapters._common.photo_attack_set`), so the choice of the book's photo RTSA is made on
photos that no ``quick`` verdict reads:

* benign drift, L1(RTS map, RTSA map) of the true class, per photo (the paper: 0.03);
* Table 10's ratio, ADV2's map L1 against that RTSA over ADV2's against RTS (same stage-1 inputs,
  ``--attack-scale`` of the authors' steps on the fast schedule), with its paired interval;
* the ceiling PGD-L1 / ADV2-L1(RTS) and the share of ADV2's advantage over PGD that AID removes.

:func:`adv2.chapters.aid_photo_pools.choose` applies the book's rule: the highest ratio among
settings whose mean drift is at most 0.05 and whose ratio interval lies above its control's. Writes ``results/bench_photo_aid.json`` atomically (chapter 6 shows it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from adv2.chapters import aid_eval, ch06  # noqa: E402
from adv2.chapters._common import photo_attack_set  # noqa: E402
from adv2.chapters.aid_photo_pools import choose  # noqa: E402
from adv2.chapters.claims import BENIGN_L1_MAX  # noqa: E402
from adv2.core.metrics import l1_distance  # noqa: E402
from adv2.core.stats import mean_ci, ratio_ci, share_ci  # noqa: E402
from adv2.trained.checkpoints import machine_description  # noqa: E402
from adv2.trained.data import imagenet_class_names  # noqa: E402
from adv2.trained.files import atomic_write_json  # noqa: E402
from adv2.trained.photo_recipes import PhotoRTSARecipe, PhotoRTSRecipe  # noqa: E402
from adv2.trained.photomodels import load_photo_rts, load_photo_rtsa  # noqa: E402
from adv2.trained.pretrained import efficientnet_lite  # noqa: E402

POOLS = ("packages", "packages-v2")
# setting -> the PhotoRTSARecipe fields it sets (each explicit, so a setting's recipe and cache key
# do not move when the recipe's defaults do); "... beta 0" is the control of the setting it names.
# "published": the first photo RTSA (the decoder alone, anchor 100, 40 iterations)
SETTINGS: dict[str, dict] = {
    "published": {"distill_weight": 100.0},
    "anchor 50": {"distill_weight": 50.0},
    "3x iterations": {"distill_weight": 100.0, "iterations": 120},
    "own encoder, 3x iterations": {"distill_weight": 100.0, "train_encoder": True, "iterations": 120},
    "anchor 50, beta 0": {"distill_weight": 50.0, "beta": 0.0},
    "own encoder, 3x iterations, beta 0": {
        "distill_weight": 100.0,
        "train_encoder": True,
        "iterations": 120,
        "beta": 0.0,
    },
}


def recipe(pool: str, setting: str) -> PhotoRTSARecipe:
    return PhotoRTSARecipe(rts=PhotoRTSRecipe(pool=pool), **SETTINGS[setting])


def measure_pool(pool: str, settings: list[str], *, skip: int, attack_scale: float, seed: int) -> dict:
    """Train (or load) the pool's RTS and every setting's RTSA, then attack them all on the
    selection photos (one shared stage 1; ADV2 against each interpreter)."""
    model = efficientnet_lite(imagenet_class_names()).eval()
    rts, rts_art = load_photo_rts(PhotoRTSRecipe(pool=pool), progress=False)
    nets, train = {"rts": rts}, {}
    for s in settings:
        t0 = time.time()
        net, art = load_photo_rtsa(recipe(pool, s), progress=True, model=model, rts=rts, rts_artifact=rts_art)
        nets[s] = net
        m = art.metrics
        train[s] = {
            "key": recipe(pool, s).key,
            "origin": art.origin,
            "train_seconds": m.get("seconds"),
            "load_seconds": time.time() - t0,
            "pool_images": m.get("pool_images"),
            "aid_gap_first": (m.get("aid_l1") or [None])[0],
            "aid_gap_last": (m.get("aid_l1") or [None])[-1],
        }
        print(f"{pool} / {s}: {art.origin} {m.get('seconds')}", flush=True)
    _, chosen = photo_attack_set(model, 18, seed=seed)
    x, y, t = chosen.x[skip:], chosen.y[skip:], chosen.target[skip:]
    cfg = ch06.photo_attack_config(attack_scale, schedule="fast")
    t0 = time.time()
    out = aid_eval.attack_interpreters(model, nets, x, y, t, cfg, batch_size=8, progress=True)
    seconds = time.time() - t0
    l1 = {n: aid_eval.adv2_l1_of_successes(out, n) for n in nets}
    pgd = {n: l1_distance(out["pgd"][n], out["benign"][n]) for n in nets}
    rows = {}
    for s in settings:
        drift = l1_distance(out["benign"]["rts"], out["benign"][s])
        rows[s] = {
            **train[s],
            "drift": mean_ci(drift).as_dict(),
            "drift_per_photo": drift.tolist(),
            "adv2_l1": mean_ci(l1[s]).as_dict(),
            "adv2_l1_per_photo": l1[s].tolist(),
            "success": float(out["success"][s].float().mean()),
            "ratio": ratio_ci(l1[s], l1["rts"], paired=True).as_dict(),
            "pgd_l1": mean_ci(pgd[s]).as_dict(),
            "share": share_ci(l1[s], l1["rts"], pgd[s]).as_dict(),
        }
    return {
        "rts_key": PhotoRTSRecipe(pool=pool).key,
        "rts_origin": rts_art.origin,
        "rts_train_seconds": rts_art.metrics.get("seconds"),
        "pool_photos": sum((rts_art.metrics.get("pool_photos_per_source") or {}).values()) or None,
        "n_photos": len(x),
        "adv2_l1_rts": mean_ci(l1["rts"]).as_dict(),
        "adv2_l1_rts_per_photo": l1["rts"].tolist(),
        "ceiling": ratio_ci(pgd["rts"], l1["rts"], paired=True).as_dict(),
        "attack_seconds": seconds,
        "settings": rows,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pools", nargs="+", default=list(POOLS), choices=POOLS)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--skip", type=int, default=8, help="verdict photos of chapter 6 at quick (left out)")
    ap.add_argument("--attack-scale", type=float, default=0.01, help="of the authors' 300 + 1200 steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--output", default=str(REPO / "results" / "bench_photo_aid.json"))
    ap.add_argument("--merge", nargs="+", help="join earlier reports (one pool each) into --output")
    args = ap.parse_args(argv)
    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        report = {**parts[0], "pools": {k: v for p in parts for k, v in p["pools"].items()}}
        report["settings"] = {k: v for p in parts for k, v in p["settings"].items()}
        report["seconds"] = sum(p["seconds"] for p in parts)
    else:
        report = run(args)
    report["choice"] = choose(report)
    atomic_write_json(Path(args.output), no_nan(report))
    print(json.dumps(report["choice"]), flush=True)
    return report


def no_nan(value):
    """``value`` with every NaN (a photo where ADV2 failed) as None: strict JSON."""
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [no_nan(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    started = time.time()
    report = {
        "skip": args.skip,
        "attack_scale": args.attack_scale,
        "benign_l1_max": BENIGN_L1_MAX,
        "settings": {s: SETTINGS[s] for s in args.settings},
        "pools": {},
    }
    for pool in args.pools:
        p = measure_pool(pool, args.settings, skip=args.skip, attack_scale=args.attack_scale, seed=args.seed)
        report["pools"][pool] = p
        print(json.dumps({s: (r["drift"]["value"], r["ratio"]["value"]) for s, r in p["settings"].items()}))
    report["seconds"] = time.time() - started
    report["machine"] = machine_description()
    report["threads"] = args.threads
    return report


if __name__ == "__main__":
    main()
