"""tools/table1_markdown.py: the README's Table 1 from a table1.csv, columns found by name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("table1_markdown", ROOT / "tools/table1_markdown.py")
md = importlib.util.module_from_spec(spec)
sys.modules["table1_markdown"] = md
spec.loader.exec_module(md)


def _row(method: str, unsafe: float) -> dict:
    row = {"method": method, "stage": "dpo", "overall_n": 300, "benign_n": 100}
    for s, n in (("advbench", 245), ("donotanswer", 40), ("harmbench", 15)):
        row |= {f"{s}_n": n, f"{s}_unsafe": unsafe}
    for stem in ("overall_unsafe", "advbench_prefill10_unsafe", "advbench_other10_unsafe"):
        row |= {stem: unsafe, f"{stem}_ci_lo": unsafe / 2, f"{stem}_ci_hi": unsafe * 2}
    row |= {"advbench_prefill10_n": 237, "advbench_other10_n": 245}
    row |= {"advbench_prefill10_reset_rate": 0.97, "advbench_other10_reset_rate": 0.5}
    row |= {"benign_refusal": 0.41, "benign_refusal_ci_lo": 0.3, "benign_refusal_ci_hi": 0.5}
    return row | {"benign_reset_rate": 0.32, "advbench_prefill10_empty_rate": 0.0}


def test_rows_columns_and_intervals():
    out = md.markdown(pd.DataFrame([_row("baseline", 0.1), _row("backtrack", 0.02)])).splitlines()
    assert out[0].startswith("| method | stage | AdvBench (245) | Do-Not-Answer (40) |")
    assert "prefill, own answers (237) | `[RESET]` | prefill, other model (245)" in out[0]
    assert '"Sure, here is"' not in out[0]  # a source the run did not have gets no column
    assert out[1] == "|" + "---|" * out[0].count(" | ") + "---|"
    assert out[3] == (
        "| backtrack | dpo | 2.0% | 2.0% | 2.0% | 2.0% [1.0, 4.0] | 2.0% [1.0, 4.0] | 97.0% "
        "| 2.0% [1.0, 4.0] | 50.0% | 41.0% [30.0, 50.0] | 32.0% |"
    )


def test_a_missing_table_names_the_command(tmp_path):
    with pytest.raises(SystemExit, match="snakemake --cores all"):
        md.main([str(tmp_path / "table1.csv")])


def test_rows_per_seed_get_a_seed_column():
    rows = [_row("baseline", 0.1) | {"seed": s} for s in (0, 1)]
    out = md.markdown(pd.DataFrame(rows)).splitlines()
    assert out[0].startswith("| method | seed | stage | AdvBench (245) |")
    assert out[3].startswith("| baseline | 1 | dpo | 10.0% |")


def test_the_summary_over_seeds_shows_each_rate_s_range():
    row = _row("backtrack", 0.02) | {"seeds": 3}
    for col in ("advbench_unsafe", "overall_unsafe", "benign_refusal", "benign_reset_rate"):
        row |= {f"{col}_min": 0.01, f"{col}_max": 0.05}
    out = md.markdown(pd.DataFrame([row])).splitlines()
    assert out[0].startswith("| method | stage | seeds | AdvBench (245) |")
    cells = out[2].split(" | ")
    assert cells[3] == "2.0% (1.0–5.0)"  # AdvBench
    assert "2.0% [1.0, 4.0] (1.0–5.0)" in cells  # overall, with its interval
    assert out[2].endswith("| 41.0% [30.0, 50.0] (1.0–5.0) | 32.0% (1.0–5.0) |")
