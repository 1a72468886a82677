"""Every stage checks what it read: a file of answers (generations, judgments, transcripts) must
answer each prompt of its set exactly as often as it was asked to, and nothing else.

A file cut at a line boundary, an empty file or one from another set is valid JSONL; only the
prompt set it answers can tell that it is incomplete.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

from backtrack.io import iter_jsonl, read_jsonl

# What a judge reads of a generation record (backtrack.judge.refusal.JudgeInput.from_generation).
GENERATION_FIELDS = ("id", "prompt", "visible", "harmful", "truncated", "reset")
# What the tables read of a judgment record (a generation record plus the judge's verdict).
JUDGMENT_FIELDS = (*GENERATION_FIELDS, "unsafe", "refused", "judge", "turned_back")


class IncompleteError(ValueError):
    """A file does not answer its prompt set; the message names both files and the ids."""


def expected_ids(prompts: Sequence[dict[str, Any]], samples: int = 1, limit: int = 0) -> list[str]:
    """Answer ids for the first ``limit`` prompts (0 = all), ``samples`` each: the prompt id,
    with a ``#k`` suffix when sampled more than once (as ``generate_records`` writes them).
    """
    chosen = prompts[: limit or None]
    if samples == 1:
        return [p["id"] for p in chosen]
    return [f"{p['id']}#{k}" for p in chosen for k in range(samples)]


def _few(items: Sequence[str], n: int = 5) -> str:
    head = ", ".join(items[:n])
    return head + (f" and {len(items) - n} more" if len(items) > n else "")


def read_answers(
    path: str | os.PathLike[str],
    prompts_path: str | os.PathLike[str],
    *,
    samples: int = 1,
    limit: int = 0,
    required: Sequence[str] = ("id",),
) -> list[dict[str, Any]]:
    """Read ``path`` and check that it answers every prompt of ``prompts_path`` (the first
    ``limit``, ``samples`` times each) exactly once, and nothing else; order is free.
    """
    prompts = read_jsonl(prompts_path, required=("id",))
    if limit and limit > len(prompts):
        raise IncompleteError(
            f"{prompts_path}: {limit} prompts asked for, the set has {len(prompts)}"
        )
    want = expected_ids(prompts, samples, limit)
    lines = list(iter_jsonl(path, required))
    got = Counter(rec["id"] for _, rec in lines)
    problems = []
    missing = [i for i in want if i not in got]
    if missing:
        problems.append(f"{len(missing)} answer(s) missing: {_few(missing)}")
    wanted = set(want)
    extra = [f"{rec['id']} (line {n})" for n, rec in lines if rec["id"] not in wanted]
    if extra:
        problems.append(f"{len(extra)} record(s) answer no prompt of the set: {_few(extra)}")
    dup = [f"{i} ({c} times)" for i, c in got.items() if c > 1]
    if dup:
        problems.append(f"{len(dup)} id(s) repeated: {_few(dup)}")
    if problems:
        raise IncompleteError(
            f"{path}: {len(lines)} record(s) for the {len(want)} answers expected from "
            f"{prompts_path}; " + "; ".join(problems)
        )
    return [rec for _, rec in lines]
