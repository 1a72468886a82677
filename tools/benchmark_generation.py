"""Generation throughput of the backends on the same prompts, in one run: HF fp32, HF bf16 and
vLLM's CPU engine in bf16, as medians of interleaved repeats.

    python tools/benchmark_generation.py [--prompts 32] [--tokens 64] [--repeats 5]

The model is the embedded default's (SmolLM2-135M-Instruct from its GGUF package), prepared
as the workflow's prepare_base_model would (with [RESET]) into a temporary directory, unless
--model names a prepared one. The prompts are the first --prompts benign prompts, answered
greedily with the workflow's decoding (max_resets 1, no bias) in one batch. HF runs in this
process; vLLM runs in the vLLM environment (tools/setup.sh's .venv-vllm) as a worker that
keeps its engine between repeats and is built as the generate rule builds it
(backtrack.generate.job.build_llm). The three are interleaved, their order rotating per repeat,
so that load from elsewhere on a shared machine falls on all of them alike; the load average is
printed. Tokens/s counts generated tokens (EOS included) over the wall time of the whole call.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESET = "[RESET]"


def decoding(tokens: int) -> dict[str, Any]:
    """Table 1's greedy decoding at a given length."""
    return {"max_new_tokens": tokens, "max_resets": 1, "reset_logit_bias": 0.0}


def worker(model: str, prompts_path: str, tokens: int, threads: int) -> None:
    """The vLLM side: build the engine, then answer each ``go`` line on stdin with one timed
    generation (a JSON line on stdout; the engine's own logging goes to stderr).
    """
    from backtrack.generate.job import build_llm
    from backtrack.generate.vllm_engine import generate_records_vllm
    from backtrack.models.base import load_tokenizer, reset_token_id
    from backtrack.models.precision import Precision
    from backtrack.settings import Decoding

    # The answers get their own copy of stdout; fd 1 itself goes to stderr, for the logs and
    # progress bars of this process and of the engine's (which inherit it).
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    tok = load_tokenizer(model)
    rid = reset_token_id(tok, RESET)
    prompts = json.loads(Path(prompts_path).read_text())
    t0 = time.perf_counter()
    job = {"model": model, "seed": 0, "threads": threads}
    llm = build_llm(job | {"gpu_memory_utilization": 0.85}, Precision.fixed("bf16"))
    start = time.perf_counter() - t0
    out.write(json.dumps({"start_s": start}) + "\n")
    out.flush()
    for line in sys.stdin:
        if line.strip() != "go":
            break
        t = time.perf_counter()
        recs = generate_records_vllm(llm, tok, prompts, rid, Decoding(**decoding(tokens)))
        wall = time.perf_counter() - t
        n = sum(r["tokens_generated"] for r in recs)
        raw = [r["raw"] for r in recs]
        out.write(json.dumps({"s": wall, "tokens": n, "raw": raw}) + "\n")
        out.flush()


def prepare(model: str | None, tmp: Path) -> str:
    """A prepared model directory: --model, or the embedded default's model prepared here."""
    if model:
        return model
    import yaml
    from backtrack.models.base import prepare_base_model

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    spec = next(iter(cfg["models"].values()))
    prepare_base_model(spec["source"], tmp / "model", RESET, "float32")
    return str(tmp / "model")


def measure(model: str | None, n_prompts: int, tokens: int, repeats: int, threads: int) -> dict:
    """Time the three backends, interleaved; ``calls`` holds each one's (seconds, generated
    tokens) per repeat, ``prompt_tokens`` the prompts' rendered length summed (every call
    answers the same prompts).
    """
    import torch
    from backtrack.bench import rotated
    from backtrack.data.benign import benign_prompts
    from backtrack.generate.hf import generate_records
    from backtrack.models.base import load_model, load_tokenizer, reset_token_id
    from backtrack.models.chat import prompt_ids
    from backtrack.models.precision import Precision
    from backtrack.settings import Decoding
    from backtrack.vllm_env import has_vllm, vllm_python

    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-gen-"))
    model_dir = prepare(model, tmp)
    prompts = benign_prompts()[:n_prompts]
    (tmp / "prompts.json").write_text(json.dumps(prompts))
    tok = load_tokenizer(model_dir)
    rid = reset_token_id(tok, RESET)
    # The labels keep torch's dtype names.
    pairs = (("float32", "fp32"), ("bfloat16", "bf16"))
    models = {dt: load_model(model_dir, Precision.fixed(p)) for dt, p in pairs}
    raws: dict[str, list[str]] = {}

    def hf(dtype: str) -> tuple[float, int]:
        t = time.perf_counter()
        at = Decoding(batch_size=len(prompts), **decoding(tokens))
        recs = generate_records(models[dtype], tok, prompts, rid, at)
        raws[f"HF {dtype}"] = [r["raw"] for r in recs]
        return time.perf_counter() - t, sum(r["tokens_generated"] for r in recs)

    python = sys.executable if has_vllm() else str(vllm_python())
    env = dict(os.environ, PYTHONPATH=str(REPO / "workflow"))
    cmd = [python, __file__, "--worker", model_dir, str(tmp / "prompts.json")]
    proc = subprocess.Popen(
        [*cmd, str(tokens), str(threads)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(tmp / "vllm.log").open("w"),
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def answer() -> dict[str, Any]:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the vLLM worker died; its log: {tmp / 'vllm.log'}")
        return json.loads(line)

    start_s = answer()["start_s"]  # the engine is up before anything is timed

    def vllm() -> tuple[float, int]:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        r = answer()
        raws["vLLM bfloat16"] = r["raw"]
        return r["s"], r["tokens"]

    runs = {"HF float32": lambda: hf("float32"), "HF bfloat16": lambda: hf("bfloat16")}
    runs["vLLM-CPU bfloat16"] = vllm
    names = list(runs)
    load0 = os.getloadavg()
    for name in names:  # warm-up (and the vLLM engine start), not counted
        runs[name]()
    calls: dict[str, list[tuple[float, int]]] = {n: [] for n in names}
    for rep in range(repeats):
        for name in rotated(names, rep):
            calls[name].append(runs[name]())
    load1 = os.getloadavg()
    proc.stdin.close()
    proc.wait()
    shutil.rmtree(tmp)  # the prepared model (half a GB); kept, with the vLLM log, after a failure
    return {
        "prompts": n_prompts,
        "tokens": tokens,
        "repeats": repeats,
        "threads": threads,
        "prompt_tokens": sum(len(prompt_ids(tok, p["prompt"], None)) for p in prompts),
        "calls": calls,
        "start_s": start_s,
        "load": (load0, load1),
        "raws": raws,
    }


def report(res: dict) -> None:
    """Print the medians, the engine start and whether the greedy answers agree."""
    rates = {n: [t / s for s, t in c] for n, c in res["calls"].items()}
    base = statistics.median(rates["HF float32"])
    load0, load1 = res["load"]
    print(
        f"\n{res['prompts']} prompts x {res['tokens']} new tokens, one batch, greedy; "
        f"{res['threads']} threads; {res['repeats']} interleaved repeats after a warm-up"
    )
    print(
        f"load average (1/5/15 min) before {load0[0]:.1f}/{load0[1]:.1f}/{load0[2]:.1f}, "
        f"after {load1[0]:.1f}/{load1[1]:.1f}/{load1[2]:.1f}"
    )
    print(f"{'backend':<20}{'median tok/s':>14}{'min':>8}{'max':>8}{'x HF fp32':>11}")
    for name, r in rates.items():
        med = statistics.median(r)
        print(f"{name:<20}{med:>14.0f}{min(r):>8.0f}{max(r):>8.0f}{med / base:>11.2f}")
    print(f"vLLM engine start: {res['start_s']:.1f} s (once per generate job)")
    raws = res["raws"]
    ref = raws["HF bfloat16"]
    for other in ("vLLM bfloat16", "HF float32"):
        same = sum(x == y for x, y in zip(ref, raws[other], strict=True))
        print(f"greedy answers identical, HF bfloat16 vs {other}: {same}/{len(ref)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--model", help="a prepared model directory (default: prepare the default)")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        model, prompts, tokens, threads = a.worker
        worker(model, prompts, int(tokens), int(threads))
        return
    report(measure(a.model, a.prompts, a.tokens, a.repeats, a.threads))


if __name__ == "__main__":  # the vLLM worker's engine starts processes that re-import this file
    main()
