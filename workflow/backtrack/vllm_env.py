"""Run jobs in vLLM's own environment, beside this one.

vLLM's CPU build pins a transformers older than the training environment's, so on a CPU machine
tools/setup.sh installs it in a venv of its own (``.venv-vllm``). A job that needs vLLM (a
generate job with ``generation.backend: vllm``, a Llama Guard judge with ``backend: vllm``) is
handed to that interpreter as JSON: ``python -m MODULE JOBS.json``, with this package first on
its path, so both sides run the same code. Where this interpreter has ``vllm`` (the GPU conda env
``envs/vllm.yaml``) the jobs run here. Shared by the generate and judge stages; it knows nothing
of either.
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

VLLM_PYTHON_VAR = "BACKTRACK_VLLM_PYTHON"
VLLM_VENV = ".venv-vllm"  # made by tools/setup.sh, beside the training .venv
# SmolLM2-135M in bf16 keeps 23 KB per token: 1 GiB holds ~45k tokens, 32 rows of 1.4k each.
CPU_KV_CACHE_BYTES = 1 << 30
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder that holds `backtrack`
REPO = PACKAGE_ROOT.parent
log = logging.getLogger("backtrack.vllm_env")


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
