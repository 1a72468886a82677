"""Per-job token counts (backtrack.jobstats), the FLOP model, and the rule table of
tools/benchmark_pipeline.py built from them."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from backtrack import jobstats
from backtrack.attacks.gcg import GCG, GCGConfig
from backtrack.attacks.scoring import SLOT, banned_token_ids, chat_slots, target_ce
from backtrack.generate.hf import generate_records, shared_prefix
from backtrack.io import write_jsonl
from backtrack.jobstats import (
    TokenCounts,
    flops,
    generation_counts,
    model_shape,
    read_job_stats,
    stats_path,
    write_job_stats,
)
from backtrack.models.chat import prompt_ids, text_ids
from backtrack.models.precision import Precision
from backtrack.settings import Decoding

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def counter(monkeypatch):
    """A fresh process counter for one test."""
    fresh = TokenCounts()
    monkeypatch.setattr(jobstats, "COUNTER", fresh)
    return fresh


def test_flop_model_is_6nt_for_training_and_2nt_for_decoding():
    shape = {"parameters": 100, "body": 70, "head": 30}  # tied embedding: body + head = N
    assert flops({"train": [10, 10]}, shape) == 6 * 100 * 10
    assert flops({"train": [10, 10], "reference": [10, 10]}, shape) == 8 * 100 * 10
    # Prefill of 7 tokens with logits at 3 decoded positions: the head only where sampled.
    assert flops({"forward": [10, 3]}, shape) == 2 * (70 * 10 + 30 * 3)
    assert flops({"input_grad": [4, 2]}, shape) == 4 * (70 * 4 + 30 * 2)
    with pytest.raises(ValueError, match="unknown kind"):
        TokenCounts().add("backward", 1)


def test_model_shape_of_a_tied_model_from_its_config_alone(tiny_source_dir):
    shape = model_shape(tiny_source_dir)
    cfg = json.loads((tiny_source_dir / "config.json").read_text())
    v, d = cfg["vocab_size"], cfg["hidden_size"]
    assert shape["head"] == v * d
    from transformers import AutoModelForCausalLM

    real = AutoModelForCausalLM.from_pretrained(tiny_source_dir)
    assert shape["parameters"] == sum(p.numel() for p in real.parameters())
    assert shape["body"] == shape["parameters"] - v * d  # the tied matrix counts once


def test_stats_sit_beside_the_log_and_read_back_by_rule_and_job(tiny_source_dir, tmp_path):
    logs = tmp_path / "logs"
    for rule, job in (("generate", "m_b_sft_advbench"), ("generate_sweep", "bias-5/m_b_sft_x")):
        log = logs / rule / f"{job}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        smk = SimpleNamespace(rule=rule, threads=1, log=[str(log)])
        counts = TokenCounts({"forward": [120, 20]})
        write_job_stats(smk, tiny_source_dir, counts, Precision.fixed("bf16"))
        assert stats_path(log) == log.with_name(log.name.removesuffix(".log") + ".tokens.json")
    got = read_job_stats(logs)
    assert set(got) == {("generate", "m_b_sft_advbench"), ("generate_sweep", "bias-5/m_b_sft_x")}
    st = got[("generate", "m_b_sft_advbench")]
    assert st["tokens"] == {"forward": [120, 20]} and st["precision"] == "bf16"
    assert st["threads"] == 1 and st["shape"] == model_shape(tiny_source_dir)
    assert 0 < st["cpu_s"] <= jobstats.process_cpu_seconds()  # this process's CPU so far


def test_the_job_s_cpu_seconds_count_what_it_did_after_snakemake_s_last_sample(tmp_path):
    """A job's own count (getrusage at its end) includes work that Snakemake's 30 s sampling
    misses: 0.4 s of busy work in a child the job waited for is in it."""
    busy = tmp_path / "busy.py"
    busy.write_text(
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4:\n    pass\n"
    )
    job = tmp_path / "job.py"
    job.write_text(
        "import subprocess, sys\n"
        "from backtrack.jobstats import process_cpu_seconds\n"
        "before = process_cpu_seconds()\n"
        f"subprocess.run([sys.executable, {str(busy)!r}], check=True)\n"
        "print(process_cpu_seconds() - before)\n"
    )
    out = subprocess.run([sys.executable, job], capture_output=True, text=True, check=True)
    assert float(out.stdout) >= 0.4


def test_generation_counts_match_what_generate_records_counted(tiny, counter, tmp_path):
    """The records-based count (any backend) counts every prompt position; the in-process count
    of the HF path the same less the prefix each batch shares, which it computes once."""
    model, tok, rid = tiny
    tok.save_pretrained(tmp_path / "tok")  # generation_counts reads the model dir's tokenizer
    recs = [{"id": f"p{i}", "prompt": p} for i, p in enumerate(["Hi", "Tell me more", "Why?"])]
    out = generate_records(model, tok, recs, rid, Decoding(max_new_tokens=5, batch_size=2))
    for r in out:
        r["precision"] = "fp32"
    write_jsonl(tmp_path / "gen.jsonl", out)
    counts, precision = generation_counts(tmp_path / "gen.jsonl", tmp_path / "tok", None)
    generated = sum(r["tokens_generated"] for r in out)
    rows = sorted((prompt_ids(tok, r["prompt"], None) for r in recs), key=len)
    prompts = sum(map(len, rows))
    saved = shared_prefix(rows[:2])  # batches of 2, shortest first: the first shares a prefix
    assert saved > 0
    assert counts.counts == {"forward": [prompts + generated, generated]}
    assert counter.counts == {"forward": [prompts - saved + generated, generated]}
    assert precision == "fp32" and generated > 0


def test_gcg_counts_its_gradient_and_scoring_tokens(tiny, counter):
    model, tok, rid = tiny
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.requires_grad_(False)
    slots = chat_slots(tok, f"Explain locks {SLOT}", text_ids(tok, "Sure, here"))
    banned = banned_token_ids(tok, model.get_input_embeddings().weight.shape[0], rid, False)
    cfg = GCGConfig(steps=1, search_width=8, topk=4, suffix_init="! ! !", eval_every=10)
    gcg = GCG(model, tok, cfg, banned)
    suffix = gcg.encode_suffix("! ! !")
    rest = suffix.numel() + slots.after.numel() + slots.segment.numel()
    keep = slots.segment.numel() + 1
    gcg.gradient(slots, suffix, target_ce, None)
    assert counter.counts == {"input_grad": [slots.before.numel() + rest, keep]}
    with torch.no_grad():
        gcg.losses(slots, suffix[None].repeat(5, 1), target_ce, None)
    assert counter.counts["forward"] == [5 * (slots.before.numel() + rest), 5 * keep]


def _job_times(
    rules: list[str], jobs: list[str], seconds: list[float], cpu: list[float]
) -> pd.DataFrame:
    """Rows as ``benchmark_pipeline.job_times`` reads them from benchmark files."""
    n = len(rules)
    return pd.DataFrame(
        {
            "rule": rules,
            "job": jobs,
            "s": [float(x) for x in seconds],
            "cpu_s": [float(x) for x in cpu],
            "end": [0.0] * n,
            "max_rss_mb": [1.0] * n,
        }
    )


def test_rule_table_divides_flops_by_time_and_by_the_reachable_peak():
    bench = _load("benchmark_pipeline")
    shape = {"parameters": 100, "body": 70, "head": 30}
    jobs = _job_times(
        ["train_sft", "train_sft", "table1"], ["a", "b", "t"], [10, 30, 2], [10, 50, 1]
    )
    stats = {
        ("train_sft", "a"): {"tokens": {"train": [1000, 1000]}, "shape": shape, "threads": 1},
        ("train_sft", "b"): {"tokens": {"train": [3000, 3000]}, "shape": shape, "threads": 2},
    }
    peaks = {"bf16": {1: 1e6, 2: 1.5e6}, "fp32": {1: 1e5, 2: 2e5}}
    table = bench.rule_table(bench.with_stats(jobs, stats), peaks)
    assert table.loc["train_sft"].cpu_from == "snakemake"
    # A job's own CPU count, where its stats have one, replaces Snakemake's sampled one.
    stats[("train_sft", "b")] = stats[("train_sft", "b")] | {"cpu_s": 70.0}
    own = bench.rule_table(bench.with_stats(jobs, stats), peaks).loc["train_sft"]
    assert own.cpu_s == 80.0 and own.cpu_from == "job,snakemake"
    assert own.cpu_peak_pct == pytest.approx(100 * 6 * 100 * 4000 / 80 / 1e6)
    row = table.loc["train_sft"]
    total = 6 * 100 * 4000
    assert row.tokens == 4000 and row.tok_per_s == pytest.approx(100)
    assert row.gflop_per_s == pytest.approx(total / 40 / 1e9)
    assert row.peak_pct == pytest.approx(100 * total / (10 * 1e6 + 30 * 1.5e6))
    assert row.cpu_peak_pct == pytest.approx(100 * total / 60 / 1e6)  # per CPU s, 1-thread peak
    assert row.threads == "1,2"
    assert math.isnan(table.loc["table1"].tokens) and table.loc["table1"].jobs == 1
    # A job that ran in fp32 (a CPU without bf16 units) is held to the fp32 peak, not bf16's.
    for key in stats:
        stats[key] = {k: v for k, v in stats[key].items() if k != "cpu_s"} | {"precision": "fp32"}
    fp32 = bench.rule_table(bench.with_stats(jobs, stats), peaks).loc["train_sft"]
    assert fp32.precision == "fp32"
    assert fp32.peak_pct == pytest.approx(100 * total / (10 * 1e5 + 30 * 2e5))
    assert fp32.cpu_peak_pct == pytest.approx(100 * total / 60 / 1e5)


def test_matmul_peak_is_a_positive_rate():
    bench = _load("benchmark_pipeline")
    assert bench.matmul_flops(2, 3, 4) == 48
    assert bench.matmul_peak("fp32", 1, repeats=2, shape=(64, 32, 16)) > 0


def test_loop_seconds_reads_finished_generate_bars_once_each():
    bench = _load("benchmark_pipeline")
    log = (
        "Loading weights: 100%|##########| 272/272 [00:00<00:00, 17697.21it/s]\n"
        "generate:  50%|#####     | 200/400 [00:59<00:40,  5.00answer/s]\r"
        "generate: 100%|##########| 400/400 [01:45<00:00,  3.80answer/s]\r"
        "generate: 100%|##########| 400/400 [01:45<00:00,  3.74answer/s]\n"
        "generate: 100%|##########| 30/30 [1:00:02<00:00,  0.01answer/s]\n"
    )
    # The repeated 400/400 bar counts once; h:mm:ss is read; other bars are not counted.
    assert bench.loop_seconds(log) == 105 + 3602
    assert bench.loop_seconds("Loading weights: 100%|#| 2/2 [00:01<00:00]") is None
    assert bench.loop_seconds(log, desc="Loading weights") == 0


def test_rule_table_reports_the_share_outside_the_decoding_loop(tmp_path):
    bench = _load("benchmark_pipeline")
    jobs = _job_times(["generate", "generate", "judge"], ["a", "b", "j"], [100, 60, 1], [90, 50, 1])
    (tmp_path / "generate").mkdir()
    (tmp_path / "generate" / "a.log").write_text("generate: 100%|#| 4/4 [01:30<00:00, 1it/s]\n")
    (tmp_path / "generate" / "b.log").write_text("generate: 100%|#| 2/2 [00:50<00:00, 1it/s]\n")
    jobs = bench.with_loop_seconds(bench.with_stats(jobs, {}), tmp_path)
    table = bench.rule_table(jobs, {"bf16": {1: 1e6}})
    assert table.loc["generate"].outside_loop_pct == pytest.approx(100 * 20 / 160)
    assert table.loc["generate"].outside_loop_s == pytest.approx(10)
    assert math.isnan(table.loc["judge"].outside_loop_pct)
