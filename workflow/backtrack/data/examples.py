"""Training examples for baseline and backtracking SFT and DPO, as docs/method.md describes.

SFT examples are pre-tokenised (``input_ids`` + ``labels``) so that the loss mask is exact and
testable: for a backtracking example ``x ⊕ prefix(y-) ⊕ [RESET] ⊕ y+ ⊕ EOS`` the labels are -100
over ``x`` and ``prefix(y-)`` and real over ``[RESET]``, ``y+`` and EOS. TRL's ``SFTTrainer`` uses
``labels`` as given. DPO pairs are strings: ``DPOTrainer`` always tokenises them itself (and appends
EOS); ``[RESET]`` survives that because it is a special token.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from backtrack.data.refusals import make_refusal
from backtrack.models.chat import prompt_ids, render_prompt, text_ids
from backtrack.settings import JobSettings, ResetToken

IGNORE = -100
#: What SFT examples a method trains on, and what DPO pairs (``backtrack.plan.METHODS``).
SFT_KINDS = ("baseline", "backtrack", "recovery")
DPO_KINDS = ("baseline", "backtrack")
PREFIX_RULES = ("fraction", "qi")
#: Qi et al. (2024)'s augmentation: on a coin flip with this probability, a harmful prefix of
#: ``randint(1, min(QI_MAX_TOKENS, len))`` tokens (their ``finetuning_buckets`` defaults).
QI_PROBABILITY = 0.5
QI_MAX_TOKENS = 100
#: Helpfulness pairs on benign prompts (``dpo.helpful_pairs``): off unless configured.
NO_HELPFUL_PAIRS: dict[str, Any] = {"fraction": 0.0, "over_refusal": False, "over_reset": False}


def prefix_length(
    n_tokens: int, min_fraction: float, max_fraction: float, rng: random.Random
) -> int:
    """A random prefix length of an ``n_tokens``-long response, uniform in the fraction range.

    At least one token and at most ``n_tokens``: the paper does not state its
    rule, so the range is a config knob.
    """
    if n_tokens < 1:
        raise ValueError("cannot take a prefix of an empty response")
    lo = max(1, math.ceil(min_fraction * n_tokens))
    hi = max(lo, min(n_tokens, math.floor(max_fraction * n_tokens)))
    return rng.randint(lo, hi)


def random_prefix(
    tok: PreTrainedTokenizerBase,
    text: str,
    min_fraction: float,
    max_fraction: float,
    rng: random.Random,
) -> str:
    """A DPO pair's prefix of ``text``: cut on token ids at :func:`prefix_length`, decoded."""
    ids = text_ids(tok, text)
    return tok.decode(ids[: prefix_length(len(ids), min_fraction, max_fraction, rng)])


def qi_prefix_length(n_tokens: int, rng: random.Random) -> int:
    """Qi et al.'s rule: 0 (no prefix) on tails, else ``randint(1, min(100, n_tokens))``."""
    if n_tokens < 1:
        raise ValueError("cannot take a prefix of an empty response")
    if rng.random() >= QI_PROBABILITY:
        return 0
    return rng.randint(1, min(QI_MAX_TOKENS, n_tokens))


def sft_example(
    ex_id: str, kind: str, prompt: list[int], context: list[int], target: list[int], eos_id: int
) -> dict[str, Any]:
    """One pre-tokenised example: loss on ``target`` + EOS only."""
    input_ids = prompt + context + target + [eos_id]
    labels = [IGNORE] * (len(prompt) + len(context)) + target + [eos_id]
    return {"id": ex_id, "kind": kind, "input_ids": input_ids, "labels": labels}


@dataclass(frozen=True)
class ExampleSettings:
    """How examples are cut from the pool (config ``sft``/``dpo``): the prefix range and rule
    (DPO cuts by fraction only), the longest SFT example (None: no limit), the run's seed and
    system prompt."""

    min_fraction: float
    max_fraction: float
    seed: int
    system: str | None = None
    prefix_rule: str = "fraction"
    max_length: int | None = None

    @classmethod
    def from_params(cls, params: Any, settings: JobSettings) -> ExampleSettings:
        """From a data rule's params (``prefix_min_fraction``, ``prefix_max_fraction``, and for
        SFT ``prefix_rule`` and ``max_length``) and the job's seed and system prompt."""
        return cls(
            min_fraction=params.prefix_min_fraction,
            max_fraction=params.prefix_max_fraction,
            seed=settings.seed if settings.seed is not None else 0,
            system=settings.system,
            prefix_rule=getattr(params, "prefix_rule", "fraction"),
            max_length=getattr(params, "max_length", None),
        )


def build_sft_examples(
    pool: list[dict[str, Any]],
    tok: PreTrainedTokenizerBase,
    kind: str,
    reset: ResetToken,
    settings: ExampleSettings,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """SFT examples of ``kind`` from the training pool, and counts by example kind.

    Every kind gets ``(x, helpful)`` for benign prompts. For harmful prompts:

    - ``baseline``: ``(x, y+)``.
    - ``backtrack``: ``(x, y+)`` and ``(x ⊕ prefix(y-), [RESET] ⊕ y+)``.
    - ``recovery`` (Qi et al. 2024, no token): ``(x ⊕ prefix(y-), y+)``, so the model learns to
      turn back mid-answer while the harmful prefix stays visible; where the prefix rule gives
      no prefix, the plain ``(x, y+)``.

    ``prefix_rule`` ``fraction`` cuts a prefix uniform in ``[min_fraction, max_fraction]`` of
    ``y-``'s tokens; ``qi`` flips a coin (:func:`qi_prefix_length`): on tails a backtracking
    prompt gets no ``[RESET]`` example and a recovery prompt the plain refusal. Labels are -100
    over ``x`` and the prefix. Examples longer than ``max_length`` are dropped (counted).
    """
    if kind not in SFT_KINDS:
        raise ValueError(f"unknown SFT example kind {kind!r}; known: {SFT_KINDS}")
    if settings.prefix_rule not in PREFIX_RULES:
        raise ValueError(f"unknown prefix rule {settings.prefix_rule!r}; known: {PREFIX_RULES}")
    rng = random.Random(settings.seed)
    out: list[dict[str, Any]] = []
    counts = {"safe": 0, "helpful": 0, "dropped_too_long": 0}
    if kind != "baseline":
        counts |= {kind: 0, "no_prefix": 0}
    for rec in pool:
        for ex in _sft_record_examples(rec, tok, kind, reset.id, settings, rng, counts):
            if settings.max_length is not None and len(ex["input_ids"]) > settings.max_length:
                counts["dropped_too_long"] += 1
            else:
                out.append(ex)
                counts[ex["kind"]] += 1
    rng.shuffle(out)
    return out, counts


def _cut(n: int, settings: ExampleSettings, rng: random.Random) -> int:
    """The prefix length of an ``n``-token y- under the configured rule (0: no prefix)."""
    if settings.prefix_rule == "qi":
        return qi_prefix_length(n, rng)
    return prefix_length(n, settings.min_fraction, settings.max_fraction, rng)


def _sft_record_examples(
    rec: dict[str, Any],
    tok: PreTrainedTokenizerBase,
    kind: str,
    reset_id: int,
    settings: ExampleSettings,
    rng: random.Random,
    counts: dict[str, int],
) -> list[dict[str, Any]]:
    """One pool record's SFT examples (:func:`build_sft_examples`), in the order they are added;
    counts the harmful prompts that got no prefix."""
    eos = tok.eos_token_id
    p = prompt_ids(tok, rec["prompt"], settings.system)
    if not rec["harmful"]:
        helpful = text_ids(tok, rec["helpful"])
        return [sft_example(f"{rec['id']}:helpful", "helpful", p, [], helpful, eos)]
    safe = text_ids(tok, rec["safe"])
    plain = sft_example(f"{rec['id']}:safe", "safe", p, [], safe, eos)
    if kind == "baseline":
        return [plain]
    unsafe = text_ids(tok, rec["unsafe"])
    k = _cut(len(unsafe), settings, rng)
    if not k:
        counts["no_prefix"] += 1
    if kind == "backtrack":
        if not k:
            return [plain]
        target = [reset_id, *safe]
        return [plain, sft_example(f"{rec['id']}:backtrack", kind, p, unsafe[:k], target, eos)]
    if k:  # recovery: the prefix stays in the answer; the loss is on y+ only
        return [sft_example(f"{rec['id']}:recovery", kind, p, unsafe[:k], safe, eos)]
    return [plain]


def _pair(
    rec: Mapping[str, Any], tag: str, prompt: str, chosen: str, rejected: str
) -> dict[str, Any]:
    """One DPO pair of a pool record (``tag`` names its kind in the id)."""
    return {"id": f"{rec['id']}:{tag}", "prompt": prompt, "chosen": chosen, "rejected": rejected}


def build_dpo_pairs(
    pool: list[dict[str, Any]],
    tok: PreTrainedTokenizerBase,
    method: str,
    reset: ResetToken,
    settings: ExampleSettings,
    helpful_pairs: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """DPO preference pairs (string ``prompt``/``chosen``/``rejected``).

    On harmful prompts:

    - baseline: ``y+ ≻ y-``.
    - backtrack: ``prefix(y-) ⊕ [RESET] ⊕ y+ ≻ y-`` and ``y+ ≻ prefix(y+) ⊕ [RESET] ⊕ y-``.

    On benign prompts (``helpful_pairs``, see :func:`helpfulness_pairs`): ``helpful ≻ refusal``
    and, for backtracking, ``helpful ≻ prefix(helpful) ⊕ [RESET] ⊕ refusal``. Prefixes are cut
    on token ids and decoded back to text.
    """
    if method not in DPO_KINDS:
        raise ValueError(f"unknown DPO pair kind {method!r}; known: {DPO_KINDS}")
    rng = random.Random(settings.seed)
    counts = {"safe_over_unsafe": 0, "backtrack_over_unsafe": 0, "safe_over_backtrack": 0}
    mix = helpful_pairs or NO_HELPFUL_PAIRS
    out, helpful_counts = helpfulness_pairs(pool, tok, method, reset, mix, settings)
    counts |= helpful_counts
    lo, hi = settings.min_fraction, settings.max_fraction
    for rec in pool:
        if not rec["harmful"]:
            continue
        prompt = render_prompt(tok, rec["prompt"], settings.system)
        safe, unsafe = rec["safe"], rec["unsafe"]
        if method == "baseline":
            out.append(_pair(rec, "s>u", prompt, safe, unsafe))
            counts["safe_over_unsafe"] += 1
            continue
        u_prefix = random_prefix(tok, unsafe, lo, hi, rng)
        s_prefix = random_prefix(tok, safe, lo, hi, rng)
        out.append(_pair(rec, "b>u", prompt, f"{u_prefix}{reset.text}{safe}", unsafe))
        out.append(_pair(rec, "s>b", prompt, safe, f"{s_prefix}{reset.text}{unsafe}"))
        counts["backtrack_over_unsafe"] += 1
        counts["safe_over_backtrack"] += 1
    rng.shuffle(out)
    return out, counts


def helpfulness_pairs(
    pool: list[dict[str, Any]],
    tok: PreTrainedTokenizerBase,
    method: str,
    reset: ResetToken,
    mix: Mapping[str, Any],
    settings: ExampleSettings,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Preference pairs that keep DPO helpful on benign prompts (``dpo.helpful_pairs``).

    Why: pairs on harmful prompts alone teach "refuse (or reset) more" and nothing pulls the
    other way, so benign over-refusal grows after DPO; the paper's DPO optimises helpfulness and
    harmlessness together. A ``fraction`` of the pool's benign prompts (drawn by ``seed``) give
    ``helpful ≻ refusal`` (``over_refusal``) and, for backtracking, ``helpful ≻
    prefix(helpful) ⊕ [RESET] ⊕ refusal`` (``over_reset``: the benign counterpart of the
    ``y+ ≻ prefix(y+) ⊕ [RESET] ⊕ y-`` pair, against needless resets). The refusals come from the
    same generator as ``y+``. A stream of its own keeps the harmful pairs unchanged.
    """
    fraction = float(mix["fraction"])
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"dpo.helpful_pairs.fraction must be in [0, 1], got {fraction}")
    counts = {"helpful_over_refusal": 0, "helpful_over_reset": 0}
    benign = [r for r in pool if not r["harmful"]]
    rng = random.Random(f"{settings.seed}:helpful_pairs")
    chosen = rng.sample(benign, round(fraction * len(benign)))
    out: list[dict[str, Any]] = []
    for rec in sorted(chosen, key=lambda r: r["id"]):
        prompt = render_prompt(tok, rec["prompt"], settings.system)
        helpful = rec["helpful"]
        if mix["over_refusal"]:
            out.append(_pair(rec, "h>r", prompt, helpful, make_refusal(rng)))
            counts["helpful_over_refusal"] += 1
        if mix["over_reset"] and method == "backtrack":
            cut = random_prefix(tok, helpful, settings.min_fraction, settings.max_fraction, rng)
            out.append(_pair(rec, "h>b", prompt, helpful, f"{cut}{reset.text}{make_refusal(rng)}"))
            counts["helpful_over_reset"] += 1
    return out, counts
