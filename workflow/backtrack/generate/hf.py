"""Batched HF generation with backtracking.

The discarded prefix stays in the context (it is what the model was trained on); the visible
answer is what follows the last ``[RESET]``, split on token ids, never on decoded text.
"""

from __future__ import annotations

import time
from collections import deque
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
    in front and the padding goes after them, so that :func:`decode` computes them once.
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

    Outputs keep the input order. With ``decoding.num_samples > 1`` each prompt is answered
    that many times (ids get a ``#k`` suffix). Each row's timings start when it entered the
    batch (:func:`decode`).
    """
    return generate_sets(model, tok, [records], reset_id, decoding)[0]


def generate_sets(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    sets: list[list[dict[str, Any]]],
    reset_id: int,
    decoding: Decoding,
) -> list[list[dict[str, Any]]]:
    """:func:`generate_records` for several sets of records with the same decoding settings.

    Greedy answers of all sets are decoded in one stream, so that a small set fills the
    places a larger one leaves (a job that writes a checkpoint's evaluation sets: 0.80x the
    CPU time of one stream per set, measured on Table 1's four plain sets). Which rows share a
    batch changes only bf16 rounding. Sampled sets are decoded one by one, each from
    ``decoding.seed``, so that a set's samples do not depend on which other sets its job
    answers.
    """
    if decoding.do_sample and len(sets) > 1:
        return [generate_sets(model, tok, [one], reset_id, decoding)[0] for one in sets]
    eos_ids = [tok.eos_token_id]
    items = [answer_items(tok, records, decoding) for records in sets]
    flat = [item for group in items for item in group]
    torch.manual_seed(decoding.seed)
    decoded = decode(
        model,
        tok,
        [item.ids for item in flat],
        reset_id,
        decoding_config(tok, reset_id, decoding),
        max_resets=decoding.max_resets,
        batch_size=decoding.batch_size,
    )
    described = [
        describe(item, d.new_ids, tok, reset_id, eos_ids, d, decoding.max_new_tokens)
        for item, d in zip(flat, decoded, strict=True)
    ]
    new = sum(r["tokens_generated"] for r in described)
    jobstats.count("forward", new, new)  # the prompts' positions: counted by decode
    out, start = [], 0
    for group in items:
        out.append(described[start : start + len(group)])
        start += len(group)
    return out


@dataclass(frozen=True)
class Clock:
    """When each new token of a row existed (``times``, from ``t0``: the start of the step that
    let the row into the batch), and how many rows the batch held after letting it in."""

    times: list[float]
    t0: float
    batch_size: int


@dataclass(frozen=True)
class Decoded(Clock):
    """One row's new token ids, with its clock."""

    new_ids: list[int]


@torch.no_grad()
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
    """The one HF decode loop: greedy or sampled decoding of prompt id rows, with the [RESET]
    cap, at most ``batch_size`` rows at a time; results in input order. ``reset_id=None`` is a
    model without [RESET] (a judge model): no cap.

    Rows are decoded shortest prompt first and batched continuously: a row leaves the batch
    once it ends (EOS or ``max_new_tokens``), and once three quarters of the places are free
    waiting rows take them, their prefill run beside the others' decoding step and their keys
    and values joined to the batch's cache (:class:`Batch`). Written here rather than
    calling ``model.generate`` because ``generate`` decodes a static batch: an ended row is
    computed as padding until the batch's longest row ends, and a batch's last steps run a few
    rows at a time; at this project's answer lengths (most a third of ``max_new_tokens``) that
    was more than half of the decoding work. transformers' own continuous batching
    (``generate_batch``, on its paged cache) builds its logits processors from the generation
    config alone, so not the per-row [RESET] cap; vLLM schedules the same way but costs tens of
    seconds to start on a CPU. Per step this does what
    ``generate``'s sampling loop does (position ids from the attention mask, the processors on
    float32 logits, argmax or a multinomial draw): rows decoded together or one by one get the
    same tokens up to float rounding (tests/test_generation.py checks it in float32).

    The prefix all rows share (the chat template's system turn, :func:`shared_prefix`) is run
    once at batch size one and its keys and values copied to each row let in. A model with
    sliding-window layers (Gemma-3) lets rows in only into an empty batch: its window counts
    cache slots, so padding between a prefix and a row, or before a row that joins a longer
    batch, would hide real tokens from it.
    """
    device = next(model.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    if not order:
        return []
    window = sliding_window(model.config)
    longest = max(len(r) for r in rows)
    fits = window is None or window >= longest + gen_cfg.max_new_tokens
    prefix = list(rows[0][: shared_prefix(rows)]) if fits else []
    procs = logits_processors(gen_cfg)
    if reset_id is not None and max_resets is not None:
        procs.append(ResetCapProcessor(reset_id, max_resets, 0))  # Batch.generated: no prompt
    refill = window is None
    # Measured on Table 1's sets (docs/benchmarks.md): letting rows in whenever a quarter of
    # the places was free cost more than it saved where most answers run to max_new_tokens
    # (the cache widens to the oldest row's age, and joining copies it); refilling only a
    # batch's tail won in both kinds of set.
    room = max(1, batch_size * 3 // 4)
    compact_at = max(1, batch_size // 16)
    batch = Batch(model, tok, gen_cfg, procs, prefix, device, trim=refill, compact_at=compact_at)
    queue = deque(order)
    results: dict[int, Decoded] = {}
    with tqdm(total=len(order), desc=desc, unit="answer") as bar:
        while queue or batch.live:
            free = batch_size - batch.live
            admit: list[int] = []
            if queue and (not batch.live or (refill and free >= min(room, len(queue)))):
                admit = [queue.popleft() for _ in range(min(free, len(queue)))]
            for i, decoded in batch.step(admit, [list(rows[i]) for i in admit]):
                results[i] = decoded
                bar.update(1)
    return [results[i] for i in range(len(rows))]


class Batch:
    """The rows decoding together: their cache, attention mask and new tokens, one
    :meth:`step` at a time.

    Layout: every row's positions end at the same column (right-aligned). A row let in
    holds the shared prefix, then padding, then its own prompt ids; when it is longer than the
    batch, the batch gets padding on the left instead. Padding is masked, and position ids
    come from the mask (as ``generate`` computes them for left padding), so it changes no
    row's numbers beyond float rounding. Columns no row attends to any more are dropped
    (``trim``; not with sliding-window layers, which count positions themselves).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tok: PreTrainedTokenizerBase,
        gen_cfg: GenerationConfig,
        procs: LogitsProcessorList,
        prefix: list[int],
        device: torch.device,
        trim: bool = True,
        compact_at: int = 1,
    ) -> None:
        self.model, self.tok, self.gen_cfg, self.procs = model, tok, gen_cfg, procs
        self.prefix, self.device, self.trim = prefix, device, trim
        eos = gen_cfg.eos_token_id
        self.eos = torch.tensor(
            [eos] if isinstance(eos, int) else list(eos or []), dtype=torch.long, device=device
        )
        self.rows: list[int] = []  # batch row -> input row
        self.ended: list[bool] = []  # per batch row: ended, waiting for _compact
        self.compact_at = compact_at
        self.new: dict[int, list[int]] = {}
        self.times: dict[int, list[float]] = {}
        self.clock: dict[int, tuple[float, int]] = {}  # t0, batch size when let in
        self.cache: DynamicCache | None = None
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=device)
        self.generated = torch.zeros((0, 0), dtype=torch.long, device=device)
        self.last = torch.zeros((0,), dtype=torch.long, device=device)

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
        """Last-position float32 logits of ``ids``, the newest columns of ``mask``."""
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)[:, -ids.shape[1] :]
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1].to(torch.float32)

    def _prefill(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, DynamicCache]:
        """Run new rows' prompts: their logits, mask and cache. The prefix is computed once per
        call at batch size one and repeated (the same numbers as computing it per row)."""
        keep = len(self.prefix)
        padded = left_pad_batch(self.tok, rows, self.device, keep=keep)
        ids, mask = padded["input_ids"], padded["attention_mask"]
        cache = DynamicCache(config=self.model.config)
        # Prompt positions the model computes (the prefix once); generated ones are counted by
        # the caller, which knows where each answer ends.
        jobstats.count("forward", sum(len(r) for r in rows) - keep * (len(rows) - 1), 0)
        if keep:
            self._forward(ids[:1, :keep], mask[:1, :keep], cache)
            cache.batch_repeat_interleave(len(rows))
        return self._forward(ids[:, keep:], mask, cache), mask, cache

    def _join(self, mask: torch.Tensor, cache: DynamicCache, rows: list[int]) -> None:
        """Append new rows (their prefill's mask and cache) to the batch, right-aligned."""
        if self.cache is None or not self.rows:
            self.cache, self.mask = cache, mask
            self.generated = self.generated.new_zeros((len(rows), self.generated.shape[1]))
            self.rows, self.ended = list(rows), [False] * len(rows)
            return
        old, new = self.mask.shape[1], mask.shape[1]
        width, keep = max(old, new), len(self.prefix)
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            for name in ("keys", "values"):
                a, b = getattr(mine, name), getattr(theirs, name)
                a = _pad_seq(a, width - old, at=0)
                b = _pad_seq(b, width - new, at=keep)
                setattr(mine, name, torch.cat([a, b], dim=0))
        self.mask = torch.cat(
            [_pad_seq(self.mask, width - old, at=0), _pad_seq(mask, width - new, at=keep)]
        )
        pad = self.generated.new_full((len(rows), self.generated.shape[1]), self.tok.pad_token_id)
        self.generated = torch.cat([self.generated, pad])
        self.rows += rows
        self.ended += [False] * len(rows)

    @property
    def live(self) -> int:
        """Rows still decoding (ended rows wait in the batch for :meth:`_compact`)."""
        return len(self.rows) - sum(self.ended)

    def _compact(self) -> None:
        """Take ended rows out of the batch: one copy of the cache for several ended rows."""
        keep = [k for k, e in enumerate(self.ended) if not e]
        if len(keep) < len(self.rows):
            index = torch.tensor(keep, dtype=torch.long, device=self.device)
            if keep:
                assert self.cache is not None
                self.cache.batch_select_indices(index)
            self.rows = [self.rows[k] for k in keep]
            self.mask, self.generated = self.mask[index], self.generated[index]
            self.last = self.last[index]
            self.ended = [False] * len(keep)
        self._trim()

    def step(self, admit: list[int], prompts: list[list[int]]) -> list[tuple[int, Decoded]]:
        """One token for every row, letting ``admit`` (input rows with ``prompts``) in first;
        returns the rows that ended, with their tokens and clocks.

        An ended row stays in the batch (its tokens ignored) until ``compact_at`` rows have
        ended or rows are let in: taking rows out copies the whole cache, which at this
        project's shapes costs about as much as a third of a decoding step.
        """
        t0 = time.perf_counter()
        if admit or sum(self.ended) >= self.compact_at or self.live == 0:
            self._compact()
        logits = []
        if self.rows:
            assert self.cache is not None
            self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=-1)
            logits.append(self._forward(self.last[:, None], self.mask, self.cache))
        if admit:
            first, mask, cache = self._prefill(prompts)
            logits.append(first)
            self._join(mask, cache, admit)
            for i in admit:
                self.new[i], self.times[i], self.clock[i] = [], [], (t0, self.live)
        scores = self.procs(self.generated, torch.cat(logits))
        if self.gen_cfg.do_sample:
            nxt = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            nxt = torch.argmax(scores, dim=-1)
        now = time.perf_counter()
        self.generated = torch.cat([self.generated, nxt[:, None]], dim=-1)
        self.last = nxt
        eos = torch.isin(nxt, self.eos).tolist()
        out = []
        for k, (i, token) in enumerate(zip(self.rows, nxt.tolist(), strict=True)):
            if self.ended[k]:
                continue
            self.new[i].append(token)
            self.times[i].append(now)
            if eos[k] or len(self.new[i]) >= self.gen_cfg.max_new_tokens:
                self.ended[k] = True
                t0_i, size = self.clock.pop(i)
                out.append((i, Decoded(self.times.pop(i), t0_i, size, self.new.pop(i))))
        return out

    def _trim(self) -> None:
        """Drop leading columns that no row attends to (the padding of rows that ended)."""
        if not self.rows:
            self.cache, self.mask = None, self.mask[:, :0]
            self.generated = self.generated[:, :0]
            return
        if not self.trim:  # a sliding-window layer keeps its own count of positions
            return
        used = self.mask.any(dim=0).nonzero()
        first = int(used[0]) if used.numel() else 0
        if first == 0:
            return
        assert self.cache is not None
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
        self.mask = self.mask[:, first:]


def _pad_seq(x: torch.Tensor, n: int, at: int) -> torch.Tensor:
    """``x`` (a mask [rows, seq] or keys/values [rows, heads, seq, dim]) with ``n`` zero
    columns inserted before sequence position ``at``."""
    if n == 0:
        return x
    dim = 1 if x.dim() == 2 else 2
    shape = list(x.shape)
    shape[dim] = n
    zeros = x.new_zeros(shape)
    head, tail = x.narrow(dim, 0, at), x.narrow(dim, at, x.shape[dim] - at)
    return torch.cat([head, zeros, tail], dim=dim)


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

    ``clock`` gives when each new token existed (the HF backend's per-row clock); a backend
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
