"""Interval statistics for rates: below every stage, so that the tables, the sweeps, the claims
and the helpfulness scores compute their intervals the same way.

Safety rates live near 0 and 1, where the normal approximation leaves [0, 1] and misbehaves;
the Wilson score interval does not, and Newcombe's difference interval is built from two of
them, so a difference of two rates behaves at the edges like the rates themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k/n`` (NaN for no trials).

    Chosen over the normal approximation because it stays inside [0, 1] and behaves at 0 and n,
    which is where safety rates live.
    """
    if n == 0:
        return (math.nan, math.nan)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_or_nan(xs: Iterable[float | bool]) -> float:
    """The mean, or NaN for no values (an empty set is a missing cell, not an error)."""
    xs = list(xs)
    return sum(xs) / len(xs) if xs else math.nan


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n`` with its Wilson interval."""

    k: int
    n: int
    level: float = 0.95

    @property
    def p(self) -> float:
        return self.k / self.n if self.n else math.nan

    @property
    def ci(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n, self.level)

    @classmethod
    def of(cls, rate: float, n: int, level: float) -> Rate:
        """From a table's rate column and its ``n`` (the tables store k / n, not k)."""
        return cls(round(float(rate) * int(n)), int(n), level)


def newcombe_difference(a: Rate, b: Rate) -> tuple[float, float, float]:
    """``p_a - p_b`` and its interval (Newcombe 1998, method 10: hybrid score from Wilson)."""
    (la, ua), (lb, ub) = a.ci, b.ci
    d = a.p - b.p
    return d, d - math.hypot(a.p - la, ub - b.p), d + math.hypot(ua - a.p, b.p - lb)
