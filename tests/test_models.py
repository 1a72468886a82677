"""Preparing and loading models: a chat template from the config for base models, a
reproducible [RESET] row, safetensors only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from backtrack.models.base import (
    add_reset_token,
    load_model,
    load_tokenizer,
    prepare_base_model,
)
from backtrack.models.chat import render_prompt
from backtrack.models.precision import Precision
from backtrack.models.provenance import provenance
from transformers import AutoTokenizer, LlamaForCausalLM

from tests.conftest import RESET

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "config/chat_templates"


@pytest.fixture(scope="module")
def base_dir(tiny_source_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conftest's tiny model with its chat template removed, as Meta-Llama-3-8B ships."""
    base = tmp_path_factory.mktemp("base") / "m"
    shutil.copytree(tiny_source_dir, base)
    (base / "chat_template.jinja").unlink(missing_ok=True)
    tok = AutoTokenizer.from_pretrained(base)
    tok.chat_template = None
    tok.save_pretrained(base)
    assert not AutoTokenizer.from_pretrained(base).chat_template
    return base


def test_base_model_without_template_needs_one_from_config(base_dir: Path, tmp_path: Path):
    src = {"kind": "hf_dir", "path": str(base_dir)}
    with pytest.raises(ValueError, match=r"no chat template: set models.<alias>.chat_template"):
        prepare_base_model(src, tmp_path / "none", "[RESET]", "float32")
    template = TEMPLATES / "llama-3.jinja"
    prepare_base_model(src, tmp_path / "out", "[RESET]", "float32", chat_template=template)
    tok = load_tokenizer(tmp_path / "out")
    text = render_prompt(tok, "How do I bake bread?")
    bos = tok.bos_token
    assert text == (
        f"{bos}<|start_header_id|>user<|end_header_id|>\n\nHow do I bake bread?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert provenance(tmp_path / "out")["chat_template"] == "llama-3.jinja"


def test_gemma_template_renders_gemma_turns(tiny: tuple) -> None:
    _, tok, _ = tiny
    template = (TEMPLATES / "gemma.jinja").read_text()
    msgs = [{"role": "user", "content": " Hi "}, {"role": "assistant", "content": "Hello."}]
    text = tok.apply_chat_template(msgs, chat_template=template, tokenize=False)
    assert text == (
        f"{tok.bos_token}<start_of_turn>user\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello.<end_of_turn>\n"
    )
    prompt = tok.apply_chat_template(
        msgs[:1], chat_template=template, tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")


def test_paper_models_have_a_chat_template_file() -> None:
    models = yaml.safe_load((ROOT / "config/paper.yaml").read_text())["models"]
    assert set(models) == {"gemma-2-2b", "llama-3-8b"}
    for alias, spec in models.items():
        assert (ROOT / spec["chat_template"]).is_file(), alias


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
        load_model(tmp_path, Precision.fixed("fp32"))
    with pytest.raises(OSError, match="safetensors"):
        prepare_base_model(
            {"kind": "hf_dir", "path": str(tmp_path)}, tmp_path / "o", RESET, "float32"
        )


def test_gguf_preparation_keeps_the_gguf_weights_tied(tmp_path):
    """The embedded default's source: the dequantised GGUF weights, unchanged and tied, plus the
    [RESET] row (the rebuild skips the random initialisation and caches gguf's name maps)."""
    import gguf
    from backtrack.packages import package_file
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from tests.conftest import GGUF

    name_map = gguf.get_tensor_name_map
    source = {"kind": "gguf_package", "package": GGUF[0], "file": GGUF[1]}
    info = prepare_base_model(source, tmp_path / "m", RESET, "float32")
    assert gguf.get_tensor_name_map is name_map  # restored
    gguf_path = package_file(*GGUF)
    direct = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    with safe_open(tmp_path / "m" / "model.safetensors", "pt") as f:
        saved = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    assert "lm_head.weight" not in saved  # tied: stored once
    for k, v in direct.state_dict().items():
        if k == "lm_head.weight":
            continue
        if k == "model.embed_tokens.weight":
            assert torch.equal(saved[k][: v.shape[0]], v)
            assert saved[k].shape[0] == info["vocab_size"] == v.shape[0] + 1
        else:
            assert torch.equal(saved[k], v), k
    model = load_model(tmp_path / "m", Precision.fixed("fp32"))
    assert model.lm_head.weight is model.model.embed_tokens.weight
