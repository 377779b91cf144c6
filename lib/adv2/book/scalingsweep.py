"""Chapter 8's sweep: chapter 3 over the chapter's grid, run on Ray (:mod:`adv2.book.sweep`), and
its table handed to :mod:`adv2.chapters.ch08`, which turns it into curves and readings.

    python -m adv2 sweep --for 08 --profile quick      # the same sweep from the command line

The notebook ``08_scaling.ipynb`` calls :func:`run_sweep` (only the points not yet complete run)
and :func:`load`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adv2.book import sweep, sweeptable
from adv2.book.paths import NOTEBOOKS_DIR
from adv2.book.runner import notebook_parameters
from adv2.chapters import ch08, schema
from adv2.core import config
from adv2.core.config import ParameterError


def sweep_spec(profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``python -m adv2 sweep --for 08`` runs: chapter 3 over the chapter's grid at ``profile``.
    Returns ``notebook``, ``grid``, ``fixed`` and ``name``."""
    params = {
        **schema.defaults(ch08.STEM),
        **notebook_parameters(NOTEBOOKS_DIR / f"{ch08.STEM}.ipynb", profile, overrides or {}, None),
    }
    return {
        "notebook": NOTEBOOKS_DIR / f"{ch08.SOURCE}.ipynb",
        "grid": {
            "epsilon": list(params["epsilons"]),
            "step_scale": list(params["step_scales"]),
            "seed": list(params["seeds"]),
        },
        "fixed": ch08.fixed_parameters(params),
        "name": ch08.sweep_name(params),
    }


def prepare_models(spec: dict[str, Any], profile: str, progress: bool = False, log=print) -> None:
    """Train (or load) the classifiers and RTS every point shares, side by side, before the points
    fan out. Without it, on an empty cache, each task's first point trains the same models again,
    on one core each (a cold chapter 8 took 6.8 min, 4.4 of them in two copies of one training)."""
    # the loaders and the data import torch: the command line (`python -m adv2 ...`) stays light
    from adv2.chapters._loaders import load_classifiers, load_rts_nets
    from adv2.trained import data

    point = notebook_parameters(spec["notebook"], profile, spec["fixed"], None)
    if point.get("dataset", "fashion-mnist") != "fashion-mnist":
        return
    fmnist = data.load_fashion_mnist()
    archs, artifacts_dir = list(point["archs"]), point.get("artifacts_dir") or ""
    kw = dict(device=config.resolve_device(point.get("device", "auto")), artifacts_dir=artifacts_dir)
    classifiers, arts = load_classifiers(point, fmnist, archs, progress=progress, log=log, **kw)
    if "rts" in point["interpreters"]:
        load_rts_nets(point, fmnist, classifiers, arts, archs, progress=progress, log=log, **kw)


def preparation(
    spec: dict[str, Any], profile: str, address: str | None, progress: bool = False
) -> Callable[[], None] | None:
    """What the sweep runs before its first point: on a local Ray :func:`prepare_models`; on a
    cluster nothing (its nodes may not share this disk, so each trains what it lacks)."""
    if address:
        return None
    return lambda: prepare_models(spec, profile, progress)


def run_sweep(params: dict[str, Any], progress: bool = False) -> sweep.SweepResult:
    """Run (or resume: complete points are skipped) the chapter's sweep; return the sweep result."""
    spec = sweep_spec(params["profile"], {k: params[k] for k in _GRID_PARAMS if k in params})
    address = params.get("sweep_address") or None
    return sweep.run_sweep(
        spec["notebook"],
        spec["grid"],
        spec["fixed"],
        params["profile"],
        spec["name"],
        address=address,
        num_cpus=params.get("sweep_num_cpus") or None,
        progress=progress,
        before_run=preparation(spec, params["profile"], address, progress),
    )


_GRID_PARAMS = (
    "archs",
    "interpreters",
    "epsilons",
    "step_scales",
    "seeds",
    "point_n_images",
    "point_mask_n_images",
    "point_mask_step_scale",
    "point_mask_iterations",
    "schedule",
    "sweep_name",
    "artifacts_dir",
)


def load(params: dict[str, Any]) -> ch08.Scaling:
    """The sweep's table as a :class:`adv2.chapters.ch08.Scaling` (raises a clear error when the
    sweep is missing)."""
    name = ch08.sweep_name(params)
    try:
        _, rows = sweeptable.gather(name)
    except ParameterError as err:
        raise ParameterError(
            f"{err}. Chapter 8 reads the sweep {name!r}: run it with "
            f"`python -m adv2 sweep --for 08 --profile {params['profile']}`"
        ) from None
    sweeptable.write_table(name)
    return ch08.scaling(params, rows)
