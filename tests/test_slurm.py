"""profiles/slurm against a real SLURM cluster: a single node started on this machine from
Debian's slurm-wlm and munge (tools/local_slurm.sh), running the test-scale graph through
snakemake-executor-plugin-slurm. Needs root and those packages; CI installs them (.ci/run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import make_tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root to start slurmctld/slurmd (the local test cluster)"
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch") if not shutil.which(b)]
    if missing:
        return f"missing {', '.join(missing)}: apt-get install slurm-wlm munge"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "missing snakemake-executor-plugin-slurm (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    why = _why_not()
    if why:
        pytest.skip(why)
    state = tmp_path_factory.mktemp("slurm")
    script = ROOT / "tools/local_slurm.sh"
    proc = subprocess.run(["bash", script, "start", state], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = {**os.environ, "SLURM_CONF": str(state / "slurm.conf")}
    yield env
    subprocess.run(["bash", script, "stop", state], capture_output=True, text=True)


def test_test_scale_graph_runs_through_the_slurm_profile(cluster, tmp_path):
    work = tmp_path / "wf"
    work.mkdir()
    src = make_tiny_model_dir(work / "tiny-src")
    cfg = yaml.safe_load((ROOT / "tests/config/test.yaml").read_text())
    cfg["models"]["tiny"]["source"]["path"] = str(src)
    cfg["run"]["stages"] = ["sft"]  # enough to cross every kind of rule, in half the jobs
    cfg["attacks"]["shards"] = 2  # one sharded attack through the profile: 2 shards + a merge
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(work), "--workflow-profile", "none",
        "--profile", str(ROOT / "profiles/slurm"),
        "--slurm-no-account", "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "5", "--slurm-keep-successful-logs",
        "--jobs", "4",
        "results/table1.csv", "results/attacks/tiny/baseline/sft/gcg.jsonl",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=cluster, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-5000:]
    df = pd.read_csv(work / "results/table1.csv")
    assert list(df.method) == ["baseline", "backtrack"]
    # Every job went through sbatch: the plugin keeps one log directory per rule.
    logs = work / ".snakemake/slurm_logs"
    rules = {p.name.removeprefix("rule_") for p in logs.iterdir()} if logs.exists() else set()
    assert {"train_sft", "generate", "judge"} <= rules, proc.stderr[-3000:]
    assert {"attack_shard", "merge_attack"} <= rules, proc.stderr[-3000:]
    assert len(list((logs / "rule_attack_shard").rglob("*.log"))) >= 2  # a job per shard
    lines = (work / "results/attacks/tiny/baseline/sft/gcg.jsonl").read_text().splitlines()
    assert len(lines) == cfg["attacks"]["n"]
