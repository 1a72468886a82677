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
from typing import Any

from transformers import PreTrainedTokenizerBase

from backtrack.data.refusals import make_refusal
from backtrack.models.chat import prompt_ids, render_prompt, text_ids

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


def build_sft_examples(
    pool: list[dict[str, Any]],
    tok: PreTrainedTokenizerBase,
    kind: str,
    reset_id: int,
    *,
    min_fraction: float,
    max_fraction: float,
    max_length: int,
    seed: int,
    system: str | None = None,
    prefix_rule: str = "fraction",
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
    if prefix_rule not in PREFIX_RULES:
        raise ValueError(f"unknown prefix rule {prefix_rule!r}; known: {PREFIX_RULES}")
    rng = random.Random(seed)
    eos = tok.eos_token_id
    out: list[dict[str, Any]] = []
    counts = {"safe": 0, "helpful": 0, "dropped_too_long": 0}
    if kind != "baseline":
        counts |= {kind: 0, "no_prefix": 0}

    def add(ex: dict[str, Any]) -> None:
        if len(ex["input_ids"]) > max_length:
            counts["dropped_too_long"] += 1
        else:
            out.append(ex)
            counts[ex["kind"]] += 1

    def cut(n: int) -> int:
        if prefix_rule == "qi":
            return qi_prefix_length(n, rng)
        return prefix_length(n, min_fraction, max_fraction, rng)

    for rec in pool:
        p = prompt_ids(tok, rec["prompt"], system)
        if not rec["harmful"]:
            add(
                sft_example(
                    f"{rec['id']}:helpful", "helpful", p, [], text_ids(tok, rec["helpful"]), eos
                )
            )
            continue
        safe = text_ids(tok, rec["safe"])
        if kind == "baseline":
            add(sft_example(f"{rec['id']}:safe", "safe", p, [], safe, eos))
            continue
        unsafe = text_ids(tok, rec["unsafe"])
        k = cut(len(unsafe))
        if kind == "backtrack":
            add(sft_example(f"{rec['id']}:safe", "safe", p, [], safe, eos))
            if k:
                ex = sft_example(
                    f"{rec['id']}:backtrack", "backtrack", p, unsafe[:k], [reset_id, *safe], eos
                )
                add(ex)
        elif k:  # recovery: the prefix stays in the answer; the loss is on y+ only
            add(sft_example(f"{rec['id']}:recovery", "recovery", p, unsafe[:k], safe, eos))
        else:
            add(sft_example(f"{rec['id']}:safe", "safe", p, [], safe, eos))
        if not k:
            counts["no_prefix"] += 1
    rng.shuffle(out)
    return out, counts


def build_dpo_pairs(
    pool: list[dict[str, Any]],
    tok: PreTrainedTokenizerBase,
    method: str,
    reset_token: str,
    *,
    min_fraction: float,
    max_fraction: float,
    seed: int,
    system: str | None = None,
    helpful_pairs: dict[str, Any] | None = None,
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
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    counts = {"safe_over_unsafe": 0, "backtrack_over_unsafe": 0, "safe_over_backtrack": 0}
    helpful, helpful_counts = helpfulness_pairs(
        pool,
        tok,
        method,
        reset_token,
        helpful_pairs or NO_HELPFUL_PAIRS,
        min_fraction=min_fraction,
        max_fraction=max_fraction,
        seed=seed,
        system=system,
    )
    out += helpful
    counts |= helpful_counts
    for rec in pool:
        if not rec["harmful"]:
            continue
        prompt = render_prompt(tok, rec["prompt"], system)
        safe, unsafe = rec["safe"], rec["unsafe"]
        if method == "baseline":
            out.append(
                {"id": f"{rec['id']}:s>u", "prompt": prompt, "chosen": safe, "rejected": unsafe}
            )
            counts["safe_over_unsafe"] += 1
            continue
        u_prefix = random_prefix(tok, unsafe, min_fraction, max_fraction, rng)
        s_prefix = random_prefix(tok, safe, min_fraction, max_fraction, rng)
        out.append(
            {
                "id": f"{rec['id']}:b>u",
                "prompt": prompt,
                "chosen": f"{u_prefix}{reset_token}{safe}",
                "rejected": unsafe,
            }
        )
        out.append(
            {
                "id": f"{rec['id']}:s>b",
                "prompt": prompt,
                "chosen": safe,
                "rejected": f"{s_prefix}{reset_token}{unsafe}",
            }
        )
        counts["backtrack_over_unsafe"] += 1
        counts["safe_over_backtrack"] += 1
    rng.shuffle(out)
    return out, counts


def helpfulness_pairs(
    pool: list[dict[str, Any]],
    tok: PreTrainedTokenizerBase,
    method: str,
    reset_token: str,
    mix: dict[str, Any],
    *,
    min_fraction: float,
    max_fraction: float,
    seed: int,
    system: str | None = None,
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
    rng = random.Random(f"{seed}:helpful_pairs")
    chosen = rng.sample(benign, round(fraction * len(benign)))
    out: list[dict[str, Any]] = []
    for rec in sorted(chosen, key=lambda r: r["id"]):
        prompt = render_prompt(tok, rec["prompt"], system)
        helpful = rec["helpful"]
        if mix["over_refusal"]:
            out.append(
                {
                    "id": f"{rec['id']}:h>r",
                    "prompt": prompt,
                    "chosen": helpful,
                    "rejected": make_refusal(rng),
                }
            )
            counts["helpful_over_refusal"] += 1
        if mix["over_reset"] and method == "backtrack":
            h_prefix = random_prefix(tok, helpful, min_fraction, max_fraction, rng)
            out.append(
                {
                    "id": f"{rec['id']}:h>b",
                    "prompt": prompt,
                    "chosen": helpful,
                    "rejected": f"{h_prefix}{reset_token}{make_refusal(rng)}",
                }
            )
            counts["helpful_over_reset"] += 1
    return out, counts
