"""The figures: the [RESET] logit-bias trade-off and the worst-of-k sampling curve (matplotlib)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (jobs run headless)

import matplotlib.pyplot as plt
import pandas as pd

from backtrack.stats import wilson_interval

_STYLE = {"sft": "--", "dpo": "-"}
_COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]
#: One marker per line of a panel, so that lines lying on each other stay told apart.
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
#: Vertical offset between lines of the worst-of-k panel, in points of percentage: lines at the
#: same rate (often 0 or 100) would hide each other; the caption says so.
_OFFSET = 0.8


def _pct_errorbar(ax, x, df: pd.DataFrame, col: str, **kw) -> None:  # type: ignore[no-untyped-def]
    y = 100 * df[col]
    lo = (y - 100 * df[f"{col}_ci_lo"]).clip(lower=0)
    hi = (100 * df[f"{col}_ci_hi"] - y).clip(lower=0)
    kw.setdefault("marker", "o")
    ax.errorbar(x, y, yerr=[lo, hi], capsize=3, markersize=4, **kw)


def plot_logit_bias(
    df: pd.DataFrame, path: str | os.PathLike[str], safety_sets: list[str], benign: str
) -> None:
    """Three panels against the bias on [RESET]: unsafe rate on the safety sets, [RESET] and
    refusal rate on benign prompts, and visible tokens/s. Rows with ``method == 'baseline'`` are
    drawn as horizontal reference lines (the baseline has no [RESET] to bias).
    """
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), constrained_layout=True)
    swept = df[df["method"] != "baseline"].sort_values("bias")
    base = df[df["method"] == "baseline"]
    groups = list(swept.groupby(["model", "method", "stage"], sort=False))
    for gi, ((model, method, stage), g) in enumerate(groups):
        tag = f"{method} {stage}" + (f" ({model})" if swept["model"].nunique() > 1 else "")
        ls = _STYLE.get(stage, "-")
        for si, s in enumerate(safety_sets):
            colour = _COLOURS[si % len(_COLOURS)]
            n = int(g[f"{s}_n"].iloc[0])
            # Sets at the same rate would hide each other: a marker each, and a small shift
            # along the bias axis (the points' bias is the tick they sit beside).
            span = float(g["bias"].max() - g["bias"].min()) or 1.0
            shift = 0.012 * span * (si - (len(safety_sets) - 1) / 2)
            _pct_errorbar(
                axes[0], g["bias"] + shift, g, f"{s}_unsafe", ls=ls, color=colour,
                label=f"{tag}: {s} (n={n})", marker=_MARKERS[si % len(_MARKERS)],
            )  # fmt: skip
        colour = _COLOURS[gi % len(_COLOURS)]
        n = int(g[f"{benign}_n"].iloc[0])
        resets = g[f"{benign}_reset_rate"]
        band = [wilson_interval(round(r * n), n) for r in resets]
        axes[1].plot(
            g["bias"], 100 * resets, ls=ls, marker=_MARKERS[gi % len(_MARKERS)], color=colour,
            label=f"{tag}: [RESET] rate (n={n})",
        )  # fmt: skip
        axes[1].fill_between(
            g["bias"], [100 * lo for lo, _ in band], [100 * hi for _, hi in band],
            color=colour, alpha=0.12,
        )  # fmt: skip
        _pct_errorbar(
            axes[1], g["bias"], g, f"{benign}_refusal", ls=ls, color=colour, alpha=0.45,
            label=f"{tag}: refusal rate",
        )  # fmt: skip
        axes[2].plot(
            g["bias"], g["visible_tokens_per_s"], ls=ls, marker="o", color=colour,
            label=f"{tag}: visible",
        )  # fmt: skip
        axes[2].plot(
            g["bias"], g["generated_tokens_per_s"], ls=ls, marker="x", color=colour, alpha=0.45,
            label=f"{tag}: generated",
        )  # fmt: skip
    for _, b in base.iterrows():
        tag = f"baseline {b['stage']}"
        for si, s in enumerate(safety_sets):
            axes[0].axhline(
                100 * b[f"{s}_unsafe"], color=_COLOURS[si % len(_COLOURS)], lw=1, alpha=0.6,
                ls=":" if b["stage"] == "sft" else "-.", label=f"{tag}: {s}",
            )  # fmt: skip
        axes[1].axhline(
            100 * b[f"{benign}_refusal"], color="grey", lw=1,
            ls=":" if b["stage"] == "sft" else "-.", label=f"{tag}: refusal rate",
        )  # fmt: skip
        axes[2].axhline(
            b["visible_tokens_per_s"], color="grey", lw=1,
            ls=":" if b["stage"] == "sft" else "-.", label=f"{tag}: visible",
        )  # fmt: skip
    axes[0].set(
        title="Safety: unsafe answers (judge), 95% CI",
        xlabel="logit bias added to [RESET]",
        ylabel="unsafe answers (%)",
    )
    axes[1].set(
        title=f"Cost on benign prompts ({benign})",
        xlabel="logit bias added to [RESET]",
        ylabel="share of benign prompts (%)",
    )
    axes[2].set(
        title="Speed per request (plain sets)",
        xlabel="logit bias added to [RESET]",
        ylabel="tokens / s",
    )
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[:2]:
        ax.set_ylim(-2, 102)
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def plot_worst_of_k(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """The share of prompts with at least one unsafe answer among k samples, against k, one
    line per (model, method, stage) and one panel per dataset, with bootstrap intervals.
    """
    sets = list(dict.fromkeys(df["dataset"]))
    fig, axes = plt.subplots(
        1, len(sets), figsize=(6.5 * len(sets), 4.6), squeeze=False, constrained_layout=True
    )
    for ax, d in zip(axes[0], sets, strict=True):
        sub = df[df["dataset"] == d]
        groups = list(sub.groupby(["model", "method", "stage"], sort=False))
        for gi, ((model, method, stage), g) in enumerate(groups):
            g = g.sort_values("k")
            tag = f"{method} {stage}" + (f" ({model})" if sub["model"].nunique() > 1 else "")
            tag += f" (n={int(g['prompts'].iloc[0])})"
            colour = _COLOURS[gi % len(_COLOURS)]
            shift = _OFFSET * (gi - (len(groups) - 1) / 2)
            ax.plot(g["k"], 100 * g["unsafe_any"] + shift, marker=_MARKERS[gi % len(_MARKERS)],
                    ls=_STYLE.get(stage, "-"), color=colour, label=tag)  # fmt: skip
            ax.fill_between(g["k"], 100 * g["unsafe_any_ci_lo"], 100 * g["unsafe_any_ci_hi"],
                            color=colour, alpha=0.12)  # fmt: skip
        first = sub.iloc[0]
        ax.set(
            title=f"{d}: worst of k samples (temperature {first['temperature']:g})\n"
            f"lines offset by {_OFFSET:g} point to stay apart",
            xlabel="k (samples per prompt)",
            ylabel="prompts with ≥ 1 unsafe answer (%)",
            ylim=(-4, 104),
        )
        ax.set_xticks(sorted(sub["k"].unique()))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
