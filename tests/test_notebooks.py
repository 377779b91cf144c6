"""Every source notebook passes `pytest --nbval-lax` with the smoke profile's parameters injected.

nbval (lax) executes each cell and fails on any error, including the explicit assert cells at the
end of every chapter. The parameters are injected with papermill exactly as the runner does.
"""

import json
import subprocess
import sys

import papermill
import pytest

from adv2.book import runner
from adv2.core.config import REPO_ROOT


@pytest.mark.notebook
@pytest.mark.timeout(900)
@pytest.mark.parametrize("notebook", runner.all_notebooks(), ids=lambda p: p.stem)
def test_notebook_passes_nbval_at_smoke_profile(notebook, tmp_path):
    results = tmp_path / "results"
    params = runner.notebook_parameters(notebook, "smoke", {}, str(results))
    prepared = tmp_path / notebook.name
    papermill.execute_notebook(
        str(notebook), str(prepared), parameters=params, prepare_only=True, kernel_name="python3"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(prepared),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=880,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    payload = json.loads((results / f"{notebook.stem}.json").read_text())
    assert payload["notebook"] == notebook.stem and payload["numbers"]
    assert payload["params"]["profile"] == "smoke"
