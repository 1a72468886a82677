"""Wall time per rule of the embedded default, from Snakemake's `benchmark:` files.

    python tools/benchmark_pipeline.py            # summarise benchmarks/ of the last run
    python tools/benchmark_pipeline.py --run      # rebuild results/table1.csv from scratch first
    python tools/benchmark_pipeline.py --run --target results/table2.csv

Jobs run side by side (model jobs take half the cores), so the sum of job times exceeds the wall
time; the wall time of the last run is estimated from the benchmark files (each is written when
its job ends: start = end - duration).
Targets: results/table1.csv in at most 30 minutes (issue 2), results/table2.csv in at most 60
(issue 3), on this 2-core machine.
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
                "end": f.stat().st_mtime,
                "max_rss_mb": t["max_rss"].iloc[-1],
            }
        )
    if not rows:
        raise SystemExit(f"no benchmark files under {bench_dir}: run the workflow first")
    jobs = pd.DataFrame(rows)
    span = (jobs.end.max() - (jobs.end - jobs.s).min()) / 60
    print(f"estimated wall time of the last run (first job start to last job end): {span:.1f} min")
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
    ap.add_argument("--target", default="results/table1.csv")
    ap.add_argument("--dir", type=Path, default=ROOT, help="workflow directory to summarise")
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
                args.target,
            ],
            cwd=args.dir,
            check=True,
        )
        wall = time.perf_counter() - t0
    table = summarise(args.dir / "benchmarks")
    with pd.option_context("display.float_format", "{:.1f}".format):
        print(table.to_string())
    print(f"\nsum of job times: {table.total_s.sum():.0f} s ({table.total_s.sum() / 60:.1f} min)")
    if wall is not None:
        print(f"wall time: {wall:.0f} s ({wall / 60:.1f} min)")


if __name__ == "__main__":
    main()
