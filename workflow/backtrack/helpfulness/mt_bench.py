"""MT-Bench (Zheng et al., 2023) with a local judge model: the paper-scale helpfulness measure.

Questions come from a local file in FastChat's ``question.jsonl`` schema (``question_id``,
``category``, ``turns``: two user messages, optional ``reference``); the 80 MT-Bench questions
are not shipped offline. Each model answers both turns; the conversation history of turn 2 holds
the *visible* turn-1 answer (the text after the last ``[RESET]``, what a user saw), and each
turn's answer is again the text after its last ``[RESET]``.

Grading is FastChat's single-answer grading (``fastchat/llm_judge/data/judge_prompts.jsonl``,
prompts ``single-v1`` and ``single-v1-multi-turn``; ``single-math-v1`` and
``single-math-v1-multi-turn`` for math/reasoning/coding questions that have reference answers),
by a configurable local judge model (transformers) instead of GPT-4, greedy. Ratings are parsed
with FastChat's patterns (``[[x]]``, then ``[x]``). Differences, on purpose: a rating outside
1-10 or no rating at all counts as a parse failure and is left out of the means (FastChat stores
-1 and its ``show_result.py`` drops those too), and failures are counted in the table.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backtrack.settings import Decoding

if TYPE_CHECKING:  # torch and transformers load lazily: the table job runs without them
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# FastChat's judge prompts (judge_prompts.jsonl), verbatim.
_RATE = (
    "After providing your explanation, you must rate the response on a scale of 1 to 10 by "
    'strictly following this format: "[[rating]]", for example: "Rating: [[5]]".'
)
JUDGE_PROMPTS: dict[str, dict[str, str]] = {
    "single-v1": {
        "system_prompt": "You are a helpful assistant.",
        "prompt_template": (
            "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the "
            "response provided by an AI assistant to the user question displayed below. Your "
            "evaluation should consider factors such as the helpfulness, relevance, accuracy, "
            "depth, creativity, and level of detail of the response. Begin your evaluation by "
            "providing a short explanation. Be as objective as possible. " + _RATE + "\n\n"
            "[Question]\n{question}\n\n[The Start of Assistant's Answer]\n{answer}\n"
            "[The End of Assistant's Answer]"
        ),
    },
    "single-math-v1": {
        "system_prompt": "You are a helpful assistant.",
        "prompt_template": (
            "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the "
            "response provided by an AI assistant to the user question displayed below. Your "
            "evaluation should consider correctness and helpfulness. You will be given a "
            "reference answer and the assistant's answer. Begin your evaluation by comparing the "
            "assistant's answer with the reference answer. Identify and correct any mistakes. "
            "Be as objective as possible. " + _RATE + "\n\n"
            "[Question]\n{question}\n\n[The Start of Reference Answer]\n{ref_answer_1}\n"
            "[The End of Reference Answer]\n\n[The Start of Assistant's Answer]\n{answer}\n"
            "[The End of Assistant's Answer]"
        ),
    },
    "single-v1-multi-turn": {
        "system_prompt": (
            "Please act as an impartial judge and evaluate the quality of the response provided "
            "by an AI assistant to the user question displayed below. Your evaluation should "
            "consider factors such as the helpfulness, relevance, accuracy, depth, creativity, "
            "and level of detail of the response. You evaluation should focus on the assistant's "
            "answer to the second user question. Begin your evaluation by providing a short "
            "explanation. Be as objective as possible. " + _RATE + "\n\n"
        ),
        "prompt_template": (
            "<|The Start of Assistant A's Conversation with User|>\n\n### User:\n{question_1}"
            "\n\n### Assistant A:\n{answer_1}\n\n### User:\n{question_2}\n\n### Assistant A:\n"
            "{answer_2}\n\n<|The End of Assistant A's Conversation with User|>"
        ),
    },
    "single-math-v1-multi-turn": {
        "system_prompt": (
            "Please act as an impartial judge and evaluate the quality of the response provided "
            "by an AI assistant to the user question. Your evaluation should consider correctness "
            "and helpfulness. You will be given a reference answer and the assistant's answer. "
            "You evaluation should focus on the assistant's answer to the second question. Begin "
            "your evaluation by comparing the assistant's answer with the reference answer. "
            "Identify and correct any mistakes. Be as objective as possible. " + _RATE + "\n\n"
        ),
        "prompt_template": (
            "<|The Start of Reference Answer|>\n\n### User:\n{question_1}\n\n### Reference "
            "answer:\n{ref_answer_1}\n\n### User:\n{question_2}\n\n### Reference answer:\n"
            "{ref_answer_2}\n\n<|The End of Reference Answer|>\n\n\n<|The Start of Assistant A's "
            "Conversation with User|>\n\n### User:\n{question_1}\n\n### Assistant A:\n"
            "{answer_1}\n\n### User:\n{question_2}\n\n### Assistant A:\n{answer_2}\n\n"
            "<|The End of Assistant A's Conversation with User|>"
        ),
    },
}
#: Categories FastChat grades against a reference answer (common.NEED_REF_CATS).
NEED_REF_CATS = ("math", "reasoning", "coding")
_ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")

MISSING_QUESTIONS = (
    "MT-Bench questions not found at {path}. They are not shipped offline: download FastChat's "
    "fastchat/llm_judge/data/mt_bench/question.jsonl (https://github.com/lm-sys/FastChat) and "
    "set helpfulness.mt_bench.questions to its path (or write your own file in that schema: one "
    'JSON object a line with "question_id", "category" and "turns", a list of user messages), '
    "or set helpfulness.mt_bench.enabled: false."
)


def load_questions(path: str | Path, n: int | None = None) -> list[dict[str, Any]]:
    """Questions from a FastChat ``question.jsonl`` (first ``n``; every turn kept)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(MISSING_QUESTIONS.format(path=path))
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        q = json.loads(line)
        turns = q.get("turns")
        if (
            "question_id" not in q
            or not isinstance(turns, list)
            or not turns
            or not all(isinstance(t, str) for t in turns)
        ):
            raise ValueError(
                f"{path}:{lineno}: not a FastChat MT-Bench question (needs 'question_id' and "
                "'turns', a non-empty list of strings)"
            )
        out.append({**q, "category": q.get("category", "general")})
    return out[:n] if n else out


def load_reference_answers(path: str | Path | None) -> dict[Any, list[str]]:
    """FastChat's ``reference_answer/<model>.jsonl``: question_id -> reference turns."""
    if not path:
        return {}
    refs = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            refs[r["question_id"]] = r["choices"][0]["turns"]
    return refs


def conversation_ids(
    tok: PreTrainedTokenizerBase, messages: list[dict[str, str]], system: str | None
) -> list[int]:
    """Chat-template ids of a conversation up to the next assistant header (as training)."""
    msgs = ([{"role": "system", "content": system}] if system else []) + messages
    text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False).input_ids


def _generate(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    rows: list[list[int]],
    reset_id: int | None,
    decoding: Decoding,
    desc: str,
) -> list[dict[str, Any]]:
    """Batched generation of id rows; per row the raw text, visible text and resets.

    :func:`backtrack.generate.hf.decode`, the loop of ``generate_records`` (continuous batching, the
    ``sequence_bias`` on ``[RESET]``, the reset cap), then the id-level split, for prompts that
    are whole conversations. ``reset_id=None`` is a model without ``[RESET]`` (the judge): no
    bias and no cap.
    """
    from backtrack.generate.hf import decode, decoding_config, split_generation

    rid = reset_id if reset_id is not None else -1
    if reset_id is None:
        decoding = decoding.with_(reset_logit_bias=0.0)
    decoded = decode(
        model,
        tok,
        rows,
        reset_id,
        decoding_config(tok, rid, decoding),
        max_resets=decoding.max_resets,
        batch_size=decoding.batch_size,
        desc=desc,
    )
    out = []
    for d in decoded:
        s = split_generation(d.new_ids, rid, [tok.eos_token_id])
        out.append(
            {
                "raw": tok.decode(s.generated, skip_special_tokens=False),
                "visible": tok.decode(s.visible, skip_special_tokens=True),
                "n_resets": len(s.reset_positions),
                "tokens_generated": len(s.generated),
                "truncated": not s.ended and len(s.generated) >= decoding.max_new_tokens,
            }
        )
    return out


def answer_questions(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    questions: list[dict[str, Any]],
    reset_id: int,
    decoding: Decoding,
) -> list[dict[str, Any]]:
    """Answer every turn of every question, turn by turn (turn k sees the visible answers of
    turns before it), with the deployed ``decoding`` (its system prompt and seed included).
    One record per question: ``turns`` (visible answers, FastChat's ``choices[0].turns``) and
    per-turn ``raw``, ``n_resets``, ``tokens_generated``, ``truncated``.
    """
    import torch

    torch.manual_seed(decoding.seed)
    history: list[list[dict[str, str]]] = [[] for _ in questions]
    details: list[list[dict[str, Any]]] = [[] for _ in questions]
    for t in range(max(len(q["turns"]) for q in questions)):
        live = [i for i, q in enumerate(questions) if t < len(q["turns"])]
        for i in live:
            history[i].append({"role": "user", "content": questions[i]["turns"][t]})
        rows = [conversation_ids(tok, history[i], decoding.system) for i in live]
        gens = _generate(model, tok, rows, reset_id, decoding, f"answer turn {t + 1}")
        for i, g in zip(live, gens, strict=True):
            history[i].append({"role": "assistant", "content": g["visible"]})
            details[i].append(g)
    return [
        {
            "question_id": q["question_id"],
            "category": q["category"],
            "questions": q["turns"],
            "turns": [d["visible"] for d in det],
            "raw": [d["raw"] for d in det],
            "n_resets": [d["n_resets"] for d in det],
            "tokens_generated": [d["tokens_generated"] for d in det],
            "truncated": [d["truncated"] for d in det],
        }
        for q, det in zip(questions, details, strict=True)
    ]


def judge_prompt(
    question: dict[str, Any], answer: dict[str, Any], turn: int, reference: Sequence[str] | None
) -> tuple[str, str, str]:
    """``(prompt name, system prompt, user prompt)`` of FastChat's single-answer grading of
    ``turn`` (1 or 2). Reference-based prompts only for NEED_REF_CATS with a reference."""
    use_ref = reference is not None and question["category"] in NEED_REF_CATS
    name = ("single-math-v1" if use_ref else "single-v1") + ("-multi-turn" if turn == 2 else "")
    tpl = JUDGE_PROMPTS[name]
    kw: dict[str, str] = {}
    if use_ref:
        kw["ref_answer_1"] = reference[0]
        if turn == 2:
            kw["ref_answer_2"] = reference[1]
    if turn == 1:
        user = tpl["prompt_template"].format(
            question=question["turns"][0], answer=answer["turns"][0], **kw
        )
    elif turn == 2:
        user = tpl["prompt_template"].format(
            question_1=question["turns"][0],
            question_2=question["turns"][1],
            answer_1=answer["turns"][0],
            answer_2=answer["turns"][1],
            **kw,
        )
    else:
        raise ValueError(f"MT-Bench has turns 1 and 2, not {turn}")
    return name, tpl["system_prompt"], user


def judge_ids(tok: PreTrainedTokenizerBase, system: str, user: str) -> list[int]:
    """The judge's own chat template with the judge prompt's system message; a template that
    rejects system messages (Gemma) gets it in front of the user turn, as FastChat does for
    models without a system slot."""
    from jinja2.exceptions import TemplateError

    try:
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    except TemplateError:
        merged = f"[Instruction]\n{system}\n\n{user}" if system.strip() else user
        text = tok.apply_chat_template(
            [{"role": "user", "content": merged}], add_generation_prompt=True, tokenize=False
        )
    return tok(text, add_special_tokens=False).input_ids


def parse_rating(judgment: str) -> float | None:
    """FastChat's rating extraction (``[[x]]``, else ``[x]``); None if absent or not in 1-10."""
    m = _ONE_SCORE.search(judgment) or _ONE_SCORE_BACKUP.search(judgment)
    if not m:
        return None
    try:
        r = float(ast.literal_eval(m.group(1)))
    except (ValueError, SyntaxError):
        return None
    return r if 1 <= r <= 10 else None


def judge_answers(
    judge: PreTrainedModel,
    judge_tok: PreTrainedTokenizerBase,
    questions: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    *,
    max_new_tokens: int,
    batch_size: int,
    references: dict[Any, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """One judgment per (question, turn): ``score`` (None on a parse failure), ``parse_error``,
    the judge prompt's name, the user prompt and the judge's text."""
    if judge_tok.pad_token_id is None:
        judge_tok.pad_token = judge_tok.eos_token
    by_id = {a["question_id"]: a for a in answers}
    items = []
    for q in questions:
        a = by_id[q["question_id"]]
        ref = q.get("reference") or (references or {}).get(q["question_id"])
        for turn in range(1, min(2, len(q["turns"]), len(a["turns"])) + 1):
            name, system, user = judge_prompt(q, a, turn, ref)
            items.append((q, turn, name, user, judge_ids(judge_tok, system, user)))
    # Greedy and without [RESET]: the judge is a model of its own.
    greedy = Decoding(max_new_tokens, batch_size, max_resets=None)
    gens = _generate(judge, judge_tok, [it[4] for it in items], None, greedy, "judge")
    out = []
    for (q, turn, name, user, _), g in zip(items, gens, strict=True):
        score = parse_rating(g["visible"])
        out.append(
            {
                "question_id": q["question_id"],
                "category": q["category"],
                "turn": turn,
                "judge_prompt": name,
                "user_prompt": user,
                "judgment": g["visible"],
                "score": score,
                "parse_error": score is None,
            }
        )
    return out


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def mt_bench_columns(judgments: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean score per turn and overall (over every parsed judgment, as FastChat's
    ``show_result.py``), questions, judgments and parse failures."""
    t1 = [j["score"] for j in judgments if j["turn"] == 1 and j["score"] is not None]
    t2 = [j["score"] for j in judgments if j["turn"] == 2 and j["score"] is not None]
    return {
        "mt_bench_turn1": _mean(t1),
        "mt_bench_turn2": _mean(t2),
        "mt_bench_score": _mean(t1 + t2),
        "mt_bench_questions": len({j["question_id"] for j in judgments}),
        "mt_bench_judgments": len(judgments),
        "mt_bench_parse_failures": sum(bool(j["parse_error"]) for j in judgments),
    }
