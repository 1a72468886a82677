"""Never a stale table with exit 0: after a job that was rebuilding a file fails or is killed,
or when a checkpoint is damaged, the next run refuses and names the files to rebuild.

Snakemake itself plans nothing in these cases (it does not rebuild a missing intermediate
while the files made from it exist), so the first test pins that behaviour down on a toy
workflow: if Snakemake ever changes it, these checks can go.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from backtrack.freshness import stale_message, stale_sources
from backtrack.models.provenance import CheckpointError, check_weights, checkpoint_problem

from tests.test_resume import alive, command, family_of, find_job, job_process, kill_tree
from tests.test_workflow import planned_jobs

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TOY = """
rule c:
    input: "results/b.txt"
    output: "results/c.txt"
    shell: "cat {input} > {output}"
rule b:
    input: "results/a.txt"
    output: "results/b.txt"
    shell: "cat {input} > {output}"
rule a:
    output: "results/a.txt"
    shell: "echo a > {output}"
"""


def _toy(tmp_path: Path, long_name: bool = False) -> Path:
    deep = "results/" + "/".join(["d" * 60] * 5) + "/b.txt"  # its record's name is split
    text = TOY.replace("results/b.txt", deep) if long_name else TOY
    (tmp_path / "Snakefile").write_text(text)
    run = [*SNAKEMAKE, "-c1", "--directory", str(tmp_path), "-s", str(tmp_path / "Snakefile")]
    subprocess.run([*run, "results/c.txt"], check=True, capture_output=True)
    return tmp_path


def test_snakemake_alone_keeps_a_stale_plan(tmp_path):
    """The behaviour the checks exist for (Snakemake 9): intermediate gone, nothing to do."""
    work = _toy(tmp_path)
    (work / "results/b.txt").unlink()
    out = subprocess.run(
        [*SNAKEMAKE, "-c1", "-n", "--directory", str(work), "-s", str(work / "Snakefile"),
         "results/c.txt"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "Nothing to be done" in out.stdout + out.stderr


@pytest.mark.parametrize("long_name", [False, True])
def test_stale_sources_reads_snakemakes_records(tmp_path, monkeypatch, long_name):
    """From Snakemake's own metadata (names over 255 characters are split into folders)."""
    work = _toy(tmp_path, long_name)
    monkeypatch.chdir(work)
    b = next(str(p.relative_to(work)) for p in (work / "results").rglob("b.txt"))
    assert stale_sources(["results/c.txt"]) == {}
    damaged = stale_sources(["results/c.txt"], problem=lambda p: "is damaged" if p == b else None)
    assert damaged == {b: ("is damaged", ["results/c.txt"])}
    Path(b).unlink()
    assert stale_sources(["results/c.txt"]) == {b: ("is gone", ["results/c.txt"])}
    Path("results/a.txt").unlink()  # deeper: only the first missing link is reported
    stale = stale_sources(["results/c.txt"])
    assert stale == {b: ("is gone", ["results/c.txt"])}
    assert f"--forcerun {b}" in stale_message(stale)


def _copy_run(workflow_run, tmp_path: Path) -> tuple[Path, dict]:
    """A private copy of the test-scale run (results, Snakemake's records, config)."""
    ref, cfg, _ = workflow_run
    work = tmp_path / "run"
    shutil.copytree(ref, work, symlinks=True, ignore=shutil.ignore_patterns(".snakemake/locks"))
    return work, cfg


def _smk(work: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
           "--workflow-profile", "none", "--cores", "2", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


@pytest.mark.slow
def test_changed_setting_and_killed_training_refuses_the_old_table(workflow_run, tmp_path):
    """dpo.beta changes, both DPO jobs are killed (as the out-of-memory killer would): the
    same command then refuses instead of reporting the old beta's table, and the command it
    names rebuilds the DPO models with the new beta."""
    work, cfg = _copy_run(workflow_run, tmp_path)
    cfg = {**cfg, "dpo": {**cfg["dpo"], "beta": 0.2}}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    target = "results/table1.csv"
    cmd = [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
           "--workflow-profile", "none", "--cores", "2", target]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed, deadline = set(), time.monotonic() + 600
    while proc.poll() is None:
        assert time.monotonic() < deadline, "train_dpo never started"
        job = job_process(proc, "train.py")
        if job is not None and alive(job):
            killed.add(job.pid)
            job.kill()
        time.sleep(0.05)
    assert proc.returncode != 0 and killed, "the DPO jobs were not killed"
    dpo = ["results/models/tiny/backtrack/seed0/dpo", "results/models/tiny/baseline/seed0/dpo"]
    assert not any((work / d).exists() for d in dpo)

    again = _smk(work, target)
    assert again.returncode != 0, "a stale table was accepted:\n" + again.stdout[-2000:]
    said = again.stdout + again.stderr
    assert "Nothing to be done" not in said
    assert all(d in said.split("--forcerun", 1)[1] for d in dpo), said[-2000:]

    fixed = _smk(work, target, "--forcerun", *dpo)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    for d in dpo:
        prov = json.loads((work / d / "backtrack_provenance.json").read_text())
        assert prov["params"]["beta"] == 0.2, prov.get("params")


@pytest.mark.slow
def test_a_transcript_lost_in_a_killed_rebuild_is_not_silently_skipped(workflow_run, tmp_path):
    """--forcerun of an attack transcript split in two shards, SIGKILL inside its merge_attack
    job (Snakemake has removed the old transcript by then), --unlock: the claims command then
    refuses, naming the --forcerun that rebuilds the transcript, instead of "Nothing to be
    done" over Table 2 and the claims made from the lost one; that command plans the rebuild."""
    work, cfg = _copy_run(workflow_run, tmp_path)
    cfg = {**cfg, "attacks": {**cfg["attacks"], "shards_by_attack": {"gcg": 2}}}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    lost = "results/attacks/tiny/backtrack/seed0/sft/gcg.jsonl"
    with open(tmp_path / "forcerun.txt", "w") as out:
        proc = subprocess.Popen(
            command(work, lost, "--forcerun", lost), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline, job, inside = time.monotonic() + 300, None, False
        try:
            while job is None:
                assert proc.poll() is None, (tmp_path / "forcerun.txt").read_text()[-3000:]
                assert time.monotonic() < deadline, "merge_attack never started"
                time.sleep(0.01)
                job = find_job(family_of(proc), "merge_attack.py", "merge_attack")
            inside = alive(job)
        finally:
            kill_tree(proc)
    assert inside and not (work / lost).exists()
    subprocess.run(command(work, "--unlock"), check=True, capture_output=True)

    again = subprocess.run(
        command(work, "results/claims.csv"), capture_output=True, text=True, check=False
    )
    said = again.stdout + again.stderr
    assert again.returncode != 0 and "Nothing to be done" not in said, said[-3000:]
    assert f"--forcerun {lost}" in said, said[-3000:]
    plan = subprocess.run(
        command(work, "-n", "results/claims.csv", "--forcerun", lost),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    jobs = planned_jobs(plan.stdout + plan.stderr)
    assert {"attack_shard", "merge_attack", "judge_attack", "table2", "claims"} <= set(jobs)


@pytest.mark.slow
def test_a_truncated_checkpoint_is_refused_by_plan_and_loader(workflow_run, tmp_path):
    work, _ = _copy_run(workflow_run, tmp_path)
    ckpt = work / "results/models/tiny/baseline/seed0/dpo"
    weights = ckpt / "model.safetensors"
    assert checkpoint_problem(ckpt, full=True) is None
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert "model.safetensors" in checkpoint_problem(ckpt)
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        check_weights(ckpt)
    out = _smk(work, "-n", "results/table1.csv")
    assert out.returncode != 0
    assert "--forcerun results/models/tiny/baseline/seed0/dpo" in out.stdout + out.stderr
    # Same size, other bytes: the plan's size check passes, the loader's digest does not.
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert checkpoint_problem(ckpt) is None
    with pytest.raises(CheckpointError, match="SHA-256"):
        check_weights(ckpt)
