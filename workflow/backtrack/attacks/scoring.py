"""What GCG, AutoDAN and the adaptive attack share: the attacked chat split around an
adversarial slot, a reusable prefix KV cache, target losses, and the banned-token set.

Written here rather than taken from nanoGCG or HarmBench: both reuse the prefix cache in ways
that break on transformers 5 (a tuple cache, ``DynamicCache`` indexing), both hard-code the
loss, and both let added tokens such as ``[RESET]`` into the suffix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from backtrack import jobstats
from backtrack.models.chat import render_prompt

#: Marks where the adversarial string goes in the rendered chat (nanoGCG's convention).
SLOT = "{optim_str}"

#: ``loss_fn(logits, segment) -> (B,)``. ``logits`` is ``(B, T + 1, V)``: row ``j < T`` predicts
#: ``segment[j]``, row ``T`` predicts the token after the segment.
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class ChatSlots:
    """Token ids of the attacked chat: ``before ⊕ slot ⊕ after`` is the prompt, ``segment`` is
    what the attacker wants the assistant to say (the target, then any protected continuation).
    """

    before: torch.Tensor  # (Lb,)
    after: torch.Tensor  # (La,)
    segment: torch.Tensor  # (T,)

    def with_segment(self, segment: torch.Tensor) -> ChatSlots:
        return ChatSlots(self.before, self.after, segment)

    def with_before(self, before: torch.Tensor) -> ChatSlots:
        return ChatSlots(before, self.after, self.segment)


def chat_slots(
    tok: PreTrainedTokenizerBase,
    user_template: str,
    segment_ids: Sequence[int],
    system: str | None = None,
    device: torch.device | str = "cpu",
) -> ChatSlots:
    """Render ``user_template`` (which holds :data:`SLOT` once) with the model's chat template
    and split it at the slot. Each side is tokenised on its own, as nanoGCG and HarmBench do; the
    GCG filter keeps only suffixes whose ids survive decoding and re-encoding.
    """
    if user_template.count(SLOT) != 1:
        raise ValueError(f"the user template must hold {SLOT!r} exactly once: {user_template!r}")
    text = render_prompt(tok, user_template, system)
    before, after = text.split(SLOT)

    def ids(s: str) -> torch.Tensor:
        return torch.tensor(tok(s, add_special_tokens=False).input_ids, dtype=torch.long)

    return ChatSlots(
        ids(before).to(device),
        ids(after).to(device),
        torch.tensor(list(segment_ids), dtype=torch.long, device=device),
    )


def banned_token_ids(
    tok: PreTrainedTokenizerBase, embedding_rows: int, reset_id: int, allow_non_ascii: bool
) -> torch.Tensor:
    """Ids an adversarial string may never hold: every special and added token (``[RESET]``
    among them), every embedding row beyond the tokenizer's base vocabulary, and unless allowed
    every token that does not decode to printable ASCII. nanoGCG scans only
    ``range(tok.vocab_size)`` and so lets ``[RESET]`` through.
    """
    banned = set(tok.all_special_ids) | {reset_id}
    banned |= set(tok.get_added_vocab().values())
    banned |= set(range(tok.vocab_size, embedding_rows))
    for i in range(min(tok.vocab_size, embedding_rows)):
        s = tok.decode([i])
        if not s or (not allow_non_ascii and not (s.isascii() and s.isprintable())):
            banned.add(i)
    return torch.tensor(sorted(banned), dtype=torch.long)


def _contiguous_args(module: torch.nn.Module, args: tuple) -> tuple:
    return tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)


@contextmanager
def contiguous_head_input(model: PreTrainedModel) -> Iterator[None]:
    """Hand the LM head a contiguous input while scoring.

    Why: ``logits_to_keep`` slices the last hidden states (not contiguous), and when the head's
    weight does not require grad (the attack freezes every parameter) PyTorch's ``matmul`` then
    expands the ``V x D`` weight over the batch and copies it for a ``bmm`` instead of folding the
    batch into one ``mm``. Measured (PyTorch 2.13, CPU, bf16, 64 x 21 rows, SmolLM2's head):
    11.5 s against 0.48 s for the same product; it made bf16 candidate scoring slower than fp32.
    Copying the (B, T + 1, D) slice costs next to nothing.
    """
    head = model.get_output_embeddings()
    handle = head.register_forward_pre_hook(_contiguous_args) if head is not None else None
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()


@torch.no_grad()
def prefix_cache(model: PreTrainedModel, before: torch.Tensor) -> DynamicCache:
    """KV cache of the fixed chat prefix, computed once per prompt (no logits are needed:
    ``logits_to_keep=1`` spares the LM head the other rows).
    """
    jobstats.count("forward", before.numel(), 1)
    return model(input_ids=before[None], use_cache=True, logits_to_keep=1).past_key_values


@torch.no_grad()
def extend_cache(
    model: PreTrainedModel, cache: DynamicCache, ids: torch.Tensor, start: int
) -> DynamicCache:
    """A new one-row cache: ``cache`` (left untouched) followed by ``ids`` at positions
    ``start`` onward. GCG scores a batch of candidates on it when they share those ids.
    """
    out = expand_cache(model, cache, 1)
    jobstats.count("forward", ids.numel(), 1)
    positions = torch.arange(start, start + ids.numel(), device=ids.device)[None]
    model(
        input_ids=ids[None],
        past_key_values=out,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
    )
    return out


def expand_cache(model: PreTrainedModel, cache: DynamicCache, batch: int) -> DynamicCache:
    """A fresh cache holding the prefix for ``batch`` rows. The prefix tensors are only viewed
    (``expand``), never written: the forward pass concatenates into new tensors, so one prefix
    serves every candidate batch (transformers 5 layers expose ``keys`` and ``values``).
    """
    out = DynamicCache(config=model.config)
    for i, layer in enumerate(cache.layers):
        out.update(layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1), i)
    return out


def segment_logits(
    model: PreTrainedModel,
    slots: ChatSlots,
    slot_embeds: torch.Tensor,
    cache: DynamicCache | None,
) -> torch.Tensor:
    """Logits ``(B, T + 1, V)`` at the positions that predict the segment and the token after it,
    for a batch of slot embeddings ``(B, L, D)``. Only those rows go through the LM head.
    """
    emb = model.get_input_embeddings()
    b = slot_embeds.shape[0]
    rest = torch.cat(
        [
            slot_embeds,
            emb(slots.after)[None].expand(b, -1, -1),
            emb(slots.segment)[None].expand(b, -1, -1),
        ],
        dim=1,
    )
    keep = slots.segment.numel() + 1
    kind = "input_grad" if slot_embeds.requires_grad else "forward"
    jobstats.count(
        kind, b * (rest.shape[1] + (slots.before.numel() if cache is None else 0)), b * keep
    )
    if cache is None:
        full = torch.cat([emb(slots.before)[None].expand(b, -1, -1), rest], dim=1)
        with contiguous_head_input(model):
            return model(inputs_embeds=full, use_cache=False, logits_to_keep=keep).logits
    start = slots.before.numel()
    positions = torch.arange(start, start + rest.shape[1], device=rest.device)
    with contiguous_head_input(model):
        out = model(
            inputs_embeds=rest,
            past_key_values=expand_cache(model, cache, b),
            position_ids=positions[None].expand(b, -1),
            use_cache=True,
            logits_to_keep=keep,
        )
    return out.logits


def target_ce(logits: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the segment, per row: GCG's and AutoDAN's loss."""
    t = segment.numel()
    ce = F.cross_entropy(
        logits[:, :t].transpose(1, 2).float(),
        segment[None].expand(logits.shape[0], -1),
        reduction="none",
    )
    return ce.mean(dim=1)


def target_cw(logits: torch.Tensor, segment: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Mean Carlini-Wagner margin loss of the segment, per row: at each position, the largest
    other logit minus the target token's, floored at ``-margin``.

    Why beside cross-entropy: greedy decoding follows the target only if every target token is
    the argmax. Mean cross-entropy is dominated by the many easy tokens that copy the request
    ("... how to commit insider trading"), so it can fall to 0.2 while the first token still
    loses to a refusal's "I". A position whose target already leads by ``margin`` adds no
    gradient here, so the search spends its candidates on the positions that still lose.
    """
    t = segment.numel()
    z = logits[:, :t].float()
    idx = segment[None, :, None].expand(z.shape[0], -1, 1)
    target = z.gather(2, idx).squeeze(2)
    other = z.scatter(2, idx, float("-inf")).amax(dim=2)
    return (other - target).clamp_min(-margin).mean(dim=1)


#: Target losses by config name (attacks.gcg.loss).
TARGET_LOSSES = ("ce", "cw")


def target_loss(name: str, cw_margin: float = 1.0) -> LossFn:
    """The target loss a config names: ``ce`` (HarmBench's, nanoGCG's) or ``cw``."""
    if name == "ce":
        return target_ce
    if name == "cw":
        return partial(target_cw, margin=cw_margin)
    raise ValueError(f"attacks.gcg.loss: {name!r} is not one of {TARGET_LOSSES}")


@dataclass
class ResetAwareLoss:
    """The adaptive attack's loss: the target loss (cross-entropy unless ``target`` says
    otherwise) on the first ``n_target`` segment tokens,
    plus ``weight`` times the mean of ``-log(1 - P([RESET]))`` at every segment position and the
    one after it. That term is zero when the model never wants to reset and grows without bound
    as ``P([RESET])`` nears 1; unlike ``+log P([RESET])`` it cannot be driven to minus infinity
    and drown the target term.
    """

    reset_id: int
    weight: float
    n_target: int
    target: LossFn = target_ce  # the target term (attacks.gcg.loss)

    def __call__(self, logits: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
        head = self.target(logits[:, : self.n_target + 1], segment[: self.n_target])
        return head + self.weight * self.reset_term(logits)

    def reset_term(self, logits: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits.float(), dim=-1)[..., self.reset_id]
        # -log(1 - p) = -log1p(-exp(logp)); clamp keeps it finite when p rounds to 1.
        return -torch.log1p(-logp.exp().clamp(max=1 - 1e-6)).mean(dim=1)


def message_losses(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    messages: Sequence[str],
    segment_ids: Sequence[int],
    loss_fn: LossFn = target_ce,
    system: str | None = None,
    batch_size: int = 8,
) -> list[float]:
    """Loss of the segment as the answer to each whole user message (AutoDAN's fitness).

    Messages differ in length, so rows are left-padded with explicit position ids and only the
    last ``T + 1`` positions (identical in every row) go through the LM head.
    """
    from accelerate.utils import find_executable_batch_size

    from backtrack.generate.hf import left_pad_batch
    from backtrack.models.chat import prompt_ids

    device = next(model.parameters()).device
    segment = torch.tensor(list(segment_ids), dtype=torch.long, device=device)
    rows = [prompt_ids(tok, m, system) + list(segment_ids) for m in messages]

    current = [batch_size]

    @find_executable_batch_size(
        starting_batch_size=batch_size, reduce_batch_size_fn=lambda: current[0] // 2
    )
    @torch.no_grad()
    def run(bs: int) -> list[float]:
        current[0] = bs  # halved on out-of-memory, like the GCG candidate batch
        out: list[float] = []
        for i in range(0, len(rows), bs):
            batch = left_pad_batch(tok, rows[i : i + bs], device)
            ids, mask = batch["input_ids"], batch["attention_mask"]
            jobstats.count("forward", int(mask.sum()), ids.shape[0] * (segment.numel() + 1))
            with contiguous_head_input(model):
                logits = model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=(mask.cumsum(-1) - 1).clamp_min(0),
                    use_cache=False,
                    logits_to_keep=segment.numel() + 1,
                ).logits
            out += loss_fn(logits, segment).tolist()
        return out

    return run()
