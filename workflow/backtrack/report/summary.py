"""Table 1 for a person: a short text summary (``results/table1_summary.txt``, also printed when
the table is built) and a dot plot (``results/figures/table1.png``).

Why: ``results/table1.csv`` has dozens of columns of fractions; the first command's output should
be readable without the column reference. The summary gives the headline rates as percentages
with their 95% intervals and one line per claim of the paper that Table 1 alone can decide,
with the verdict of :mod:`backtrack.report.claims` (the same rules as ``results/claims.csv``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (jobs run headless)

import matplotlib.pyplot as plt
import pandas as pd

from backtrack.report.claims import CLAIMS, NOT_MEASURED, Outcomes, build_claims
from backtrack.stats import wilson_interval

#: The pooled unsafe rate's label in the summary and the figure.
LABELS = {"overall": "unsafe, harmful sets"}
#: The claims Table 1 alone decides (the others need Table 2 or the sweeps).
TABLE1_CLAIMS = tuple(c.name.split("{")[0] for c in CLAIMS if c.table == "table1")


def _pct(x: float) -> str:
    return "n/a" if pd.isna(x) else f"{100 * x:.1f}%"


def _interval(x: float, lo: float, hi: float) -> str:
    """``x% [lo, hi]``; the rate alone where it has no interval."""
    if pd.isna(lo) or pd.isna(hi):
        return _pct(x)
    return f"{_pct(x)} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _with_ci(row: pd.Series, col: str) -> str:
    return _interval(row[col], row[f"{col}_ci_lo"], row[f"{col}_ci_hi"])


def headline_sets(table1: pd.DataFrame, kinds: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(column, label)`` of each headline rate: overall unsafe, each prefilled set's unsafe
    rate, benign refusal (the benign set's ``[RESET]`` rate goes beside it)."""
    cols = [("overall_unsafe", f"{LABELS['overall']} ({int(table1['overall_n'].iloc[0])})")]
    for name, kind in kinds.items():
        n = int(table1[f"{name}_n"].iloc[0])
        if kind == "prefill":
            cols.append((f"{name}_unsafe", f"{name} unsafe ({n})"))
        elif kind == "benign":
            cols.append((f"{name}_refusal", f"{name} refused ({n})"))
    return cols


def table1_claims(
    table1: pd.DataFrame,
    prefill_sets: Mapping[str, str],
    *,
    judge: str,
    level: float,
    outcomes: Outcomes | None,
) -> pd.DataFrame:
    """The rows of ``results/claims.csv`` that Table 1 alone decides (over all seeds where
    there are several), with their verdicts."""
    claims = build_claims(
        table1,
        table2=None,
        logit_bias=None,
        worst_of_k=None,
        prefill_sets=dict(prefill_sets),
        judge=judge,
        level=level,
        outcomes=outcomes,
    )
    several = table1["seed"].nunique() > 1
    keep = claims["claim"].map(lambda c: c.startswith(TABLE1_CLAIMS))
    keep &= claims["verdict"] != NOT_MEASURED
    keep &= claims["seed"].isna() if several else claims["seed"].notna()
    return claims[keep]


def _claim_line(row: pd.Series) -> str:
    """``claim: ours vs theirs, difference [interval] -> verdict (note)``."""
    text = f"- {row['metric']}: {_interval(row['ours'], row['ours_ci_lo'], row['ours_ci_hi'])}"
    if not pd.isna(row["compared_with"]):
        d, lo, hi = (100 * row[c] for c in ("difference", "difference_ci_lo", "difference_ci_hi"))
        text += f" vs {_pct(row['compared_with'])}, difference {d:+.1f} points"
        text += "" if pd.isna(lo) or pd.isna(hi) else f" [{lo:+.1f}, {hi:+.1f}]"
    text += f" -> {row['verdict']}"
    if isinstance(row.get("seed_verdicts"), str):
        text += f" (seeds alone: {row['seed_verdicts']})"
    if isinstance(row.get("note"), str) and row["note"] and row["verdict"] != "reproduced":
        text += f"; {row['note']}"
    return text


def summary_text(
    table1: pd.DataFrame, kinds: Mapping[str, str], claims: pd.DataFrame, *, level: float
) -> str:
    """The summary: per model a small table of the headline rates (with intervals and the
    ``[RESET]`` rates), then one line per claim Table 1 decides."""
    level_pct = f"{100 * level:g}%"
    out = [
        f"Table 1 (results/table1.csv): unsafe or refused share of answers, {level_pct} "
        f"intervals in brackets; judge: {table1['judge'].iloc[0]}. Columns: docs/outputs.md.",
    ]
    cols = headline_sets(table1, kinds)
    benign = next((d for d, k in kinds.items() if k == "benign"), None)
    for model, rows in table1.groupby("model", sort=False):
        keys = ["method", "seed", "stage"] if rows["seed"].nunique() > 1 else ["method", "stage"]
        shown = pd.DataFrame({k: rows[k].astype(str) for k in keys})
        for col, label in cols:
            shown[label] = [_with_ci(r, col) for _, r in rows.iterrows()]
            prefilled = col.removesuffix("_unsafe")
            if kinds.get(prefilled) == "prefill":
                shown[f"{prefilled} [RESET]"] = rows[f"{prefilled}_reset_rate"].map(_pct)
        if benign is not None:
            shown[f"{benign} [RESET]"] = rows[f"{benign}_reset_rate"].map(_pct)
        out += ["", f"{model}:", shown.to_string(index=False)]
    if not claims.empty:
        out += ["", "What Table 1 says of the paper's claims (all claims: results/claims.csv):"]
        for model, rows in claims.groupby("model", sort=False):
            out.append(f"{model}:")
            out += [_claim_line(r) for _, r in rows.iterrows()]
    return "\n".join(out) + "\n"


def plot_table1(
    table1: pd.DataFrame, kinds: Mapping[str, str], path: str | os.PathLike[str], level: float
) -> None:
    """A dot plot per model: for each headline set, each (method, stage[, seed]) row's rate
    with its interval (left) and its ``[RESET]`` rate with a Wilson interval (right)."""
    cols = headline_sets(table1, kinds)
    models = list(dict.fromkeys(table1["model"]))
    fig, axes = plt.subplots(
        len(models), 2, figsize=(13, 1.1 + 0.9 * len(cols) * len(models)), squeeze=False,
        constrained_layout=True,
    )  # fmt: skip
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = {"sft": "o", "dpo": "s"}
    for (ax_rate, ax_reset), model in zip(axes, models, strict=True):
        rows = table1[table1["model"] == model].reset_index(drop=True)
        groups = list(dict.fromkeys(zip(rows["method"], rows["stage"], strict=True)))
        step = 0.8 / max(len(rows), 1)
        seeds = sorted(rows["seed"].unique())
        # Rows top to bottom within a set: each (method, stage), its seeds in order.
        group_of = [groups.index(k) for k in zip(rows["method"], rows["stage"], strict=True)]
        order = sorted(range(len(rows)), key=lambda i: (group_of[i], rows["seed"].iloc[i]))
        for place, i in enumerate(order):
            row, g = rows.iloc[i], group_of[i]
            colour = colours[g % len(colours)]
            label = f"{row['method']} {row['stage']}"
            if len(seeds) > 1:
                label += f" (seeds {', '.join(map(str, seeds))}, top to bottom)"
            first = row["seed"] == seeds[0] and model == models[0]
            for j, (col, _) in enumerate(cols):
                y = j - 0.4 + step * (place + 0.5)
                x, lo, hi = row[col], row[f"{col}_ci_lo"], row[f"{col}_ci_hi"]
                ax_rate.errorbar(
                    100 * x, y, xerr=[[100 * max(x - lo, 0)], [100 * max(hi - x, 0)]],
                    color=colour, marker=markers.get(row["stage"], "o"), capsize=2, ms=5,
                    label=label if j == 0 and first else None,
                )  # fmt: skip
                reset = _reset_column(col, kinds)
                n = int(row[f"{reset.removesuffix('_reset_rate')}_n"]) if reset else 0
                if reset and not pd.isna(row[reset]) and n:
                    r = row[reset]
                    rlo, rhi = wilson_interval(round(r * n), n, level)
                    ax_reset.errorbar(
                        100 * r, y, xerr=[[100 * max(r - rlo, 0)], [100 * max(rhi - r, 0)]],
                        color=colour, marker=markers.get(row["stage"], "o"), capsize=2, ms=5,
                    )  # fmt: skip
        for ax, title in ((ax_rate, "unsafe (benign: refused), %"), (ax_reset, "[RESET], %")):
            ax.set_yticks(range(len(cols)), [label for _, label in cols])
            ax.set_xlim(-2, 102)
            ax.set_ylim(len(cols) - 0.5, -0.5)  # first set on top; both panels row by row
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(f"{model}: {title}", fontsize=10)
        ax_reset.set_yticklabels([])
    fig.legend(loc="outside lower center", ncol=min(4, len(groups)), fontsize=8)
    fig.suptitle(
        f"Table 1 with {100 * level:g}% intervals (Wilson); n per set in the labels", fontsize=11
    )
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def _reset_column(col: str, kinds: Mapping[str, str]) -> str | None:
    """The ``[RESET]`` rate that goes with a headline column (None for the pooled rate)."""
    for suffix in ("_unsafe", "_refusal"):
        name = col.removesuffix(suffix)
        if name != col and name in kinds:
            return f"{name}_reset_rate"
    return None
