"""Support for the workflow's scripts: logging into the rule's log file and thread limits."""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Any


def exit_on_sigterm(signum: int, frame: Any) -> None:
    # Unwind instead of dying on the spot, so atomic_file/atomic_dir remove their temporaries.
    raise SystemExit(128 + signum)


def setup(snakemake: Any) -> logging.Logger:
    """Send stdout/stderr/logging to ``snakemake.log[0]``, use the rule's thread count, and turn
    SIGTERM (Snakemake's or SLURM's way to stop a job) into an exception that cleans up.
    """
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    if snakemake.log:
        stream = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115 (lives as long as the job)
        sys.stdout = sys.stderr = stream
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    torch = sys.modules.get("torch")  # only if the script uses it: importing costs seconds
    if torch is not None:
        torch.set_num_threads(max(1, int(snakemake.threads)))
    return logging.getLogger(f"backtrack.{snakemake.rule}")


def param_json(snakemake: Any, name: str) -> Any:
    """A params entry that the rule passed as sorted JSON."""
    return json.loads(getattr(snakemake.params, name))
