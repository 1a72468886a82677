"""Interval statistics for rates: below every stage, so that the tables, the sweeps, the claims
and the helpfulness scores compute their intervals the same way.

Safety rates live near 0 and 1, where the normal approximation leaves [0, 1] and misbehaves;
the Wilson score interval does not, and Newcombe's difference interval is built from two of
them, so a difference of two rates behaves at the edges like the rates themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


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


def prompts_for_power(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Prompts per arm that a two-sided test of two independent rates needs to detect
    ``p1 - p2`` with probability ``power`` at level ``alpha`` (the normal approximation with
    the pooled variance under the null, as R's ``power.prop.test``); inf when the rates are
    equal. Why here: an inconclusive verdict should say how far from conclusive it is.
    """
    if not (0 <= p1 <= 1 and 0 <= p2 <= 1):
        raise ValueError(f"rates must lie in [0, 1], got {p1}, {p2}")
    if p1 == p2:
        return math.inf
    z_a, z_b = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)
    mean = (p1 + p2) / 2
    null = z_a * math.sqrt(2 * mean * (1 - mean))
    alt = z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return ((null + alt) / (p1 - p2)) ** 2


def crossed_bootstrap(
    arms: Sequence[np.ndarray],
    *,
    reps: int,
    level: float,
    seed: int,
    weights: Sequence[float] = (1.0,),
) -> tuple[float, float, float]:
    """``sum(w_i * mean(arm_i))`` and its percentile interval when prompts and training seeds
    are both random: each arm is a (seeds x prompts) 0/1 matrix over the same prompts, in the
    same order. Each replicate draws the prompts once, for all arms (they answer the same
    prompts), and each arm's seeds on their own (its training runs), with replacement: the
    "pigeonhole" bootstrap for crossed random effects (Owen 2007), which counts both the
    prompts' sampling noise and the seed-to-seed variance. Weights (1, -1) give a difference.
    With one seed per arm it is a paired prompt bootstrap. With few seeds it understates the
    seed variance (resampling 3 seeds sees (3-1)/3 of it); the tables say how many seeds.
    """
    rng = np.random.default_rng(seed)
    n = arms[0].shape[1]
    if any(a.shape[1] != n for a in arms) or len(weights) != len(arms):
        raise ValueError("every arm needs the same prompts, and one weight per arm")
    prompt_w = rng.multinomial(n, np.full(n, 1 / n), size=reps) / n  # reps x prompts
    point, draws = 0.0, np.zeros(reps)
    for w, arm in zip(weights, arms, strict=True):
        arm = np.asarray(arm, dtype=float)
        s = arm.shape[0]
        seed_w = rng.multinomial(s, np.full(s, 1 / s), size=reps) / s  # reps x seeds
        per_seed = prompt_w @ arm.T  # reps x seeds: each seed's rate on the drawn prompts
        draws += w * (per_seed * seed_w).sum(axis=1)
        point += w * float(arm.mean())
    tail = (1 - level) / 2
    lo, hi = np.quantile(draws, [tail, 1 - tail])
    return point, float(lo), float(hi)


def t_quantile(q: float, df: int) -> float:
    """Student's t quantile (numpy and the standard library have none; scipy is not a
    dependency): bisection on the CDF, integrated from the density by Simpson's rule."""
    if df < 1 or not 0 < q < 1:
        raise ValueError(f"need df >= 1 and 0 < q < 1, got df={df}, q={q}")
    if q < 0.5:
        return -t_quantile(1 - q, df)
    scale = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf(x: float) -> float:
        t = np.linspace(0.0, x, 4001)
        f = scale * (1 + t * t / df) ** (-(df + 1) / 2)
        h = x / 4000
        return 0.5 + h / 3 * float(f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())

    lo, hi = 0.0, 1.0
    while cdf(hi) < q:
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < q else (lo, mid)
    return (lo + hi) / 2


def combine_over_seeds(
    points: Sequence[float],
    los: Sequence[float],
    his: Sequence[float],
    *,
    level: float,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> tuple[float, float, float]:
    """The mean of the seeds' estimates and an interval from their own intervals and their
    spread, for tables whose per-prompt answers are not read (Table 2, the sweeps, helpfulness).

    Each side's half-width is ``sqrt(mean(own half-width^2) + t^2 * var(points) / S)``: the
    seeds' own (Wilson, Newcombe or bootstrap) intervals carry the prompts' noise, which does not
    shrink with more seeds because every seed answers the same prompts, and the sample variance
    of the seeds' estimates carries the training runs', with Student's t on S - 1 degrees of
    freedom (a normal quantile there covers about 93% at three seeds, 86% at two, in this
    project's simulation). It counts the per-answer noise twice, so it is wider than the crossed
    bootstrap of Table 1 (:func:`crossed_bootstrap`); with one seed it is that seed's interval.
    ``bounds`` clips it (rates live in [0, 1]; None: no clipping).
    """
    x, lo, hi = (np.asarray(v, dtype=float) for v in (points, los, his))
    if not (len(x) == len(lo) == len(hi)) or len(x) == 0:
        raise ValueError("one estimate and one interval per seed, at least one seed")
    mean = float(x.mean())
    if np.isnan(x).any() or np.isnan(lo).any() or np.isnan(hi).any():
        return mean, math.nan, math.nan
    between = 0.0
    if len(x) > 1:
        t = t_quantile(0.5 + level / 2, len(x) - 1)
        between = t * t * float(x.var(ddof=1)) / len(x)
    low = mean - math.sqrt(float(((x - lo) ** 2).mean()) + between)
    high = mean + math.sqrt(float(((hi - x) ** 2).mean()) + between)
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return mean, low, high
