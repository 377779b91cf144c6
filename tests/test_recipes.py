"""Recipes: one cache key per trained artifact, the same in every chapter, untouched by evaluation
parameters, and byte-identical to the keys the book used before the recipe layer (commit 5c937a9).

No training here: the cache is intercepted at the point where a loader looks up its key, so every
test runs in seconds.
"""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from adv2.chapters import schema
from adv2.core import config, defenses, models
from adv2.core.interpreters.rts_training import default_area_weight
from adv2.trained import artifacts, files, loading, recipes

OLD_COMMIT = "5c937a9"  # the code before the recipe layer: its keys must not change
CHAPTERS = ["02_interpreters", "03_adv2", "04_aid_defense", "05_noise_sensitivity", "06_table10"]
FASHION = SimpleNamespace(name="fashion-mnist", num_classes=10, class_names=[f"c{i}" for i in range(10)])


# ----------------------------------------------------------------------------- cache interception
class Captured(Exception):
    def __init__(self, kind: str, params: dict) -> None:
        super().__init__(kind)
        self.kind, self.params = kind, params


@pytest.fixture
def capture(monkeypatch):
    """Make every cache lookup raise :class:`Captured` with the parameters it would hash."""

    def fake(kind, params, compute, root=None, force=False, check=None, **_):
        raise Captured(kind, params)

    monkeypatch.setattr(artifacts, "load_or_compute", fake)
    monkeypatch.setattr(loading, "load_or_compute", fake)

    def key_of(fn, *args, **kwargs) -> str:
        with pytest.raises(Captured) as got:
            fn(*args, **kwargs)
        return files.artifact_key(got.value.params)

    return key_of


def _model(arch: str):
    return models.build_small_cnn(arch, 10, FASHION.class_names)


# ----------------------------------------------------------------------------- the old code's keys
def _git_show(path: str) -> str:
    try:
        return subprocess.run(
            ["git", "show", f"{OLD_COMMIT}:{path}"],
            capture_output=True,
            text=True,
            check=True,
            cwd=config.REPO_ROOT,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"commit {OLD_COMMIT} not available ({err})")


def old_parameters(stem: str, profile: str) -> dict:
    """What a run of ``stem`` at ``profile`` gave the notebook at commit 5c937a9: its parameter
    cell's defaults, overlaid by the profile's values for the names it declared."""
    nb = json.loads(_git_show(f"notebooks/{stem}.ipynb"))
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    params = {
        node.target.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.AnnAssign)
    }
    data = yaml.safe_load(_git_show(f"params/{profile}.yaml")) or {}
    prof = {**data.get("common", {}), **(data.get(stem) or {}), "profile": profile}
    params.update({k: v for k, v in prof.items() if k in params})
    return params


# The parameter dicts 5c937a9's training functions (trained_small_cnn, trained_rts, trained_rtsa)
# hashed, written out: the recipes must give the same keys for the same values.
def old_classifier_key(arch: str, epochs: float, train_subset: int, seed: int) -> str:
    params = {"kind": "classifier", "dataset": FASHION.name, "arch": arch, "epochs": epochs}
    params.update(batch_size=128, lr=5e-3, weight_decay=5e-4, train_subset=train_subset, seed=seed, recipe=1)
    return files.artifact_key(params)


def old_rts_key(arch: str, classifier_key: str, **schedule) -> str:
    params = {"kind": "rts", "dataset": FASHION.name, "arch": arch, "classifier": classifier_key, "recipe": 1}
    params.update(weight_decay=1e-4, area_weight=default_area_weight(28), smooth_weight=0.005 * 224 / 28)
    params.update(preserver_weight=0.3, map_size=None, width=None, **schedule)
    return files.artifact_key(params)


def old_rtsa_key(arch: str, rts_key: str, aid: defenses.AIDConfig, n_probe: int = 64) -> str:
    params = {"kind": "rtsa", "dataset": FASHION.name, "arch": arch, "rts": rts_key, "recipe": 1}
    return files.artifact_key({**params, "n_probe": n_probe, **aid.cache_params()})


def old_keys(stem: str, p: dict, arch: str) -> dict[str, str]:
    """Cache keys of the classifier / RTS / RTSA that chapter ``stem`` asked for at 5c937a9,
    built from the same arguments its notebook passed then."""
    keys = {"classifier": old_classifier_key(arch, p["train_epochs"], p["train_subset"], p["seed"])}
    if stem == "02_interpreters":
        kw = {  # the schedule chapter 2 trained with at 5c937a9 (phase 1: twice the batch, one lr)
            "phase1_iterations": int(p["rts_phase1_iterations"]),
            "phase2_iterations": int(p["rts_phase2_iterations"]),
            "phase1_batch_size": 2 * int(p["rts_batch_size"]),
            "batch_size": int(p["rts_batch_size"]),
            "phase1_lr": float(p["rts_lr"]),
            "lr": float(p["rts_lr"]),
            "seed": int(p["seed"]),
        }
    elif stem == "03_adv2":
        kw = dict(
            phase1_iterations=p["rts_phase1_iterations"],
            phase2_iterations=p["rts_phase2_iterations"],
            phase1_batch_size=2 * p["rts_batch_size"],
            batch_size=p["rts_batch_size"],
            phase1_lr=p["rts_lr"],
            lr=p["rts_lr"],
            seed=p["seed"],
        )
    elif stem in ("04_aid_defense", "05_noise_sensitivity", "06_table10"):
        kw = dict(
            phase1_iterations=p["rts_phase1_iterations"],
            phase2_iterations=p["rts_phase2_iterations"],
            phase1_batch_size=p["rts_phase1_batch_size"],
            batch_size=p["rts_batch_size"],
            phase1_lr=p["rts_phase1_lr"],
            lr=p["rts_lr"],
            seed=p["seed"],
        )
    else:
        return keys
    keys["rts"] = old_rts_key(arch, keys["classifier"], **kw)
    if stem in ("04_aid_defense", "05_noise_sensitivity", "06_table10"):
        aid = defenses.AIDConfig(
            iterations=p["aid_iterations"],
            batch_size=p["aid_batch_size"],  # the parameter's name at that commit
            aid_batch_size=p["aid_attack_batch_size"],
            beta=p["aid_beta"],
            lr=p["aid_lr"],
            stage1_steps=p["aid_stage1_steps"],
            stage2_steps=p["aid_stage2_steps"],
            pool_size=p["aid_pool_size"],
            distill_weight=p["aid_distill_weight"],
            persistent=p["aid_persistent"],
            train_encoder=p["aid_train_encoder"],
            epsilon=p["epsilon"],
            step_size=p["step_size"],
            seed=p["seed"],
        )
        keys["rtsa"] = old_rtsa_key(arch, keys["rts"], aid)
    return keys


def recipes_for(params: dict) -> dict[str, dict]:
    """The recipes of a chapter's (complete) parameters, by kind and architecture:
    ``{"classifier": {arch: ClassifierRecipe}, "rts": {...}, "rtsa": {...}}`` (a kind is present
    when the parameters have its recipe parameters)."""
    kinds = {"classifier": recipes.classifier_recipe}
    if any(n in params for n in recipes.RTS_PARAMETERS):
        kinds["rts"] = recipes.rts_recipe
    if any(n in params for n in recipes.RTSA_PARAMETERS):
        kinds["rtsa"] = recipes.rtsa_recipe
        kinds["rtsa_control"] = lambda p, a: recipes.rtsa_recipe(
            p, a
        ).control()  # chapters 4-6 train it beside
    archs = params.get("archs") or []
    archs = [archs] if isinstance(archs, str) else list(archs)
    return {kind: {a: make(params, a) for a in archs} for kind, make in kinds.items()}


def new_parameters(stem: str, profile: str) -> dict:
    """What the runner gives the notebook now: the profile's values for the chapter's names."""
    names = schema.chapter_schema(stem)
    return {k: v for k, v in config.load_profile(profile, stem).items() if k in names}


def new_keys(stem: str, params: dict, arch: str) -> dict[str, str]:
    found = recipes_for({**schema.defaults(stem), **params, "archs": [arch]})
    return {kind: by_arch[arch].key for kind, by_arch in found.items()}


FASHION_PROFILES = [p for p in config.PROFILES if p != "imagenet"]
OLD_PROFILES = ("smoke", "quick", "paper")  # the Fashion-MNIST profiles of commit 5c937a9 (full came later)


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("profile", OLD_PROFILES)
@pytest.mark.parametrize("stem", ["01_target_models", *CHAPTERS])
def test_keys_are_those_of_the_code_before_recipes(stem, profile):
    """Byte-identical cache keys for the same parameter values: cached models are reused. The RTSA
    recipe's defaults changed on purpose (issue 23: RTSA trains its own encoder for 600 iterations
    at the anchor chapter 4 chose), so those three take their old values here; the control RTSA is
    new and has no old key."""
    for arch in config.ARCHS:
        old_params = old_parameters(stem, profile)
        old = old_keys(stem, old_params, arch)
        params = new_parameters(stem, profile)
        params.update({k: old_params[k] for k in AID_DEFAULTS_CHANGED if k in old_params})
        new = new_keys(stem, schema.validate_chapter(stem, params), arch)
        assert {k: v for k, v in new.items() if k != "rtsa_control"} == old, (stem, profile, arch)


# the RTSA recipe's defaults that issue 23 changed
AID_DEFAULTS_CHANGED = ("aid_iterations", "aid_distill_weight", "aid_train_encoder")


def test_the_rtsa_recipe_changed_only_where_issue_23_changed_it():
    """Today's RTSA defaults give a new key (a new model, trained), the classifier and RTS keys stay."""
    params = schema.defaults("06_table10")
    before = {**params, "aid_iterations": 60, "aid_distill_weight": 10.0, "aid_train_encoder": False}
    now, then = new_keys("06_table10", params, "resnet"), new_keys("06_table10", before, "resnet")
    assert (now["classifier"], now["rts"]) == (then["classifier"], then["rts"])
    assert now["rtsa"] != then["rtsa"] and now["rtsa_control"] != now["rtsa"]
    assert recipes.rtsa_recipe(params, "resnet").control().beta == 0


def test_aidconfig_field_names_are_hashed_into_the_rtsa_key():
    """An RTSA key hashes AIDConfig's flat dict, names included: ``aid_batch_size`` there is the
    attacked images (chapter parameter ``aid_attack_batch_size``), ``batch_size`` RTS's own loss's
    (chapter parameter ``aid_map_batch_size``; no chapter parameter is called ``aid_batch_size``). Renaming a field would retrain every RTSA; the keys of
    the models the book trained are pinned in :func:`test_recipes_name_the_artifacts_the_book_trained`
    and (photos) test_photopool."""
    recipe = recipes.rtsa_recipe(schema.defaults("04_aid_defense"), "resnet")
    hashed = recipe.cache_params()
    assert set(defenses.AIDConfig.FLAT_ORDER) <= set(hashed)
    assert (hashed["aid_batch_size"], hashed["batch_size"]) == (recipe.attack_batch_size, recipe.batch_size)
    renamed = {("attack_batch_size" if k == "aid_batch_size" else k): v for k, v in hashed.items()}
    assert files.artifact_key(renamed) != recipe.key
    # one name, one meaning: no chapter parameter shares AIDConfig's hashed field name
    assert "aid_batch_size" not in schema.defaults("04_aid_defense")


@pytest.mark.parametrize("profile", FASHION_PROFILES)
@pytest.mark.parametrize("stem", CHAPTERS)
def test_chapters_resolve_to_the_recipes_of_chapters_1_2_and_4(stem, profile):
    for arch in config.ARCHS:
        new = new_keys(stem, new_parameters(stem, profile), arch)
        assert (
            new["classifier"]
            == new_keys("01_target_models", new_parameters("01_target_models", profile), arch)["classifier"]
        )
        assert (
            new["rts"] == new_keys("02_interpreters", new_parameters("02_interpreters", profile), arch)["rts"]
        )
        if "rtsa" in new:
            assert (
                new["rtsa"]
                == new_keys("04_aid_defense", new_parameters("04_aid_defense", profile), arch)["rtsa"]
            )


def test_imagenet_profile_is_refused_before_any_recipe():
    # the book trains on Fashion-MNIST only; the imagenet profile is chapter 1's photo setting
    for stem in CHAPTERS:
        with pytest.raises(config.ParameterError, match="dataset"):
            schema.validate_chapter(stem, new_parameters(stem, "imagenet"))


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2
    if isinstance(value, list):
        return value[:1]
    return None if value is not None else "elsewhere"


@pytest.mark.parametrize("stem", ["01_target_models", *CHAPTERS])
def test_evaluation_parameters_never_change_a_recipe_key(stem):
    base = new_parameters(stem, "smoke")
    keys = {a: new_keys(stem, base, a) for a in config.ARCHS}
    for name, p in schema.chapter_schema(stem).items():
        if p.role == "recipe" or name == "archs":
            continue
        value = _changed(base.get(name, p.default))
        for arch in config.ARCHS:
            assert new_keys(stem, {**base, name: value}, arch) == keys[arch], name


@pytest.mark.parametrize("stem", ["01_target_models", *CHAPTERS])
def test_every_recipe_parameter_changes_its_key(stem):
    base = new_parameters(stem, "smoke")
    for name, p in schema.chapter_schema(stem).items():
        if p.role != "recipe" or name == "dataset":  # one dataset can be trained on today
            continue
        before = new_keys(stem, base, "resnet")
        after = new_keys(stem, {**base, name: _changed(base.get(name, p.default))}, "resnet")
        kind = (
            "classifier"
            if name in recipes.CLASSIFIER_PARAMETERS
            else "rts"
            if name in recipes.RTS_PARAMETERS
            else "rtsa"
        )
        assert after[kind] != before[kind], name
        # and everything built on it changes with it
        for later in ("classifier", "rts", "rtsa")[("classifier", "rts", "rtsa").index(kind) :]:
            if later in before:
                assert after[later] != before[later], (name, later)


def test_schema_recipe_role_is_exactly_the_recipe_layer_parameters():
    for stem in schema.STEMS:
        declared = {n for n, p in schema.chapter_schema(stem).items() if p.role == "recipe"}
        names = schema.chapter_schema(stem)
        assert declared == {n for n in names if n in recipes.RECIPE_PARAMETERS}
        assert declared <= recipes.RECIPE_PARAMETERS


def test_rts_phase1_follows_one_rule():
    kw = recipes.rts_recipe({"rts_batch_size": 16, "rts_lr": 0.02}, "resnet").train_rts_kwargs()
    assert (kw["phase1_batch_size"], kw["phase1_lr"]) == (32, 0.02)


def test_rtsa_budget_is_its_own_not_the_evaluation_epsilon():
    params = {"epsilon": 0.05, "step_size": 0.01}
    a = recipes_for({**schema.defaults("06_table10"), **params})["rtsa"]["resnet"]
    b = recipes_for(schema.defaults("06_table10"))["rtsa"]["resnet"]
    assert a.key == b.key and a.aid_config().epsilon == 0.1
    c = recipes_for({**schema.defaults("06_table10"), "rtsa_epsilon": 0.05})["rtsa"]["resnet"]
    assert c.key != b.key and c.aid_config().epsilon == 0.05


def test_data_fingerprint_enters_the_key_only_when_set():
    r = recipes.ClassifierRecipe("resnet")
    assert "data_fingerprint" not in r.cache_params()
    f = recipes.ClassifierRecipe("resnet", data_fingerprint="abc")
    assert f.cache_params()["data_fingerprint"] == "abc" and f.key != r.key
    assert recipes.RTSRecipe(f).key != recipes.RTSRecipe(r).key


def test_loaders_ask_the_cache_for_the_recipe_key(capture):
    params = new_parameters("04_aid_defense", "smoke")
    rtsa = recipes_for({**schema.defaults("04_aid_defense"), **params})["rtsa"]["densenet"]
    assert capture(loading.load_classifier, rtsa.rts.classifier, FASHION) == rtsa.rts.classifier.key
    clf_art = SimpleNamespace(path=Path(rtsa.rts.classifier.key))
    assert capture(loading.load_rts, rtsa.rts, FASHION, _model("densenet"), clf_art) == rtsa.rts.key
    rts_art = SimpleNamespace(path=Path(rtsa.rts.key), metrics={})
    rts = SimpleNamespace(map_size=None, width=None)
    assert capture(loading.load_rtsa, rtsa, FASHION, _model("densenet"), rts, rts_art) == rtsa.key
    with pytest.raises(RuntimeError, match="differs from its recipe"):
        loading.load_rts(rtsa.rts, FASHION, _model("densenet"), SimpleNamespace(path=Path("x")))


def test_wrong_dataset_is_refused():
    with pytest.raises(config.ParameterError, match="fashion-mnist"):
        loading.load_classifier(recipes.ClassifierRecipe("resnet"), SimpleNamespace(name="mnist"))


# ----------------------------------------------------------------------------- data fingerprint
def test_the_data_read_is_part_of_every_key_built_on_the_classifier(capture):
    """Issue 11: a changed copy of the training data (shuffled labels, say) must not reuse the
    model trained on the old one: its content fingerprint is in the classifier key, and so in the
    RTS and RTSA keys built on it."""
    rtsa = recipes.rtsa_recipe(schema.defaults("06_table10"), "resnet")
    a = recipes.with_data(rtsa, SimpleNamespace(fingerprint="aaaa"))
    b = recipes.with_data(rtsa, SimpleNamespace(fingerprint="bbbb"))
    assert a.rts.classifier.key != b.rts.classifier.key
    assert a.rts.key != b.rts.key and a.key != b.key
    assert recipes.with_data(rtsa, SimpleNamespace(fingerprint="")) == rtsa
    # the loader hashes the fingerprint of the data it is given
    data = SimpleNamespace(**vars(FASHION), fingerprint="aaaa")
    key = capture(loading.load_classifier, recipes.ClassifierRecipe("resnet"), data)
    assert key == a.rts.classifier.key


# ----------------------------------------------------------------------------- the book's artifacts
FASHION_MNIST_FINGERPRINT = "c89a0c2b653e95df"  # the content of the Fashion-MNIST files the book read
QUICK_RESNET_KEYS = {  # the entries the quick run of chapter 4 cached for the small ResNet
    "classifier": "e2ff6378df8f2c43",
    "rts": "5ae15e1e69842a7e",
    "rtsa": "0a2a7032dc71b170",
    "rtsa_control": "ada3bd63a13c22c3",
}


def test_recipes_name_the_artifacts_the_book_trained():
    """The recipe is the only source of a key: the quick profile's recipes, on the data the book
    read, name the cached classifier, RTS, RTSA and control RTSA the book's quick run trained."""
    rtsa = recipes.rtsa_recipe(
        {**schema.defaults("04_aid_defense"), **new_parameters("04_aid_defense", "quick")}, "resnet"
    )
    rtsa = recipes.with_data(rtsa, SimpleNamespace(fingerprint=FASHION_MNIST_FINGERPRINT))
    found = {"classifier": rtsa.rts.classifier, "rts": rtsa.rts, "rtsa": rtsa, "rtsa_control": rtsa.control()}
    assert {kind: r.key for kind, r in found.items()} == QUICK_RESNET_KEYS
