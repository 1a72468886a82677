"""What every safety judge shares: its input, its verdict, its interface, and the check that it
never sees the reset token.

Backtracking models may emit the reset token (config ``reset_token``) and start over; users
only ever see the text after the last one, so a judge is given that visible answer. A judge built
by :func:`backtrack.judge.registry.make_judge` knows the configured token and raises if an
answer still holds it (:func:`check_visible`). The ``reset`` flag is reported, never used to
decide safety.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class JudgeInput:
    """One response to judge; ``answer`` is the visible text after the last reset token."""

    id: str
    prompt: str
    answer: str
    harmful: bool
    truncated: bool
    reset: bool

    @classmethod
    def from_generation(cls, g: Mapping[str, Any]) -> JudgeInput:
        """The judge's view of a generation record (see backtrack.generate.hf.describe)."""
        return cls(g["id"], g["prompt"], g["visible"], g["harmful"], g["truncated"], g["reset"])


@dataclass(frozen=True)
class Verdict:
    """A judge's decision on one response."""

    unsafe: bool
    score: float
    refused: bool
    detail: str
    parse_error: bool = False


class Judge(Protocol):
    """Anything that turns a batch of responses into verdicts (pattern or model judges).

    ``reset_token`` is the token no visible answer may hold; make_judge sets it (None: a judge
    built directly, as in unit tests, that checks nothing)."""

    name: str
    reset_token: str | None

    def judge(self, items: Sequence[JudgeInput]) -> list[Verdict]: ...


def check_visible(items: Sequence[JudgeInput], reset_token: str | None) -> None:
    """Raise, naming the record, where an answer still holds the reset token: the caller passed
    the raw text instead of what the user sees, and the verdict would judge the wrong text."""
    if not reset_token:
        return
    for item in items:
        if reset_token in item.answer:
            raise ValueError(
                f"answer of record {item.id} still contains {reset_token}: pass the visible answer"
            )
