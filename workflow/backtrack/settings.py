"""A job's settings, resolved once: what its rule passed as params, turned into typed values.

A rule passes narrow params (so that Snakemake reruns exactly what a changed setting touches);
the rule's script builds one :class:`JobSettings` from them in its set-up
(:func:`job_settings`), and library functions take the resolved values only: a
:class:`~backtrack.models.precision.Precision` (never the ``auto`` setting), the reset token
with its id, a :class:`Decoding`. Each setting is thus resolved, and logged, in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from backtrack.models.precision import Precision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decoding:
    """How answers are decoded (config ``generation``; the attacks' and the pool's answers use
    the same fields). ``max_resets`` caps the resets per answer (None: no cap);
    ``num_samples`` answers each prompt that many times; ``batch_size`` is the HF backend's
    (vLLM batches continuously)."""

    max_new_tokens: int
    batch_size: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    reset_logit_bias: float = 0.0
    max_resets: int | None = 1
    num_samples: int = 1
    seed: int = 0
    system: str | None = None

    @classmethod
    def from_config(cls, generation: Mapping[str, Any], **overrides: Any) -> Decoding:
        """From a ``generation``-shaped mapping: the keys this class knows, then ``overrides``
        (keys it does not know, such as ``backend``, are the caller's)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in {**generation, **overrides}.items() if k in names})

    def with_(self, **changes: Any) -> Decoding:
        """A copy with some fields changed (a sweep point, the pool's shorter answers)."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (a job handed to the vLLM environment travels as JSON)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ResetToken:
    """The reset token (config ``reset_token``) and its id in a checkpoint's tokenizer."""

    text: str
    id: int


@dataclass(frozen=True)
class JobSettings:
    """The resolved settings of one job (see the module docstring). A field is None when the
    rule does not pass it (a data job runs no model: no precision)."""

    rule: str
    threads: int = 1
    precision: Precision | None = None
    reset_token: str | None = None
    system: str | None = None
    seed: int | None = None

    def reset(self, tok: Any) -> ResetToken:
        """The reset token with its id in ``tok``; raises, naming the token, where the
        tokenizer was not prepared by this project."""
        from backtrack.models.base import reset_token_id

        if self.reset_token is None:
            raise ValueError(f"rule {self.rule}: no reset_token param")
        return ResetToken(self.reset_token, reset_token_id(tok, self.reset_token))

    def decoding(self, generation: Mapping[str, Any], **overrides: Any) -> Decoding:
        """A :class:`Decoding` from a ``generation`` section, with this job's seed and system
        prompt unless ``overrides`` set them."""
        base = {"seed": self.seed or 0, "system": self.system}
        return Decoding.from_config({**generation, **base}, **overrides)


def param(snakemake: Any, name: str, default: Any = None) -> Any:
    """A rule's param (None or ``default`` when the rule does not pass it)."""
    return getattr(snakemake.params, name, default)


def job_settings(snakemake: Any, *, precision: str | None = None) -> JobSettings:
    """Resolve a job's settings from its rule's params (``precision``, ``reset_token``,
    ``system``, ``seed``) and threads; the precision is resolved here, once, and logged.
    ``precision`` is the setting where a rule passes it inside a JSON param instead (the
    training rules' ``train``)."""
    setting = precision if precision is not None else param(snakemake, "precision")
    precision = Precision.resolve(setting) if setting is not None else None
    return JobSettings(
        rule=str(snakemake.rule),
        threads=max(1, int(snakemake.threads)),
        precision=precision,
        reset_token=param(snakemake, "reset_token"),
        system=param(snakemake, "system"),
        seed=param(snakemake, "seed"),
    )
