"""The claims table as the README shows it: a Markdown table from ``results/claims.csv``.

    python tools/claims_markdown.py                        # results/claims.csv
    python tools/claims_markdown.py path/to/claims.csv
    python tools/claims_markdown.py --over-seeds           # the rows over all seeds, and which
                                                           # verdicts every seed gives alike

Why: the README's claims table is this script's output on a named run, never typed by hand.
One row per claim and model: what the paper says, our rate with its 95% interval and n, the
rate it is compared with, the difference with its interval, and the verdict. A run with several
training seeds adds a ``seed`` column (``all`` for the row over all seeds, whose verdict cell
also says how the seeds split).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from backtrack.report.readable import claims_grid, seeded_claims, to_markdown


def markdown(claims: pd.DataFrame) -> str:
    return to_markdown(claims_grid(claims))


def seed_agreement(claims: pd.DataFrame) -> str:
    """Two lines over the measured rows over all seeds: the claims whose seeds each give the
    same verdict alone, and those whose seeds differ (with how they split)."""
    over = claims[claims["seed"].isna() & (claims["seeds"].fillna(0) > 1)]
    over = over[over["verdict"] != "not measured"]
    same, differ = [], []
    for _, row in over.iterrows():
        split = str(row["seed_verdicts"])
        name = f"`{row['claim']}`"
        if "," in split:
            differ.append(f"{name} ({split}; over all seeds: {row['verdict']})")
        else:
            same.append(f"{name} ({split})")
    seeds = int(over["seeds"].max()) if len(over) else 0
    return (
        f"- The same verdict in each of the {seeds} seeds: {', '.join(same) or 'none'}.\n"
        f"- A verdict that changes between seeds: {', '.join(differ) or 'none'}."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("claims", nargs="?", type=Path, default=Path("results/claims.csv"))
    ap.add_argument(
        "--over-seeds", action="store_true",
        help="only the rows over all seeds, then which verdicts the seeds share",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if not args.claims.exists():
        sys.exit(f"{args.claims}: no such file (make it with: snakemake --cores all {args.claims})")
    claims = pd.read_csv(args.claims)
    if args.over_seeds:
        if not seeded_claims(claims):
            sys.exit(f"{args.claims}: one training seed only (train_seeds; docs/seeds.md)")
        over = claims[claims["seed"].isna() & (claims["seeds"].fillna(0) > 1)]
        print(markdown(over) + "\n\n" + seed_agreement(claims))
        return 0
    print(markdown(claims))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
