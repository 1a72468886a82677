"""The provenance record every prepared or trained model directory carries (torch-free).

It says where a checkpoint came from (source, dtype, the trainer's settings and precision), so
that tables and jobs downstream can report it without loading the model, and the size and
SHA-256 of each weight file, so that a truncated or rewritten checkpoint is caught: cheaply
(sizes) when the graph is planned, and by digest when the checkpoint is loaded (files up to
:data:`FULL_CHECK_BYTES`; larger ones by size).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

PROVENANCE_FILE = "backtrack_provenance.json"
WEIGHT_GLOB = "*.safetensors"
#: Weight files above this size are checked by size only when loaded (hashing 16 GB of
#: Llama-3-8B would cost every job tens of seconds); below it, by SHA-256 too.
FULL_CHECK_BYTES = 2 << 30

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint's weight files do not match its provenance record; the message names the
    file and what to rerun."""


def provenance(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The provenance record written beside a prepared model (or one of its descendants)."""
    path = Path(model_dir) / PROVENANCE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def weight_digests(model_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of each weight file of a checkpoint being written (its provenance's
    ``weights``)."""
    return {
        f.name: {"size": f.stat().st_size, "sha256": _sha256(f)}
        for f in sorted(Path(model_dir).glob(WEIGHT_GLOB))
    }


def checkpoint_problem(model_dir: str | os.PathLike[str], full: bool = False) -> str | None:
    """What is wrong with a checkpoint's weight files against its record, or None: a file
    missing or of another size, and with ``full`` a different SHA-256 (for files up to
    :data:`FULL_CHECK_BYTES`). A checkpoint without a record (made elsewhere) is not checked."""
    weights = provenance(model_dir).get("weights") or {}
    for name, want in sorted(weights.items()):
        f = Path(model_dir) / name
        if not f.is_file():
            return f"{f} is missing"
        size = f.stat().st_size
        if size != want["size"]:
            return f"{f} has {size} bytes; its provenance record says {want['size']}"
        if full and size <= FULL_CHECK_BYTES and _sha256(f) != want["sha256"]:
            return f"{f} does not match the SHA-256 in its provenance record"
    return None


#: Checkpoints this process has verified, by path and each weight file's size and mtime: one
#: whose files have changed since is hashed again.
_VERIFIED: set[tuple[str, tuple[tuple[str, int, int], ...]]] = set()


def _weights_key(model_dir: str | os.PathLike[str]) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    files = sorted(Path(model_dir).glob(WEIGHT_GLOB))
    stats = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return str(Path(model_dir).resolve()), stats


def check_weights(model_dir: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError`, naming the file, when a checkpoint about to be loaded
    does not match its record (a truncated file would otherwise fail deep in safetensors with
    "incomplete metadata" and no file named)."""
    key = _weights_key(model_dir)
    if key in _VERIFIED:  # DPO loads its start checkpoint twice: policy and reference
        return
    problem = checkpoint_problem(model_dir, full=True)
    if not problem:
        _VERIFIED.add(key)
    if problem:
        raise CheckpointError(
            f"checkpoint {model_dir} is damaged: {problem}. Rebuild it: rerun the same "
            f"snakemake command with --forcerun {model_dir}"
        )
