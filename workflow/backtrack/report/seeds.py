"""Tables over training seeds: per (model, method, stage) the mean over seeds of each rate, its
range, and an interval that counts both the prompts' and the seeds' noise. Table 1
(``results/table1_seeds.csv``) from its judged answers; Table 2, the sweeps and helpfulness
(``results/<table>_seeds.csv``) from the per-seed tables themselves (:func:`summarise_table`).

Why a bootstrap over prompts and seeds together: one training run moved the project's verdicts
as much as the evaluation prompts did, and the Wilson intervals of Table 1 see only the prompts.
The seeds answer the same prompts, so their rates are not independent samples either; the crossed
bootstrap (:func:`backtrack.stats.crossed_bootstrap`) draws prompts once for every seed and the
seeds on their own, which keeps that structure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from backtrack.stats import combine_over_seeds, crossed_bootstrap

#: Which judged field a set's rate counts, by the set's kind (backtrack.plan.eval_datasets).
RATE_FIELD = {"harmful": "unsafe", "dev": "unsafe", "prefill": "unsafe", "benign": "refused"}
#: The column name of that rate, as in Table 1.
RATE_NAME = {"unsafe": "unsafe", "refused": "refusal"}


def outcome_matrix(per_seed: Sequence[Sequence[dict[str, Any]]], field: str) -> np.ndarray:
    """A (seeds x prompts) 0/1 matrix of ``field`` from each seed's judged records, aligned by
    record id; every seed must have answered the same prompts."""
    ids = sorted(r["id"] for r in per_seed[0])
    rows = []
    for records in per_seed:
        by_id = {r["id"]: bool(r[field]) for r in records}
        if sorted(by_id) != ids:
            raise ValueError(
                f"seeds answered different prompts ({len(by_id)} against {len(ids)} ids): "
                "every seed's generations must cover the same evaluation set"
            )
        rows.append([by_id[i] for i in ids])
    return np.asarray(rows, dtype=float)


def rate_summary(
    prefix: str, matrix: np.ndarray, *, level: float, reps: int, seed: int
) -> dict[str, float]:
    """``{prefix}`` (mean over seeds), ``_min`` and ``_max`` (the seeds' own rates), and
    ``_ci_lo``/``_ci_hi`` (crossed bootstrap)."""
    per_seed = matrix.mean(axis=1)
    mean, lo, hi = crossed_bootstrap([matrix], reps=reps, level=level, seed=seed)
    return {
        prefix: mean,
        f"{prefix}_min": float(per_seed.min()),
        f"{prefix}_max": float(per_seed.max()),
        f"{prefix}_ci_lo": lo,
        f"{prefix}_ci_hi": hi,
    }


def summary_row(
    key: Mapping[str, Any],
    per_seed: Mapping[int, Mapping[str, list[dict[str, Any]]]],
    kinds: Mapping[str, str],
    *,
    level: float,
    reps: int,
    seed: int,
) -> dict[str, Any]:
    """One row over seeds: per set its rate and ``[RESET]`` rate summaries, then the pooled
    unsafe rate over the harmful sets (``overall``), as Table 1 pools them."""
    seeds = sorted(per_seed)
    row: dict[str, Any] = dict(key) | {"seeds": len(seeds), "seed_list": " ".join(map(str, seeds))}
    pooled = []
    for name, kind in kinds.items():
        judged = [per_seed[s][name] for s in seeds]
        field = RATE_FIELD[kind]
        matrix = outcome_matrix(judged, field)
        row[f"{name}_n"] = matrix.shape[1]
        stats = {"level": level, "reps": reps, "seed": seed}
        row |= rate_summary(f"{name}_{RATE_NAME[field]}", matrix, **stats)
        resets = outcome_matrix(judged, "reset").mean(axis=1)
        row |= {f"{name}_reset_rate": float(resets.mean())}
        row |= {f"{name}_reset_rate_min": float(resets.min())}
        row |= {f"{name}_reset_rate_max": float(resets.max())}
        if kind == "harmful":
            pooled.append(matrix)
    if pooled:
        overall = np.concatenate(pooled, axis=1)
        row["overall_n"] = overall.shape[1]
        row |= rate_summary("overall_unsafe", overall, level=level, reps=reps, seed=seed)
    return row


def summarise_table(
    df: pd.DataFrame,
    *,
    numeric_keys: Sequence[str] = (),
    unbounded: Sequence[str] = (),
    level: float,
) -> pd.DataFrame:
    """One row per group of a per-seed table: the rows that differ only in ``seed``.

    The groups are the table's text columns (model, method, stage, attack, set, judge, ...) and
    ``numeric_keys`` (a sweep's bias or k). A column ``x`` with ``x_ci_lo`` and ``x_ci_hi`` gets
    the seeds' mean, their range (``x_min``, ``x_max``) and the interval of
    :func:`backtrack.stats.combine_over_seeds`, clipped to [0, 1] unless named in ``unbounded``;
    any other number its mean over seeds. Why from the table and not the answers: these tables
    have several sources of answers each (attack transcripts, sampled sweeps, scores), and the
    seeds' own intervals already hold the prompts' noise.
    """
    if "seed" not in df.columns:
        raise ValueError("a per-seed table needs a 'seed' column")
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and c != "seed"]
    keys = [c for c in df.columns if c not in numeric and c != "seed"] + list(numeric_keys)
    missing = [k for k in numeric_keys if k not in df.columns]
    if missing:
        raise ValueError(f"key columns {missing} are not in the table ({list(df.columns)})")
    with_ci = [c for c in numeric if f"{c}_ci_lo" in df.columns and f"{c}_ci_hi" in df.columns]
    bounds = {f"{c}_ci_{side}" for c in with_ci for side in ("lo", "hi")}
    rows = []
    for group, part in df.groupby(keys, sort=False, dropna=False):
        row: dict[str, Any] = dict(zip(keys, group, strict=True))
        seeds = sorted(int(s) for s in part["seed"])
        if len(set(seeds)) != len(seeds):
            raise ValueError(
                f"rows {row} repeat a seed ({seeds}): a column that tells them apart is not "
                "among the keys (numeric_keys)"
            )
        row |= {"seeds": len(seeds), "seed_list": " ".join(map(str, seeds))}
        for c in numeric:
            if c in numeric_keys or c in bounds:
                continue
            if c in with_ci:
                mean, lo, hi = combine_over_seeds(
                    part[c], part[f"{c}_ci_lo"], part[f"{c}_ci_hi"], level=level,
                    bounds=None if c in unbounded else (0.0, 1.0),
                )  # fmt: skip
                low, high = part[c].min(skipna=False), part[c].max(skipna=False)
                row |= {c: mean, f"{c}_min": low, f"{c}_max": high}
                row |= {f"{c}_ci_lo": lo, f"{c}_ci_hi": hi}
            else:
                row[c] = part[c].mean(skipna=False)
        rows.append(row)
    return pd.DataFrame(rows)
