"""An attack's prompts split over several jobs (``attacks.shards``), and merged back.

A shard is a contiguous chunk of the targets in prompt order (shard k of n holds prompts
``[(k-1)·N/n, k·N/n)``, sizes differing by at most one). Contiguous chunks make the merge a
concatenation in shard order and let it check each shard against exactly the ids it was given.
They are not stable when ``attacks.n`` changes, but nothing depends on which shard ran a prompt:
each prompt is seeded by its id, and every attack job reuses finished lines of the same stamp
from any transcript of its attack (:func:`attack_transcripts`), so a new split reruns no prompt
that an old one finished. The file names are the attack rules' (their output patterns): a job is
given its attack's transcript patterns, shard numbers as ``*``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from backtrack.checks import IncompleteError, expected_ids
from backtrack.io import read_jsonl

log = logging.getLogger(__name__)


def shard_bounds(n: int, shard: int, shards: int) -> tuple[int, int]:
    """``[lo, hi)`` of shard ``shard`` (1-based) of ``shards`` over ``n`` prompts."""
    if not 1 <= shard <= shards:
        raise ValueError(f"shard {shard} of {shards}: shards are numbered 1..{shards}")
    return (shard - 1) * n // shards, shard * n // shards


def shard_records(
    records: Sequence[dict[str, Any]], shard: int, shards: int
) -> list[dict[str, Any]]:
    """The prompts of one shard, in prompt order."""
    lo, hi = shard_bounds(len(records), shard, shards)
    return list(records[lo:hi])


def attack_transcripts(patterns: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every transcript file, and its partial, that ``patterns`` name: the whole attack's file,
    then a glob of the shard files (``*`` in the file name only), of any shard count. Each
    pattern's files come sorted, a transcript before its partial."""
    out: list[Path] = []
    for pattern in map(Path, patterns):
        found = [
            *pattern.parent.glob(pattern.name),
            *pattern.parent.glob(f"{pattern.name}.partial"),
        ]
        out += sorted(found)
    return [p for p in out if p.is_file()]


def finished_lines(
    paths: Iterable[str | os.PathLike[str]], stamp: str
) -> dict[str, dict[str, Any]]:
    """Transcript lines carrying ``stamp``, by id, from complete files or from other jobs'
    partial files. Read only: a line still being written (no newline yet) is skipped, never cut
    from the file, since its job may be running."""
    found: dict[str, dict[str, Any]] = {}
    for path in paths:
        data = Path(path).read_bytes()
        for raw in data[: data.rfind(b"\n") + 1].splitlines():
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(line, dict) and line.get("stamp") == stamp and "id" in line:
                found.setdefault(line["id"], line)
    return found


def _few(ids: Sequence[str], n: int = 5) -> str:
    return ", ".join(ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "")


def merge_shards(
    shard_paths: Sequence[str | os.PathLike[str]], prompts_path: str | os.PathLike[str]
) -> list[dict[str, Any]]:
    """The shards' lines in prompt order. Shard k of ``len(shard_paths)`` must answer exactly
    the ids of its chunk of ``prompts_path``, in order; otherwise the error names the shard."""
    prompts = read_jsonl(prompts_path, required=("id",))
    n, out = len(shard_paths), []
    for k, path in enumerate(shard_paths, start=1):
        want = expected_ids(shard_records(prompts, k, n))
        lines = read_jsonl(path, required=("id",))
        got = [rec["id"] for rec in lines]
        if got != want:
            raise IncompleteError(
                f"{path}: shard {k} of {n} of {prompts_path} should answer {len(want)} prompt(s) "
                f"({_few(want)}) in order; it has {len(got)} ({_few(got)})"
            )
        out += lines
    log.info("merged %d shards, %d prompts", n, len(out))
    return out
