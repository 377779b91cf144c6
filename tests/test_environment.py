"""environment.yml (conda) and pyproject.toml (pip) describe the same environment."""
import tomllib

import yaml

from adv2.config import REPO_ROOT


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pip_side = set(project["optional-dependencies"]["book"] + project["optional-dependencies"]["test"])
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip_section) == pip_side


def test_torch_pins_exclude_cpu_build():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0,!=2.13.0+cpu" in project["optional-dependencies"]["book"]
    assert "torchvision==0.28.0" in project["optional-dependencies"]["book"]


def test_library_itself_accepts_older_torch():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert "torch>=2.4" in project["dependencies"]
