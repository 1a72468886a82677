"""Answers are checked against the prompt set they answer: truncated, empty, foreign and
repeated records stop the stage with the file, the line and the ids named."""

from __future__ import annotations

import pytest
from backtrack.checks import IncompleteError, expected_ids, read_answers
from backtrack.io import write_jsonl

PROMPTS = [{"id": f"advbench-{i}", "prompt": f"p{i}"} for i in range(4)]


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "advbench.jsonl"
    write_jsonl(path, PROMPTS)
    return path


def answers(tmp_path, ids, name="gen.jsonl"):
    path = tmp_path / name
    write_jsonl(path, [{"id": i, "visible": "x"} for i in ids])
    return path


def test_complete_answers_in_any_order_pass(tmp_path, prompts):
    ids = [p["id"] for p in reversed(PROMPTS)]
    assert [r["id"] for r in read_answers(answers(tmp_path, ids), prompts)] == ids


def test_file_cut_at_a_line_boundary_names_the_missing_ids(tmp_path, prompts):
    path = answers(tmp_path, ["advbench-0", "advbench-1"])
    with pytest.raises(IncompleteError) as e:
        read_answers(path, prompts)
    msg = str(e.value)
    assert str(path) in msg and str(prompts) in msg
    assert "2 record(s) for the 4 answers expected" in msg
    assert "2 answer(s) missing: advbench-2, advbench-3" in msg


def test_empty_file_is_incomplete(tmp_path, prompts):
    (tmp_path / "gen.jsonl").write_text("")
    with pytest.raises(IncompleteError, match="0 record"):
        read_answers(tmp_path / "gen.jsonl", prompts)


def test_foreign_and_repeated_records_are_named_with_their_line(tmp_path, prompts):
    ids = [p["id"] for p in PROMPTS] + ["harmbench-7", "advbench-1"]
    with pytest.raises(IncompleteError) as e:
        read_answers(answers(tmp_path, ids), prompts)
    assert "harmbench-7 (line 5)" in str(e.value)
    assert "advbench-1 (2 times)" in str(e.value)


def test_samples_and_limit(tmp_path, prompts):
    want = ["advbench-0#0", "advbench-0#1", "advbench-1#0", "advbench-1#1"]
    assert expected_ids(PROMPTS, samples=2, limit=2) == want
    assert len(read_answers(answers(tmp_path, want), prompts, samples=2, limit=2)) == 4
    with pytest.raises(IncompleteError, match="advbench-1#1"):
        read_answers(answers(tmp_path, want[:3]), prompts, samples=2, limit=2)


def test_a_record_missing_a_field_is_named(tmp_path, prompts):
    path = answers(tmp_path, [p["id"] for p in PROMPTS])
    with pytest.raises(
        ValueError, match=r"gen\.jsonl:1: record 'advbench-0' lacks field\(s\) reset"
    ):
        read_answers(path, prompts, required=("id", "visible", "reset"))
