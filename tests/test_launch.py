"""Multi-GPU training inside one job: the batch arithmetic, the accelerate command line, and real
two-process launches on CPU.

How the launches run here: ``accelerate launch --cpu --num_processes 2`` starts ONE process
(accelerate's simple launcher; several CPU processes need mpirun and a hostfile). A multi-GPU
config (config/accelerate/ddp.yaml, ``distributed_type: MULTI_GPU``) on a machine without CUDA
starts two ranks through torch.distributed.run, and the Trainer (``use_cpu=True``) then runs them
as accelerate's MULTI_CPU over gloo: the same launcher, entry module, data sharding, gathering and
rank-0 saving as on GPUs. FSDP cannot run here (accelerate selects FSDP only on accelerators), so
config/accelerate/fsdp.yaml is checked through accelerate's own parser instead.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from backtrack.config import ConfigError, validate_config
from backtrack.models.precision import Precision
from backtrack.plan import batch_plan, job_gpus, job_resources
from backtrack.train.launch import (
    ENTRY_MODULE,
    LaunchError,
    check_accelerate_config,
    check_job_devices,
    launch_command,
    load_accelerate_config,
    remove_partial_output,
    train_job,
)
from backtrack.train.spec import TrainJob, TrainSettings

FP32 = TrainSettings(seed=0, dtype="float32", precision=Precision.fixed("fp32"))

ROOT = Path(__file__).resolve().parents[1]
FSDP = ROOT / "config/accelerate/fsdp.yaml"
DDP = ROOT / "config/accelerate/ddp.yaml"


# --- the global batch -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "accum"), [(1, 8), (2, 4), (4, 2), (8, 1)], ids=["1gpu", "2gpu", "4gpu", "8gpu"]
)
def test_accumulation_is_derived_so_the_global_batch_stays_configured(n, accum):
    plan = batch_plan({"batch_size": 16, "global_batch_size": 128}, n, "sft")
    assert plan == {
        "num_processes": n,
        "per_device_batch_size": 16,
        "gradient_accumulation_steps": accum,
        "global_batch_size": 128,
    }


def test_without_a_global_batch_it_is_per_device_times_accumulation_times_gpus():
    assert batch_plan({"batch_size": 8}, 1, "sft")["global_batch_size"] == 8
    plan = batch_plan({"batch_size": 8, "gradient_accumulation_steps": 2}, 4, "dpo")
    assert plan["global_batch_size"] == 64


def test_a_global_batch_that_does_not_split_names_the_key():
    with pytest.raises(ValueError, match=r"'sft\.global_batch_size': 128 .* 16 x 3 GPU"):
        batch_plan({"batch_size": 16, "global_batch_size": 128}, 3, "sft")
    with pytest.raises(ValueError, match=r"'dpo\.gradient_accumulation_steps': .* = 512, not"):
        batch_plan(
            {"batch_size": 16, "gradient_accumulation_steps": 4, "global_batch_size": 128}, 8, "dpo"
        )
    # Consistent explicit values pass.
    plan = batch_plan(
        {"batch_size": 16, "gradient_accumulation_steps": 1, "global_batch_size": 128}, 8, "dpo"
    )
    assert plan["gradient_accumulation_steps"] == 1


@pytest.fixture
def cfg():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_per_model_gpus_and_the_batch_check_at_parse_time(cfg):
    cfg["sft"] |= {"batch_size": 16, "global_batch_size": 128, "gradient_accumulation_steps": None}
    cfg["resources"] = {
        "default": {"mem_mb": 1000, "runtime": 10, "gpu": 1},
        "train_sft": {"mem_mb": 2000, "by_model": {"smollm2-135m": {"gpu": 8, "threads": 64}}},
    }
    validate_config(cfg)
    assert job_resources(cfg, "train_sft", "smollm2-135m") == {
        "mem_mb": 2000, "runtime": 10, "gpu": 8, "threads": 64,
    }  # fmt: skip
    assert job_gpus(cfg, "train_dpo", "smollm2-135m") == 1
    cfg["resources"]["train_sft"]["by_model"]["smollm2-135m"]["gpu"] = 3
    with pytest.raises(ConfigError, match=r"'sft\.global_batch_size'.*'smollm2-135m'.*3 GPU"):
        validate_config(cfg)


def test_per_model_resources_need_a_known_model(cfg):
    cfg["resources"] = {"train_dpo": {"by_model": {"llama-9b": {"gpu": 8}}}}
    with pytest.raises(ConfigError, match=r"'resources\.train_dpo\.by_model\.llama-9b'"):
        validate_config(cfg)


def test_per_model_resources_only_for_training_rules(cfg):
    cfg["resources"] = {"generate": {"by_model": {"smollm2-135m": {"gpu": 2}}}}
    with pytest.raises(ConfigError, match=r"'resources\.generate\.by_model': unknown key"):
        validate_config(cfg)


# --- the launch command and the accelerate configs --------------------------------------------


def test_launch_command_for_eight_gpus():
    cmd = launch_command("/w/spec.json", 8, FSDP, mixed_precision="bf16", threads_per_process=8)
    assert cmd == [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(FSDP),
        "--num_processes", "8", "--num_machines", "1", "--machine_rank", "0",
        "--main_process_port", "0", "--mixed_precision", "bf16", "--dynamo_backend", "no",
        "--num_cpu_threads_per_process", "8",
        "--module", "backtrack.train.rank", "/w/spec.json",
    ]  # fmt: skip


def test_fsdp_config_through_accelerates_own_parser():
    """What `accelerate launch` makes of the command: FSDP2, full shard, 8 ranks, bf16."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    cmd = launch_command("/w/spec.json", 8, FSDP, mixed_precision="bf16", threads_per_process=8)
    args = launch_command_parser().parse_args(cmd[3:])
    args, _, _ = _validate_launch_command(args)
    assert args.use_fsdp and not args.multi_gpu
    assert (args.num_processes, args.module, args.training_script) == (
        8, True, "backtrack.train.rank",
    )  # fmt: skip
    assert args.training_script_args == ["/w/spec.json"]
    env = prepare_multi_gpu_env(args)
    assert args.nproc_per_node == "8" and int(args.master_port) > 0  # port 0 -> a free port
    assert env["ACCELERATE_USE_FSDP"] == "true"
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    assert env["FSDP_VERSION"] == "2"
    assert env["FSDP_RESHARD_AFTER_FORWARD"] == "true"  # full shard
    assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
    assert env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"
    assert env["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "false"
    assert env["FSDP_OFFLOAD_PARAMS"] == "false"
    assert env["FSDP_ACTIVATION_CHECKPOINTING"] == "false"
    assert env["OMP_NUM_THREADS"] == "8"


def test_shipped_configs_pass_our_checks():
    for path, kind in ((FSDP, "FSDP"), (DDP, "MULTI_GPU")):
        cfg = load_accelerate_config(path)
        assert cfg["distributed_type"] == kind and cfg["num_machines"] == 1
        for stage in ("sft", "dpo"):
            check_accelerate_config(cfg, stage, {"gradient_checkpointing": True})


def test_accelerate_settings_we_refuse():
    fsdp = load_accelerate_config(FSDP)
    ram = {**fsdp, "fsdp_config": {**fsdp["fsdp_config"], "fsdp_cpu_ram_efficient_loading": True}}
    check_accelerate_config(ram, "sft", {})  # the policy gets rank 0's weights broadcast
    with pytest.raises(ValueError, match="reference model empty"):
        check_accelerate_config(ram, "dpo", {})
    ac = {**fsdp, "fsdp_config": {**fsdp["fsdp_config"], "fsdp_activation_checkpointing": True}}
    with pytest.raises(ValueError, match=r"'sft\.gradient_checkpointing'"):
        check_accelerate_config(ac, "sft", {"gradient_checkpointing": True})
    sharded = {**fsdp, "fsdp_config": {**fsdp["fsdp_config"], "fsdp_state_dict_type": "SHARDED"}}
    with pytest.raises(ValueError, match="FULL_STATE_DICT"):
        check_accelerate_config(sharded, "sft", {})
    with pytest.raises(FileNotFoundError, match=r"'launch\.accelerate_config'"):
        load_accelerate_config(ROOT / "config/accelerate/nope.yaml")


def test_a_job_that_cannot_see_its_gpus_fails_before_launching(monkeypatch):
    monkeypatch.delenv("SLURM_STEP_NUM_TASKS", raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    check_job_devices(8, 8)
    check_job_devices(2, None)  # CPU: nothing to check
    with pytest.raises(LaunchError, match="asked for 8 GPUs but sees 1"):
        check_job_devices(8, 1)
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "8")
    with pytest.raises(LaunchError, match="runs 8 tasks"):
        check_job_devices(8, 8)


def test_partial_output_is_removed(tmp_path):
    out = tmp_path / "sft"
    (out / "x").mkdir(parents=True)
    tmp = tmp_path / ".sft.abc123.tmp"
    tmp.mkdir()
    (tmp_path / ".dpo.abc.tmp").mkdir()  # another job's: kept
    assert sorted(remove_partial_output(out)) == sorted([str(out), str(tmp)])
    assert [p.name for p in tmp_path.iterdir()] == [".dpo.abc.tmp"]


def test_one_gpu_trains_in_process(monkeypatch, tmp_path):
    """gpus <= 1 is the old path: run_sft in this process, no launcher."""
    import backtrack.train.launch
    import backtrack.train.trainers

    calls = []
    monkeypatch.setattr(
        backtrack.train.trainers, "run_sft", lambda *a, **k: calls.append((a, k)) or {}
    )
    monkeypatch.setattr(
        backtrack.train.launch, "run_launch", lambda *a, **k: pytest.fail("launched")
    )
    data = tmp_path / "ex.jsonl"
    data.write_text('{"id": "a"}\n')
    for gpus in (0, 1):
        job = TrainJob("sft", "m", str(data), "o", {"batch_size": 2}, FP32, gpus=gpus)
        train_job(job, threads=2, accelerate_config="missing.yaml")
    assert len(calls) == 2
    assert calls[0][0] == ("m", [{"id": "a"}], "o", {"batch_size": 2})


# --- real launches: two ranks on CPU ----------------------------------------------------------

PARAMS = {
    "learning_rate": 1e-3, "epochs": 1, "batch_size": 1, "global_batch_size": 4,
    "gradient_accumulation_steps": None, "lr_scheduler": "constant", "warmup_ratio": 0.0,
    "weight_decay": 0.0, "max_length": 128, "reset_init": "probe", "sampling": "random",
    "optim": "adamw_torch", "gradient_checkpointing": False, "bf16": True,
    "prefix_min_fraction": 0.3, "prefix_max_fraction": 0.6, "reset_token": "[RESET]",
}  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tiny_source_dir, tmp_path_factory):
    """A base model dir with [RESET], 8 SFT examples and 4 DPO pairs (backtracking method)."""
    from backtrack.data.examples import ExampleSettings, build_dpo_pairs, build_sft_examples
    from backtrack.io import write_jsonl
    from backtrack.models.base import add_reset_token
    from backtrack.settings import ResetToken
    from transformers import AutoTokenizer, LlamaForCausalLM

    from tests.conftest import RESET
    from tests.test_examples import POOL

    d = tmp_path_factory.mktemp("launch")
    tok = AutoTokenizer.from_pretrained(tiny_source_dir)
    model = LlamaForCausalLM.from_pretrained(tiny_source_dir)
    rid = add_reset_token(model, tok, RESET)
    model.save_pretrained(d / "base")
    tok.save_pretrained(d / "base")
    harmful, benign = POOL
    pool = [harmful, {**harmful, "id": "h2", "prompt": "How do I hotwire a car?"}]
    pool += [{**benign, "id": f"b{i}", "prompt": f"Name fruit number {i}."} for i in range(4)]
    kw = {"min_fraction": 0.3, "max_fraction": 0.6, "seed": 0}
    reset = ResetToken(RESET, rid)
    examples, _ = build_sft_examples(
        pool, tok, "backtrack", reset, ExampleSettings(**kw, max_length=128)
    )
    pairs, _ = build_dpo_pairs(pool, tok, "backtrack", reset, ExampleSettings(**kw))
    assert (len(examples), len(pairs)) == (8, 4)
    write_jsonl(d / "sft.jsonl", examples)
    write_jsonl(d / "dpo.jsonl", pairs)
    return d


def _launch(stage, inputs, out, log, module=ENTRY_MODULE, **over):
    with open(log, "w") as stream:
        job = TrainJob(
            stage,
            model_dir=str(inputs / "base" if stage == "sft" else inputs / "out_sft"),
            data=str(inputs / f"{stage}.jsonl"),
            out_dir=str(out),
            params=PARAMS | over,
            settings=FP32,
            gpus=2,
        )
        return train_job(job, threads=2, accelerate_config=str(DDP), stream=stream, module=module)


def _check_written_once(out: Path, log: Path) -> dict:
    """The output is complete, loads, and only rank 0 wrote it, once."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "train_log.json"} <= names
    assert "backtrack_provenance.json" in names
    assert not list(out.parent.glob(f".{out.name}.*.tmp"))
    text = log.read_text()
    assert text.count("rank 0 wrote") == 1, text[-3000:]
    AutoModelForCausalLM.from_pretrained(out)
    AutoTokenizer.from_pretrained(out)
    return json.loads((out / "backtrack_provenance.json").read_text())


@pytest.fixture(scope="module")
def sft_run(inputs):
    out, log = inputs / "out_sft", inputs / "sft.log"
    info = _launch("sft", inputs, out, log)
    return out, log, info


@pytest.mark.slow
def test_two_rank_sft(sft_run):
    out, log, info = sft_run
    prov = _check_written_once(out, log)
    assert info == prov
    # Both ranks ran (two processes in one collective), each took the same optimizer steps.
    dist = prov["distributed"]
    assert dist["num_processes"] == 2 and dist["distributed_type"].endswith("MULTI_CPU")
    assert [r["rank"] for r in dist["ranks"]] == [0, 1]
    assert len({r["pid"] for r in dist["ranks"]}) == 2
    # 1 example per rank x 2 accumulation x 2 ranks = the configured global batch of 4, so the
    # 8 examples make 2 optimizer steps on every rank.
    assert prov["batch"] == {
        "num_processes": 2, "per_device_batch_size": 1,
        "gradient_accumulation_steps": 2, "global_batch_size": 4,
    }  # fmt: skip
    assert prov["steps"] == 2 and {r["steps"] for r in dist["ranks"]} == {2}
    assert json.loads((out / "train_log.json").read_text())[-1]["step"] == 2
    assert prov["reset_logit_at_reset_median"]  # the probe init ran (on every rank)


@pytest.mark.slow
def test_two_rank_dpo_with_its_reference_model(inputs, sft_run):
    out, log = inputs / "out_dpo", inputs / "dpo.log"
    info = _launch("dpo", inputs, out, log, beta=0.1, reset_init="mean")
    prov = _check_written_once(out, log)
    assert info == prov and prov["stage"] == "dpo"
    assert prov["distributed"]["num_processes"] == 2
    assert prov["batch"]["global_batch_size"] == 4 and prov["steps"] == 1  # 4 pairs
    # Policy == reference at the first step: the DPO loss starts at log 2.
    first = json.loads((out / "train_log.json").read_text())[-1]
    assert first["train_loss"] == pytest.approx(0.6931, abs=1e-3)


@pytest.mark.slow
def test_a_failing_rank_fails_the_job_and_leaves_no_output(inputs, sft_run, monkeypatch):
    """Rank 1 dies after rank 0 has written its complete temporary output: nothing appears."""
    monkeypatch.setenv("BACKTRACK_FAIL_RANK", "1:save")
    # The ranks run tests/faulty_rank.py (production ranks have no failure hooks).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out, log = inputs / "out_fail", inputs / "fail.log"
    with pytest.raises(LaunchError, match="exited with"):
        _launch("sft", inputs, out, log, module="tests.faulty_rank")
    text = log.read_text()
    # Rank 1 died after rank 0's temporary output was complete, before the final barrier.
    assert "after rank 0 wrote its complete temporary output" in text, text[-3000:]
    assert not out.exists()
    assert not list(inputs.glob(".out_fail.*.tmp"))
