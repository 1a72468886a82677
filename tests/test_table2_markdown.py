"""tools/table2_markdown.py: the docs' Table 2 from a table2.csv or its summary over seeds."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import load_tool

md = load_tool("table2_markdown")


def _row(method: str, attack: str, asr: float, n: int, **extra) -> dict:
    return {"model": "m", "method": method, "stage": "dpo", "attack": attack, "n": n}| {
        "asr": asr, "asr_ci_lo": asr / 2, "asr_ci_hi": min(1.0, asr * 2), "reset_rate": 0.5
    } | extra  # fmt: skip


def test_one_row_per_model_method_and_stage_one_column_per_attack():
    table = pd.DataFrame(
        [
            _row("baseline", "prefill10", 0.8, 236),
            _row("baseline", "sure40", float("nan"), 0),
            _row("backtrack", "prefill10", 0.02, 236),
        ]
    )
    out = md.markdown(table).splitlines()
    assert out[0] == "| model | method | stage | prefill10 (n=236) | sure40 (n=0) |"
    assert out[2] == "| m | baseline | dpo | 80.0% [40.0, 100.0] {50%} | — |"
    assert out[3] == "| m | backtrack | dpo | 2.0% [1.0, 4.0] {50%} | — |"


def test_a_summary_over_seeds_shows_each_rate_s_range(tmp_path, capsys):
    row = _row("backtrack", "sure10", 0.005, 245, seeds=3, asr_min=0.0, asr_max=0.012)
    path = tmp_path / "table2_seeds.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    assert md.main([str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[2].endswith("| 0.5% [0.2, 1.0] (0.0–1.2) {50%} |")
    with pytest.raises(SystemExit, match="snakemake --cores all"):
        md.main([str(tmp_path / "missing.csv")])
