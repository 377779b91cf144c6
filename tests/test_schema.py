"""The per-chapter parameter schema: notebooks' parameter cells are generated from it (and must be
up to date), every mistake is caught with a message naming parameter, value and what is valid,
and importing it stays cheap (no torch) so the runner validates in seconds."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import types

import pytest

from adv2.chapters import schema
from adv2.chapters.schema_rows import ROLES
from adv2.core import config
from adv2.core.config import ParameterError

NOTEBOOKS = config.REPO_ROOT / "notebooks"


def parameters_cell(path) -> str:
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    return "".join(cell["source"])


def declared(source: str) -> dict[str, tuple[str, object]]:
    """name -> (annotation, default) of a parameter cell, read with ast as papermill does."""
    return {
        n.target.id: (ast.unparse(n.annotation), ast.literal_eval(n.value))
        for n in ast.parse(source).body
        if isinstance(n, ast.AnnAssign)
    }


@pytest.mark.parametrize("stem", schema.STEMS)
def test_parameter_cells_are_generated_from_the_schema(stem):
    source = parameters_cell(NOTEBOOKS / f"{stem}.ipynb")
    assert source == schema.parameter_cell(stem), (
        f"notebooks/{stem}.ipynb's parameter cell is out of date: run "
        "`PYTHONPATH=lib python -m adv2.chapters.schema --write`"
    )
    cell = declared(source)
    params = schema.chapter_schema(stem)
    assert list(cell) == list(params)
    for name, (annotation, default) in cell.items():
        assert annotation == params[name].type.__name__ and default == params[name].default
        assert params[name].rule.check(default) or default is None, name  # defaults are valid


def test_every_notebook_has_a_schema():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(schema.STEMS)


@pytest.mark.parametrize("stem", [s for s in schema.STEMS if s < "07"])  # chapters of 5c937a9
def test_defaults_are_those_of_the_notebooks_before_the_schema(stem):
    """Numbers stay: every parameter that existed at 5c937a9 keeps its default there."""
    try:
        old_nb = subprocess.run(
            ["git", "show", f"5c937a9:notebooks/{stem}.ipynb"],
            check=True,
            capture_output=True,
            text=True,
            cwd=config.REPO_ROOT,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"commit 5c937a9 not available ({err})")
    old = declared(
        "".join(
            next(c for c in json.loads(old_nb)["cells"] if "parameters" in c["metadata"].get("tags", []))[
                "source"
            ]
        )
    )
    new = schema.defaults(stem)
    # issue 23 changed the RTSA recipe on purpose: its own encoder, 600 iterations, chapter 4's anchor
    changed = {"aid_iterations": 600, "aid_distill_weight": 100.0, "aid_train_encoder": True}
    for name, (_, default) in old.items():
        if name in changed:
            assert new[name] == changed[name] and default != changed[name], name
        elif name in new and name != "artifacts_dir":  # '' now means $ADV2_ARTIFACTS, else artifacts/
            assert new[name] == default, name
    # renamed: chapters 4-6's AID budget is rtsa_epsilon / rtsa_step_size now
    if "aid_iterations" in old:
        assert (new["rtsa_epsilon"], new["rtsa_step_size"]) == (old["epsilon"][1], old["step_size"][1])


@pytest.mark.parametrize("profile", [p for p in config.PROFILES if p != "imagenet"])
@pytest.mark.parametrize("stem", schema.STEMS)
def test_profiles_validate(stem, profile):
    names = schema.chapter_schema(stem)
    params = {k: v for k, v in config.load_profile(profile, stem).items() if k in names}
    schema.validate_chapter(stem, params)
    # a profile's chapter section must not name a parameter the chapter lacks
    import yaml

    data = yaml.safe_load((config.PARAMS_DIR / f"{profile}.yaml").read_text())
    unknown = set(data.get(stem) or {}) - set(names)
    assert not unknown, unknown


def test_unknown_stem_names_the_valid_ones():
    with pytest.raises(ParameterError) as err:
        schema.chapter_schema("07_nothing")
    assert "'07_nothing'" in str(err.value) and "03_adv2" in str(err.value)


def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(ParameterError) as err:
        schema.validate_chapter("06_table10", {"bogus": 1})
    msg = str(err.value)
    assert "'bogus'" in msg and "valid parameters:" in msg and "rtsa_epsilon" in msg
    assert msg == str(schema.unknown_parameters_error("06_table10", ["bogus"]))


def test_single_words_become_lists():
    out = schema.validate_chapter("03_adv2", {"archs": "resnet", "interpreters": "cam"})
    assert out == {"archs": ["resnet"], "interpreters": ["cam"]}
    one = schema.validate_chapter("01_target_models", {"photo_classifiers": "efficientnet-lite2"})
    assert one == {"photo_classifiers": ["efficientnet-lite2"]}


def test_photo_classifiers_default_to_lite0_and_chapter_1_shows_both():
    from adv2.chapters.schema_rows import PHOTO_CLASSIFIERS_P
    from adv2.core.config import PHOTO_CLASSIFIERS

    assert PHOTO_CLASSIFIERS_P.default == ["efficientnet-lite0"]  # the book's photo setting so far
    assert schema.defaults("01_target_models")["photo_classifiers"] == list(PHOTO_CLASSIFIERS)
    assert PHOTO_CLASSIFIERS == {"efficientnet-lite0": 224, "efficientnet-lite2": 260}
    # chapters 2, 3 and 9: Lite0 alone by default (the published numbers), both on request
    for stem in ("02_interpreters", "03_adv2", "09_defense1"):
        assert schema.defaults(stem)["photo_classifiers"] == ["efficientnet-lite0"]
        both = schema.validate_chapter(stem, {"photo_classifiers": list(PHOTO_CLASSIFIERS)})
        assert both == {"photo_classifiers": list(PHOTO_CLASSIFIERS)}


@pytest.mark.parametrize(
    "stem,name,value,words",
    [
        ("03_adv2", "seed", 1.0, ["'seed'", "1.0", "integer"]),
        ("03_adv2", "n_images", 100_000, ["'n_images'", "100000", "10000", "Fashion-MNIST"]),
        ("06_table10", "n_images", 0, ["'n_images'", ">= 1"]),
        ("04_aid_defense", "n_eval", 20_000, ["'n_eval'", "10000"]),
        ("04_aid_defense", "rts_batch_size", 0, ["'rts_batch_size'"]),
        ("02_interpreters", "archs", ["vgg"], ["'archs'", "'resnet'"]),
        ("03_adv2", "interpreters", "gradcam", ["'interpreters'", "'grad'"]),
        ("06_table10", "rtsa_epsilon", 0, ["'rtsa_epsilon'"]),
        ("05_noise_sensitivity", "noise_rates", [1.5], ["'noise_rates'", "[0, 1)"]),
        ("02_interpreters", "dataset", "imagenet", ["'dataset'", "'fashion-mnist'"]),  # chapter 1 only
        ("01_target_models", "dataset", "imagenet", ["'dataset'", "'imagenet_dir'"]),  # needs the folder
        ("01_target_models", "dataset", "mnist", ["'dataset'", "'fashion-mnist'", "'imagenet'"]),
        ("01_target_models", "include_imagenet_sample", "yes", ["'include_imagenet_sample'", "True"]),
        # the photo classifiers: names from adv2.core.config.PHOTO_CLASSIFIERS, each once
        (
            "01_target_models",
            "photo_classifiers",
            ["efficientnet-lite4"],
            ["'photo_classifiers'", "'efficientnet-lite0'", "'efficientnet-lite2'"],
        ),
        ("01_target_models", "photo_classifiers", [], ["'photo_classifiers'", "non-empty"]),
        (
            "03_adv2",
            "photo_classifiers",
            ["efficientnet-lite3"],
            ["'photo_classifiers'", "'efficientnet-lite2'"],
        ),
        (
            "02_interpreters",
            "photo_classifiers",
            ["efficientnet-lite0"] * 2,
            ["'photo_classifiers'", "distinct"],
        ),
        ("01_target_models", "photo_classifiers", 2, ["'photo_classifiers'", "'efficientnet-lite2'"]),
        (
            "01_target_models",
            "photo_classifiers",
            ["efficientnet-lite2"] * 2,
            ["'photo_classifiers'", "distinct"],
        ),
    ],
)
def test_bad_values_name_parameter_value_and_what_is_valid(stem, name, value, words):
    with pytest.raises(ParameterError) as err:
        schema.validate_chapter(stem, {name: value})
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_cuda_without_cuda_is_refused():
    import torch

    if torch.cuda.is_available():
        assert schema.validate_chapter("01_target_models", {"device": "cuda"})["device"] == "cuda"
    else:
        with pytest.raises(ParameterError, match="'device'.*'cuda'.*no CUDA"):
            schema.validate_chapter("01_target_models", {"device": "cuda"})


def _kernel_globals(stem: str, **overrides) -> dict:
    """What a notebook's globals() holds in its first code cell: IPython's names, imports and
    the parameter cell's values."""
    ns = {
        "In": [""],
        "Out": {},
        "get_ipython": lambda: None,
        "exit": None,
        "quit": None,
        "open": open,
        "_": "",
        "__name__": "__main__",
        "_i1": "x",
        "time": types,
        "Markdown": type("Markdown", (), {}),
        "display": print,
        "schema": schema,
    }
    ns.update(schema.defaults(stem))
    ns.update(overrides)
    return ns


def test_notebook_globals_pass_and_are_normalised():
    ns = _kernel_globals("03_adv2", archs="densenet")
    params = schema.check_notebook_globals("03_adv2", ns)
    assert list(params) == list(schema.chapter_schema("03_adv2"))
    assert params["archs"] == ["densenet"] and ns["archs"] == ["densenet"]


def test_notebook_globals_refuse_unknown_names_with_the_runners_message():
    with pytest.raises(ParameterError) as err:
        schema.check_notebook_globals("06_table10", _kernel_globals("06_table10", bogus=1))
    assert str(err.value) == str(schema.unknown_parameters_error("06_table10", ["bogus"]))


def test_an_interactive_rerun_ignores_globals_of_later_cells():
    ns = _kernel_globals("04_aid_defense")
    schema.check_notebook_globals("04_aid_defense", ns)
    ns.update(arch="resnet", started=1.5, rows=[], nets={})  # what later cells leave behind
    assert "arch" not in schema.check_notebook_globals("04_aid_defense", ns)
    with pytest.raises(ParameterError, match="'seed'"):
        schema.check_notebook_globals("04_aid_defense", {**ns, "seed": -1})


def test_notebook_globals_refuse_bad_values():
    with pytest.raises(ParameterError, match="'seed'"):
        schema.check_notebook_globals("04_aid_defense", _kernel_globals("04_aid_defense", seed=1.0))


def test_schema_does_not_import_torch():
    code = "import sys, adv2.chapters.schema; sys.exit(int('torch' in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=config.REPO_ROOT, timeout=60)
    assert done.returncode == 0, "importing adv2.chapters.schema imported torch (slow for the runner)"


def test_roles_and_types_are_declared():
    for stem in schema.STEMS:
        for name, p in schema.chapter_schema(stem).items():
            assert p.role in ROLES and p.type in (int, float, str, bool, list), name
            assert p.doc and "\n" not in p.doc, name
