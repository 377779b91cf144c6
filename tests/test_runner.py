import json
import subprocess
import sys
import time

import nbformat
import pytest

from adv2 import runner
from adv2.config import ParameterError, REPO_ROOT


def test_bad_value_fails_within_seconds_naming_choices():
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "adv2", "run", "01", "--profile", "smoke",
                           "-p", "arch", "vgg"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 2
    assert "'arch'" in proc.stderr and "'vgg'" in proc.stderr and "'densenet'" in proc.stderr
    assert time.time() - started < 30


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ParameterError, match="valid parameters: .*train_epochs"):
        runner.run(["01"], "smoke", {"epsilonn": 0.1})


def test_unknown_notebook_lists_choices():
    with pytest.raises(runner.RunError, match="01_target_models"):
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
    assert {"profile", "device", "seed", "results_dir"} <= set(declared)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "source notebooks are committed without outputs"
