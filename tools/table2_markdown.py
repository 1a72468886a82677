"""Table 2 as the docs show it: a Markdown table from ``results/table2.csv`` or its summary over
training seeds, ``results/table2_seeds.csv``.

    python tools/table2_markdown.py                              # results/table2.csv
    python tools/table2_markdown.py results/table2_seeds.csv     # over seeds

Why: the docs' Table 2 is this script's output on a named run, never typed by hand. One row
per (model, method, stage[, seed]), one column per attack: the attack success rate with its 95%
interval and, in a summary over seeds, the seeds' own range in parentheses; the share of
answers that reset follows in braces. An attack with no prompts (a prefill longer than every
answer it is cut from) shows as a dash.
"""

from __future__ import annotations

import pandas as pd
from backtrack.report.markdown import table_main


def cell(row: pd.Series) -> str:
    if pd.isna(row["asr"]) or not row["n"]:
        return "—"
    out = f"{100 * row['asr']:.1f}% [{100 * row['asr_ci_lo']:.1f}, {100 * row['asr_ci_hi']:.1f}]"
    if "asr_min" in row.index and row.get("seeds", 1) > 1:
        out += f" ({100 * row['asr_min']:.1f}–{100 * row['asr_max']:.1f})"
    return out + f" {{{100 * row['reset_rate']:.0f}%}}"


def markdown(table: pd.DataFrame) -> str:
    """Rows in the table's order of (model, method, stage[, seed]); attacks in its column order."""
    seeded = "seed" in table.columns and table["seed"].nunique() > 1
    keys = ["model", "method", "seed", "stage"] if seeded else ["model", "method", "stage"]
    attacks = list(dict.fromkeys(table["attack"]))
    sizes = table.groupby("attack", sort=False)["n"].max()
    head = [*keys, *(f"{a} (n={int(sizes[a])})" for a in attacks)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, rows in table.groupby(keys, sort=False):
        by_attack = {r["attack"]: cell(r) for _, r in rows.iterrows()}
        cells = [*map(str, key), *(by_attack.get(a, "—") for a in attacks)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return table_main(__doc__, "results/table2.csv", markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
