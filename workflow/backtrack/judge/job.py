"""A judge job as plain data, run here or in the vLLM environment beside this one.

The ``judge`` rules' script (judge, judge_sweep, judge_attack) turns its Snakemake object into a
job: the judge's config, the precision setting and the paths. The refusal judge and Llama Guard
on transformers run in this interpreter. Llama Guard with ``backend: vllm`` runs here too when
this interpreter has ``vllm`` (the GPU conda env ``envs/vllm.yaml``); on a CPU machine vLLM lives
in ``.venv-vllm`` (``tools/setup.sh``), so the job is handed to that interpreter exactly as a
generate job is (:func:`backtrack.vllm_env.run_in_vllm_env`, ``python -m
backtrack.judge.job JOBS.json``, this package first on its path). The judgments come back
through the output file, the log through the job's stderr.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import asdict
from typing import Any

log = logging.getLogger("backtrack.judge.job")


def make_job(
    *,
    judge: dict[str, Any],
    precision: str | None,
    generations: str,
    prompts: str,
    output: str,
    samples: int = 1,
    limit: int = 0,
    threads: int = 1,
) -> dict[str, Any]:
    """A job: the judge's config (``name``, ``params``) and what the rule passes."""
    return {
        "judge": {"name": judge["name"], "params": dict(judge.get("params") or {})},
        "precision": precision,
        "generations": str(generations),
        "prompts": str(prompts),
        "output": str(output),
        "samples": int(samples),
        "limit": int(limit),
        "threads": int(threads),
    }


def needs_vllm(job: dict[str, Any]) -> bool:
    """Whether the job's judge runs a model on vLLM (Llama Guard with ``backend: vllm``)."""
    return job["judge"]["name"] != "refusal" and job["judge"]["params"].get("backend") == "vllm"


def run_jobs(jobs: list[dict[str, Any]]) -> None:
    """Judge each job's answers and write its judgments (generation record + verdict)."""
    from backtrack.checks import GENERATION_FIELDS, read_answers
    from backtrack.io import write_jsonl
    from backtrack.judge.base import JudgeInput
    from backtrack.judge.registry import make_judge

    for job in jobs:
        cfg = job["judge"]
        if cfg["name"] != "refusal":  # a model judge; the pattern judge's env has no torch
            import torch

            torch.set_num_threads(max(1, job["threads"]))  # the rule's threads
        judge = make_judge(cfg["name"], cfg["params"], job["precision"])
        # Sweep points may answer the first `limit` prompts, `samples` times each.
        gens = read_answers(
            job["generations"],
            job["prompts"],
            samples=job["samples"],
            limit=job["limit"],
            required=GENERATION_FIELDS,
        )
        verdicts = judge.judge([JudgeInput.from_generation(g) for g in gens])
        write_jsonl(
            job["output"],
            ({**g, **asdict(v), "judge": judge.name} for g, v in zip(gens, verdicts, strict=True)),
        )
        log.info("%d judged, %d unsafe", len(gens), sum(v.unsafe for v in verdicts))
        close = getattr(judge, "close", None)
        if close is not None:  # a vLLM engine stops its processes now, not at exit
            close()


def run(jobs: list[dict[str, Any]]) -> None:
    """Run jobs here, or in the vLLM environment when they need vLLM and this Python has none."""
    from backtrack.vllm_env import run_here_or_in_vllm_env

    run_here_or_in_vllm_env(
        jobs, needs_vllm=needs_vllm, run_jobs=run_jobs, module="backtrack.judge.job"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m backtrack.judge.job JOBS.json``: the vLLM environment's side."""
    from backtrack.vllm_env import job_main

    return job_main(argv, run_jobs)


if __name__ == "__main__":  # the engine starts worker processes that re-import this module
    sys.exit(main())
