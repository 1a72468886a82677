"""One training job on N GPUs: ``accelerate launch`` of :mod:`backtrack.train.rank` inside the job.

A ``train_sft``/``train_dpo`` job with one GPU (or none) trains in the rule script's own process,
as it always has (:func:`backtrack.train.trainers.run_sft` / ``run_dpo``). With N > 1 GPUs the rule
script writes a JSON spec and runs::

    python -m accelerate.commands.launch --config_file config/accelerate/fsdp.yaml \\
        --num_processes N --num_machines 1 --main_process_port 0 --mixed_precision bf16 \\
        --num_cpu_threads_per_process T --module backtrack.train.rank SPEC.json

Every rank trains; only rank 0 writes the output directory (atomically, after every rank has
finished); a rank that fails makes the launcher exit non-zero, and then this module removes any
partial output before raising. Nothing here imports torch at import time (workflow parsing
and dry runs use batch_plan).

The global batch is ``batch_size x gradient_accumulation_steps x N``. With
``<stage>.global_batch_size`` set, the accumulation is derived per job from its GPU count (or, if
given, checked against it), so Gemma-2-2B on 4 GPUs and Llama-3-8B on 8 both step on 128 examples.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from backtrack.io import remove_stale_temporaries
from backtrack.models.provenance import PROVENANCE_FILE
from backtrack.plan import batch_plan
from backtrack.train.spec import TrainJob

log = logging.getLogger(__name__)

ENTRY_MODULE = "backtrack.train.rank"


class LaunchError(RuntimeError):
    """A multi-process training launch failed (some rank exited non-zero)."""


def load_accelerate_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The accelerate config file as a dict (it is YAML, as ``accelerate config`` writes it)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config key 'launch.accelerate_config': {p} does not exist")
    doc = yaml.safe_load(p.read_text())
    if not isinstance(doc, dict) or "distributed_type" not in doc:
        raise ValueError(f"accelerate config {p}: not an accelerate config (no distributed_type)")
    return doc


def check_accelerate_config(cfg: Mapping[str, Any], stage: str, params: Mapping[str, Any]) -> None:
    """Refuse accelerate settings this project's training cannot run correctly with."""
    fsdp = cfg.get("fsdp_config") or {}
    if cfg.get("distributed_type") == "FSDP":
        if (
            stage == "dpo"
            and fsdp.get("fsdp_version", 1) == 2
            and fsdp.get("fsdp_cpu_ram_efficient_loading")
        ):
            raise ValueError(
                "accelerate config: fsdp_cpu_ram_efficient_loading with fsdp_version 2 leaves the "
                "DPO reference model empty on ranks > 0 (TRL's prepare_fsdp does not broadcast "
                "rank 0's weights into it); set it to false"
            )
        if fsdp.get("fsdp_activation_checkpointing") and params.get("gradient_checkpointing"):
            raise ValueError(
                f"config key '{stage}.gradient_checkpointing': transformers refuses it together "
                "with fsdp_activation_checkpointing in the accelerate config; keep one of them"
            )
        if fsdp.get("fsdp_state_dict_type", "FULL_STATE_DICT") != "FULL_STATE_DICT":
            raise ValueError(
                "accelerate config: fsdp_state_dict_type must be FULL_STATE_DICT (rank 0 writes "
                "one safetensors checkpoint)"
            )


def launch_command(
    spec_path: str | os.PathLike[str],
    num_processes: int,
    accelerate_config: str | os.PathLike[str],
    *,
    mixed_precision: str = "no",
    threads_per_process: int = 1,
    module: str = ENTRY_MODULE,
) -> list[str]:
    """The ``accelerate launch`` command line of one job (one node, ``num_processes`` ranks).

    Run through ``sys.executable -m accelerate.commands.launch`` so the ranks use the job's own
    interpreter (its conda env). Port 0 makes accelerate pick a free port, so two multi-GPU jobs
    on one node do not collide.
    """
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(accelerate_config),
        "--num_processes", str(int(num_processes)),
        "--num_machines", "1",
        "--machine_rank", "0",
        "--main_process_port", "0",
        "--mixed_precision", mixed_precision,
        "--dynamo_backend", "no",
        "--num_cpu_threads_per_process", str(max(1, int(threads_per_process))),
        "--module", module, str(spec_path),
    ]  # fmt: skip


def check_job_devices(num_processes: int, cuda_devices: int | None) -> None:
    """Fail early where the job cannot see its GPUs, instead of hanging in a collective.

    ``cuda_devices`` is ``torch.cuda.device_count()`` (None: no CUDA, e.g. the CPU tests).
    snakemake-executor-plugin-slurm before 2.8 added ``--ntasks-per-gpu=1`` to GPU jobs, which
    runs the rule script once per GPU with one GPU each (plugin issues #316, #459).
    """
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS")
    if tasks and int(tasks) > 1:
        raise LaunchError(
            f"this SLURM job step runs {tasks} tasks: the rule script would start {tasks} "
            "launches. Use snakemake-executor-plugin-slurm >= 2.8 (one task per job) and do not "
            "set tasks/tasks_per_gpu for training rules"
        )
    if cuda_devices is not None and cuda_devices < num_processes:
        raise LaunchError(
            f"the job asked for {num_processes} GPUs but sees {cuda_devices} "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
        )


def remove_partial_output(out_dir: str | os.PathLike[str]) -> list[str]:
    """Remove ``out_dir`` and rank 0's temporary siblings (``.<name>.*.tmp``) after a failure.

    A rank killed by the launcher (SIGKILL after the grace period) cannot clean up its
    ``atomic_dir``; the parent process can.
    """
    out = Path(out_dir)
    removed = [str(p) for p in remove_stale_temporaries(out)]
    if out.exists():
        shutil.rmtree(out, ignore_errors=True)
        removed.insert(0, str(out))
    return removed


def run_launch(
    spec: Mapping[str, Any],
    num_processes: int,
    accelerate_config: str | os.PathLike[str],
    *,
    mixed_precision: str = "no",
    threads_per_process: int = 1,
    stream: IO[str] | None = None,
    env: Mapping[str, str] | None = None,
    module: str = ENTRY_MODULE,
) -> None:
    """Write ``spec`` to a temporary JSON file and run the launch; raise :class:`LaunchError`.

    The ranks' stdout and stderr go to ``stream`` (the rule's log file), else to this process's.
    On failure the output directory and any partial temporary directory are removed first.
    """
    out = stream if stream is not None else sys.stderr
    with tempfile.TemporaryDirectory(prefix="backtrack-launch-") as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
        cmd = launch_command(
            spec_path,
            num_processes,
            accelerate_config,
            mixed_precision=mixed_precision,
            threads_per_process=threads_per_process,
            module=module,
        )
        log.info("launching %d processes: %s", num_processes, " ".join(cmd))
        out.flush()
        proc = subprocess.run(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ if env is None else env),
            check=False,
        )
    if proc.returncode != 0:
        removed = remove_partial_output(spec["out_dir"])
        raise LaunchError(
            f"accelerate launch of {num_processes} processes exited with {proc.returncode}"
            + (f"; removed partial output {removed}" if removed else "")
        )


def train_job(
    job: TrainJob,
    *,
    threads: int,
    accelerate_config: str | os.PathLike[str],
    stream: IO[str] | None = None,
    module: str = ENTRY_MODULE,
) -> dict[str, Any]:
    """Train one job on its GPUs; return its provenance.

    One GPU (or none): in this process, exactly as before multi-GPU support. More: under
    ``accelerate launch``, one process per GPU; rank 0 writes ``out_dir``.
    """
    n = job.num_processes
    batch_plan(job.params, n, job.stage)  # fail before loading anything
    if n == 1:
        from backtrack.io import read_jsonl
        from backtrack.train.trainers import run_dpo, run_sft

        run = run_sft if job.stage == "sft" else run_dpo
        data = read_jsonl(job.data)
        return run(job.model_dir, data, job.out_dir, job.params, settings=job.settings)
    cfg = load_accelerate_config(accelerate_config)
    check_accelerate_config(cfg, job.stage, job.params)
    import torch

    cuda = torch.cuda.is_available()
    check_job_devices(n, torch.cuda.device_count() if cuda else None)
    run_launch(
        job.spec(),
        n,
        accelerate_config,
        mixed_precision="bf16" if job.settings.precision.name == "bf16" else "no",
        threads_per_process=max(1, int(threads) // n),
        stream=stream,
        module=module,
    )
    prov = Path(job.out_dir) / PROVENANCE_FILE
    if not prov.is_file():
        remove_partial_output(job.out_dir)
        raise LaunchError(f"the launch exited 0 but rank 0 wrote no {prov}")
    return json.loads(prov.read_text())
