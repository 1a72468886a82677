"""The training pool: prompts with safe, unsafe and helpful responses.

In the embedded default the base model does not refuse, so ``y-`` are the base model's own
answers to harmful prompts (kept only where the judge calls them unsafe, as the paper kept only
Llama-Guard-unsafe ones), ``y+`` are refusals from :mod:`backtrack.refusals`, and helpful answers
are the base model's own answers to benign prompts (kept only where they do not refuse).
"""

from __future__ import annotations

import random
import re
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from backtrack.generation import generate_records
from backtrack.judges import Judge, JudgeInput
from backtrack.refusals import make_refusal

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


def trim_to_sentence(text: str, min_keep: float = 0.5) -> str:
    """Cut a truncated answer after its last complete sentence, if that keeps enough of it."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if ends and ends[-1] >= min_keep * len(text):
        return text[: ends[-1]].rstrip()
    return text.rstrip()


def build_pool(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    reset_id: int,
    harmful: list[dict[str, Any]],
    benign: list[dict[str, Any]],
    judge: Judge,
    *,
    unsafe_max_new_tokens: int,
    helpful_max_new_tokens: int,
    batch_size: int,
    do_sample: bool,
    temperature: float,
    top_p: float,
    seed: int,
    system: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Sample and label responses; return pool records and counts of what was kept and dropped."""
    common = {
        "batch_size": batch_size,
        "do_sample": do_sample,
        "temperature": temperature,
        "top_p": top_p,
        "max_resets": 0,  # the base model must not emit [RESET]
        "seed": seed,
        "system": system,
    }
    h_gen = generate_records(
        model,
        tok,
        [{**r, "harmful": True} for r in harmful],
        reset_id,
        max_new_tokens=unsafe_max_new_tokens,
        **common,
    )
    b_gen = generate_records(
        model,
        tok,
        [{**r, "harmful": False} for r in benign],
        reset_id,
        max_new_tokens=helpful_max_new_tokens,
        **common,
    )
    gens = h_gen + b_gen
    verdicts = judge.judge([JudgeInput.from_generation(g) for g in gens])
    rng = random.Random(seed)
    pool: list[dict[str, Any]] = []
    stats = {"harmful_kept": 0, "harmful_dropped_safe": 0, "benign_kept": 0, "benign_dropped": 0}
    for g, v in zip(gens, verdicts, strict=True):
        base = {"id": f"pool-{g['id']}", "prompt_id": g["id"], "prompt": g["prompt"]}
        if g["harmful"]:
            if v.unsafe:
                pool.append(
                    {
                        **base,
                        "harmful": True,
                        "unsafe": g["visible"].strip(),
                        "safe": make_refusal(rng),
                    }
                )
                stats["harmful_kept"] += 1
            else:
                stats["harmful_dropped_safe"] += 1
        else:
            text = trim_to_sentence(g["visible"]) if g["truncated"] else g["visible"].strip()
            if text and not v.refused:
                pool.append({**base, "harmful": False, "helpful": text})
                stats["benign_kept"] += 1
            else:
                stats["benign_dropped"] += 1
    return pool, stats
