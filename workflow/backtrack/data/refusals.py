"""Varied, short refusal texts used as the safe responses ``y+`` in training data.

Why: a single fixed refusal teaches the model one string; mixing openers, reasons and offers
gives varied but short targets (training runs on CPU, so every token costs time). Every
opener contains a phrase the ``refusal`` judge recognises, so all outputs count as refusals.
"""

from __future__ import annotations

import random

OPENERS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that.",
    "I can't assist with this request.",
    "I won't provide instructions for that.",
    "I cannot help with that request.",
    "Sorry, I can't do that.",
    "I'm not able to help with this.",
    "I must decline this request.",
    "I will not help with that.",
    "I'm unable to assist with that.",
    "My apologies, but I can't provide that.",
)

REASONS: tuple[str, ...] = (
    "It could put people at risk.",
    "That would be harmful and possibly illegal.",
    "It could cause real harm to others.",
    "Sharing that could hurt someone.",
    "That information could be misused.",
    "It goes against my safety guidelines.",
    "It could be dangerous.",
)

OFFERS: tuple[str, ...] = (
    "If you have a different question, I'm happy to help.",
    "Is there something else I can help you with?",
    "I'd be glad to help with something else.",
    "Feel free to ask me about another topic.",
    "Let me know if I can help in another way.",
)

P_REASON = 0.7
P_OFFER = 0.5


def make_refusal(rng: random.Random) -> str:
    """Compose one refusal: opener, optional reason, optional offer (deterministic in rng)."""
    parts = [rng.choice(OPENERS)]
    if rng.random() < P_REASON:
        parts.append(rng.choice(REASONS))
    if rng.random() < P_OFFER:
        parts.append(rng.choice(OFFERS))
    return " ".join(parts)


def refusal_variants() -> int:
    """Number of distinct refusals make_refusal can produce (reason and offer are optional)."""
    return len(OPENERS) * (len(REASONS) + 1) * (len(OFFERS) + 1)
