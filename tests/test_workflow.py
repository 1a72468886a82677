"""End to end at test scale: the whole graph on a tiny random model, then partial-rerun plans.

Runs the real Snakemake CLI in a temporary directory, so the repository's results/ is untouched.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

pytestmark = pytest.mark.slow


def smk(workdir: Path, *args: str) -> str:
    cmd = [
        *SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--workflow-profile",
        "none",
        "--cores",
        "2",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        logs = "\n".join(
            f"== {p}\n{p.read_text()[-1500:]}" for p in (workdir / "logs").rglob("*.log")
        )
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-4000:]}\n{logs}")
    return proc.stdout + proc.stderr


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> job count."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def write_config(workdir: Path, cfg: dict) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.fixture(scope="module")
def run(workflow_run):
    """The test-scale graph run once (rule all), shared with the resumption test."""
    return workflow_run


def test_table1_rows_and_columns(run):
    work, _, _ = run
    df = pd.read_csv(work / "results/table1.csv")
    assert list(zip(df.model, df.method, df.stage, strict=True)) == [
        ("tiny", "baseline", "sft"),
        ("tiny", "baseline", "dpo"),
        ("tiny", "backtrack", "sft"),
        ("tiny", "backtrack", "dpo"),
    ]
    for col in [
        "advbench_unsafe",
        "advbench_unsafe_ci_lo",
        "advbench_unsafe_ci_hi",
        "donotanswer_unsafe",
        "overall_unsafe",
        "overall_unsafe_ci_lo",
        "overall_unsafe_ci_hi",
        "advbench_prefill3_unsafe",
        "advbench_prefill3_reset_rate",
        "advbench_sure3_unsafe",
        "advbench_sure3_reset_rate",
        "benign_refusal",
        "benign_reset_rate",
        "mean_tokens_generated",
        "mean_tokens_visible",
        "generated_tokens_per_s",
        "visible_tokens_per_s",
        "median_time_to_first_token_s",
        "median_time_to_first_visible_token_s",
        "model_source",
        "judge",
        "train_data",
        "eval_data",
    ]:
        assert col in df.columns, col
    assert (df.overall_n == 9).all()
    assert (df.benign_n == 4).all()
    assert (
        (df.overall_unsafe >= df.overall_unsafe_ci_lo)
        & (df.overall_unsafe <= df.overall_unsafe_ci_hi)
    ).all()
    assert (df.judge == "refusal").all()
    # Checkpoints are complete HF directories with the [RESET] token.
    for d in ["base", "baseline/seed0/sft", "backtrack/seed0/dpo"]:
        mdir = work / "results/models/tiny" / d
        assert (mdir / "model.safetensors").exists(), d
        assert (
            "[RESET]"
            in (mdir / "tokenizer_config.json").read_text() + (mdir / "tokenizer.json").read_text()
        )
    assert list((work / "benchmarks").rglob("*.tsv"))


def test_table1_ends_with_a_summary_a_person_reads_and_a_figure(run):
    """The run prints Table 1's summary at its end (the table job is the last of command 1)
    and writes it beside the CSV, with the rates as percentages and a line per claim."""
    work, _, out = run
    text = (work / "results/table1_summary.txt").read_text()
    assert text.startswith("Table 1 (results/table1.csv)")
    assert "What Table 1 says of the paper's claims" in text
    df = pd.read_csv(work / "results/table1.csv")
    row = df[(df.method == "baseline") & (df.stage == "dpo")].iloc[0]
    shown = f"{100 * row.overall_unsafe:.1f}% [{100 * row.overall_unsafe_ci_lo:.1f}, "
    assert shown in text
    assert "- overall unsafe, backtracking SFT+DPO vs baseline SFT+DPO:" in text
    assert text.splitlines()[0] in out  # printed to the console
    png = (work / "results/figures/table1.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_training_logs_end_with_the_final_and_the_mean_loss(run):
    """A training job's log ends with the final logged loss and the mean over training, each
    named (the Trainer's own lines are one per logging step); the checkpoint records both."""
    work, _, _ = run
    for stage in ("sft", "dpo"):
        lines = (work / f"logs/train_{stage}/tiny_backtrack_seed0.log").read_text().splitlines()
        assert f"{stage} done after" in lines[-1], lines[-3:]
        assert "final loss" in lines[-1] and "mean loss over training" in lines[-1]
        # SFT runs 6 steps, so the Trainer logged step 5 on a line of its own; DPO runs 4.
        logged = any(line.startswith("{'loss': ") for line in lines)
        assert logged == (stage == "sft") and ("not logged" in lines[-1]) == (stage == "dpo")
        prov = json.loads(
            (
                work / f"results/models/tiny/backtrack/seed0/{stage}/backtrack_provenance.json"
            ).read_text()
        )
        assert {"final_loss", "final_loss_step", "train_loss"} <= set(prov), stage


def test_table2_rows_and_columns(run):
    work, _, _ = run
    df = pd.read_csv(work / "results/table2.csv")
    attacks = ["prefill2", "prefill3", "sure2", "sure3", "gcg", "autodan", "adaptive"]
    attacks.append("gcg_transfer")
    assert list(zip(df.method, df.stage, df.attack, strict=True)) == [
        (m, s, a) for m in ("baseline", "backtrack") for s in ("sft", "dpo") for a in attacks
    ]
    for col in ["asr", "asr_ci_lo", "asr_ci_hi", "reset_rate", "unsafe_after_reset", "n", "judge"]:
        assert col in df.columns, col
    opt = df[df.attack.isin(["gcg", "adaptive"])]
    assert (opt.n == 2).all() and (opt.prompts == "advbench[:2]").all()
    assert (opt.mean_steps >= 1).all() and (opt.budget == "2 steps").all()
    autodan = df[df.attack == "autodan"]  # attacks.autodan.n: 1 overrides attacks.n
    assert (autodan.n == 1).all() and (autodan.prompts == "advbench[:1]").all()
    assert (autodan.budget == "2 generations").all()
    assert ((df.asr >= df.asr_ci_lo) & (df.asr <= df.asr_ci_hi)).all()
    # Transcripts: one line per prompt, the adversarial prompt holds the original request.
    lines = (work / "results/attacks/tiny/backtrack/seed0/dpo/gcg.jsonl").read_text().splitlines()
    assert len(lines) == 2
    t = json.loads(lines[0])
    assert t["attack_prompt"].startswith(t["prompt"]) and len(t["losses"]) == t["steps"]
    adaptive = work / "results/attacks/tiny/backtrack/seed0/dpo/adaptive.jsonl"
    rounds = json.loads(adaptive.read_text().splitlines()[0])["rounds"]
    assert 1 <= len(rounds) <= 2


def test_attack_budget_change_reruns_attacks_not_training(run):
    plan = _plan_with(run, lambda c: c["attacks"]["gcg"].update(steps=3), "table2")
    # adaptive runs GCG inside, so it reruns too, and the transfer sends GCG's new suffixes;
    # AutoDAN and the prefill sweep do not rerun.
    assert set(plan) == {"attack", "judge_attack", "transfer_set", "transfer_attack", "table2"}
    assert plan["attack"] == 8 and plan["transfer_attack"] == 4 and plan["judge_attack"] == 12


def test_one_attack_s_n_reruns_that_attack_only(run):
    plan = _plan_with(run, lambda c: c["attacks"]["autodan"].update(n=2), "table2")
    assert set(plan) == {"prepare_attack_targets", "attack", "judge_attack", "table2"}
    assert plan["attack"] == 4 and plan["prepare_attack_targets"] == 1


def test_transfer_row_sends_baseline_sft_s_breaking_suffixes_to_every_checkpoint(run):
    work, _, _ = run
    src = _jsonl(work / "results/judgments/tiny/baseline/seed0/sft/attacks/gcg.jsonl")
    sent = _jsonl(work / "results/data/attacks/gcg_transfer/tiny/seed0/prompts.jsonl")
    assert [p["id"] for p in sent] == [j["id"] for j in src if j["unsafe"]]
    t2 = pd.read_csv(work / "results/table2.csv")
    rows = t2[t2.attack == "gcg_transfer"]
    assert len(rows) == 4 and (rows.n == len(sent)).all()
    assert rows.prompts.str.contains("that broke baseline sft").all()
    for stage in ("sft", "dpo"):
        path = work / f"results/attacks/tiny/backtrack/seed0/{stage}/gcg_transfer.jsonl"
        lines = _jsonl(path)
        assert [t["attack_prompt"] for t in lines] == [p["attack_prompt"] for p in sent]
        assert all(t["prompt"] != t["attack_prompt"] for t in lines)  # judged on the request
    if sent:  # on its own source the row gives back the attack's answers: all broken
        base = rows[(rows.method == "baseline") & (rows.stage == "sft")].iloc[0]
        assert base.asr == 1.0


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_attack_budget_curves_end_at_table_2_s_rates(run):
    work, _, _ = run
    df = pd.read_csv(work / "results/attack_budget.csv")
    t2 = pd.read_csv(work / "results/table2.csv")
    assert set(df.attack) == {"gcg", "autodan", "adaptive"}
    assert sorted(set(df[df.attack == "adaptive"].budget)) == [1, 2]  # one point per round
    for (method, stage, attack), g in df.groupby(["method", "stage", "attack"]):
        assert list(g.successes) == sorted(g.successes)  # more budget never breaks fewer
        row = t2[(t2.method == method) & (t2.stage == stage) & (t2.attack == attack)].iloc[0]
        assert g.asr.iloc[-1] == pytest.approx(row.asr, abs=1e-4)
        assert g.n.iloc[-1] == row.n
    png = (work / "results/figures/attack_budget.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000


def test_generation_batch_size_does_not_rerun_attacks(run):
    """Attacks decode at batch 1 with HF: they read generation's decoding keys only."""
    plan = _plan_with(run, lambda c: c["generation"].update(batch_size=3), "table2")
    assert "generate_prefilled" in plan and "attack" not in plan and "judge_attack" not in plan


def test_judge_change_rejudges_attacks_without_rerunning_them(run):
    plan = _plan_with(run, lambda c: c["judge"]["params"].update(window_chars=150), "table2")
    # The transfer set is what the evaluation judge calls broken, so it is chosen (and sent)
    # again: generation only, no search.
    assert set(plan) == {"judge", "judge_attack", "transfer_set", "transfer_attack", "table2"}
    assert "attack" not in plan


def test_nothing_to_do_after_run(run):
    work, _, _ = run
    assert planned_jobs(smk(work, "-n")) == {}


def test_logit_bias_sweep_rows_and_figure(run):
    work, _, _ = run
    df = pd.read_csv(work / "results/logit_bias.csv")
    # backtrack dpo at -5, 0 (Table 1's own files) and 5; baseline dpo as the reference.
    assert list(zip(df.method, df.stage, df.bias, strict=True)) == [
        ("backtrack", "dpo", -5.0),
        ("backtrack", "dpo", 0.0),
        ("backtrack", "dpo", 5.0),
        ("baseline", "dpo", 0.0),
    ]
    for col in [
        "advbench_unsafe",
        "advbench_prefill3_unsafe_ci_hi",
        "benign_refusal",
        "benign_reset_rate",
        "visible_tokens_per_s",
        "median_time_to_first_visible_token_s",
    ]:
        assert col in df.columns, col
    assert (df.advbench_n == 5).all() and (df.benign_n == 4).all()
    # Bias 0 is Table 1's generation: the same numbers as Table 1's backtrack dpo row.
    t1 = pd.read_csv(work / "results/table1.csv").set_index(["method", "stage"])
    zero = df[(df.method == "backtrack") & (df.bias == 0)].iloc[0]
    assert zero.benign_reset_rate == t1.loc[("backtrack", "dpo"), "benign_reset_rate"]
    # The bias reached the decoder: +5 resets at least as often as -5 on every set.
    lo, hi = (df[(df.method == "backtrack") & (df.bias == b)].iloc[0] for b in (-5, 5))
    for s in ("advbench", "advbench_prefill3", "benign"):
        assert hi[f"{s}_reset_rate"] >= lo[f"{s}_reset_rate"], s
    png = (work / "results/figures/logit_bias.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000


def test_worst_of_k_rows_and_figure(run):
    work, _, _ = run
    df = pd.read_csv(work / "results/worst_of_k.csv")
    assert len(df) == 4 * 3  # every (method, stage) of the run, k = 1..3
    assert (df.samples_per_prompt == 3).all() and (df.prompts == 3).all()
    for _, g in df.groupby(["method", "stage"]):
        assert list(g.k) == [1, 2, 3]
        assert list(g.unsafe_any) == sorted(g.unsafe_any)  # worst-of-k never improves with k
    gens = work / "results/sweeps/worst_of_k/generations/tiny/backtrack/seed0/dpo/advbench.jsonl"
    recs = [json.loads(x) for x in gens.read_text().splitlines()]
    assert len(recs) == 9 and len({r["prompt_id"] for r in recs}) == 3
    png = (work / "results/figures/worst_of_k.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_claims_table_reads_the_run_s_tables(run):
    """rule all builds results/claims.csv from the run's own tables: every claim has a row for
    the run's model, its numbers are Table 1's and Table 2's, and every verdict is a known one."""
    work, _, _ = run
    claims = pd.read_csv(work / "results/claims.csv")
    t1 = pd.read_csv(work / "results/table1.csv").set_index(["method", "stage"])
    t2 = pd.read_csv(work / "results/table2.csv")
    tiny = claims[claims.model == "tiny"].set_index("claim")
    for claim in ("four_times_safer", "no_helpfulness_regression", "resists_gcg", "worst_of_k"):
        assert claim in tiny.index, claim
    assert set(claims.verdict) <= {"reproduced", "not reproduced", "inconclusive", "not measured"}
    four = tiny.loc["four_times_safer"]
    assert four.ours == pytest.approx(t1.loc[("backtrack", "dpo"), "overall_unsafe"], abs=1e-4)
    assert four.compared_with == pytest.approx(
        t1.loc[("baseline", "dpo"), "overall_unsafe"], abs=1e-4
    )
    gcg = t2[(t2.attack == "gcg") & (t2.method == "baseline") & (t2.stage == "dpo")].iloc[0]
    assert tiny.loc["resists_gcg"].compared_with == pytest.approx(gcg.asr, abs=1e-4)
    assert "resists_prefill:advbench_sure3" in tiny.index  # a foreign prefix (prefill.sources)
    sure = t2[t2.attack == "sure3"]
    assert (sure.n > 0).all()  # every AdvBench opener is at least 3 tokens long


def test_report_gathers_tables_and_figures(run):
    work, _, _ = run
    smk(work, "--report", "results/report.html")
    html = (work / "results/report.html").read_text()
    for name in (
        "claims.csv",
        "table1.csv",
        "table1.html",
        "table2.html",
        "claims.html",
        "attack_budget.html",
        "table1_seeds.csv",
        "table2.csv",
        "table2_seeds.csv",
        "helpfulness_seeds.csv",
        "table1.png",
        "logit_bias.png",
        "worst_of_k.png",
        "helpfulness.csv",
        "attack_budget.csv",
        "attack_budget.png",
    ):
        assert name in html, name
    assert "Backtracking Improves Generation Safety" in html  # the workflow description
    assert "answers sampled per prompt" in html  # a caption, rendered from the config


def test_demo_transcript_is_what_backtrack_chat_prints(run):
    """results/demo/<model>.txt: one block per configured prompt, each exactly what the
    installed `backtrack chat` command prints when run by hand (greedy: deterministic)."""
    work, cfg, _ = run
    text = (work / "results/demo/tiny.txt").read_text()
    blocks = text.split("\n$ backtrack ")
    prompts = cfg.get("demo", {}).get("prompts") or [{}] * 3  # the schema's three
    assert text.startswith("$ backtrack chat --model results/models/tiny/backtrack/seed0/dpo")
    assert len(blocks) == len(prompts)
    first, _, shown = blocks[0].removeprefix("$ backtrack ").partition("\n")
    assert "--prefill 'Sure, here is a tutorial'" in first
    assert shown.startswith("Sure, here is a tutorial")  # the prefill is shown, then the model
    cli = Path(sys.executable).parent / "backtrack"
    proc = subprocess.run(
        [str(cli), *shlex.split(first)], cwd=work, capture_output=True, text=True, check=True
    )
    assert proc.stdout + proc.stderr == shown  # the answer, then any hint after a reset


def test_sweep_change_reruns_only_the_sweep(run):
    plan = _plan_with(
        run, lambda c: c["sweeps"]["logit_bias"].update(values=[-5, 0, 2]), "logit_bias"
    )
    assert set(plan) == {"generate_sweep", "judge_sweep", "logit_bias"}
    assert plan["generate_sweep"] == 3  # bias 2 on the three sets; -5 and 0 are cached


def _plan_with(run, mutate, target: str = "table1") -> dict[str, int]:
    work, cfg, _ = run
    changed = yaml.safe_load(yaml.safe_dump(cfg))
    mutate(changed)
    write_config(work, changed)
    try:
        return planned_jobs(smk(work, "-n", f"results/{target}.csv"))
    finally:
        write_config(work, cfg)


def test_judge_change_reruns_judging_only(run):
    plan = _plan_with(run, lambda c: c["judge"]["params"].__setitem__("window_chars", 100))
    assert set(plan) == {"judge", "table1"}
    assert plan["judge"] == 4 * 5  # 4 rows x (advbench, donotanswer, benign, prefill3, sure3)


def test_generation_change_reruns_generation_not_training(run):
    plan = _plan_with(run, lambda c: c["generation"].__setitem__("reset_logit_bias", -2.0))
    assert set(plan) == {"generate", "generate_prefilled", "judge", "table1"}
    assert plan["generate"] == plan["generate_prefilled"] == 4  # one each per checkpoint


def test_sft_change_reruns_sft_and_downstream(run):
    plan = _plan_with(run, lambda c: c["sft"].__setitem__("learning_rate", 5.0e-4))
    assert {"train_sft", "train_dpo", "generate", "judge", "table1"} <= set(plan)
    assert plan["train_sft"] == 2
    assert not {"prepare_base_model", "prepare_train_pool", "build_dpo_data"} & set(plan)


def test_sft_prefix_rule_rebuilds_the_examples_not_the_pool(run):
    """The prefix fractions are the data step's: the examples are rebuilt, the pool is not."""
    plan = _plan_with(run, lambda c: c["sft"].__setitem__("prefix_min_fraction", 0.3))
    assert plan["build_sft_data"] == 2 and "prepare_train_pool" not in plan
    assert "build_dpo_data" not in plan


def test_dpo_change_does_not_retrain_sft(run):
    plan = _plan_with(run, lambda c: c["dpo"].__setitem__("beta", 0.2))
    assert plan["train_dpo"] == 2
    assert "train_sft" not in plan
    # Only the dpo rows' generations: a job for the 3 plain sets, one for the 2 prefilled.
    assert plan["generate"] == 2 and plan["generate_prefilled"] == 2
    assert plan["judge"] == 2 * 5


def test_failed_job_leaves_no_output(run, tmp_path):
    """A job that fails (a model directory without weights) writes nothing that looks complete;
    a model directory that does not exist stops the plan with the key named."""
    _, cfg, _ = run
    bad = yaml.safe_load(yaml.safe_dump(cfg))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')
    bad["models"]["tiny"]["source"]["path"] = str(broken)
    w2 = tmp_path / "w2"
    w2.mkdir()
    write_config(w2, bad)
    cmd = [
        *SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(w2),
        "--workflow-profile",
        "none",
        "--cores",
        "1",
        "results/models/tiny/base",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert not (w2 / "results/models/tiny/base").exists()
    assert (
        not list((w2 / "results/models/tiny").glob(".base.*"))
        if (w2 / "results/models/tiny").exists()
        else True
    )
    log = (w2 / "logs/prepare_base_model/tiny.log").read_text()
    assert "Traceback" in log
    bad["models"]["tiny"]["source"]["path"] = str(tmp_path / "missing")
    write_config(w2, bad)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "config key 'models.tiny.source.path'" in proc.stdout + proc.stderr
    shutil.rmtree(w2)


def test_bad_config_names_the_key(tmp_path):
    cfg = yaml.safe_load((ROOT / "tests/config/test.yaml").read_text())
    cfg["sft"]["learning_rate"] = "fast"
    write_config(tmp_path, cfg)
    cmd = [
        *SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--workflow-profile",
        "none",
        "-n",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "config key 'sft.learning_rate'" in proc.stdout + proc.stderr


def test_ablations_add_rows_and_rerun_nothing_that_exists(run, tmp_path):
    """Two ablations (recovery without a token; backtracking DPO from baseline SFT) on a copy of
    the finished test-scale run: only their own jobs are planned, then their rows appear."""
    work, cfg, _ = run
    copy = tmp_path / "wf"
    shutil.copytree(work, copy, symlinks=True)
    changed = yaml.safe_load(yaml.safe_dump(cfg))
    changed["run"]["methods"] = [
        "baseline", "backtrack", "recovery", "backtrack_dpo_from_baseline",
    ]  # fmt: skip
    write_config(copy, changed)
    plan = planned_jobs(smk(copy, "-n", "results/table1.csv"))
    sets = 5  # advbench, donotanswer, benign, advbench_prefill3, advbench_sure3
    assert plan == {
        "build_sft_data": 1,  # recovery
        "build_dpo_data": 2,  # recovery, backtrack_dpo_from_baseline
        "train_sft": 1,
        "train_dpo": 2,
        "generate": 3,  # recovery sft + dpo, backtrack_dpo_from_baseline dpo
        "generate_prefilled": 3,
        "judge": 3 * sets,
        "table1": 1,
    }
    smk(copy, "results/table1.csv")
    df = pd.read_csv(copy / "results/table1.csv")
    rows = list(zip(df.method, df.stage, strict=True))
    assert rows[4:] == [
        ("recovery", "sft"), ("recovery", "dpo"), ("backtrack_dpo_from_baseline", "dpo"),
    ]  # fmt: skip
    assert {"advbench_turn_back_rate", "advbench_prefill3_turn_back_rate"} <= set(df.columns)
    # The DPO-only ablation started from the baseline's SFT checkpoint.
    dpo_only = copy / "results/models/tiny/backtrack_dpo_from_baseline/seed0/dpo"
    prov = json.loads((dpo_only / "backtrack_provenance.json").read_text())
    assert prov["parent"].endswith("results/models/tiny/baseline/seed0/sft"), prov.get("parent")


def test_a_second_training_seed_adds_only_its_own_jobs(run, tmp_path):
    """train_seeds on a copy of the finished run: the run's own seed spelled out plans nothing
    (null is that seed); a second seed plans only its own data, training and evaluation, and
    then every table has a row per seed, the first seed's unchanged, and the claims a verdict
    per seed."""
    work, cfg, _ = run
    copy = tmp_path / "wf"
    shutil.copytree(work, copy, symlinks=True)
    changed = yaml.safe_load(yaml.safe_dump(cfg))
    seed = changed.get("seed", 0)
    changed["train_seeds"] = [seed]
    write_config(copy, changed)
    assert planned_jobs(smk(copy, "-n")) == {}
    changed["train_seeds"] = [seed, seed + 1]
    write_config(copy, changed)
    plan = planned_jobs(smk(copy, "-n", "results/table1.csv"))
    sets = 5  # advbench, donotanswer, benign, advbench_prefill3, advbench_sure3
    assert plan == {
        "build_sft_data": 2,
        "build_dpo_data": 2,
        "train_sft": 2,
        "train_dpo": 2,
        "generate": 4,
        "generate_prefilled": 4,
        "judge": 4 * sets,
        "table1": 1,
    }
    smk(copy, "results/claims.csv", "results/table2_seeds.csv")
    t1 = pd.read_csv(copy / "results/table1.csv")
    assert list(zip(t1.method, t1.seed, t1.stage, strict=True))[:2] == [
        ("baseline", seed, "sft"),
        ("baseline", seed + 1, "sft"),
    ]
    rates = [c for c in t1.columns if c.endswith(("_unsafe", "_refusal", "_reset_rate"))]
    before = pd.read_csv(work / "results/table1.csv")
    first = t1[t1.seed == seed].reset_index(drop=True)
    pd.testing.assert_frame_equal(first[rates], before[rates])
    for name in ("table2", "logit_bias", "worst_of_k", "claims"):
        df = pd.read_csv(copy / f"results/{name}.csv")
        assert set(df["seed"].dropna()) == {seed, seed + 1}, name
    # Table 2 over seeds: a row per (model, method, stage, attack), each over both seeds; the
    # claims' row over seeds for an attack pools the seeds' rates into an interval.
    t2, t2s = (pd.read_csv(copy / f"results/{n}.csv") for n in ("table2", "table2_seeds"))
    assert len(t2s) * 2 == len(t2) and set(t2s["seeds"]) == {2}
    claims = pd.read_csv(copy / "results/claims.csv")
    gcg = claims[(claims["claim"] == "resists_gcg") & claims["seed"].isna()].iloc[0]
    assert gcg["seeds"] == 2 and not pd.isna(gcg["difference_ci_lo"]), gcg.to_dict()


def test_pool_openers_rebuild_the_pool_and_all_training(run):
    plan = _plan_with(run, lambda c: c["pool"].__setitem__("openers", {"fraction": 0.5}))
    assert plan["prepare_train_pool"] == 1
    assert plan["train_sft"] == 2 and plan["train_dpo"] == 2
    assert "prepare_base_model" not in plan and "sample_prefill_answers" not in plan


def test_other_model_prefixes_come_from_that_model_s_answers(run):
    """prefill.sources: other_model cuts the attacked model's prefixes from another model's
    answers (its own base model and sample_prefill_answers job), in the attacked model's tokens."""
    work, cfg, _ = run

    def other(c):
        c["models"]["tiny2"] = dict(c["models"]["tiny"])
        c["prefill"].update(sources=["base_model", "other_model"], other_model="tiny2")

    plan = _plan_with(run, other)
    assert plan["prepare_base_model"] == 1 and plan["sample_prefill_answers"] == 1
    assert plan["prepare_prefill_set"] == 1  # advbench_other3
    # Each row's prefilled sets are one job, so all three are written again; the plain ones not.
    assert plan["generate_prefilled"] == 4 and "generate" not in plan
    assert "train_sft" not in plan and "prepare_train_pool" not in plan
    changed = yaml.safe_load(yaml.safe_dump(cfg))
    other(changed)
    write_config(work, changed)
    try:
        smk(work, "results/data/prefill/tiny/advbench_other3.jsonl")
    finally:
        write_config(work, cfg)
    answers = {
        json.loads(line)["id"]: json.loads(line)
        for line in (work / "results/data/prefill/tiny2/advbench_answers.jsonl").open()
    }
    cut = [
        json.loads(line)
        for line in (work / "results/data/prefill/tiny/advbench_other3.jsonl").open()
    ]
    assert cut and all(r["prefill_source"] == "other-model" for r in cut)
    for r in cut:
        assert answers[r["id"]]["label"]["unsafe"]
        assert answers[r["id"]]["answer"].startswith(r["prefill"].rstrip())
