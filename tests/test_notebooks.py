"""Every notebook end to end at the smoke profile, through the runner (as a re-runner would)."""
import json
import os

import pytest

from adv2 import runner


@pytest.mark.notebook
@pytest.mark.timeout(900)
@pytest.mark.parametrize("notebook", runner.all_notebooks(), ids=lambda p: p.stem)
def test_notebook_runs_at_smoke_profile(notebook, tmp_path_factory):
    out = tmp_path_factory.mktemp("executed")
    res = tmp_path_factory.mktemp("results")
    timings = runner.run([notebook.stem], "smoke", output_dir=out, results_dir=str(res),
                         progress=False)
    assert (out / notebook.name).is_file()
    payload = json.loads((res / f"{notebook.stem}.json").read_text())
    assert payload["notebook"] == notebook.stem and payload["numbers"]
    assert payload["params"]["profile"] == "smoke"
    print(f"{notebook.stem}: {timings[notebook.stem]:.0f} s")
