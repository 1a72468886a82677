"""One rank of a multi-GPU training job: ``python -m backtrack.train.rank SPEC.json``.

Started by ``accelerate launch`` (:func:`backtrack.train.launch.run_launch`), never by hand.
The spec is
JSON written by the rule script: ``stage`` (sft or dpo), ``model_dir``, ``data`` (the JSONL of SFT
examples or DPO pairs), ``out_dir``, ``params`` (the config section), ``seed``, ``dtype`` and
``num_processes``. Every rank trains; rank 0 writes ``out_dir`` (backtrack.train.trainers).

Fault injection for the tests: ``BACKTRACK_FAIL_RANK=<rank>:<point>`` makes that rank raise at
``train`` (after its first optimizer step) or ``save`` (once rank 0's temporary output is
complete, before the final barrier; another rank waits for the file to appear).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

FAIL_ENV = "BACKTRACK_FAIL_RANK"


class InjectedFailure(RuntimeError):
    """Raised on purpose (``BACKTRACK_FAIL_RANK``) to test that a failed rank fails the job."""


def _fault(rank: int) -> str | None:
    """The injection point for this rank, if ``BACKTRACK_FAIL_RANK`` names it."""
    value = os.environ.get(FAIL_ENV)
    if not value:
        return None
    which, _, point = value.partition(":")
    if point not in ("train", "save"):
        raise ValueError(f"{FAIL_ENV}={value!r}: expected <rank>:train or <rank>:save")
    return point if int(which) == rank else None


def _sigterm(signum: int, frame: Any) -> None:
    # The launcher stops the surviving ranks with SIGTERM when one fails: unwind (so atomic_dir
    # removes a temporary output) instead of dying on the spot.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m backtrack.train.rank SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text())
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    log = logging.getLogger("backtrack.train.rank")
    signal.signal(signal.SIGTERM, _sigterm)

    import torch

    # accelerate launch sets OMP_NUM_THREADS from --num_cpu_threads_per_process.
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    from transformers import TrainerCallback

    from backtrack.io import read_jsonl
    from backtrack.train.trainers import run_dpo, run_sft

    point = _fault(rank)

    class FailAfterFirstStep(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            raise InjectedFailure(f"rank {rank}: injected failure after step {state.global_step}")

    def fail_before_barrier() -> None:
        # Wait (same node in the tests) until rank 0's temporary output is complete, so the
        # failure always lands between "written" and "renamed".
        out = Path(spec["out_dir"])
        deadline = time.monotonic() + 300
        while not any(out.parent.glob(f".{out.name}.*.tmp/train_log.json")):
            if time.monotonic() > deadline:
                raise InjectedFailure(f"rank {rank}: rank 0's temporary output never appeared")
            time.sleep(0.05)
        raise InjectedFailure(
            f"rank {rank}: injected failure before the final barrier, after rank 0 wrote its "
            "complete temporary output"
        )

    run = {"sft": run_sft, "dpo": run_dpo}[spec["stage"]]
    log.info(
        "%s on %d processes: %s -> %s", spec["stage"], spec["num_processes"], spec["model_dir"],
        spec["out_dir"],
    )  # fmt: skip
    info = run(
        spec["model_dir"],
        read_jsonl(spec["data"]),
        spec["out_dir"],
        spec["params"],
        seed=spec["seed"],
        dtype=spec["dtype"],
        num_processes=spec["num_processes"],
        callbacks=[FailAfterFirstStep()] if point == "train" else None,
        on_saved=fail_before_barrier if point == "save" else None,
    )
    log.info("%s done: loss %.4f over %d steps", spec["stage"], info["train_loss"], info["steps"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
