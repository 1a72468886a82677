"""The timing harness of the benchmarks in ``tools/``: both clocks at once, the median step
without its warm-up, the fastest of repeated calls, and the order variants take turns in.

Why one harness: every benchmark compares variants (backends, dtypes, optimisers) on a machine
that other processes share. Other load skews the wall clock far more than the process's CPU
time, so both are read together; the first step pays for allocators and thread pools, so it is
left out of the median; and the variants take turns, their order rotating, so that load from
elsewhere falls on all of them alike. It lives in the package (not in ``tools/``) so that a
benchmark loaded by path, as the tests load them, imports it like any other module.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def now() -> tuple[float, float]:
    """Wall-clock and process CPU time (all threads), in seconds."""
    return time.perf_counter(), time.process_time()


def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """``fn()``, its wall seconds and its process CPU seconds."""
    wall, cpu = now()
    out = fn()
    wall_end, cpu_end = now()
    return out, wall_end - wall, cpu_end - cpu


def step_times(marks: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds between successive :func:`now` marks (one per step)."""
    pairs = list(itertools.pairwise(marks))
    return [b[0] - a[0] for a, b in pairs], [b[1] - a[1] for a, b in pairs]


def median_step(seconds: Sequence[float]) -> float:
    """Median seconds per step, without the first (warm-up) step when there are at least 3."""
    if not seconds:
        return float("nan")
    return statistics.median(seconds[1:] if len(seconds) >= 3 else seconds)


def fastest(fn: Callable[[], Any], blocks: int, calls: int = 1) -> float:
    """Seconds per call of ``fn``: the fastest of ``blocks`` blocks of ``calls`` calls (a peak,
    and the block least disturbed by other load)."""
    times = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return min(times)


def rotated(items: Sequence[T], turn: int) -> list[T]:
    """``items`` starting at ``turn`` (modulo their number): the order of one round of turns."""
    k = turn % len(items)
    return [*items[k:], *items[:k]]
