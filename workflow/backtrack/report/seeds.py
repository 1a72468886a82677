"""Table 1 over training seeds (``results/table1_seeds.csv``): per (model, method, stage) the
mean over seeds of each rate, its range, and an interval that counts both the prompts' and the
seeds' noise.

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

from backtrack.stats import crossed_bootstrap

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
