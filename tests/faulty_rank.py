"""A training rank that fails on purpose: ``python -m tests.faulty_rank SPEC.json``.

``BACKTRACK_FAIL_RANK=<rank>:<point>`` makes that rank raise at ``train`` (after its first
optimizer step) or ``save`` (once rank 0's temporary output is complete, before the final
barrier; the failing rank waits for that file to appear). Every other rank, and this one
without the variable, runs :func:`backtrack.train.rank.run_rank` unchanged. Lives in the tests:
production ranks carry no failure hooks.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from backtrack.train.rank import run_rank, setup_rank

FAIL_ENV = "BACKTRACK_FAIL_RANK"


class InjectedFailure(RuntimeError):
    """Raised on purpose to test that a failed rank fails the job."""


def fault(rank: int) -> str | None:
    """The injection point for this rank, if ``BACKTRACK_FAIL_RANK`` names it."""
    value = os.environ.get(FAIL_ENV)
    if not value:
        return None
    which, _, point = value.partition(":")
    if point not in ("train", "save"):
        raise ValueError(f"{FAIL_ENV}={value!r}: expected <rank>:train or <rank>:save")
    return point if int(which) == rank else None


def main() -> int:
    from transformers import TrainerCallback

    spec = json.loads(Path(sys.argv[1]).read_text())
    rank = setup_rank()
    point = fault(rank)

    class FailAfterFirstStep(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            raise InjectedFailure(f"rank {rank}: injected failure after step {state.global_step}")

    def fail_before_barrier() -> None:
        # Wait (same node) until rank 0's temporary output is complete, so the failure always
        # lands between "written" and "renamed".
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

    run_rank(
        spec,
        callbacks=[FailAfterFirstStep()] if point == "train" else None,
        on_saved=fail_before_barrier if point == "save" else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
