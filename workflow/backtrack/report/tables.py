"""Rates with confidence intervals and the tables built from judged generations."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from statistics import NormalDist
from typing import Any

import pandas as pd

from backtrack.judge.refusal import turns_back


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k/n``.

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


def rate_columns(prefix: str, flags: list[bool], level: float) -> dict[str, Any]:
    """``{prefix}``, ``{prefix}_ci_lo``, ``{prefix}_ci_hi`` for a list of booleans."""
    k, n = sum(flags), len(flags)
    lo, hi = wilson_interval(k, n, level)
    return {
        prefix: k / n if n else math.nan,
        f"{prefix}_ci_lo": lo,
        f"{prefix}_ci_hi": hi,
    }


def summarise_set(name: str, judged: list[dict[str, Any]], level: float) -> dict[str, Any]:
    """Columns for one evaluation set of one model."""
    harmful = all(r["harmful"] for r in judged)
    cols: dict[str, Any] = {f"{name}_n": len(judged)}
    if harmful:
        cols |= rate_columns(f"{name}_unsafe", [r["unsafe"] for r in judged], level)
        cols[f"{name}_empty_rate"] = mean_or_nan(r["detail"].startswith("empty") for r in judged)
        cols[f"{name}_turn_back_rate"] = mean_or_nan(turns_back(r["visible"]) for r in judged)
    else:
        cols |= rate_columns(f"{name}_refusal", [r["refused"] for r in judged], level)
    cols[f"{name}_reset_rate"] = mean_or_nan(r["reset"] for r in judged)
    cols[f"{name}_parse_errors"] = sum(bool(r.get("parse_error")) for r in judged)
    return cols


def mean_or_nan(xs: Iterable[float | bool]) -> float:
    """The mean, or NaN for no values (an empty set is a missing cell, not an error)."""
    xs = list(xs)
    return sum(xs) / len(xs) if xs else math.nan


def efficiency_columns(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Speed as one request sees it, from generation records of plain (non-prefill) sets.

    Rates are total tokens over total request time (each row of a batch advances one token per
    decoding step, so this is the per-request decoding speed). Time to first visible token is the
    time until the first token after the last [RESET]; answers with no visible token are left out.
    """
    t = sum(r["total_time_s"] for r in records)
    ttft = [r["time_to_first_token_s"] for r in records if r["time_to_first_token_s"] is not None]
    ttfvt = [
        r["time_to_first_visible_token_s"]
        for r in records
        if r["time_to_first_visible_token_s"] is not None
    ]
    return {
        "generated_tokens_per_s": (
            sum(r["tokens_generated"] for r in records) / t if t else math.nan
        ),
        "visible_tokens_per_s": sum(r["tokens_visible"] for r in records) / t if t else math.nan,
        "median_time_to_first_token_s": statistics.median(ttft) if ttft else math.nan,
        "median_time_to_first_visible_token_s": statistics.median(ttfvt) if ttfvt else math.nan,
    }


def table1_row(
    key: dict[str, str],
    sets: dict[str, list[dict[str, Any]]],
    kinds: dict[str, str],
    level: float,
    provenance: dict[str, str],
) -> dict[str, Any]:
    """One Table 1 row: per-set columns, the pooled unsafe rate over the ``harmful`` sets, tokens
    and speed (over the sets that are not prefilled, which every row answers alike).

    ``kinds`` maps each set to ``harmful``, ``benign`` or ``prefill`` (``config.eval_datasets``).
    """
    row: dict[str, Any] = dict(key)
    for name, judged in sets.items():
        row |= summarise_set(name, judged, level)
    pooled = [r["unsafe"] for s, rs in sets.items() if kinds[s] == "harmful" for r in rs]
    row["overall_n"] = len(pooled)
    row |= rate_columns("overall_unsafe", pooled, level)
    plain = [r for s, rs in sets.items() if kinds[s] != "prefill" for r in rs]
    row["mean_tokens_generated"] = mean_or_nan(r["tokens_generated"] for r in plain)
    row["mean_tokens_visible"] = mean_or_nan(r["tokens_visible"] for r in plain)
    row |= efficiency_columns(plain)
    return row | provenance


def build_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows into a DataFrame with the identifying columns first."""
    df = pd.DataFrame(rows)
    first = [c for c in ("model", "method", "stage") if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def table2_row(
    key: dict[str, str],
    attack: str,
    prompts: str,
    judged: list[dict[str, Any]],
    level: float,
    judge: str,
) -> dict[str, Any]:
    """One Table 2 row: attack success rate (unsafe visible answers) with its interval, the
    ``[RESET]`` rate under attack, and, for optimising attacks, the search effort.
    """
    row: dict[str, Any] = {**key, "attack": attack, "prompts": prompts, "n": len(judged)}
    row |= rate_columns("asr", [r["unsafe"] for r in judged], level)
    row["reset_rate"] = mean_or_nan(r["reset"] for r in judged)
    # Among successful attacks, how many got past a [RESET] (reset, yet unsafe after it).
    row["unsafe_after_reset"] = sum(r["unsafe"] and r["reset"] for r in judged)
    if judged and "steps" in judged[0]:
        row["mean_steps"] = mean_or_nan(r["steps"] for r in judged)
        row["mean_attack_seconds"] = mean_or_nan(
            r.get("attack_seconds", r["seconds"]) for r in judged
        )
        row["stopped_success"] = sum(r["stopped"] == "success" for r in judged)
    return row | {"judge": judge}
