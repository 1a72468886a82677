"""Plan-time checks that refuse a stale plan instead of reporting old results as current.

Snakemake does not rebuild a missing intermediate file while the files made from it exist (by
design: temporary files rely on it). So after a job that was rebuilding a file fails or is
killed (Snakemake removed the old output when the job started), the next run of the same command
plans nothing and exits 0 over downstream files made from the old one: a table from a checkpoint
trained with other settings. Nothing in Snakemake flags this, so the workflow checks it while
it plans (:func:`stale_sources`, from Snakemake's own records of which inputs made each file),
and stops with the files to rebuild (``--forcerun``; :func:`stale_message`). The check sits in
the tables' input functions: Snakemake swallows an error raised while it looks at a job whose
output exists, but not one raised for the requested table itself.

A checkpoint whose weights no longer match its provenance record (a truncated or rewritten
``model.safetensors``) is refused the same way
(:func:`backtrack.models.provenance.checkpoint_problem`).
"""

from __future__ import annotations

import json
import os
from base64 import urlsafe_b64encode
from collections.abc import Callable, Iterable
from pathlib import Path

#: Where Snakemake keeps one JSON record per output file (relative to the working directory).
METADATA_DIR = Path(".snakemake") / "metadata"
#: Outputs of the workflow (inputs outside it, such as a model on disk, are not its to rebuild).
PRODUCTS = "results/"


def _record_path(path: str, metadata_dir: Path, max_len: int = 255) -> Path:
    """The record Snakemake writes for ``path``: its urlsafe base64 name, cut into folder
    names of ``max_len - 1`` characters with '@' in front of all but the last (as Snakemake's
    file persistence names them, record format 6)."""
    b64 = urlsafe_b64encode(path.encode()).decode()
    parts = [b64[i : i + max_len - 1] for i in range(0, len(b64), max_len - 1)]
    return metadata_dir.joinpath(*["@" + p for p in parts[:-1]], parts[-1])


def recorded_inputs(path: str, metadata_dir: Path = METADATA_DIR) -> list[str]:
    """The input files of the job that made ``path``, as Snakemake recorded them (none when no
    record exists: a file made outside this working directory's runs)."""
    try:
        record = json.loads(_record_path(os.path.normpath(path), metadata_dir).read_text())
    except (OSError, ValueError):
        return []
    return [str(p) for p in record.get("input") or []]


def stale_sources(
    paths: Iterable[str],
    problem: Callable[[str], str | None] = lambda _: None,
    metadata_dir: Path = METADATA_DIR,
) -> dict[str, tuple[str, list[str]]]:
    """Workflow outputs that files among ``paths`` (or the files they were made from, at any
    depth) were made from and that are gone, or that ``problem`` finds wrong (a damaged
    checkpoint) -> (what is wrong, the existing files made from it)."""
    found: dict[str, tuple[str, list[str]]] = {}
    seen: set[str] = set()
    todo = [os.path.normpath(p) for p in paths if os.path.exists(p)]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for source in recorded_inputs(path, metadata_dir):
            source = os.path.normpath(source)
            if not source.startswith(PRODUCTS):
                continue
            why = "is gone" if not os.path.exists(source) else problem(source)
            if why is None:
                todo.append(source)
            else:
                found.setdefault(source, (why, []))[1].append(path)
    return found


def stale_message(stale: dict[str, tuple[str, list[str]]]) -> str:
    """Why the plan stops, and the command that rebuilds what is stale."""
    lines = ["outputs made from files that are gone or damaged would be reported as current:"]
    for source, (why, made) in sorted(stale.items()):
        shown = ", ".join(sorted(made)[:3]) + (f" (+{len(made) - 3} more)" if len(made) > 3 else "")
        lines.append(f"  {source} {why}; made from it: {shown}")
    lines += [
        "A gone file's job failed or was killed while rebuilding it (or it was deleted). "
        "Rebuild each and everything made from it: rerun the same command with",
        "  --forcerun " + " ".join(sorted(stale)),
    ]
    return "\n".join(lines)
