"""The graph's vocabulary: which cells each table reads, in which order, and what each job is
given; and that the plan (like the config check) needs no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from backtrack.config import ConfigError, validate_config
from backtrack.plan import (
    DATA_KEYS,
    Cell,
    Row,
    generated_sets,
    helpfulness_rows,
    logit_bias_cells,
    prefill_answers_model,
    prefilled_sets,
    run_grid,
    table1_cells,
    table1_prefilled_sets,
    table2_cells,
    train_seeds,
    trainer_params,
    worst_of_k_cells,
)

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate_config(cfg)
    return cfg


def test_table1_has_every_row_on_every_set_in_order():
    cfg = _config()
    cells = table1_cells(cfg)
    rows = run_grid(cfg)
    sets = [
        "advbench",
        "donotanswer",
        "harmbench",
        "benign",
        "advbench_prefill10",
        "advbench_sure10",
    ]
    assert [c.dataset for c in cells[: len(sets)]] == sets
    assert len(cells) == len(rows) * len(sets)
    assert [c.row for c in cells[:: len(sets)]] == rows
    assert all(c.point is None for c in cells)


def test_table2_lists_prefilled_sets_then_attacks_per_row():
    cfg = _config()
    cfg["prefill"]["sources"] = ["base_model"]
    cfg["attacks"]["run"] = ["prefill", "gcg", "autodan"]
    cfg["attacks"]["prefill"]["tokens"] = [5, 20]
    first = [c.dataset for c in table2_cells(cfg)[:4]]
    assert first == ["advbench_prefill5", "advbench_prefill20", "attacks/gcg", "attacks/autodan"]
    assert prefilled_sets(cfg) == {
        "advbench_prefill10": ("advbench", 10, "base_model"),
        "advbench_prefill5": ("advbench", 5, "base_model"),
        "advbench_prefill20": ("advbench", 20, "base_model"),
    }
    assert generated_sets(cfg)["advbench_prefill20"] == "prefill"


def test_prefill_sources_add_foreign_sets_to_both_tables():
    cfg = _config()
    cfg["prefill"]["sources"] = ["base_model", "sure_here"]
    cfg["attacks"]["run"] = ["prefill"]
    cfg["attacks"]["prefill"]["tokens"] = [5]
    validate_config(cfg)
    t1 = [c.dataset for c in table1_cells(cfg)][:6]
    assert t1[-2:] == ["advbench_prefill10", "advbench_sure10"]
    assert [c.dataset for c in table2_cells(cfg)][:2] == ["advbench_prefill5", "advbench_sure5"]
    assert prefilled_sets(cfg)["advbench_sure5"] == ("advbench", 5, "sure_here")


def test_other_model_source_cuts_another_model_s_answers():
    cfg = _config()
    model = cfg["run"]["models"][0]
    cfg["models"]["other"] = dict(cfg["models"][model])
    cfg["prefill"].update(sources=["base_model", "other_model"], other_model="other")
    validate_config(cfg)
    assert table1_prefilled_sets(cfg)["advbench_other10"] == ("advbench", 10, "other_model")
    assert prefill_answers_model(cfg, "other_model", model) == "other"
    assert prefill_answers_model(cfg, "base_model", model) == model
    cfg["prefill"]["other_model"] = "nope"
    with pytest.raises(ConfigError, match=r"'prefill\.other_model'"):
        validate_config(cfg)


def test_logit_bias_reuses_table1_files_at_the_deployed_bias():
    cfg = _config()
    cfg["generation"]["reset_logit_bias"] = 0.0
    cfg["sweeps"]["logit_bias"].update(values=[-5, 0], stages=["dpo"], datasets=["benign"])
    cells = logit_bias_cells(cfg)
    swept = [c for c in cells if c.method == "backtrack"]
    assert [c.point for c in swept] == ["logit_bias/-5", None]
    # Baseline DPO comes in at the deployed bias only, as the reference line.
    assert [c for c in cells if c.method == "baseline"] == [
        Cell(cfg["run"]["models"][0], "baseline", 0, "dpo", "benign", None)
    ]
    assert all(c.point == "worst_of_k" for c in worst_of_k_cells(cfg))


def test_one_training_seed_by_default_the_run_s_seed():
    cfg = _config()
    assert cfg["train_seeds"] is None and train_seeds(cfg) == [cfg["seed"]] == [0]
    cfg["seed"] = 7
    assert [r.seed for r in run_grid(cfg)] == [7] * len(run_grid(cfg))


def test_training_seeds_repeat_every_row_side_by_side():
    cfg = _config()
    one = run_grid(cfg)
    cfg["train_seeds"] = [0, 1, 2]
    validate_config(cfg)
    rows = run_grid(cfg)
    assert rows == [Row(r.model, r.method, s, r.stage) for r in one for s in (0, 1, 2)]
    assert len(table1_cells(cfg)) == 3 * len(table1_cells(_config()))
    assert {c.seed for c in worst_of_k_cells(cfg)} == {0, 1, 2}
    help_rows = helpfulness_rows(cfg)  # the base model once, at the run's seed
    assert [r for r in help_rows if r.method == "base"] == [Row(one[0].model, "base", 0, "base")]
    assert len(help_rows) == 1 + len(rows)


@pytest.mark.parametrize(
    ("seeds", "error"),
    [([0, 0], "non-unique"), ([], "should be non-empty"), ([-1], "less than the minimum")],
)
def test_bad_training_seeds_name_the_key(seeds, error):
    cfg = _config()
    cfg["train_seeds"] = seeds
    with pytest.raises(ConfigError, match=rf"'train_seeds(\.0)?'.*{error}"):
        validate_config(cfg)


def test_training_jobs_are_not_given_the_data_steps_keys():
    cfg = _config()
    sft, dpo = trainer_params(cfg, "sft"), trainer_params(cfg, "dpo")
    assert not set(DATA_KEYS) & (set(sft) | set(dpo))
    assert sft["reset_token"] == cfg["reset_token"] and "reset_token" not in dpo
    assert sft["precision"] == dpo["precision"] == cfg["precision"]


def test_helpfulness_scores_each_base_model_first():
    cfg = _config()
    rows = helpfulness_rows(cfg)
    assert rows[0] == (cfg["run"]["models"][0], "base", 0, "base") and rows[1:] == run_grid(cfg)


def test_plan_config_and_pattern_judge_import_without_torch():
    code = (
        "import sys, backtrack.plan, backtrack.config, backtrack.judge.registry;"
        "from backtrack.judge.registry import make_judge;"
        "make_judge('refusal', {}, reset_token='[RESET]');"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr + run.stdout
