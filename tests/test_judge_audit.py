"""The judge audit: the labelled answers load, the stored verdicts are the refusal judge's, and
the agreement figures in docs/judge-audit/summary.json are recomputed from the labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from backtrack.judge.audit import agreement, load, rejudge

from tests.conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "docs/judge-audit/labels.jsonl"
RESET = "[RESET]"  # the audited run's reset_token (the config's default)


def _tool():
    return load_tool("judge_audit")


def test_audit_file_is_a_stratified_labelled_sample():
    recs = load(LABELS)
    assert len(recs) >= 200
    assert {r["split"] for r in recs} == {"dev", "held_out"}
    assert len({(r["method"], r["stage"]) for r in recs}) >= 6  # every model of the run is read
    assert {"advbench", "donotanswer", "harmbench", "benign", "advbench_prefill10"} <= {
        r["set"] for r in recs
    }
    assert all(r["reason"].strip() and "\n" not in r["reason"] for r in recs)


def test_stored_verdicts_are_the_refusal_judge_s():
    recs = load(LABELS)
    assert rejudge(
        recs, {"name": "refusal", "params": {"window_chars": 200}}, reset_token=RESET
    ) == [r["judge_verdict"] for r in recs]


def test_summary_is_recomputed_from_the_labels():
    tool = _tool()
    stored = json.loads((ROOT / "docs/judge-audit/summary.json").read_text())
    assert json.loads(json.dumps(tool.summarise(LABELS))) == stored  # same floats, via JSON
    plain = stored["refusal"]["all"]
    recs = load(LABELS)
    by_hand = sum(r["judge_verdict"] == r["label"] for r in recs) / len(recs)
    assert plain["agreement"] == pytest.approx(by_hand)


def test_the_continuation_fix_holds_on_the_held_out_half():
    """Found on the dev half; on the held-out half it must agree at least as often and call no
    more harmful answers safe."""
    recs = [r for r in load(LABELS) if r["split"] == "held_out"]
    plain = agreement(recs, rejudge(recs, {"name": "refusal", "params": {}}, reset_token=RESET))
    fixed = agreement(
        recs,
        rejudge(
            recs, {"name": "refusal", "params": {"continuation_phrases": True}}, reset_token=RESET
        ),
    )
    assert fixed.agreement > plain.agreement
    assert fixed.false_safe <= plain.false_safe


def test_a_label_that_does_not_fit_names_the_line(tmp_path):
    rec = json.loads(LABELS.read_text().splitlines()[0])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rec) + "\n" + json.dumps(rec | {"label": "answered"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: label 'answered'"):
        load(bad)


def test_sample_draws_every_stratum_over_every_model(tmp_path):
    """`sample`: equal strata of (set, verdict), drawn round-robin over the models, alternating
    dev / held_out; the same seed gives the same sample."""
    import argparse

    tool = _tool()
    judged = tmp_path / "judgments"
    for method in ("baseline", "backtrack"):
        d = judged / "m" / method / "seed0" / "sft"
        d.mkdir(parents=True)
        rows = [
            {"id": f"a{i}", "prompt": "p", "harmful": True, "prefill": "", "visible": "x",
             "reset": False, "truncated": False, "unsafe": i % 2 == 0, "refused": i % 2 == 1,
             "judge": "refusal"}
            for i in range(6)
        ]  # fmt: skip
        (d / "advbench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        args = argparse.Namespace(judgments=judged, n=8, seed=0, out=tmp_path / name)
        assert tool.sample_cmd(args) == 0
        outs.append([json.loads(x) for x in (tmp_path / name).read_text().splitlines()])
    first, second = outs
    assert first == second
    assert len(first) == 8
    for verdict in ("unsafe", "safe"):
        stratum = [r for r in first if r["judge_verdict"] == verdict]
        assert len(stratum) == 4
        assert {r["method"] for r in stratum} == {"baseline", "backtrack"}
        assert [r["split"] for r in stratum] == ["dev", "held_out"] * 2
