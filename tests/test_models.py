"""Preparing and loading models: a reproducible [RESET] row, safetensors only."""

from __future__ import annotations

import pytest
import torch
from backtrack.models import add_reset_token, load_model, prepare_base_model
from transformers import AutoTokenizer, LlamaForCausalLM

from tests.conftest import RESET


def _fresh(src):
    return LlamaForCausalLM.from_pretrained(src), AutoTokenizer.from_pretrained(src)


def test_reset_row_is_the_exact_mean_every_time(tiny_source_dir):
    rows = []
    for seed in (1, 2):
        torch.manual_seed(seed)  # the global RNG must not matter
        model, tok = _fresh(tiny_source_dir)
        n_old = model.get_input_embeddings().weight.shape[0]
        rid = add_reset_token(model, tok, RESET)
        w = model.get_input_embeddings().weight
        assert rid == n_old
        torch.testing.assert_close(w[rid], w[:n_old].mean(0), rtol=0, atol=1e-6)
        rows.append(w[rid].detach().clone())
    assert torch.equal(rows[0], rows[1])


def test_prepared_base_models_are_bit_identical(tiny_source_dir, tmp_path):
    src = {"kind": "hf_dir", "path": str(tiny_source_dir)}
    blobs = []
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        prepare_base_model(src, tmp_path / name, RESET, "float32")
        blobs.append((tmp_path / name / "model.safetensors").read_bytes())
    assert blobs[0] == blobs[1]


def test_models_load_from_safetensors_only(tiny_source_dir, tmp_path):
    model, tok = _fresh(tiny_source_dir)
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")  # a pickle, no safetensors
    tok.save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.safetensors"))
    with pytest.raises(OSError, match="safetensors"):
        load_model(tmp_path)
    with pytest.raises(OSError, match="safetensors"):
        prepare_base_model(
            {"kind": "hf_dir", "path": str(tmp_path)}, tmp_path / "o", RESET, "float32"
        )
