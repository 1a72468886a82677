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
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from backtrack.io import read_jsonl

from tests.test_workflow import ROOT, SNAKEMAKE, write_config

pytestmark = pytest.mark.slow

TARGETS = ("results/table1.csv", "results/table2.csv")
# Where to kill, in the order the graph reaches them: a job of this rule is running (its log
# exists, its benchmark does not). "attack" waits until a prompt's transcript line is on disk.
KILL_POINTS = ("train_sft", "generate", "judge", "attack")
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


def running_job(work: Path, rule: str) -> str | None:
    """The log stem of a job of ``rule`` that has started and not finished, if any."""
    if rule == "attack":
        for part in sorted((work / "results/attacks").rglob("*.jsonl.partial")):
            if part.read_text().count("\n") >= 1:
                model, method, stage = part.parts[-4:-1]
                return f"{model}_{method}_{stage}_{part.name.split('.')[0]}"
        return None
    for log in sorted((work / "logs" / rule).glob("*.log")):
        if not (work / "benchmarks" / rule / f"{log.stem}.tsv").exists():
            return log.stem
    return None


def finished(work: Path, rule: str, stem: str) -> bool:
    return (work / "benchmarks" / rule / f"{stem}.tsv").exists()


def test_kill_anywhere_and_resume_gives_the_uninterrupted_results(workflow_run, tmp_path):
    ref, cfg, _ = workflow_run
    work = tmp_path / "crash"
    work.mkdir()
    write_config(work, cfg)  # same source model as the reference run
    rng = random.Random(SEED)
    landed = []
    for rule in KILL_POINTS:
        with open(tmp_path / f"snakemake-{rule}.txt", "w") as out:
            proc = subprocess.Popen(
                command(work, *TARGETS), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            deadline = time.monotonic() + 900
            stem = None
            while stem is None:
                assert proc.poll() is None, f"finished before a {rule} job could be killed"
                assert time.monotonic() < deadline, f"no {rule} job started"
                time.sleep(0.05)
                stem = running_job(work, rule)
            # Seeded delay into the job (none for an attack: its transcript has a line now).
            time.sleep(0 if rule == "attack" else rng.uniform(0.1, 0.6))
            inside = not finished(work, rule, stem)
            kill_tree(proc)
        landed.append((rule, stem, inside))
        # After a hard kill Snakemake's lock stays: the README's recovery is --unlock, then
        # the same command again.
        subprocess.run(command(work, "--unlock"), check=True, capture_output=True)
    proc = subprocess.run(command(work, *TARGETS), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print("kill points:", landed)
    assert [r for r, _, inside in landed if inside] == list(KILL_POINTS), landed

    # The attack resumed from its transcript instead of starting over.
    attack_stem = landed[-1][1]
    attack_log = (work / "logs/attack" / f"{attack_stem}.log").read_text()
    assert re.search(r"resuming: [12] of 2 prompts already attacked", attack_log), attack_log

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
