"""The command line the docs' table tools share (tools/*_markdown.py): read a results CSV, print
its Markdown table, or say which command makes a missing CSV."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd


def table_main(
    doc: str, default: str, render: Callable[[pd.DataFrame], str], argv: list[str] | None
) -> int:
    """``render`` the CSV named on the command line (``default`` if none); ``doc``'s first
    paragraph is the help text."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("table", nargs="?", type=Path, default=Path(default))
    args = ap.parse_args(argv)
    if not args.table.exists():
        sys.exit(f"{args.table}: no such file (make it with: snakemake --cores all {args.table})")
    print(render(pd.read_csv(args.table)))
    return 0
