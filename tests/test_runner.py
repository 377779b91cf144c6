import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from adv2.book import cli, execute, runbox, runner
from adv2.book.paths import RUNS_ENV
from adv2.core.config import REPO_ROOT, ParameterError


@pytest.mark.slow  # a real subprocess: in `make test`, not in `make test-fast`
def test_bad_value_fails_within_seconds_naming_choices():
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "adv2", "run", "01", "--profile", "smoke", "-p", "arch", "vgg"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert proc.returncode == 2
    assert "'arch'" in proc.stderr and "'vgg'" in proc.stderr and "'densenet'" in proc.stderr
    assert time.time() - started < 30


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ParameterError, match="valid parameters: .*train_epochs"):
        runner.run(["01"], "smoke", {"epsilonn": 0.1})


def test_unknown_notebook_lists_choices():
    with pytest.raises(execute.RunError, match="01_target_models"):
        runner.select_notebooks(["99"])


def test_arch_is_shorthand_for_archs():
    nb = runner.select_notebooks(["01"])[0]
    params = runner.notebook_parameters(nb, "smoke", {"arch": "densenet"}, None)
    assert params["archs"] == ["densenet"]


def test_profile_values_reach_the_notebook():
    nb = runner.select_notebooks(["01"])[0]
    params = runner.notebook_parameters(nb, "smoke", {}, "/tmp/x")
    assert params["train_subset"] == 4000 and params["results_dir"] == "/tmp/x"


@pytest.mark.parametrize("notebook", runner.all_notebooks(), ids=lambda p: p.stem)
def test_parameters_cell_is_documented_and_parseable(notebook):
    """One `parameters` cell; every line `name: type = value  # comment`; papermill sees them all."""
    nb = nbformat.read(notebook, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    lines = [ln for ln in tagged[0].source.splitlines() if ln.strip() and not ln.startswith(" ")]
    declared = runner.declared_parameters(notebook)
    assert len(lines) == len(declared), "papermill could not parse some parameter lines"
    for line in lines:
        head, _, comment = line.partition("#")
        assert ":" in head.split("=")[0], f"missing type annotation: {line}"
        assert comment.strip(), f"missing comment: {line}"
    assert {"profile", "results_dir"} <= set(declared)
    if notebook.stem != "08_scaling":  # chapter 8 reads a sweep: its points take device and seeds
        assert {"device", "seed"} <= set(declared)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "source notebooks are committed without outputs"
    )


def test_progress_bars_are_quiet_under_the_runner(monkeypatch):
    from adv2.core import progress

    monkeypatch.delenv(progress.QUIET_ENV, raising=False)
    assert not progress.progress_bar(total=3).disable
    assert progress.progress_bar(total=3, enabled=False).disable
    monkeypatch.setenv(progress.QUIET_ENV, "1")
    assert progress.progress_bar(total=3).disable
    monkeypatch.setenv(progress.QUIET_ENV, "0")
    assert not progress.progress_bar(total=3).disable


def _executed(path, profile, seconds, adv2_meta):
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {
        "parameters": {"profile": profile},
        "duration": seconds,
        "end_time": "2026-11-23T10:00:00",
    }
    if adv2_meta is not None:
        nb.metadata["adv2"] = adv2_meta
    nbformat.write(nb, path)


def test_run_box_names_profile_times_training_and_load(tmp_path):
    box = tmp_path / "_run_info.md"
    _executed(tmp_path / "01_a.ipynb", "quick", 120.0, {"models_trained": 2, "other_jobs_cores": 0.05})
    _executed(tmp_path / "02_b.ipynb", "smoke", 60.0, {"models_trained": 0, "other_jobs_cores": 0.1})
    text = runbox.write_run_info(tmp_path, tmp_path, box).read_text()
    assert "| 01_a | `quick` | none | 2.0 min | 2 |" in text
    assert (
        "| 02_b | `smoke` | none | 1.0 min | 0 |" in text and "| sum of the chapters | | | 3.0 min |" in text
    )
    assert "02_b show the `smoke` profile" in text
    assert "otherwise idle" in text
    _executed(tmp_path / "02_b.ipynb", "quick", 60.0, {"models_trained": 0, "other_jobs_cores": 1.5})
    text = runbox.write_run_info(tmp_path, tmp_path, box).read_text()
    assert "shared the machine during 02_b (up to 1.5" in text and "smoke" not in text


@pytest.mark.parametrize("profile", ["quick", "full", "paper", "smoke"])
def test_run_box_says_what_the_runs_profile_means(profile, tmp_path):
    """Issue 27: a `full` book says it is a CPU run below the paper's budgets that `paper` on a GPU
    replaces; a `quick` book that it attacks few photos with one classifier and that its
    intervals cover the images only. One sentence per profile, from runbox.PROFILE_NOTES."""
    _executed(tmp_path / "01_a.ipynb", profile, 60.0, {"models_trained": 0, "other_jobs_cores": 0.0})
    text = runbox.render_run_info(tmp_path, tmp_path)
    expected = {"paper": "", "smoke": runbox.OTHER_PROFILES_NOTE, **runbox.PROFILE_NOTES}[profile]
    for p, note in runbox.PROFILE_NOTES.items():
        assert (note in text) == (p == profile), p
    assert expected in text and (runbox.OTHER_PROFILES_NOTE in text) == (profile == "smoke")
    if profile == "full":
        assert (
            "CPU run" in expected and "below the paper's" in expected and "`paper` run on a GPU" in expected
        )
    if profile == "quick":
        assert "one photo classifier" in expected and "choice of images only, not the training" in expected


def test_profile_notes_stay_true_of_the_profiles():
    """The sentences describe chapter 3's photo setting at each profile: quick attacks some of the
    photos with one classifier, full every photo with every classifier."""
    from adv2.chapters import schema
    from adv2.core import config

    def values(stem, profile="full"):
        return schema.profile_values(stem, profile)

    quick, full = values("03_adv2", "quick"), values("03_adv2")
    assert len(quick["photo_classifiers"]) == 1 and quick["imagenet_n_images"] > 0
    assert full["photo_classifiers"] == list(config.PHOTO_CLASSIFIERS) and full["imagenet_n_images"] == 0
    # full's sentence names how many training seeds chapters 3-7 and 9's intervals cover, and that
    # chapter 2 (one training seed) and the photos cover the images only
    n_words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    assert values("01_target_models")["seed_repeats"] == len(full["train_seeds"])
    note = " ".join(runbox.PROFILE_NOTES["full"].split())
    assert f"cover {n_words[len(full['train_seeds'])]} training seeds" in note
    for stem in ("04_aid_defense", "05_noise_sensitivity", "06_table10", "07_input_size", "09_defense1"):
        seeds = values(stem)["train_seeds"]
        assert seeds == full["train_seeds"], f"{stem}: the run box says chapters 3 to 7 and 9 share seeds"
    seeds = values("02_interpreters").get("train_seeds") or []
    assert len(seeds) <= 1, "chapter 2 now has training seeds at full: say so in runbox.PROFILE_NOTES"
    assert "chapter 2's intervals and every photo interval cover the images only" in note
    assert set(runbox.PROFILE_NOTES) <= set(config.PROFILES)
    # a mixed run says each of its profiles' sentences
    assert runbox.profile_note({"quick", "full"}) == " ".join(
        runbox.PROFILE_NOTES[p] for p in ("quick", "full")
    )
    assert runbox.profile_note({"paper"}) == runbox.profile_note(set()) == ""


def test_run_box_lists_each_chapters_non_default_parameters(tmp_path):
    """Compared with the chapter's own profile values: the profile name alone hides overrides."""
    from adv2.core.config import load_profile

    profile = load_profile("smoke", "03_adv2")
    params = {**profile, "epsilon": 0.016, "archs": ["densenet"], "results_dir": "/tmp/r"}
    assert runbox.non_default_parameters("03_adv2", params) == {"archs": ["densenet"], "epsilon": 0.016}
    assert runbox.non_default_parameters("03_adv2", profile) == {}
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"parameters": params, "duration": 30.0, "end_time": "2026-11-23"}
    nbformat.write(nb, tmp_path / "03_adv2.ipynb")
    text = runbox.render_run_info(tmp_path, tmp_path)
    assert "| 03_adv2 | `smoke` | `archs=['densenet']`, `epsilon=0.016` | 0.5 min |" in text


def test_busy_cpu_counts_other_processes():
    if runbox.busy_cpu_seconds() is None:
        pytest.skip("no /proc/stat")
    busy, own = runbox.busy_cpu_seconds(), runbox.own_cpu_seconds()
    spin = "import time\nwhile time.process_time() < 1: pass"  # 1 s of CPU, however busy the machine
    assert subprocess.run([sys.executable, "-c", spin], check=False).returncode == 0
    # the busy child is this process's child: it counts as ours, not as another job's
    assert runbox.own_cpu_seconds() - own >= 0.9
    assert runbox.busy_cpu_seconds() - busy >= 0.9


def test_text_parameter_keeps_yaml_words_as_text():
    nb = runner.select_notebooks(["05"])[0]
    params = runner.notebook_parameters(nb, "smoke", runner.parse_overrides([["map_class", "true"]]), None)
    assert params["map_class"] == "true"


def test_run_folders_and_where_results_go(tmp_path, monkeypatch):
    """Default: runs/<UTC time>-<profile>-<numbers>/ with results/ inside; --output-dir DIR puts the
    results beside the notebooks unless --results-dir says otherwise."""
    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "runs"))
    nbs = runner.select_notebooks(["01", "03"])
    run_dir, results = runner.resolve_folders("smoke", nbs, None, None)
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.endswith("Z-smoke-01-03")
    assert results == run_dir / "results"
    assert runner.resolve_folders("smoke", nbs, tmp_path / "ex", None) == (tmp_path / "ex", tmp_path / "ex")
    chosen = runner.resolve_folders("smoke", nbs, tmp_path / "ex", tmp_path / "r")
    assert chosen == (tmp_path / "ex", tmp_path / "r")


def test_check_validates_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "runs"))
    assert cli.main(["run", "03", "--profile", "smoke", "-p", "epsilon", "0.016", "--check"]) == 0
    out = capsys.readouterr().out
    assert "03_adv2: epsilon=0.016" in out and "nothing ran" in out
    assert cli.main(["run", "03", "--profile", "smoke", "-p", "epsilon", "2", "--check"]) == 2
    assert "'epsilon'" in capsys.readouterr().err
    assert cli.main(["run", "03", "--profile", "smoke", "-p", "epsilon", "2"]) == 2
    assert not (tmp_path / "runs").exists(), "a rejected run must not create its folder"


def test_artifacts_env_reaches_the_notebooks(monkeypatch):
    nb = runner.select_notebooks(["01"])[0]
    monkeypatch.setenv(runner.ARTIFACTS_ENV, "/tmp/cache")
    assert runner.notebook_parameters(nb, "smoke", {}, None)["artifacts_dir"] == "/tmp/cache"
    params = runner.notebook_parameters(nb, "smoke", {"artifacts_dir": "/tmp/other"}, None)
    assert params["artifacts_dir"] == "/tmp/other"


def test_yaml_error_in_a_value_is_one_line_naming_the_parameter(capsys):
    assert cli.main(["run", "03", "--profile", "smoke", "-p", "archs", "[resnet", "--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: parameter 'archs': cannot parse '[resnet' as YAML: expected ',' or ']'"), (
        err
    )
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    with pytest.raises(
        ParameterError, match="parameter 'seed': cannot parse .* could not determine a constructor"
    ):
        runner.parse_overrides([["seed", "!!python/object:os.system x"]])


def test_yaml_error_in_a_profile_file_names_the_file_and_line(tmp_path, monkeypatch, capsys):
    from adv2.core import config

    (tmp_path / "smoke.yaml").write_text("common:\n  seed: 0\n  archs: [resnet\n")
    monkeypatch.setattr(config, "PARAMS_DIR", tmp_path)
    with pytest.raises(
        ParameterError, match=r"profile file .*smoke.yaml: cannot parse it as YAML: .*\(line \d+"
    ):
        config.load_profile("smoke", "01_target_models")
    assert cli.main(["run", "01", "--profile", "smoke", "--check"]) == 2
    err = capsys.readouterr().err
    assert "smoke.yaml" in err and "Traceback" not in err
    (tmp_path / "smoke.yaml").write_text("common: [seed]\n")
    with pytest.raises(ParameterError, match="expected a mapping"):
        config.load_profile("smoke", "01_target_models")


def test_check_refuses_folders_that_do_not_exist(tmp_path, capsys):
    missing = tmp_path / "imagenet" / "val"
    args = ["run", "01", "--profile", "imagenet", "--check"]
    assert cli.main([*args, "-p", "imagenet_dir", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "'imagenet_dir'" in err and str(missing) in err and "not an existing folder" in err
    missing.mkdir(parents=True)
    assert cli.main([*args, "-p", "imagenet_dir", str(missing)]) == 0
    capsys.readouterr()
    cache = tmp_path / "no-such-parent" / "cache"
    assert cli.main([*args, "-p", "imagenet_dir", str(missing), "-p", "artifacts_dir", str(cache)]) == 2
    err = capsys.readouterr().err
    assert "'artifacts_dir'" in err and str(cache.parent) in err


def fake_clone(root: Path) -> Path:
    (root / "lib" / "adv2").mkdir(parents=True)
    (root / "lib" / "adv2" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text("[project]\nname = 'adv2'\n")
    (root / "notebooks" / "deep").mkdir(parents=True)
    return root


def test_repository_root_is_the_working_tree_the_command_runs_in(tmp_path, monkeypatch):
    from adv2.core import config

    monkeypatch.delenv(config.ROOT_ENV, raising=False)
    clone = fake_clone(tmp_path / "clone")
    assert config.find_repo_root(clone / "notebooks" / "deep") == (clone.resolve(), None)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root, note = config.find_repo_root(outside)
    assert root == Path(config.__file__).resolve().parents[3] and "not inside an adv2 working tree" in note
    monkeypatch.setenv(config.ROOT_ENV, str(clone))  # what `python -m adv2` hands its kernels and workers
    assert config.find_repo_root(outside) == (clone.resolve(), None)


@pytest.mark.slow  # a real subprocess: in `make test`, not in `make test-fast`
def test_a_package_shared_between_clones_writes_into_the_current_clone(tmp_path):
    """The library is imported from this checkout, the command runs in another clone: runs/, the
    book, the results and the model cache are that clone's."""
    import os

    clone = fake_clone(tmp_path / "clone")
    code = (
        "from adv2.trained import artifacts, checkpoints\n"
        "from adv2.core import config\n"
        "from adv2.book import paths, publish, runner\n"
        "print(config.REPO_ROOT, paths.runs_root(), publish.BOOK_NOTEBOOKS_DIR, "
        "publish.PUBLISHED_RESULTS_DIR, artifacts.DEFAULT_ROOT, config.PARAMS_DIR, runner.NOTEBOOKS_DIR)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("ADV2_REPO_ROOT", RUNS_ENV)}
    env["PYTHONPATH"] = str(REPO_ROOT / "lib")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=clone / "notebooks" / "deep",
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    paths = [Path(p) for p in proc.stdout.split()]
    assert len(paths) == 7 and all(p.is_relative_to(clone.resolve()) for p in paths), paths


def test_checkpoint_command_reaches_the_photo_models_parser(capsys):
    """`python -m adv2 checkpoint KIND` (issue 22) replaces the separate photo scripts: its own
    parser answers, and a bad kind is refused before any training."""
    from adv2.book import cli

    with pytest.raises(SystemExit) as info:
        cli.main(["checkpoint", "bogus"])
    assert info.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["checkpoint", "-h"])
    assert info.value.code == 0 and "{rts,rtsa,control}" in capsys.readouterr().out


def _section(out: str, stem: str) -> str:
    """The lines of ``list`` under notebook ``stem``."""
    return out.split(f"\n{stem}\n", 1)[1].split("\n0", 1)[0]


def test_list_with_a_profile_shows_the_values_a_run_uses(capsys):
    assert cli.main(["list", "--profile", "quick"]) == 0
    out = capsys.readouterr().out
    # quick sets chapter 3's schedule and photo count; the notebook's defaults are authors and 2
    assert "schedule: str = 'fast' [profile]" in _section(out, "03_adv2")
    assert "imagenet_n_images: int = 4 [profile]" in _section(out, "03_adv2")
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("notebook defaults (no profile")
    assert "schedule: str = 'authors'    #" in _section(out, "03_adv2")
    assert "[profile]" not in out


def test_list_with_an_unknown_profile_is_one_line_naming_the_choices(capsys):
    assert cli.main(["list", "--profile", "bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'bogus'" in err and "'quick'" in err and "'paper'" in err


def test_check_names_each_model_cached_or_to_train(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "runs"))
    monkeypatch.setenv("ADV2_CHECKPOINTS", str(tmp_path / "no-checkpoints"))  # else: committed checkpoint
    cache = tmp_path / "cache"
    argv = ["run", "02", "--profile", "smoke", "-p", "artifacts_dir", str(cache), "--check"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    if "Fashion-MNIST not found" in out:
        pytest.skip("Fashion-MNIST is not installed: the classifiers' keys hash its content")
    (line,) = [x for x in out.splitlines() if x.strip().startswith("resnet classifier (")]
    assert line.endswith(": to train")
    kind_key = line.split("(", 1)[1].split(")", 1)[0]  # classifier/<key>
    (cache / kind_key).mkdir(parents=True)
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"resnet classifier ({kind_key}): cached" in out
    assert "resnet RTS (rts/" in out and "estimated time:" in out


def test_check_warns_when_the_paper_profile_has_no_gpu(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "runs"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["run", "01", "--profile", "paper", "--check"]) == 0
    out = capsys.readouterr().out
    assert "device: CPU (no CUDA device); warning: the paper profile" in out


def test_recorded_seconds_read_the_profiles_timings_file(tmp_path):
    from adv2.book import runplan

    (tmp_path / "timings-quick.json").write_text('{"seconds": {"01_target_models": 17.1}}')
    assert runplan.recorded_seconds("quick", tmp_path) == {"01_target_models": 17.1}
    assert runplan.recorded_seconds("paper", tmp_path) == {}


def test_the_command_line_starts_without_torch_or_nbformat():
    """`python -m adv2 list` and `--check` start in a fraction of a second: torch and nbformat (and
    its jsonschema) load only where a command needs them (after the move into floors, top-level
    imports had made every command take about 5 s to start)."""
    import os
    import subprocess
    import sys

    code = "import sys, adv2.book.cli; print(sorted(m for m in ('torch', 'nbformat') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "lib")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_plan_lists_one_photo_rts_per_photo_classifier_in_chapters_2_3_and_9():
    """Issue 27: ``--check`` names each photo classifier's RTS (Lite0's label and key unchanged)."""
    from adv2.book import runplan
    from adv2.trained import photo_recipes

    base = {"archs": [], "imagenet_sample": True, "imagenet_interpreters": ["rts"], "include_photo_rts": True}
    base.update(photos=True, fmnist=False, interpreters=["rts"])  # chapter 9's photo setting with RTS
    for stem in ("02_interpreters", "03_adv2", "09_defense1"):
        alone = runplan.needed_models(stem, base, None)
        assert alone == [("photo RTS", photo_recipes.PhotoRTSRecipe())]
        both = runplan.needed_models(
            stem, {**base, "photo_classifiers": ["efficientnet-lite0", "efficientnet-lite2"]}, None
        )
        assert [label for label, _ in both] == ["photo RTS", "photo RTS (efficientnet-lite2)"]
        assert both[1][1].key != both[0][1].key and both[1][1].arch == "efficientnet-lite2"


def test_plan_lists_the_models_of_every_training_seed_of_chapter_3(fmnist):
    """Issue 27: ``--check`` names the classifier and RTS of each further seed of ``train_seeds``."""
    from adv2.book import runplan
    from adv2.chapters.schema import chapter_schema

    params = {n: p.default for n, p in chapter_schema("03_adv2").items()}
    params.update(archs=["resnet"], imagenet_sample=False)
    one = runplan.needed_models("03_adv2", params, fmnist)
    assert [label for label, _ in one] == ["resnet classifier", "resnet RTS"]
    three = runplan.needed_models("03_adv2", {**params, "train_seeds": [2, 0, 5]}, fmnist)
    assert [label for label, _ in three] == [
        "resnet classifier",
        "resnet RTS",
        "resnet classifier (train_seed 2)",
        "resnet RTS (train_seed 2)",
        "resnet classifier (train_seed 5)",
        "resnet RTS (train_seed 5)",
    ]
    seeds = [r.train_seed if hasattr(r, "train_seed") else r.classifier.train_seed for _, r in three]
    assert seeds == [0, 0, 2, 2, 5, 5]  # an RTS: its classifier's
    assert len({r.key for _, r in three}) == 6


def test_plan_lists_the_models_of_every_training_seed_of_chapter_6(fmnist):
    """Issue 27: chapter 6's ``--check`` names each further seed's classifier, RTS, RTSA and control."""
    from adv2.book import runplan
    from adv2.chapters.schema import chapter_schema

    params = {n: p.default for n, p in chapter_schema("06_table10").items()}
    params.update(archs=["resnet"], photos=False)
    one = runplan.needed_models("06_table10", params, fmnist)
    base = ["resnet classifier", "resnet RTS", "resnet RTSA", "resnet RTSA control (beta 0)"]
    assert [label for label, _ in one] == base
    two = runplan.needed_models("06_table10", {**params, "train_seeds": [0, 1]}, fmnist)
    assert [label for label, _ in two] == [*base, *(f"{b} (train_seed 1)" for b in base)]
    assert [r.key for _, r in two[:4]] == [r.key for _, r in one]  # train_seed's models unchanged
    # each further model is the recipe a run with that train_seed would train (same cache key)
    other = runplan.needed_models("06_table10", {**params, "train_seed": 1}, fmnist)
    assert [r.key for _, r in two[4:]] == [r.key for _, r in other]
    assert two[6][1].aid_config().seed == 1 and two[7][1].beta == 0


@pytest.mark.parametrize("stem", ["04_aid_defense", "05_noise_sensitivity"])
def test_plan_lists_the_models_of_every_training_seed_of_chapters_4_and_5(fmnist, stem):
    """Issue 27: ``--check`` of chapters 4 and 5 names each further seed's classifier, RTS, RTSA and
    control (chapter 4's trade-off RTSAs stay at train_seed)."""
    from adv2.book import runplan
    from adv2.chapters.schema import chapter_schema

    params = {n: p.default for n, p in chapter_schema(stem).items()}
    params.update(archs=["resnet"], photos=False)
    one = runplan.needed_models(stem, params, fmnist)
    base = ["resnet classifier", "resnet RTS", "resnet RTSA", "resnet RTSA control (beta 0)"]
    assert [label for label, _ in one][:4] == base
    two = runplan.needed_models(stem, {**params, "train_seeds": [0, 1]}, fmnist)
    assert [label for label, _ in two] == [label for label, _ in one] + [f"{b} (train_seed 1)" for b in base]
    assert [r.key for _, r in two[: len(one)]] == [r.key for _, r in one]  # train_seed's models unchanged
    # each further model is the recipe a run with that train_seed would train (same cache key)
    other = runplan.needed_models(stem, {**params, "train_seed": 1}, fmnist)
    assert [r.key for _, r in two[len(one) :]] == [r.key for _, r in other[:4]]
    assert two[-2][1].aid_config().seed == 1 and two[-1][1].beta == 0


def test_the_run_box_counts_models_trained_not_loaded_from_a_checkpoint_nor_attacks(tmp_path):
    """A cold run that loads every model from the committed checkpoints trained nothing; chapter
    3's cached attacks are not models (the box had said 16 models trained for chapter 4)."""
    from adv2.book.runbox import count_models

    def entry(kind, key, metrics):
        folder = tmp_path / kind / key
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(metrics))

    entry("classifier", "a", {"seconds": 3.0})
    entry("rts", "b", {"seconds": 3.0, "checkpoint": "checkpoints/rts-b.pt"})
    entry("rtsa", "c", {"checkpoint": "checkpoints/rtsa-c.pt"})
    entry("attack", "d", {})
    assert count_models(str(tmp_path)) == (3, 1)
