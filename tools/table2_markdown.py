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
from backtrack.report.readable import table2_grid, to_markdown


def markdown(table: pd.DataFrame) -> str:
    """Rows in the table's order of (model, method, stage[, seed]); attacks in its column order."""
    return to_markdown(table2_grid(table))


def main(argv: list[str] | None = None) -> int:
    return table_main(__doc__, "results/table2.csv", markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
