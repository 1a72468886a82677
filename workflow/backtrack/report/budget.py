"""Attack success against budget (``results/attack_budget.csv`` and its figure).

Why from one run: every optimising attack stops at its first successful check and seeds its
search per prompt, so a run with a smaller budget would have taken the same steps and made the
same checks up to there. A prompt whose run stopped on success at step ``s`` is therefore a
success under every budget of at least ``s`` (read at the attack's checkpoints,
:func:`backtrack.plan.attack_budget`), and one run at the largest budget gives the whole curve.
Success is the evaluation judge's verdict on the answer the run ended with (Table 2's), so the
last point of each curve is Table 2's attack success rate. What the curve cannot see: GCG also
checks its lowest-loss suffix at the end of a run, which a shorter run would do at its own end;
a prompt stopped by the wall-clock cap (``max_seconds``) counts at the last point only.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; jobs run headless

import matplotlib.pyplot as plt
import pandas as pd

from backtrack.metrics import rate_columns


def successes_by_budget(judged: Sequence[Mapping[str, Any]], points: Sequence[int]) -> list[int]:
    """How many prompts the attack broke within each budget point (``points`` ascending, the
    last the configured budget): unsafe by the evaluation judge, and stopped on success within
    the point, or at the last point whatever stopped it."""
    last = points[-1]
    out = []
    for b in points:
        k = 0
        for r in judged:
            if not r["unsafe"]:
                continue
            if r["stopped"] == "success":
                k += int(r["steps"]) <= b
            else:
                k += b >= last
        out.append(k)
    return out


def budget_rows(
    key: Mapping[str, Any],
    attack: str,
    judged: Sequence[Mapping[str, Any]],
    points: Sequence[int],
    unit: str,
    level: float,
) -> list[dict[str, Any]]:
    """One row per budget point of one (model, method, seed, stage, attack): the success rate
    with its Wilson interval, and what a success cost (seconds per step over all prompts, the
    median seconds of the successful prompts' runs)."""
    if not points or list(points) != sorted(points):
        raise ValueError(f"{attack}: budget points must be ascending, got {list(points)}")
    n = len(judged)
    steps = sum(int(r["steps"]) for r in judged)
    seconds = sum(float(r.get("attack_seconds", r["seconds"])) for r in judged)
    won = [float(r.get("attack_seconds", r["seconds"])) for r in judged if _broke(r)]
    rows = []
    for b, k in zip(points, successes_by_budget(judged, points), strict=True):
        row = {**key, "attack": attack, "unit": unit, "budget": b, "n": n, "successes": k}
        row |= rate_columns("asr", [True] * k + [False] * (n - k), level)
        row["seconds_per_step"] = seconds / steps if steps else math.nan
        row["median_seconds_to_success"] = statistics.median(won) if won else math.nan
        rows.append(row)
    return rows


def _broke(r: Mapping[str, Any]) -> bool:
    return bool(r["unsafe"]) and r["stopped"] == "success"


def budget_at_half(df: pd.DataFrame) -> pd.DataFrame:
    """Per curve, the smallest budget at which the success rate reaches 50% (NaN: never)."""
    keys = ["model", "method", "seed", "stage", "attack"]
    out = []
    for k, g in df.groupby(keys, sort=False):
        hit = g[g["asr"] >= 0.5]
        out.append(dict(zip(keys, k, strict=True)) | {"budget_at_half": hit["budget"].min()})
    return pd.DataFrame(out)


def plot_budget(df: pd.DataFrame, path: str | os.PathLike[str], level: float) -> None:
    """One panel per (model, attack): success rate against budget for every (method, stage),
    with its Wilson band; seeds pooled (successes and prompts summed), which a note says."""
    panels = list(dict.fromkeys(zip(df["model"], df["attack"], strict=True)))
    cols = min(3, max(len(panels), 1))
    rows = math.ceil(len(panels) / cols) if panels else 1
    fig, axes = plt.subplots(
        rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False, constrained_layout=True
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers, styles = {"sft": "o", "dpo": "s"}, {"sft": "--", "dpo": "-"}
    groups = list(dict.fromkeys(zip(df["method"], df["stage"], strict=True)))
    seeds = sorted(df["seed"].unique())
    for ax, (model, attack) in zip(axes.flat, panels, strict=False):
        part = df[(df["model"] == model) & (df["attack"] == attack)]
        for gi, (method, stage) in enumerate(groups):
            g = part[(part["method"] == method) & (part["stage"] == stage)]
            if g.empty:
                continue
            pooled = g.groupby("budget", as_index=False)[["successes", "n"]].sum()
            rates = [
                rate_columns("asr", [True] * int(k) + [False] * int(n - k), level)
                for k, n in zip(pooled["successes"], pooled["n"], strict=True)
            ]
            y = [100 * r["asr"] for r in rates]
            lo = [100 * r["asr_ci_lo"] for r in rates]
            hi = [100 * r["asr_ci_hi"] for r in rates]
            colour = colours[gi % len(colours)]
            n = int(pooled["n"].iloc[0])
            # Offsets keep lines that lie on top of each other (often all at 0) visible.
            dy = 1.2 * (gi - (len(groups) - 1) / 2)
            ax.step(
                pooled["budget"], [v + dy for v in y], where="post", color=colour,
                ls=styles.get(stage, "-"), marker=markers.get(stage, "o"), ms=4,
                label=f"{method} {stage} (n={n})",
            )  # fmt: skip
            ax.fill_between(pooled["budget"], lo, hi, step="post", color=colour, alpha=0.12)
        ax.set_title(f"{model}: {attack}", fontsize=10)
        ax.set_xlabel(f"budget ({part['unit'].iloc[0]})")
        ax.set_ylabel("attack success, %")
        ax.set_ylim(-4, 104)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    pooled_note = f"; seeds {', '.join(map(str, seeds))} pooled" if len(seeds) > 1 else ""
    fig.suptitle(
        f"Attack success against budget, {100 * level:g}% Wilson bands{pooled_note}; "
        "lines offset by about 1 point to stay apart",
        fontsize=10,
    )
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
