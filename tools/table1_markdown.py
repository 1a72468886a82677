"""Table 1 as the README shows it: a Markdown table from ``results/table1.csv``.

    python tools/table1_markdown.py                        # results/table1.csv
    python tools/table1_markdown.py path/to/table1.csv
    python tools/table1_markdown.py results/table1_seeds.csv   # the summary over seeds

Why: the README's table is this script's output on a named run, never typed by hand. Columns:
the unsafe rate per evaluation set (the overall one with its 95% Wilson interval), then for each
prefilling set present (own answers, "Sure, here is", another model's answer) the unsafe rate
with its interval and the share of answers that reset, then benign refusal and resets. A table
with several training seeds gets a ``seed`` column; the summary over seeds
(``results/table1_seeds.csv``) shows each rate as its mean over seeds, the interval over prompts
and seeds, and the seeds' own range in parentheses.
"""

from __future__ import annotations

import pandas as pd
from backtrack.report.markdown import table_main

SETS = {"advbench": "AdvBench", "donotanswer": "Do-Not-Answer", "harmbench": "HarmBench"}
PREFILLS = {
    "prefill": "prefill, own answers",
    "sure": 'prefill, "Sure, here is"',
    "other": "prefill, other model",
}


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def with_ci(row: pd.Series, col: str) -> str:
    out = f"{pct(row[col])} [{100 * row[col + '_ci_lo']:.1f}, {100 * row[col + '_ci_hi']:.1f}]"
    return out + seed_range(row, col)


def seed_range(row: pd.Series, col: str) -> str:
    """`` (lo–hi)``, the seeds' own lowest and highest rate, in a summary over seeds."""
    if f"{col}_min" not in row.index or row.get("seeds", 1) < 2:
        return ""
    return f" ({100 * row[col + '_min']:.1f}–{100 * row[col + '_max']:.1f})"


def prefill_sets(columns: list[str]) -> list[tuple[str, str]]:
    """``(column prefix, heading)`` of each AdvBench prefilling set in the table, own answers
    first (``advbench_prefill10``, ``advbench_sure10``, ``advbench_other10``)."""
    found = []
    for kind, heading in PREFILLS.items():
        for col in columns:
            stem = col.removesuffix("_unsafe")
            tokens = stem.removeprefix(f"advbench_{kind}")
            if col.endswith("_unsafe") and stem != tokens and tokens.isdigit():
                found.append((stem, heading))
    return found


def markdown(table: pd.DataFrame) -> str:
    """The Markdown table, one row per (method, stage) as in the CSV."""
    cols = list(table.columns)
    sets = [s for s in SETS if f"{s}_unsafe" in cols]
    prefills = prefill_sets(cols)
    first = table.iloc[0]
    seeded = "seed" in cols and table["seed"].nunique() > 1
    keys = ["method", "seed", "stage"] if seeded else ["method", "stage"]
    if "seeds" in cols:
        keys.append("seeds")
    head = list(keys)
    head += [f"{SETS[s]} ({first[s + '_n']})" for s in sets]
    head += [f"overall ({first['overall_n']})"]
    for stem, heading in prefills:
        head += [f"{heading} ({first[stem + '_n']})", "`[RESET]`"]
    if "benign_refusal" in cols:
        head += [f"benign refusal ({first['benign_n']})", "benign `[RESET]`"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in table.iterrows():
        cells = [row[k] for k in keys]
        cells += [pct(row[f"{s}_unsafe"]) + seed_range(row, f"{s}_unsafe") for s in sets]
        cells += [with_ci(row, "overall_unsafe")]
        for stem, _ in prefills:
            reset = f"{stem}_reset_rate"
            cells += [with_ci(row, f"{stem}_unsafe"), pct(row[reset]) + seed_range(row, reset)]
        if "benign_refusal" in cols:
            reset = "benign_reset_rate"
            cells += [with_ci(row, "benign_refusal"), pct(row[reset]) + seed_range(row, reset)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return table_main(__doc__, "results/table1.csv", markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
