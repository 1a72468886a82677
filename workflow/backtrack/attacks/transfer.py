"""HarmBench's GCG-Transfer: suffixes optimised on one checkpoint, sent to the others.

Why its own row: the white-box rows ask whether an attacker with the model's gradients breaks
it; this one asks whether the suffixes that broke the source checkpoint (``attacks.transfer``,
by default baseline SFT) break the others too, with no search on them. It costs one generation
per suffix, so it can run on every checkpoint at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from backtrack.attacks.runner import Evaluator

#: Fields of a transfer prompt kept from the source transcript.
SOURCE_FIELDS = ("id", "prompt", "target", "attack_prompt", "adversarial", "steps")


def transfer_set(
    transcripts: Sequence[Mapping[str, Any]],
    judgments: Sequence[Mapping[str, Any]],
    source: str,
) -> list[dict[str, Any]]:
    """The source attack's prompts that broke its checkpoint by the evaluation judge
    (``judgments``' ``unsafe``), each with the adversarial message that did it, in the
    transcript's order; ``source`` names the checkpoint for the records."""
    unsafe = {j["id"]: bool(j["unsafe"]) for j in judgments}
    missing = [t["id"] for t in transcripts if t["id"] not in unsafe]
    if missing:
        raise ValueError(f"no judgment for transcript line(s) {', '.join(missing[:5])}")
    return [
        {k: t[k] for k in SOURCE_FIELDS if k in t} | {"source": source}
        for t in transcripts
        if unsafe[t["id"]]
    ]


def run_transfer(ev: Evaluator, prompts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each transfer prompt's adversarial message answered by ``ev``'s checkpoint, decoded as
    the attacks decode their final message (one at a time, the deployed decoding), so that on
    the source checkpoint the row gives back the attack's own answers. A line is a generation
    record with ``prompt`` set back to the request, as in the attacks' transcripts."""
    out = []
    for p in prompts:
        answer = ev.generate(p, p["attack_prompt"])
        out.append(
            answer
            | {
                "attack": "gcg_transfer",
                "target": p["target"],
                "adversarial": p["adversarial"],
                "source": p["source"],
                "source_steps": p.get("steps"),
            }
        )
    return out
