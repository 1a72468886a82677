"""Seconds to success of GCG-family attacks: settings variants side by side on one checkpoint.

    python tools/benchmark_attack_success.py \\
        --checkpoint results/models/smollm2-135m/baseline/seed0/sft --n 6 \\
        --variant ce=loss:ce --variant cw=loss:cw --json results/bench_attack_success.json
    python tools/benchmark_attack_success.py --configfile config.yaml config/attacks.yaml \\
        --checkpoint ... --variant w32=search_width:32 --variant w64=search_width:64,topk:128

Why: seconds per step (tools/benchmark_gcg.py) is not what the budget curves pay for; a search
that needs fewer steps, or cheaper ones, to break a prompt is. Each variant overrides keys of
``attacks.gcg`` (and, with ``--attack adaptive``, ``adaptive.<key>`` of ``attacks.adaptive``;
values parsed as YAML) and runs the graph's own attack code (the attack rule's
``attack_one``: same Evaluator, deployed decoding and ``pool.label_judge`` success check) on
the first ``--n`` prompts of ``attacks.dataset`` with the graph's targets. Prompts run in
prompt-major order (every variant on prompt 1, then prompt 2, ...) so that load on a shared
machine falls on all variants alike.

Printed per variant: successes of n, the median steps and seconds to success over the prompts
it broke, and seconds per success (all seconds spent, failures included, over successes: the
cost of one point on the success curve). One run; medians and ratios, not timed assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("TQDM_DISABLE", "1")  # one line per prompt, not a bar per check

from backtrack.attacks.runner import ATTACKS, Evaluator, attack_one
from backtrack.data.targets import sure_here_target
from backtrack.estimate import load_config
from backtrack.io import read_jsonl
from backtrack.judge.registry import make_judge
from backtrack.models.base import load_model, load_tokenizer
from backtrack.models.precision import Precision
from backtrack.plan import attack_params, decoding_kwargs
from backtrack.settings import Decoding


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """``name=key:value,key:value`` -> (name, overrides of attacks.gcg)."""
    name, _, body = spec.partition("=")
    if not name:
        raise SystemExit(f"--variant {spec!r}: expected NAME=key:value,...")
    out: dict[str, Any] = {}
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition(":")
        if not sep:
            raise SystemExit(f"--variant {spec!r}: {item!r} is not key:value")
        out[key] = yaml.safe_load(value)
    return name, out


def summarise(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Successes, medians over the broken prompts, and seconds per success."""
    won = [t for t in lines if t["check_unsafe"]]
    total = sum(t["attack_seconds"] for t in lines)

    def median(key: str) -> float | None:
        return statistics.median(t[key] for t in won) if won else None

    return {
        "n": len(lines),
        "successes": len(won),
        "median_steps_to_success": median("steps"),
        "median_seconds_to_success": median("attack_seconds"),
        "seconds_total": total,
        "seconds_per_success": total / len(won) if won else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--configfile", nargs="+", default=["config.yaml"], help="merged in order")
    ap.add_argument("--checkpoint", required=True, type=Path, help="a trained model directory")
    ap.add_argument("--attack", choices=["gcg", "adaptive"], default="gcg")
    ap.add_argument(
        "--prompts",
        type=Path,
        default=None,
        help="prompts or targets JSONL (default: results/data/eval/<attacks.dataset>.jsonl, "
        "as the graph's prepare_eval_set writes it); a missing target is built the graph's way",
    )
    ap.add_argument("--n", type=int, default=4, help="prompts (the first n targets)")
    ap.add_argument("--variant", action="append", required=True, help="NAME=key:value,...")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()

    config = load_config(args.configfile)
    variants = dict(parse_variant(v) for v in args.variant)
    prompts = args.prompts or Path(f"results/data/eval/{config['attacks']['dataset']}.jsonl")
    records = [
        {**r, "target": r.get("target") or sure_here_target(r["prompt"])}
        for r in read_jsonl(prompts, required=("id", "prompt"))[: args.n]
    ]
    precision = Precision.resolve(config["precision"])
    tok = load_tokenizer(args.checkpoint)
    model = load_model(args.checkpoint, precision)
    for p in model.parameters():
        p.requires_grad_(False)
    check = config["pool"]["label_judge"]
    judge = make_judge(
        check["name"], check["params"], reset_token=config["reset_token"], precision=precision
    )
    decoding = Decoding.from_config(
        decoding_kwargs(config["generation"]), system=config["system_prompt"], seed=config["seed"]
    )
    reset_id = tok.convert_tokens_to_ids(config["reset_token"])
    attackers = {}
    for name, over in variants.items():
        params = attack_params(config, args.attack)
        # The adaptive attack's own settings sit under "adaptive" (adaptive.reset_weight:2).
        known = set(params) | {f"adaptive.{k}" for k in params.get("adaptive", {})}
        unknown = set(over) - known
        if unknown:
            raise SystemExit(f"--variant {name}: not settings of {args.attack}: {sorted(unknown)}")
        for key, value in over.items():
            if key.startswith("adaptive."):
                params["adaptive"] = {**params["adaptive"], key.split(".", 1)[1]: value}
            else:
                params[key] = value
        # A fresh evaluator per variant: its memo must not hand one variant another's answers.
        ev = Evaluator(model, tok, reset_id, decoding, judge)
        attackers[name] = (ATTACKS[args.attack](params, ev, config["seed"]), ev, params)

    lines: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    for rec in records:
        for name, (attacker, ev, _) in attackers.items():
            t0 = time.perf_counter()
            line = attack_one(args.attack, attacker, rec, ev)
            line["attack_seconds"] = time.perf_counter() - t0
            lines[name].append(line)
            print(
                f"{name:>10} {rec['id']}: {line['stopped']} after {line['steps']} steps, "
                f"{line['attack_seconds']:.0f} s; answer {line['visible'][:60]!r}",
                flush=True,
            )

    report = {name: summarise(ls) for name, ls in lines.items()}
    print("\nvariant     broken  median steps  median s to success  s per success  s total")
    for name, r in report.items():

        def fmt(v: float | None, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        print(
            f"{name:<10} {r['successes']:>3}/{r['n']:<3} "
            f"{fmt(r['median_steps_to_success'], '>12.1f')}  "
            f"{fmt(r['median_seconds_to_success'], '>19.1f')}  "
            f"{fmt(r['seconds_per_success'], '>13.1f')}  {r['seconds_total']:>7.0f}"
        )
    if args.json:
        out = {
            "checkpoint": str(args.checkpoint),
            "attack": args.attack,
            "prompts": [r["id"] for r in records],
            "variants": {name: {"params": attackers[name][2], **report[name]} for name in variants},
            "lines": {
                name: [
                    {k: t[k] for k in ("id", "stopped", "steps", "attack_seconds", "visible")}
                    for t in ls
                ]
                for name, ls in lines.items()
            },
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
