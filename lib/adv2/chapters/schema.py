"""Every chapter's parameters in one place: name, type, default, rule, one-line doc and role.

The tables are :mod:`adv2.chapters.schema_ch01_03`, :mod:`adv2.chapters.schema_ch04_08` and
:mod:`adv2.chapters.schema_ch09`, built
from the rows and rules of :mod:`adv2.chapters.schema_rows` (roles: ``recipe``, ``evaluation``,
``output``); this module is what reads them. The runner checks ``-p`` values with
:func:`validate_chapter` before a kernel starts; each notebook checks its own globals with
:func:`check_notebook_globals` in its first code cell (so a direct ``papermill ... -p bogus 1``
fails there with the same message). The notebooks' parameter cells are generated from this schema
(:func:`parameter_cell`, ``python -m adv2.chapters.schema --write``) and a test keeps them up to date.

This module must stay cheap to import: no torch at import time (the runner validates in < 5 s).
"""

from __future__ import annotations

from typing import Any

from adv2.chapters import schema_ch01_03, schema_ch04_08, schema_ch09
from adv2.chapters.schema_rows import Param
from adv2.core.config import REPO_ROOT, ParameterError, load_profile

CHAPTERS: dict[str, list[Param]] = {
    **schema_ch01_03.CHAPTERS,
    **schema_ch04_08.CHAPTERS,
    **schema_ch09.CHAPTERS,
}
STEMS = tuple(CHAPTERS)

# parameters that name a list but are often given as one word on the command line
_LIST_NAMES = (
    *("archs", "interpreters", "imagenet_interpreters", "input_sizes"),
    *("photo_classifiers", "adaptive_interpreters", "adaptive_classifiers"),
)
# IPython's own globals in a notebook kernel, never parameters
_KERNEL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})
# values a parameter cell or ``papermill -p`` can give (YAML scalars, lists, mappings)
_PARAMETER_TYPES = (type(None), bool, int, float, str, list, tuple, dict)
# set in the namespace once its parameters were checked (an interactive re-run of the cell)
_CHECKED = "_adv2_parameters_checked"


# ----------------------------------------------------------------------------- public API
def chapter_schema(stem: str) -> dict[str, Param]:
    """The parameters of chapter ``stem`` (e.g. ``"03_adv2"``), by name, in parameter-cell order."""
    if stem not in CHAPTERS:
        raise ParameterError(f"no chapter {stem!r}; valid chapters: " + ", ".join(STEMS))
    return {p.name: p for p in CHAPTERS[stem]}


def defaults(stem: str) -> dict[str, Any]:
    """The default value of every parameter of chapter ``stem`` (copies of lists)."""
    return {
        n: (list(p.default) if isinstance(p.default, list) else p.default)
        for n, p in chapter_schema(stem).items()
    }


def profile_values(stem: str, profile: str) -> dict[str, Any]:
    """What a run of chapter ``stem`` at ``profile`` gets with no ``-p``: the profile's values for
    the chapter's parameters (its ``common`` and own sections) over the chapter's defaults."""
    declared = chapter_schema(stem)
    chosen = {k: v for k, v in load_profile(profile, stem).items() if k in declared}
    return {**defaults(stem), **chosen}


def unknown_parameters_error(stem: str, names: list[str] | tuple[str, ...]) -> ParameterError:
    """The one message for parameter names a chapter does not have (runner and notebooks)."""
    return ParameterError(
        f"notebook {stem} has no parameter "
        + ", ".join(repr(n) for n in names)
        + "; valid parameters: "
        + ", ".join(sorted(chapter_schema(stem)))
    )


def train_seed_list(train_seed: int, train_seeds: list[int]) -> list[int]:
    """A chapter's training seeds, ``train_seed`` first (``train_seeds`` empty: it alone; chapter 3).
    ``train_seeds`` must name ``train_seed``, whose classifiers the figures and later chapters use:
    else :class:`ParameterError`."""
    if train_seeds and train_seed not in train_seeds:
        raise ParameterError(
            f"parameter 'train_seeds' has value {train_seeds!r}, which does not contain parameter "
            f"'train_seed' {train_seed!r}; expected a list that names it, e.g. [{train_seed}, "
            f"{train_seed + 1}, {train_seed + 2}], or [] for train_seed alone"
        )
    return [train_seed, *(s for s in train_seeds if s != train_seed)]


def validate_chapter(stem: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check ``params`` (any subset of chapter ``stem``'s parameters) and return them normalised.

    Unknown names, values outside a rule, ``device: cuda`` without CUDA all raise
    :class:`ParameterError` naming the parameter, the value and what is valid. A single word for a
    list parameter (``archs: resnet``) becomes a one-element list.
    """
    schema = chapter_schema(stem)
    unknown = [n for n in params if n not in schema]
    if unknown:
        raise unknown_parameters_error(stem, unknown)
    out = dict(params)
    for name in _LIST_NAMES:
        if isinstance(out.get(name), str):
            out[name] = [out[name]]
        elif isinstance(out.get(name), tuple):
            out[name] = list(out[name])
    for name, value in out.items():
        rule = schema[name].rule
        if not rule.check(value):
            raise ParameterError(
                f"parameter {name!r} of notebook {stem} has value {value!r}, "
                f"which is not valid; expected {rule.describe}"
            )
    if out.get("dataset") == "imagenet" and not out.get("imagenet_dir"):
        # only chapter 1 accepts imagenet (its rule); fail here, before a kernel starts
        raise ParameterError(
            f"parameter 'dataset' of notebook {stem} is 'imagenet', which needs "
            "parameter 'imagenet_dir': an ImageNet validation folder arranged as "
            "<wnid>/<image>.JPEG (e.g. -p imagenet_dir /data/imagenet/val)"
        )
    if "budget_epsilon" in out and "epsilons" in out and out["budget_epsilon"] not in out["epsilons"]:
        raise ParameterError(
            f"parameter 'budget_epsilon' of notebook {stem} has value {out['budget_epsilon']!r}, "
            f"which is not one of parameter 'epsilons' {out['epsilons']!r}; expected one of them"
        )
    shared = [i for i in out.get("interpreters", []) if i in out.get("adaptive_interpreters", [])]
    if "interpreters" in out and "adaptive_interpreters" in out and len(shared) < 2:
        raise ParameterError(
            f"parameter 'adaptive_interpreters' of notebook {stem} has value "
            f"{out['adaptive_interpreters']!r}, which shares {shared!r} with parameter 'interpreters' "
            f"{out['interpreters']!r}; expected at least two of the ensemble's interpreters"
        )
    if "train_seeds" in out:
        train_seed_list(out.get("train_seed", schema["train_seed"].default), out["train_seeds"])
    if out.get("device") == "cuda":
        import torch  # only here: the common case never pays for importing torch

        if not torch.cuda.is_available():
            raise ParameterError(
                "parameter 'device' has value 'cuda' but no CUDA device is "
                "available on this machine; expected one of 'auto', 'cpu'"
            )
    return out


def check_notebook_globals(stem: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Validate a notebook's parameters from its ``globals()``, in its first code cell.

    Every parameter-like global (a value a parameter cell or ``papermill -p`` can give: None,
    bool, number, string, list, mapping; not IPython's own names, not starting with ``_``) must be
    a parameter of chapter ``stem``: an unknown one (a misspelt ``papermill -p`` name) fails with
    the runner's message instead of running on defaults. When the cell is run again in an
    interactive session, globals that later cells defined are not parameters: then only the
    schema's names are checked. Normalised values (``archs: resnet`` → ``['resnet']``) are
    written back into ``namespace``. Returns the parameters as a dict (what the results file
    records).
    """
    rerun = namespace.get(_CHECKED) == stem
    found = {
        n: v
        for n, v in namespace.items()
        if not n.startswith("_")
        and n not in _KERNEL_NAMES
        and isinstance(v, _PARAMETER_TYPES)
        and (not rerun or n in chapter_schema(stem))
    }
    params = validate_chapter(stem, found)
    missing = [n for n in chapter_schema(stem) if n not in params]
    if missing:  # the parameter cell and the schema disagree: a library/notebook mismatch
        raise ParameterError(
            f"notebook {stem} does not define parameter(s) "
            + ", ".join(repr(n) for n in missing)
            + " of its schema"
        )
    namespace.update(params)
    namespace[_CHECKED] = stem
    return {n: params[n] for n in chapter_schema(stem)}


def _literal(value: Any) -> str:
    """Python source for a default, strings in double quotes as in the rest of the notebooks."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def parameter_cell(stem: str) -> str:
    """The source of chapter ``stem``'s papermill ``parameters`` cell, generated from the schema."""
    lines = [f"{p.name}: {p.type.__name__} = {_literal(p.default)}" for p in CHAPTERS[stem]]
    width = max(len(s) for s in lines) + 2
    return "\n".join(f"{s:<{width}}# {p.doc}" for s, p in zip(lines, CHAPTERS[stem]))


def _write_parameter_cells() -> list[str]:
    """Rewrite the ``parameters`` cell of every notebook from the schema (keeps cell ids)."""
    import nbformat  # only the --write command needs it (the runner imports this module)

    changed = []
    for stem in STEMS:
        path = REPO_ROOT / "notebooks" / f"{stem}.ipynb"
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        if cell.source != parameter_cell(stem):
            cell.source = parameter_cell(stem)
            nbformat.write(nb, path)
            changed.append(stem)
    return changed


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m adv2.chapters.schema --write  (regenerates the parameter cells)")
    print("rewrote the parameter cells of: " + (", ".join(_write_parameter_cells()) or "none"))


__all__ = [
    "CHAPTERS",
    "STEMS",
    "Param",
    "chapter_schema",
    "check_notebook_globals",
    "defaults",
    "parameter_cell",
    "unknown_parameters_error",
    "validate_chapter",
]
