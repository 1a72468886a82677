"""Every shell command printed in README.md and docs/*.md runs as typed.

Commands come from ```bash and bare ``` blocks (continuation lines joined, comments dropped,
``&&`` chains split) and from inline code that starts with a command. Each is checked without
building anything:

- ``snakemake ...``: the same arguments plus ``--dry-run``, in a scratch directory holding copies
  of the config files and profiles the commands name, so the plan starts from nothing;
- ``python tools/X.py ...`` and ``backtrack ...``: the arguments go through the tool's own
  parser (``parse_args`` returns, then the tool stops), so a missing option, a bad choice or a
  missing subcommand fails; file arguments must exist (or, for outputs, their folder);
- ``backtrack chat --model DIR``: DIR must also be a target the default workflow can build;
- everything else (installers, the test suite itself, SLURM, the vLLM venv) is in
  :data:`ALLOWED` with the reason; what such a command names (a script, a ``-m`` module) must
  still exist.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # about a minute: some 20 snakemake plans and tool imports

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
#: What the docs commands read from the workflow directory (copied into the scratch one).
WORKDIR_FILES = ["config.yaml", "config", "profiles"]
#: Placeholders in the docs and what stands for them here.
PLACEHOLDERS = {"<targets>": "results/table1.csv", "<run>": ".", "<rule>": "table1"}
#: Commands checked only for the files and modules they name, each with why it is not run.
ALLOWED = {
    "bash tools/setup.sh": "installs the environments (network, minutes); it made this one",
    "bash tools/test.sh": "the test suite this test is part of",
    ".ci/run": "CI's entry point: runs bash tools/setup.sh && bash tools/test.sh",
    "bash tools/gpu_wheels.sh": "downloads wheels from PyPI (network); "
    "tests/test_gpu_check.py checks what it saves",
    "bash tools/gpu_check.sh": "for a lent GPU machine; tests/test_gpu_check.py runs it on the CPU",
    "ruff format --check": "a step of tools/test.sh, which runs it",
    "bash tools/local_slurm.sh": "starts slurmctld and slurmd as root (tests/test_rehearsal.py)",
    "tools/local_slurm.sh": "starts slurmctld and slurmd as root (tests/test_rehearsal.py)",
    "export SLURM_CONF=": "sets the shell's environment for the SLURM example",
    "srun ": "a SLURM job step: needs a cluster",
    ".venv-vllm/bin/python -m backtrack.generate.job": (
        "the vLLM venv's job runner, started by the generate rule (tests/test_vllm_cpu.py)"
    ),
    "python -m accelerate.commands.launch": (
        "the launcher line the training rules build, shown with placeholders (tests/test_launch.py)"
    ),
}
#: ``python -m`` commands run as typed in the scratch directory (each cheap), with why.
RUN = {"backtrack.judge.fake_guard": "writes the tiny model config/rehearsal.yaml reads (seconds)"}
#: Inline code that names a command in prose rather than showing one to run.
MENTIONS = {"backtrack chat": "the demo's name; docs/running.md shows its full command lines"}
#: Inline code counts as a command when it starts with one of these (after ``.venv/bin/``).
COMMAND_START = re.compile(
    r"(\.venv[\w-]*/bin/)?(snakemake|python|backtrack|bash|srun|ruff)\s|tools/\S+\.(py|sh)\s|\.ci/run"
)
#: Where a snakemake run without outputs stops, for commands that read a finished run.
NEEDS_OUTPUTS = {"--report": "marked for report but does not exist"}


@dataclass(frozen=True)
class Command:
    """One command as printed, and where."""

    where: str
    text: str

    @property
    def argv(self) -> list[str]:
        return [PLACEHOLDERS.get(a, a) for a in shlex.split(self.text)]

    @property
    def kind(self) -> str:
        for prefix in ALLOWED:
            if self.text.startswith(prefix):
                return "allowed"
        program, *args = self.argv
        program = re.sub(r"^\.venv/bin/", "", program)
        if program == "snakemake":
            return "snakemake"
        if program == "backtrack" or re.fullmatch(r"tools/\w+\.py", program):
            return "parse"
        if program == "python" and args and args[0].startswith("tools/"):
            return "parse"
        if program == "python" and args[:1] == ["-m"] and len(args) > 1 and args[1] in RUN:
            return "run"
        return "unknown"


def _split_chain(text: str) -> list[str]:
    """``a && b`` and ``a; b`` as separate commands; a trailing comment dropped."""
    parts = shlex.shlex(text, posix=False, punctuation_chars="&;")
    parts.whitespace_split = True
    parts.commenters = "#"
    out: list[list[str]] = [[]]
    for token in parts:
        if token in ("&&", ";"):
            out.append([])
        else:
            out[-1].append(token)
    return [" ".join(p) for p in out if p]


def _code_block_commands(doc: Path, text: str) -> list[Command]:
    found = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S):
        if m.group(1) not in ("", "bash", "sh", "shell", "console"):
            continue
        line_no = text[: m.start(2)].count("\n") + 1
        pending, first = "", line_no
        for line in m.group(2).splitlines():
            if not pending:
                first = line_no
            line_no += 1
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            where = f"{doc.relative_to(ROOT)}:{first}"
            found += [Command(where, c) for c in _split_chain(pending + line)]
            pending = ""
    return found


def _inline_commands(doc: Path, text: str) -> list[Command]:
    blanked = re.sub(
        r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.M | re.S
    )
    found = []
    for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", blanked):
        span = " ".join(m.group(1).split())
        if COMMAND_START.match(span + " "):
            where = f"{doc.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}"
            commands = [c for c in _split_chain(span) if c not in MENTIONS]
            found += [Command(where, c) for c in commands if " " in c or c == ".ci/run"]
    return found


def doc_commands() -> list[Command]:
    """Every command in the docs, in order of appearance."""
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        out += _code_block_commands(doc, text) + _inline_commands(doc, text)
    return out


COMMANDS = doc_commands()


def by_kind(kind: str) -> list[Command]:
    return [c for c in COMMANDS if c.kind == kind]


def ids(commands: list[Command]) -> list[str]:
    return [f"{c.where} {c.text}"[:90] for c in commands]


def _unique(commands: list[Command]) -> dict[tuple[str, ...], list[Command]]:
    """Identical argument lists (with or without ``.venv/bin/``) are checked once."""
    out: dict[tuple[str, ...], list[Command]] = {}
    for c in commands:
        out.setdefault(tuple(c.argv[1:]), []).append(c)
    return out


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    """The environment for the commands: the suite's, whose ``scontrol`` stand-in (conftest)
    keeps each snakemake start from waiting on a cluster that is not there."""
    return dict(os.environ)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    """A workflow directory with the docs' config files and nothing built; the docs' own setup
    commands (``python -m ...``) run in it first, as a reader would run them."""
    work = tmp_path_factory.mktemp("docs-workdir")
    for name in WORKDIR_FILES:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    for c in by_kind("run"):
        proc = subprocess.run(
            [sys.executable, *c.argv[1:]],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, f"{c.where}: `{c.text}` failed:\n{proc.stderr[-3000:]}"
    return work


def snakemake_problem(args: list[str], workdir: Path, env: dict[str, str]) -> str | None:
    """Why ``snakemake ARGS`` does not plan in ``workdir``, or None."""
    proc = subprocess.run(
        [*SNAKEMAKE, *args, "--dry-run"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    if proc.returncode == 0:
        return None
    if any(opt in args and reason in out for opt, reason in NEEDS_OUTPUTS.items()):
        return None
    return out[-3000:]


SNAKEMAKE_RUNS = _unique(by_kind("snakemake"))


@pytest.mark.parametrize(
    "args", list(SNAKEMAKE_RUNS), ids=[" ".join(a)[:60] for a in SNAKEMAKE_RUNS]
)
def test_snakemake_commands_plan(args: tuple[str, ...], workdir: Path, env: dict[str, str]) -> None:
    problem = snakemake_problem(list(args), workdir, env)
    where = ", ".join(c.where for c in SNAKEMAKE_RUNS[args])
    assert problem is None, f"{where}: `snakemake {' '.join(args)}` does not plan:\n{problem}"


# Runs each command's tool up to its argument parsing, in one process (torch is imported once).
PARSE_RUNNER = """
import argparse, contextlib, io, json, runpy, sys

class Parsed(BaseException):
    pass

original = argparse.ArgumentParser.parse_args

def parse_args(self, args=None, namespace=None):
    raise Parsed(vars(original(self, args, namespace)))

argparse.ArgumentParser.parse_args = parse_args
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    sys.argv = list(argv)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            if argv[0] == "backtrack":
                from backtrack.cli import main
                main()
            else:
                runpy.run_path(argv[0], run_name="__main__")
        results.append({"error": "the tool finished without parsing its arguments"})
    except Parsed as parsed:
        results.append({"args": {k: str(v) for k, v in parsed.args[0].items()}})
    except SystemExit as e:
        results.append({"error": f"exit {e.code}: {err.getvalue()[-2000:]}"})
    except Exception as e:
        results.append({"error": repr(e)})
print("RESULTS " + json.dumps(results))
"""


def _shell_words(args: list[str]) -> tuple[list[str], list[str]]:
    """Expand globs as the shell would; return the words and the problems found: a glob that
    matches nothing, a file argument (a word with a slash) that is missing with its folder."""
    words, problems = [], []
    for a in args:
        if any(ch in a for ch in "*?["):
            matches = sorted(glob.glob(a, root_dir=ROOT))
            if not matches:
                problems.append(f"{a} matches no file")
            words += matches or [a]
            continue
        words.append(a)
        path = ROOT / a
        if "/" in a and not a.startswith(("-", "results/")) and not path.parent.is_dir():
            problems.append(f"{a}: neither it nor its folder exists")
    return words, problems


def parse_problems(commands: list[list[str]], env: dict[str, str]) -> list[str | None]:
    """For each ``[program, *args]`` (a tools/ script or ``backtrack``): why its arguments do
    not parse, or None."""
    prepared, problems = [], []
    for program, *args in commands:
        words, found = _shell_words(args)
        if program != "backtrack" and not (ROOT / program).is_file():
            found.append(f"{program} does not exist")
        prepared.append([program, *words])
        problems.append(found)
    proc = subprocess.run(
        [sys.executable, "-c", PARSE_RUNNER, json.dumps(prepared)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULTS ")]
    results = json.loads(line.removeprefix("RESULTS "))
    for found, result in zip(problems, results, strict=True):
        if "error" in result:
            found.append(result["error"])
    return ["; ".join(found) or None for found in problems]


def _parse_argv(c: Command) -> list[str]:
    """``[tools/X.py, *args]`` or ``[backtrack, *args]``."""
    program = re.sub(r"^\.venv/bin/", "", c.argv[0])
    if program == "python":
        return c.argv[1:]
    return [program, *c.argv[1:]]


PARSE_RUNS = {tuple(_parse_argv(c)): c for c in by_kind("parse")}
#: Broken commands the checks must catch (the test of the test), with what must be said.
BROKEN_PARSE = {
    ("tools/estimate_gpu_hours.py", "--no-such-option"): "unrecognized arguments",
    ("tools/judge_audit.py", "smaple"): "invalid choice: 'smaple'",
    ("tools/table2_markdown.py", "docs/none_*.csv"): "matches no file",
    ("tools/table2_markdown.py", "docs/no-such/x.csv"): "nor its folder exists",
    ("tools/no_such_tool.py",): "tools/no_such_tool.py does not exist",
    ("backtrack", "chat", "--model", "m", "--modle", "x"): "unrecognized arguments: --modle",
}
BROKEN_SNAKEMAKE = {
    ("--cores", "all", "--configfile", "config/no-such.yaml"): "config/no-such.yaml",
    ("--cores", "all", "results/tabel1.csv"): "No rule to produce results/tabel1.csv",
    ("--cores", "all", "--forcerun", "no_such_rule"): "No rule to produce no_such_rule",
    ("--corse", "all"): "unrecognized arguments: --corse",
}


@pytest.fixture(scope="module")
def parsed(env: dict[str, str]) -> dict[tuple[str, ...], str | None]:
    runs = [*map(list, PARSE_RUNS), *map(list, BROKEN_PARSE)]
    return dict(zip(map(tuple, runs), parse_problems(runs, env), strict=True))


@pytest.mark.parametrize("argv", list(PARSE_RUNS), ids=[" ".join(a)[:60] for a in PARSE_RUNS])
def test_tool_and_cli_commands_parse(
    argv: tuple[str, ...], parsed: dict[tuple[str, ...], str | None]
) -> None:
    c = PARSE_RUNS[argv]
    assert parsed[argv] is None, f"{c.where}: `{c.text}`: {parsed[argv]}"


def test_checkpoints_the_docs_chat_with_are_workflow_targets(
    workdir: Path, env: dict[str, str]
) -> None:
    """The checkpoint a documented ``--model`` names (the chat demo's) is a target the default
    workflow builds."""
    targets = sorted(
        {argv[i + 1] for argv in PARSE_RUNS for i, a in enumerate(argv) if a == "--model"}
    )
    assert targets, "no documented command names a --model: is the chat demo gone?"
    assert snakemake_problem(["--cores", "1", *targets], workdir, env) is None


@pytest.mark.parametrize("c", by_kind("allowed"), ids=ids(by_kind("allowed")))
def test_allowed_commands_name_what_exists(c: Command) -> None:
    """Commands that are not run still name an existing script and module."""
    argv = c.argv
    for i, word in enumerate(argv):
        if re.fullmatch(r"(tools|\.ci)/[\w.]+", word):
            assert (ROOT / word).is_file(), f"{c.where}: `{c.text}`: {word} does not exist"
        if word == "-m":
            module = argv[i + 1]
            assert importlib.util.find_spec(module), f"{c.where}: no module {module}"


def test_every_documented_command_is_checked() -> None:
    """Each command is dry-run, parsed, run, or allowed with a reason; none slips through."""
    unknown = [f"{c.where}: {c.text}" for c in by_kind("unknown")]
    assert not unknown, "unchecked commands (make them runnable or add them to ALLOWED):\n" + (
        "\n".join(unknown)
    )
    texts = {c.text for c in COMMANDS}
    assert ".venv/bin/snakemake --cores all results/table1.csv" in texts
    assert len(SNAKEMAKE_RUNS) >= 10 and len(PARSE_RUNS) >= 10


def test_the_checks_catch_broken_commands(
    workdir: Path, env: dict[str, str], parsed: dict[tuple[str, ...], str | None]
) -> None:
    """A missing config file, target, rule or option, tool, subcommand or file is caught."""
    for argv, said in BROKEN_PARSE.items():
        assert said in (parsed[argv] or ""), (argv, parsed[argv])
    for args, said in BROKEN_SNAKEMAKE.items():
        assert said in (snakemake_problem(list(args), workdir, env) or ""), args
