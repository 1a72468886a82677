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
from backtrack.report.readable import table1_grid, to_markdown


def markdown(table: pd.DataFrame) -> str:
    """The Markdown table, one row per (method, stage) as in the CSV."""
    return to_markdown(table1_grid(table))


def main(argv: list[str] | None = None) -> int:
    return table_main(__doc__, "results/table1.csv", markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
