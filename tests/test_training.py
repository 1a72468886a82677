"""The probe initialisation of the [RESET] embedding."""

from __future__ import annotations

import copy

import pytest
import torch
from backtrack.examples import build_sft_examples
from backtrack.training import init_reset_embedding

from tests.test_examples import POOL


def test_probe_init_puts_reset_just_below_the_top_where_it_is_the_label(tiny):
    model, tok, rid = tiny
    model = copy.deepcopy(model)
    pool = [POOL[0], {**POOL[0], "id": "h2", "unsafe": "Fine. Step one is to buy a cheap lock."}]
    pool += [POOL[1]]
    examples, _ = build_sft_examples(
        pool, tok, "backtrack", rid, min_fraction=0.3, max_fraction=0.6, max_length=512, seed=0
    )
    before = model.get_input_embeddings().weight[rid].clone()
    stats = init_reset_embedding(model, examples, rid, margin=2.0)
    after = model.get_input_embeddings().weight[rid]
    assert not torch.equal(before, after)
    assert torch.equal(after, model.get_output_embeddings().weight[rid])  # tied
    assert stats["reset_logit_at_reset_median"] == pytest.approx(
        stats["top_logit_at_reset_median"] - 2.0, abs=1e-3
    )
    assert stats["reset_logit_elsewhere_median"] < stats["reset_logit_at_reset_median"]
    # Measured on the model itself: [RESET] is now near the top at a backtracking position.
    ex = next(e for e in examples if e["kind"] == "backtrack")
    i = next(k for k, lab in enumerate(ex["labels"]) if lab != -100)
    with torch.no_grad():
        logits = model(torch.tensor([ex["input_ids"][:i]])).logits[0, -1]
    assert int((logits > logits[rid]).sum()) < 50


def test_probe_init_needs_backtracking_examples(tiny):
    model, tok, rid = tiny
    examples, _ = build_sft_examples(
        [POOL[1]], tok, "baseline", rid, min_fraction=0.3, max_fraction=0.6, max_length=512, seed=0
    )
    with pytest.raises(ValueError, match="probe init needs"):
        init_reset_embedding(copy.deepcopy(model), examples, rid)
