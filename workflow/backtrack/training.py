"""SFT and DPO with TRL's trainers, on CPU or GPU, writing a self-contained HF directory."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

from backtrack.io import atomic_dir
from backtrack.models import DTYPES, PROVENANCE_FILE

log = logging.getLogger(__name__)


def _common_args(params: dict[str, Any], seed: int, workdir: str) -> dict[str, Any]:
    """Trainer arguments shared by SFT and DPO; hyperparameters come from the config."""
    cuda = torch.cuda.is_available()
    return {
        "output_dir": workdir,
        "per_device_train_batch_size": params["batch_size"],
        "gradient_accumulation_steps": params["gradient_accumulation_steps"],
        "learning_rate": params["learning_rate"],
        "num_train_epochs": params["epochs"],
        "lr_scheduler_type": params["lr_scheduler"],
        "warmup_steps": params["warmup_ratio"],
        "weight_decay": params["weight_decay"],
        "max_length": params["max_length"],
        "logging_steps": 5,
        "save_strategy": "no",
        "report_to": "none",
        "seed": seed,
        "data_seed": seed,
        "use_cpu": not cuda,
        "bf16": cuda and params.get("bf16", True),
        "gradient_checkpointing": params["gradient_checkpointing"],
        "dataloader_num_workers": 0,
        "train_sampling_strategy": params["sampling"],
        "disable_tqdm": False,
    }


def _train_and_save(
    trainer: Any, tok: Any, parent: str, out_dir: str | os.PathLike[str], info: dict[str, Any]
) -> dict[str, Any]:
    """Train, then write the model, tokenizer, provenance and log history atomically."""
    result = trainer.train()
    info = {
        **_parent_info(parent),
        **info,
        "parent": str(parent),
        "train_loss": result.training_loss,
        "steps": result.global_step,
    }
    with atomic_dir(out_dir) as tmp:
        trainer.model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / PROVENANCE_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
        (tmp / "train_log.json").write_text(
            json.dumps(trainer.state.log_history, indent=2, default=str) + "\n"
        )
    return info


def _parent_info(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(model_dir) / PROVENANCE_FILE
    return json.loads(p.read_text()) if p.exists() else {}


def run_sft(
    model_dir: str,
    examples: list[dict[str, Any]],
    out_dir: str,
    params: dict[str, Any],
    seed: int,
    dtype: str = "float32",
) -> dict[str, Any]:
    """Full fine-tuning with ``SFTTrainer`` on pre-tokenised ``input_ids``/``labels``."""
    set_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=DTYPES[dtype])
    ds = Dataset.from_list([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples])
    with tempfile.TemporaryDirectory() as work:
        args = SFTConfig(**_common_args(params, seed, work), completion_only_loss=None)
        trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
        return _train_and_save(
            trainer,
            tok,
            model_dir,
            out_dir,
            {"stage": "sft", "train_examples": len(examples), "params": params},
        )


def run_dpo(
    sft_dir: str,
    pairs: list[dict[str, Any]],
    out_dir: str,
    params: dict[str, Any],
    seed: int,
    dtype: str = "float32",
) -> dict[str, Any]:
    """DPO with ``DPOTrainer``; the reference model is the SFT checkpoint, loaded explicitly.

    Passing ``ref_model`` matters: with ``ref_model=None`` TRL reloads the reference from
    ``config._name_or_path``, which need not be the resized SFT model (reference/ml-anchors.md §6).
    """
    set_seed(seed)
    tok = AutoTokenizer.from_pretrained(sft_dir)
    model = AutoModelForCausalLM.from_pretrained(sft_dir, dtype=DTYPES[dtype])
    ref = AutoModelForCausalLM.from_pretrained(sft_dir, dtype=DTYPES[dtype])
    ds = Dataset.from_list(
        [{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs]
    )
    with tempfile.TemporaryDirectory() as work:
        args = DPOConfig(**_common_args(params, seed, work), beta=params["beta"])
        trainer = DPOTrainer(
            model=model, ref_model=ref, args=args, train_dataset=ds, processing_class=tok
        )
        return _train_and_save(
            trainer,
            tok,
            sft_dir,
            out_dir,
            {"stage": "dpo", "train_pairs": len(pairs), "params": params},
        )
