"""Answers are checked against the prompt set they answer: truncated, empty, foreign and
repeated records stop the stage with the file, the line and the ids named, and so do answers
made from another version of a prompt (an edited set whose file time was kept)."""

from __future__ import annotations

import json
import os

import pytest
from backtrack.checks import (
    IncompleteError,
    StaleAnswersError,
    expected_ids,
    made_from,
    read_answers,
)
from backtrack.io import write_jsonl

PROMPTS = [{"id": f"advbench-{i}", "prompt": f"p{i}"} for i in range(4)]
TEXT = {p["id"]: p["prompt"] for p in PROMPTS}


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "advbench.jsonl"
    write_jsonl(path, PROMPTS)
    return path


def answers(tmp_path, ids, name="gen.jsonl"):
    path = tmp_path / name
    # As generation records: the prompt copied from the set, no prefill.
    recs = [{"id": i, "prompt": TEXT.get(i.split("#")[0], "?"), "prefill": "", "visible": "x"}
            for i in ids]  # fmt: skip
    write_jsonl(path, recs)
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


def layout(tmp_path, prompts, answers, *, prompt_file="data/eval/advbench.jsonl",
           answer_file="judgments/tiny/backtrack/seed0/dpo/advbench.jsonl"):  # fmt: skip
    """A prompt set and a file of answers where the workflow keeps them, under results/."""
    pp, ap = tmp_path / "results" / prompt_file, tmp_path / "results" / answer_file
    write_jsonl(pp, prompts)
    write_jsonl(ap, answers)
    return pp, ap


def edit_in_place(path, old, new):
    """Change a text in a file and keep its modification time, as a careless edit or a copy
    with preserved times does: Snakemake sees nothing."""
    st = path.stat()
    path.write_text(path.read_text().replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_an_edited_prompt_names_both_files_the_record_and_what_to_delete(tmp_path):
    gens = [{"id": p["id"], "prompt": p["prompt"], "prefill": ""} for p in PROMPTS]
    prompts, judged = layout(tmp_path, PROMPTS, gens)
    assert len(read_answers(judged, prompts)) == 4
    edit_in_place(prompts, '"p2"', '"p2, edited"')
    with pytest.raises(StaleAnswersError) as e:
        read_answers(judged, prompts)
    msg = str(e.value)
    assert f"{judged}: 1 record(s) answer another version of {prompts}" in msg
    assert "advbench-2 (line 3: prompt) has prompt 'p2' where the set has 'p2, edited'" in msg
    generations = tmp_path / "results/generations/tiny/backtrack/seed0/dpo/advbench.jsonl"
    assert f"rm -r {judged} {generations}" in msg
    assert "snakemake --forcerun generate <targets>" in msg
    assert f"If {prompts} was not meant to change, delete it instead" in msg


def test_an_edited_prefill_or_a_missing_prompt_is_stale(tmp_path):
    prefilled = [p | {"prefill": f"Sure {i}"} for i, p in enumerate(PROMPTS)]
    gens = [dict(p) for p in prefilled]
    gens[1]["prefill"] = "Sure, old"
    del gens[3]["prompt"]
    prompts, answers = layout(
        tmp_path, prefilled, gens, prompt_file="data/prefill/tiny/advbench_prefill2.jsonl",
        answer_file="generations/tiny/base/seed0/base/advbench_prefill2.jsonl",
    )  # fmt: skip
    with pytest.raises(StaleAnswersError) as e:
        read_answers(answers, prompts)
    msg = str(e.value)
    assert "2 record(s) answer another version" in msg
    assert "advbench-1 (line 2: prefill) has prefill 'Sure, old' where the set has 'Sure 1'" in msg
    assert "advbench-3 (line 4: prompt)" in msg
    assert f"rm -r {answers} (to remake every such file at once: snakemake --forcerun " in msg
    assert "--forcerun generate_prefilled <targets>, or generate_prefill_attack" in msg


def test_each_sample_is_checked_against_its_prompt(tmp_path):
    ids = expected_ids(PROMPTS, samples=2, limit=2)
    gens = [{"id": i, "prompt": TEXT[i.split("#")[0]]} for i in ids]
    gens[3]["prompt"] = "p1 as it was"
    prompts, answers = layout(
        tmp_path, PROMPTS, gens,
        answer_file="sweeps/worst_of_k/judgments/tiny/backtrack/seed0/dpo/advbench.jsonl",
    )  # fmt: skip
    with pytest.raises(StaleAnswersError, match=r"advbench-1#1 \(line 4: prompt\)") as e:
        read_answers(answers, prompts, samples=2, limit=2)
    assert "sweeps/worst_of_k/generations/tiny/backtrack/seed0/dpo/advbench.jsonl" in str(e.value)
    assert "--forcerun generate_sweep" in str(e.value)


def test_an_attack_judgment_traces_back_to_its_transcript_and_shards(tmp_path):
    targets = [p | {"target": f"Sure, here is {p['prompt']}"} for p in PROMPTS]
    lines = [t | {"attack_prompt": t["prompt"] + " !!"} for t in targets]
    lines[0]["target"] = "Sure, an old target"
    prompts, judged = layout(
        tmp_path, targets, lines, prompt_file="data/attacks/targets.jsonl",
        answer_file="judgments/tiny/baseline/seed0/sft/attacks/gcg.jsonl",
    )  # fmt: skip
    transcript = tmp_path / "results/attacks/tiny/baseline/seed0/sft/gcg.jsonl"
    (transcript.parent / "gcg").mkdir(parents=True)
    assert made_from(judged) == [judged, transcript, transcript.parent / "gcg"]
    with pytest.raises(StaleAnswersError) as e:
        read_answers(judged, prompts)
    assert "advbench-0 (line 1: target)" in str(e.value)
    assert f"rm -r {judged} {transcript} {transcript.parent / 'gcg'}" in str(e.value)
    assert "--forcerun attack attack_shard" in str(e.value)


def test_answers_of_a_set_without_prefill_or_target_pass(tmp_path, prompts):
    # Generation records carry an empty prefill and extra fields; only the set's fields count.
    recs = [{"id": p["id"], "prompt": p["prompt"], "prefill": "", "target": 1} for p in PROMPTS]
    path = tmp_path / "gen.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert len(read_answers(path, prompts)) == 4
