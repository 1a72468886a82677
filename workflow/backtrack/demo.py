"""The live demo's documented commands, run for real: a transcript the docs can quote.

Each command is ``backtrack chat --model DIR --prompt ... [--prefill ...]`` with the settings of
config key ``demo``, run through :func:`backtrack.cli.main` itself (not a copy of its logic), its
screen captured as a file would receive it: no terminal, so each retraction is the plain
``[retracted N tokens]`` line and the text before it stays visible, as in a log.
"""

from __future__ import annotations

import contextlib
import io
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from backtrack.cli import main as cli_main


def demo_commands(
    model_dir: str,
    settings: Mapping[str, Any],
    *,
    precision: str = "fp32",
    system: str | None = None,
    max_resets: int | None = 1,
) -> list[list[str]]:
    """The argv of each demo command (without the program name), in config order: config key
    ``demo``'s prompts and settings, with the run's precision policy, system prompt and reset
    cap (``None``: no cap), so the demo decodes as the run's generations do."""
    out = []
    for item in settings["prompts"]:
        argv = ["chat", "--model", model_dir, "--prompt", item["prompt"]]
        if item.get("prefill"):
            argv += ["--prefill", item["prefill"]]
        if system:
            argv += ["--system", system]
        argv += ["--reset-bias", str(settings["reset_bias"])]
        argv += ["--max-resets", str(-1 if max_resets is None else max_resets)]
        argv += ["--max-new-tokens", str(settings["max_new_tokens"])]
        argv += ["--precision", precision]
        out.append(argv)
    return out


def transcript(commands: Sequence[Sequence[str]]) -> str:
    """Run each command and return ``$ backtrack ...`` followed by what it printed (stdout, then
    stderr: the hint after a reset), per command.

    A command that fails (exit code other than 0) raises with what it wrote to stderr.
    """
    parts = []
    for argv in commands:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(list(argv))
        if code != 0:
            raise RuntimeError(f"backtrack {shlex.join(argv)} exited {code}: {err.getvalue()}")
        # What the user also sees on the terminal: the hint after a reset goes to stderr.
        parts.append(f"$ backtrack {shlex.join(argv)}\n{out.getvalue()}{err.getvalue()}")
    return "\n".join(parts)
