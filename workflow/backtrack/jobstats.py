"""How many tokens a job pushed through its model, written beside the job's log, and the FLOP
model that turns them into achieved FLOP/s (``tools/benchmark_pipeline.py``).

Why: Snakemake's benchmark files give each job's wall time but not how much work it did, so the
distance between a rule and the machine's matmul peak cannot be read from them alone.

Counts are *useful* tokens (no padding, no rows that already ended, a prefix that a generation
batch shares counted once, as it is computed once), by kind of pass:

========== ======================================= ===========================
kind       what                                    FLOPs per parameter, token
========== ======================================= ===========================
train      forward and backward of a trained model 6 (2 forward, 4 backward)
reference  DPO's frozen reference model, forward   2
input_grad forward, backward to the inputs only    4 (GCG's one-hot gradient)
forward    inference forward (prefill, decode,     2
           candidate scoring)
========== ======================================= ===========================

Each kind counts ``tokens`` (positions through the transformer body) and ``logits`` (positions
whose logits were computed: every position in training, only the sampled ones in generation and
the target rows in attack scoring). FLOPs = multiplier x (body parameters x tokens + head
parameters x logits); the input embedding is a lookup and costs nothing. For a model with tied
embeddings trained on every position this is the usual 6 N T. Attention's own FLOPs (the
``QK^T`` and ``AV`` products, about 4 x layers x context x width per token) are left out: at the
embedded default's context of a few hundred tokens they add under 10 % to SmolLM2-135M's.

Jobs in the same process add to :data:`COUNTER` from the library functions that run a model
(HF generation, attack scoring); a job whose model runs elsewhere (a vLLM subprocess, an
``accelerate launch``) counts from its outputs instead.
"""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backtrack.models.precision import Precision

#: What a job records as its precision: resolved names only (never ``auto``, never a dtype name);
#: fp16 only where a model judge's own ``dtype`` asks for it (the precision policy never does).
RESOLVED = ("bf16", "fp32", "fp16")

#: FLOPs per parameter and token for each kind of pass.
MULTIPLIER = {"train": 6, "reference": 2, "input_grad": 4, "forward": 2}
SUFFIX = ".tokens.json"


@dataclass
class TokenCounts:
    """``kind -> [tokens, logits]``; only :data:`MULTIPLIER`'s kinds."""

    counts: dict[str, list[int]] = field(default_factory=dict)

    def add(self, kind: str, tokens: int, logits: int = 0) -> None:
        if kind not in MULTIPLIER:
            raise ValueError(f"unknown kind of pass {kind!r}; known: {', '.join(MULTIPLIER)}")
        row = self.counts.setdefault(kind, [0, 0])
        row[0] += int(tokens)
        row[1] += int(logits)

    def merge(self, other: TokenCounts) -> None:
        """Add ``other``'s counts (a job that writes several files counts each)."""
        for kind, (tokens, logits) in other.counts.items():
            self.add(kind, tokens, logits)

    def total(self) -> int:
        """Tokens through the body, all kinds together."""
        return sum(t for t, _ in self.counts.values())


#: What this process's model calls have counted so far (a job is one process).
COUNTER = TokenCounts()


def snapshot() -> dict[str, list[int]]:
    """:data:`COUNTER` as it stands (for :func:`counted_since`)."""
    return {kind: list(row) for kind, row in COUNTER.counts.items()}


def counted_since(start: Mapping[str, Sequence[int]]) -> TokenCounts:
    """What :data:`COUNTER` counted after ``start`` (a :func:`snapshot`)."""
    out = TokenCounts()
    for kind, (tokens, logits) in COUNTER.counts.items():
        t0, l0 = start.get(kind, (0, 0))
        if tokens - t0 or logits - l0:
            out.add(kind, tokens - t0, logits - l0)
    return out


def count(kind: str, tokens: int, logits: int = 0) -> None:
    """Add to :data:`COUNTER` (see the module docstring for the kinds)."""
    COUNTER.add(kind, tokens, logits)


def model_shape(model_dir: str | os.PathLike[str]) -> dict[str, int]:
    """``parameters``, ``body`` (everything but the embedding and the LM head) and ``head``
    (the LM head's weights, tied or not) of a model directory, from its config alone: the model
    is built on the meta device, so no weights are read.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(str(model_dir))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    n = sum(p.numel() for p in model.parameters())  # a tied weight is one parameter
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    tied = head is emb or bool(getattr(cfg, "tie_word_embeddings", False))
    body = n - emb.numel() - (0 if tied else head.numel())
    return {"parameters": n, "body": body, "head": head.numel()}


def flops(tokens: Mapping[str, list[int]], shape: Mapping[str, int]) -> float:
    """FLOPs of the counted passes under the module's model."""
    return float(
        sum(
            MULTIPLIER[kind] * (shape["body"] * t + shape["head"] * lg)
            for kind, (t, lg) in tokens.items()
        )
    )


def generation_counts(
    records_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    system: str | None,
) -> tuple[TokenCounts, str | None]:
    """Tokens of a generation job from its records, and the precision they record: each row's
    prompt as rendered (chat template, ``system``) plus its prefill and generated tokens go
    through the model; logits are computed for the generated ones. Backend-independent (HF in
    process, vLLM in a subprocess).
    """
    from backtrack.io import read_jsonl
    from backtrack.models.base import load_tokenizer
    from backtrack.models.chat import prompt_ids

    tok = load_tokenizer(model_dir)
    out = TokenCounts()
    lengths: dict[str, int] = {}  # samples of one prompt share its length
    precision = None
    for r in read_jsonl(records_path):
        precision = r.get("precision", precision)
        if r["prompt"] not in lengths:
            lengths[r["prompt"]] = len(prompt_ids(tok, r["prompt"], system))
        n = r["tokens_generated"]
        out.add("forward", lengths[r["prompt"]] + r.get("prefill_tokens", 0) + n, n)
    return out, precision


def stats_path(log_path: str | os.PathLike[str]) -> Path:
    """``logs/<rule>/<job>.log`` -> ``logs/<rule>/<job>.tokens.json``."""
    p = Path(log_path)
    return p.with_name(p.name.removesuffix(".log") + SUFFIX)


def process_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process since it started, and of the children it
    has waited for (a job's vLLM subprocess).

    Why not Snakemake's ``cpu_time``: its benchmark thread samples a job's processes every
    0.5 s for the first 15 s, then every 30 s, so a longer job's last seconds (up to 30) are
    missing: a 38 s generation job was recorded at about 15 CPU-s.
    """
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def write_job_stats(
    snakemake: Any,
    model_dir: str | os.PathLike[str],
    counts: TokenCounts | None = None,
    precision: Precision | str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Write this job's token counts (default: :data:`COUNTER`) and the precision its model ran
    in beside its log: the job's resolved :class:`~backtrack.models.precision.Precision` (or its
    name, ``bf16``/``fp32``, as records carry it), never the setting; and its CPU seconds so far
    (:func:`process_cpu_seconds`; a job writes its stats last).
    """
    counts = COUNTER if counts is None else counts
    name = precision if precision is None or isinstance(precision, str) else precision.name
    if name is not None and name not in RESOLVED:
        raise ValueError(f"job stats take a resolved precision {RESOLVED}, not {name!r}")
    stats = {
        "rule": snakemake.rule,
        "threads": int(snakemake.threads),
        "precision": name,
        "model": str(model_dir),
        "shape": model_shape(model_dir),
        "tokens": {k: list(v) for k, v in sorted(counts.counts.items())},
        "cpu_s": round(process_cpu_seconds(), 3),
        **extra,
    }
    if snakemake.log:
        stats_path(snakemake.log[0]).write_text(json.dumps(stats, indent=1) + "\n")
    return stats


def read_job_stats(log_dir: str | os.PathLike[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """``(rule, job) -> stats`` for every stats file under ``log_dir`` (``job`` is the log's
    name without ``.log``, the same as the benchmark file's without ``.tsv``; a rule's logs in
    sub-folders, such as the sweeps', keep the sub-folder: ``point/job``).
    """
    out = {}
    root = Path(log_dir)
    for f in sorted(root.rglob(f"*{SUFFIX}")):
        rel = f.relative_to(root)
        job = str(rel.relative_to(rel.parts[0])).removesuffix(SUFFIX)
        out[(rel.parts[0], job)] = json.loads(f.read_text())
    return out
