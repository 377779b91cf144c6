"""``run.json``, the record of a run: its parameters, each notebook's status and wall time, and
for a run that finished its own wall time (``wall_seconds``, from the start of ``run`` to the last
notebook's end, kernel starts included) and whether it executed every notebook of the book
(``whole_book``): publishing records a whole run's wall time in ``timings-<profile>.json``."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adv2.book.paths import RUN_RECORD, shown_path
from adv2.book.publish import describe_os_error
from adv2.trained.files import atomic_write_json


class RunRecord:
    """``run.json``: what ran with which parameters, how it ended, how long it took."""

    def __init__(
        self,
        run_dir: Path,
        results_dir: Path,
        profile: str,
        plan: Sequence[tuple[Path, dict[str, Any]]],
        argv: Sequence[str] | None,
        whole_book: bool = False,
    ) -> None:
        self.path = run_dir / RUN_RECORD
        self.data: dict[str, Any] = {
            "version": 1,
            "profile": profile,
            "status": "running",
            "pid": os.getpid(),
            "command": list(argv) if argv is not None else None,
            "run_dir": str(run_dir),
            "results_dir": str(results_dir),
            "started": utc_now(),
            "finished": None,
            "whole_book": whole_book,  # every notebook of the book, in this one run
            "wall_seconds": None,  # set when the run finishes
            "other_jobs_cores": None,
            "notebooks": {
                nb.stem: {
                    "status": "pending",
                    "notebook": f"{nb.stem}.ipynb",
                    "source": shown_path(nb),
                    "parameters": params,
                    "seconds": None,
                    "other_jobs_cores": None,
                    "models_trained": None,
                    "error": None,
                }
                for nb, params in plan
            },
        }
        self.save()

    def notebook(self, stem: str, **fields: Any) -> None:
        self.data["notebooks"][stem].update(fields)
        self.save()

    def finish(self, status: str, **fields: Any) -> None:
        """End the record with ``status`` (and ``fields``: the run's ``wall_seconds``, ...)."""
        self.data.update(status=status, finished=utc_now(), **fields)
        self.save()

    def save(self) -> None:
        try:
            atomic_write_json(self.path, self.data)
        except OSError:
            # a full disk has no room for the temporary copy an atomic write needs; rewriting the
            # file in place reuses its blocks, so run.json can still say how the run ended
            self._save_in_place()

    def _save_in_place(self) -> None:
        data = (json.dumps(self.data, indent=2, sort_keys=True, default=str) + "\n").encode()
        with open(self.path, "r+b") as f:
            f.write(data)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())

    def try_notebook(self, stem: str | None, **fields: Any) -> None:
        """Update while the run is already ending on an error: a failure to save is reported, not
        raised (it would hide the error that ended the run)."""
        try:
            if stem is not None:
                self.notebook(stem, **fields)
            else:
                self.finish(fields["status"])
        except OSError as err:
            print(
                f"[adv2] warning: could not update {self.path}: {describe_os_error(err)}",
                file=sys.stderr,
                flush=True,
            )


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
