"""A training job as data: what the rule asked for, passed to the trainer in this process or,
as JSON, to each rank of an ``accelerate launch`` (:mod:`backtrack.train.rank`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backtrack.models.precision import Precision


@dataclass(frozen=True)
class TrainSettings:
    """How a trainer runs: its seed, the weights' dtype as loaded and saved
    (``models.<alias>.dtype``, a transformers name) and the job's resolved precision (bf16
    autocast over those weights, or none)."""

    seed: int
    dtype: str
    precision: Precision


@dataclass(frozen=True)
class TrainJob:
    """One ``train_sft``/``train_dpo`` job: the stage, its input checkpoint and data (the JSONL of
    SFT examples or DPO pairs), its output directory, the config section (``params``), how it
    trains, and on how many GPUs (one process each)."""

    stage: str
    model_dir: str
    data: str
    out_dir: str
    params: dict[str, Any]
    settings: TrainSettings
    gpus: int = 1

    @property
    def num_processes(self) -> int:
        """Training processes: one per GPU, at least one."""
        return max(1, int(self.gpus))

    def spec(self) -> dict[str, Any]:
        """The job as the ranks of a launch read it (JSON; the precision by its resolved name)."""
        return {
            "stage": self.stage,
            "model_dir": str(self.model_dir),
            "data": str(self.data),
            "out_dir": str(self.out_dir),
            "params": self.params,
            "seed": self.settings.seed,
            "dtype": self.settings.dtype,
            "precision": self.settings.precision.name,
            "num_processes": self.num_processes,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> TrainJob:
        """The job a rank was launched with (:meth:`spec`)."""
        settings = TrainSettings(spec["seed"], spec["dtype"], Precision.fixed(spec["precision"]))
        return cls(
            spec["stage"],
            spec["model_dir"],
            spec["data"],
            spec["out_dir"],
            spec["params"],
            settings,
            spec["num_processes"],
        )
