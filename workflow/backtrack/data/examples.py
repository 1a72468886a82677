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

from backtrack.models.chat import prompt_ids, render_prompt, text_ids

IGNORE = -100
METHODS = ("baseline", "backtrack")


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
    method: str,
    reset_id: int,
    *,
    min_fraction: float,
    max_fraction: float,
    max_length: int,
    seed: int,
    system: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """SFT examples for ``method`` from the training pool, and counts by kind.

    Both methods get ``(x, y+)`` for harmful prompts and ``(x, helpful)`` for benign ones; the
    backtracking method adds ``(x ⊕ prefix(y-), [RESET] ⊕ y+)`` for every harmful prompt.
    Examples longer than ``max_length`` are dropped (counted as ``dropped_too_long``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {METHODS}")
    rng = random.Random(seed)
    eos = tok.eos_token_id
    out: list[dict[str, Any]] = []
    counts = {"safe": 0, "helpful": 0, "backtrack": 0, "dropped_too_long": 0}

    def add(ex: dict[str, Any]) -> None:
        if len(ex["input_ids"]) > max_length:
            counts["dropped_too_long"] += 1
        else:
            out.append(ex)
            counts[ex["kind"]] += 1

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
        add(sft_example(f"{rec['id']}:safe", "safe", p, [], safe, eos))
        if method == "backtrack":
            unsafe = text_ids(tok, rec["unsafe"])
            k = prefix_length(len(unsafe), min_fraction, max_fraction, rng)
            add(
                sft_example(
                    f"{rec['id']}:backtrack", "backtrack", p, unsafe[:k], [reset_id, *safe], eos
                )
            )
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
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """DPO preference pairs (string ``prompt``/``chosen``/``rejected``) on harmful prompts.

    - baseline: ``y+ ≻ y-``.
    - backtrack: ``prefix(y-) ⊕ [RESET] ⊕ y+ ≻ y-`` and ``y+ ≻ prefix(y+) ⊕ [RESET] ⊕ y-``.
    Prefixes are cut on token ids and decoded back to text.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {METHODS}")
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    counts = {"safe_over_unsafe": 0, "backtrack_over_unsafe": 0, "safe_over_backtrack": 0}
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
        u_ids = text_ids(tok, unsafe)
        u_prefix = tok.decode(u_ids[: prefix_length(len(u_ids), min_fraction, max_fraction, rng)])
        s_ids = text_ids(tok, safe)
        s_prefix = tok.decode(s_ids[: prefix_length(len(s_ids), min_fraction, max_fraction, rng)])
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
