"""The command line: ``python -m adv2`` (or ``adv2``).

    python -m adv2 run all                      # every notebook, profile auto (paper on CUDA; see --profile)
    python -m adv2 run 01 03 --profile smoke    # some notebooks (by number or stem prefix)
    python -m adv2 run 03 -p epsilon 0.15 -p archs '[resnet]'
    python -m adv2 run 03 -p epsilon 0.15 --check   # validate and show the plan; no kernel starts
    python -m adv2 publish runs/<run>           # make a finished run the published book
    python -m adv2 list --profile quick         # notebooks and the values a quick run uses
    python -m adv2 sweep 03 -g epsilon 0.03,0.1 -g seed 0,1   # a grid of runs on Ray (adv2.book.sweep)
    python -m adv2 sweep-table NAME             # one row per point of a sweep (adv2.book.sweeptable)

A run never touches the published book. It writes into its own run folder,
``runs/<UTC time>-<profile>-<notebook numbers>/`` (or ``--output-dir``): the executed notebooks,
``results/`` (each notebook's ``<stem>.json`` and ``timings-<profile>.json``) and ``run.json``
(parameters, status and wall time of each notebook, other jobs' CPU). A notebook is executed into
``<stem>.running.ipynb`` and renamed to ``<stem>.ipynb`` only when every cell finished; a failed
one becomes ``<stem>.failed.ipynb``, an interrupted one (Ctrl-C, SIGTERM) ``<stem>.interrupted.ipynb``.
Only ``publish`` (or ``run --publish``, what ``make book`` uses) replaces ``book/notebooks/``,
``results/`` and the front page's run box, and only for a run whose every notebook finished.
``--output-dir`` never points a run at a folder that holds a finished run (or one still going).
The repository (where ``runs/``, the book and the model cache are) is the working tree the command
runs in (:func:`adv2.core.config.find_repo_root`), not where the package is installed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adv2.book import runplan, scalingsweep, sweeplock, sweepplan, sweeptable
from adv2.book.execute import RunError, RunInterrupted, sigterm_interrupts
from adv2.book.paths import shown_path, sweeps_root
from adv2.book.publish import PublishError, describe_os_error
from adv2.book.runner import (
    all_notebooks,
    check,
    declared_parameters,
    notebook_parameters,
    parse_overrides,
    publish_run,
    resolve_folders,
    resolve_profile,
    run,
    select_notebooks,
    values_with_defaults,
)
from adv2.book.sweep import run_sweep
from adv2.core.config import (
    AUTO_PROFILE_CPU,
    AUTO_PROFILE_GPU,
    PROFILES,
    REPO_ROOT_NOTE,
    ParameterError,
    validate,
)


def _how_to_look(run_dir: Path | None) -> str:
    if run_dir is None:
        return "nothing was published"
    where = shown_path(run_dir)
    return (
        f"nothing was published. Look at the run in {where}: run.json (status and error of "
        f"each notebook) and the executed copies ({where}/<notebook>.failed.ipynb or "
        ".interrupted.ipynb), e.g. `jupyter lab " + where + "`"
    )


def list_notebooks(profile: str | None = None) -> None:
    """Each notebook's parameters with the values a run at ``profile`` would use (the profile over
    the notebook's defaults, merged as a run merges them); without one, the defaults."""
    if profile is None:
        print("notebook defaults (no profile; `list --profile quick` shows what a quick run uses)")
    else:
        print(f"profile {profile}: values a run would use; [profile] marks those the profile sets")
    for nb in all_notebooks():
        print(nb.stem)
        params = notebook_parameters(nb, profile, {}, None) if profile else {}
        declared = declared_parameters(nb)
        for name, value, source in runplan.value_sources(
            nb.stem, values_with_defaults(nb, params), params, profile
        ):
            spec = declared[name]
            mark = "" if source == "default" else f" [{source}]"
            print(
                f"    {name}: {spec.get('inferred_type_name', '')} = {value!r}{mark}"
                f"    # {spec.get('help', '')}"
            )


def _add_profile_and_parameters(parser: argparse.ArgumentParser, parameter_help: str) -> None:
    """``--profile`` and the repeatable ``-p NAME VALUE``, shared by ``run`` and ``sweep``."""
    parser.add_argument(
        "--profile",
        default="auto",
        choices=("auto",) + PROFILES,
        help=f"params/<profile>.yaml (auto: {AUTO_PROFILE_GPU} with CUDA, else {AUTO_PROFILE_CPU})",
    )
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help=parameter_help,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m adv2", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute notebooks with papermill into a run folder")
    p_run.add_argument(
        "notebooks", nargs="*", default=["all"], help="numbers or stems (01, 02_interpreters, ...) or 'all'"
    )
    _add_profile_and_parameters(p_run, "override one parameter (YAML value)")
    p_run.add_argument(
        "--output-dir", default=None, help="the run folder (default runs/<UTC time>-<profile>-<numbers>/)"
    )
    p_run.add_argument(
        "--results-dir",
        default=None,
        help="where results/*.json go (default: <run folder>/results, or the --output-dir folder itself)",
    )
    p_run.add_argument(
        "--publish",
        action="store_true",
        help="publish the run (book/notebooks, results, run box) if every notebook finished",
    )
    p_run.add_argument(
        "--check", action="store_true", help="validate the parameters and print the plan; start no kernel"
    )
    p_run.add_argument("--no-progress", action="store_true")
    p_pub = sub.add_parser("publish", help="make a finished run folder the published book")
    p_pub.add_argument("run_dir", help="a run folder (holds run.json)")
    p_list = sub.add_parser("list", help="list notebooks and the parameter values a run would use")
    p_list.add_argument(
        "--profile", default=None, help="show the values of this profile (" + ", ".join(PROFILES) + ")"
    )
    # duplicates (boilerplate): argparse declarations of "run" and "sweep"; the options they share
    # go through _add_profile_and_parameters (listed in lib/adv2/README.md)
    p_sw = sub.add_parser(
        "sweep", help="run a notebook at every point of a parameter grid, as Ray tasks (adv2.book.sweep)"
    )
    p_sw.add_argument("notebook", nargs="?", default=None, help="one notebook (03, 03_adv2 or a path)")
    p_sw.add_argument(
        "-g",
        "--grid",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "V1,V2,..."),
        help="a grid parameter and its values (YAML each; brackets keep list values together)",
    )
    _add_profile_and_parameters(p_sw, "a parameter every point gets (YAML value)")
    p_sw.add_argument(
        "--name", default=None, help="the sweep's name: runs/sweeps/NAME/ (default from the grid)"
    )
    p_sw.add_argument(
        "--address",
        default=None,
        help="an existing Ray cluster: auto or ray://host:port (default: local Ray)",
    )
    p_sw.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p_sw.add_argument(
        "--cpus-per-task", type=float, default=1, help="CPUs a task asks for when there is no GPU"
    )
    p_sw.add_argument(
        "--artifacts-dir", default=None, help="the trained-model cache every point uses (shared storage)"
    )
    p_sw.add_argument(
        "--for",
        dest="for_chapter",
        default=None,
        metavar="CHAPTER",
        help="run the grid a chapter reads at the profile (08: How the attacks scale)",
    )
    p_sw.add_argument(
        "--check", action="store_true", help="expand and validate the grid and print the plan; start nothing"
    )
    p_sw.add_argument(
        "--cleanup", action="store_true", help="end the Ray processes killed sweeps left; run no sweep"
    )
    p_sw.add_argument("--no-progress", action="store_true")
    p_tab = sub.add_parser("sweep-table", help="one table (CSV + JSON) of a sweep's points")
    p_tab.add_argument("name", help="the sweep's name (a folder of runs/sweeps/) or its folder")
    p_tab.add_argument(
        "--output", default=None, help="file stem of the table (default: the sweep folder's table)"
    )
    p_ck = sub.add_parser(
        "checkpoint",
        add_help=False,
        help="train a photo model (rts or rtsa) with the library and write its checkpoint and pin line; "
        "`checkpoint cached --profile P`: ship a profile's cached models as checkpoints",
    )
    p_ck.add_argument(
        "args", nargs=argparse.REMAINDER, help="rts|rtsa [--retrain] [--threads N] (-h for more)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if list(sys.argv[1:] if argv is None else argv)[:2] == ["checkpoint", "cached"]:
        from adv2.book import shipmodels  # the cached models of a profile, as checkpoints

        return shipmodels.main(list(sys.argv[3:] if argv is None else argv[2:]))
    if list(sys.argv[1:] if argv is None else argv)[:1] == ["checkpoint"]:  # its own parser and -h
        # lazy: the photo models import torch; the rest of the command line stays light
        from adv2.trained import photomodels

        return photomodels.main(list(sys.argv[2:] if argv is None else argv[1:]))
    args = build_parser().parse_args(argv)
    if REPO_ROOT_NOTE and args.command != "list":
        print(f"[adv2] note: {REPO_ROOT_NOTE}", file=sys.stderr, flush=True)
    run_dir = None
    try:
        if args.command == "list":
            if args.profile is not None:
                validate({"profile": args.profile})  # one line naming the valid choices, exit 2
            list_notebooks(args.profile)
        elif args.command == "publish":
            publish_run(args.run_dir)
        elif args.command == "sweep":
            return sweep_command(args)
        elif args.command == "sweep-table":
            return sweeptable.main(args)
        elif args.check:
            check(
                args.notebooks,
                args.profile,
                parse_overrides(args.parameter),
                args.output_dir,
                args.results_dir,
            )
        else:
            profile = resolve_profile(args.profile)
            overrides = parse_overrides(args.parameter)
            results_dir = overrides.pop("results_dir", None) or args.results_dir
            run_dir, results = resolve_folders(
                profile, select_notebooks(args.notebooks), args.output_dir, results_dir
            )
            run(
                args.notebooks,
                profile,
                overrides,
                run_dir,
                results,
                progress=not args.no_progress,
                publish=args.publish,
                argv=sys.argv if argv is None else ["python", "-m", "adv2", *argv],
            )
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except PublishError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except RunInterrupted as err:
        print(f"\n[adv2] interrupted ({err}); {_how_to_look(run_dir)}", file=sys.stderr, flush=True)
        return 128 + err.signum
    except RunError as err:
        print(f"error: {err}", file=sys.stderr)
        if run_dir is not None and run_dir.exists():
            print(f"[adv2] {_how_to_look(run_dir)}", file=sys.stderr)
            return 1
        return 2
    except OSError as err:  # a full disk or a missing folder outside a notebook: one line, no traceback
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 1
    return 0


def sweep_command(args: Any) -> int:
    """``python -m adv2 sweep`` (arguments parsed by :func:`build_parser`)."""
    if getattr(args, "cleanup", False):
        if args.notebook or args.grid or args.for_chapter:
            raise ParameterError("--cleanup takes no notebook, -g or --for: it only clears killed sweeps")
        lines = sweeplock.cleanup(sweeps_root())
        for line in lines:
            print(f"[adv2] {line}", flush=True)
        print(f"[adv2] cleanup: {len(lines)} killed sweep(s) cleared under {shown_path(sweeps_root())}")
        return 0
    if args.for_chapter:
        if args.notebook or args.grid:
            raise ParameterError("--for takes the grid from the chapter; give no notebook and no -g")
        spec = scalingsweep.sweep_spec(resolve_profile(args.profile), parse_overrides(args.parameter))
        notebook, grid, fixed, name = spec["notebook"], spec["grid"], spec["fixed"], args.name or spec["name"]
    else:
        if not args.notebook:
            raise ParameterError("give a notebook (e.g. 03) or --for CHAPTER")
        notebook = _select(args.notebook)
        grid, fixed, name = sweepplan.parse_grid(args.grid), parse_overrides(args.parameter), args.name
    if args.artifacts_dir:
        fixed["artifacts_dir"] = args.artifacts_dir
    if args.check:
        profile = resolve_profile(args.profile)
        plan = sweepplan.plan(notebook, profile, grid, fixed, name, sweeps_root())
        print(f"[adv2] check: {plan.summary().replace(' as 0 task(s)', '')}; nothing ran")
        for p in plan.points:
            print(f"  {p.id}: {'complete' if p.done else 'to run'}")
        return 0
    try:
        with sigterm_interrupts():  # SIGTERM stops the sweep as Ctrl-C does (Ray stopped)
            result = run_sweep(
                notebook,
                grid,
                fixed,
                args.profile,
                name,
                args.address,
                args.num_cpus,
                args.cpus_per_task,
                progress=not args.no_progress,
                before_run=scalingsweep.preparation(spec, args.profile, args.address)
                if args.for_chapter
                else None,
            )
    except KeyboardInterrupt as err:
        return 128 + getattr(err, "signum", 2)  # run_sweep said what is kept and how to resume
    print(f"[adv2] the table: python -m adv2 sweep-table {result.plan.name}", flush=True)
    return 1 if result.failed else 0


def _select(name: str) -> Path:
    path = Path(name)
    if path.suffix == ".ipynb" and path.is_file():
        return path.resolve()
    notebooks = select_notebooks([name])
    if len(notebooks) != 1:
        raise ParameterError(f"{name!r} names {len(notebooks)} notebooks; a sweep runs one")
    return notebooks[0]
