"""One rank of a multi-GPU training job: ``python -m backtrack.train.rank SPEC.json``.

Started by ``accelerate launch`` (:func:`backtrack.train.launch.run_launch`), never by hand.
The spec is JSON written by the rule script: ``stage`` (sft or dpo), ``model_dir``, ``data``
(the JSONL of SFT examples or DPO pairs), ``out_dir``, ``params`` (the config section),
``seed``, ``dtype``, ``precision`` (as the rule's script resolved it: ``bf16`` or ``fp32``)
and ``num_processes`` (:meth:`backtrack.train.spec.TrainJob.spec`). Every rank trains; rank 0
writes ``out_dir`` (backtrack.train.trainers).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _sigterm(signum: int, frame: Any) -> None:
    # The launcher stops the surviving ranks with SIGTERM when one fails: unwind (so atomic_dir
    # removes a temporary output) instead of dying on the spot.
    raise SystemExit(128 + signum)


def run_rank(
    spec: dict[str, Any],
    *,
    callbacks: list[Any] | None = None,
    on_saved: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train this rank's share of the job in ``spec``; rank 0 writes the output.

    ``callbacks`` (TRL trainer callbacks) and ``on_saved`` (called once rank 0's temporary
    output is complete) let a caller watch or interrupt a rank; the tests inject failures so.
    """
    import torch

    # accelerate launch sets OMP_NUM_THREADS from --num_cpu_threads_per_process.
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    from backtrack.io import read_jsonl
    from backtrack.train.spec import TrainJob
    from backtrack.train.trainers import Ranks, done_message, run_dpo, run_sft

    log = logging.getLogger("backtrack.train.rank")
    job = TrainJob.from_spec(spec)
    run = {"sft": run_sft, "dpo": run_dpo}[job.stage]
    log.info(
        "%s on %d processes: %s -> %s", job.stage, job.num_processes, job.model_dir, job.out_dir
    )
    info = run(
        job.model_dir,
        read_jsonl(job.data),
        job.out_dir,
        job.params,
        job.settings,
        Ranks(job.num_processes, callbacks, on_saved),
    )
    log.info(done_message(spec["stage"], info))
    return info


def setup_rank() -> int:
    """Logging (rank 0 at INFO, the others at WARNING) and SIGTERM handling; returns the rank."""
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    signal.signal(signal.SIGTERM, _sigterm)
    return rank


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m backtrack.train.rank SPEC.json", file=sys.stderr)
        return 2
    setup_rank()
    run_rank(json.loads(Path(args[0]).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
