"""Table 1 for a person: the summary's text and the dot plot, on a constructed Table 1 built by
the same row code as the table rule."""

from __future__ import annotations

import pandas as pd
from backtrack.report.claims import Outcomes
from backtrack.report.summary import plot_table1, summary_text, table1_claims
from backtrack.report.tables import table1_row
from PIL import Image

KINDS = {"advbench": "harmful", "advbench_prefill10": "prefill", "benign": "benign"}
#: (method, stage) -> unsafe answers of 300 harmful, of 200 prefilled, refusals of 100 benign.
COUNTS = {
    ("baseline", "sft"): (60, 180, 10),
    ("baseline", "dpo"): (9, 160, 50),
    ("backtrack", "sft"): (9, 20, 15),
    ("backtrack", "dpo"): (1, 4, 40),
}


#: What a judged generation record also carries (lengths, timings), the same for every answer.
REST = {"detail": "", "turned_back": False, "tokens_generated": 20, "tokens_visible": 20}
REST |= {"total_time_s": 1.0, "time_to_first_token_s": 0.1, "time_to_first_visible_token_s": 0.1}


def _judged(seed: int) -> dict[tuple, list[dict]]:
    out = {}
    for (method, stage), (harm, pre, ben) in COUNTS.items():
        shift = seed * 3 if method == "backtrack" else 0  # a second seed: backtracking worse
        key = ("m", method, seed, stage)
        out[(*key, "advbench")] = [
            {"id": f"a{i}", "harmful": True, "unsafe": i < harm + shift, "reset": False,
             "refused": False} | REST
            for i in range(300)
        ]  # fmt: skip
        out[(*key, "advbench_prefill10")] = [
            {"id": f"p{i}", "harmful": True, "unsafe": i < pre, "reset": method == "backtrack",
             "refused": False} | REST
            for i in range(200)
        ]  # fmt: skip
        out[(*key, "benign")] = [
            {"id": f"b{i}", "harmful": False, "unsafe": False, "refused": i < ben,
             "reset": method == "backtrack" and i < 30} | REST
            for i in range(100)
        ]  # fmt: skip
    return out


def _table(judged: dict[tuple, list[dict]]) -> pd.DataFrame:
    rows = []
    for model, method, seed, stage in dict.fromkeys(k[:4] for k in judged):
        sets = {d: judged[(model, method, seed, stage, d)] for d in KINDS}
        key = {"model": model, "method": method, "seed": seed, "stage": stage}
        rows.append(table1_row(key, sets, KINDS, 0.95, {"judge": "refusal"}))
    return pd.DataFrame(rows)


def test_the_summary_reads_as_percentages_with_intervals_and_a_line_per_claim():
    table = _table(_judged(0))
    claims = table1_claims(
        table, {"advbench_prefill10": "base_model"}, judge="refusal", level=0.95, outcomes=None
    )
    assert list(claims["claim"]) == [
        "four_times_safer",
        "no_helpfulness_regression",
        "dpo_keeps_helpfulness",
        "resists_prefill:advbench_prefill10",
        "spurious_resets_no_bias",
    ]
    text = summary_text(table, KINDS, claims, level=0.95)
    lines = text.splitlines()
    assert lines[0].startswith("Table 1 (results/table1.csv)") and "judge: refusal" in lines[0]
    row = next(line for line in lines if line.split()[:2] == ["baseline", "dpo"])
    # 9 of 300 unsafe: 3.0% with its Wilson interval; 50 of 100 benign refused.
    assert "3.0% [1.6, 5.6]" in row and "50.0% [40.4, 59.6]" in row
    four = next(line for line in lines if line.startswith("- overall unsafe"))
    assert "0.3% [0.1, 1.9] vs 3.0%" in four and four.endswith("-> reproduced")
    prefill = next(line for line in lines if "unsafe under advbench_prefill10" in line)
    assert "2.0%" in prefill and "vs 80.0%" in prefill and "-> reproduced" in prefill
    spurious = next(line for line in lines if "benign [RESET] rate" in line)
    assert "30.0%" in spurious and "-> not reproduced" in spurious


def test_over_seeds_the_summary_gives_each_seed_a_row_and_the_claims_over_all_seeds():
    judged = _judged(0) | _judged(1)
    table = _table(judged)
    outcomes = Outcomes(judged, KINDS, (0, 1), 0.95, 500, 0)
    claims = table1_claims(
        table, {"advbench_prefill10": "base_model"}, judge="refusal", level=0.95,
        outcomes=outcomes,
    )  # fmt: skip
    assert claims["seed"].isna().all() and (claims["seeds"] == 2).all()
    text = summary_text(table, KINDS, claims, level=0.95)
    assert sum(line.split()[:3] == ["backtrack", "1", "dpo"] for line in text.splitlines()) == 1
    four = next(line for line in text.splitlines() if line.startswith("- overall unsafe"))
    # Seed 0: 1 of 300 (reproduced alone); seed 1: 4 of 300 against 9 (inconclusive alone).
    assert "(seeds alone: inconclusive 1, reproduced 1)" in four


def test_the_figure_is_a_png_with_a_panel_pair_per_model(tmp_path):
    judged = _judged(0)
    judged |= {("m2", *k[1:]): v for k, v in judged.items()}
    table = _table(judged)
    path = tmp_path / "table1.png"
    plot_table1(table, KINDS, path, 0.95)
    with Image.open(path) as img:
        assert img.format == "PNG"
        width, height = img.size
    assert width > 1000 and height > 2 * 300  # two models, one above the other
