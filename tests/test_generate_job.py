"""The generate rules' script and its job: HF in this process, vLLM handed to the vLLM venv.

The real vLLM engine runs in tests/test_vllm_cpu.py; here a stand-in interpreter checks the
hand-over itself (what it is given, and that its failure fails the job), without vLLM.
"""

from __future__ import annotations

import json
import logging
import os
import runpy
import stat
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from backtrack import jobstats, vllm_env
from backtrack.generate.hf import generate_records
from backtrack.io import read_jsonl, write_jsonl
from backtrack.models.base import load_model, load_tokenizer, prepare_base_model
from backtrack.models.precision import Precision
from backtrack.settings import Decoding

from tests.conftest import RESET

SCRIPT = vllm_env.REPO / "workflow" / "scripts" / "generate" / "generate.py"
GENERATION = {
    "max_new_tokens": 6,
    "batch_size": 4,
    "do_sample": False,
    "temperature": 1.0,
    "top_p": 1.0,
    "reset_logit_bias": 0.0,
    "max_resets": 1,
    "backend": "hf",
    "gpu_memory_utilization": 0.85,
}


@pytest.fixture(scope="module")
def prepared(tiny_source_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen-job") / "model"
    prepare_base_model({"kind": "hf_dir", "path": str(tiny_source_dir)}, out, RESET, "float32")
    return out


def _prompts(tmp: Path) -> Path:
    path = tmp / "prompts.jsonl"
    write_jsonl(path, [{"id": f"p{i}", "prompt": p} for i, p in enumerate(["Hi.", "Why?", "No"])])
    return path


def _fake_snakemake(model: Path, prompts: Path, out: Path, generation: dict[str, Any]) -> Any:
    return SimpleNamespace(
        input=SimpleNamespace(model=str(model), prompts=str(prompts)),
        output=SimpleNamespace(generations=str(out)),
        params=SimpleNamespace(
            generation=json.dumps(generation),
            reset_token=RESET,
            system=None,
            precision="fp32",
            seed=0,
        ),
        log=[str(out.with_suffix(".log"))],
        threads=1,
        rule="generate",
    )


def _run_script(smk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run generate.py as Snakemake would, then undo what its setup() does to this process."""
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        runpy.run_path(str(SCRIPT), init_globals={"snakemake": smk})
    finally:
        sys.stdout.flush()
        root.handlers[:] = handlers
        root.setLevel(level)


def test_script_runs_hf_in_process(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = _prompts(tmp_path)
    out = tmp_path / "gen.jsonl"
    _run_script(_fake_snakemake(prepared, prompts, out, GENERATION), monkeypatch)
    tok = load_tokenizer(prepared)
    rid = tok.convert_tokens_to_ids(RESET)
    g = {k: v for k, v in GENERATION.items() if k not in ("backend", "gpu_memory_utilization")}
    model = load_model(prepared, Precision.fixed("fp32"))
    want = generate_records(model, tok, read_jsonl(prompts), rid, Decoding(**g))
    got = read_jsonl(out)
    # The job adds what Table 1 reports of the precision policy (the base model is untrained).
    assert {(r["precision"], r["train_precision"]) for r in got} == {("fp32", "none")}
    drop = ("time_to_first_token_s", "time_to_first_visible_token_s", "total_time_s")
    drop += ("precision", "train_precision")
    assert [{k: v for k, v in r.items() if k not in drop} for r in got] == [
        {k: v for k, v in r.items() if k not in drop} for r in want
    ]
    assert "3 generations" in out.with_suffix(".log").read_text()


@pytest.mark.parametrize("do_sample", [True, False], ids=["sampled", "greedy"])
def test_one_job_answers_several_sets_as_one_job_per_set_would(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, do_sample: bool
) -> None:
    """The generate rules write a checkpoint's sets in one process (one model load): each
    output pairs with its prompts and holds the answers a job of its own writes. Sampled sets
    are decoded one by one, each from the seed: the same records, and token counts that add
    up. Greedy sets share one stream (float32 here: the same tokens; rows can share a batch
    across sets, so the batch sizes differ, and the shared prefix is computed no more often)."""
    sampled = GENERATION | {"do_sample": do_sample, "temperature": 1.5}
    sets = []
    for name, texts in (("a", ["Hi.", "Why?", "No"]), ("b", ["Tell me more.", "Stop."])):
        path = tmp_path / f"{name}.jsonl"
        write_jsonl(path, [{"id": f"{name}{i}", "prompt": t} for i, t in enumerate(texts)])
        sets.append(path)
    outs = [tmp_path / "together" / p.name for p in sets]
    for d in ("together", "alone"):  # Snakemake makes the outputs' and logs' directories
        (tmp_path / d).mkdir()
    smk = _fake_snakemake(prepared, sets[0], outs[0], sampled)
    smk.input.prompts, smk.output.generations = [str(p) for p in sets], [str(o) for o in outs]
    smk.log = [str(tmp_path / "together.log")]
    _run_script(smk, monkeypatch)
    drop = {"time_to_first_token_s", "time_to_first_visible_token_s", "total_time_s"}
    if not do_sample:
        drop.add("batch_size")
    total = 0
    for prompts, out in zip(sets, outs, strict=True):
        alone = tmp_path / "alone" / prompts.name
        one = _fake_snakemake(prepared, prompts, alone, sampled)
        one.log = [str(alone.with_suffix(".log"))]
        _run_script(one, monkeypatch)
        got, want = read_jsonl(out), read_jsonl(alone)
        assert [r["id"] for r in got] == [r["id"] for r in read_jsonl(prompts)]
        assert [{k: v for k, v in r.items() if k not in drop} for r in got] == [
            {k: v for k, v in r.items() if k not in drop} for r in want
        ]
        total += json.loads(alone.with_suffix(".tokens.json").read_text())["tokens"]["forward"][0]
    stats = json.loads((tmp_path / "together.tokens.json").read_text())
    together = stats["tokens"]["forward"][0]
    assert together == total > 0 if do_sample else 0 < together <= total
    # Positions computed, not every position of the records: a batch's shared prefix once.
    every = sum(jobstats.generation_counts(o, prepared, None)[0].total() for o in outs)
    assert total < every


def _stand_in(tmp: Path, rc: int) -> Path:
    """An 'interpreter' that records its arguments, PYTHONPATH and jobs, then exits with rc."""
    py = tmp / "python"
    seen = tmp / "seen.json"
    py.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "jobs = json.load(open(sys.argv[-1]))\n"
        f"json.dump({{'argv': sys.argv[1:], 'path': os.environ['PYTHONPATH'], 'jobs': jobs}}, "
        f"open({str(seen)!r}, 'w'))\n"
        f"sys.exit({rc})\n"
    )
    py.chmod(py.stat().st_mode | stat.S_IEXEC)
    return py


def test_script_hands_vllm_jobs_to_the_vllm_python(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vllm_env, "has_vllm", lambda: False)
    monkeypatch.setenv(vllm_env.VLLM_PYTHON_VAR, str(_stand_in(tmp_path, 0)))
    # The stand-in writes no records, so the job's token count (read from them) is skipped.
    monkeypatch.setattr(jobstats, "write_job_stats", lambda *a, **k: None)
    monkeypatch.setattr(
        jobstats, "generation_counts", lambda *a, **k: (jobstats.TokenCounts(), None)
    )
    out = tmp_path / "gen.jsonl"
    smk = _fake_snakemake(prepared, _prompts(tmp_path), out, GENERATION | {"backend": "vllm"})
    _run_script(smk, monkeypatch)
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["argv"][:2] == ["-m", "backtrack.generate.job"]
    assert not Path(seen["argv"][2]).exists()  # the jobs file is removed afterwards
    assert seen["path"].split(os.pathsep)[0] == str(vllm_env.PACKAGE_ROOT)
    (job,) = seen["jobs"]
    assert job["backend"] == "vllm" and job["output"] == str(out) and job["threads"] == 1
    assert job["decoding"]["max_resets"] == 1 and job["decoding"]["num_samples"] == 1


def test_vllm_env_failure_fails_the_job(tmp_path: Path) -> None:
    job = {"backend": "vllm"}
    with pytest.raises(RuntimeError, match="exit 3"):
        vllm_env.run_in_vllm_env([job], _stand_in(tmp_path, 3))
