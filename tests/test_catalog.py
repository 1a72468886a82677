"""The catalog that config validation reads names every source and judge the stages implement."""

from __future__ import annotations

import inspect

from backtrack import catalog
from backtrack.data import hub, sources
from backtrack.judge.refusal import RefusalJudge
from backtrack.judge.registry import JUDGES


def test_offline_sources_are_the_loaders():
    assert set(catalog.OFFLINE_SOURCES) == set(sources.HARMFUL_SOURCES)


def test_hub_sources_have_loaders():
    names = set(catalog.HUB_SOURCES) | set(catalog.BENIGN_SOURCES) - {catalog.BENIGN_BUILTIN}
    assert names <= set(hub.HUB_SOURCES)


def test_every_judge_in_the_catalog_is_registered():
    assert set(catalog.JUDGE_PARAMS) == set(JUDGES)
    assert set(catalog.JUDGE_PARAMS["refusal"]) <= set(inspect.signature(RefusalJudge).parameters)


def test_validation_imports_no_stage():
    """config.py is imported when the graph is planned: it must not pull in stage code."""
    import ast
    from pathlib import Path

    import backtrack.config as config

    tree = ast.parse(Path(config.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    stages = ("data", "judge", "models", "train", "generate", "attacks", "sweeps", "report")
    assert not {m for m in imported if m.split(".")[1:2] and m.split(".")[1] in stages}
