"""The prefilling attack's prompt sets: the first k tokens of an unsafe answer, from one of three
sources (``prefill.sources``): the base model's own unsafe answers (``base_model``, the
distribution backtracking was trained on), the attack targets' "Sure, here is ..." openers
(``sure_here``, text no model of the run wrote) or another model's unsafe answers
(``other_model``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from transformers import PreTrainedTokenizerBase

from backtrack.data.targets import sure_here_target
from backtrack.models.chat import text_ids


def cut_prefill_set(
    tok: PreTrainedTokenizerBase,
    answers: Iterable[dict[str, Any]],
    tokens: int,
    source: str = "base_model",
) -> list[dict[str, Any]]:
    """Records with ``prefill`` = the first ``tokens`` tokens of each unsafe answer (the base
    model's own, or another model's for ``source="other_model"``), in ``tok``'s tokens: the
    attacked model's.

    Only answers the label judge called unsafe make an attack, and only those at least
    ``tokens`` long, so a longer prefix can mean fewer prompts (each row reports its n). The
    cut is on token ids, so every prefix of a sweep is a prefix of the longer ones.
    """
    label = source.replace("_", "-")
    out = []
    for a in answers:
        ids = text_ids(tok, a["answer"])
        if a["label"]["unsafe"] and len(ids) >= tokens:
            rec = {k: v for k, v in a.items() if k not in ("answer", "label")}
            out.append({**rec, "prefill": tok.decode(ids[:tokens]), "prefill_source": label})
    return out


def opener_prefill_set(
    tok: PreTrainedTokenizerBase, prompts: Iterable[dict[str, Any]], tokens: int
) -> list[dict[str, Any]]:
    """Records with ``prefill`` = the first ``tokens`` tokens of the prompt's AdvBench-style
    target ("Sure, here is ..."), the opener GCG and AutoDAN optimise for. Openers shorter than
    ``tokens`` are left out, as short answers are in :func:`cut_prefill_set`."""
    out = []
    for p in prompts:
        ids = text_ids(tok, sure_here_target(p["prompt"]))
        if len(ids) >= tokens:
            out.append({**p, "prefill": tok.decode(ids[:tokens]), "prefill_source": "sure_here"})
    return out
