"""What a config may name: the data sources and the judges with their options.

Plain names only, no loaders: config validation (:mod:`backtrack.config`) checks a config
against this catalog without importing any stage, and the stages that implement the names
(:mod:`backtrack.data.sets`, :mod:`backtrack.data.sources`, :mod:`backtrack.judge.registry`)
import them from here; the tests check that each name has its implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Harmful prompt sets read from PyPI packages (no network).
OFFLINE_SOURCES: tuple[str, ...] = ("advbench", "harmbench", "donotanswer")
#: Harmful prompt sets on the hub -> the ``hub`` keys their loader takes.
HUB_SOURCES: dict[str, tuple[str, ...]] = {
    "advbench": ("path", "split", "revision"),
    "malicious_instructions": ("path", "name", "split", "revision"),
    "simple_safety_tests": ("path", "split", "revision"),
    "strongreject": ("path", "split", "revision"),
    "hh_harmless": ("path", "data_dir", "split", "revision"),
}
#: Harmful sources whose records carry responses: source -> (safe field, unsafe field).
RESPONSE_FIELDS: dict[str, tuple[str, str]] = {"hh_harmless": ("chosen", "rejected")}
#: Sources whose records are dialogues (``messages`` = the turns before the final reply).
MULTI_TURN_SOURCES: tuple[str, ...] = ("hh_harmless",)

#: Benign sources: the project's own prompts (offline) or OASST2 (with best-ranked replies).
BENIGN_BUILTIN = "builtin"
BENIGN_SOURCES: dict[str, tuple[str, ...]] = {
    BENIGN_BUILTIN: (),
    "oasst2": ("path", "split", "heldout_split", "revision"),
}
#: Benign sources whose records carry a reply (``response`` in training records).
BENIGN_WITH_RESPONSES: tuple[str, ...] = ("oasst2",)


def uses_hub(spec: Mapping[str, Any]) -> bool:
    """A harmful spec is loaded from the hub if it has a ``hub`` block (null = none) or no
    offline source."""
    return spec.get("hub") is not None or spec["source"] not in OFFLINE_SOURCES


def benign_source(spec: Mapping[str, Any]) -> str:
    return spec.get("source", BENIGN_BUILTIN)


def has_responses(spec: Mapping[str, Any]) -> bool:
    """Whether a harmful spec's records carry the dataset's own safe/unsafe responses."""
    return uses_hub(spec) and spec["source"] in RESPONSE_FIELDS


#: The options each judge takes (checked against the constructors by the tests).
JUDGE_PARAMS: dict[str, tuple[str, ...]] = {
    "refusal": ("window_chars", "extra_patterns", "continuation_phrases"),
    "llama_guard": (
        "model",
        "backend",
        "dtype",
        "batch_size",
        "max_response_tokens",
        "threshold",
        "max_new_tokens",
        "device",
    ),
}
