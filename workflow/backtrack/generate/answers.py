"""A model's own greedy answers to a prompt set, without [RESET]: what the base model says.

The prefilling attack cuts these answers into prefixes, and the helpfulness score uses them as
references; the training pool samples its unsafe and helpful answers the same way.
"""

from __future__ import annotations

import os
from typing import Any

from backtrack.generate.hf import generate_records
from backtrack.io import read_jsonl
from backtrack.models.base import load_model, load_tokenizer
from backtrack.settings import JobSettings


def own_answers(
    model_dir: str | os.PathLike[str],
    prompts_path: str | os.PathLike[str],
    settings: JobSettings,
    *,
    max_new_tokens: int,
    batch_size: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(prompt records, generation records) for every prompt of the file, in file order.

    Greedy and with ``max_resets=0``, so a model that knows the reset token never emits it;
    the job's settings give the precision, the reset token, the system prompt and the seed.
    """
    if settings.precision is None:
        raise ValueError(f"rule {settings.rule}: no precision param")
    tok = load_tokenizer(model_dir)
    model = load_model(model_dir, settings.precision)
    prompts = read_jsonl(prompts_path, required=("id", "prompt"))
    lengths = {"max_new_tokens": max_new_tokens, "batch_size": batch_size}
    decoding = settings.decoding(lengths, max_resets=0)
    return prompts, generate_records(model, tok, prompts, settings.reset(tok).id, decoding)
