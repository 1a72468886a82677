"""Batched HF generation with backtracking.

The discarded prefix stays in the context (it is what the model was trained on); the visible
answer is what follows the last ``[RESET]``, split on token ids, never on decoded text.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm
from transformers import (
    DynamicCache,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    SequenceBiasLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from backtrack import jobstats
from backtrack.models.chat import prompt_ids, text_ids
from backtrack.settings import Decoding


@dataclass(frozen=True)
class Split:
    """A generated token sequence split at its resets (ids exclude EOS and padding)."""

    generated: list[int]
    visible: list[int]
    reset_positions: list[int]
    ended: bool  # an EOS was generated


def split_generation(ids: Sequence[int], reset_id: int, eos_ids: Sequence[int]) -> Split:
    """Cut a generated sequence at its first EOS and split it at the last ``[RESET]``."""
    ids = list(ids)
    eos = set(eos_ids)
    end = next((i for i, t in enumerate(ids) if t in eos), None)
    generated = ids if end is None else ids[:end]
    resets = [i for i, t in enumerate(generated) if t == reset_id]
    visible = generated[resets[-1] + 1 :] if resets else generated
    return Split(generated, visible, resets, end is not None)


class ResetCapProcessor(LogitsProcessor):
    """Forbid ``[RESET]`` in rows that already emitted ``max_resets`` of them.

    Written here because no built-in processor counts a token per row; the bias itself uses
    transformers' ``sequence_bias`` so that it applies before temperature and top-p, as vLLM's
    ``logit_bias`` does.
    """

    def __init__(self, reset_id: int, max_resets: int, prompt_len: int) -> None:
        self.reset_id, self.max_resets, self.prompt_len = reset_id, max_resets, prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        used = (input_ids[:, self.prompt_len :] == self.reset_id).sum(dim=1)
        scores[used >= self.max_resets, self.reset_id] = float("-inf")
        return scores


def generation_config(
    tok: PreTrainedTokenizerBase,
    reset_id: int,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    reset_logit_bias: float = 0.0,
) -> GenerationConfig:
    """Decoding settings; the [RESET] bias goes through the built-in ``sequence_bias``.

    Sampling sets ``top_k=0`` (off), as the vLLM backend samples: transformers' ``generate``
    would fill a ``None`` from the model's generation config or its default of 50 (decode builds
    its processors from this config alone, :func:`logits_processors`).
    """
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=do_sample,
        temperature=temperature if do_sample else None,
        top_p=top_p if do_sample else None,
        top_k=0 if do_sample else None,
        eos_token_id=[tok.eos_token_id],
        pad_token_id=tok.pad_token_id,
        sequence_bias={(reset_id,): float(reset_logit_bias)} if reset_logit_bias else None,
    )


def left_pad_batch(
    tok: PreTrainedTokenizerBase,
    rows: list[list[int]],
    device: torch.device,
    keep: int = 0,
) -> dict[str, torch.Tensor]:
    """Left-pad token id lists into a batch (generation and the attacks' message losses).

    ``keep``: the rows' first ``keep`` ids, the same in every row (:func:`shared_prefix`), stay
    in front and the padding goes after them, so that :func:`decode_batch` computes them once.
    """
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :keep] = torch.tensor(r[:keep], dtype=torch.long)
        ids[i, width - len(r) + keep :] = torch.tensor(r[keep:], dtype=torch.long)
        mask[i, :keep] = 1
        mask[i, width - len(r) + keep :] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def shared_prefix(rows: Sequence[Sequence[int]]) -> int:
    """How many leading ids all rows share (the chat template's system turn, mostly), leaving
    each row at least one id of its own: its last position is where its first token comes from.
    """
    if len(rows) < 2:
        return 0
    n, limit = 0, min(len(r) for r in rows) - 1
    first = rows[0]
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return n


def sliding_window(config: Any) -> int | None:
    """The model's sliding attention window in cache slots (Gemma-3, Mistral), or None."""
    config = config.get_text_config()
    window = getattr(config, "sliding_window", None)
    if not window or getattr(config, "use_sliding_window", True) is False:
        return None
    types = getattr(config, "layer_types", None)
    if types is not None and not any("sliding" in t for t in types):
        return None
    return int(window)


@dataclass(frozen=True)
class Item:
    """One answer to generate: a prompt record, which of its samples (``sample`` None when each
    prompt is answered once; ``k`` counts from 0 either way), the chat-template ids of its
    prompt followed by its prefill's, and the prefill's length."""

    rec: dict[str, Any]
    sample: int | None
    k: int
    ids: list[int]
    n_prefill: int


def answer_items(
    tok: PreTrainedTokenizerBase, records: list[dict[str, Any]], decoding: Decoding
) -> list[Item]:
    """Every (record, sample) to answer, in record order: both backends start from these, so
    they feed the model the same ids."""
    items = []
    for rec in records:
        ids = prompt_ids(tok, rec["prompt"], decoding.system)
        pre = text_ids(tok, rec["prefill"]) if rec.get("prefill") else []
        for k in range(decoding.num_samples):
            sample = k if decoding.num_samples > 1 else None
            items.append(Item(rec, sample, k, ids + pre, len(pre)))
    return items


def decoding_config(
    tok: PreTrainedTokenizerBase, reset_id: int, decoding: Decoding
) -> GenerationConfig:
    """:func:`generation_config` of a :class:`~backtrack.settings.Decoding`."""
    return generation_config(
        tok,
        reset_id,
        decoding.max_new_tokens,
        decoding.do_sample,
        decoding.temperature,
        decoding.top_p,
        decoding.reset_logit_bias,
    )


def generate_records(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    records: list[dict[str, Any]],
    reset_id: int,
    decoding: Decoding,
) -> list[dict[str, Any]]:
    """Generate an answer for each record (``prompt``, optional ``prefill``) and describe it.

    Records are batched by prompt length (less padding); outputs keep the input order. With
    ``decoding.num_samples > 1`` each prompt is answered that many times (ids get a ``#k``
    suffix). Timings are per batch: every row of a batch shares its clock.
    """
    eos_ids = [tok.eos_token_id]
    items = answer_items(tok, records, decoding)
    torch.manual_seed(decoding.seed)
    decoded = decode(
        model,
        tok,
        [item.ids for item in items],
        reset_id,
        decoding_config(tok, reset_id, decoding),
        max_resets=decoding.max_resets,
        batch_size=decoding.batch_size,
    )
    records = [
        describe(item, d.new_ids, tok, reset_id, eos_ids, d, decoding.max_new_tokens)
        for item, d in zip(items, decoded, strict=True)
    ]
    new = sum(r["tokens_generated"] for r in records)
    jobstats.count("forward", new, new)  # the prompts' positions: counted by decode
    return records


@dataclass(frozen=True)
class Clock:
    """When each new token of a batch existed (``times``, from ``t0``), and the batch's size."""

    times: list[float]
    t0: float
    batch_size: int


@dataclass(frozen=True)
class Decoded(Clock):
    """One row's new token ids, with its batch's per-token clock (timings are per batch)."""

    new_ids: list[int]


def decode(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    rows: Sequence[Sequence[int]],
    reset_id: int | None,
    gen_cfg: GenerationConfig,
    *,
    max_resets: int | None,
    batch_size: int,
    desc: str = "generate",
) -> list[Decoded]:
    """The one HF decode loop: prompt id rows batched shortest first (less padding), left
    padded after the prefix the batch shares (computed once), with the [RESET] cap; results in
    input order. ``reset_id=None`` is a model without [RESET] (a judge model): no cap.
    """
    device = next(model.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    results: dict[int, Decoded] = {}
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
        idx = order[start : start + batch_size]
        shared = shared_prefix([rows[i] for i in idx])
        window = sliding_window(model.config)
        if window is not None and window < max(len(rows[i]) for i in idx) + gen_cfg.max_new_tokens:
            # A sliding window counts cache slots: padding after the prefix would lie inside a
            # short row's window and hide real tokens from it. Left padding is exact.
            shared = 0
        # Prompt positions the model computes (the shared prefix once); generated ones are
        # counted by the caller, which knows where each answer ends.
        jobstats.count("forward", sum(len(rows[i]) for i in idx) - shared * (len(idx) - 1), 0)
        batch = left_pad_batch(tok, [list(rows[i]) for i in idx], device, keep=shared)
        procs = logits_processors(gen_cfg)
        if reset_id is not None and max_resets is not None:
            procs.append(ResetCapProcessor(reset_id, max_resets, batch["input_ids"].shape[1]))
        t0 = time.perf_counter()
        new_ids, times = decode_batch(model, batch, gen_cfg, procs, shared=shared)
        for row, i in enumerate(idx):
            results[i] = Decoded(times, t0, len(idx), new_ids[row])
    return [results[i] for i in range(len(rows))]


def logits_processors(gen_cfg: GenerationConfig) -> LogitsProcessorList:
    """The processors ``model.generate`` builds for the settings :func:`generation_config`
    sets, in its order: the sequence bias, then (sampling) temperature and top-p; top-k is off.
    """
    supported = {"sequence_bias", "temperature", "top_p", "top_k", "do_sample"}
    extra = {
        k: v
        for k, v in gen_cfg.to_diff_dict().items()
        if k not in supported | {"max_new_tokens", "eos_token_id", "pad_token_id"}
        and not k.startswith("_")
        and k != "transformers_version"
    }
    if extra:
        raise ValueError(f"decode supports no generation settings beyond these: {sorted(extra)}")
    procs = LogitsProcessorList()
    if gen_cfg.sequence_bias:
        procs.append(SequenceBiasLogitsProcessor(gen_cfg.sequence_bias))
    if gen_cfg.do_sample:
        if gen_cfg.temperature is not None and gen_cfg.temperature != 1.0:
            procs.append(TemperatureLogitsWarper(gen_cfg.temperature))
        if gen_cfg.top_p is not None and gen_cfg.top_p < 1.0:
            procs.append(TopPLogitsWarper(gen_cfg.top_p))
    return procs


@torch.no_grad()
def decode_batch(
    model: PreTrainedModel,
    batch: dict[str, torch.Tensor],
    gen_cfg: GenerationConfig,
    procs: LogitsProcessorList,
    shared: int = 0,
) -> tuple[list[list[int]], list[float]]:
    """Greedy or sampled decoding of one left-padded batch that drops each row from the batch
    once it has ended: each row's new ids (up to its EOS, included) and the wall time at which
    each step's tokens existed.

    Written here rather than calling ``model.generate`` because ``generate`` decodes a static
    batch: a row that has ended keeps being computed (as padding) until the batch's longest row
    ends, and at this project's answer lengths (most answers a third of ``max_new_tokens``, a
    few truncated) that is more than half of the decoding work. vLLM schedules rows
    continuously but costs tens of seconds to start on a CPU. Per step this does what
    ``generate``'s sampling loop does (position ids from the attention mask, the processors on
    float32 logits, argmax or a multinomial draw); with no row ended early the two are
    token-identical (tests/test_generation.py checks it against ``generate``).

    ``shared``: the batch's rows begin with the same ``shared`` ids and are padded after them
    (:func:`left_pad_batch` with ``keep``). Those are run once, at batch size one, and their
    keys and values copied to every row: at this project's prompts the chat template's system
    turn is more than half of each prompt, and prefill about 40% of a job's decoding time.
    transformers' ``generate`` has no such option (vLLM's prefix caching does the same).
    """
    ids, mask = batch["input_ids"], batch["attention_mask"]
    eos_ids = gen_cfg.eos_token_id
    eos_ids = [eos_ids] if isinstance(eos_ids, int) else list(eos_ids or [])
    eos = torch.tensor(eos_ids, dtype=torch.long, device=ids.device)
    alive = list(range(ids.shape[0]))  # batch row -> input row
    new: list[list[int]] = [[] for _ in alive]
    times: list[float] = []
    cache = DynamicCache(config=model.config)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # as generate: left padding
    step_ids = ids
    if shared:
        model(
            input_ids=ids[:1, :shared],
            attention_mask=mask[:1, :shared],
            position_ids=positions[:1, :shared],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        cache.batch_repeat_interleave(ids.shape[0])
        step_ids, positions = ids[:, shared:], positions[:, shared:]
    for _ in range(gen_cfg.max_new_tokens):
        logits = (
            model(
                input_ids=step_ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            .logits[:, -1]
            .to(torch.float32)
        )
        scores = procs(ids, logits)
        if gen_cfg.do_sample:
            nxt = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            nxt = torch.argmax(scores, dim=-1)
        times.append(time.perf_counter())
        for row, token in zip(alive, nxt.tolist(), strict=True):
            new[row].append(token)
        ids = torch.cat([ids, nxt[:, None]], dim=-1)
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
        ended = torch.isin(nxt, eos)
        if bool(ended.any()):
            keep = (~ended).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            cache.batch_select_indices(keep)
            ids, mask, nxt = ids[keep], mask[keep], nxt[keep]
            alive = [alive[k] for k in keep.tolist()]
        step_ids = nxt[:, None]
        positions = mask.sum(-1, keepdim=True) - 1
    return new, times


def describe(
    item: Item,
    new_ids: list[int],
    tok: PreTrainedTokenizerBase,
    reset_id: int,
    eos_ids: Sequence[int],
    clock: Clock,
    max_new_tokens: int,
) -> dict[str, Any]:
    """The generation record (fields listed in docs/outputs.md), from one row's new token ids.

    ``clock`` gives when each new token existed (the HF backend's per-batch clock); a backend
    without one passes an empty clock and fills the timing fields itself.
    """
    rec, times, t0 = item.rec, clock.times, clock.t0
    s = split_generation(new_ids, reset_id, eos_ids)
    n = len(s.generated)
    first_visible = s.reset_positions[-1] + 1 if s.reset_positions else 0

    def at(pos: int) -> float | None:
        return round(times[pos] - t0, 6) if 0 <= pos < len(times) and pos < n else None

    last = min(n if s.ended else n - 1, len(times) - 1)
    return {
        "id": rec["id"] if item.sample is None else f"{rec['id']}#{item.sample}",
        "prompt_id": rec["id"],
        "prompt": rec["prompt"],
        "harmful": bool(rec.get("harmful", True)),
        "prefill": rec.get("prefill", ""),
        "prefill_tokens": item.n_prefill,
        "raw": tok.decode(s.generated, skip_special_tokens=False),
        "visible": tok.decode(s.visible, skip_special_tokens=True),
        "reset": bool(s.reset_positions),
        "n_resets": len(s.reset_positions),
        "reset_positions": s.reset_positions,
        "tokens_generated": n,
        "tokens_visible": len(s.visible),
        "truncated": not s.ended and n >= max_new_tokens,
        "time_to_first_token_s": at(0),
        "time_to_first_visible_token_s": at(first_visible),
        "total_time_s": round(times[last] - t0, 6) if times and last >= 0 else 0.0,
        "batch_size": clock.batch_size,
    }
