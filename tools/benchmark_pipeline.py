"""Per rule of a finished workflow run: wall time, tokens processed, achieved FLOP/s and its
ratio to this machine's matmul peak in the jobs' precision, measured in the same run.

    python tools/benchmark_pipeline.py                 # summarise benchmarks/ and logs/ here
    python tools/benchmark_pipeline.py --dir /path/to/a/finished/run --generation
    python tools/benchmark_pipeline.py --run           # rebuild results/table1.csv first
    python tools/benchmark_pipeline.py --run --target results/table2.csv

Why: the distance to the floor. A rule that reaches a few percent of what the cores can multiply
is bound by something else (Python, loading, tokenising, small matrices), and that is where time
can still be won.

Sources, all from a finished run's directory: each job's wall time from its Snakemake
``benchmark:`` file (``benchmarks/<rule>/<job>.tsv``), its tokens from the stats file the job
wrote beside its log (``logs/<rule>/<job>.tokens.json``, ``backtrack.jobstats``: training,
generation, the training pool, attacks, prefill answers, judges that run a model). FLOPs follow
``backtrack.jobstats.flops``: 6 per parameter and token for training, 2 more for DPO's reference
forward, 2 for inference, the LM head counted only at positions whose logits were computed.
Tokens are useful tokens (no padding), so the ratio is a model-FLOP utilisation.

The peak is a ``(2048 x 576) @ (576 x 1536)`` matmul (SmolLM2-135M's MLP shape) timed here, now,
in bf16 and fp32, at 1 thread and at each thread count the jobs used (the fastest of
--peak-repeats calls after a warm-up). A job is held to the peak of the precision it ran in (its
stats file says which; bf16 where it does not): on a CPU without bf16 units the jobs run in fp32
(``precision: auto``), and there the bf16 peak, emulated, is about a hundredth of fp32's. Jobs ran
side by side, so a job's peak is its threads', not the machine's. A job's achieved FLOP/s is its
FLOPs over its whole wall time (model load, judging, writing included); a rule's is the sum of
its jobs' FLOPs over the sum of their times (``peak_pct``). On a shared machine a job's wall
time includes the time other processes held its cores, so the rule's FLOPs are also divided by
its jobs' CPU seconds and compared with the 1-thread peak (``cpu_peak_pct``): what the cores did
while the job had them. A job's CPU seconds are its own count in its stats file where it wrote
one (``cpu_s``: ``getrusage`` at the end of the job, ``backtrack.jobstats.process_cpu_seconds``),
else Snakemake's ``cpu_time``, which samples the job every 30 s after its first 15 s and so
misses up to 30 s of a longer job (``cpu_from`` says which).

A generation job's time outside its decoding loop (interpreter, imports, model load, tokenising,
writing) is its wall time less its ``generate`` progress bars' final elapsed times, read from its
log (``outside_loop_pct`` of the rule's job seconds, ``outside_loop_s`` per job; whole seconds, so
slightly high).

Jobs run side by side (model jobs take half the cores), so the sum of job times exceeds the wall
time; the wall time of the last run is estimated from the benchmark files (each is written when
its job ends: start = end - duration).

``--generation`` adds generation throughput of HF fp32, HF bf16 and vLLM-CPU bf16 on the same
prompts, interleaved, medians of --gen-repeats (tools/benchmark_generation.py, on the run's
base model), with their FLOP/s against the same peak.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PEAK_SHAPE = (2048, 576, 1536)  # SmolLM2-135M's MLP up-projection for 2048 tokens


def job_times(bench_dir: Path) -> pd.DataFrame:
    """One row per job: rule, job (path under the rule's folder, no suffix), wall and CPU
    seconds, end (the file's mtime), max RSS.
    """
    rows = []
    for f in sorted(bench_dir.rglob("*.tsv")):
        rel = f.relative_to(bench_dir)
        t = pd.read_csv(f, sep="\t")
        rows.append(
            {
                "rule": rel.parts[0],
                "job": str(rel.relative_to(rel.parts[0])).removesuffix(".tsv"),
                "s": float(t["s"].iloc[-1]),
                "cpu_s": float(t["cpu_time"].iloc[-1]) if "cpu_time" in t else float("nan"),
                "end": f.stat().st_mtime,
                "max_rss_mb": t["max_rss"].iloc[-1],
            }
        )
    if not rows:
        raise SystemExit(f"no benchmark files under {bench_dir}: run the workflow first")
    return pd.DataFrame(rows)


# A tqdm bar at its end: "generate: 100%|####| 400/400 [01:45<00:00, 3.80answer/s]".
FINISHED_BAR = re.compile(
    r"(?P<desc>[\w ]+): 100%\|[^\r\n|]*\| (?P<n>\d+)/(?P=n) \[(?P<elapsed>(?:\d+:)?\d+:\d+)<"
)


def loop_seconds(log_text: str, desc: str = "generate") -> float | None:
    """Seconds a job spent in its ``desc`` progress bars (their final elapsed times), or None
    where the log has none. tqdm can print a finished bar twice (its last refresh and its
    close); a repeat with the same count and elapsed time is counted once.
    """
    bars = {
        (m["n"], m["elapsed"]) for m in FINISHED_BAR.finditer(log_text) if m["desc"].strip() == desc
    }
    if not bars:
        return None
    total = 0.0
    for _, elapsed in bars:
        parts = [int(x) for x in elapsed.split(":")]  # [h:]mm:ss
        total += sum(v * 60**i for i, v in enumerate(reversed(parts)))
    return total


def with_loop_seconds(jobs: pd.DataFrame, log_dir: Path) -> pd.DataFrame:
    """``jobs`` plus ``loop_s``: each job's seconds in its ``generate`` bars (NaN where none)."""
    loop = []
    for rule, job in zip(jobs["rule"], jobs["job"], strict=True):
        log = log_dir / rule / f"{job}.log"
        found = loop_seconds(log.read_text(errors="replace")) if log.is_file() else None
        loop.append(float("nan") if found is None else found)
    return jobs.assign(loop_s=loop)


def matmul_flops(m: int, k: int, n: int) -> int:
    """FLOPs of an ``(m x k) @ (k x n)`` product (one multiply and one add per term)."""
    return 2 * m * k * n


def matmul_peak(
    dtype: str, threads: int, repeats: int = 20, shape: tuple[int, int, int] = PEAK_SHAPE
) -> float:
    """FLOP/s of the fastest of ``repeats`` ``shape`` matmuls in ``dtype`` on ``threads``
    threads (the fastest: a peak, and the call least disturbed by other load).
    """
    import torch
    from backtrack.bench import fastest
    from backtrack.models.precision import torch_dtype

    dt = torch_dtype(dtype)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        m, k, n = shape
        a, b = torch.randn(m, k, dtype=dt), torch.randn(k, n, dtype=dt)
        out = torch.empty(m, n, dtype=dt)
        for _ in range(3):
            torch.matmul(a, b, out=out)
        seconds = fastest(lambda: torch.matmul(a, b, out=out), repeats)
    finally:
        torch.set_num_threads(saved)
    return matmul_flops(m, k, n) / seconds


def with_stats(
    jobs: pd.DataFrame, stats: Mapping[tuple[str, str], Mapping[str, Any]]
) -> pd.DataFrame:
    """``jobs`` plus each job's tokens, FLOPs, threads and precision (NaN where it wrote none)."""
    from backtrack.jobstats import flops

    extra = []
    for rule, job in zip(jobs["rule"], jobs["job"], strict=True):
        st = stats.get((rule, job))
        if st is None:
            extra.append({"tokens": float("nan"), "flops": float("nan")})
            continue
        extra.append(
            {
                "tokens": float(sum(t for t, _ in st["tokens"].values())),
                "flops": flops(st["tokens"], st["shape"]),
                "threads": st["threads"],
                "precision": st.get("precision"),
                "own_cpu_s": st.get("cpu_s", float("nan")),
            }
        )
    out = pd.concat([jobs.reset_index(drop=True), pd.DataFrame(extra)], axis=1)
    own = out["own_cpu_s"].notna() if "own_cpu_s" in out else pd.Series(False, index=out.index)
    out["cpu_from"] = own.map({True: "job", False: "snakemake"})
    if own.any():
        out.loc[own, "cpu_s"] = out.loc[own, "own_cpu_s"]
    return out.drop(columns="own_cpu_s", errors="ignore")


def job_precision(value: Any) -> str:
    """The precision a job's stats name (``bf16`` or ``fp32``); bf16 where they name none."""
    from backtrack.models.precision import DTYPE_NAMES

    return value if value in DTYPE_NAMES else "bf16"


def rule_table(jobs: pd.DataFrame, peaks: Mapping[str, Mapping[int, float]]) -> pd.DataFrame:
    """One row per rule: jobs, wall seconds (sum and median of jobs), CPU seconds, tokens,
    tokens/s, GFLOP, achieved GFLOP/s and its share of the peak each job could reach in its
    precision at its threads (``peaks``: precision -> threads -> FLOP/s; ``peak_pct``), and per
    CPU second against the 1-thread peak (``cpu_peak_pct``: what the job's cores did while it
    had them, robust to other load on a shared machine). Rules whose jobs wrote no token counts
    keep NaN in those columns.
    """
    rows = []
    for rule, g in jobs.groupby("rule"):
        counted = g.dropna(subset=["flops"])
        row: dict[str, Any] = {
            "rule": rule,
            "jobs": len(g),
            "total_s": g.s.sum(),
            "median_s": g.s.median(),
            "cpu_s": g.cpu_s.sum(),
            "max_rss_mb": g.max_rss_mb.max(),
            "tokens": float("nan"),
            "tok_per_s": float("nan"),
            "gflop": float("nan"),
            "gflop_per_s": float("nan"),
            "peak_pct": float("nan"),
            "gflop_per_cpu_s": float("nan"),
            "cpu_peak_pct": float("nan"),
            "threads": "",
            "precision": "",
            "cpu_from": ",".join(sorted(set(g.cpu_from))) if "cpu_from" in g else "snakemake",
            "outside_loop_pct": float("nan"),
            "outside_loop_s": float("nan"),
        }
        looped = g.dropna(subset=["loop_s"]) if "loop_s" in g else g.iloc[:0]
        if len(looped):
            outside = (looped.s - looped.loop_s).sum()
            row["outside_loop_pct"] = 100 * outside / looped.s.sum()
            row["outside_loop_s"] = outside / len(looped)
        if len(counted):
            secs = counted.s.sum()
            # What each job could have computed in its wall time (at its own thread count) and
            # in its CPU seconds (at one thread), in its own precision.
            precisions = [job_precision(p) for p in counted.get("precision", [None] * len(counted))]
            reachable = sum(
                s * peaks[p][int(t)]
                for s, t, p in zip(counted.s, counted.threads, precisions, strict=True)
            )
            reachable_cpu = sum(
                c * peaks[p][1] for c, p in zip(counted.cpu_s, precisions, strict=True)
            )
            row |= {
                "tokens": counted.tokens.sum(),
                "tok_per_s": counted.tokens.sum() / secs,
                "gflop": counted.flops.sum() / 1e9,
                "gflop_per_s": counted.flops.sum() / secs / 1e9,
                "peak_pct": 100 * counted.flops.sum() / reachable,
                "gflop_per_cpu_s": counted.flops.sum() / counted.cpu_s.sum() / 1e9,
                "cpu_peak_pct": 100 * counted.flops.sum() / reachable_cpu,
                "threads": ",".join(str(int(t)) for t in sorted(set(counted.threads))),
                "precision": ",".join(sorted(set(precisions))),
            }
        rows.append(row)
    return pd.DataFrame(rows).set_index("rule").sort_values("total_s", ascending=False)


def load_script(name: str) -> Any:
    """Another script of this folder as a module."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def generation_section(
    model_dir: Path, args: argparse.Namespace, peaks: Mapping[str, Mapping[int, float]]
) -> None:
    """Throughput of the three backends (tools/benchmark_generation.py), as FLOP/s too."""
    from backtrack.jobstats import flops, model_shape

    gen = load_script("benchmark_generation")
    res = gen.measure(
        str(model_dir), args.gen_prompts, args.gen_tokens, args.gen_repeats, args.gen_threads
    )
    gen.report(res)
    shape = model_shape(model_dir)
    peak = peaks["bf16"].get(args.gen_threads) or matmul_peak("bf16", args.gen_threads)
    print(
        f"\nas FLOP/s ({res['prompt_tokens']} prompt tokens per call, prefill included; "
        f"bf16 peak on {args.gen_threads} threads {peak / 1e9:.0f} GFLOP/s):"
    )
    print(f"{'backend':<20}{'median GFLOP/s':>16}{'% of bf16 peak':>16}")
    for name, calls in res["calls"].items():
        rates = [flops({"forward": [res["prompt_tokens"] + n, n]}, shape) / s for s, n in calls]
        med = statistics.median(rates)
        print(f"{name:<20}{med / 1e9:>16.1f}{100 * med / peak:>16.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run", action="store_true", help="rebuild --target (--forceall) first")
    ap.add_argument("--cores", default="all")
    ap.add_argument("--target", default="results/table1.csv")
    ap.add_argument("--dir", type=Path, default=ROOT, help="workflow directory to summarise")
    ap.add_argument("--peak-repeats", type=int, default=20)
    ap.add_argument("--generation", action="store_true", help="add generation throughput")
    ap.add_argument("--model", type=Path, help="base model (default: the run's first)")
    ap.add_argument("--gen-prompts", type=int, default=32)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--gen-repeats", type=int, default=5)
    ap.add_argument("--gen-threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "workflow"))
    from backtrack.jobstats import read_job_stats
    from backtrack.models.precision import DTYPE_NAMES

    wall = None
    if args.run:
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "snakemake", "--cores", args.cores, "--forceall", args.target]
        subprocess.run(cmd, cwd=args.dir, check=True)
        wall = time.perf_counter() - t0
    jobs = with_stats(job_times(args.dir / "benchmarks"), read_job_stats(args.dir / "logs"))
    jobs = with_loop_seconds(jobs, args.dir / "logs")
    span = (jobs.end.max() - (jobs.end - jobs.s).min()) / 60
    threads = sorted({1} | {int(t) for t in jobs.get("threads", pd.Series()).dropna()})
    if args.generation:
        threads = sorted(set(threads) | {args.gen_threads})
    load = os.getloadavg()
    peaks = {p: {t: matmul_peak(p, t, args.peak_repeats) for t in threads} for p in DTYPE_NAMES}
    table = rule_table(jobs, peaks)
    print(
        f"run in {args.dir}: estimated wall time (first job start to last job end) {span:.1f} min"
    )
    m, k, n = PEAK_SHAPE
    print(
        f"matmul peak ({m}x{k} @ {k}x{n}, fastest of {args.peak_repeats}, load average "
        f"{load[0]:.1f} when measured): "
        + "; ".join(
            f"{t} thr: bf16 {peaks['bf16'][t] / 1e9:.0f}, fp32 {peaks['fp32'][t] / 1e9:.0f} GFLOP/s"
            for t in threads
        )
    )
    with pd.option_context(
        "display.float_format", "{:.1f}".format, "display.width", 200, "display.max_columns", 20
    ):
        print(table.to_string())
    print(f"\nsum of job times: {table.total_s.sum():.0f} s ({table.total_s.sum() / 60:.1f} min)")
    if wall is not None:
        print(f"wall time: {wall:.0f} s ({wall / 60:.1f} min)")
    if args.generation:
        model = args.model or next(iter(sorted((args.dir / "results/models").glob("*/base"))))
        generation_section(model, args, peaks)


if __name__ == "__main__":
    main()
