"""The local SLURM cluster the profile's test runs on: a single node started on this machine from
Debian's slurm-wlm and munge (tools/local_slurm.sh). Needs root and those packages; CI installs
them (.ci/run). The graph run through profiles/slurm is in tests/test_rehearsal.py: the paper
path (two models, vLLM generate and judge jobs, a sharded attack) through
snakemake-executor-plugin-slurm."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import real_slurm_path

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
    real = real_slurm_path(dict(os.environ))
    proc = subprocess.run(
        ["bash", script, "start", state], capture_output=True, text=True, env=real
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = {**real, "SLURM_CONF": str(state / "slurm.conf")}
    yield env
    subprocess.run(["bash", script, "stop", state], capture_output=True, text=True, env=real)


def test_local_cluster_has_the_machines_cpus_whatever_omp_says(tmp_path: Path) -> None:
    """With OMP_NUM_THREADS=1 in the environment (a vLLM job in the same process sets it),
    ``nproc`` says 1; a node configured with one CPU leaves a two-CPU job pending for ever (a CI
    run hung this way). The cluster must have the machine's CPUs and run such a job."""
    why = _why_not()
    if why:
        pytest.skip(why)
    cpus = len(os.sched_getaffinity(0))
    script = ROOT / "tools/local_slurm.sh"
    env = {**real_slurm_path(dict(os.environ)), "OMP_NUM_THREADS": "1",
           "SLURM_CONF": str(tmp_path / "slurm.conf")}  # fmt: skip
    proc = subprocess.run(
        ["bash", script, "start", tmp_path], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        node = subprocess.run(["scontrol", "show", "node", "localhost"], capture_output=True,
                              text=True, env=env, check=True).stdout  # fmt: skip
        assert f"CPUTot={cpus} " in node, node
        sbatch = ["sbatch", "--wait", f"--cpus-per-task={cpus}", "--mem=100",
                  f"--output={tmp_path}/job.out", "--wrap", "true"]  # fmt: skip
        job = subprocess.run(sbatch, capture_output=True, text=True, env=env, timeout=120)
        assert job.returncode == 0, job.stdout + job.stderr
    finally:
        subprocess.run(["bash", script, "stop", tmp_path], capture_output=True, text=True, env=env)


def test_a_second_cluster_on_the_same_port_fails_to_start(tmp_path: Path) -> None:
    """A cluster already on the port answers ``sinfo``; starting another must fail (its
    slurmctld dies on the busy port), not report the other one as up."""
    why = _why_not()
    if why:
        pytest.skip(why)
    script = ROOT / "tools/local_slurm.sh"
    first, second = tmp_path / "first", tmp_path / "second"
    env = real_slurm_path(dict(os.environ))
    try:
        up = subprocess.run(
            ["bash", script, "start", first], capture_output=True, text=True, env=env
        )
        assert up.returncode == 0, up.stdout + up.stderr
        again = subprocess.run(
            ["bash", script, "start", second], capture_output=True, text=True, env=env
        )
        assert again.returncode == 1 and "another cluster" in again.stderr, again.stderr
        assert os.path.realpath("/etc/slurm/slurm.conf") == str(first / "slurm.conf")
    finally:
        for d in (second, first):
            subprocess.run(["bash", script, "stop", d], capture_output=True, text=True, env=env)
