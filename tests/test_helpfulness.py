"""Helpfulness: answer NLL (batched = one by one, answer tokens only, as training builds them),
the helpfulness table, MT-Bench prompts, rating parsing and judging, and the workflow's plan."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from backtrack.config import ConfigError, load_schema, validate_config
from backtrack.data import examples
from backtrack.helpfulness import mt_bench
from backtrack.helpfulness import nll as helpfulness
from backtrack.helpfulness.mt_bench import (
    answer_questions,
    conversation_ids,
    judge_answers,
    judge_ids,
    judge_prompt,
    load_questions,
    mt_bench_columns,
    parse_rating,
)
from backtrack.helpfulness.nll import (
    Bootstrap,
    answer_example,
    bootstrap_ratio,
    helpfulness_rows,
    reference_records,
    score_answers,
)
from backtrack.models.chat import prompt_ids, text_ids
from backtrack.settings import Decoding, ResetToken

ROOT = Path(__file__).resolve().parents[1]

REFS = [
    {"id": "a", "prompt": "Hi", "reference": "Hello there, how can I help you today?"},
    {"id": "b", "prompt": "Explain why the sea has tides, please.", "reference": "The moon."},
    {"id": "c", "prompt": "x", "reference": "A much longer answer that goes on. " * 4},
    {"id": "d", "prompt": "What is 2+2?", "reference": "4", "complete": False},
    {"id": "e", "prompt": "Say nothing.", "reference": ""},  # EOS only
]


def _loss_one_by_one(model, tok, ref, include_eos=True):
    """Independent reference: transformers' own causal-LM loss on one unpadded example."""
    ex = answer_example(
        tok, ref["prompt"], ref["reference"], include_eos=include_eos and ref.get("complete", True)
    )
    n = sum(lab != -100 for lab in ex["labels"][1:])
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ex["input_ids"]]), labels=torch.tensor([ex["labels"]]))
    return float(out.loss) * n, n


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("batch_size", [2, 5])
def test_nll_batched_equals_one_by_one(tiny, side, batch_size):
    model, tok, _ = tiny
    one = [score_answers(model, tok, [r], batch_size=1)[0] for r in REFS]
    batched = score_answers(model, tok, REFS, batch_size=batch_size, padding_side=side)
    assert [b["id"] for b in batched] == [r["id"] for r in REFS]  # input order kept
    for o, b, r in zip(one, batched, REFS, strict=True):
        assert b["n_tokens"] == o["n_tokens"]
        assert b["nll_per_token"] == pytest.approx(o["nll_per_token"], abs=1e-5)
        ref_sum, ref_n = _loss_one_by_one(model, tok, r)
        assert o["n_tokens"] == ref_n
        assert o["nll_sum"] == pytest.approx(ref_sum, rel=1e-5)
    # EOS scored only for complete answers; the empty answer is just its EOS.
    assert batched[3]["n_tokens"] == len(text_ids(tok, "4"))
    assert batched[4]["n_tokens"] == 1


def test_answer_example_is_the_sft_helpful_example(tiny):
    """Same chat template, system prompt, tokenisation and label mask as training."""
    _, tok, rid = tiny
    pool = [{"id": "p", "harmful": False, "prompt": "Name a colour.", "helpful": "Blue is nice."}]
    for system in (None, "You are kind."):
        (sft,), _ = examples.build_sft_examples(
            pool,
            tok,
            "backtrack",
            ResetToken("[RESET]", rid),
            examples.ExampleSettings(0.1, 1.0, 0, system=system, max_length=512),
        )
        ex = answer_example(tok, "Name a colour.", "Blue is nice.", system)
        assert ex["input_ids"] == sft["input_ids"] and ex["labels"] == sft["labels"]
    assert helpfulness.IGNORE == examples.IGNORE


def test_nll_is_over_answer_tokens_only(tiny):
    model, tok, rid = tiny
    p1, p2 = "Tell me about cats.", "Tell me about dogs."
    assert len(prompt_ids(tok, p1)) == len(prompt_ids(tok, p2))
    answer = "Cats are small and curious animals."
    e1, e2 = answer_example(tok, p1, answer), answer_example(tok, p2, answer)
    scored = [lab for lab in e1["labels"] if lab != -100]
    # A changed prompt token does not change which tokens are scored: the answer and EOS.
    assert scored == [lab for lab in e2["labels"] if lab != -100]
    assert scored == [*text_ids(tok, answer), tok.eos_token_id]
    assert rid not in scored  # no [RESET] in a reference
    s1, s2 = score_answers(
        model,
        tok,
        [
            {"id": "1", "prompt": p1, "reference": answer},
            {"id": "2", "prompt": p2, "reference": answer},
        ],
        batch_size=2,
    )
    assert s1["n_tokens"] == s2["n_tokens"] == len(scored)
    # A changed answer token changes the NLL (same prompt, same length).
    other = "Cats are small and sleepy animals."
    assert len(text_ids(tok, other)) == len(text_ids(tok, answer))
    (s3,) = score_answers(model, tok, [{"id": "3", "prompt": p1, "reference": other}], batch_size=1)
    assert s3["n_tokens"] == s1["n_tokens"] and abs(s3["nll_sum"] - s1["nll_sum"]) > 1e-3
    # Without EOS: one token fewer.
    ref = {"id": "4", "prompt": p1, "reference": answer}
    (s4,) = score_answers(model, tok, [ref], batch_size=1, include_eos=False)
    assert s4["n_tokens"] == len(scored) - 1


def test_reference_records():
    gens = [
        {"prompt_id": "b1", "prompt": "P", "visible": "ans", "truncated": True},
        {"prompt_id": "b2", "prompt": "Q", "visible": "done.", "truncated": False},
    ]
    assert reference_records("base_model", gens) == [
        {"id": "b1", "prompt": "P", "reference": "ans", "complete": False},
        {"id": "b2", "prompt": "Q", "reference": "done.", "complete": True},
    ]
    evals = [{"id": "o1", "prompt": "P", "reference": "R"}]
    assert reference_records("dataset", evals)[0]["reference"] == "R"
    with pytest.raises(ValueError, match=r"helpfulness\.references.*'o2'.*'reference'"):
        reference_records("dataset", [*evals, {"id": "o2", "prompt": "Q"}])


def test_bootstrap_interval():
    # Every answer has the same per-token NLL: the interval collapses onto it.
    lo, hi = bootstrap_ratio([2.0, 4.0, 6.0], [1, 2, 3], 200, 0.95, 0)
    assert lo == pytest.approx(2.0) and hi == pytest.approx(2.0)
    lo, hi = bootstrap_ratio([1.0, 5.0, 2.0, 8.0], [1, 1, 1, 1], 500, 0.95, 0)
    assert 1.0 <= lo < 4.0 < hi <= 8.0
    assert all(math.isnan(x) for x in bootstrap_ratio([], [], 10, 0.95, 0))


def _scores(per_token: list[float]) -> list[dict]:
    return [
        {"id": f"q{i}", "nll_sum": x * 2, "n_tokens": 2, "nll_per_token": x}
        for i, x in enumerate(per_token)
    ]


def test_table_rows_and_columns():
    grid = [("m", meth, 0, st) for meth in ("baseline", "backtrack") for st in ("sft", "dpo")]
    base = ("m", "base", 0, "base")
    scores = {base: _scores([1.0, 2.0, 3.0])}
    for i, key in enumerate(grid):
        scores[key] = _scores([1.0 + i, 2.0 + i, 3.0 + i])
    benign = {
        k: [{"refused": j < i, "reset": j == 0} for j in range(4)] for i, k in enumerate(grid)
    }
    extra = {k: {"mt_bench_score": 5.0} for k in scores}
    rows = helpfulness_rows(
        [base, *grid],
        scores,
        benign,
        references="base_model",
        judge="refusal",
        bootstrap=Bootstrap(n_boot=200, level=0.95, seed=0),
        extra=extra,
    )
    df = pd.DataFrame(rows)
    assert list(zip(df.method, df.seed, df.stage, strict=True)) == [
        base[1:],
        *[g[1:] for g in grid],
    ]
    for col in [
        "answer_nll",
        "answer_nll_ci_lo",
        "answer_nll_ci_hi",
        "answer_perplexity",
        "nll_vs_base",
        "nll_vs_base_ci_lo",
        "nll_vs_base_ci_hi",
        "n_answers",
        "n_tokens",
        "benign_refusal",
        "benign_refusal_ci_lo",
        "benign_refusal_ci_hi",
        "benign_reset_rate",
        "benign_n",
        "references",
        "judge",
        "mt_bench_score",
    ]:
        assert col in df.columns, col
    assert df.answer_nll.tolist() == pytest.approx([2.0, 2.0, 3.0, 4.0, 5.0])
    assert df.n_answers.tolist() == [3] * 5 and df.n_tokens.tolist() == [6] * 5
    # Every answer moved by the same amount: the paired difference has no spread.
    assert df.nll_vs_base.tolist()[1:] == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert df.nll_vs_base_ci_lo.tolist()[1:] == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert math.isnan(df.nll_vs_base[0]) and math.isnan(df.benign_refusal[0])
    assert df.benign_refusal.tolist()[1:] == [0.0, 0.25, 0.5, 0.75]
    assert df.benign_reset_rate.tolist()[1:] == [0.25] * 4
    assert ((df.answer_nll_ci_lo <= df.answer_nll) & (df.answer_nll <= df.answer_nll_ci_hi)).all()
    assert df.answer_perplexity[0] == pytest.approx(math.exp(2.0))


# --- MT-Bench -----------------------------------------------------------------------------------

Q = {"question_id": 81, "category": "writing", "turns": ["Q one?", "Q two?"]}
A = {"question_id": 81, "turns": ["A one.", "A two."]}


def test_judge_prompt_single_v1_is_fastchats():
    name, system, user = judge_prompt(Q, A, 1, None)
    assert name == "single-v1" and system == "You are a helpful assistant."
    assert user == (
        "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response "
        "provided by an AI assistant to the user question displayed below. Your evaluation should "
        "consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and "
        "level of detail of the response. Begin your evaluation by providing a short explanation. "
        "Be as objective as possible. After providing your explanation, you must rate the "
        'response on a scale of 1 to 10 by strictly following this format: "[[rating]]", for '
        'example: "Rating: [[5]]".\n\n[Question]\nQ one?\n\n[The Start of Assistant\'s Answer]\n'
        "A one.\n[The End of Assistant's Answer]"
    )


def test_judge_prompt_multi_turn_and_reference_variants():
    name, system, user = judge_prompt(Q, A, 2, None)
    assert name == "single-v1-multi-turn"
    assert system.startswith("Please act as an impartial judge") and system.endswith("\n\n")
    assert "focus on the assistant's answer to the second user question" in system
    assert user == (
        "<|The Start of Assistant A's Conversation with User|>\n\n### User:\nQ one?\n\n"
        "### Assistant A:\nA one.\n\n### User:\nQ two?\n\n### Assistant A:\nA two.\n\n"
        "<|The End of Assistant A's Conversation with User|>"
    )
    math_q = {**Q, "category": "math"}
    assert judge_prompt(math_q, A, 1, None)[0] == "single-v1"  # no reference: general prompt
    name, _, user = judge_prompt(math_q, A, 1, ["R one", "R two"])
    assert name == "single-math-v1" and "[The Start of Reference Answer]\nR one\n" in user
    name, _, user = judge_prompt(math_q, A, 2, ["R one", "R two"])
    assert name == "single-math-v1-multi-turn"
    assert "### Reference answer:\nR one" in user and "### Reference answer:\nR two" in user
    # Writing questions are never graded against a reference (FastChat's NEED_REF_CATS).
    assert judge_prompt(Q, A, 1, ["R one", "R two"])[0] == "single-v1"


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("The answer is fine. Rating: [[7]]", 7.0),
        ("Rating: [[8.5]]", 8.5),
        ("Rating: [[10]]", 10.0),
        ("I'd give it [6].", 6.0),  # FastChat's backup pattern
        ("[[3]] at first, then [[9]]", 3.0),  # the first match, as re.search
        ("Rating: 7/10", None),
        ("Rating: [[seven]]", None),
        ("Rating: [[11]]", None),  # out of 1-10: a parse failure (FastChat would keep it)
        ("Rating: [[0]]", None),
        ("", None),
    ],
)
def test_parse_rating(text, rating):
    assert parse_rating(text) == rating


def test_mt_bench_columns_count_failures():
    js = [
        {"question_id": 1, "turn": 1, "score": 8.0, "parse_error": False},
        {"question_id": 1, "turn": 2, "score": None, "parse_error": True},
        {"question_id": 2, "turn": 1, "score": 6.0, "parse_error": False},
        {"question_id": 2, "turn": 2, "score": 4.0, "parse_error": False},
    ]
    c = mt_bench_columns(js)
    assert c["mt_bench_turn1"] == 7.0 and c["mt_bench_turn2"] == 4.0
    assert c["mt_bench_score"] == pytest.approx(6.0)
    assert (c["mt_bench_questions"], c["mt_bench_judgments"]) == (2, 4)
    assert c["mt_bench_parse_failures"] == 1


def test_load_questions(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"question\.jsonl.*helpfulness\.mt_bench"):
        load_questions(tmp_path / "missing.jsonl")
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps(Q) + "\n" + json.dumps({**Q, "question_id": 82}) + "\n")
    assert [q["question_id"] for q in load_questions(f)] == [81, 82]
    assert len(load_questions(f, n=1)) == 1
    f.write_text(json.dumps({"question_id": 1, "turns": "not a list"}) + "\n")
    with pytest.raises(ValueError, match=r"q\.jsonl:1"):
        load_questions(f)


def test_turn_two_sees_the_visible_turn_one_answer(tiny, monkeypatch):
    """The history holds what the user saw: the text after the last [RESET]."""
    model, tok, rid = tiny
    seen = []

    def scripted(model, tok, rows, reset_id, *a, **kw):
        seen.append(rows)
        return [
            {
                "raw": "bad start[RESET]Visible one.",
                "visible": "Visible one.",
                "n_resets": 1,
                "tokens_generated": 5,
                "truncated": False,
            }
            for _ in rows
        ]

    monkeypatch.setattr(mt_bench, "_generate", scripted)
    (ans,) = answer_questions(model, tok, [Q], rid, Decoding(max_new_tokens=4, batch_size=1))
    assert ans["turns"] == ["Visible one.", "Visible one."] and ans["n_resets"] == [1, 1]
    assert seen[0] == [prompt_ids(tok, "Q one?")]  # turn 1 = training's prompt rendering
    assert seen[1] == [
        conversation_ids(
            tok,
            [
                {"role": "user", "content": "Q one?"},
                {"role": "assistant", "content": "Visible one."},
                {"role": "user", "content": "Q two?"},
            ],
            None,
        )
    ]


def test_scripted_judge_outputs_are_parsed_and_failures_counted(tiny, monkeypatch):
    _, tok, _ = tiny
    outputs = iter(["Good. Rating: [[8]]", "Rambling, no rating", "[[5]]", "Rating: [[12]]"])

    def scripted(model, tok, rows, reset_id, *a, **kw):
        return [{"visible": next(outputs)} for _ in rows]

    monkeypatch.setattr(mt_bench, "_generate", scripted)
    qs = [Q, {**Q, "question_id": 82}]
    answers = [A, {**A, "question_id": 82}]
    js = judge_answers(None, tok, qs, answers, max_new_tokens=8, batch_size=4)
    assert [(j["question_id"], j["turn"]) for j in js] == [(81, 1), (81, 2), (82, 1), (82, 2)]
    assert [j["score"] for j in js] == [8.0, None, 5.0, None]
    assert [j["judge_prompt"] for j in js] == ["single-v1", "single-v1-multi-turn"] * 2
    assert mt_bench_columns(js)["mt_bench_parse_failures"] == 2


def test_judge_template_without_system_role(tiny):
    _, tok, _ = tiny
    gemma_like = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    old = tok.chat_template
    tok.chat_template = gemma_like
    try:
        text = tok.decode(judge_ids(tok, "Judge well.", "Question"))
    finally:
        tok.chat_template = old
    assert text == "<user>[Instruction]\nJudge well.\n\nQuestion<assistant>"


def test_tiny_model_answers_and_judges(tiny, tiny_source_dir):
    """The whole MT-Bench path on CPU: the tiny random model answers and judges. Its ratings are
    noise, so what is checked is the bookkeeping: every turn judged, failures counted."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok, rid = tiny
    qs = [Q, {"question_id": 82, "category": "math", "turns": ["1+1?", "2+2?"]}]
    answers = answer_questions(model, tok, qs, rid, Decoding(max_new_tokens=6, batch_size=2))
    assert [len(a["turns"]) for a in answers] == [2, 2]
    assert all(n <= 6 for a in answers for n in a["tokens_generated"])
    jtok = AutoTokenizer.from_pretrained(tiny_source_dir)
    judge = AutoModelForCausalLM.from_pretrained(tiny_source_dir).eval()
    js = judge_answers(
        judge, jtok, qs, answers, max_new_tokens=8, batch_size=4, references={82: ["2", "4"]}
    )
    assert len(js) == 4
    assert [j["judge_prompt"] for j in js][2:] == ["single-math-v1", "single-math-v1-multi-turn"]
    cols = mt_bench_columns(js)
    assert cols["mt_bench_parse_failures"] == sum(j["score"] is None for j in js)
    assert cols["mt_bench_judgments"] == 4


# --- Config and the workflow's plan ---------------------------------------------------------------


def test_helpfulness_config_defaults_and_errors():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    del cfg["helpfulness"]
    validate_config(cfg)
    h = cfg["helpfulness"]
    assert h["references"] == "base_model" and h["mt_bench"]["enabled"] is False
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["helpfulness"]["references"] = "gpt4"
    with pytest.raises(ConfigError, match=r"helpfulness\.references"):
        validate_config(cfg)


def test_every_helpfulness_key_is_documented():
    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}.{key}"
            if sub.get("type") != "object" or "properties" not in sub:
                assert "default" in sub, f"{path}.{key}"
            walk(sub, f"{path}.{key}")

    walk(load_schema()["properties"]["helpfulness"], "helpfulness")


def _dry_run(tmp_path: Path, mutate=None, *targets: str) -> subprocess.CompletedProcess:
    cfg = yaml.safe_load((ROOT / "tests/config/test.yaml").read_text())
    cfg["models"]["tiny"]["source"]["path"] = str(tmp_path / "tiny-src")
    (tmp_path / "tiny-src").mkdir(exist_ok=True)  # the plan checks that the directory exists
    (tmp_path / "tiny-src" / "config.json").write_text("{}")
    if mutate:
        mutate(cfg)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [
        sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(tmp_path), "--workflow-profile", "none", "--cores", "2", *targets,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _jobs(out: str) -> dict[str, int]:
    from tests.test_workflow import planned_jobs

    return planned_jobs(out)


def test_dry_run_lists_the_helpfulness_jobs(tmp_path):
    proc = _dry_run(tmp_path, None, "results/helpfulness.csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _jobs(proc.stdout + proc.stderr)
    # 4 (method, stage) + the base model; generations and judgments of the benign set only.
    assert jobs["score_helpfulness"] == 5
    assert jobs["helpfulness_references"] == 1
    assert jobs["generate"] == 4 and jobs["judge"] == 4
    assert jobs["helpfulness_table"] == 1
    assert not {"mt_bench_answer", "mt_bench_judge", "attack", "table1"} & set(jobs)
    for p in ["results/helpfulness/tiny/base/seed0/base/answer_nll.jsonl", "benign.jsonl"]:
        assert p in proc.stdout


def test_dry_run_with_dataset_references_and_mt_bench(tmp_path):
    q = tmp_path / "questions.jsonl"
    q.write_text(json.dumps(Q) + "\n")

    def mutate(c):
        c["helpfulness"]["references"] = "dataset"
        c["helpfulness"]["mt_bench"] = {"enabled": True, "questions": str(q)}

    proc = _dry_run(tmp_path, mutate, "results/helpfulness.csv", "results/mt_bench.csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _jobs(proc.stdout + proc.stderr)
    assert "helpfulness_references" not in jobs
    assert jobs["mt_bench_answer"] == jobs["mt_bench_judge"] == jobs["score_helpfulness"] == 5
    assert jobs["mt_bench_table"] == 1 and jobs["helpfulness_table"] == 1


def test_mt_bench_errors_say_what_to_do(tmp_path):
    proc = _dry_run(tmp_path, None, "results/mt_bench.csv")
    assert proc.returncode != 0
    assert "helpfulness.mt_bench.enabled: true" in proc.stdout + proc.stderr

    def mutate(c):
        c["helpfulness"]["mt_bench"] = {"enabled": True, "questions": "nowhere/question.jsonl"}

    proc = _dry_run(tmp_path, mutate, "results/mt_bench.csv")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "helpfulness.mt_bench.questions" in out and "FastChat" in out


@pytest.mark.slow
def test_real_run_at_test_scale(tmp_path):
    """Both targets for real on the tiny model (one trained lane to keep it short; the tiny
    model is also the MT-Bench judge), then the rerun plans of helpfulness settings."""
    from tests.conftest import make_tiny_model_dir
    from tests.test_workflow import smk, write_config

    src = make_tiny_model_dir(tmp_path / "tiny-src")
    cfg = yaml.safe_load((ROOT / "tests/config/test.yaml").read_text())
    cfg["models"]["tiny"]["source"]["path"] = str(src)
    cfg["run"].update(methods=["backtrack"], stages=["sft"])
    q2 = {"question_id": 111, "category": "math", "turns": ["3*4?", "3*5?"]}
    q2["reference"] = ["12", "15"]
    (tmp_path / "q.jsonl").write_text(json.dumps(Q) + "\n" + json.dumps(q2) + "\n")
    cfg["helpfulness"]["mt_bench"] = {
        "enabled": True,
        "questions": "q.jsonl",
        "max_new_tokens": 6,
        "batch_size": 4,
        "judge": {"model": str(src), "max_new_tokens": 8, "batch_size": 4},
    }
    write_config(tmp_path, cfg)
    smk(tmp_path, "results/helpfulness.csv", "results/mt_bench.csv")

    df = pd.read_csv(tmp_path / "results/helpfulness.csv")
    assert list(zip(df.method, df.stage, strict=True)) == [("base", "base"), ("backtrack", "sft")]
    assert (df.n_answers == 4).all() and (df.n_tokens > 4).all()
    assert (df.answer_nll_ci_lo <= df.answer_nll).all()
    assert (df.answer_nll <= df.answer_nll_ci_hi).all()
    assert df.benign_n.tolist() == [0, 4] and math.isnan(df.benign_refusal[0])
    assert (df.mt_bench_judgments == 4).all()
    mt = pd.read_csv(tmp_path / "results/mt_bench.csv")
    judged = tmp_path / "results/mt_bench/tiny/backtrack/seed0/sft/judgments.jsonl"
    js = [json.loads(x) for x in judged.read_text().splitlines()]
    assert mt.mt_bench_parse_failures[1] == sum(j["score"] is None for j in js)
    assert [j["judge_prompt"] for j in js] == [
        "single-v1", "single-v1-multi-turn", "single-math-v1", "single-math-v1-multi-turn"
    ]  # fmt: skip

    def plan(mutate):
        changed = yaml.safe_load(yaml.safe_dump(cfg))
        mutate(changed)
        write_config(tmp_path, changed)
        try:
            return _jobs(smk(tmp_path, "-n", "results/helpfulness.csv", "results/mt_bench.csv"))
        finally:
            write_config(tmp_path, cfg)

    assert plan(lambda c: None) == {}
    assert plan(lambda c: c["helpfulness"].update(padding_side="right")) == {
        "score_helpfulness": 2,
        "helpfulness_table": 1,
    }
    judge_change = plan(lambda c: c["helpfulness"]["mt_bench"]["judge"].update(max_new_tokens=9))
    assert judge_change == {"mt_bench_judge": 2, "helpfulness_table": 1, "mt_bench_table": 1}
    # The deployed decoding reruns the MT-Bench answers (and Table 1's generations), not the NLL.
    decoding = plan(lambda c: c["generation"].update(reset_logit_bias=-2.0))
    assert decoding["mt_bench_answer"] == 2 and "score_helpfulness" not in decoding


def test_paper_config_plans_helpfulness_and_mt_bench(tmp_path):
    """Paper scale: dataset references (no reference generation), MT-Bench on, the judge's
    resources from resources.mt_bench_judge; the questions files are the user's to provide."""
    from tests.test_paper_config import jobs

    refs = tmp_path / "resources/mt_bench/reference_answer"
    refs.mkdir(parents=True)
    (tmp_path / "resources/mt_bench/question.jsonl").write_text(json.dumps(Q) + "\n")
    (refs / "gpt-4.jsonl").write_text("")
    cmd = [
        sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(tmp_path), "--workflow-profile", "none", "--cores", "2",
        "results/helpfulness.csv",
        "--configfile", str(ROOT / "config.yaml"), str(ROOT / "config/paper.yaml"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    j = jobs(proc.stdout + proc.stderr)
    # 2 models x (base + 4 trained)
    assert len(j["score_helpfulness"]) == len(j["mt_bench_answer"]) == 10
    assert "helpfulness_references" not in j
    for line in j["mt_bench_judge"]:
        assert "gpu=1" in line and "mem_mb=128000" in line, line
