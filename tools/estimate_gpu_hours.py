"""GPU-hours per stage of a config, from model sizes and token counts, and its wall-clock time.

    python tools/estimate_gpu_hours.py                     # config.yaml + config/paper.yaml
    python tools/estimate_gpu_hours.py --markdown          # README-ready table + arithmetic
    python tools/estimate_gpu_hours.py --gpus 8 64         # wall-clock on 8 and on 64 GPUs
    python tools/estimate_gpu_hours.py --configfile config.yaml --params smollm2-135m=134515584

Why: config/paper.yaml sends every stage to a GPU cluster; users need to know what to ask for
before they submit. The arithmetic and its assumptions are in backtrack.estimate; this prints
them: one row per model and stage, the largest job, and the wall-clock time of a greedy
schedule on each number of GPUs. Nothing here runs a model.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from backtrack.estimate import (
    HOUR,
    STARTUP_S,
    Hardware,
    Row,
    estimate,
    load_config,
    plan_jobs,
    schedule,
)

ROOT = Path(__file__).resolve().parents[1]


def fmt_si(x: float) -> str:
    if x == 0:
        return "0"
    exp = math.floor(math.log10(abs(x)))
    return f"{x / 10**exp:.2f}e{exp}"


def fmt_tokens(x: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.0f}"


def fmt_h(x: float) -> str:
    return f"{x:.3g}" if x < 10 else f"{x:.1f}"


def text_table(rows: list[Row]) -> str:
    """Per model and stage: tokens, FLOPs, utilisation, compute / bandwidth / start-up hours."""
    cols = (
        f"{'model':<12} {'stage':<33} {'jobs':>4} {'tokens':>7} {'FLOPs':>8} {'util':>11} "
        f"{'h FLOPs':>8} {'h BW':>7} {'h start':>7} {'GPU-h':>7}  note"
    )
    out, end = [cols], cols.index("GPU-h") + len("GPU-h")
    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model]
        for r in mine:
            out.append(
                f"{r.model:<12} {r.stage:<33} {r.jobs:>4} {fmt_tokens(r.work.tokens):>7} "
                f"{fmt_si(r.work.flops):>8} {r.util:>11} {fmt_h(r.compute_s / HOUR):>8} "
                f"{fmt_h(r.floor_s / HOUR):>7} {fmt_h(r.startup_s / HOUR):>7} "
                f"{fmt_h(r.gpu_hours):>7}  {r.note}"
            )
        total = fmt_h(sum(r.gpu_hours for r in mine))
        out.append(f"{model:<12} {'total':<33}".ljust(end - len(total)) + total)
    total = fmt_h(sum(r.gpu_hours for r in rows))
    out.append("all models".ljust(end - len(total)) + total)
    return "\n".join(out)


def arithmetic(r: Row, hw: Hardware) -> list[str]:
    """One row's arithmetic, term by term, down to its GPU-hours."""
    lines = [f"Arithmetic for `{r.stage}` on {r.model} ({r.note}):", ""]
    lines += [f"- {t}" for t in r.work.terms]
    parts = []
    for flops, util in ((r.work.train, hw.util_train), (r.work.forward, hw.util_forward)):
        if flops:
            parts.append(f"{fmt_si(flops)} / ({hw.peak_flops / 1e12:.0f}e12 × {util})")
    if r.work.decode:
        parts.append(
            f"max({fmt_si(r.work.decode)} / ({hw.peak_flops / 1e12:.0f}e12 × "
            f"{hw.util_decode}), bandwidth floor {r.floor_s:.3g} s)"
        )
    lines.append(
        f"- FLOPs = {fmt_si(r.work.flops)}; GPU-h = ({' + '.join(parts)}) / 3600 s "
        f"= {fmt_h(r.planned_s / HOUR)}, + start-up {fmt_h(r.startup_s / HOUR)} = "
        f"{fmt_h(r.gpu_hours)}"
    )
    return lines


def markdown(rows: list[Row], hw: Hardware, notes: list[str], explain: str) -> str:
    """One table (stages × models: tokens, FLOPs, GPU-h), totals, one row's arithmetic."""
    models = list(dict.fromkeys(r.model for r in rows))
    head = " | ".join(f"{m} tokens | {m} FLOPs | {m} GPU-h" for m in models)
    lines = [f"| stage | {head} | utilisation |", "|---" * (2 + 3 * len(models)) + "|"]
    for stage in dict.fromkeys(r.stage for r in rows):
        cells, util = [], ""
        for m in models:
            r = next((x for x in rows if x.model == m and x.stage == stage), None)
            if r is None:
                cells += ["", "", ""]
                continue
            capped = " (capped)" if "capped" in r.note else ""
            cells += [fmt_tokens(r.work.tokens), fmt_si(r.work.flops), fmt_h(r.gpu_hours) + capped]
            util = r.util
        lines.append(f"| {stage} | {' | '.join(cells)} | {util} |")
    totals = []
    for m in models:
        totals += ["", "", f"**{sum(r.gpu_hours for r in rows if r.model == m):.1f}**"]
    lines.append(f"| **total** | {' | '.join(totals)} | |")
    lines += [
        "",
        f"All models: **{sum(r.gpu_hours for r in rows):.0f} GPU-hours** on {hw.name} "
        f"(peak {hw.peak_flops / 1e12:.0f} TFLOP/s bf16 dense, {hw.bandwidth / 1e12:.2f} TB/s; "
        f"utilisation {hw.util_train:.0%} for training and forward passes, {hw.util_decode:.0%} "
        "for decoding, or decoding's bandwidth floor where that is larger).",
        "",
    ]
    r = next((x for x in rows if x.stage == explain and x.model == models[-1]), rows[0])
    lines += arithmetic(r, hw)
    if notes:
        lines += ["", *[f"- {n}" for n in dict.fromkeys(notes)]]
    return "\n".join(lines)


def schedule_lines(rows: list[Row], gpus: list[int]) -> list[str]:
    """The largest job and the wall-clock time on each number of GPUs."""
    jobs = plan_jobs(rows)
    big = max(jobs, key=lambda j: j.hours)
    long = max(jobs, key=lambda j: j.hours / j.gpus)
    out = [
        f"{len(jobs)} GPU jobs; the largest: {fmt_h(big.hours)} GPU-h ({big.name}, "
        f"{big.gpus} GPU{'s' if big.gpus > 1 else ''}); the longest: "
        f"{fmt_h(long.hours / long.gpus)} h ({long.name}, {long.gpus} GPU"
        f"{'s' if long.gpus > 1 else ''})"
    ]
    for n in gpus:
        out.append(
            f"wall-clock on {n} GPUs: {fmt_h(schedule(jobs, n))} h (greedy schedule, longest "
            "chain first; start-up included)"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--configfile",
        nargs="+",
        default=[str(ROOT / "config.yaml"), str(ROOT / "config/paper.yaml")],
        help="merged in order, as snakemake --configfile does (default: config.yaml + paper)",
    )
    ap.add_argument("--markdown", action="store_true", help="README-ready tables")
    ap.add_argument("--params", nargs="*", default=[], help="ALIAS=N parameter overrides")
    ap.add_argument("--util-train", type=float, default=Hardware.util_train)
    ap.add_argument("--util-decode", type=float, default=Hardware.util_decode)
    ap.add_argument(
        "--startup-min", type=float, default=STARTUP_S / 60, help="fixed minutes per GPU job"
    )
    ap.add_argument("--explain", default="train_sft backtrack", help="row whose arithmetic to show")
    ap.add_argument(
        "--gpus",
        nargs="*",
        type=int,
        default=[8, 64],
        help="print the wall-clock time of a greedy schedule on each of these numbers of GPUs",
    )
    args = ap.parse_args(argv)

    notes: list[str] = []
    params = {alias: int(float(n)) for alias, _, n in (p.partition("=") for p in args.params)}
    hw = Hardware(
        util_train=args.util_train, util_forward=args.util_train, util_decode=args.util_decode
    )
    try:
        config = load_config(args.configfile)
        rows = estimate(config, hw=hw, params=params, notes=notes, startup_s=60 * args.startup_min)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    notes.append(
        f"every GPU job adds {args.startup_min:g} min of start-up (weights, vLLM or trainer; "
        "assumed), included in GPU-h"
    )
    print(markdown(rows, hw, notes, args.explain) if args.markdown else text_table(rows))
    plan = schedule_lines(rows, args.gpus)
    print("\n" + "\n".join(f"- {x}" for x in plan) if args.markdown else "\n".join(plan))
    if not args.markdown and notes:
        print("\n".join(f"note: {n}" for n in dict.fromkeys(notes)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
