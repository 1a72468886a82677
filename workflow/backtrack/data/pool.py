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
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from backtrack.data.refusals import make_refusal
from backtrack.generate.hf import generate_records
from backtrack.judge.base import Judge, JudgeInput, Verdict
from backtrack.settings import Decoding, ResetToken

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


@dataclass(frozen=True)
class PoolSettings:
    """How the pool is built: the ``pool`` config section (decoding and where each response
    comes from; see the module docstring), with the job's seed and system prompt."""

    unsafe_max_new_tokens: int
    helpful_max_new_tokens: int
    batch_size: int
    do_sample: bool
    temperature: float
    top_p: float
    seed: int
    system: str | None = None
    safe_from: str | Sequence[str] = "refusal"
    unsafe_from: str | Sequence[str] = "generated"
    helpful_from: str = "auto"
    samples: int = 1
    openers: Mapping[str, Any] | None = None

    @classmethod
    def from_config(cls, pool: Mapping[str, Any], *, seed: int, system: str | None) -> PoolSettings:
        """From the ``pool`` config section (absent source keys: :data:`POOL_DEFAULTS`)."""
        decoding = ("batch_size", "do_sample", "temperature", "top_p")
        lengths = ("unsafe_max_new_tokens", "helpful_max_new_tokens")
        return cls(
            **{k: pool[k] for k in (*lengths, *decoding)},
            seed=seed,
            system=system,
            **pool_options(pool),
        )

    def decoding(self, max_new_tokens: int, num_samples: int = 1) -> Decoding:
        """How the base model answers: never a reset (the base model must not emit one)."""
        return Decoding(
            max_new_tokens=max_new_tokens,
            batch_size=self.batch_size,
            do_sample=self.do_sample,
            temperature=self.temperature,
            top_p=self.top_p,
            max_resets=0,
            num_samples=num_samples,
            seed=self.seed,
            system=self.system,
        )


@dataclass(frozen=True)
class Modes:
    """Where each response may come from, in preference order; ``helpful`` is resolved
    (``dataset`` or ``generated``, never ``auto``)."""

    safe: list[str]
    unsafe: list[str]
    helpful: str


def resolve_modes(
    settings: PoolSettings, harmful: list[dict[str, Any]], benign: list[dict[str, Any]]
) -> Modes:
    """The pool's modes, checked against the records they need; raises ``ValueError`` naming
    the config key when a choice cannot be satisfied (``dataset`` for prompts whose records
    carry no such responses, ``samples > 1`` with greedy decoding)."""
    safe_modes = _modes(settings.safe_from, SAFE_MODES, "pool.safe_from")
    unsafe_modes = _modes(settings.unsafe_from, UNSAFE_MODES, "pool.unsafe_from")
    helpful_from = settings.helpful_from
    if helpful_from not in HELPFUL_MODES:
        raise ValueError(f"config key 'pool.helpful_from': {helpful_from!r} not in {HELPFUL_MODES}")
    for modes, field_name, key in (
        (safe_modes, SAFE_FIELD, "pool.safe_from"),
        (unsafe_modes, UNSAFE_FIELD, "pool.unsafe_from"),
    ):
        if "dataset" in modes:
            _require_replies(harmful, field_name, key)
    has_replies = bool(benign) and all(isinstance(r.get(HELPFUL_FIELD), str) for r in benign)
    if helpful_from == "dataset" and not has_replies:
        raise ValueError(
            "config key 'pool.helpful_from': 'dataset' needs benign training records with a "
            f"{HELPFUL_FIELD!r} reply (data.benign.source: oasst2)"
        )
    helpful_mode = "dataset" if helpful_from == "auto" and has_replies else helpful_from
    if helpful_mode == "auto":
        helpful_mode = "generated"
    if settings.samples > 1 and not settings.do_sample:
        raise ValueError(
            f"config key 'pool.samples': {settings.samples} samples per prompt need "
            "pool.do_sample: true"
        )
    return Modes(safe_modes, unsafe_modes, helpful_mode)


def _require_replies(harmful: list[dict[str, Any]], field_name: str, key: str) -> None:
    missing = [r["id"] for r in harmful if not isinstance(r.get(field_name), str)]
    if missing:
        raise ValueError(
            f"config key '{key}': 'dataset' needs harmful training records with the "
            f"source's own {field_name!r} reply (data.harmful_train.source: hh_harmless); "
            f"{len(missing)} records have none, e.g. {missing[0]}"
        )


@dataclass
class Found:
    """Candidate responses by prompt index: the datasets' own (by ``safe``, ``unsafe``,
    ``helpful``) and the base model's, with the benign answers and their verdicts still to
    check (:func:`_helpful_ok`)."""

    dataset: dict[str, dict[int, str]]
    generated_safe: dict[int, str] = field(default_factory=dict)
    generated_unsafe: dict[int, str] = field(default_factory=dict)
    opener_unsafe: dict[int, str] = field(default_factory=dict)
    helpful_answers: list[tuple[dict[str, Any], Verdict]] = field(default_factory=list)


def build_pool(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    reset: ResetToken,
    harmful: list[dict[str, Any]],
    benign: list[dict[str, Any]],
    judge: Judge,
    settings: PoolSettings,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Pick and label responses; return pool records and counts of what was kept and dropped.

    Raises ``ValueError`` naming the config key when a choice cannot be satisfied
    (:func:`resolve_modes`, :func:`opener_assignment`).
    """
    modes = resolve_modes(settings, harmful, benign)
    opener_of = opener_assignment(harmful, settings.openers, settings.seed)
    job = PoolJob(model, tok, reset, harmful, benign, judge, settings, modes)
    found = Found(job.dataset_replies())
    job.label_answers(found, opener_of)
    pool = job.harmful_records(found, opener_of) + job.benign_records(found)
    return pool, dict(job.stats)


@dataclass
class PoolJob:
    """One pool build, step by step (:func:`build_pool`): its inputs, its modes and the counts
    of what each step kept and dropped."""

    model: PreTrainedModel
    tok: PreTrainedTokenizerBase
    reset: ResetToken
    harmful: list[dict[str, Any]]
    benign: list[dict[str, Any]]
    judge: Judge
    settings: PoolSettings
    modes: Modes
    stats: Counter[str] = field(default_factory=Counter)

    def dataset_replies(self) -> dict[str, dict[int, str]]:
        """1. The datasets' own responses, judged (HH-RLHF chosen/rejected, OASST2 replies):
        ``safe``/``unsafe``/``helpful`` -> record index -> text, for those that pass."""
        usable = self._usable_dataset_texts()
        inputs = []
        for what, i, text in usable:
            rec = self.benign[i] if what == "helpful" else self.harmful[i]
            inputs.append(
                JudgeInput(
                    f"{rec['id']}:{what}",
                    rec["prompt"],
                    text,
                    harmful=what != "helpful",
                    truncated=False,
                    reset=False,
                )
            )
        verdicts = self.judge.judge(inputs) if inputs else []
        kept: dict[str, dict[int, str]] = {"safe": {}, "unsafe": {}, "helpful": {}}
        for (what, i, text), v in zip(usable, verdicts, strict=True):
            if what == "safe":
                if v.unsafe:
                    self.stats["dataset_safe_judged_unsafe"] += 1
                else:
                    kept["safe"][i] = text
            elif what == "unsafe":
                if v.unsafe:
                    kept["unsafe"][i] = text
                else:
                    self.stats["dataset_unsafe_judged_safe"] += 1
            elif _helpful_ok(v, self.stats, "dataset"):
                kept["helpful"][i] = text
        return kept

    def _usable_dataset_texts(self) -> list[tuple[str, int, str]]:
        """(what, record index, text) of the dataset replies the modes ask for, less the empty
        ones and those holding the reset token (it would become the special token in
        training)."""
        items: list[tuple[str, int, str]] = []
        for what, field_name, wanted in (
            ("safe", SAFE_FIELD, "dataset" in self.modes.safe),
            ("unsafe", UNSAFE_FIELD, "dataset" in self.modes.unsafe),
        ):
            if wanted:
                items += [(what, i, r[field_name].strip()) for i, r in enumerate(self.harmful)]
        if self.modes.helpful == "dataset":
            items += [("helpful", i, r[HELPFUL_FIELD].strip()) for i, r in enumerate(self.benign)]
        usable = []
        for what, i, text in items:
            if not text:
                self.stats[f"dataset_{what}_empty"] += 1
            elif self.reset.text in text:
                self.stats[f"dataset_{what}_has_reset_token"] += 1
            else:
                usable.append((what, i, text))
        return usable

    def _answer(
        self, records: list[dict[str, Any]], max_new_tokens: int, samples: int = 1
    ) -> list[dict[str, Any]]:
        """The base model's answers to ``records`` (none asked: no generation)."""
        if not records:
            return []
        decoding = self.settings.decoding(max_new_tokens, samples)
        return generate_records(self.model, self.tok, records, self.reset.id, decoding)

    def label_answers(self, found: Found, opener_of: dict[int, str]) -> None:
        """2. The base model's answers where a response may still have to be generated, and the
        opener-led ones, judged in one batch; the labelled candidates go into ``found``."""
        s = self.settings
        need = [i for i in range(len(self.harmful)) if self._needs_answer(found, i)]
        h_gen = self._answer(
            [{**self.harmful[i], "harmful": True} for i in need], s.unsafe_max_new_tokens, s.samples
        )
        b_gen = (
            self._answer([{**r, "harmful": False} for r in self.benign], s.helpful_max_new_tokens)
            if self.modes.helpful == "generated"
            else []
        )
        o_idx = sorted(opener_of)
        o_gen = self._answer(
            [{**self.harmful[i], "harmful": True, "prefill": opener_of[i]} for i in o_idx],
            s.unsafe_max_new_tokens,
            s.samples,
        )
        # An opener-led answer is judged as a whole: the opener is part of the y- it would become.
        o_texts = [g["prefill"] + g["visible"].rstrip() for g in o_gen]
        o_inputs = [
            JudgeInput(g["id"], g["prompt"], t, True, g["truncated"], g["reset"])
            for g, t in zip(o_gen, o_texts, strict=True)
        ]
        gens = h_gen + b_gen
        verdicts = (
            self.judge.judge([JudgeInput.from_generation(g) for g in gens] + o_inputs)
            if gens or o_inputs
            else []
        )
        self._keep_generated(found, h_gen, verdicts[: len(h_gen)], need)
        found.helpful_answers = list(zip(b_gen, verdicts[len(h_gen) : len(gens)], strict=True))
        self._keep_opener_led(
            found, list(zip(o_gen, o_texts, verdicts[len(gens) :], strict=True)), o_idx
        )

    def _needs_answer(self, found: Found, i: int) -> bool:
        """Whether harmful prompt ``i``'s y+ or y- may still have to come from the model."""
        for modes, kind in ((self.modes.safe, "safe"), (self.modes.unsafe, "unsafe")):
            have = {"dataset"} if i in found.dataset[kind] else set()
            if _planned(modes, have) == "generated":
                return True
        return False

    def _keep_generated(
        self, found: Found, h_gen: list[dict[str, Any]], verdicts: list[Verdict], need: list[int]
    ) -> None:
        """Each prompt's first unsafe answer (a y-) and first answer that is not (a y+)."""
        self.stats["generated_candidates"] = len(h_gen)
        for k, (g, v) in enumerate(zip(h_gen, verdicts, strict=True)):
            i = need[k // self.settings.samples]
            if v.unsafe:
                self.stats["generated_unsafe"] += 1
                if g["visible"].strip():  # a y- needs tokens to cut a prefix from
                    found.generated_unsafe.setdefault(i, g["visible"].strip())
            elif text := _gen_text(g).strip():  # not unsafe; with the refusal judge: a refusal
                found.generated_safe.setdefault(i, text)

    def _keep_opener_led(
        self, found: Found, judged: list[tuple[dict[str, Any], str, Verdict]], o_idx: list[int]
    ) -> None:
        """Each opener prompt's first opener-led answer the judge calls unsafe."""
        self.stats["opener_candidates"] = len(judged)
        for k, (g, text, v) in enumerate(judged):
            if v.unsafe and g["visible"].strip():  # the model went on with the opener
                self.stats["opener_unsafe"] += 1
                found.opener_unsafe.setdefault(o_idx[k // self.settings.samples], text)

    def harmful_records(self, found: Found, opener_of: dict[int, str]) -> list[dict[str, Any]]:
        """3. One record per harmful prompt that has both a y- and a y+ (refusals are drawn
        here, in prompt order, from the run's seed)."""
        rng = random.Random(self.settings.seed)
        pool: list[dict[str, Any]] = []
        for i, r in enumerate(self.harmful):
            unsafe = _pick(
                self.modes.unsafe,
                {
                    "dataset": found.dataset["unsafe"].get(i),
                    "generated": found.generated_unsafe.get(i),
                },
            )
            if i in found.opener_unsafe:  # the second source replaces this prompt's y-
                unsafe = ("opener", found.opener_unsafe[i])
            elif i in opener_of:
                self.stats["opener_not_unsafe"] += 1
            if unsafe is None:
                self.stats["harmful_dropped_no_unsafe"] += 1
                continue
            options = {
                "dataset": found.dataset["safe"].get(i),
                "generated": found.generated_safe.get(i),
            }
            safe = _pick(self.modes.safe, options, rng)
            if safe is None:
                self.stats["harmful_dropped_no_safe"] += 1
                continue
            pool.append(
                _record(
                    r,
                    harmful=True,
                    unsafe=unsafe[1],
                    safe=safe[1],
                    safe_from=safe[0],
                    unsafe_from=unsafe[0],
                )
            )
            self.stats["harmful_kept"] += 1
            self.stats[f"safe_from_{safe[0]}"] += 1
            self.stats[f"unsafe_from_{unsafe[0]}"] += 1
        return pool

    def _helpful_text(self, found: Found, i: int) -> str | None:
        """Benign prompt ``i``'s helpful answer, or None where it was dropped."""
        if self.modes.helpful == "dataset":
            return found.dataset["helpful"].get(i)
        g, v = found.helpful_answers[i]
        text = _gen_text(g) if _helpful_ok(v, self.stats, "generated") else None
        if text == "":
            self.stats["benign_dropped_empty"] += 1
            return None
        return text

    def benign_records(self, found: Found) -> list[dict[str, Any]]:
        """One record per benign prompt with a helpful answer."""
        pool: list[dict[str, Any]] = []
        for i, r in enumerate(self.benign):
            text = self._helpful_text(found, i)
            if text is None:
                self.stats["benign_dropped"] += 1
                continue
            pool.append(_record(r, harmful=False, helpful=text, helpful_from=self.modes.helpful))
            self.stats["benign_kept"] += 1
        return pool


def _record(prompt: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """A pool record of a prompt record: its id and prompt, then ``fields``."""
    return {
        "id": f"pool-{prompt['id']}",
        "prompt_id": prompt["id"],
        "prompt": prompt["prompt"],
    } | fields


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
