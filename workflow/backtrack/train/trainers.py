"""SFT and DPO with TRL's trainers, on CPU or GPU, writing a self-contained HF directory."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import gather_object
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, set_seed
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

from backtrack.io import atomic_dir
from backtrack.models.base import DTYPES, reset_token_id
from backtrack.models.provenance import (
    PROVENANCE_FILE,
    check_weights,
    provenance,
    weight_digests,
)
from backtrack.plan import batch_plan
from backtrack.train.lm_head import compact_lm_head
from backtrack.train.shared_prefix import backbone_hidden
from backtrack.train.spec import TrainSettings

log = logging.getLogger(__name__)


def attn_implementation(setting: str = "auto") -> str:
    """transformers' attention for training (``<stage>.attn_implementation``): ``auto`` is eager
    on a CPU, where torch's SDPA backward is slow in bf16, and sdpa on a GPU.
    """
    if setting != "auto":
        return setting
    return "sdpa" if torch.cuda.is_available() else "eager"


def _common_args(
    params: dict[str, Any], settings: TrainSettings, workdir: str, batch: dict[str, int]
) -> dict[str, Any]:
    """Trainer arguments shared by SFT and DPO; hyperparameters come from the config.

    ``batch`` is :func:`backtrack.plan.batch_plan` of the job: per-device batch and
    accumulation such that per-device x accumulation x processes is the configured global batch.
    bf16 (the job's resolved precision) is autocast over the weights as loaded, on CUDA and on
    CPU alike.
    """
    cuda = torch.cuda.is_available()
    seed = settings.seed
    return {
        "output_dir": workdir,
        "per_device_train_batch_size": batch["per_device_batch_size"],
        "gradient_accumulation_steps": batch["gradient_accumulation_steps"],
        "learning_rate": params["learning_rate"],
        "num_train_epochs": params["epochs"],
        "lr_scheduler_type": params["lr_scheduler"],
        "warmup_steps": params["warmup_ratio"],
        "weight_decay": params["weight_decay"],
        "optim": params.get("optim", "adamw_torch_fused"),
        "max_length": params["max_length"],
        "logging_steps": 5,
        "save_strategy": "no",
        "report_to": "none",
        "seed": seed,
        "data_seed": seed,
        "use_cpu": not cuda,
        "bf16": settings.precision.name == "bf16",
        "gradient_checkpointing": params["gradient_checkpointing"],
        "dataloader_num_workers": 0,
        # Several processes (DDP): every parameter gets a gradient, so skip DDP's extra search.
        "ddp_find_unused_parameters": False,
        "train_sampling_strategy": params["sampling"],
        # A progress bar in a job's log file is one line of carriage returns; without a
        # terminal the Trainer prints each logging step (loss, learning rate) as its own line.
        "disable_tqdm": not sys.stderr.isatty(),
        # Tokens trained on (all ranks, padding excluded): the FLOP count of the job's record.
        "include_num_input_tokens_seen": "non_padding",
    }


def _train_and_save(
    trainer: Any,
    tok: Any,
    parent: str,
    out_dir: str | os.PathLike[str],
    info: dict[str, Any],
    dtype: torch.dtype | None = None,
    on_saved: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train, then write the model, tokenizer, provenance and log history atomically.

    One process: as always, straight from ``trainer.model``. Several (``accelerate launch``):
    :func:`_save_distributed`.
    """
    result = trainer.train()
    info = {
        **provenance(parent),
        **info,
        "parent": str(parent),
        "train_loss": result.training_loss,
        **last_logged_loss(trainer.state.log_history),
        "steps": result.global_step,
        "tokens_seen": trainer.state.num_input_tokens_seen,
    }
    if trainer.accelerator.num_processes > 1:
        return _save_distributed(trainer, tok, out_dir, info, dtype, on_saved)
    with atomic_dir(out_dir) as tmp:
        trainer.model.save_pretrained(tmp, safe_serialization=True)
        _write_records(tmp, tok, info, trainer)
    return info


def last_logged_loss(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The last loss the Trainer logged and its step (``final_loss``, ``final_loss_step``;
    None where the run was shorter than one logging interval). ``train_loss`` is the mean over
    the whole run, which hides where training ended."""
    logged = [h for h in history if "loss" in h]
    if not logged:
        return {"final_loss": None, "final_loss_step": None}
    return {"final_loss": float(logged[-1]["loss"]), "final_loss_step": logged[-1].get("step")}


def done_message(stage: str, info: dict[str, Any]) -> str:
    """A training job's last log line: the final logged loss and the mean over training, each
    named as such, and the steps."""
    final = (
        f"final loss {info['final_loss']:.4f} (logged at step {info['final_loss_step']})"
        if info.get("final_loss") is not None
        else "final loss not logged (fewer steps than one logging interval)"
    )
    return f"{stage} done after {info['steps']} steps: {final}, mean loss over training " + (
        f"{info['train_loss']:.4f}"
    )


def _write_records(tmp: Path, tok: Any, info: dict[str, Any], trainer: Any) -> None:
    """Tokenizer, provenance (with this checkpoint's own weight digests, not its parent's) and
    log history, beside weights already written into ``tmp``."""
    tok.save_pretrained(tmp)
    info = {**info, "weights": weight_digests(tmp)}
    (tmp / PROVENANCE_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
    (tmp / "train_log.json").write_text(
        json.dumps(trainer.state.log_history, indent=2, default=str) + "\n"
    )


def _save_distributed(
    trainer: Any,
    tok: Any,
    out_dir: str | os.PathLike[str],
    info: dict[str, Any],
    dtype: torch.dtype | None,
    on_saved: Callable[[], None] | None,
) -> dict[str, Any]:
    """Every rank takes part; rank 0 alone writes ``out_dir``, and only once all ranks are done.

    The full weights are gathered to rank 0 (a collective under FSDP), cast to the model's
    configured dtype (FSDP2 trains fp32 master weights; the checkpoint stays as the single-process
    path writes it), written into rank 0's temporary directory, and the directory is renamed onto
    ``out_dir`` only after a barrier that every rank reaches. A rank that dies first breaks the
    barrier, so no output appears (and the launcher exits non-zero). ``on_saved`` (fault
    injection in the tests) runs on every rank just before that barrier.
    """
    acc = trainer.accelerator
    me = {
        "rank": acc.process_index,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "device": str(acc.device),
        "steps": trainer.state.global_step,
    }
    info = {
        **info,
        "distributed": {
            "distributed_type": str(acc.distributed_type),
            "num_processes": acc.num_processes,
            "ranks": gather_object([me]),
        },
    }
    state = acc.get_state_dict(trainer.model)
    if not acc.is_main_process:
        if on_saved is not None:
            on_saved()
        acc.wait_for_everyone()
        return info
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    with atomic_dir(out_dir) as tmp:
        acc.unwrap_model(trainer.model).save_pretrained(
            tmp, state_dict=state, safe_serialization=True
        )
        _write_records(tmp, tok, info, trainer)
        log.info("rank 0 wrote %s; waiting for every rank before it becomes %s", tmp, out_dir)
        if on_saved is not None:
            on_saved()
        acc.wait_for_everyone()
    return info


def _rank_device(num_processes: int) -> torch.device | None:
    """This rank's GPU when launched on several CUDA GPUs, else None (the Trainer places it).

    Each rank moves its copy to its own GPU right after loading, so host memory holds one
    checkpoint per rank at a time, and the probe initialisation runs on the GPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != num_processes:
        raise RuntimeError(
            f"launched as {world} process(es) but the job spec asks for {num_processes}"
        )
    if num_processes > 1 and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return None


def _right_padded(batch: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and attention mask of examples, right-padded with zeros."""
    width = max(len(e["input_ids"]) for e in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        ids[i, : len(e["input_ids"])] = torch.tensor(e["input_ids"])
        mask[i, : len(e["input_ids"])] = 1
    return ids, mask


def init_reset_embedding(
    model: Any,
    examples: list[dict[str, Any]],
    reset_id: int,
    margin: float = 2.0,
    keep_elsewhere: int = 4096,
    batch_size: int = 16,
    bf16: bool = False,
) -> dict[str, float]:
    """Initialise the ``[RESET]`` embedding from the backtracking examples (``probe`` init).

    A mean-initialised new token starts ~20 logits below the top choice where it should fire
    (P ~ 1e-10 on SmolLM2-135M), and AdamW moves each weight by at most ~lr per step, so a small
    run never closes the gap (measured: 20.1 -> 17.6 logits after backtracking SFT). Instead, set
    the row along the difference between the mean final hidden state where ``[RESET]`` is the
    label and the mean over the other assistant positions (a class-mean linear probe), scaled so
    that its median logit at the reset positions sits ``margin`` below the median top logit.
    Returns the resulting logit statistics. With tied embeddings this also sets the input row.

    The examples go through the model's backbone ``batch_size`` at a time (right-padded, masked,
    their common prefix once: :mod:`backtrack.train.shared_prefix`), under bf16 autocast when
    ``bf16`` (as the training that follows runs), and the LM head only scores the reset
    positions (their top logit): the full logits of every position were most of this pass's
    cost. Memory stays bounded at paper scale: the other positions enter as a running float32
    sum (no hidden-state tensor outlives its batch), one vector is kept per backtracking example,
    and the reported median logit elsewhere is taken over a fixed-seed uniform sample of at most
    ``keep_elsewhere`` positions (all of them when there are fewer).
    """
    pos, tops = [], []
    neg_sum: torch.Tensor | None = None
    neg_count = 0
    sample = torch.empty(0)  # up to keep_elsewhere hidden states at other positions
    sample_keys = torch.empty(0)
    gen = torch.Generator().manual_seed(0)
    device = model.device
    head = model.get_output_embeddings()
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        for start in range(0, len(examples), batch_size):
            batch = examples[start : start + batch_size]
            ids, mask = _right_padded(batch)
            hidden = backbone_hidden(
                model.base_model, ids.to(device), mask.to(device), use_cache=False
            )
            for e, h in zip(batch, hidden, strict=True):
                labels = e["labels"]
                first = next(k for k, lab in enumerate(labels) if lab != -100)
                if labels[first] == reset_id:
                    pos.append(h[first - 1].float().clone())
                    tops.append(head(h[first - 1]).max().float())
                else:
                    rows = h[first - 1 : len(labels) - 1].float()
                    total = rows.sum(0)
                    neg_sum = total if neg_sum is None else neg_sum + total
                    neg_count += rows.shape[0]
                    # Bottom-k of uniform random keys: a uniform sample without replacement.
                    keys = torch.cat([sample_keys, torch.rand(rows.shape[0], generator=gen)])
                    sample = torch.cat([sample.to(rows), rows])
                    keep = keys.argsort()[:keep_elsewhere]
                    sample, sample_keys = sample[keep.to(sample.device)], keys[keep]
                    del rows  # a view: it would keep this batch's hidden states alive
            del hidden, h
    if not pos or neg_sum is None:
        raise ValueError("probe init needs backtracking and other examples")
    p = torch.stack(pos)
    direction = p.mean(0) - neg_sum / neg_count
    scale = (torch.stack(tops).median() - margin) / (p @ direction).median()
    out_emb = model.get_output_embeddings().weight
    in_emb = model.get_input_embeddings().weight
    with torch.no_grad():
        out_emb[reset_id] = (direction * scale).to(out_emb)
        in_emb[reset_id] = (direction * scale).to(in_emb)
    model.train()
    row = out_emb[reset_id].detach().float()
    return {
        "reset_logit_at_reset_median": float((p @ row).median()),
        "top_logit_at_reset_median": float(torch.stack(tops).median()),
        "reset_logit_elsewhere_median": float((sample @ row).median()),
    }


def dpo_dataset(pairs: list[dict[str, Any]], tok: Any) -> Dataset:
    """The DPO pairs as TRL's ``DPOTrainer`` takes them, with one BOS like SFT and generation.

    ``prompt`` is rendered chat-template text, and Gemma's and Llama-3's templates write
    ``{{ bos_token }}`` themselves; TRL 1.16 tokenizes string prompts (and prompt + completion)
    with the tokenizer's special tokens, so a tokenizer that adds BOS would give two. Its BOS
    text is then dropped from the prompt: TRL's tokenizer puts the token back.
    """
    bos = tok.bos_token
    adds_bos = bool(bos) and tok("a").input_ids[:1] == [tok.bos_token_id]

    def prompt(text: str) -> str:
        return text[len(bos) :] if adds_bos and text.startswith(bos) else text

    return Dataset.from_list(
        [
            {"prompt": prompt(p["prompt"]), "chosen": p["chosen"], "rejected": p["rejected"]}
            for p in pairs
        ]
    )


def _load_for_training(
    model_dir: str, dtype: str, device: torch.device | None, params: dict[str, Any]
) -> PreTrainedModel:
    """A checkpoint as the trainers take it: safetensors only, in ``dtype``, with the stage's
    attention implementation, on this rank's device (None: where the trainer puts it)."""
    check_weights(model_dir)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        dtype=DTYPES[dtype],
        use_safetensors=True,
        attn_implementation=attn_implementation(params.get("attn_implementation", "auto")),
    )
    return model if device is None else model.to(device)


@dataclass(frozen=True)
class Ranks:
    """The processes a trainer runs in: how many (more than one only under ``accelerate
    launch``), and what a caller watches a rank with: TRL trainer ``callbacks``, and
    ``on_saved``, called once rank 0's temporary output is complete (the tests inject failures
    through both)."""

    num_processes: int = 1
    callbacks: list[Any] | None = None
    on_saved: Callable[[], None] | None = None


ONE_PROCESS = Ranks()


@dataclass(frozen=True)
class _Start:
    """What both trainers set up before their trainer: the batch plan, this rank's device, the
    tokenizer and the policy model."""

    batch: dict[str, int]
    device: torch.device | None
    tok: Any
    model: PreTrainedModel


def _start(
    stage: str, model_dir: str, params: dict[str, Any], settings: TrainSettings, num_processes: int
) -> _Start:
    """Seed, plan the batch, and load the tokenizer and the policy on this rank's device."""
    set_seed(settings.seed)
    batch = batch_plan(params, num_processes, stage)
    device = _rank_device(num_processes)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = _load_for_training(model_dir, settings.dtype, device, params)
    return _Start(batch, device, tok, model)


def _record(
    stage: str, start: _Start, args: Any, trained_on: dict[str, int], params: dict[str, Any]
) -> dict[str, Any]:
    """The stage's part of the provenance: its precision as the trainer runs it, attention,
    what it trained on (``train_examples`` or ``train_pairs``), the config section and batch."""
    return {
        "stage": stage,
        "precision": "bf16" if args.bf16 else "fp32",  # as resolved for the trainer
        "attn_implementation": start.model.config._attn_implementation,
        **trained_on,
        "params": params,
        "batch": start.batch,
    }


def run_sft(
    model_dir: str,
    examples: list[dict[str, Any]],
    out_dir: str,
    params: dict[str, Any],
    settings: TrainSettings,
    ranks: Ranks = ONE_PROCESS,
) -> dict[str, Any]:
    """Full fine-tuning with ``SFTTrainer`` on pre-tokenised ``input_ids``/``labels``.

    ``ranks.num_processes`` > 1 only under ``accelerate launch`` (:mod:`backtrack.train.rank`).
    """
    start = _start("sft", model_dir, params, settings, ranks.num_processes)
    tok, model = start.tok, start.model
    ds = Dataset.from_list([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples])
    with tempfile.TemporaryDirectory() as work:
        common = _common_args(params, settings, work, start.batch)
        args = SFTConfig(**common, completion_only_loss=None)
        init: dict[str, Any] = {"reset_init": params["reset_init"]}
        if params["reset_init"] == "probe" and any(e["kind"] == "backtrack" for e in examples):
            rid = reset_token_id(tok, params["reset_token"])
            init |= init_reset_embedding(model, examples, rid, bf16=args.bf16)
            log.info("probe init of the reset embedding: %s", init)
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=ds,
            processing_class=tok,
            callbacks=ranks.callbacks,
        )
        # On a CPU, the LM head scores labelled positions only (backtrack.train.lm_head).
        compact_lm_head(trainer.model, trainer.accelerator.autocast)
        info = _record("sft", start, args, {"train_examples": len(examples)}, params) | init
        dtype = DTYPES[settings.dtype]
        return _train_and_save(trainer, tok, model_dir, out_dir, info, dtype, ranks.on_saved)


def run_dpo(
    sft_dir: str,
    pairs: list[dict[str, Any]],
    out_dir: str,
    params: dict[str, Any],
    settings: TrainSettings,
    ranks: Ranks = ONE_PROCESS,
) -> dict[str, Any]:
    """DPO with ``DPOTrainer``; the reference model is the SFT checkpoint, loaded explicitly.

    Passing ``ref_model`` matters: with ``ref_model=None`` TRL reloads the reference from
    ``config._name_or_path``, which need not be the resized SFT model (TRL 1.16's DPOTrainer).
    Under FSDP, DPOTrainer shards this reference model itself (TRL's ``prepare_fsdp``, eval mode);
    under DDP it wraps it with ``accelerator.prepare_model(..., evaluation_mode=True)``.
    """
    start = _start("dpo", sft_dir, params, settings, ranks.num_processes)
    tok = start.tok
    ref = _load_for_training(sft_dir, settings.dtype, start.device, params)
    ds = dpo_dataset(pairs, tok)
    with tempfile.TemporaryDirectory() as work:
        common = _common_args(params, settings, work, start.batch)
        args = DPOConfig(**common, beta=params["beta"])
        trainer = DPOTrainer(
            model=start.model,
            ref_model=ref,
            args=args,
            train_dataset=ds,
            processing_class=tok,
            callbacks=ranks.callbacks,
        )
        # On a CPU, the LM heads score labelled positions only (backtrack.train.lm_head).
        compact_lm_head(trainer.model, trainer.accelerator.autocast)
        compact_lm_head(trainer.ref_model, trainer.accelerator.autocast)
        info = _record("dpo", start, args, {"train_pairs": len(pairs)}, params)
        dtype = DTYPES[settings.dtype]
        return _train_and_save(trainer, tok, sft_dir, out_dir, info, dtype, ranks.on_saved)
