"""The attack budget curves as the docs show them: a Markdown table from
``results/attack_budget.csv``.

    python tools/attack_budget_markdown.py                       # results/attack_budget.csv

Why: the docs' budget numbers are this script's output on a named run, never typed by hand. One
row per curve (model, method, stage[, seed], attack): prompts broken at the configured budget
(the curve's last point, Table 2's rate) with the 95% interval, the smallest budget at which half
the prompts were broken (— if never), seconds per step and the median seconds of a successful
run on the machine that made it.
"""

from __future__ import annotations

import pandas as pd
from backtrack.report.markdown import table_main


def markdown(table: pd.DataFrame) -> str:
    """One line per curve, in the table's order."""
    seeded = "seed" in table.columns and table["seed"].nunique() > 1
    keys = ["model", "method", *(["seed"] if seeded else []), "stage", "attack"]
    head = [*keys, "budget", "broken [95%]", "50% reached at", "s/step", "median s to success"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, g in table.groupby(keys, sort=False):
        last = g.iloc[-1]
        half = g[g["asr"] >= 0.5]["budget"]
        broken = (
            f"{int(last['successes'])}/{int(last['n'])} = {100 * last['asr']:.0f}% "
            f"[{100 * last['asr_ci_lo']:.0f}, {100 * last['asr_ci_hi']:.0f}]"
        )
        cells = [
            *map(str, key),
            f"{int(last['budget'])} {last['unit']}",
            broken,
            f"{int(half.min())}" if len(half) else "—",
            f"{last['seconds_per_step']:.2f}",
            "—"
            if pd.isna(last["median_seconds_to_success"])
            else f"{last['median_seconds_to_success']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return table_main(__doc__, "results/attack_budget.csv", markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
