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
from backtrack.report.readable import budget_grid, to_markdown


def markdown(table: pd.DataFrame) -> str:
    """One line per curve, in the table's order."""
    return to_markdown(budget_grid(table))


def main(argv: list[str] | None = None) -> int:
    return table_main(__doc__, "results/attack_budget.csv", markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
