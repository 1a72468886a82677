"""Decoding overhead of backtracking: ``generate_records`` against plain ``model.generate``.

    snakemake --cores all results/models/smollm2-135m/base     # the base model, once
    python tools/benchmark_decode.py --model results/models/smollm2-135m/base
    python tools/benchmark_decode.py --model DIR --prompts 32 --batch-size 16 \\
        --max-new-tokens 48 --repeats 7 --threads 1 --json results/bench_decode.json
    python tools/benchmark_decode.py --precision bf16       # the model in bf16, as auto loads it

Why: the backtracking decode (``backtrack.generate.hf.generate_records``: the batched decoder
``decode`` with the ``[RESET]`` bias through ``sequence_bias``, the max-resets logits
processor, the per-token clock, the split on token ids and the record) should cost at most 5%
more per generated token than the same decoder with none of backtracking's pieces.

What is measured, and how the two are made comparable:

* Same model object, prompts (rendered with the chat template), batch size, max new tokens and
  greedy decoding. The plain side tokenises the prompts as generate_records does, then runs
  the same ``decode`` (continuous batching: ended rows leave, waiting rows take their places)
  with the same ``GenerationConfig`` minus ``sequence_bias``, no logits processor and no
  reset cap, then decodes the new tokens. The backtracking side
  is one ``generate_records`` call (every piece included: bias, cap, clock, split, two decodes
  and the record per row). ``--plain generate`` makes the plain side transformers'
  ``model.generate`` instead (which decodes ended rows as padding until the batch's longest row
  ends): the ratio is then backtracking's decode against what a plain HF user runs.
* Equal work: greedy decoding of the same model gives the same tokens on both sides unless
  ``[RESET]`` is emitted (a base model never emits it; the bias is negative by default, so it
  cannot add one). The script checks that every row's tokens agree (decoded up to EOS) and that
  no ``[RESET]`` was emitted, and otherwise says the ratio is not comparable and exits with
  status 1. Per-token times divide by the same token count (generated tokens up to EOS, summed
  over prompts), so the ratio of per-token times is the ratio of times.
* Interleaved repeats: within a repeat every batch runs on both sides back to back, which side
  goes first alternating from batch to batch (a shared machine's load then falls on both alike),
  after one untimed warm-up batch of each. The ratio is taken per repeat (sums over its batches)
  and the median over repeats reported. Process CPU time is reported beside wall time: other
  load skews the wall clock more than CPU time (with 1 thread).
* Then each piece generate_records adds per decoding step (the clock, the reset cap,
  ``sequence_bias``) is timed alone on tensors of the real shapes, beside one decode step of
  the model: a load-independent bound on the overhead, to read next to the noisy ratio (the
  fastest of 5 blocks of calls, less the cost of cloning the scores; 0.0 = below resolution).
* ``--reset-bias`` defaults to -5.0 (the paper's knob value), so the ``sequence_bias`` processor
  is in the measured path (a bias of 0 leaves it out). tqdm's bar is disabled for readable output.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")

import torch
import transformers
from backtrack.bench import fastest, rotated, timed
from backtrack.generate.hf import (
    decode,
    generate_records,
    generation_config,
    left_pad_batch,
)
from backtrack.models.base import load_model, load_tokenizer, reset_token_id
from backtrack.models.chat import prompt_ids
from backtrack.models.precision import Precision
from backtrack.settings import Decoding

ROOT = Path(__file__).resolve().parents[1]


def plain_generate(
    model: Any,
    tok: Any,
    records: list[dict[str, Any]],
    *,
    max_new_tokens: int,
    batch_size: int,
    system: str | None = None,
    engine: str = "decode",
) -> list[dict[str, Any]]:
    """The prompts generate_records answers, decoded with nothing of backtracking added: by
    ``decode`` (the decoder generate_records uses) or by ``model.generate`` (static batches of
    the prompts sorted by length)."""
    device = next(model.parameters()).device
    cfg = generation_config(tok, -1, max_new_tokens)  # no bias: sequence_bias is None
    items = [prompt_ids(tok, r["prompt"], system) for r in records]
    if engine == "decode":
        decoded = decode(model, tok, items, None, cfg, max_resets=None, batch_size=batch_size)
        new = [d.new_ids for d in decoded]
        texts = tok.batch_decode(new, skip_special_tokens=True)
        return [{"ids": n, "text": t} for n, t in zip(new, texts, strict=True)]
    order = sorted(range(len(items)), key=lambda i: len(items[i]))
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = left_pad_batch(tok, [items[i] for i in idx], device)
        width = batch["input_ids"].shape[1]
        with torch.no_grad():
            new = model.generate(**batch, generation_config=cfg)[:, width:].tolist()
        texts = tok.batch_decode(new, skip_special_tokens=True)
        for row, i in enumerate(idx):
            out[i] = {"ids": new[row], "text": texts[row]}
    return [out[i] for i in range(len(items))]


def _until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos)] if eos in ids else ids


def _batches(tok: Any, records: list[dict[str, Any]], batch_size: int) -> list[list[dict]]:
    """The batches generate_records forms (records sorted by prompt length, then cut)."""
    order = sorted(records, key=lambda r: len(prompt_ids(tok, r["prompt"])))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def measure(
    model: Any,
    tok: Any,
    reset_id: int,
    records: list[dict[str, Any]],
    *,
    batch_size: int,
    max_new_tokens: int,
    repeats: int,
    reset_logit_bias: float = -5.0,
    max_resets: int | None = 1,
    warmup: bool = True,
    plain_engine: str = "decode",
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Interleaved timed repeats of both sides; per-repeat and median per-token times.

    Interleaving is per batch: each batch of prompts (the batches generate_records would form)
    runs on both sides back to back, the order alternating from batch to batch and repeat to
    repeat, so that load from other processes falls on both sides alike. A repeat's time per side
    is the sum over its batches. Returns ``{"repeats": [...], "median_ratio",
    "median_cpu_ratio", "tokens", "resets", "identical"}``; each repeat has wall and CPU seconds
    per side, milliseconds per generated token per side and the ratio backtrack / plain.
    """
    batches = _batches(tok, records, batch_size)

    def plain(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return plain_generate(
            model,
            tok,
            recs,
            max_new_tokens=max_new_tokens,
            batch_size=len(recs),
            engine=plain_engine,
        )

    def backtrack(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        decoding = Decoding(
            max_new_tokens, len(recs), reset_logit_bias=reset_logit_bias, max_resets=max_resets
        )
        return generate_records(model, tok, recs, reset_id, decoding)

    if warmup:
        plain(batches[0])
        backtrack(batches[0])
    rows = []
    identical, resets, tokens, k = True, 0, 0, 0
    for r in range(repeats):
        t = {"plain": [0.0, 0.0], "backtrack": [0.0, 0.0]}
        tokens = 0
        for recs in batches:
            sides = rotated(("plain", "backtrack"), k)
            k += 1
            outs: dict[str, Any] = {}
            for side in sides:
                fn = plain if side == "plain" else backtrack
                res, wall, cpu = timed(functools.partial(fn, recs))
                outs[side] = res
                t[side][0] += wall
                t[side][1] += cpu
            p, b = outs["plain"], outs["backtrack"]
            resets += sum(rec["n_resets"] for rec in b) + sum(reset_id in x["ids"] for x in p)
            plain_ids = [_until_eos(x["ids"], tok.eos_token_id) for x in p]
            identical = identical and [len(i) for i in plain_ids] == [
                rec["tokens_generated"] for rec in b
            ]
            identical = identical and [
                tok.decode(i, skip_special_tokens=False) for i in plain_ids
            ] == [rec["raw"] for rec in b]
            tokens += sum(rec["tokens_generated"] for rec in b)
        n = max(tokens, 1)
        rows.append(
            {
                "repeat": r,
                "tokens": tokens,
                "plain_s": t["plain"][0],
                "backtrack_s": t["backtrack"][0],
                "plain_cpu_s": t["plain"][1],
                "backtrack_cpu_s": t["backtrack"][1],
                "plain_ms_per_token": 1e3 * t["plain"][0] / n,
                "backtrack_ms_per_token": 1e3 * t["backtrack"][0] / n,
                "ratio": t["backtrack"][0] / t["plain"][0],
                "cpu_ratio": t["backtrack"][1] / max(t["plain"][1], 1e-9),
            }
        )
        if progress:
            progress(rows[-1])
    return {
        "repeats": rows,
        "median_ratio": statistics.median(x["ratio"] for x in rows) if rows else None,
        "median_cpu_ratio": statistics.median(x["cpu_ratio"] for x in rows) if rows else None,
        "tokens": tokens,
        "resets": resets,
        "identical": identical,
    }


def profile_pieces(
    model: Any,
    tok: Any,
    reset_id: int,
    *,
    batch_size: int,
    width: int,
    reset_logit_bias: float = -5.0,
    calls: int = 200,
) -> dict[str, float]:
    """Microseconds per decoding step of each piece generate_records adds to ``generate``,
    called in isolation on tensors of the real shapes (batch x vocabulary scores), beside the
    model's own forward step at that batch size. Independent of machine load to first order,
    unlike the end-to-end ratio.
    """
    from backtrack.generate.hf import ResetCapProcessor
    from transformers.generation.logits_process import SequenceBiasLogitsProcessor

    vocab = model.get_output_embeddings().weight.shape[0]
    ids = torch.randint(0, vocab - 1, (batch_size, width))
    scores = torch.randn(batch_size, vocab)
    pieces = {
        "clock (time.perf_counter per step)": lambda ids, scores: time.perf_counter(),
        "ResetCapProcessor": ResetCapProcessor(reset_id, 1, width // 2),
        "sequence_bias": SequenceBiasLogitsProcessor({(reset_id,): reset_logit_bias}),
    }
    out: dict[str, float] = {}
    clone = fastest(scores.clone, 5, calls)  # seconds per call, robust to other load
    for name, piece in pieces.items():
        piece(ids, scores.clone())  # the first call builds any cached tensors
        per_call = fastest(lambda p=piece: p(ids, scores.clone()), 5, calls)
        out[name] = 1e6 * max(per_call - clone, 0.0)
    with torch.no_grad():
        cache = model(
            input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True
        ).past_key_values
        step = {
            "input_ids": ids[:, -1:],
            "attention_mask": torch.ones(batch_size, width + 1, dtype=torch.long),
        }
        times = []
        for _ in range(5):
            times.append(timed(lambda: model(**step, past_key_values=cache, use_cache=True))[1])
            cache.crop(-1)
    out["model forward, one decode step"] = 1e6 * min(times)
    return out


def load_prompts(source: str, n: int) -> list[dict[str, Any]]:
    """The first n prompts of AdvBench (pyrit) or of the project's benign prompts."""
    if source == "benign":
        from backtrack.data.benign import benign_prompts

        recs = benign_prompts()
    else:
        from backtrack.data.sources import load_harmful

        recs = load_harmful(source)
    if n > len(recs):
        raise SystemExit(f"--prompts {n}: {source} has only {len(recs)}")
    return recs[:n]


HEAD = (
    f"{'rep':>3} {'tokens':>6} {'plain ms/tok':>12} {'bt ms/tok':>10} {'ratio':>6} {'cpu ratio':>9}"
)


def row_line(x: dict[str, Any]) -> str:
    return (
        f"{x['repeat']:>3} {x['tokens']:>6} {x['plain_ms_per_token']:>12.3f} "
        f"{x['backtrack_ms_per_token']:>10.3f} {x['ratio']:>6.3f} {x['cpu_ratio']:>9.3f}"
    )


def summary(result: dict[str, Any]) -> str:
    return (
        f"median ratio (wall) {result['median_ratio']:.4f}   "
        f"median ratio (CPU) {result['median_cpu_ratio']:.4f}   "
        f"resets emitted {result['resets']}   identical tokens {result['identical']}"
    )


def table(result: dict[str, Any]) -> str:
    """Per-repeat milliseconds per generated token on each side, their ratio, the medians."""
    return "\n".join([HEAD, *map(row_line, result["repeats"]), summary(result)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "results/models/smollm2-135m/base"))
    ap.add_argument("--source", default="advbench", help="advbench, donotanswer, harmbench, benign")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reset-bias", type=float, default=-5.0)
    ap.add_argument("--max-resets", type=int, default=1)
    ap.add_argument("--reset-token", default="[RESET]")
    ap.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        default="fp32",
        help="dtype the model is loaded in (the workflow's precision setting)",
    )
    ap.add_argument(
        "--plain",
        choices=("decode", "generate"),
        default="decode",
        help="the plain side's decoder: the same as backtracking's, or transformers' generate",
    )
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.model)
    model = load_model(args.model, Precision.resolve(args.precision))
    rid = reset_token_id(tok, args.reset_token)
    records = load_prompts(args.source, args.prompts)
    print(
        f"model {args.model}  prompts {args.prompts} ({args.source})  batch {args.batch_size}  "
        f"max_new_tokens {args.max_new_tokens}  threads {args.threads}  plain side "
        f"{args.plain}  reset bias "
        f"{args.reset_bias}  max_resets {args.max_resets}  {model.dtype}  "
        f"torch {torch.__version__}  "
        f"transformers {transformers.__version__}  {platform.processor() or platform.machine()}"
    )
    print(HEAD, flush=True)
    result = measure(
        model,
        tok,
        rid,
        records,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        repeats=args.repeats,
        reset_logit_bias=args.reset_bias,
        max_resets=args.max_resets,
        progress=lambda x: print(row_line(x), flush=True),
        plain_engine=args.plain,
    )
    print(summary(result), flush=True)
    width = max(len(prompt_ids(tok, r["prompt"])) for r in records) + args.max_new_tokens // 2
    pieces = profile_pieces(
        model, tok, rid, batch_size=args.batch_size, width=width, reset_logit_bias=args.reset_bias
    )
    step = pieces.pop("model forward, one decode step")
    print(f"per decoding step, batch {args.batch_size}, {width} tokens of context:")
    print(f"  {'model forward, one decode step':<34} {step:>10.1f} us")
    for name, us in pieces.items():
        print(f"  {name:<34} {us:>10.1f} us  ({100 * us / step:.3f}% of a step)")
    result["pieces_us"] = pieces | {"model_step": step}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, **result}))
    if result["resets"] or not result["identical"]:
        print(
            "not comparable: [RESET] was emitted or the tokens differ; use a base model",
            file=sys.stderr,
        )
        return 1
    ratio = result["median_ratio"]
    print(f"overhead {100 * (ratio - 1):+.1f}% per generated token (target <= +5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
