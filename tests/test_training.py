"""The probe initialisation of the [RESET] embedding, the DPO data as TRL tokenizes it, and the
compact LM head the trainers use on a CPU."""

from __future__ import annotations

import copy
import gc
import shutil
import weakref
from pathlib import Path

import backtrack.train.trainers
import pytest
import torch
from backtrack.data.examples import ExampleSettings, build_sft_examples
from backtrack.models.chat import prompt_ids, render_prompt
from backtrack.models.precision import Precision
from backtrack.settings import ResetToken
from backtrack.train.lm_head import MARK, compact_lm_head
from backtrack.train.shared_prefix import backbone_hidden, common_prefix_len
from backtrack.train.spec import TrainSettings
from backtrack.train.trainers import dpo_dataset, init_reset_embedding
from transformers import AutoTokenizer, LlamaForCausalLM
from trl import DPOConfig, DPOTrainer
from trl.trainer.utils import add_fused_lm_head

from tests.conftest import RESET
from tests.test_examples import POOL

ROOT = Path(__file__).resolve().parents[1]


def test_probe_init_puts_reset_just_below_the_top_where_it_is_the_label(tiny):
    model, tok, rid = tiny
    model = copy.deepcopy(model)
    pool = [POOL[0], {**POOL[0], "id": "h2", "unsafe": "Fine. Step one is to buy a cheap lock."}]
    pool += [POOL[1]]
    examples, _ = build_sft_examples(
        pool, tok, "backtrack", ResetToken(RESET, rid), ExampleSettings(0.3, 0.6, 0, max_length=512)
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
        [POOL[1]],
        tok,
        "baseline",
        ResetToken(RESET, rid),
        ExampleSettings(0.3, 0.6, 0, max_length=512),
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
        pool, tok, "backtrack", ResetToken(RESET, rid), ExampleSettings(0.3, 0.6, 0, max_length=512)
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
    """Each batch's hidden states are freed once the next batch runs (old: all kept)."""
    model, tok, rid = tiny
    model = copy.deepcopy(model)
    refs: list[weakref.ref] = []
    forward = model.base_model.forward

    def recording_forward(*args, **kwargs):
        gc.collect()
        # The previous output may still be bound to a local; anything older must be gone.
        assert sum(r() is not None for r in refs[:-1]) == 0
        out = forward(*args, **kwargs)
        refs.append(weakref.ref(out.last_hidden_state))
        return out

    monkeypatch.setattr(model.base_model, "forward", recording_forward)
    init_reset_embedding(model, _examples(tok, rid), rid, batch_size=1)
    assert len(refs) > 2


def test_probe_init_batches_equal_one_at_a_time_and_bf16_is_close(tiny):
    """Right-padded batches give the per-example result; bf16 autocast moves it by little."""
    model, tok, rid = tiny
    examples = _examples(tok, rid) * 3  # several batches of mixed lengths
    assert len({len(e["input_ids"]) for e in examples}) > 1
    one = copy.deepcopy(model)
    stats_one = init_reset_embedding(one, examples, rid, batch_size=1)
    batched = copy.deepcopy(model)
    stats = init_reset_embedding(batched, examples, rid, batch_size=4)
    assert stats == pytest.approx(stats_one, rel=1e-5)
    row = batched.get_output_embeddings().weight[rid]
    torch.testing.assert_close(row, one.get_output_embeddings().weight[rid])
    bf16 = copy.deepcopy(model)
    stats_bf16 = init_reset_embedding(bf16, examples, rid, batch_size=4, bf16=True)
    assert stats_bf16 != stats  # autocast did run
    # The scale is set as in fp32 (to bf16's precision of the logits)...
    gap = stats_bf16["top_logit_at_reset_median"] - stats_bf16["reset_logit_at_reset_median"]
    assert gap == pytest.approx(2.0, abs=0.1)
    # ...along nearly the same direction (this tiny random model's saturated activations make
    # it more sensitive to rounding than SmolLM2).
    cos = torch.nn.functional.cosine_similarity(bf16.get_output_embeddings().weight[rid], row, 0)
    assert cos > 0.999


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


def _fused_pair(model):
    """Two copies of ``model`` with TRL's fused LM head; the second made compact (the shared
    prefix off: its own test below compares it with the per-row forward)."""
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    outputs = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")
    add_fused_lm_head(a, outputs=outputs)
    add_fused_lm_head(b, outputs=outputs)
    compact_lm_head(b, shared_prefix=False)
    return a, b


def _batch(tok, rid):
    """Two right-padded SFT examples: prompt positions and padding carry label -100."""
    examples = _examples(tok, rid)[:2]
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((2, width), tok.pad_token_id)
    labels = torch.full((2, width), -100)
    mask = torch.zeros((2, width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = (
            torch.tensor(e["input_ids"]),
            torch.tensor(e["labels"]),
            1,
        )
    assert (labels != -100).sum() < mask.sum()  # some real positions are not scored
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("autocast", [False, True])
def test_compact_lm_head_equals_trls_head(tiny, autocast):
    """Scoring only the labelled positions gives TRL's outputs and loss (fp32: to 1e-5), and the
    gradients of transformers' own full-logits loss (to 1e-6 of their norm); TRL's chunked head
    sums the vocabulary in another order, so its gradients agree to 1e-4 of their norm on this
    tiny model (whose saturated logits amplify rounding). Under bf16 autocast all three round the
    logits to bf16: outputs agree to bf16's precision; the gradients equal transformers' own
    (its linear backward rounds the hidden-state gradient to bf16, where TRL's accumulates it in
    fp32: ~1-2% apart here, hence 5e-2).
    """
    model, tok, rid = tiny
    trl_model, compact = _fused_pair(model)
    hf = copy.deepcopy(model)
    batch = _batch(tok, rid)
    outs = []
    for m in (trl_model, compact, hf):
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            out = m(**batch, fused_lm_head=True) if m is not hf else m(**batch)
        out.loss.backward()
        outs.append(out)
    tol = {"atol": 2e-2, "rtol": 2e-2} if autocast else {"atol": 1e-5, "rtol": 1e-5}
    a, b, c = outs
    torch.testing.assert_close(b.loss, a.loss, **tol)
    torch.testing.assert_close(b.loss, c.loss, **tol)
    for field in ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits"):
        torch.testing.assert_close(getattr(b, field), getattr(a, field), **tol)
    assert torch.equal(b.label_mask, a.label_mask)
    if not autocast:
        assert torch.equal(b.is_top1, a.is_top1)
    assert b.log_probs[~b.label_mask].abs().sum() == 0
    params = zip(trl_model.named_parameters(), compact.parameters(), hf.parameters(), strict=True)
    for (name, pa), pb, pc in params:
        # Relative to the gradient's norm (elementwise, rounding differences of tiny entries).
        assert (pb.grad - pa.grad).norm() <= (5e-2 if autocast else 1e-4) * pa.grad.norm(), name
        assert (pb.grad - pc.grad).norm() <= 1e-6 * pc.grad.norm(), name


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_shared_prefix_gives_the_full_forwards_outputs_and_gradients(tiny, attn):
    """The batch's common prefix run once (batch size one, keys and values repeated) gives the
    per-row forward's log-probabilities, loss and every parameter's gradient. In float64, so
    that what is left is the head's fp32 scoring (~1e-8 of the gradient's norm), not fp32
    rounding of the whole model (~1e-5 on this tiny model's saturated logits). The backbone
    runs twice, the first time on the prefix alone."""
    model, tok, rid = tiny
    model = copy.deepcopy(model).double()
    batch = _batch(tok, rid)
    k = common_prefix_len(batch["input_ids"], batch["attention_mask"])
    assert 2 <= k < batch["input_ids"].shape[1] - 1
    outs, calls = [], []
    for shared in (False, True):
        m = copy.deepcopy(model)
        m.set_attn_implementation(attn)
        add_fused_lm_head(m, outputs=("log_probs",))
        compact_lm_head(m, shared_prefix=shared)
        seen = []
        hook = m.base_model.register_forward_hook(
            lambda mod, args, kw, out, seen=seen: seen.append(tuple(kw["input_ids"].shape)),
            with_kwargs=True,
        )
        out = m(**batch, fused_lm_head=True)
        out.loss.backward()
        hook.remove()
        outs.append((m, out))
        calls.append(seen)
    width = batch["input_ids"].shape[1]
    assert calls == [[(2, width)], [(1, k), (2, width - k)]]
    (plain, a), (split, b) = outs
    torch.testing.assert_close(b.loss, a.loss, atol=1e-7, rtol=1e-7)
    torch.testing.assert_close(b.log_probs, a.log_probs, atol=1e-7, rtol=1e-7)
    for (name, pa), pb in zip(plain.named_parameters(), split.parameters(), strict=True):
        assert (pb.grad - pa.grad).norm() <= 1e-6 * pa.grad.norm(), name


def test_common_prefix_len_and_when_the_split_is_skipped(tiny):
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 9, 9]])
    assert common_prefix_len(ids) == 2
    assert common_prefix_len(ids[:1]) == 0  # one row: nothing to share
    assert common_prefix_len(torch.tensor([[5, 6, 7], [5, 6, 7]])) == 2  # the last stays per row
    # Left padding (a zero mask at the front) shares nothing.
    assert common_prefix_len(ids, torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])) == 0
    model, tok, rid = tiny
    model = copy.deepcopy(model).double()
    batch = _batch(tok, rid)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    seen = []
    hook = model.base_model.register_forward_hook(
        lambda mod, args, kw, out: seen.append(kw["input_ids"].shape[0]), with_kwargs=True
    )
    with torch.no_grad():
        full = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        seen.clear()
        # Positions that are not 0..k-1 in the prefix: the plain forward.
        shifted = (torch.arange(ids.shape[1]) + 1).expand(2, -1)
        backbone_hidden(model.base_model, ids, mask, position_ids=shifted)
        assert seen == [2]
        seen.clear()
        torch.testing.assert_close(backbone_hidden(model.base_model, ids, mask), full)
        assert seen == [1, 2]
    hook.remove()


def test_compact_lm_head_leaves_the_plain_forward_and_cuda_alone(tiny):
    model, tok, rid = tiny
    trl_model, compact = _fused_pair(model)
    batch = _batch(tok, rid)
    plain = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        torch.testing.assert_close(compact(**plain).logits, model(**plain).logits)
    assert compact_lm_head(compact) is compact  # wrapping twice is a no-op
    assert compact.forward.__func__ is not trl_model.forward.__func__


def test_compact_lm_head_runs_under_the_given_autocast(tiny):
    """DPOTrainer's reference model is prepared (autocast-wrapped) before the compact head is
    added, so the compact path enters the trainer's autocast itself."""
    model, tok, rid = tiny
    _, compact = _fused_pair(model)
    plain = copy.deepcopy(model)
    add_fused_lm_head(plain)
    compact_lm_head(plain, lambda: torch.autocast("cpu", torch.bfloat16))
    dtypes = []
    for m in (compact, plain):
        seen = set()
        hook = m.base_model.layers[0].self_attn.q_proj.register_forward_hook(
            lambda mod, args, out, seen=seen: seen.add(out.dtype)
        )
        with torch.no_grad():
            out = m(**_batch(tok, rid), fused_lm_head=True)
        hook.remove()
        assert out.log_probs.dtype == torch.float32
        dtypes.append(seen)
    assert dtypes == [{torch.float32}, {torch.bfloat16}]  # the second: prefix and rest alike


def test_training_runs_wrap_the_trainers_heads(tiny_source_dir, tmp_path, monkeypatch):
    """run_sft and run_dpo train with the compact head on the policy (and DPO's reference),
    under the trainer's autocast."""
    wrapped = []

    def wrap(m, autocast):
        wrapped.append((m, autocast))
        return compact_lm_head(m, autocast)

    monkeypatch.setattr(backtrack.train.trainers, "compact_lm_head", wrap)
    monkeypatch.setattr(
        backtrack.train.trainers, "_train_and_save", lambda trainer, *a, **k: trainer
    )
    params = {
        "learning_rate": 1e-4, "epochs": 1, "batch_size": 2, "gradient_accumulation_steps": 1,
        "lr_scheduler": "constant", "warmup_ratio": 0.0, "weight_decay": 0.0, "max_length": 64,
        "gradient_checkpointing": False, "sampling": "random", "reset_init": "mean",
        "precision": "fp32", "beta": 0.1,
    }  # fmt: skip
    tok = AutoTokenizer.from_pretrained(tiny_source_dir)
    pairs = [{"prompt": render_prompt(tok, "Hi?"), "chosen": "No.", "rejected": "Ok"}]
    examples = [{"kind": "baseline", "input_ids": [1, 2, 3, 4], "labels": [-100, -100, 3, 4]}]
    how = TrainSettings(seed=0, dtype="float32", precision=Precision.fixed("fp32"))
    sft = backtrack.train.trainers.run_sft(str(tiny_source_dir), examples, "unused", params, how)
    dpo = backtrack.train.trainers.run_dpo(str(tiny_source_dir), pairs, "unused", params, how)
    assert [m for m, _ in wrapped] == [sft.model, dpo.model, dpo.ref_model]
    assert [a for _, a in wrapped] == [sft.accelerator.autocast] + [dpo.accelerator.autocast] * 2
    assert all(getattr(m, MARK) for m, _ in wrapped)
    # attn_implementation: auto is eager on this CPU, for the policy and the reference.
    assert {m.config._attn_implementation for m, _ in wrapped} == {"eager"}


def test_attn_implementation_auto_is_eager_on_cpu_sdpa_on_gpu(monkeypatch):
    from backtrack.train.trainers import attn_implementation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert attn_implementation("auto") == "eager"
    assert attn_implementation("sdpa") == "sdpa"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert attn_implementation("auto") == "sdpa"
    assert attn_implementation("eager") == "eager"


def test_the_last_logged_loss_is_the_final_one_not_the_mean():
    from backtrack.train.trainers import last_logged_loss

    history = [
        {"loss": 2.0, "step": 5},
        {"loss": 0.5, "step": 10},
        {"train_loss": 1.25, "step": 10},
    ]
    assert last_logged_loss(history) == {"final_loss": 0.5, "final_loss_step": 10}
    assert last_logged_loss([{"train_loss": 0.7, "step": 2}]) == {
        "final_loss": None,
        "final_loss_step": None,
    }
