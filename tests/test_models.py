"""Base-model preparation: a base model without a chat template gets one from the config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from backtrack.chat import render_prompt
from backtrack.models import load_tokenizer, prepare_base_model, provenance
from transformers import AutoTokenizer

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
