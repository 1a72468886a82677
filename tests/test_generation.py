"""Backtracking decode: the visible split on token ids, the reset cap, the bias, the records."""

from __future__ import annotations

import pytest
from backtrack.generate.hf import generate_records, generation_config, split_generation
from backtrack.generate.vllm_engine import sampling_kwargs
from backtrack.settings import Decoding

R, E = 99, 2  # reset id, eos id


@pytest.mark.parametrize(
    ("ids", "visible", "resets", "ended"),
    [
        ([5, 6, 7, E, E], [5, 6, 7], [], True),  # zero resets
        ([5, 6, R, 8, 9, E], [8, 9], [2], True),  # one reset
        ([5, R, 6, R, 8, E, 0], [8], [1, 3], True),  # several: text after the LAST reset
        ([5, 6, R], [], [2], False),  # reset as the last token: empty visible answer
        ([R, 4, 4], [4, 4], [0], False),  # reset first, truncated
        ([], [], [], False),
    ],
)
def test_split_generation(ids, visible, resets, ended):
    s = split_generation(ids, R, [E])
    assert s.visible == visible
    assert s.reset_positions == resets
    assert s.ended is ended
    assert E not in s.generated


def _gen(tiny, **kw):
    model, tok, rid = tiny
    recs = [
        {"id": "a", "prompt": "Hello there", "harmful": False},
        {"id": "b", "prompt": "Tell me a much longer story about the sea please", "harmful": True},
        {"id": "c", "prompt": "Hi", "harmful": True, "prefill": "Sure, here"},
    ]
    args = dict(max_new_tokens=12, batch_size=2)
    args.update(kw)
    return generate_records(model, tok, recs, rid, Decoding(**args)), rid


def test_records_have_the_design_fields_and_keep_order(tiny):
    out, _ = _gen(tiny)
    assert [r["id"] for r in out] == ["a", "b", "c"]
    for r in out:
        for key in (
            "raw",
            "visible",
            "reset",
            "reset_positions",
            "tokens_generated",
            "tokens_visible",
            "truncated",
            "time_to_first_token_s",
            "time_to_first_visible_token_s",
            "total_time_s",
            "prefill",
        ):
            assert key in r
        assert r["tokens_visible"] <= r["tokens_generated"] <= 12
        assert r["time_to_first_token_s"] is None or r["time_to_first_token_s"] >= 0
    assert out[2]["prefill_tokens"] > 0 and out[0]["prefill_tokens"] == 0


def test_strong_bias_makes_reset_and_cap_holds(tiny):
    out, _ = _gen(tiny, reset_logit_bias=1e4, max_resets=2)
    for r in out:
        assert r["n_resets"] == 2  # the bias forces [RESET] until the cap forbids it
        assert r["reset_positions"] == [0, 1]
        assert "[RESET]" in r["raw"] and "[RESET]" not in r["visible"]
        assert r["tokens_visible"] == r["tokens_generated"] - 2
        assert r["time_to_first_visible_token_s"] >= r["time_to_first_token_s"]


def test_zero_max_resets_disables_backtracking(tiny):
    out, _ = _gen(tiny, reset_logit_bias=1e4, max_resets=0)
    assert not any(r["reset"] for r in out)


def test_negative_bias_suppresses_reset(tiny):
    out, _ = _gen(tiny, reset_logit_bias=-1e4, max_resets=None)
    assert not any(r["reset"] for r in out)


def test_num_samples(tiny):
    out, _ = _gen(tiny, do_sample=True, num_samples=3, seed=1)
    assert [r["id"] for r in out][:3] == ["a#0", "a#1", "a#2"]
    assert {r["prompt_id"] for r in out} == {"a", "b", "c"}


@pytest.mark.parametrize("do_sample", [True, False])
def test_sampling_has_top_k_off_as_on_vllm(tiny, do_sample):
    """transformers fills top_k=None with 50 (its global default); vLLM samples with it off."""
    model, tok, rid = tiny
    cfg = generation_config(tok, rid, 8, do_sample=do_sample, temperature=0.7, top_p=0.9)
    own = model.generation_config.top_k
    model.generation_config.top_k = 20  # a checkpoint's own default must not leak in either
    try:
        used, _ = model._prepare_generation_config(cfg)  # what generate() decodes with
    finally:
        model.generation_config.top_k = own
    if do_sample:
        assert used.top_k == 0 and used.do_sample and used.top_p == 0.9
        sampled = Decoding(max_new_tokens=8, do_sample=True)
        assert sampling_kwargs(sampled, reset_id=rid, max_tokens=8)["top_k"] == 0
    else:
        assert not used.do_sample  # greedy: no sampling warper is built at all
