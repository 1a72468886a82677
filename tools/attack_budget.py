"""Attack success rate against budget: how many steps an optimising attack needs per prompt.

    python tools/attack_budget.py --run-dir . --model smollm2-135m --method baseline --stage sft \
        --attack gcg --n 8 --steps 60 --out docs/attack-budget/gcg_baseline_sft.csv
    python tools/attack_budget.py --plot docs/attack-budget/*.csv --figure docs/attack-budget.png

Why: Table 2's budgets are cut to fit a CPU, and at them no attack succeeds on any model, so the
robustness claims cannot be read. This measures steps-to-success on a few prompts with a large
budget, the attack run exactly as the workflow runs it (``backtrack.attacks.runner``: the
config's ``attacks.<attack>`` settings, the deployed decoding, the label judge as the early-stop
check), except that the success check runs every step (``eval_every: 1``) and there is no
wall-clock cap. An attack that stops on success at step s would stop there under any budget of
at least s steps (the search is seeded per prompt), so one run per prompt gives the whole curve:
success rate at budget b = share of prompts that succeeded by step b. Under the workflow's
``eval_every`` a success between two checks is seen only if the suffix still works at the next
check, so the curve is an upper bound for a coarser ``eval_every``.

The CSV has one row per prompt (``id``, ``stopped``, ``steps``, ``seconds``, ``check_unsafe`` of
the final message, ``final_loss``); ``--plot`` draws success rate against steps for every CSV
given, and prints the budget at which each reaches 25%, 50% and its maximum.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import yaml


def measure(args: argparse.Namespace) -> pd.DataFrame:
    """Run the attack on ``--n`` prompts of the run's attack set (``attacks.dataset``, from
    ``--skip`` on; the workflow attacks the first ``attacks.n``), targets as the workflow makes
    them ("Sure, here is ..."), and time each prompt."""
    import torch
    from backtrack.attacks.runner import ATTACKS, Evaluator, attack_one
    from backtrack.config import validate_config
    from backtrack.data.targets import sure_here_target
    from backtrack.io import read_jsonl
    from backtrack.judge.registry import make_judge
    from backtrack.models.base import load_model, load_tokenizer, reset_token_id
    from backtrack.models.precision import Precision
    from backtrack.plan import attack_params, decoding_kwargs
    from backtrack.settings import Decoding
    from snakemake.utils import update_config

    torch.set_num_threads(args.threads)
    run = Path(args.run_dir)
    config = yaml.safe_load((run / args.config).read_text())
    for extra in args.configfile:  # merged key by key, as snakemake merges --configfile
        update_config(config, yaml.safe_load(Path(extra).read_text()))
    validate_config(config)
    params = attack_params(config, args.attack)  # as the workflow's attack jobs get them
    params.update(steps=args.steps, eval_every=1, max_seconds=None)
    if args.attack == "adaptive":
        rounds = -(-args.steps // params["adaptive"]["steps_per_round"])
        params["adaptive"] = dict(params["adaptive"], max_rounds=rounds)
    model_dir = run / "results/models" / args.model / args.method / f"seed{args.seed}" / args.stage
    tok = load_tokenizer(model_dir)
    precision = Precision.resolve(config["precision"])
    model = load_model(model_dir, precision)
    check = config["pool"]["label_judge"]
    judge = make_judge(
        check["name"], check["params"], reset_token=config["reset_token"], precision=precision
    )
    decoding = Decoding.from_config(
        decoding_kwargs(config["generation"]), system=config["system_prompt"], seed=config["seed"]
    )
    ev = Evaluator(model, tok, reset_token_id(tok, config["reset_token"]), decoding, judge)
    for p in model.parameters():
        p.requires_grad_(False)
    attacker = ATTACKS[args.attack](params, ev, config["seed"])
    prompts = read_jsonl(run / "results/data/eval" / f"{config['attacks']['dataset']}.jsonl")
    chosen = prompts[args.skip : args.skip + args.n]  # the attack's targets are the first n
    records = [{**p, "target": sure_here_target(p["prompt"])} for p in chosen]
    rows = []
    for rec in records:
        t0 = time.perf_counter()
        line = attack_one(args.attack, attacker, rec, ev)
        rows.append(
            {
                "id": rec["id"],
                "attack": args.attack,
                "model": f"{args.method}/{args.stage}",
                "stopped": line["stopped"],
                "steps": line["steps"],
                "seconds": round(time.perf_counter() - t0, 1),
                "check_unsafe": line["check_unsafe"],
                "final_loss": round(line["loss"], 4),
                "max_steps": args.steps,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return pd.DataFrame(rows)


def curve(df: pd.DataFrame) -> pd.Series:
    """Success rate by step budget 0..max_steps (a success at step s counts from s on)."""
    budget = int(df["max_steps"].max())
    won = df.loc[df["stopped"] == "success", "steps"]
    return pd.Series(
        [(won <= b).sum() / len(df) for b in range(budget + 1)], index=range(budget + 1)
    )


def plot(files: list[str], figure: str) -> None:
    """Success rate against steps, one line per CSV; prints where each crosses 25% and 50%."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for f in files:
        df = pd.read_csv(f)
        c = curve(df)
        label = f"{df['attack'].iloc[0]} on {df['model'].iloc[0]} (n={len(df)})"
        ax.step(c.index, 100 * c.values, where="post", label=label)
        reach = {q: next((int(b) for b, v in c.items() if v >= q), None) for q in (0.25, 0.5)}
        secs = df["seconds"].sum() / max(1, df["steps"].sum())
        print(
            f"{label}: {100 * c.iloc[-1]:.0f}% by step {c.index[-1]}; 25% at step {reach[0.25]}, "
            f"50% at step {reach[0.5]}; {secs:.1f} s per step (checks included)"
        )
    ax.set_xlabel("attack steps per prompt (GCG steps; AutoDAN generations)")
    ax.set_ylabel("success rate, % of prompts (label judge)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run-dir", default=".", help="a workflow directory with trained models")
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--configfile", nargs="*", default=[], help="overlays, as snakemake's")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--method", default="baseline")
    ap.add_argument("--seed", type=int, default=0, help="the checkpoint's training seed")
    ap.add_argument("--stage", default="sft")
    ap.add_argument("--attack", choices=["gcg", "autodan", "adaptive"], default="gcg")
    ap.add_argument("--n", type=int, default=8, help="prompts (the first n attack targets)")
    ap.add_argument("--skip", type=int, default=0, help="start at this target")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="CSV to write (one row per prompt)")
    ap.add_argument("--plot", nargs="*", help="draw these CSVs instead of measuring")
    ap.add_argument("--figure", default="attack_budget.png")
    args = ap.parse_args()
    if args.plot:
        plot(args.plot, args.figure)
        return
    df = measure(args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out, index=False)
    won = df[df["stopped"] == "success"]
    print(f"{len(won)}/{len(df)} succeeded; steps to success: {sorted(won['steps'].tolist())}")


if __name__ == "__main__":
    main()
