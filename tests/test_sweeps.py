"""The sweeps' arithmetic, rows and figures on constructed records; the config checks."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from backtrack.config import ConfigError, check_sweeps, validate_config
from backtrack.plan import bias_label, point_bias, point_decoding, point_name, sweep_datasets
from backtrack.sweeps.curves import (
    any_unsafe_at_k,
    logit_bias_row,
    recommended_bias,
    worst_of_k_rows,
)
from backtrack.sweeps.figures import plot_logit_bias, plot_worst_of_k

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def rec(pid: str, unsafe: bool, *, reset: bool = False, refused: bool = False, **kw) -> dict:
    return {
        "id": pid,
        "prompt_id": pid.split("#")[0],
        "unsafe": unsafe,
        "refused": refused,
        "reset": reset,
        "tokens_generated": 10,
        "tokens_visible": 6 if reset else 10,
        "total_time_s": 2.0,
        "time_to_first_token_s": 0.1,
        "time_to_first_visible_token_s": 0.5 if reset else 0.1,
        **kw,
    }


@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_any_unsafe_at_k_equals_brute_force_over_subsets(n):
    for c in range(n + 1):
        flags = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(flags, k))
            brute = sum(any(s) for s in subsets) / len(subsets)
            assert any_unsafe_at_k(n, c, k) == pytest.approx(brute)


def test_any_unsafe_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="k <= n"):
        any_unsafe_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="c <= n"):
        any_unsafe_at_k(3, 4, 1)


def test_worst_of_k_rows_curve():
    # p1: 1 unsafe of 4 samples, p2: none, p3: all four.
    judged = [rec(f"p1#{j}", j == 0) for j in range(4)]
    judged += [rec(f"p2#{j}", False) for j in range(4)]
    judged += [rec(f"p3#{j}", True, reset=j < 2) for j in range(4)]
    rows = worst_of_k_rows(
        {"model": "m", "method": "backtrack", "stage": "dpo"}, "adv", judged, 0.95
    )
    assert [r["k"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["unsafe_any"] == pytest.approx((0.25 + 0 + 1) / 3)
    assert rows[1]["unsafe_any"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert rows[3]["unsafe_any"] == pytest.approx(2 / 3)
    assert all(r["prompts"] == 3 and r["samples_per_prompt"] == 4 for r in rows)
    assert rows[0]["unsafe_per_sample"] == pytest.approx(5 / 12)
    assert rows[0]["reset_rate"] == pytest.approx(2 / 12)
    assert [r["unsafe_any"] for r in rows] == sorted(r["unsafe_any"] for r in rows)
    for r in rows:
        assert r["unsafe_any_ci_lo"] <= r["unsafe_any"] <= r["unsafe_any_ci_hi"]


def test_worst_of_k_rows_needs_equal_sample_counts():
    judged = [rec("p1#0", True), rec("p1#1", True), rec("p2#0", False)]
    with pytest.raises(ValueError, match="different sample counts"):
        worst_of_k_rows({}, "adv", judged, 0.95)


def test_logit_bias_row_columns_and_speed():
    sets = {
        "advbench": [rec("a1", True), rec("a2", False, reset=True)],
        "advbench_prefill10": [rec("b1", False, reset=True), rec("b2", False, reset=True)],
        "benign": [rec("c1", False, refused=True), rec("c2", False), rec("c3", False, reset=True)],
    }
    kinds = {"advbench": "harmful", "advbench_prefill10": "prefill", "benign": "benign"}
    row = logit_bias_row(
        {"model": "m", "method": "backtrack", "stage": "dpo"}, -5.0, sets, kinds, 0.95
    )
    assert row["bias"] == -5.0
    assert row["advbench_unsafe"] == 0.5 and row["advbench_reset_rate"] == 0.5
    assert row["advbench_prefill10_unsafe"] == 0.0 and row["advbench_prefill10_reset_rate"] == 1.0
    assert row["benign_refusal"] == pytest.approx(1 / 3)
    assert row["benign_reset_rate"] == pytest.approx(1 / 3)
    assert "benign_unsafe" not in row and row["benign_n"] == 3
    # Speed over the plain sets only (5 answers, 10 s): 50 generated, 42 visible tokens.
    assert row["generated_tokens_per_s"] == pytest.approx(50 / 10)
    assert row["visible_tokens_per_s"] == pytest.approx(42 / 10)


def test_points_round_trip():
    gen = {"reset_logit_bias": 0.0, "do_sample": False, "temperature": 1.0, "top_p": 1.0}
    sweeps = {"worst_of_k": {"k": 5, "temperature": 0.7, "top_p": 0.9}}
    for bias in (-10, -2.5, 0, 5):
        point = point_name("logit_bias", bias)
        g, k = point_decoding(gen, sweeps, point)
        assert g["reset_logit_bias"] == float(bias) and k == 1 and not g["do_sample"]
        assert point_bias(point, 99.0) == float(bias)
    assert bias_label(-0.0) == "0" and bias_label(2.50) == "2.5"
    g, k = point_decoding(gen, sweeps, "worst_of_k")
    assert k == 5 and g["do_sample"] and g["temperature"] == 0.7 and g["top_p"] == 0.9
    assert g["reset_logit_bias"] == 0.0
    with pytest.raises(ValueError, match="unknown sweep point"):
        point_decoding(gen, sweeps, "nope")


def _config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_sweep_config_checks_name_the_key():
    cfg = _config()
    cfg["sweeps"]["logit_bias"]["datasets"] = ["advbench", "nosuchset"]
    validate_config(cfg)  # parse time: fine (Table 1 never depends on the sweeps)
    with pytest.raises(ConfigError, match=r"sweeps\.logit_bias\.datasets\[1\].*nosuchset"):
        check_sweeps(cfg)  # when a sweep target is planned
    cfg = _config()
    cfg["sweeps"]["worst_of_k"]["datasets"] = ["benign"]
    with pytest.raises(ConfigError, match=r"sweeps\.worst_of_k\.datasets\[0\].*benign"):
        check_sweeps(validate_config(cfg))
    cfg = _config()
    cfg["run"]["stages"] = ["sft"]
    validate_config(cfg)  # swept stages outside the run are ignored, not an error


def test_sweep_datasets_default_to_table1_sets():
    cfg = _config()
    del cfg["sweeps"]
    validate_config(cfg)
    assert sweep_datasets(cfg, "logit_bias") == [
        "advbench", "donotanswer", "harmbench", "benign", "advbench_prefill10", "advbench_sure10",
    ]  # fmt: skip
    assert sweep_datasets(cfg, "worst_of_k") == ["advbench", "donotanswer", "harmbench"]


def _bias_table() -> pd.DataFrame:
    kinds = {"advbench": "harmful", "advbench_prefill10": "prefill", "benign": "benign"}
    rows = []
    for stage in ("sft", "dpo"):
        for bias in (-10.0, -5.0, 0.0, 5.0):
            p = 1 / (1 + math.exp(-bias / 3))  # resets grow with the bias
            n = 20
            sets = {
                "advbench": [rec(f"a{i}", i < n * (1 - p) / 4, reset=i < n * p) for i in range(n)],
                "advbench_prefill10": [rec(f"b{i}", i < n * (1 - p)) for i in range(n)],
                "benign": [rec(f"c{i}", False, reset=i < n * p / 3) for i in range(n)],
            }
            rows.append(
                logit_bias_row(
                    {"model": "m", "method": "backtrack", "stage": stage}, bias, sets, kinds, 0.95
                )
            )
        base = {d: [rec(f"z{i}", i < 15) for i in range(20)] for d in kinds}
        rows.append(
            logit_bias_row(
                {"model": "m", "method": "baseline", "stage": stage}, 0.0, base, kinds, 0.95
            )
        )
    return pd.DataFrame(rows)


def test_figures_are_non_empty_pngs(tmp_path):
    bias_png = tmp_path / "logit_bias.png"
    plot_logit_bias(_bias_table(), bias_png, ["advbench", "advbench_prefill10"], "benign")
    judged = [rec(f"p{i}#{j}", (i + j) % 3 == 0) for i in range(5) for j in range(4)]
    rows = []
    for method in ("baseline", "backtrack"):
        rows += worst_of_k_rows(
            {"model": "m", "method": method, "stage": "dpo"}, "adv", judged, 0.95
        )
    wok_png = tmp_path / "worst_of_k.png"
    plot_worst_of_k(pd.DataFrame(rows).assign(temperature=1.0), wok_png)
    for png in (bias_png, wok_png):
        data = png.read_bytes()
        assert data.startswith(PNG) and len(data) > 20_000, png


def test_logit_bias_table_keeps_rows_separate():
    df = _bias_table()
    assert len(df) == 10
    assert sorted(df[df.method == "backtrack"].bias.unique()) == [-10.0, -5.0, 0.0, 5.0]
    rates = df[(df.method == "backtrack") & (df.stage == "dpo")].sort_values("bias")
    assert list(rates.benign_reset_rate) == sorted(rates.benign_reset_rate)


def _bias_rows() -> list[dict]:
    """One checkpoint's logit-bias sweep: bias, AdvBench unsafe (with the interval's top),
    benign reset rate."""
    rows = []
    for bias, unsafe, hi, resets in [
        (-5.0, 0.40, 0.55, 0.00),  # fewest resets, but measurably less safe than bias 0
        (-2.5, 0.15, 0.30, 0.10),
        (0.0, 0.10, 0.20, 0.30),
        (2.5, 0.05, 0.12, 0.50),
    ]:
        rows.append(
            {
                "bias": f"{bias:.4f}",
                "advbench_unsafe": unsafe,
                "advbench_unsafe_ci_hi": hi,
                "benign_refusal": 0.1,
                "benign_reset_rate": resets,
            }
        )
    return rows


def test_recommended_bias_is_the_fewest_resets_that_is_not_less_safe():
    rows = _bias_rows()
    assert recommended_bias(rows, 0.0) == -2.5  # -5 resets less but exceeds 0's interval
    assert recommended_bias(rows, -2.5) is None  # from -2.5, only -5 resets less: too unsafe
    assert recommended_bias(rows, 1.0) is None  # not a point of the sweep
    no_benign = [{k: v for k, v in r.items() if not k.startswith("benign")} for r in rows]
    assert recommended_bias(no_benign, 0.0) is None
