"""Backtracking decode: the visible split on token ids, the reset cap, the bias, the records."""

from __future__ import annotations

import pytest
import torch
from backtrack.generate.hf import (
    ResetCapProcessor,
    decode,
    generate_records,
    generation_config,
    left_pad_batch,
    logits_processors,
    shared_prefix,
    split_generation,
)
from backtrack.generate.vllm_engine import sampling_kwargs
from backtrack.models.chat import prompt_ids
from backtrack.settings import Decoding
from transformers import (
    SequenceBiasLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from tests.conftest import tiny_gemma

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
    """transformers' generate fills top_k=None with 50 (its global default); vLLM samples with it
    off, and so does decode: its processors are built from our config alone, never from the
    checkpoint's own generation_config."""
    model, tok, rid = tiny
    cfg = generation_config(
        tok, rid, 8, do_sample=do_sample, temperature=0.7, top_p=0.9, reset_logit_bias=-5.0
    )
    own = model.generation_config.top_k
    model.generation_config.top_k = 20  # a checkpoint's own default must not leak in either
    try:
        kinds = [type(p) for p in logits_processors(cfg)]
    finally:
        model.generation_config.top_k = own
    assert TopKLogitsWarper not in kinds
    if do_sample:
        assert kinds == [SequenceBiasLogitsProcessor, TemperatureLogitsWarper, TopPLogitsWarper]
        sampled = Decoding(max_new_tokens=8, do_sample=True)
        assert sampling_kwargs(sampled, reset_id=rid, max_tokens=8)["top_k"] == 0
    else:
        assert kinds == [SequenceBiasLogitsProcessor]  # greedy: no sampling warper at all


def test_unsupported_generation_setting_is_refused(tiny):
    _, tok, rid = tiny
    cfg = generation_config(tok, rid, 8)
    cfg.repetition_penalty = 1.3
    with pytest.raises(ValueError, match="repetition_penalty"):
        logits_processors(cfg)


def _early_eos(model, tok, rid, rows, n):
    """An EOS id that greedy decoding reaches early in some rows and never in others (ids of
    the tiny model's free decoding), so that rows end at different steps."""
    batch = left_pad_batch(tok, rows, model.device)
    width = batch["input_ids"].shape[1]
    with torch.no_grad():
        free = model.generate(**batch, generation_config=generation_config(tok, rid, n))
    free = free[:, width:].tolist()
    firsts = {row[3] for row in free} - {row[i] for row in free[1:] for i in range(n)}
    return next(iter(firsts), free[0][3])


def test_decode_matches_generate_row_by_row(tiny):
    """Each row's tokens are those transformers' generate gives it alone (greedy, fp32, with
    the reset cap), whether the rows are decoded one at a time, all together (ended rows
    leave), or continuously two at a time (ended rows make room for waiting ones)."""
    model, tok, rid = tiny
    prompts = ["Hello there", "How do I bake bread at home today?", "Hi", "Tell me a story",
               "Why?", "What is the capital of France and why is it there?"]  # fmt: skip
    rows = [prompt_ids(tok, p, None) for p in prompts]
    cfg = generation_config(tok, rid, 16)
    cfg.eos_token_id = [_early_eos(model, tok, rid, rows, 16)]
    want = []
    for row in rows:
        ids = torch.tensor([row])
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                generation_config=cfg,
                logits_processor=[ResetCapProcessor(rid, 1, len(row))],
            )[0, len(row) :].tolist()
        want.append(out)
    for batch_size in (1, 2, len(rows)):
        got = decode(model, tok, rows, rid, cfg, max_resets=1, batch_size=batch_size)
        assert [d.new_ids for d in got] == want, batch_size
        assert all(len(d.times) == len(d.new_ids) for d in got)
    assert any(len(w) < 16 for w in want) and any(len(w) == 16 for w in want)


def test_continuous_batching_lets_rows_in_as_others_end(tiny):
    """With more rows than places, rows join a batch already decoding (a clock that starts
    when each is let in, the batch size it then found), and prefills are counted once each."""
    from backtrack import jobstats

    model, tok, rid = tiny
    prompts = ["Hi", "Why?", "Hello there", "Tell me a story", "How do I bake bread at home?"]
    rows = [prompt_ids(tok, p, "You are a careful assistant.") for p in prompts]
    cfg = generation_config(tok, rid, 12)
    cfg.eos_token_id = [_early_eos(model, tok, rid, rows, 12)]
    start = jobstats.snapshot()
    grad = []
    forward = model.forward
    model.forward = lambda *a, **k: grad.append(torch.is_grad_enabled()) or forward(*a, **k)
    try:
        got = decode(model, tok, rows, rid, cfg, max_resets=1, batch_size=4)
    finally:
        del model.forward
    assert grad and not any(grad)  # no autograd graph: it would keep every step's cache
    counted = jobstats.counted_since(start)
    groups = {d.t0 for d in got}  # rows let in together share the start of their step
    assert 2 <= len(groups) < len(rows)  # some joined a batch already decoding, some together
    assert all(1 <= d.batch_size <= 4 for d in got)
    prefix = shared_prefix(rows)
    assert prefix > 5
    # each row's own ids once, the prefix once per admission
    want = sum(len(r) for r in rows) - prefix * (len(rows) - len(groups))
    assert counted.total() == want


def test_sampling_continuously_is_reproducible(tiny):
    model, tok, rid = tiny
    rows = [prompt_ids(tok, p, None) for p in ["Hi", "Why?", "Hello there", "Tell me more"]]
    cfg = generation_config(tok, rid, 10, do_sample=True, temperature=1.0, top_p=0.9)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        outs.append(
            [d.new_ids for d in decode(model, tok, rows, rid, cfg, max_resets=1, batch_size=2)]
        )
    assert outs[0] == outs[1]


def test_shared_prefix_leaves_each_row_an_id_of_its_own():
    assert shared_prefix([[1, 2, 3, 4], [1, 2, 3, 5, 6]]) == 3
    assert shared_prefix([[1, 2, 3], [1, 2, 3, 4]]) == 2  # the shorter row keeps its last id
    assert shared_prefix([[1, 2], [3, 2]]) == 0
    assert shared_prefix([[1, 2, 3]]) == 0  # one row: nothing to share


def test_a_shared_prefix_is_computed_once_with_the_same_tokens(tiny):
    """The chat template's system turn, padded after rather than before and run once at batch
    size one, gives every row the tokens it gets decoded alone (fp32)."""
    model, tok, rid = tiny
    prompts = ["Hi", "How do I bake bread at home today?", "Tell me a story", "Why?"]
    rows = [prompt_ids(tok, p, "You are a careful assistant.") for p in prompts]
    keep = shared_prefix(rows)
    assert keep > 5
    batch = left_pad_batch(tok, rows, model.device, keep=keep)
    assert batch["attention_mask"].sum(-1).tolist() == [len(r) for r in rows]
    assert (batch["input_ids"][:, :keep] == torch.tensor(rows[0][:keep])).all()
    cfg = generation_config(tok, rid, 12)
    alone = [decode(model, tok, [r], rid, cfg, max_resets=1, batch_size=1)[0].new_ids for r in rows]
    together = decode(model, tok, rows, rid, cfg, max_resets=1, batch_size=4)
    assert [d.new_ids for d in together] == alone


def test_a_sliding_window_model_decodes_batched_as_alone(tiny):
    """Gemma-3 interleaves sliding-window layers, whose window counts cache slots: padding
    placed after a shared prefix would sit inside a short row's window and hide real tokens
    from it. Batched decoding of such a model gives each row the tokens it gets alone (fp32)."""
    _, tok, rid = tiny
    model = tiny_gemma(tok)
    prompts = ["Hi", "How do I bake bread at home today?", "Tell me a story", "Why?"]
    rows = [prompt_ids(tok, p, "You are a careful assistant.") for p in prompts]
    assert shared_prefix(rows) > 5
    gen = generation_config(tok, rid, 10)
    alone = [d.new_ids for d in decode(model, tok, rows, rid, gen, max_resets=1, batch_size=1)]
    batched = decode(model, tok, rows, rid, gen, max_resets=1, batch_size=4)
    assert [d.new_ids for d in batched] == alone
