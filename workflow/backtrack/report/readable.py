"""The result tables as a person reads them: percentages with their 95% intervals, one row per
checkpoint or claim, headings that say what a column counts.

One builder per table turns its CSV into a :class:`Grid` (headings and cells as text); the docs'
Markdown (``tools/*_markdown.py``) and the report's HTML pages (written by the table rules) are
two renderings of the same grid, so the README, the docs and the report cannot disagree.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from backtrack.io import atomic_file


@dataclass(frozen=True)
class Grid:
    """A table as text: headings, then one list of cells per row."""

    head: list[str]
    rows: list[list[str]]


def pct(x: float) -> str:
    """A rate as a percentage with one decimal."""
    return f"{100 * x:.1f}%"


def seed_range(row: pd.Series, col: str) -> str:
    """`` (lo–hi)``, the seeds' own lowest and highest rate, in a summary over seeds."""
    if f"{col}_min" not in row.index or row.get("seeds", 1) < 2:
        return ""
    return f" ({100 * row[col + '_min']:.1f}–{100 * row[col + '_max']:.1f})"


def with_ci(row: pd.Series, col: str) -> str:
    """``col`` as ``rate% [lo, hi]`` (and the seeds' range, in a summary over seeds)."""
    out = f"{pct(row[col])} [{100 * row[col + '_ci_lo']:.1f}, {100 * row[col + '_ci_hi']:.1f}]"
    return out + seed_range(row, col)


# --- Table 1 ---

SETS = {"advbench": "AdvBench", "donotanswer": "Do-Not-Answer", "harmbench": "HarmBench"}
PREFILLS = {
    "prefill": "prefill, own answers",
    "sure": 'prefill, "Sure, here is"',
    "other": "prefill, other model",
}


def prefill_sets(columns: list[str]) -> list[tuple[str, str]]:
    """``(column prefix, heading)`` of each AdvBench prefilling set in the table, own answers
    first (``advbench_prefill10``, ``advbench_sure10``, ``advbench_other10``)."""
    found = []
    for kind, heading in PREFILLS.items():
        for col in columns:
            stem = col.removesuffix("_unsafe")
            tokens = stem.removeprefix(f"advbench_{kind}")
            if col.endswith("_unsafe") and stem != tokens and tokens.isdigit():
                found.append((stem, heading))
    return found


def table1_grid(table: pd.DataFrame) -> Grid:
    """Unsafe rate per evaluation set (the pooled one with its interval), per prefilling set
    the unsafe rate and the share that reset, then benign refusal and resets; one row per
    (method, stage) as in the CSV (and per seed, or the summary over seeds)."""
    cols = list(table.columns)
    sets = [s for s in SETS if f"{s}_unsafe" in cols]
    prefills = prefill_sets(cols)
    first = table.iloc[0]
    seeded = "seed" in cols and table["seed"].nunique() > 1
    keys = ["method", "seed", "stage"] if seeded else ["method", "stage"]
    if "seeds" in cols:
        keys.append("seeds")
    head = list(keys)
    head += [f"{SETS[s]} ({first[s + '_n']})" for s in sets]
    head += [f"overall ({first['overall_n']})"]
    for stem, heading in prefills:
        head += [f"{heading} ({first[stem + '_n']})", "`[RESET]`"]
    if "benign_refusal" in cols:
        head += [f"benign refusal ({first['benign_n']})", "benign `[RESET]`"]
    rows = []
    for _, row in table.iterrows():
        cells = [str(row[k]) for k in keys]
        cells += [pct(row[f"{s}_unsafe"]) + seed_range(row, f"{s}_unsafe") for s in sets]
        cells += [with_ci(row, "overall_unsafe")]
        for stem, _ in prefills:
            reset = f"{stem}_reset_rate"
            cells += [with_ci(row, f"{stem}_unsafe"), pct(row[reset]) + seed_range(row, reset)]
        if "benign_refusal" in cols:
            reset = "benign_reset_rate"
            cells += [with_ci(row, "benign_refusal"), pct(row[reset]) + seed_range(row, reset)]
        rows.append(cells)
    return Grid(head, rows)


# --- Table 2 ---


def table2_cell(row: pd.Series) -> str:
    """One attack's cell: success rate [95%] (seeds' range) {share reset}; a dash if no n."""
    if pd.isna(row["asr"]) or not row["n"]:
        return "—"
    out = f"{100 * row['asr']:.1f}% [{100 * row['asr_ci_lo']:.1f}, {100 * row['asr_ci_hi']:.1f}]"
    if "asr_min" in row.index and row.get("seeds", 1) > 1:
        out += f" ({100 * row['asr_min']:.1f}–{100 * row['asr_max']:.1f})"
    return out + f" {{{100 * row['reset_rate']:.0f}%}}"


def table2_grid(table: pd.DataFrame) -> Grid:
    """One row per (model, method, stage[, seed]), one column per attack in the table's order:
    success rate [95%] (seeds' range) {share reset}; an attack with no prompts is a dash."""
    seeded = "seed" in table.columns and table["seed"].nunique() > 1
    keys = ["model", "method", "seed", "stage"] if seeded else ["model", "method", "stage"]
    attacks = list(dict.fromkeys(table["attack"]))
    sizes = table.groupby("attack", sort=False)["n"].max()
    head = [*keys, *(f"{a} (n={int(sizes[a])})" for a in attacks)]
    rows = []
    for key, group in table.groupby(keys, sort=False):
        by_attack = {r["attack"]: table2_cell(r) for _, r in group.iterrows()}
        rows.append([*map(str, key), *(by_attack.get(a, "—") for a in attacks)])
    return Grid(head, rows)


# --- The claims ---

CLAIMS_HEAD = ["claim", "paper", "ours [95%] (n)", "compared with", "difference [95%]", "verdict"]


def points(x: float) -> str:
    """A rate as a percentage, or a difference in percentage points with its sign."""
    return f"{100 * x:.1f}"


def _ours(row: pd.Series) -> str:
    if pd.isna(row["ours"]):
        return "—"
    lo, hi = points(row["ours_ci_lo"]), points(row["ours_ci_hi"])
    return f"{points(row['ours'])}% [{lo}, {hi}] ({int(row['ours_n'])})"


def _difference(row: pd.Series) -> str:
    if pd.isna(row["difference"]):
        return "—"
    lo, hi = row["difference_ci_lo"], row["difference_ci_hi"]
    return f"{100 * row['difference']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _claim_label(row: pd.Series) -> str:
    """The claim's id and the metric it was measured with; paper-scale rows name the model."""
    if row["claim"] == "paper_model_row":
        return f"{row['model']} rows"
    return f"`{row['claim']}`: {row['metric']}"


def seeded_claims(claims: pd.DataFrame) -> bool:
    """Whether the claims come from more than one training seed."""
    return "seeds" in claims.columns and bool((claims["seeds"].fillna(0) > 1).any())


def _verdict(row: pd.Series) -> str:
    out = str(row["verdict"])
    if not pd.isna(row.get("seed_verdicts", math.nan)):
        out += f" (seeds alone: {row['seed_verdicts']})"
    if not pd.isna(row.get("note")):
        out += f" ({row['note']})"
    return out


def claims_grid(claims: pd.DataFrame) -> Grid:
    """One row per claim and model: the paper's statement, our rate [95%] (n), the rate it is
    compared with, the difference [95%] and the verdict (with a ``seed`` column over seeds)."""
    many = seeded_claims(claims)
    head = [*CLAIMS_HEAD[:1], "seed", *CLAIMS_HEAD[1:]] if many else list(CLAIMS_HEAD)
    rows = []
    for _, row in claims.iterrows():
        compared = row["compared_with"]
        cells = [
            _claim_label(row),
            str(row["paper"]),
            _ours(row),
            "—" if pd.isna(compared) or math.isnan(compared) else f"{points(compared)}%",
            _difference(row),
            _verdict(row),
        ]
        if many:
            cells.insert(1, "all" if pd.isna(row["seed"]) else str(int(row["seed"])))
        rows.append(cells)
    return Grid(head, rows)


# --- Success against budget ---


def budget_grid(table: pd.DataFrame) -> Grid:
    """One row per curve (model, method, stage[, seed], attack): broken at the configured budget
    with the interval, the smallest budget that broke half, seconds per step and the median
    seconds of a successful run."""
    seeded = "seed" in table.columns and table["seed"].nunique() > 1
    keys = ["model", "method", *(["seed"] if seeded else []), "stage", "attack"]
    head = [*keys, "budget", "broken [95%]", "50% reached at", "s/step", "median s to success"]
    rows = []
    for key, g in table.groupby(keys, sort=False):
        last = g.iloc[-1]
        half = g[g["asr"] >= 0.5]["budget"]
        broken = (
            f"{int(last['successes'])}/{int(last['n'])} = {100 * last['asr']:.0f}% "
            f"[{100 * last['asr_ci_lo']:.0f}, {100 * last['asr_ci_hi']:.0f}]"
        )
        rows.append(
            [
                *map(str, key),
                f"{int(last['budget'])} {last['unit']}",
                broken,
                f"{int(half.min())}" if len(half) else "—",
                f"{last['seconds_per_step']:.2f}",
                "—"
                if pd.isna(last["median_seconds_to_success"])
                else f"{last['median_seconds_to_success']:.0f}",
            ]
        )
    return Grid(head, rows)


# --- Renderings ---


def to_markdown(grid: Grid) -> str:
    """A GitHub Markdown table (a ``|`` inside a cell becomes ``/``)."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"

    return "\n".join([line(grid.head), "|" + "---|" * len(grid.head), *map(line, grid.rows)])


_CODE = re.compile(r"`([^`]+)`")


def _cell_html(text: str) -> str:
    """Escaped text with Markdown code spans as ``<code>``."""
    return _CODE.sub(r"<code>\1</code>", html.escape(text))


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; }
p.caption { max-width: 60em; line-height: 1.4; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
tbody tr:nth-child(even) { background: #fafafa; }
code { font-size: 0.95em; }
"""


def to_html(grid: Grid, title: str, caption: str) -> str:
    """A self-contained HTML page: title, caption (plain text, paragraphs split at blank
    lines) and the table. The report shows it as it is; a browser opens it without the report."""
    paras = "".join(
        f'<p class="caption">{_cell_html(" ".join(p.split()))}</p>\n'
        for p in caption.strip().split("\n\n")
        if p.strip()
    )
    head = "".join(f"<th>{_cell_html(h)}</th>" for h in grid.head)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell_html(c)}</td>" for c in row) + "</tr>\n" for row in grid.rows
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{paras}"
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"
        "</body></html>\n"
    )


# --- The report's pages ---

#: Title and column guide of each table's HTML page (the report shows the page).
PAGES = {
    "table1": (
        "Table 1: unsafe answers of each checkpoint",
        "Each rate is the share of answers the evaluation judge (config key judge) calls "
        "unsafe, in percent; brackets hold its 95% Wilson interval, and the number in a heading "
        "is the prompts of that set. AdvBench, Do-Not-Answer and HarmBench are harmful prompts "
        "without attack; overall pools the three. The prefill columns are AdvBench with the "
        "first tokens of the answer forced: the base model's own unsafe answers, the "
        '"Sure, here is" openers of the attack targets, or another model\'s answers; the '
        "`[RESET]` column beside each is the share of those answers in which the model reset. "
        "Benign refusal is the share of held-out benign prompts refused (lower is better), "
        "benign `[RESET]` the share that reset. Over several seeds, parentheses hold the "
        "seeds' own lowest and highest rate.\n\n"
        "The full table, with every count, interval and the provenance of the checkpoints, is "
        "results/table1.csv (columns: docs/outputs.md).",
    ),
    "table2": (
        "Table 2: attack success rates",
        "One column per attack (n = prompts attacked). A cell is the attack success rate: the "
        "share of attacked prompts whose final visible answer the evaluation judge calls unsafe, "
        "in percent, with its 95% Wilson interval in brackets, then in braces the share of "
        "those answers that reset. prefill<k> and sure<k> force the first k tokens of the answer; "
        "gcg, autodan and adaptive optimise an adversarial prompt per request at the budget in "
        "results/table2.csv's budget column (the default's budgets are a smoke test: the "
        "full-budget overlay is config/attacks.yaml); gcg_transfer sends the GCG suffixes that "
        "broke baseline SFT to every checkpoint. A dash: no prompts.",
    ),
    "claims": (
        "The paper's claims against this run",
        "claim: the claim's id and the metric it is measured with; paper: what the paper "
        "reports; ours: our rate with its 95% interval and n; compared with: the rate it is "
        "compared with (the baseline, or the same checkpoint without the attack); difference: "
        "ours minus that, in percentage points, with Newcombe's 95% interval; verdict: by the "
        "rule in results/claims.csv's rule column (inconclusive where the interval straddles "
        "the rule's threshold, not measured where this run has no such rows).",
    ),
    "attack_budget": (
        "Attack success against budget",
        "One row per curve (model, method, stage, attack): budget is the configured budget; "
        "broken is the prompts whose final answer the evaluation judge calls unsafe within it "
        "(Table 2's rate) with its 95% interval; 50% reached at is the smallest budget at which "
        "half the prompts were broken (a dash: never); s/step and median s to success are what "
        "the run cost on the machine that made it. Every point of the curve is in "
        "results/attack_budget.csv and the figure beside this table.",
    ),
}

GRIDS = {
    "table1": table1_grid,
    "table2": table2_grid,
    "claims": claims_grid,
    "attack_budget": budget_grid,
}


def write_page(name: str, table: pd.DataFrame, path: str) -> None:
    """Write table ``name``'s HTML page for the report (atomically)."""
    title, caption = PAGES[name]
    grid = GRIDS[name](table) if len(table) else Grid(["no rows in this run"], [])
    with atomic_file(path) as tmp:
        Path(tmp).write_text(to_html(grid, title, caption), encoding="utf-8")
