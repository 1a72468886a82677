"""Decoding with each attention implementation: time, prefill, a full batch's step, same tokens?

    snakemake --cores all results/models/smollm2-135m/baseline/seed0/sft   # a checkpoint, once
    python tools/benchmark_attention.py            # that checkpoint, AdvBench, batch 128
    python tools/benchmark_attention.py --model DIR --prompts 128 --batch-size 64 --repeats 3

Why: ``load_model`` runs CPU inference with :mod:`backtrack.models.attention`'s grouped
attention instead of transformers' default SDPA; this shows what that buys and what it changes.
The prompts (AdvBench from pyrit, or the project's benign prompts) go through
``backtrack.generate.hf.decode`` exactly as a ``generate`` job decodes them (greedy, shared
prefix, continuous batching), once per implementation on the same model object, the
implementations taking turns in rotating order within each repeat. Per implementation: wall and
CPU seconds (medians over repeats), the seconds spent in prefill forwards, the median seconds
of a decode step with the batch at least seven-eighths full, and how many prompts got the
first implementation's tokens (bf16 rounding differs between SDPA and the eager arithmetic).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

import torch  # noqa: E402
from backtrack.bench import rotated, timed  # noqa: E402
from backtrack.generate.hf import decode, generation_config  # noqa: E402
from backtrack.models.attention import NAME  # noqa: E402
from backtrack.models.base import load_model, load_tokenizer  # noqa: E402
from backtrack.models.chat import prompt_ids  # noqa: E402
from backtrack.models.precision import Precision  # noqa: E402

IMPLEMENTATIONS = ("sdpa", "eager", NAME)


def decode_once(
    model: Any, tok: Any, rows: list[list[int]], *, batch_size: int, max_new_tokens: int
) -> dict[str, Any]:
    """One greedy decode of ``rows``; its forwards are timed by wrapping ``model.forward``."""
    forwards: list[tuple[int, int, float]] = []  # (rows, positions, seconds)
    inner = model.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = inner(*args, **kwargs)
        ids = kwargs["input_ids"]
        forwards.append((ids.shape[0], ids.shape[1], time.perf_counter() - t0))
        return out

    model.forward = forward
    try:
        cfg = generation_config(tok, -1, max_new_tokens)
        run = lambda: decode(model, tok, rows, None, cfg, max_resets=None, batch_size=batch_size)  # noqa: E731
        decoded, wall, cpu = timed(run)
    finally:
        model.forward = inner
    full = [s for b, n, s in forwards if n == 1 and b * 8 >= 7 * min(batch_size, len(rows))]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "prefill_s": sum(s for _, n, s in forwards if n > 1),
        "full_step_s": statistics.median(full) if full else float("nan"),
        "ids": [d.new_ids for d in decoded],
    }


def measure(
    model: Any,
    tok: Any,
    rows: list[list[int]],
    implementations: list[str],
    *,
    batch_size: int,
    max_new_tokens: int,
    repeats: int,
) -> list[dict[str, Any]]:
    """Medians over ``repeats`` per implementation, and the prompts whose tokens equal the
    first implementation's (from the last repeat)."""
    runs: dict[str, list[dict[str, Any]]] = {i: [] for i in implementations}
    try:
        for r in range(repeats):
            for impl in rotated(implementations, r):
                model.set_attn_implementation(impl)
                runs[impl].append(
                    decode_once(
                        model, tok, rows, batch_size=batch_size, max_new_tokens=max_new_tokens
                    )
                )
    finally:
        model.set_attn_implementation(implementations[-1])
    first = runs[implementations[0]][-1]["ids"]
    out = []
    for impl in implementations:
        med = {
            k: statistics.median(x[k] for x in runs[impl])
            for k in ("wall_s", "cpu_s", "prefill_s", "full_step_s")
        }
        same = sum(a == b for a, b in zip(runs[impl][-1]["ids"], first, strict=True))
        out.append({"attention": impl, **med, "same_tokens": same, "prompts": len(rows)})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--model",
        type=Path,
        default=ROOT / "results/models/smollm2-135m/baseline/seed0/sft",
        help="a prepared model or checkpoint (default: Table 1's baseline SFT checkpoint)",
    )
    ap.add_argument("--source", default="advbench", help="advbench (pyrit) or benign")
    ap.add_argument("--prompts", type=int, default=245)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="1: as each job of a 2-core run")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--attention", nargs="+", default=list(IMPLEMENTATIONS))
    args = ap.parse_args(argv)

    from benchmark_decode import load_prompts  # tools/ is this script's directory

    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.model)
    model = load_model(args.model, Precision.resolve(args.precision))
    rows = [prompt_ids(tok, r["prompt"]) for r in load_prompts(args.source, args.prompts)]
    print(
        f"model {args.model}  {len(rows)} {args.source} prompts  batch {args.batch_size}  "
        f"max_new_tokens {args.max_new_tokens}  {model.dtype}  threads {args.threads}  "
        f"repeats {args.repeats} (medians)"
    )
    res = measure(
        model,
        tok,
        rows,
        args.attention,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        repeats=args.repeats,
    )
    base = res[0]
    print(f"{'attention':>14} {'wall s':>7} {'CPU s':>7} {'CPU/first':>9} {'prefill s':>9} "
          f"{'full step ms':>12} {'same tokens':>11}")  # fmt: skip
    for x in res:
        print(
            f"{x['attention']:>14} {x['wall_s']:>7.2f} {x['cpu_s']:>7.2f} "
            f"{x['cpu_s'] / base['cpu_s']:>9.3f} {x['prefill_s']:>9.2f} "
            f"{1000 * x['full_step_s']:>12.1f} {x['same_tokens']:>5}/{x['prompts']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
