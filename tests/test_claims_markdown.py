"""tools/claims_markdown.py: the README's claims table from a claims.csv."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("claims_markdown", ROOT / "tools/claims_markdown.py")
md = importlib.util.module_from_spec(spec)
sys.modules["claims_markdown"] = md
spec.loader.exec_module(md)

NAN = float("nan")


def _claim(claim: str, ours: float, compared: float, verdict: str, note: float | str = NAN):
    diff = NAN if compared != compared else ours - compared
    return {
        "claim": claim,
        "model": "m",
        "paper": "a | b",
        "metric": "overall unsafe",
        "ours": ours,
        "ours_ci_lo": ours / 2,
        "ours_ci_hi": ours * 2,
        "ours_n": 300.0,
        "compared_with": compared,
        "difference": diff,
        "difference_ci_lo": diff - 0.01,
        "difference_ci_hi": diff + 0.01,
        "verdict": verdict,
        "note": note,
    }


def test_rows_show_rates_differences_and_verdicts():
    table = pd.DataFrame(
        [
            _claim("four_times_safer", 0.02, 0.05, "inconclusive"),
            _claim("spurious_resets_no_bias", 0.4, NAN, "not reproduced"),
            _claim("paper_model_row", NAN, NAN, "not measured", note="not in run.models"),
        ]
    )
    out = md.markdown(table).splitlines()
    assert out[0].startswith("| claim | paper | ours [95%] (n) |")
    assert out[2] == (
        "| `four_times_safer`: overall unsafe | a / b | 2.0% [1.0, 4.0] (300) | 5.0% "
        "| -3.0 [-4.0, -2.0] | inconclusive |"
    )
    assert out[3].endswith("| 40.0% [20.0, 80.0] (300) | — | — | not reproduced |")
    assert out[4] == "| m rows | a / b | — | — | — | not measured (not in run.models) |"


def test_a_missing_file_names_the_command(tmp_path):
    with pytest.raises(SystemExit, match="snakemake --cores all"):
        md.main([str(tmp_path / "claims.csv")])


def test_several_seeds_add_a_seed_column_and_the_split():
    rows = [
        _claim("four_times_safer", 0.02, 0.05, "reproduced") | {"seed": s, "seeds": 1}
        for s in (0, 1)
    ]
    over = _claim("four_times_safer", 0.03, 0.05, "inconclusive") | {"seed": NAN, "seeds": 2}
    over["seed_verdicts"] = "inconclusive 1, reproduced 1"
    out = md.markdown(pd.DataFrame([*rows, over])).splitlines()
    assert out[0].startswith("| claim | seed | paper |")
    assert out[2].split(" | ")[1] == "0" and out[4].split(" | ")[1] == "all"
    assert out[4].endswith("| inconclusive (seeds alone: inconclusive 1, reproduced 1) |")


def test_over_seeds_lists_the_rows_over_all_seeds_and_which_verdicts_the_seeds_share(
    tmp_path, capsys
):
    rows = []
    for claim, verdicts, over in (
        ("four_times_safer", ("reproduced", "inconclusive"), "inconclusive"),
        ("dpo_keeps_helpfulness", ("not reproduced", "not reproduced"), "not reproduced"),
    ):
        rows += [
            _claim(claim, 0.02, 0.05, v) | {"seed": s, "seeds": 1} for s, v in enumerate(verdicts)
        ]
        split = pd.Series(verdicts).value_counts()
        rows.append(
            _claim(claim, 0.02, 0.05, over)
            | {"seed": NAN, "seeds": 2}
            | {"seed_verdicts": ", ".join(f"{v} {split[v]}" for v in sorted(split.index))}
        )
    path = tmp_path / "claims.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert md.main([str(path), "--over-seeds"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[1] for line in out[2:4]] == ["all", "all"]
    assert out[-2] == (
        "- The same verdict in each of the 2 seeds: `dpo_keeps_helpfulness` (not reproduced 2)."
    )
    assert out[-1] == (
        "- A verdict that changes between seeds: `four_times_safer` (inconclusive 1, "
        "reproduced 1; over all seeds: inconclusive)."
    )
    one = tmp_path / "one.csv"
    pd.DataFrame([_claim("four_times_safer", 0.02, 0.05, "reproduced")]).to_csv(one, index=False)
    with pytest.raises(SystemExit, match="one training seed only"):
        md.main([str(one), "--over-seeds"])
