"""Wall time per rule of the embedded default, from Snakemake's `benchmark:` files.

    python scripts/benchmark_pipeline.py            # summarise benchmarks/ of the last run
    python scripts/benchmark_pipeline.py --run      # rebuild results/table1.csv from scratch first

Target (issue 2): the whole results/table1.csv in at most 30 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def summarise(bench_dir: Path) -> pd.DataFrame:
    """One row per rule: jobs, total and median seconds, peak RSS."""
    rows = []
    for f in sorted(bench_dir.glob("*/*.tsv")):
        t = pd.read_csv(f, sep="\t")
        rows.append(
            {
                "rule": f.parent.name,
                "job": f.stem,
                "s": t["s"].iloc[-1],
                "max_rss_mb": t["max_rss"].iloc[-1],
            }
        )
    if not rows:
        raise SystemExit(f"no benchmark files under {bench_dir}: run the workflow first")
    jobs = pd.DataFrame(rows)
    return (
        jobs.groupby("rule")
        .agg(
            jobs=("job", "count"),
            total_s=("s", "sum"),
            median_s=("s", "median"),
            max_rss_mb=("max_rss_mb", "max"),
        )
        .sort_values("total_s", ascending=False)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run", action="store_true", help="rebuild results/table1.csv (--forceall)")
    ap.add_argument("--cores", default="all")
    args = ap.parse_args()
    wall = None
    if args.run:
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "snakemake",
                "--cores",
                args.cores,
                "--forceall",
                "results/table1.csv",
            ],
            cwd=ROOT,
            check=True,
        )
        wall = time.perf_counter() - t0
    table = summarise(ROOT / "benchmarks")
    with pd.option_context("display.float_format", "{:.1f}".format):
        print(table.to_string())
    print(f"\nsum of job times: {table.total_s.sum():.0f} s ({table.total_s.sum() / 60:.1f} min)")
    if wall is not None:
        print(f"wall time: {wall:.0f} s ({wall / 60:.1f} min); target <= 1800 s")


if __name__ == "__main__":
    main()
