"""Support for the workflow's scripts: logging into the rule's log file, thread limits, and
stopping with the Snakemake process that started the job."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# How often a job looks for the Snakemake process that started it, and how long it waits for
# its own SIGTERM clean-up to end before it kills itself.
WATCH_INTERVAL_S = 1.0
CLEANUP_GRACE_S = 60.0
# Python options that take a value as the next argument (``python -X dev -m snakemake``).
_PYTHON_VALUE_OPTIONS = ("-X", "-W")
_watching: list[tuple[int, int]] | None = None


def exit_on_sigterm(signum: int, frame: Any) -> None:
    # Unwind instead of dying on the spot, so atomic_file/atomic_dir remove their temporaries.
    raise SystemExit(128 + signum)


def runs_snakemake(argv: Sequence[str]) -> bool:
    """Whether a command line runs Snakemake: ``snakemake …``, ``python …/bin/snakemake …`` (a
    console script) or ``python -m snakemake …``; a job's ``.snakemake/scripts/…`` is not."""
    if not argv:
        return False
    name = os.path.basename(argv[0])
    if name == "snakemake":
        return True
    if not name.startswith("python"):
        return False
    rest = list(argv[1:])
    while rest and rest[0].startswith("-") and rest[0] != "-m":
        rest = rest[2:] if rest[0] in _PYTHON_VALUE_OPTIONS else rest[1:]
    if rest[:2] == ["-m", "snakemake"]:
        return True
    return bool(rest) and os.path.basename(rest[0]) == "snakemake"


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process from ``/proc``; None if it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()  # the name in (…) may hold spaces
    return fields[0], int(fields[1]), int(fields[19])


def _proc_argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def snakemake_ancestors(pid: int | None = None) -> list[tuple[int, int]]:
    """(pid, start time) of each ancestor of ``pid`` (this process) that runs Snakemake, the
    nearest first. Empty without ``/proc`` or under a job wrapper that runs no Snakemake."""
    found = []
    stat = _proc_stat(os.getpid() if pid is None else pid)
    while stat is not None and stat[1] > 0:
        parent = stat[1]
        stat = _proc_stat(parent)
        if stat is not None and runs_snakemake(_proc_argv(parent)):
            found.append((parent, stat[2]))
    return found


def _alive(pid: int, start: int) -> bool:
    """Whether the process ``pid`` started at ``start`` still runs (not a zombie, not a new
    process that reuses the pid)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in "ZXx" and stat[2] == start


def _watch(ancestors: list[tuple[int, int]], interval: float, grace: float) -> None:
    while all(_alive(pid, start) for pid, start in ancestors):
        time.sleep(interval)
    gone = next((pid for pid, start in ancestors if not _alive(pid, start)), 0)
    print(f"Snakemake (pid {gone}) that started this job is gone: stopping", file=sys.stderr)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)  # still here only if the clean-up hangs: a daemon thread ends with the job
    os.kill(os.getpid(), signal.SIGKILL)


def stop_with_snakemake(
    interval: float = WATCH_INTERVAL_S, grace: float = CLEANUP_GRACE_S
) -> list[tuple[int, int]]:
    """SIGTERM this job when a Snakemake process above it dies, even by SIGKILL: otherwise the
    job runs on under PID 1 and writes its output after a rerun has planned without it. Between
    Snakemake and the job may stand a shell, so parent-death signals would follow the shell.
    Returns the watched (pid, start time) pairs; none where no Snakemake runs above (then
    nothing is watched). Watching starts once per process."""
    global _watching
    if _watching is None:
        _watching = snakemake_ancestors()
        if _watching:
            threading.Thread(
                target=_watch, args=(_watching, interval, grace), daemon=True,
                name="stop-with-snakemake",
            ).start()  # fmt: skip
    return _watching


class LineLog:
    """A job's log file as stdout/stderr, with every carriage return turned into a line break.

    Why: progress bars (tqdm, under transformers, datasets and our own loops) redraw one line
    with ``\\r``; in a log file that is one unreadable line of overwritten states. Here each
    redraw becomes its own line (one line per update, no empty ones), which ``less``, ``tail -f``
    and the Snakemake report show as text.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._at_line_start = True

    def write(self, text: str) -> int:
        out = text.replace("\r\n", "\n").replace("\r", "\n")
        if self._at_line_start:
            out = out.lstrip("\n") if text.startswith("\r") else out
        while "\n\n" in out and "\r" in text:  # a redraw right after a line end
            out = out.replace("\n\n", "\n")
        if out:
            self.stream.write(out)
            self._at_line_start = out.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return self.stream.encoding


def setup(snakemake: Any) -> logging.Logger:
    """Send stdout/stderr/logging to ``snakemake.log[0]``, use the rule's thread count, turn
    SIGTERM (Snakemake's or SLURM's way to stop a job) into an exception that cleans up, and
    stop the job the same way when the Snakemake process that started it dies.
    """
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    stop_with_snakemake()
    if snakemake.log:
        stream = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115 (lives as long as the job)
        sys.stdout = sys.stderr = LineLog(stream)  # type: ignore[assignment]
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    torch = sys.modules.get("torch")  # only if the script uses it: importing costs seconds
    if torch is not None:
        torch.set_num_threads(max(1, int(snakemake.threads)))
    return logging.getLogger(f"backtrack.{snakemake.rule}")


class JsonParam(str):
    """A rule param passed as sorted JSON text (:func:`as_json`), shown as YAML flow text.

    Why: the script reads the JSON (:func:`param_json`), and Snakemake's params rerun trigger
    records ``repr`` of the value, which is the plain string's, so the recorded params stay
    what they were. Only formatting changes: Snakemake 9's report writes each job's params
    with ``f"{name}={value}"`` and escapes every double quote, so JSON showed there as
    ``cells=[[\\"tiny\\", ...``; YAML flow text has no double quotes to escape. Pickled (the
    script's copy of ``snakemake``) it becomes a plain ``str``.
    """

    def __format__(self, spec: str) -> str:
        import yaml

        text = yaml.safe_dump(
            json.loads(self), default_flow_style=True, sort_keys=True, width=2**31
        ).strip()
        return format(text.removesuffix("\n..."), spec)

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        return (str, (str.__str__(self),))


def as_json(obj: Any) -> JsonParam:
    """Hyperparameters as sorted JSON, so that key order never triggers a rerun (what an input
    function returns as a param)."""
    return JsonParam(json.dumps(obj, sort_keys=True))


def json_param(obj: Any) -> Callable[[Any], JsonParam]:
    """A rule's literal param as a params function returning :func:`as_json` of ``obj``.

    Why a function: Snakemake applies wildcards to a plain string param and so copies it into
    a new ``str``, losing :class:`JsonParam`'s report formatting; what a function returns is
    kept as it is. The recorded value (and so the params rerun trigger) is the same JSON.
    """
    value = as_json(obj)

    def param(wildcards: Any) -> JsonParam:
        return value

    return param


def param_json(snakemake: Any, name: str) -> Any:
    """A params entry that the rule passed as sorted JSON."""
    return json.loads(getattr(snakemake.params, name))


def as_paths(value: Any) -> list[str]:
    """A named input or output as a list of paths: Snakemake gives one path as a string and
    several (from ``expand``) as a list."""
    return [str(value)] if isinstance(value, str | os.PathLike) else [str(v) for v in value]
