"""Table 1 and Table 2 rows from judged generations, in the columns of :mod:`backtrack.metrics`.

A judgment record says whether its visible answer turned back (``turned_back``, written by the
judge job), so the tables count it without re-reading the answer.
"""

from __future__ import annotations

from typing import Any

from backtrack.metrics import length_columns, rate_columns
from backtrack.stats import mean_or_nan


def summarise_set(name: str, judged: list[dict[str, Any]], level: float) -> dict[str, Any]:
    """Columns for one evaluation set of one model."""
    harmful = all(r["harmful"] for r in judged)
    cols: dict[str, Any] = {f"{name}_n": len(judged)}
    if harmful:
        cols |= rate_columns(f"{name}_unsafe", [r["unsafe"] for r in judged], level)
        cols[f"{name}_empty_rate"] = mean_or_nan(r["detail"].startswith("empty") for r in judged)
        cols[f"{name}_turn_back_rate"] = mean_or_nan(r["turned_back"] for r in judged)
    else:
        cols |= rate_columns(f"{name}_refusal", [r["refused"] for r in judged], level)
    cols[f"{name}_reset_rate"] = mean_or_nan(r["reset"] for r in judged)
    cols[f"{name}_parse_errors"] = sum(bool(r.get("parse_error")) for r in judged)
    return cols


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
    return row | length_columns(plain) | provenance


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
