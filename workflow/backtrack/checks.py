"""Every stage checks what it read: a file of answers (generations, judgments, transcripts) must
answer each prompt of its set exactly as often as it was asked to, and nothing else, and each
answer must carry the text of its prompt as the set has it now.

A file cut at a line boundary, an empty file or one from another set is valid JSONL; only the
prompt set it answers can tell that it is incomplete. A prompt set edited in place with its
file time kept (or restored by a copy) leaves Snakemake nothing to see; only the text that each
answer copies from its prompt shows that the answers were made from another version.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backtrack.io import iter_jsonl, read_jsonl

# What a judge reads of a generation record (backtrack.judge.refusal.JudgeInput.from_generation).
GENERATION_FIELDS = ("id", "prompt", "visible", "harmful", "truncated", "reset")
# What the tables read of a judgment record (a generation record plus the judge's verdict).
JUDGMENT_FIELDS = (*GENERATION_FIELDS, "unsafe", "refused", "judge", "turned_back")
# Fields of a prompt record that each of its answers copies (generation records, attack
# transcripts and the judgments made from them), compared where the prompt record has them.
ECHOED_FIELDS = ("prompt", "prefill", "target")


class IncompleteError(ValueError):
    """A file does not answer its prompt set; the message names both files and the ids."""


class StaleAnswersError(IncompleteError):
    """Answers made from another version of their prompt set; the message names both files,
    the records, and what to delete or rerun."""


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


def answered_prompts(
    prompts: Sequence[dict[str, Any]], samples: int = 1, limit: int = 0
) -> dict[str, dict[str, Any]]:
    """Each expected answer id (as :func:`expected_ids` makes them) with the prompt it answers."""
    chosen = prompts[: limit or None]
    if samples == 1:
        return {p["id"]: p for p in chosen}
    return {f"{p['id']}#{k}": p for p in chosen for k in range(samples)}


def _clip(text: Any, n: int = 60) -> str:
    text = repr(text)
    return text if len(text) <= n else text[: n - 3] + "..."


def stale_answers(
    lines: Sequence[tuple[int, dict[str, Any]]], answered: dict[str, dict[str, Any]]
) -> list[str]:
    """Each ``(line, record)`` whose copy of its prompt's :data:`ECHOED_FIELDS` differs from
    (or lacks) the prompt set's, described with its id and line; the first shows both texts."""
    found = []
    for n, rec in lines:
        prompt = answered.get(rec["id"])
        if prompt is None:
            continue  # answers no prompt of the set: reported as such
        fields = [f for f in ECHOED_FIELDS if f in prompt and rec.get(f) != prompt[f]]
        if not fields:
            continue
        where = f"{rec['id']} (line {n}: {', '.join(fields)})"
        if not found:
            f = fields[0]
            where += f" has {f} {_clip(rec.get(f))} where the set has {_clip(prompt[f])}"
        found.append(where)
    return found


def made_from(path: str | os.PathLike[str]) -> list[Path]:
    """``path`` and the answers it was made from, by the workflow's layout: a judgment from its
    generations or its attack transcript, a merged transcript also from its shard files."""
    path = Path(path)
    chain = [path]
    parts = path.parts
    if "judgments" in parts:
        i = len(parts) - 1 - parts[::-1].index("judgments")
        head, rest = parts[:i], parts[i + 1 :]
        # <model>/<method>/seed<n>/<stage>/attacks/<attack>.jsonl
        if len(rest) == 6 and rest[4] == "attacks":
            chain.append(Path(*head, "attacks", *rest[:4], rest[5]))
        else:
            chain.append(Path(*head, "generations", *rest))
    shards = chain[-1].with_suffix("")
    if "attacks" in chain[-1].parts and shards.is_dir():
        chain.append(shards)
    return chain


def _remake_rule(source: Path, prompts_path: Path) -> str | None:
    """The rule(s) that made the answers in ``source`` from the prompts in ``prompts_path``."""
    if "generations" in source.parts:
        if "sweeps" in source.parts:
            return "generate_sweep"
        # Prefilled sets are answered by their own jobs (backtrack.plan.generation_groups).
        if "prefill" in prompts_path.parts:
            return (
                "generate_prefilled <targets>, or generate_prefill_attack for a prefix length "
                "only Table 2 reads"
            )
        return "generate"
    if "attacks" in source.parts:
        return "attack attack_shard"
    if source.name.endswith("_answers.jsonl"):
        return "sample_prefill_answers"
    return None


def remake_hint(path: str | os.PathLike[str], prompts_path: str | os.PathLike[str]) -> str:
    """What to do about stale answers in ``path``: delete them (and what they were made from)
    so that Snakemake remakes them and everything after; or restore the prompt set."""
    chain = made_from(path)
    hint = (
        f"Delete the stale answers and run the same command again: rm -r "
        f"{' '.join(map(str, chain))}"
    )
    first = [p for p in chain if p.suffix == ".jsonl"][-1]  # the first answers
    rule = _remake_rule(first, Path(prompts_path))
    if rule:
        targets = "" if "<targets>" in rule else " <targets>"
        hint += f" (to remake every such file at once: snakemake --forcerun {rule}{targets})"
    return (
        f"{hint}. If {prompts_path} was not meant to change, delete it instead: Snakemake "
        "remakes it and everything made from it."
    )


def read_answers(
    path: str | os.PathLike[str],
    prompts_path: str | os.PathLike[str],
    *,
    samples: int = 1,
    limit: int = 0,
    required: Sequence[str] = ("id",),
) -> list[dict[str, Any]]:
    """Read ``path`` and check that it answers every prompt of ``prompts_path`` (the first
    ``limit``, ``samples`` times each) exactly once, and nothing else; order is free. Each
    answer's copy of its prompt (:data:`ECHOED_FIELDS`) must equal the set's: an edited prompt
    set leaves its file time as it was, so only this shows that the answers are stale.
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
    stale = stale_answers(lines, answered_prompts(prompts, samples, limit))
    if stale:
        raise StaleAnswersError(
            f"{path}: {len(stale)} record(s) answer another version of {prompts_path} than "
            f"the file holds now: {_few(stale, 3)}. The prompt set changed after these answers "
            f"were made. {remake_hint(path, prompts_path)}"
        )
    return [rec for _, rec in lines]
