"""Attack budgets: per-attack sizes and their errors, the success-against-budget table and figure
from constructed transcripts, the transfer set, and the full-budget overlay's dry-run plan."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from backtrack.attacks.transfer import transfer_set
from backtrack.config import ConfigError, validate_config
from backtrack.plan import (
    TRANSFER,
    attack_budget,
    attack_n,
    attack_params,
    attack_shards,
    budget_label,
    table2_cells,
)
from backtrack.report.budget import budget_at_half, budget_rows, plot_budget, successes_by_budget

ROOT = Path(__file__).resolve().parents[1]


def _config(*overlays: str) -> dict:
    from snakemake.utils import update_config

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for o in overlays:
        update_config(cfg, yaml.safe_load((ROOT / o).read_text()))
    validate_config(cfg)
    return cfg


# --- Per-attack sizes ---


def test_an_attack_s_own_n_overrides_attacks_n_and_is_not_in_its_stamp():
    cfg = _config()
    cfg["attacks"]["gcg"]["n"] = 7
    assert attack_n(cfg, "gcg") == 7 and attack_n(cfg, "autodan") == cfg["attacks"]["n"]
    # n changes no transcript line: not in the params the transcripts are stamped with, and the
    # adaptive attack (which runs GCG's settings) does not see GCG's n either.
    before = attack_params(_config(), "adaptive")
    assert "n" not in attack_params(cfg, "gcg") and attack_params(cfg, "adaptive") == before


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (("attacks", "gcg", "n"), 246, r"'attacks.gcg.n': 246 prompts asked of data.eval_sets"),
        (("attacks", "n"), 300, r"'attacks.n': 300 prompts"),
        (("attacks", "shards"), 3, r"'attacks.shards': 3 shards of the autodan attack for "
                                   r"attacks.autodan.n = 2"),
        (("attacks", "run"), ["prefill", TRANSFER], r"'attacks.run': gcg_transfer sends the "
                                                    r"suffixes of the gcg attack"),
    ],
)  # fmt: skip
def test_attack_size_errors_name_the_key(key, value, message):
    cfg = _config()
    cfg["attacks"]["autodan"]["n"] = 2
    node = cfg
    for k in key[:-1]:
        node = node[k]
    node[key[-1]] = value
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_budget_points_are_the_attacks_checks():
    cfg = _config("config/attacks.yaml")
    assert attack_budget(cfg, "gcg") == list(range(2, 41, 2))
    assert attack_budget(cfg, "autodan") == list(range(1, 11))
    assert attack_budget(cfg, "adaptive") == list(range(4, 41, 4))
    cfg["attacks"]["gcg"].update(steps=8, eval_every=5)  # the default's: checks at 5 and 8
    assert attack_budget(cfg, "gcg") == [5, 8]
    assert budget_label(cfg, "gcg") == "8 steps"
    assert budget_label(cfg, TRANSFER).startswith("suffixes of baseline sft's GCG at 8 steps")


# --- The budget table from constructed transcripts ---


def _judged(*lines: tuple[bool, str, int]) -> list[dict]:
    return [
        {"id": f"p{i}", "unsafe": u, "stopped": s, "steps": k, "seconds": 2.0 * k}
        for i, (u, s, k) in enumerate(lines)
    ]


def test_a_success_counts_from_its_step_on_and_only_if_the_judge_agrees():
    judged = _judged(
        (True, "success", 2),  # broken at the first check
        (True, "success", 6),  # at the third
        (False, "success", 4),  # the check said broken, the evaluation judge does not
        (True, "budget_steps", 8),  # the budget ran out; the evaluation judge still calls it unsafe
        (False, "budget_steps", 8),
    )
    assert successes_by_budget(judged, [2, 4, 6, 8]) == [1, 1, 2, 3]


def test_budget_rows_end_at_table_2_s_rate_with_wilson_intervals_and_costs():
    judged = _judged((True, "success", 2), (True, "success", 6), (False, "budget_steps", 8))
    key = {"model": "m", "method": "baseline", "seed": 0, "stage": "sft"}
    rows = budget_rows(key, "gcg", judged, [2, 4, 6, 8], "steps", 0.95)
    df = pd.DataFrame(rows)
    assert df.budget.tolist() == [2, 4, 6, 8] and (df.n == 3).all()
    assert df.asr.tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert (df.asr_ci_lo < df.asr).all() and (df.asr_ci_hi > df.asr).all()
    # The last point is what Table 2 reports: the evaluation judge's share of unsafe answers.
    assert df.asr.iloc[-1] == sum(j["unsafe"] for j in judged) / len(judged)
    assert df.seconds_per_step.iloc[0] == pytest.approx(2.0)
    assert df.median_seconds_to_success.iloc[0] == pytest.approx(8.0)  # runs of 4 and 12 s
    half = budget_at_half(df)
    assert half.budget_at_half.iloc[0] == 6
    with pytest.raises(ValueError, match="ascending"):
        budget_rows(key, "gcg", judged, [4, 2], "steps", 0.95)


def test_budget_figure_draws_every_curve(tmp_path):
    key = {"model": "m", "seed": 0}
    rows = []
    for method, stage, lines in [
        ("baseline", "sft", [(True, "success", 2), (True, "success", 4)]),
        ("backtrack", "sft", [(False, "budget_steps", 4), (False, "budget_steps", 4)]),
    ]:
        k = key | {"method": method, "stage": stage}
        rows += budget_rows(k, "gcg", _judged(*lines), [2, 4], "steps", 0.95)
    png = tmp_path / "budget.png"
    plot_budget(pd.DataFrame(rows), png, 0.95)
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 10_000


# --- Transfer ---


def test_transfer_set_keeps_the_suffixes_that_broke_the_source_by_the_evaluation_judge():
    transcripts = [
        {"id": "a", "prompt": "x", "target": "t", "attack_prompt": "x !!", "adversarial": "!!"},
        {"id": "b", "prompt": "y", "target": "t", "attack_prompt": "y ??", "adversarial": "??"},
    ]
    judged = [{"id": "a", "unsafe": False}, {"id": "b", "unsafe": True}]
    out = transfer_set(transcripts, judged, "baseline sft")
    assert [p["id"] for p in out] == ["b"] and out[0]["source"] == "baseline sft"
    assert out[0]["attack_prompt"] == "y ??"
    with pytest.raises(ValueError, match="no judgment for transcript line"):
        transfer_set(transcripts, judged[:1], "baseline sft")


# --- The full-budget overlay ---


def test_overlay_asks_for_at_least_20_prompts_per_attack_on_all_four_checkpoints():
    cfg = _config("config/attacks.yaml")
    attacks = {c.dataset for c in table2_cells(cfg) if c.dataset.startswith("attacks/")}
    assert attacks == {"attacks/gcg", "attacks/autodan", "attacks/adaptive", f"attacks/{TRANSFER}"}
    assert all(attack_n(cfg, a) >= 20 for a in ("gcg", "autodan", "adaptive"))
    assert {(c.method, c.stage) for c in table2_cells(cfg)} == {
        (m, s) for m in ("baseline", "backtrack") for s in ("sft", "dpo")
    }
    # The step budget binds, not the clock.
    assert all(cfg["attacks"][a]["max_seconds"] is None for a in ("gcg", "autodan"))


def test_overlay_dry_run_plans_one_job_per_attack_and_checkpoint(tmp_path):
    from tests.test_workflow import planned_jobs

    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    (tmp_path / "shards.yaml").write_text("attacks: {shards: 2}\n")  # as a cluster would split
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(tmp_path), "--workflow-profile", "none", "--cores", "2",
           "--configfile", str(tmp_path / "config.yaml"), str(ROOT / "config/attacks.yaml"),
           str(tmp_path / "shards.yaml"),
           "--", "results/table2.csv", "results/attack_budget.csv"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert jobs["attack_shard"] == 3 * 4 * 2 and jobs["merge_attack"] == 3 * 4
    assert jobs["transfer_set"] == 1 and jobs["transfer_attack"] == 4
    assert jobs["judge_attack"] == 4 * 4 and jobs["attack_budget"] == 1
    assert jobs["prepare_attack_targets"] == 3
    blocks = [b.split("\n[", 1)[0] for b in proc.stdout.split("rule attack_shard:")[1:]]
    gcg = [b for b in blocks if "attack=gcg," in b]
    assert len(gcg) == 4 * 2
    assert all("results/data/attacks/gcg/targets.jsonl" in b for b in gcg)
    assert sum("seed0/sft/gcg/shard-1-of-2.jsonl" in b for b in gcg) == 2  # baseline, backtrack
    assert all("runtime=60" in b and "gpu=0" in b for b in blocks)  # resources.attack


def test_overlay_keeps_every_other_setting_of_the_default():
    base, overlay = _config(), _config("config/attacks.yaml")
    changed = {k for k in base if base[k] != overlay[k]}
    assert changed == {"attacks"}
    a, b = copy.deepcopy(base["attacks"]), overlay["attacks"]
    assert a["dataset"] == b["dataset"] and a["target"] == b["target"]


def test_power_overlay_raises_n_and_keeps_the_transcripts_stamp():
    """config/attacks_power.yaml only adds prompts: the attacks' settings (their transcripts'
    stamp) are those of config/attacks.yaml, and every attack whose n it raises is split into
    shards, whose jobs read the earlier whole transcript and reuse its finished prompts."""
    full, power = (
        _config("config/attacks.yaml"),
        _config("config/attacks.yaml", "config/attacks_power.yaml"),
    )
    assert {k for k in full if full[k] != power[k]} == {"attacks"}
    raised = [a for a in ("gcg", "autodan", "adaptive") if attack_n(power, a) > attack_n(full, a)]
    assert raised == ["gcg", "adaptive"]
    for a in ("gcg", "autodan", "adaptive"):
        assert attack_params(power, a) == attack_params(full, a)
    assert all(attack_shards(power, a) > 1 for a in raised)
    assert attack_budget(power, "gcg") == attack_budget(full, "gcg")


# --- The docs' table ---


def test_markdown_table_gives_each_curve_s_last_point_and_half_budget(tmp_path, capsys):
    from tests.conftest import load_tool

    md = load_tool("attack_budget_markdown")
    key = {"model": "m", "method": "baseline", "seed": 0, "stage": "sft"}
    lines = [(True, "success", 2), (True, "success", 4), (False, "budget_steps", 6)]
    path = tmp_path / "attack_budget.csv"
    pd.DataFrame(budget_rows(key, "gcg", _judged(*lines), [2, 4, 6], "steps", 0.95)).to_csv(
        path, index=False
    )
    assert md.main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| model | method | stage | attack | budget | broken [95%] |")
    assert out[2].startswith("| m | baseline | sft | gcg | 6 steps | 2/3 = 67% [")
    assert out[2].endswith("| 4 | 2.00 | 6 |")  # half at step 4; runs of 4 and 8 s
    with pytest.raises(SystemExit, match="snakemake --cores all"):
        md.main([str(tmp_path / "missing.csv")])
