"""The grouped attention CPU inference runs with: the eager path's numbers without its copies."""

from __future__ import annotations

import pytest
import torch
from backtrack.generate.hf import decode, generation_config, left_pad_batch
from backtrack.models.attention import NAME, grouped_attention_forward, inference_attention
from backtrack.models.base import load_model
from backtrack.models.chat import prompt_ids
from backtrack.models.precision import Precision
from transformers import DynamicCache, LlamaForCausalLM

from tests.conftest import tiny_gemma

PROMPTS = ["Hi", "How do I bake bread at home today?", "Tell me a story", "Why?"]


def _logits(model, impl: str, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Prefill logits of a left-padded batch, then one cached decode step's."""
    model.set_attn_implementation(impl)
    cache = DynamicCache(config=model.config)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    with torch.no_grad():
        first = model(
            input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache
        ).logits
        nxt = first[:, -1].argmax(-1, keepdim=True)
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
        step = model(
            input_ids=nxt,
            attention_mask=mask,
            position_ids=mask.sum(-1, keepdim=True) - 1,
            past_key_values=cache,
        ).logits
    keep = batch["attention_mask"].bool()
    return [first[keep], step]


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_grouped_attention_gives_the_eager_numbers(tiny, arch):
    """Padded prefill and a cached step: the eager path's and SDPA's logits up to float32
    rounding; the model's query heads outnumber its key/value heads (grouped-query)."""
    model, tok, _ = tiny
    if arch == "gemma3":
        # grouped-query (4 query heads over 2), with the softcap path (Gemma-2 style)
        model = tiny_gemma(
            tok, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            attn_logit_softcapping=30.0,
        )  # fmt: skip
    assert model.config.num_attention_heads > model.config.num_key_value_heads
    rows = [prompt_ids(tok, p, None) for p in PROMPTS]
    was = model.config._attn_implementation
    batch = left_pad_batch(tok, rows, torch.device("cpu"))
    assert not bool(batch["attention_mask"].all())  # padding in the batch
    try:
        eager = _logits(model, "eager", batch)
        grouped = _logits(model, NAME, batch)
        sdpa = _logits(model, "sdpa", batch)
    finally:
        model.set_attn_implementation(was)
    for e, g, s in zip(eager, grouped, sdpa, strict=True):
        # Logits of about 25 (the tiny model's wide initialisation): a matmul of other shapes
        # may sum in another order, so equal to float32 rounding, not bit for bit.
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(g, s, rtol=1e-5, atol=1e-4)


def test_decoding_with_grouped_attention_matches_eager_in_bf16(tiny):
    """bf16, where SDPA's rounding differs: the grouped path decodes the eager path's tokens."""
    model, tok, rid = tiny
    model = LlamaForCausalLM(model.config).to(torch.bfloat16).eval()
    model.load_state_dict(tiny[0].state_dict())
    rows = [prompt_ids(tok, p, None) for p in PROMPTS]
    gen = generation_config(tok, rid, 10)
    out = {}
    for impl in ("eager", NAME):
        model.set_attn_implementation(impl)
        decoded = decode(model, tok, rows, rid, gen, max_resets=1, batch_size=4)
        out[impl] = [d.new_ids for d in decoded]
    assert out[NAME] == out["eager"]


def test_cpu_inference_loads_with_grouped_attention(tiny_source_dir):
    assert inference_attention(cuda=False) == NAME
    assert inference_attention(cuda=True) == "sdpa"
    model = load_model(tiny_source_dir, Precision.fixed("fp32"))
    assert model.config._attn_implementation == NAME


def test_a_per_head_mask_is_refused():
    q, k = torch.zeros(1, 4, 2, 8), torch.zeros(1, 2, 2, 8)
    module = torch.nn.Module()
    with pytest.raises(ValueError, match="mask shared by all heads"):
        grouped_attention_forward(module, q, k, k, torch.zeros(1, 4, 2, 2))


def test_the_attention_benchmark_measures_each_implementation(tiny):
    """tools/benchmark_attention.py on the tiny model: one row per implementation, in fp32
    the same tokens from each, and the model left on the last implementation measured."""
    import importlib.util
    import sys
    from pathlib import Path

    tools = Path(__file__).resolve().parents[1] / "tools"
    spec = importlib.util.spec_from_file_location(
        "benchmark_attention", tools / "benchmark_attention.py"
    )
    bench = importlib.util.module_from_spec(spec)
    sys.modules["benchmark_attention"] = bench
    spec.loader.exec_module(bench)
    model, tok, _ = tiny
    rows = [prompt_ids(tok, p, None) for p in PROMPTS]
    impls, was = ["sdpa", NAME], model.config._attn_implementation
    try:
        res = bench.measure(model, tok, rows, impls, batch_size=4, max_new_tokens=4, repeats=2)
        assert model.config._attn_implementation == NAME
    finally:
        model.set_attn_implementation(was)
    assert [r["attention"] for r in res] == impls
    for r in res:
        assert r["wall_s"] > 0 and r["cpu_s"] > 0 and r["prefill_s"] > 0 and r["full_step_s"] > 0
        assert r["same_tokens"] == r["prompts"] == len(PROMPTS)


def test_the_compile_benchmark_runs_each_variant_in_its_own_process(tiny_source_dir, tmp_path):
    """tools/benchmark_compile.py on the tiny model, in fp32: one fresh process per variant,
    positive times, and decode's tokens from torch.compile and from transformers'
    continuous batching alike."""
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "benchmark_compile.py"
    cmd = [sys.executable, str(tool), "--model", str(tiny_source_dir), "--prompts", "6"]
    cmd += ["--batch-size", "4", "--max-new-tokens", "4", "--repeats", "1"]
    cmd += ["--precision", "fp32", "--variants", "decode", "compile-cold", "generate_batch"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert list(rows) == ["decode", "compile-cold", "generate_batch"]
    for r in rows.values():
        assert float(r[1]) > 0 and float(r[2]) > 0
        assert r[4] == "6/6", out
    assert rows["decode"][3] == "1.000"
