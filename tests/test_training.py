"""The probe initialisation of the [RESET] embedding, and the DPO data as TRL tokenizes it."""

from __future__ import annotations

import copy
import gc
import shutil
import weakref
from pathlib import Path

import pytest
import torch
from backtrack.data.examples import build_sft_examples
from backtrack.models.chat import prompt_ids, render_prompt
from backtrack.train.trainers import dpo_dataset, init_reset_embedding
from transformers import AutoTokenizer, LlamaForCausalLM
from trl import DPOConfig, DPOTrainer

from tests.test_examples import POOL

ROOT = Path(__file__).resolve().parents[1]


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


def _old_init_reset_embedding(model, examples, reset_id, margin=2.0):
    """The probe init as it was: every example's hidden states kept, then concatenated."""
    pos, neg, tops = [], [], []
    model.eval()
    with torch.no_grad():
        for e in examples:
            labels = e["labels"]
            first = next(k for k, lab in enumerate(labels) if lab != -100)
            out = model(torch.tensor([e["input_ids"]]), output_hidden_states=True)
            h = out.hidden_states[-1][0]
            if labels[first] == reset_id:
                pos.append(h[first - 1])
                tops.append(out.logits[0, first - 1].max())
            else:
                neg.append(h[first - 1 : len(labels) - 1])
    p, n = torch.stack(pos), torch.cat(neg)
    direction = p.mean(0) - n.mean(0)
    scale = (torch.stack(tops).median() - margin) / (p @ direction).median()
    row = direction * scale
    return row, {
        "reset_logit_at_reset_median": float((p @ row).median()),
        "top_logit_at_reset_median": float(torch.stack(tops).median()),
        "reset_logit_elsewhere_median": float((n @ row).median()),
    }


def _examples(tok, rid):
    pool = [POOL[0], {**POOL[0], "id": "h2", "unsafe": "Fine. Step one is to buy a cheap lock."}]
    pool += [POOL[1]]
    examples, _ = build_sft_examples(
        pool, tok, "backtrack", rid, min_fraction=0.3, max_fraction=0.6, max_length=512, seed=0
    )
    return examples


def test_probe_init_running_sums_equal_the_full_computation(tiny):
    model, tok, rid = tiny
    examples = _examples(tok, rid)
    old_row, old_stats = _old_init_reset_embedding(copy.deepcopy(model), examples, rid)
    new_model = copy.deepcopy(model)
    stats = init_reset_embedding(new_model, examples, rid)
    torch.testing.assert_close(new_model.get_output_embeddings().weight[rid], old_row)
    assert stats == pytest.approx(old_stats, rel=1e-5)
    # A sample smaller than the other positions still gives a median of real positions.
    sampled = init_reset_embedding(copy.deepcopy(model), examples, rid, keep_elsewhere=3)
    assert sampled["reset_logit_at_reset_median"] == pytest.approx(
        stats["reset_logit_at_reset_median"], rel=1e-5
    )


def test_probe_init_keeps_no_hidden_state_tensor(tiny, monkeypatch):
    """Each example's hidden states are freed once the next example runs (old: all kept)."""
    model, tok, rid = tiny
    model = copy.deepcopy(model)
    refs: list[weakref.ref] = []
    forward = model.forward

    def recording_forward(*args, **kwargs):
        gc.collect()
        # The previous output may still be bound to a local; anything older must be gone.
        assert sum(r() is not None for r in refs[:-1]) == 0
        out = forward(*args, **kwargs)
        refs.append(weakref.ref(out.hidden_states[-1]))
        return out

    monkeypatch.setattr(model, "forward", recording_forward)
    init_reset_embedding(model, _examples(tok, rid), rid)
    assert len(refs) > 2


@pytest.fixture(scope="module")
def bos_model_dir(tiny_source_dir, tmp_path_factory):
    """The tiny model with a tokenizer that adds BOS and Llama-3's template, which writes it too."""
    out = tmp_path_factory.mktemp("bos") / "m"
    shutil.copytree(tiny_source_dir, out)
    tok = AutoTokenizer.from_pretrained(out)
    tok.add_bos_token = True
    tok.chat_template = (ROOT / "config/chat_templates/llama-3.jinja").read_text()
    tok.save_pretrained(out)
    return out


def test_dpo_sequences_have_one_bos_as_in_sft(bos_model_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(bos_model_dir)
    bos = tok.bos_token_id
    assert tok("a").input_ids[0] == bos  # the tokenizer adds BOS, like Gemma's and Llama-3's
    sft_prompt = prompt_ids(tok, "How do I pick a lock?")
    assert sft_prompt.count(bos) == 1  # the template's own
    pairs = [
        {"prompt": render_prompt(tok, "How do I pick a lock?"), "chosen": "No.", "rejected": "Ok"}
    ]
    args = DPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", max_length=128)
    trainer = DPOTrainer(
        model=LlamaForCausalLM.from_pretrained(bos_model_dir),
        ref_model=LlamaForCausalLM.from_pretrained(bos_model_dir),
        args=args,
        train_dataset=dpo_dataset(pairs, tok),
        processing_class=tok,
    )
    row = trainer.train_dataset[0]  # as TRL tokenized it
    for completion in ("chosen_ids", "rejected_ids"):
        assert [*row["prompt_ids"], *row[completion]].count(bos) == 1
    # The same prompt tokens as SFT and generation. (SmolLM2's GPT-2-style pre-tokenizer splits
    # the template's final "\n\n" differently before a word, so TRL ends the prompt one token
    # early; Llama-3's own pre-tokenizer keeps "\n\n" whole.)
    assert row["prompt_ids"][0] == bos
    assert row["prompt_ids"] == sft_prompt[: len(row["prompt_ids"])]
    assert len(row["prompt_ids"]) >= len(sft_prompt) - 1
