"""Paper scale without a cluster: the paper config plans the expected jobs and resources, and the
conda environments agree with pyproject.toml and with what the tests run on."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import types
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("paper")
    cmd = [
        sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(work), "--workflow-profile", "none", "--cores", "2",
        "results/table1.csv", "results/table2.csv",
        "--configfile", str(ROOT / "config.yaml"), str(ROOT / "config/paper.yaml"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def jobs(plan: str) -> dict[str, list[str]]:
    """rule -> the 'resources:' line of each planned job."""
    out: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", plan):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if m:
            res = re.search(r"^\s+resources: (.*)$", block, re.M)
            out.setdefault(m[1], []).append(res[1] if res else "")
    return out


def test_paper_config_plans_the_whole_grid(paper_plan):
    plan = paper_plan
    j = jobs(plan)
    assert len(j["prepare_base_model"]) == 2
    # Base models have no chat template: each gets its file from config/chat_templates/.
    for name in ("gemma.jinja", "llama-3.jinja"):
        assert f"config/chat_templates/{name}" in plan
    assert len(j["train_sft"]) == 4 and len(j["train_dpo"]) == 4
    # 2 models x 4 (method, stage), each with a job for the 6 plain sets (4 harmful, HH-RLHF
    # dev, benign), one for Table 1's prefilled sets (prefill10, sure10) and one for the rest of
    # the 4-length prefill sweep from each of the 2 prefix sources; each set judged on its own.
    for rule in ("generate", "generate_prefilled", "generate_prefill_attack"):
        assert len(j[rule]) == 2 * 4, rule
    assert len(j["judge"]) == 2 * 4 * (6 + 4 * 2)
    # The optimising attacks in shards (attacks.shards 5, the adaptive attack 10), one merge each.
    assert "attack" not in j
    assert len(j["attack_shard"]) == 2 * 4 * (5 + 5 + 10)
    assert len(j["merge_attack"]) == 2 * 4 * 3 and len(j["judge_attack"]) == 2 * 4 * 3
    # The paper's data (hub sets: a dry run loads none of them): 4 harmful + dev + benign.
    assert len(j["prepare_eval_set"]) == 6
    assert len(j["prepare_train_prompts"]) == 1 and len(j["prepare_train_pool"]) == 2


def job_blocks(plan: str) -> list[tuple[str, dict[str, str], str]]:
    """(rule, wildcards, 'resources:' line) of each planned job."""
    out = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", plan):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if m:
            wc = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            res = re.search(r"^\s+resources: (.*)$", block, re.M)
            pairs = [kv.split("=", 1) for kv in wc[1].split(", ")] if wc else []
            out.append((m[1], dict(pairs), res[1] if res else ""))
    return out


@pytest.mark.parametrize("rule", ["train_sft", "train_dpo"])
@pytest.mark.parametrize(
    ("model", "gpu", "mem_mb"), [("gemma-2-2b", 4, 128000), ("llama-3-8b", 8, 256000)]
)
def test_paper_config_trains_each_model_on_its_gpus(paper_plan, rule, model, gpu, mem_mb):
    lines = [r for name, wc, r in job_blocks(paper_plan) if name == rule and wc["model"] == model]
    assert len(lines) == 2  # baseline and backtrack
    for line in lines:
        assert f"gpu={gpu}," in line and f"mem_mb={mem_mb}," in line, line
        assert "runtime=1440" in line, line
        # One node: the SLURM plugin adds --nodes only when the job has a `nodes` resource.
        assert re.search(r"\bnodes=1\b", line), line


def test_paper_training_jobs_are_submitted_to_one_node(paper_plan):
    """The sbatch line snakemake-executor-plugin-slurm builds from a planned training job."""
    submit = pytest.importorskip("snakemake_executor_plugin_slurm.submit_string")

    class Resources(dict):
        __getattr__ = dict.__getitem__

    lines = [r for name, wc, r in job_blocks(paper_plan) if name in ("train_sft", "train_dpo")]
    assert len(lines) == 8
    for line in lines:
        pairs = (kv.split("=", 1) for kv in line.split(", "))
        res = Resources((k, int(v) if v.isdigit() else v) for k, v in pairs)
        job = types.SimpleNamespace(resources=res, threads=8)
        params = {"run_uuid": "u", "slurm_logfile": "l", "comment_str": "c", "account": "",
                  "partition": "", "workdir": "."}  # fmt: skip
        call = submit.get_submit_command(job, params)
        assert " --nodes=1" in call, call


def test_paper_config_global_batch_is_128_on_every_gpu_count():
    from backtrack.config import validate_config
    from backtrack.plan import batch_plan, job_gpus
    from snakemake.utils import update_config

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(config, yaml.safe_load((ROOT / "config/paper.yaml").read_text()))
    validate_config(config)
    plans = {
        (stage, m): batch_plan(config[stage], job_gpus(config, f"train_{stage}", m), stage)
        for stage in ("sft", "dpo")
        for m in config["run"]["models"]
    }
    assert {k: v["global_batch_size"] for k, v in plans.items()} == dict.fromkeys(plans, 128)
    assert plans["sft", "llama-3-8b"]["gradient_accumulation_steps"] == 1
    assert plans["sft", "gemma-2-2b"]["gradient_accumulation_steps"] == 2
    assert plans["dpo", "llama-3-8b"]["gradient_accumulation_steps"] == 2
    assert plans["dpo", "gemma-2-2b"]["gradient_accumulation_steps"] == 4


@pytest.mark.parametrize(
    ("rule", "gpu", "mem_mb", "runtime"),
    [
        ("generate", 1, 64000, 240),
        ("attack_shard", 1, 64000, 360),
        ("judge", 1, 64000, 120),
        ("prepare_base_model", 0, 64000, 60),
        ("prepare_train_pool", 1, 128000, 1440),
    ],
)
def test_paper_config_resources(paper_plan, rule, gpu, mem_mb, runtime):
    for line in jobs(paper_plan)[rule]:
        assert f"gpu={gpu}" in line and f"mem_mb={mem_mb}" in line, line
        assert f"runtime={runtime}" in line, line


def test_paper_config_attack_shards_are_a_few_gpu_hours(paper_plan):
    """Each shard job holds 10 prompts (5 for the adaptive attack), as the estimate assumes, and
    its runtime limit is well above the estimated largest shard (~1.3 GPU-hours)."""
    shards = [wc for name, wc, _ in job_blocks(paper_plan) if name == "attack_shard"]
    per_attack = {(wc["attack"], wc["shards"]) for wc in shards}
    assert per_attack == {("gcg", "5"), ("autodan", "5"), ("adaptive", "10")}
    cells = {(wc["model"], wc["method"], wc["stage"], wc["attack"], wc["shard"]) for wc in shards}
    assert len(cells) == len(shards)  # no shard planned twice


def _pins(env: Path) -> dict[str, str]:
    doc = yaml.safe_load(env.read_text())
    pins = {}
    for dep in doc["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*[=]{1,2}\s*([\w.]+)", item.strip())
            if m and m[1] != "python":
                pins[m[1].lower()] = m[2]
    return pins


def test_envs_agree_with_pyproject_and_the_test_environment():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert {e.stem for e in envs} >= {"train", "report", "vllm"}
    for env in envs:
        for name, pinned in _pins(env).items():
            if name in reqs:
                assert reqs[name].specifier.contains(pinned, prereleases=True), (
                    f"{env.name} pins {name}=={pinned}, pyproject asks {reqs[name]}"
                )
    # The training environment is the one the tests run in: same versions.
    for name, pinned in _pins(ROOT / "envs/train.yaml").items():
        assert Version(version(name)).public == pinned, (
            f"envs/train.yaml pins {name}=={pinned}, tests run {version(name)}"
        )


# vllm 0.33.0's own requirements on what envs/vllm.yaml pins, copied from the Requires-Dist lines
# of its wheel's METADATA (vllm-0.33.0.dist-info/METADATA; no network at test time). Only the
# packages an env could pin are listed; vLLM pins torch exactly, so the env must agree with it.
VLLM_VERSION = "0.33.0"
VLLM_REQUIRES = [
    "torch==2.14.0",
    "transformers>=5.16.1,<5.21.0",
    "tokenizers>=0.23.2",
    "huggingface_hub>=1.31.0",
    "safetensors>=0.6.2",
    "jsonschema>=4.23.0",
    "numpy",
    "pyyaml",
    "tqdm",
]


def test_vllm_env_satisfies_vllms_own_requirements():
    pins = _pins(ROOT / "envs/vllm.yaml")
    assert pins.get("vllm") == VLLM_VERSION, "VLLM_REQUIRES above describe another vLLM release"
    for req in map(Requirement, VLLM_REQUIRES):
        name = req.name.lower().replace("_", "-")
        pinned = pins.get(name, pins.get(req.name.lower()))
        if pinned is not None:
            assert req.specifier.contains(pinned, prereleases=True), (
                f"envs/vllm.yaml pins {name}=={pinned}; vllm {VLLM_VERSION} requires {req}"
            )
    # The env names the torch it runs (vLLM's exact pin), not whatever pip would pick.
    assert "torch" in pins and "transformers" in pins
