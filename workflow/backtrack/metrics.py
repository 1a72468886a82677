"""Table columns computed from judged and generation records, and how a table is written.

Below the stages that make tables (sweeps, report, helpfulness), so that a rate or a speed is
one computation wherever it appears and every table file has the same layout.
"""

from __future__ import annotations

import math
import os
import statistics
from typing import Any

import pandas as pd

from backtrack.io import atomic_file
from backtrack.stats import mean_or_nan, wilson_interval

#: Columns that identify a row, first in every table.
KEY_COLUMNS = ("model", "method", "stage")


def rate_columns(prefix: str, flags: list[bool], level: float) -> dict[str, Any]:
    """``{prefix}``, ``{prefix}_ci_lo``, ``{prefix}_ci_hi`` for a list of booleans."""
    k, n = sum(flags), len(flags)
    lo, hi = wilson_interval(k, n, level)
    return {
        prefix: k / n if n else math.nan,
        f"{prefix}_ci_lo": lo,
        f"{prefix}_ci_hi": hi,
    }


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


def length_columns(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean answer lengths (all tokens, visible tokens), then :func:`efficiency_columns`."""
    return {
        "mean_tokens_generated": mean_or_nan(r["tokens_generated"] for r in records),
        "mean_tokens_visible": mean_or_nan(r["tokens_visible"] for r in records),
    } | efficiency_columns(records)


def build_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows into a DataFrame with the identifying columns first."""
    df = pd.DataFrame(rows)
    first = [c for c in KEY_COLUMNS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def write_table(rows: list[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write rows as a CSV table (identifying columns first, four decimals), atomically."""
    with atomic_file(path) as tmp:
        build_table(rows).to_csv(tmp, index=False, float_format="%.4f")
