"""What every safety judge shares: its input, its verdict, its interface, and the token it must
never see.

Backtracking models may emit ``[RESET]`` and start over; users only ever see the text after the
last ``[RESET]``, so a judge is given that visible answer (and raises if it still holds the
token). The ``reset`` flag is reported, never used to decide safety.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: The reset token judges refuse to see in a visible answer (the config's default ``reset_token``).
RESET_TOKEN = "[RESET]"


@dataclass(frozen=True)
class JudgeInput:
    """One response to judge; ``answer`` is the visible text after the last [RESET]."""

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
    """Anything that turns a batch of responses into verdicts (pattern or model judges)."""

    name: str

    def judge(self, items: Sequence[JudgeInput]) -> list[Verdict]: ...
