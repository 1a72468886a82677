"""Two candidates for faster CPU decoding, measured against ``decode``: torch.compile and
transformers' own continuous batching.

    snakemake --cores all results/models/smollm2-135m/baseline/seed0/sft   # a checkpoint, once
    python tools/benchmark_compile.py            # that checkpoint, 128 AdvBench prompts
    python tools/benchmark_compile.py --variants decode generate_batch --prompts 64

Why: both are the usual ways to bring decoding nearer the matmul floor, and they trade
differently. ``compile`` wraps the backbone's forward in ``torch.compile(dynamic=True)``
(the batch's shape changes every step, so static shapes would recompile each one) and decodes
with ``backtrack.generate.hf.decode`` as a ``generate`` job does; what it costs is paid once
per process, so each variant runs in a fresh process of its own, all of them sharing one new
inductor cache: ``compile-cold`` starts from it empty (a new machine), ``compile`` from what the
variants before it left (every later job, when it follows ``compile-cold``).
``generate_batch`` is transformers' continuous batching (paged attention) on the same prompts.
Per variant: the first call's CPU seconds (with compiling), the median of the next
``--repeats`` calls (steady state), and how many prompts got ``decode``'s tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

VARIANTS = ("decode", "compile-cold", "compile", "generate_batch")


def run_variant(
    model: Any, tok: Any, rows: list[list[int]], variant: str, *, batch_size: int,
    max_new_tokens: int, repeats: int,
) -> dict[str, Any]:  # fmt: skip
    """First-call and steady-state CPU seconds of one variant on ``model`` (modified in place:
    call once per process), and its tokens per prompt."""
    import torch
    from backtrack.bench import timed
    from backtrack.generate.hf import decode, generation_config

    cfg = generation_config(tok, -1, max_new_tokens)
    if variant == "generate_batch":
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        model.set_attn_implementation("paged|sdpa")
        plain = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=cfg.eos_token_id,
            pad_token_id=cfg.pad_token_id,
        )
        cb = ContinuousBatchingConfig(max_requests_per_batch=batch_size)

        def call() -> list[list[int]]:
            out = model.generate_batch(rows, generation_config=plain, continuous_batching_config=cb)
            return [list(out[f"req_{i}"].generated_tokens) for i in range(len(rows))]
    else:
        if variant.startswith("compile"):
            model.model.forward = torch.compile(model.model.forward, dynamic=True)

        def call() -> list[list[int]]:
            got = decode(model, tok, rows, None, cfg, max_resets=None, batch_size=batch_size)
            return [list(d.new_ids) for d in got]

    ids, _, first = timed(call)
    steady = [timed(call)[2] for _ in range(repeats)]
    cpu = statistics.median(steady)
    return {"variant": variant, "first_cpu_s": first, "cpu_s": cpu, "ids": ids}


def child(args: argparse.Namespace) -> dict[str, Any]:
    """This process's one variant (``--one``), on a freshly loaded model."""
    import torch
    from backtrack.models.base import load_model, load_tokenizer
    from backtrack.models.chat import prompt_ids
    from backtrack.models.precision import Precision
    from benchmark_decode import load_prompts  # tools/ is this script's directory

    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.model)
    model = load_model(args.model, Precision.resolve(args.precision))
    rows = [prompt_ids(tok, r["prompt"]) for r in load_prompts(args.source, args.prompts)]
    return run_variant(
        model, tok, rows, args.one, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, repeats=args.repeats,
    )  # fmt: skip


def spawn(argv: list[str], variant: str, cache: str) -> dict[str, Any]:
    """``variant`` in a fresh process with inductor's cache at ``cache``; its JSON result."""
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    cmd = [sys.executable, __file__, *argv, "--one", variant]
    out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--model",
        type=Path,
        default=ROOT / "results/models/smollm2-135m/baseline/seed0/sft",
        help="a prepared model or checkpoint (default: Table 1's baseline SFT checkpoint)",
    )
    ap.add_argument("--source", default="advbench", help="advbench (pyrit) or benign")
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2, help="steady-state calls after the first")
    ap.add_argument("--threads", type=int, default=1, help="1: as each job of a 2-core run")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(child(args)))
        return 0

    passed = list(sys.argv[1:] if argv is None else argv)
    print(
        f"model {args.model}  {args.prompts} {args.source} prompts  batch {args.batch_size}  "
        f"max_new_tokens {args.max_new_tokens}  {args.precision}  threads {args.threads}  "
        f"steady = median of {args.repeats} calls after the first; one fresh process a variant"
    )
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
        res = [spawn(passed, v, cache) for v in args.variants]
    base = next((r for r in res if r["variant"] == "decode"), res[0])
    print(f"{'variant':>14} {'first call CPU s':>16} {'steady CPU s':>12} "
          f"{'steady / decode':>15} {'same tokens':>11}")  # fmt: skip
    for r in res:
        same = sum(a == b for a, b in zip(r["ids"], base["ids"], strict=True))
        print(
            f"{r['variant']:>14} {r['first_cpu_s']:>16.2f} {r['cpu_s']:>12.2f} "
            f"{r['cpu_s'] / base['cpu_s']:>15.3f} {same:>5}/{len(r['ids'])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
