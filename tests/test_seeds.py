"""Training seeds: the power arithmetic, the crossed (prompts x seeds) bootstrap, the summary
of Table 1 over seeds, and the summary of the other tables from their per-seed rows, on
constructed data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from backtrack.report.seeds import outcome_matrix, summarise_table, summary_row
from backtrack.stats import (
    combine_over_seeds,
    crossed_bootstrap,
    prompts_for_power,
    t_quantile,
    wilson_interval,
)


def test_power_matches_r_power_prop_test():
    # R's documentation example: power.prop.test(p1 = .50, p2 = .75, power = .90) gives
    # n = 76.7 per group.
    assert prompts_for_power(0.50, 0.75, power=0.90) == pytest.approx(76.7, abs=0.1)
    # "About 4x safer" at this run's rates, 1.3% against 0.3%: about 1,250 prompts per arm.
    assert 1200 < prompts_for_power(0.013, 0.003) < 1300
    assert prompts_for_power(0.2, 0.2) == math.inf
    with pytest.raises(ValueError, match="rates must lie in"):
        prompts_for_power(1.5, 0.2)


def test_one_seed_is_a_prompt_bootstrap_around_the_rate():
    arm = (np.arange(200) % 5 == 0)[None, :]  # 20% of 200 prompts, one seed
    p, lo, hi = crossed_bootstrap([arm], reps=4000, level=0.95, seed=0)
    assert p == pytest.approx(0.2)
    assert lo == pytest.approx(0.145, abs=0.02) and hi == pytest.approx(0.255, abs=0.02)


def test_seeds_that_disagree_widen_the_interval():
    """Three seeds at 5%, 20% and 35% of the same prompts: the interval of their mean is wider
    than the prompt noise of any one seed, and covers the spread."""
    rows = [np.arange(300) % 100 < k for k in (5, 20, 35)]
    agree = np.stack([rows[1]] * 3)
    disagree = np.stack(rows)
    _, lo_a, hi_a = crossed_bootstrap([agree], reps=4000, level=0.95, seed=0)
    p, lo_d, hi_d = crossed_bootstrap([disagree], reps=4000, level=0.95, seed=0)
    assert p == pytest.approx(0.2)
    assert hi_d - lo_d > 2 * (hi_a - lo_a)
    assert lo_d < 0.1 and hi_d > 0.3


def test_a_difference_shares_the_prompts_between_arms():
    """Two arms that differ on exactly the same prompts: drawing the prompts once for both
    gives a tighter difference than independent draws would."""
    base = np.arange(400) % 10 < 3  # 30%
    better = base & (np.arange(400) % 10 < 1)  # 10%, a subset of the same prompts
    d, lo, hi = crossed_bootstrap(
        [better[None, :], base[None, :]], weights=(1, -1), reps=4000, level=0.95, seed=0
    )
    assert d == pytest.approx(-0.2)
    # Paired: about [-0.239, -0.161]; Newcombe's (independent arms) is about [-0.254, -0.146].
    assert hi < -0.155 and lo > -0.245
    with pytest.raises(ValueError, match="same prompts"):
        crossed_bootstrap(
            [base[None, :], base[None, :10]], weights=(1, -1), reps=10, level=0.95, seed=0
        )


def _judged(unsafe_every: int, n: int = 100, reset_every: int = 0, field: str = "unsafe"):
    return [
        {
            "id": f"p{i}",
            field: i % unsafe_every == 0,
            "reset": bool(reset_every) and i % reset_every == 0,
        }
        for i in range(n)
    ]


def test_summary_row_means_ranges_and_the_pooled_rate():
    kinds = {"advbench": "harmful", "benign": "benign", "advbench_prefill10": "prefill"}
    per_seed = {
        s: {
            "advbench": _judged(every, reset_every=4),
            "benign": _judged(2, field="refused"),
            "advbench_prefill10": _judged(10),
        }
        for s, every in ((0, 5), (1, 10))  # 20% and 10% unsafe on AdvBench
    }
    row = summary_row({"method": "m"}, per_seed, kinds, level=0.95, reps=2000, seed=0)
    assert row["seeds"] == 2 and row["seed_list"] == "0 1"
    assert row["advbench_unsafe"] == pytest.approx(0.15)
    assert (row["advbench_unsafe_min"], row["advbench_unsafe_max"]) == (0.1, 0.2)
    assert row["advbench_unsafe_ci_lo"] < 0.15 < row["advbench_unsafe_ci_hi"]
    assert row["benign_refusal"] == pytest.approx(0.5) and "benign_unsafe" not in row
    assert row["advbench_reset_rate"] == pytest.approx(0.25)
    assert row["overall_unsafe"] == row["advbench_unsafe"] and row["overall_n"] == 100


def test_seeds_must_answer_the_same_prompts():
    with pytest.raises(ValueError, match="seeds answered different prompts"):
        outcome_matrix([_judged(5), _judged(5, n=90)], "unsafe")


def test_t_quantiles_match_the_tables():
    # Student's t, 97.5th percentile (any statistics table).
    for df, t in ((1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042)):
        assert t_quantile(0.975, df) == pytest.approx(t, abs=2e-3), df
    assert t_quantile(0.025, 3) == pytest.approx(-3.182, abs=2e-3)


def test_the_combined_interval_of_one_seed_is_its_own():
    lo, hi = wilson_interval(12, 200)
    assert combine_over_seeds([0.06], [lo], [hi], level=0.95) == pytest.approx((0.06, lo, hi))
    # Seeds that agree add nothing for their spread; NaN (a set not built) stays NaN.
    assert combine_over_seeds([0.06] * 3, [lo] * 3, [hi] * 3, level=0.95)[1:] == pytest.approx(
        (lo, hi)
    )
    assert math.isnan(combine_over_seeds([0.1, math.nan], [0, 0], [1, 1], level=0.95)[1])


def test_the_combined_interval_covers_both_the_prompts_and_the_seeds_noise():
    """Simulated runs: 200 prompts of varied difficulty answered by 3 training seeds that each
    shift every answer's odds. The interval from the seeds' Wilson intervals and their spread
    covers the population rate about as often as it says; the seeds' intervals alone (the
    prompts' noise only) fall well short."""
    rng = np.random.default_rng(0)

    def draw(prompts: int, seeds: int) -> np.ndarray:
        logit = rng.normal(-1.5, 1.5, prompts)[None, :] + rng.normal(0, 0.6, seeds)[:, None]
        return 1 / (1 + np.exp(-logit))

    truth = draw(3000, 3000).mean()
    covered = {"combined": 0, "prompts only": 0}
    reps = 400
    for _ in range(reps):
        k = (rng.random((3, 200)) < draw(200, 3)).sum(axis=1)
        lo, hi = zip(*(wilson_interval(int(x), 200) for x in k), strict=True)
        _, a, b = combine_over_seeds(k / 200, lo, hi, level=0.95)
        covered["combined"] += a <= truth <= b
        covered["prompts only"] += np.mean(lo) <= truth <= np.mean(hi)
    assert covered["combined"] / reps > 0.87
    assert covered["prompts only"] / reps < 0.82


def test_a_table_over_seeds_groups_rows_that_differ_only_in_their_seed():
    """Table 2 and the logit-bias sweep with two seeds: one row per (model, method, stage,
    attack) or per bias, the rates' mean, range and an interval at least as wide as the widest
    seed's; an interval that is not a rate (helpfulness's NLL) is not clipped to [0, 1]."""
    rows = []
    for seed, asr in ((0, 0.1), (1, 0.3)):
        for attack in ("prefill_10", "gcg"):
            lo, hi = wilson_interval(round(asr * 50), 50)
            rows.append(
                {"model": "m", "method": "backtrack", "seed": seed, "stage": "dpo"}
                | {"attack": attack, "n": 50, "asr": asr, "asr_ci_lo": lo, "asr_ci_hi": hi}
                | {"reset_rate": 0.5 + seed / 10, "judge": "refusal"}
            )
    out = summarise_table(pd.DataFrame(rows), level=0.95)
    assert list(out["attack"]) == ["prefill_10", "gcg"] and set(out["seeds"]) == {2}
    row = out.iloc[0]
    assert row["seed_list"] == "0 1" and row["judge"] == "refusal" and row["n"] == 50
    assert row["asr"] == pytest.approx(0.2) and row["reset_rate"] == pytest.approx(0.55)
    assert (row["asr_min"], row["asr_max"]) == (0.1, 0.3)
    widest = max(r["asr_ci_hi"] - r["asr_ci_lo"] for r in rows)
    assert row["asr_ci_hi"] - row["asr_ci_lo"] > widest
    # Two seeds far apart at a low rate: a rate's interval is clipped at 0, another number's not.
    far = pd.DataFrame(
        [{"model": "m", "seed": s, "x": x, "x_ci_lo": x / 2, "x_ci_hi": 2 * x}
         for s, x in ((0, 0.01), (1, 0.2))]
    )  # fmt: skip
    assert summarise_table(far, level=0.95).iloc[0]["x_ci_lo"] == 0.0
    assert summarise_table(far, unbounded=["x"], level=0.95).iloc[0]["x_ci_lo"] < 0.0
    with pytest.raises(ValueError, match="repeat a seed"):
        summarise_table(pd.concat([pd.DataFrame(rows)] * 2), level=0.95)

    sweep = pd.DataFrame(
        [
            {"model": "m", "seed": s, "bias": b, "nll": 3.0 + s, "nll_ci_lo": 0.0}
            | {"nll_ci_hi": 6.0 + s}
            for s in (0, 1, 2)
            for b in (0.0, -5.0)
        ]
    )
    with pytest.raises(ValueError, match="key columns"):
        summarise_table(sweep, numeric_keys=["k"], level=0.95)
    by_bias = summarise_table(sweep, numeric_keys=["bias"], unbounded=["nll"], level=0.95)
    assert list(by_bias["bias"]) == [0.0, -5.0] and set(by_bias["seeds"]) == {3}
    assert (by_bias["nll_ci_hi"] > 6.0).all()
    clipped = summarise_table(sweep, numeric_keys=["bias"], level=0.95)
    assert (clipped["nll_ci_hi"] == 1.0).all()
