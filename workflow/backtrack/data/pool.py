"""The training pool: prompts with safe, unsafe and helpful responses.

Where each response comes from is configurable (``pool.safe_from``, ``pool.unsafe_from``,
``pool.helpful_from``); every candidate is labelled by the label judge (Llama Guard 2 at paper
scale, as the paper built its data; the refusal judge in the embedded default):

* ``y-`` (unsafe): ``generated``, the first of the base model's ``samples`` answers the judge
  calls unsafe, or ``dataset``, the source's own unsafe reply (HH-RLHF ``rejected``) if the judge
  calls it unsafe.
* ``y+`` (safe): ``refusal``, a refusal written by :mod:`backtrack.data.refusals`; ``dataset``, the
  source's own safe reply (HH-RLHF ``chosen``) unless the judge calls it unsafe (HH-RLHF's
  "chosen" is only the *preferred* reply, and is often harmful itself); or ``generated``, the
  first non-empty base-model answer the judge does not call unsafe (with the refusal judge,
  one that refuses).
* A list is tried in order for each prompt, e.g. ``[dataset, generated]``; a prompt with no
  ``y+`` or no ``y-`` is dropped and counted.
* Helpful answers: the benign source's reply (OASST2's best-ranked reply) or the base model's
  own answer, dropped if empty, refused or unsafe.
* A second source of ``y-`` (``pool.openers``): for a fraction of the harmful prompts, the base
  model is made to start its answer with a written affirmative opener ("Of course! Here's") and
  continues it; ``y-`` is opener plus continuation when the judge calls that unsafe. Backtracking
  then learns to reset after text that did not open the way its own answers do (at paper scale
  ``y-`` is largely HH-RLHF's replies, text other models wrote). Off unless configured.

In the embedded default the base model does not refuse, so ``y-`` are its own answers to harmful
prompts (kept only where the judge calls them unsafe, as the paper kept only Llama-Guard-unsafe
ones), ``y+`` are refusals, and helpful answers are its own answers to benign prompts. Records
say where each response came from (``safe_from``, ``unsafe_from``, ``helpful_from``).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from backtrack.data.refusals import make_refusal
from backtrack.generate.hf import generate_records
from backtrack.judge.base import RESET_TOKEN, Judge, JudgeInput, Verdict

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")

SAFE_MODES = ("refusal", "dataset", "generated")
UNSAFE_MODES = ("generated", "dataset")
HELPFUL_MODES = ("auto", "dataset", "generated")
#: What an absent ``pool.*`` key means (the embedded default's behaviour).
POOL_DEFAULTS: dict[str, Any] = {
    "safe_from": "refusal",
    "unsafe_from": "generated",
    "helpful_from": "auto",
    "samples": 1,
    "openers": None,
}
#: ``pool.openers.texts`` when not given: affirmative openers, none of them "Sure, here is",
#: so that the attack targets' "Sure, here is ..." prefill stays text the models never saw.
DEFAULT_OPENERS = (
    "Of course! Here's",
    "Absolutely. Here is",
    "Certainly, here are",
    "No problem. Here's how",
    "Great question! The",
    "Okay, so the first step is",
    "Here is a detailed answer:",
    "Step 1:",
)
#: Fields of a harmful prompt record that hold the dataset's own safe / unsafe reply.
SAFE_FIELD, UNSAFE_FIELD = "chosen", "rejected"
#: Field of a benign prompt record that holds the dataset's reply (OASST2's best one).
HELPFUL_FIELD = "response"


def trim_to_sentence(text: str, min_keep: float = 0.5) -> str:
    """Cut a truncated answer after its last complete sentence, if that keeps enough of it."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if ends and ends[-1] >= min_keep * len(text):
        return text[: ends[-1]].rstrip()
    return text.rstrip()


def pool_options(pool: Mapping[str, Any]) -> dict[str, Any]:
    """The response-source options of a ``pool`` config section, defaults filled in."""
    return {k: pool.get(k, v) for k, v in POOL_DEFAULTS.items()}


def _modes(value: str | Sequence[str], allowed: tuple[str, ...], key: str) -> list[str]:
    modes = [value] if isinstance(value, str) else list(value)
    bad = [m for m in modes if m not in allowed]
    if not modes or bad or len(set(modes)) != len(modes):
        raise ValueError(
            f"config key '{key}': {value!r} must be one of {list(allowed)} or a list of them "
            "without repeats"
        )
    return modes


def _planned(modes: list[str], have: set[str]) -> str | None:
    """The mode a prompt's response will come from if generation succeeds: the first that is
    ``refusal`` (always available), an available ``dataset`` reply, or ``generated``."""
    for m in modes:
        if m in have or m in ("refusal", "generated"):
            return m
    return None


def _gen_text(g: Mapping[str, Any]) -> str:
    return trim_to_sentence(g["visible"]) if g["truncated"] else g["visible"].strip()


def build_pool(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    reset_id: int,
    harmful: list[dict[str, Any]],
    benign: list[dict[str, Any]],
    judge: Judge,
    *,
    unsafe_max_new_tokens: int,
    helpful_max_new_tokens: int,
    batch_size: int,
    do_sample: bool,
    temperature: float,
    top_p: float,
    seed: int,
    system: str | None = None,
    safe_from: str | Sequence[str] = "refusal",
    unsafe_from: str | Sequence[str] = "generated",
    helpful_from: str = "auto",
    samples: int = 1,
    openers: Mapping[str, Any] | None = None,
    reset_token: str = RESET_TOKEN,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Pick and label responses; return pool records and counts of what was kept and dropped.

    Raises ``ValueError`` naming the config key when a choice cannot be satisfied (``dataset``
    for prompts whose records carry no such responses, ``samples > 1`` with greedy decoding).
    """
    safe_modes = _modes(safe_from, SAFE_MODES, "pool.safe_from")
    unsafe_modes = _modes(unsafe_from, UNSAFE_MODES, "pool.unsafe_from")
    if helpful_from not in HELPFUL_MODES:
        raise ValueError(f"config key 'pool.helpful_from': {helpful_from!r} not in {HELPFUL_MODES}")
    for modes, field, key in (
        (safe_modes, SAFE_FIELD, "pool.safe_from"),
        (unsafe_modes, UNSAFE_FIELD, "pool.unsafe_from"),
    ):
        if "dataset" in modes:
            missing = [r["id"] for r in harmful if not isinstance(r.get(field), str)]
            if missing:
                raise ValueError(
                    f"config key '{key}': 'dataset' needs harmful training records with the "
                    f"source's own {field!r} reply (data.harmful_train.source: hh_harmless); "
                    f"{len(missing)} records have none, e.g. {missing[0]}"
                )
    has_replies = bool(benign) and all(isinstance(r.get(HELPFUL_FIELD), str) for r in benign)
    if helpful_from == "dataset" and not has_replies:
        raise ValueError(
            "config key 'pool.helpful_from': 'dataset' needs benign training records with a "
            f"{HELPFUL_FIELD!r} reply (data.benign.source: oasst2)"
        )
    helpful_mode = "dataset" if helpful_from == "auto" and has_replies else helpful_from
    if helpful_mode == "auto":
        helpful_mode = "generated"
    if samples > 1 and not do_sample:
        raise ValueError(
            f"config key 'pool.samples': {samples} samples per prompt need pool.do_sample: true"
        )
    opener_of = opener_assignment(harmful, openers, seed)
    stats: Counter[str] = Counter()

    # 1. The datasets' own responses, judged (HH-RLHF chosen/rejected, OASST2 replies).
    ds_items: list[tuple[str, int, str]] = []  # (what, record index, text)
    for what, field, wanted in (
        ("safe", SAFE_FIELD, "dataset" in safe_modes),
        ("unsafe", UNSAFE_FIELD, "dataset" in unsafe_modes),
    ):
        if wanted:
            ds_items += [(what, i, r[field].strip()) for i, r in enumerate(harmful)]
    if helpful_mode == "dataset":
        ds_items += [("helpful", i, r[HELPFUL_FIELD].strip()) for i, r in enumerate(benign)]
    usable: list[tuple[str, int, str]] = []
    for what, i, text in ds_items:
        if not text:
            stats[f"dataset_{what}_empty"] += 1
        elif reset_token in text:  # it would become the special token in training
            stats[f"dataset_{what}_has_reset_token"] += 1
        else:
            usable.append((what, i, text))
    ds_inputs = []
    for what, i, text in usable:
        rec = benign[i] if what == "helpful" else harmful[i]
        ds_inputs.append(
            JudgeInput(
                f"{rec['id']}:{what}",
                rec["prompt"],
                text,
                harmful=what != "helpful",
                truncated=False,
                reset=False,
            )
        )
    ds_verdicts = judge.judge(ds_inputs) if ds_inputs else []
    ds_safe: dict[int, str] = {}
    ds_unsafe: dict[int, str] = {}
    ds_helpful: dict[int, str] = {}
    for (what, i, text), v in zip(usable, ds_verdicts, strict=True):
        if what == "safe":
            if v.unsafe:
                stats["dataset_safe_judged_unsafe"] += 1
            else:
                ds_safe[i] = text
        elif what == "unsafe":
            if v.unsafe:
                ds_unsafe[i] = text
            else:
                stats["dataset_unsafe_judged_safe"] += 1
        elif _helpful_ok(v, stats, "dataset"):
            ds_helpful[i] = text

    # 2. The base model's answers where a response may still have to be generated.
    need = [
        i
        for i in range(len(harmful))
        if _planned(safe_modes, {"dataset"} if i in ds_safe else set()) == "generated"
        or _planned(unsafe_modes, {"dataset"} if i in ds_unsafe else set()) == "generated"
    ]
    common = {
        "batch_size": batch_size,
        "do_sample": do_sample,
        "temperature": temperature,
        "top_p": top_p,
        "max_resets": 0,  # the base model must not emit [RESET]
        "seed": seed,
        "system": system,
    }
    h_gen = (
        generate_records(
            model,
            tok,
            [{**harmful[i], "harmful": True} for i in need],
            reset_id,
            max_new_tokens=unsafe_max_new_tokens,
            num_samples=samples,
            **common,
        )
        if need
        else []
    )
    b_gen = (
        generate_records(
            model,
            tok,
            [{**r, "harmful": False} for r in benign],
            reset_id,
            max_new_tokens=helpful_max_new_tokens,
            **common,
        )
        if helpful_mode == "generated" and benign
        else []
    )
    o_idx = sorted(opener_of)
    o_gen = (
        generate_records(
            model,
            tok,
            [{**harmful[i], "harmful": True, "prefill": opener_of[i]} for i in o_idx],
            reset_id,
            max_new_tokens=unsafe_max_new_tokens,
            num_samples=samples,
            **common,
        )
        if o_idx
        else []
    )
    gens = h_gen + b_gen
    # An opener-led answer is judged as a whole: the opener is part of the y- it would become.
    o_texts = [g["prefill"] + g["visible"].rstrip() for g in o_gen]
    o_inputs = [
        JudgeInput(g["id"], g["prompt"], t, True, g["truncated"], g["reset"])
        for g, t in zip(o_gen, o_texts, strict=True)
    ]
    verdicts = (
        judge.judge([JudgeInput.from_generation(g) for g in gens] + o_inputs)
        if gens or o_inputs
        else []
    )
    stats["generated_candidates"] = len(h_gen)
    gen_safe: dict[int, str] = {}
    gen_unsafe: dict[int, str] = {}
    for k, (g, v) in enumerate(zip(h_gen, verdicts[: len(h_gen)], strict=True)):
        i = need[k // samples]
        if v.unsafe:
            stats["generated_unsafe"] += 1
            if g["visible"].strip():  # a y- needs tokens to cut a prefix from
                gen_unsafe.setdefault(i, g["visible"].strip())
        elif text := _gen_text(g).strip():  # not unsafe; with the refusal judge: a refusal
            gen_safe.setdefault(i, text)
    stats["opener_candidates"] = len(o_gen)
    opener_unsafe: dict[int, str] = {}
    for k, (g, text, v) in enumerate(zip(o_gen, o_texts, verdicts[len(gens) :], strict=True)):
        if v.unsafe and g["visible"].strip():  # the model went on with the opener
            stats["opener_unsafe"] += 1
            opener_unsafe.setdefault(o_idx[k // samples], text)

    # 3. One record per harmful prompt that has both, then one per benign prompt.
    rng = random.Random(seed)
    pool: list[dict[str, Any]] = []
    for i, r in enumerate(harmful):
        unsafe = _pick(unsafe_modes, {"dataset": ds_unsafe.get(i), "generated": gen_unsafe.get(i)})
        if i in opener_unsafe:  # the second source replaces this prompt's y-
            unsafe = ("opener", opener_unsafe[i])
        elif i in opener_of:
            stats["opener_not_unsafe"] += 1
        if unsafe is None:
            stats["harmful_dropped_no_unsafe"] += 1
            continue
        found = {"dataset": ds_safe.get(i), "generated": gen_safe.get(i)}
        safe = _pick(safe_modes, found, rng)
        if safe is None:
            stats["harmful_dropped_no_safe"] += 1
            continue
        pool.append(
            {
                "id": f"pool-{r['id']}",
                "prompt_id": r["id"],
                "prompt": r["prompt"],
                "harmful": True,
                "unsafe": unsafe[1],
                "safe": safe[1],
                "safe_from": safe[0],
                "unsafe_from": unsafe[0],
            }
        )
        stats["harmful_kept"] += 1
        stats[f"safe_from_{safe[0]}"] += 1
        stats[f"unsafe_from_{unsafe[0]}"] += 1
    for i, r in enumerate(benign):
        if helpful_mode == "dataset":
            text = ds_helpful.get(i)
        else:
            g, v = b_gen[i], verdicts[len(h_gen) + i]
            text = _gen_text(g) if _helpful_ok(v, stats, "generated") else None
            if text == "":
                stats["benign_dropped_empty"] += 1
                text = None
        if text is None:
            stats["benign_dropped"] += 1
            continue
        pool.append(
            {
                "id": f"pool-{r['id']}",
                "prompt_id": r["id"],
                "prompt": r["prompt"],
                "harmful": False,
                "helpful": text,
                "helpful_from": helpful_mode,
            }
        )
        stats["benign_kept"] += 1
    return pool, dict(stats)


def opener_assignment(
    harmful: Sequence[Mapping[str, Any]], openers: Mapping[str, Any] | None, seed: int
) -> dict[int, str]:
    """Which harmful prompts get an opener-led ``y-`` (``pool.openers.fraction`` of them, drawn
    with the run's seed) and which opener each starts with (``pool.openers.texts``)."""
    if not openers or not openers.get("fraction"):
        return {}
    fraction = float(openers["fraction"])
    texts = list(openers.get("texts") or DEFAULT_OPENERS)
    if not 0 < fraction <= 1 or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError(
            "config key 'pool.openers': fraction must be in (0, 1] and texts non-empty strings "
            f"(got fraction {fraction!r}, texts {texts!r})"
        )
    rng = random.Random(f"openers-{seed}")  # its own stream: the refusals' draws are unchanged
    chosen = sorted(rng.sample(range(len(harmful)), round(fraction * len(harmful))))
    return {i: rng.choice(texts) for i in chosen}


def _helpful_ok(v: Verdict, stats: Counter[str], origin: str) -> bool:
    if v.refused:
        stats[f"{origin}_helpful_refused"] += 1
        return False
    if v.unsafe:
        stats[f"{origin}_helpful_judged_unsafe"] += 1
        return False
    return True


def _pick(
    modes: list[str], found: dict[str, str | None], rng: random.Random | None = None
) -> tuple[str, str] | None:
    """The first available response in preference order: (mode, text); refusals are written."""
    for m in modes:
        if m == "refusal" and rng is not None:
            return m, make_refusal(rng)
        if found.get(m) is not None:
            return m, found[m]  # type: ignore[return-value]
    return None
