"""tools/benchmark_decode.py on the tiny model: the measurement's structure, not its timing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


bench = _load("benchmark_decode")
PROMPTS = ["Hello there", "Tell me a much longer story about the sea please", "Hi", "Why?"]


def test_measure_reports_each_repeat_and_the_median(tiny):
    """Structure of one repeat; with no bias and no reset cap both sides decode the same tokens
    (the premise of the per-token ratio), which the measurement checks itself.
    """
    model, tok, rid = tiny
    recs = [{"id": f"p{i}", "prompt": p} for i, p in enumerate(PROMPTS)]
    res = bench.measure(
        model, tok, rid, recs, batch_size=4, max_new_tokens=3, repeats=1,
        reset_logit_bias=0.0, max_resets=None, warmup=False,
    )  # fmt: skip
    (row,) = res["repeats"]
    for key in ("plain_s", "backtrack_s", "plain_cpu_s", "backtrack_cpu_s"):
        assert row[key] >= 0
    assert 0 < row["tokens"] <= 3 * len(PROMPTS) and res["tokens"] == row["tokens"]
    ratio = row["backtrack_ms_per_token"] / row["plain_ms_per_token"]
    assert abs(ratio - row["ratio"]) < 1e-9
    assert res["median_ratio"] == row["ratio"] and res["median_cpu_ratio"] == row["cpu_ratio"]
    assert res["identical"] is True and res["resets"] == 0
    assert "median ratio (wall)" in bench.table(res)


def test_profile_pieces_times_each_piece(tiny):
    model, tok, rid = tiny
    out = bench.profile_pieces(model, tok, rid, batch_size=2, width=8, calls=3)
    assert set(out) == {
        "clock (time.perf_counter per step)",
        "ResetCapProcessor",
        "sequence_bias",
        "model forward, one decode step",
    }
    assert all(v >= 0 for v in out.values())


def test_the_shared_timing_harness():
    """backtrack.bench, which every benchmark times with: turns, steps, medians, the fastest."""
    from backtrack.bench import fastest, median_step, rotated, step_times, timed

    assert [rotated(["a", "b", "c"], k) for k in (0, 1, 5)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
    ]
    assert step_times([(0.0, 0.0), (1.0, 0.5), (3.0, 1.5)]) == ([1.0, 2.0], [0.5, 1.0])
    assert median_step([9.0, 1.0, 2.0, 3.0]) == 2.0  # the warm-up step is left out
    assert median_step([9.0, 1.0]) == 5.0  # too few steps to drop one
    out, wall, cpu = timed(lambda: 7)
    assert out == 7 and wall >= 0 and cpu >= 0
    assert fastest(lambda: None, blocks=3, calls=2) >= 0
