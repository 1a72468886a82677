"""Helpfulness at small scale: how likely each trained model finds held-out helpful answers.

MT-Bench (:mod:`backtrack.helpfulness.mt_bench`) needs a capable answerer and a capable judge; on
the embedded default (SmolLM2-135M on CPU) its scores would be noise. What can be measured there is
the mean per-token negative log-likelihood (NLL) of held-out helpful reference answers under each
model: if safety training (and backtracking in particular) cost helpfulness, the model should
find helpful answers to benign prompts less likely.

Two kinds of references (config ``helpfulness.references``):

- ``base_model`` (the embedded default): the base model's own greedy answers to the held-out
  benign prompts. This measures **drift from the base model**, not absolute answer quality: the
  base model scores its own greedy answers best by construction, and the SFT helpful data are
  the base model's own answers too, so a low NLL means "still answers benign prompts the way the
  base model did". It says nothing about whether those answers were any good.
- ``dataset``: the ``reference`` field of the benign evaluation records (human-written
  OpenAssistant answers at paper scale). This is closer to a quality measure.

The NLL is over the answer tokens only, with the same chat template, system prompt and
tokenisation as training (:func:`backtrack.data.examples.sft_example`): prompt tokens are context,
labels are the answer tokens and EOS (EOS only where the answer is complete). A backtracking
model's ``[RESET]`` is not part of a reference, so a model that puts probability on resetting
pays for it here: that is the cost we want to see.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backtrack.stats import wilson_interval

if TYPE_CHECKING:  # torch and transformers load lazily: the table job runs without them
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

IGNORE = -100  # backtrack.data.examples.IGNORE (importing it would pull in transformers)

REFERENCE_KINDS = ("base_model", "dataset")


def reference_records(
    kind: str, records: list[dict[str, Any]], source: str = "results/data/eval/benign.jsonl"
) -> list[dict[str, Any]]:
    """Normalise references to ``{id, prompt, reference, complete}``.

    ``base_model``: generation records (``visible``; ``truncated`` answers are incomplete, so
    their EOS is not scored). ``dataset``: benign eval records, each of which must carry a
    ``reference`` string; a record without one raises, naming the config key.
    """
    if kind == "base_model":
        return [
            {
                "id": r["prompt_id"],
                "prompt": r["prompt"],
                "reference": r["visible"],
                "complete": not r["truncated"],
            }
            for r in records
        ]
    if kind != "dataset":
        raise ValueError(f"config key 'helpfulness.references': unknown kind {kind!r}")
    out = []
    for r in records:
        ref = r.get("reference")
        if not isinstance(ref, str) or not ref.strip():
            raise ValueError(
                f"config key 'helpfulness.references' is 'dataset', but {source} record "
                f"{r.get('id')!r} has no 'reference' field (a non-empty string). Use benign eval "
                "data that carries reference answers (OASST2 at paper scale), or set "
                "helpfulness.references: base_model."
            )
        out.append({"id": r["id"], "prompt": r["prompt"], "reference": ref, "complete": True})
    return out


def answer_example(
    tok: PreTrainedTokenizerBase,
    prompt: str,
    answer: str,
    system: str | None = None,
    include_eos: bool = True,
) -> dict[str, list[int]]:
    """``input_ids`` and ``labels`` of one (prompt, answer) pair, exactly as SFT builds them
    (labels -100 over the chat-template prompt); without ``include_eos`` the EOS is dropped."""
    from backtrack.data.examples import sft_example
    from backtrack.models.chat import prompt_ids, text_ids

    p, a = prompt_ids(tok, prompt, system), text_ids(tok, answer)
    ex = sft_example("", "helpful", p, [], a, tok.eos_token_id)
    if not include_eos:
        ex["input_ids"], ex["labels"] = ex["input_ids"][:-1], ex["labels"][:-1]
    return {"input_ids": ex["input_ids"], "labels": ex["labels"]}


def pad_batch(
    examples: Sequence[dict[str, list[int]]], pad_id: int, side: str
) -> dict[str, torch.Tensor]:
    """Pad ``input_ids``/``labels`` on the ``left`` or ``right``, with explicit position ids
    (a left-padded row's first real token is position 0, as in an unpadded forward pass)."""
    import torch

    if side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', not {side!r}")
    width = max(len(e["input_ids"]) for e in examples)
    shape = (len(examples), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE, dtype=torch.long)
    mask = torch.zeros(shape, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        cols = slice(width - n, width) if side == "left" else slice(0, n)
        ids[i, cols] = torch.tensor(e["input_ids"], dtype=torch.long)
        labels[i, cols] = torch.tensor(e["labels"], dtype=torch.long)
        mask[i, cols] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "position_ids": positions}


def batch_nll(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> list[tuple[float, int]]:
    """``(sum of NLL, scored tokens)`` per row: -log p(label_t | tokens before t) summed over
    the positions whose label is not -100.

    Only the columns that predict a scored label go through the LM head (``logits_to_keep``
    with the column range), so an 8B model with a 128k vocabulary does not materialise
    batch x length x vocab logits.
    """
    import torch

    device = next(model.parameters()).device
    labels = batch["labels"]
    target = labels[:, 1:]  # column t predicts label t+1
    scored = target != IGNORE
    cols = scored.any(dim=0).nonzero().flatten()
    if len(cols) == 0:
        return [(0.0, 0)] * labels.shape[0]
    lo, hi = int(cols[0]), int(cols[-1]) + 1
    keep = torch.arange(lo, hi, device=device)
    with torch.no_grad():
        out = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            position_ids=batch["position_ids"].to(device),
            logits_to_keep=keep,
            use_cache=False,
        )
    logp = torch.log_softmax(out.logits.float(), dim=-1)
    tgt = target[:, lo:hi].to(device)
    mask = scored[:, lo:hi].to(device)
    tok_logp = logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    nll = -(tok_logp * mask).double().sum(dim=1)
    return [(float(s), int(n)) for s, n in zip(nll.cpu(), mask.sum(dim=1).cpu(), strict=True)]


def score_answers(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    refs: list[dict[str, Any]],
    *,
    batch_size: int,
    system: str | None = None,
    include_eos: bool = True,
    padding_side: str = "left",
) -> list[dict[str, Any]]:
    """Per-reference ``nll_sum`` and ``n_tokens`` (input order), batched by length."""
    examples = [
        answer_example(
            tok, r["prompt"], r["reference"], system, include_eos and r.get("complete", True)
        )
        for r in refs
    ]
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    scores: dict[int, tuple[float, int]] = {}
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = pad_batch([examples[i] for i in idx], tok.pad_token_id, padding_side)
        for i, s in zip(idx, batch_nll(model, batch), strict=True):
            scores[i] = s
    return [
        {
            "id": r["id"],
            "nll_sum": scores[i][0],
            "n_tokens": scores[i][1],
            "nll_per_token": scores[i][0] / scores[i][1] if scores[i][1] else math.nan,
        }
        for i, r in enumerate(refs)
    ]


def bootstrap_ratio(
    num: Sequence[float],
    den: Sequence[float],
    n_boot: int,
    level: float,
    seed: int,
    num_base: Sequence[float] | None = None,
    den_base: Sequence[float] | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``sum(num)/sum(den)`` over resampled items (answers).

    With ``num_base``/``den_base`` the statistic is the paired difference
    ``sum(num)/sum(den) - sum(num_base)/sum(den_base)`` on the same resampled answers.
    """
    n = len(num)
    if n == 0 or n_boot < 1:
        return (math.nan, math.nan)
    rng = random.Random(seed)
    stats = []
    for _ in range(n_boot):
        idx = [rng.randrange(n) for _ in range(n)]
        d = sum(den[i] for i in idx)
        s = sum(num[i] for i in idx) / d if d else math.nan
        if num_base is not None and den_base is not None:
            db = sum(den_base[i] for i in idx)
            s -= sum(num_base[i] for i in idx) / db if db else math.nan
        stats.append(s)
    stats = sorted(x for x in stats if not math.isnan(x))
    if not stats:
        return (math.nan, math.nan)
    alpha = (1 - level) / 2
    lo = stats[min(len(stats) - 1, max(0, math.floor(alpha * len(stats))))]
    hi = stats[min(len(stats) - 1, max(0, math.ceil((1 - alpha) * len(stats)) - 1))]
    return (lo, hi)


@dataclass(frozen=True)
class Bootstrap:
    """The intervals' settings (config ``report``): resamples, confidence level, seed."""

    n_boot: int
    level: float
    seed: int


def nll_columns(
    scores: list[dict[str, Any]], base: list[dict[str, Any]] | None, bootstrap: Bootstrap
) -> dict[str, Any]:
    """Token-weighted mean NLL (sum of NLL / tokens over all answers), its bootstrap interval,
    perplexity, and the paired difference to the base model on the same answers (NaN columns
    for the base model itself)."""
    num = [s["nll_sum"] for s in scores]
    den = [s["n_tokens"] for s in scores]
    tokens = sum(den)
    mean = sum(num) / tokens if tokens else math.nan
    n_boot, level, seed = bootstrap.n_boot, bootstrap.level, bootstrap.seed
    lo, hi = bootstrap_ratio(num, den, n_boot, level, seed)
    cols: dict[str, Any] = {
        "answer_nll": mean,
        "answer_nll_ci_lo": lo,
        "answer_nll_ci_hi": hi,
        "answer_perplexity": math.exp(mean) if not math.isnan(mean) else math.nan,
        "n_answers": len(scores),
        "n_tokens": tokens,
    }
    cols |= {"nll_vs_base": math.nan, "nll_vs_base_ci_lo": math.nan, "nll_vs_base_ci_hi": math.nan}
    if base is not None:
        by_id = {b["id"]: b for b in base}
        missing = [s["id"] for s in scores if s["id"] not in by_id]
        if missing:
            raise ValueError(f"base model scores lack answers {missing[:5]}")
        bnum = [by_id[s["id"]]["nll_sum"] for s in scores]
        bden = [by_id[s["id"]]["n_tokens"] for s in scores]
        btok = sum(bden)
        cols["nll_vs_base"] = mean - (sum(bnum) / btok if btok else math.nan)
        cols["nll_vs_base_ci_lo"], cols["nll_vs_base_ci_hi"] = bootstrap_ratio(
            num, den, n_boot, level, seed, bnum, bden
        )
    return cols


def refusal_columns(judged: list[dict[str, Any]] | None, level: float) -> dict[str, Any]:
    """Over-refusal and ``[RESET]`` rate on the held-out benign prompts (NaN where not judged)."""
    if judged is None:
        return {
            "benign_refusal": math.nan,
            "benign_refusal_ci_lo": math.nan,
            "benign_refusal_ci_hi": math.nan,
            "benign_reset_rate": math.nan,
            "benign_n": 0,
        }
    k, n = sum(bool(r["refused"]) for r in judged), len(judged)
    lo, hi = wilson_interval(k, n, level)
    return {
        "benign_refusal": k / n if n else math.nan,
        "benign_refusal_ci_lo": lo,
        "benign_refusal_ci_hi": hi,
        "benign_reset_rate": sum(bool(r["reset"]) for r in judged) / n if n else math.nan,
        "benign_n": n,
    }


def helpfulness_rows(
    variants: Sequence[Sequence[Any]],
    scores: dict[tuple[Any, ...], list[dict[str, Any]]],
    benign: dict[tuple[Any, ...], list[dict[str, Any]]],
    *,
    references: str,
    judge: str,
    bootstrap: Bootstrap,
    extra: dict[tuple[Any, ...], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per ``(model, method, seed, stage)`` variant, in order: each model's base model
    (method and stage ``base``) and the run's rows (``backtrack.plan.helpfulness_rows``).

    ``scores`` and ``benign`` are keyed by variant; the base model has no benign judgments (it
    is not part of the evaluation grid), so its refusal columns are NaN. ``nll_vs_base``
    compares each row with its model's base row. ``extra`` adds columns per key (MT-Bench
    scores when that stage is on).
    """
    keys = [tuple(v) for v in variants]
    base_of = {k[0]: k for k in keys if k[1] == "base"}
    rows = []
    for key in keys:
        model, method, seed, stage = key
        base = scores[base_of[model]] if method != "base" else None
        rows.append(
            {"model": model, "method": method, "seed": seed, "stage": stage}
            | {"references": references}
            | nll_columns(scores[key], base, bootstrap)
            | refusal_columns(benign.get(key), bootstrap.level)
            | (extra or {}).get(key, {})
            | {"judge": judge}
        )
    return rows
