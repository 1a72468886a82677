"""One precision policy for every job that runs a model (config key ``precision``).

``auto`` is bf16 where the hardware multiplies bf16 natively (a CUDA device that supports it, or
a CPU with AVX512-BF16 or AMX-BF16, where a bf16 matmul is several times an fp32 one) and fp32
elsewhere; ``bf16`` and ``fp32`` force it, and ``bf16`` on hardware without it is an error.
Inference (generation, attacks, scoring, judges with a model) loads the weights in the chosen
dtype. Training keeps the weights in ``models.<alias>.dtype`` (fp32 master weights in the
embedded default) and runs forward and backward under bf16 autocast (transformers' ``bf16``).

Resolved in the job, not when the graph is planned: the login node that plans a cluster run is
not the GPU node that runs it. Each job logs the choice and records it with its outputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SETTINGS = ("auto", "bf16", "fp32")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
DTYPE_NAMES = {"bf16": "bfloat16", "fp32": "float32"}


class PrecisionError(RuntimeError):
    """The configured precision cannot run on this machine; the message names the key."""


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (``lscpu``'s list); empty where /proc/cpuinfo does not exist."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def hardware_bf16(cuda: bool | None = None, flags: set[str] | None = None) -> tuple[bool, str]:
    """Whether this job's device multiplies bf16 natively, and what was looked at."""
    import torch

    if cuda is None:
        cuda = torch.cuda.is_available()
    if cuda:
        ok = bool(torch.cuda.is_bf16_supported())
        return ok, f"CUDA device {torch.cuda.get_device_name()} (bf16 {'yes' if ok else 'no'})"
    flags = cpu_flags() if flags is None else flags
    have = sorted(set(CPU_BF16_FLAGS) & flags)
    return bool(
        have
    ), f"CPU flags {', '.join(have) if have else 'without ' + '/'.join(CPU_BF16_FLAGS)}"


def resolve_precision(
    setting: str, *, cuda: bool | None = None, flags: set[str] | None = None
) -> str:
    """``"bf16"`` or ``"fp32"`` for ``setting`` on this machine (see the module docstring)."""
    if setting not in SETTINGS:
        raise PrecisionError(f"config key 'precision': {setting!r} is not one of {SETTINGS}")
    if setting == "fp32":
        log.info("precision: fp32 (precision: fp32)")
        return "fp32"
    ok, what = hardware_bf16(cuda, flags)
    if setting == "bf16" and not ok:
        raise PrecisionError(
            f"config key 'precision': bf16 asked for, but this machine has no bf16 matrix "
            f"support ({what}); use auto or fp32"
        )
    chosen = "bf16" if ok else "fp32"
    log.info("precision: %s (precision: %s; %s)", chosen, setting, what)
    return chosen


@dataclass(frozen=True)
class Precision:
    """A resolved precision (``bf16`` or ``fp32``) and the ``precision`` setting it came from:
    the setting names a policy (``auto``), this names what the job runs in."""

    name: str
    setting: str

    @classmethod
    def resolve(
        cls, setting: str, *, cuda: bool | None = None, flags: set[str] | None = None
    ) -> Precision:
        """The precision ``setting`` gives on this machine (logged once, here)."""
        return cls(resolve_precision(setting, cuda=cuda, flags=flags), setting)

    @classmethod
    def fixed(cls, name: str) -> Precision:
        """A precision named outright (``bf16``/``fp32``), e.g. as a checkpoint recorded it."""
        if name not in DTYPE_NAMES:
            raise PrecisionError(f"precision {name!r} is not one of {tuple(DTYPE_NAMES)}")
        return cls(name, name)

    @property
    def dtype(self) -> Any:
        """The torch dtype."""
        return torch_dtype(self.name)

    @property
    def dtype_name(self) -> str:
        """transformers' and vLLM's name of the dtype (``bfloat16``, ``float32``)."""
        return DTYPE_NAMES[self.name]

    def __str__(self) -> str:
        return self.name


def torch_dtype(precision: str) -> Any:
    """The torch dtype of a resolved precision."""
    import torch

    return {"bf16": torch.bfloat16, "fp32": torch.float32}[precision]
