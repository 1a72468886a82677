"""A judge job as plain data, run here or in the vLLM environment beside this one.

The ``judge`` rules' script (judge, judge_sweep, judge_attack) turns its Snakemake object into a
job: the judge's config, the job's resolved settings (the precision it resolved once, by name;
the reset token; threads) and the paths. The refusal judge and Llama Guard
on transformers run in this interpreter. Llama Guard with ``backend: vllm`` runs here too when
this interpreter has ``vllm`` (the GPU conda env ``envs/vllm.yaml``); on a CPU machine vLLM lives
in ``.venv-vllm`` (``tools/setup.sh``), so the job is handed to that interpreter exactly as a
generate job is (:func:`backtrack.vllm_env.run_in_vllm_env`, ``python -m
backtrack.judge.job JOBS.json``, this package first on its path). The judgments come back
through the output file, the log through the job's stderr.

Each judgment is the generation record, the verdict, the judge's name and ``turned_back``
(whether the visible answer refuses after a compliant opening,
:func:`backtrack.judge.refusal.turns_back`), so that the tables read it without the judge.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backtrack.settings import JobSettings

log = logging.getLogger("backtrack.judge.job")

PathLike = str | os.PathLike[str]


def make_job(
    settings: JobSettings,
    *,
    judge: dict[str, Any],
    generations: PathLike,
    prompts: PathLike,
    output: PathLike,
    samples: int = 1,
    limit: int = 0,
) -> dict[str, Any]:
    """A job: the judge's config (``name``, ``params``), the job's resolved settings and what
    the rule passes. The precision travels by its resolved name, so that the vLLM environment
    does not resolve the setting again."""
    if not settings.reset_token:
        raise ValueError(f"rule {settings.rule}: no reset_token param")
    dtype = (judge.get("params") or {}).get("dtype")
    if dtype is not None and dtype not in JUDGE_DTYPES:  # before any model loads
        raise ValueError(
            f"config key 'judge.params.dtype': {dtype!r} is not one of {list(JUDGE_DTYPES)}"
        )
    return {
        "judge": {"name": judge["name"], "params": dict(judge.get("params") or {})},
        "precision": settings.precision.name if settings.precision else None,
        "reset_token": settings.reset_token,
        "generations": str(generations),
        "prompts": str(prompts),
        "output": str(output),
        "samples": int(samples),
        "limit": int(limit),
        "threads": int(settings.threads),
    }


#: A model judge's own ``dtype`` (judge.params.dtype, as the schema allows it) -> its job stats'
#: precision name.
JUDGE_DTYPES = {"bfloat16": "bf16", "float32": "fp32", "float16": "fp16"}


def ran_in(job: dict[str, Any]) -> str | None:
    """The precision (``bf16``/``fp32``) the job's model judge ran in, for its job stats: that of
    a ``dtype`` its params set, else the job's resolved one."""
    dtype = job["judge"]["params"].get("dtype")
    if dtype is None:
        return job["precision"]
    if dtype not in JUDGE_DTYPES:
        raise ValueError(
            f"config key 'judge.params.dtype': {dtype!r} is not one of {list(JUDGE_DTYPES)}"
        )
    return JUDGE_DTYPES[dtype]


def needs_vllm(job: dict[str, Any]) -> bool:
    """Whether the job's judge runs a model on vLLM (Llama Guard with ``backend: vllm``)."""
    return job["judge"]["name"] != "refusal" and job["judge"]["params"].get("backend") == "vllm"


def run_jobs(jobs: list[dict[str, Any]]) -> None:
    """Judge each job's answers and write its judgments (generation record + verdict)."""
    from backtrack.checks import GENERATION_FIELDS, read_answers
    from backtrack.io import write_jsonl
    from backtrack.judge.base import JudgeInput
    from backtrack.judge.refusal import turns_back
    from backtrack.judge.registry import make_judge
    from backtrack.models.precision import Precision

    for job in jobs:
        cfg = job["judge"]
        if cfg["name"] != "refusal":  # a model judge; the pattern judge's env has no torch
            import torch

            torch.set_num_threads(max(1, job["threads"]))  # the rule's threads
        precision = Precision.fixed(job["precision"]) if job["precision"] else None
        judge = make_judge(
            cfg["name"], cfg["params"], reset_token=job["reset_token"], precision=precision
        )
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
            (
                {**g, **asdict(v), "judge": judge.name, "turned_back": turns_back(g["visible"])}
                for g, v in zip(gens, verdicts, strict=True)
            ),
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
