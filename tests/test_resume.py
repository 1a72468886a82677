"""Interrupt anywhere, resume, same result: the test-scale graph for Table 1 and Table 2 is
killed (SIGKILL to the whole process tree) inside training, generation, judging and an attack,
resumed each time with the README's command, and compared with an uninterrupted run.

The uninterrupted run is a separate from-scratch run in another directory, so the comparison
also shows determinism: bit-identical checkpoints and identical tables and records.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from backtrack.io import read_jsonl
from backtrack.smk import runs_snakemake

from tests.test_workflow import ROOT, SNAKEMAKE, write_config

pytestmark = pytest.mark.slow

TARGETS = ("results/table1.csv", "results/table2.csv")
# Where to stop the run, in the order the graph reaches them: (rule, its script, seconds into
# the job to stop at, drawn uniformly from this window with a fixed seed, signal). SIGKILL goes
# to the whole process tree and leaves Snakemake's lock (recovery: --unlock, then the same
# command); SIGINT goes to the process group, as Ctrl-C in a terminal does (recovery: the same
# command). The attack is killed as soon as one prompt's transcript line is on disk, so the
# resumed job must reuse it.
KILL_POINTS = (
    ("train_sft", "train.py", (1.0, 6.0), signal.SIGKILL),
    ("generate", "generate.py", (0.5, 3.0), signal.SIGKILL),
    ("generate", "generate.py", (0.5, 3.0), signal.SIGINT),
    ("judge", "judge.py", (0.0, 0.05), signal.SIGKILL),
    ("attack", "attack.py", None, signal.SIGKILL),
)
SEED = 12
# Values that measure time (or a cache key made of file times), not results.
TIMING_KEYS = {"seconds", "attack_seconds", "stamp"}


def _timing(name: str) -> bool:
    return name in TIMING_KEYS or name.endswith("_s") or "seconds" in name or "per_s" in name


def _untimed(obj):
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if not _timing(k)}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def command(work: Path, *extra: str) -> list[str]:
    """The user's command (the repository's default workflow profile applies), on 2 cores."""
    return [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
            "--cores", "2", *extra]  # fmt: skip


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake's process group and every descendant (jobs may start their own)."""
    try:
        family = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        family = [proc.pid]
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(60)


def job_process(proc: subprocess.Popen, script: str) -> psutil.Process | None:
    """A running job of Snakemake ``proc`` whose rule script is ``script`` (Snakemake runs it
    as ``python .snakemake/scripts/tmp<random>.<script>``)."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for p in family:
        with contextlib.suppress(psutil.Error):
            if any(arg.endswith(f".{script}") for arg in p.cmdline()):
                return p
    return None


def transcript_line_written(work: Path) -> bool:
    parts = (work / "results/attacks").rglob("*.jsonl.partial")
    return any(p.read_text().count("\n") >= 1 for p in parts)


def _default_sigint() -> None:
    """In the child: Ctrl-C's default action. A test run started in the background by a
    non-interactive shell inherits SIGINT ignored, and Snakemake would then sleep through the
    kill point that sends it (the run finishes, and the next kill point finds nothing to do)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def alive(p: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    return False


def test_kill_anywhere_and_resume_gives_the_uninterrupted_results(workflow_run, tmp_path):
    ref, cfg, _ = workflow_run
    work = tmp_path / "crash"
    work.mkdir()
    write_config(work, cfg)  # same source model as the reference run
    rng = random.Random(SEED)
    landed = []
    for rule, script, window, sig in KILL_POINTS:
        with open(tmp_path / f"snakemake-{rule}.txt", "w") as out:
            proc = subprocess.Popen(
                command(work, *TARGETS), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_default_sigint,
            )  # fmt: skip
            deadline = time.monotonic() + 900
            job = None
            while job is None or (window is None and not transcript_line_written(work)):
                assert proc.poll() is None, f"finished before a {rule} job could be killed"
                assert time.monotonic() < deadline, f"no {rule} job started"
                time.sleep(0.01)
                job = job or job_process(proc, script)
            at = rng.uniform(*window) if window else 0.0
            time.sleep(max(0.0, job.create_time() + at - time.time()))
            inside = alive(job)
            if sig == signal.SIGKILL:
                kill_tree(proc)
            else:
                os.killpg(proc.pid, sig)
                proc.wait(300)
        landed.append((rule, sig.name, round(at, 3), inside))
        if sig == signal.SIGKILL:
            # After a hard kill Snakemake's lock stays: the README's recovery is --unlock,
            # then the same command again.
            subprocess.run(command(work, "--unlock"), check=True, capture_output=True)
    proc = subprocess.run(command(work, *TARGETS), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print("kill points (rule, signal, seconds into the job, landed inside it):", landed)
    assert all(inside for *_, inside in landed), landed

    # The attack resumed from its transcript instead of starting over.
    resumed = [
        log.name
        for log in (work / "logs/attack").glob("*.log")
        if re.search(r"resuming: [12] of 2 prompts already attacked", log.read_text())
    ]
    assert resumed, "no attack job resumed from its transcript"

    # Same tables (timings aside).
    for table in TARGETS:
        a, b = pd.read_csv(ref / table), pd.read_csv(work / table)
        keep = [c for c in a.columns if not _timing(c)]
        pd.testing.assert_frame_equal(a[keep], b[keep], check_exact=True)
    # Same records in every JSONL the resumed run wrote (timing fields aside).
    jsonls = sorted(p.relative_to(work) for p in (work / "results").rglob("*.jsonl"))
    assert len(jsonls) > 50
    for rel in jsonls:
        a = [_untimed(x) for x in read_jsonl(ref / rel)]
        b = [_untimed(x) for x in read_jsonl(work / rel)]
        assert a == b, rel
    # Bit-identical checkpoints: base, SFT and DPO models of both methods.
    weights = sorted(p.relative_to(work) for p in (work / "results/models").rglob("*.safetensors"))
    assert len(weights) == 5
    for rel in weights:
        assert (ref / rel).read_bytes() == (work / rel).read_bytes(), rel
    # No debris: temporaries of killed writers and attack transcripts are gone.
    debris = [p for p in work.rglob("*") if p.name.endswith((".tmp", ".partial"))]
    assert debris == []


# A rule script that starts as every rule script does, holds a temporary of its output open
# and outlives the test unless something stops it. As a shell rule's command it has no
# `snakemake` object: it sets up what setup() would.
SLEEPER = """\
import os
import sys
import time
from pathlib import Path

from backtrack.io import atomic_file
from backtrack.smk import setup

if "snakemake" in globals():
    setup(snakemake)
    out = snakemake.output[0]
else:
    import signal
    from backtrack.smk import exit_on_sigterm, stop_with_snakemake

    signal.signal(signal.SIGTERM, exit_on_sigterm)
    stop_with_snakemake()
    out = sys.argv[1]
with atomic_file(out) as tmp:
    tmp.write_text("half")
    Path("job.pid").write_text(str(os.getpid()))
    time.sleep(60)
"""
RULES = {
    "script": 'script: "job.py"',
    # Snakemake -> bash -> python: a parent-death signal would follow the shell only.
    "shell": 'shell: "set -euo pipefail; python job.py {output} 2> {log}"',
}


@pytest.mark.parametrize("kind", RULES)
def test_a_job_stops_when_snakemake_alone_is_killed(tmp_path, kind):
    """A SIGKILL of the Snakemake process alone (the OOM killer picks one process) stops its
    job through the SIGTERM path: no job writes its output after a rerun planned without it."""
    (tmp_path / "Snakefile").write_text(
        f'rule sleeper:\n    output: "out.txt"\n    log: "sleeper.log"\n    {RULES[kind]}\n'
    )
    (tmp_path / "job.py").write_text(SLEEPER)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT / "workflow"), env.get("PYTHONPATH")])
    )
    with open(tmp_path / "snakemake.txt", "w") as out:
        proc = subprocess.Popen(
            [*SNAKEMAKE, "--cores", "1"], cwd=tmp_path, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    pid_file = tmp_path / "job.pid"
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text()):
        assert proc.poll() is None, (tmp_path / "snakemake.txt").read_text()
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)
    job = psutil.Process(int(pid_file.read_text()))
    proc.kill()  # Snakemake only, not its process group
    proc.wait(60)
    try:
        deadline = time.monotonic() + 10
        while alive(job) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(job), f"job {job.pid} still runs 10 s after Snakemake was killed"
    finally:
        with contextlib.suppress(psutil.Error):
            job.kill()
    assert not (tmp_path / "out.txt").exists()
    assert list(tmp_path.glob(".out.txt.*")) == []  # the SIGTERM path removed its temporary
    assert "that started this job is gone: stopping" in (tmp_path / "sleeper.log").read_text()


@pytest.mark.parametrize(
    ("argv", "runs"),
    [
        (["/venv/bin/python", "/venv/bin/snakemake", "--cores", "2"], True),
        (["python3", "-m", "snakemake", "results/table1.csv"], True),
        (["python", "-X", "dev", "-u", "-m", "snakemake"], True),
        (["/usr/local/bin/snakemake", "--unlock"], True),
        (["/venv/bin/python", "/w/.snakemake/scripts/tmpab12.train.py"], False),
        (["/bin/bash", "-c", "set -euo pipefail; python .snakemake/scripts/tmp.x.py"], False),
        (["slurmstepd: [123.0]"], False),
        ([], False),
    ],
)
def test_runs_snakemake_tells_snakemake_from_its_jobs(argv, runs):
    assert runs_snakemake(argv) is runs
