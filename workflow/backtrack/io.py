"""Atomic file output: a failed job must never leave a half-written file that looks complete."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def iter_jsonl(
    path: str | os.PathLike[str], required: Sequence[str] = ()
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of a JSONL file of objects, blank lines skipped. A line that is
    not UTF-8, not JSON, not an object, or lacks one of the ``required`` fields raises with the
    file name, the line number and the record id.
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{where}: not UTF-8 (byte {e.start} of the line)") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e.msg})") from e
            if not isinstance(rec, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
            missing = [k for k in required if k not in rec]
            if missing:
                rid = rec.get("id", "<no id>")
                raise ValueError(f"{where}: record {rid!r} lacks field(s) {', '.join(missing)}")
            yield lineno, rec


def read_jsonl(path: str | os.PathLike[str], required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Read a JSONL file of objects; bad lines raise as :func:`iter_jsonl` says."""
    return [rec for _, rec in iter_jsonl(path, required)]


def read_partial_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read an append-only transcript (:func:`append_jsonl`) after a crash.

    Bytes after the last newline are a line cut off mid-write: they are cut from the file too,
    so the next append starts on a line of its own (dropping them only in memory would glue
    the next record onto the broken line and make the file unreadable).
    """
    path = Path(path)
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        log.warning("%s: removing a cut-off last line (%d bytes)", path, len(data) - end)
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    return read_jsonl(path)


def write_jsonl(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> int:
    """Write records to ``path`` atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one record and flush it to disk (for resumable per-item transcripts)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove ``.<name>.*.tmp`` siblings of ``path`` that a killed writer left behind.

    SIGKILL (or a lost node) gives :func:`atomic_file` and :func:`atomic_dir` no chance to clean
    up; the next writer of the same output does it. Snakemake runs one job per output at a time,
    so a temporary of this output is never another live job's.
    """
    path = Path(path)
    stale = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    for p in stale:
        log.warning("removing %s, left by an interrupted writer", p)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return stale


#: Flags of a new temporary file: created here, never an existing one (or a link) reused.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def _create_temporary(path: Path, create: Callable[[Path], None]) -> Path:
    """Create a fresh ``.<name>.<random>.tmp`` sibling of ``path`` with ``create``.

    Not ``tempfile.mkstemp``/``mkdtemp``: they make mode 0600/0700 whatever the umask, and the
    rename keeps that mode, so results in a group-shared directory would be unreadable to the
    group. ``create`` asks for 0666 (a file) or 0777 (a directory) and the kernel applies the
    umask (or the directory's default ACL), as for an ordinary ``open()`` or ``mkdir``.
    """
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            create(tmp)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name next to {path}")


def _name_full_disk(err: BaseException, path: Path) -> None:
    """A full disk surfaces from deep inside a writer (safetensors, tokenizers) with no file
    named: say which output could not be written, and where the space ran out."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        raise OSError(
            err.errno,
            f"no space left to write {path} (on the file system of {path.parent}; "
            f"{shutil.disk_usage(path.parent).free // 2**20} MiB free now): {err.strerror}",
        ) from err


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    The file gets the mode an ordinary ``open()`` would give it (``0666`` less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = _create_temporary(path, lambda p: os.close(os.open(p, _NEW_FILE, 0o666)))
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _name_full_disk(err, path)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; move it onto ``path`` only on success.

    The directory gets the mode of an ordinary ``mkdir`` (``0777`` less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = _create_temporary(path, lambda p: os.mkdir(p, 0o777))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        _name_full_disk(err, path)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write one JSON document atomically."""
    with atomic_file(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
