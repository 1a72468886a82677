"""Run one attack over a prompt set: per-prompt transcripts written as they finish, resumable.

A transcript line is a generation record (``backtrack.generate.hf.describe``: raw, visible,
reset, ...) of the final adversarial prompt, with ``prompt`` set back to the original behaviour
(judges see the request, not the jailbreak, as in HarmBench), plus the attack's own fields:
``attack``, ``attack_prompt``, ``target``, ``adversarial`` (suffix or template), ``losses``,
``steps``, ``stopped``, ``seconds`` and ``check_unsafe`` (the label judge's early-stop verdict).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from backtrack.attacks.adaptive import AdaptiveConfig, run_adaptive
from backtrack.attacks.gcg import GCG, GCGConfig
from backtrack.attacks.scoring import SLOT, banned_token_ids, chat_slots, message_losses
from backtrack.attacks.shards import finished_lines
from backtrack.generate.hf import generate_records, generation_config
from backtrack.io import append_jsonl, read_partial_jsonl, write_jsonl
from backtrack.judge.base import Judge, JudgeInput
from backtrack.models.chat import text_ids
from backtrack.settings import Decoding

log = logging.getLogger(__name__)

T = TypeVar("T")


def fingerprint(*parts: Any) -> str:
    """Short hash of everything a transcript depends on; stale partial lines are ignored."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_stamp(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Identifies a checkpoint cheaply (size and mtime of each weight file)."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    return {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files}


class Evaluator:
    """Generates from an adversarial user message exactly as Table 1 decodes (memoised: greedy
    decoding gives the same answer twice) and asks the label judge for an early-stop verdict.

    ``decoding`` is the job's (its system prompt and seed are the attack's too); the evaluator
    answers one message at a time, once.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tok: PreTrainedTokenizerBase,
        reset_id: int,
        decoding: Decoding,
        check_judge: Judge | None,
    ) -> None:
        self.model, self.tok, self.reset_id = model, tok, reset_id
        self.decoding = decoding.with_(batch_size=1, num_samples=1)
        self.judge = check_judge
        self._memo: dict[tuple[str, str], dict[str, Any]] = {}

    @property
    def system(self) -> str | None:
        """The system prompt every message is sent with."""
        return self.decoding.system

    @property
    def seed(self) -> int:
        """The job's seed (decoding and the attacks' searches)."""
        return self.decoding.seed

    def generate(self, rec: Mapping[str, Any], message: str) -> dict[str, Any]:
        key = (rec["id"], message)
        if key not in self._memo:
            out = generate_records(
                self.model,
                self.tok,
                [{"id": rec["id"], "prompt": message, "harmful": True}],
                self.reset_id,
                self.decoding,
            )[0]
            self._memo[key] = {**out, "prompt": rec["prompt"], "attack_prompt": message}
        return self._memo[key]

    def unsafe(self, rec: Mapping[str, Any], message: str) -> bool:
        if self.judge is None:
            raise RuntimeError("this evaluator generates only: it was given no check judge")
        g = self.generate(rec, message)
        return self.judge.judge([JudgeInput.from_generation(g)])[0].unsafe


def _settings(cls: type[T], params: Mapping[str, Any], **extra: Any) -> T:
    """A settings dataclass from an attack's config section (other keys belong to the runner)."""
    return cls(**{k: v for k, v in params.items() if k in cls.__dataclass_fields__}, **extra)


class GCGAttack:
    """GCG (Zou et al. 2023): a suffix after the prompt, optimised towards the target."""

    def __init__(self, params: Mapping[str, Any], ev: Evaluator, seed: int) -> None:
        self.params, self.ev = params, ev
        rows = ev.model.get_input_embeddings().weight.shape[0]
        banned = banned_token_ids(ev.tok, rows, ev.reset_id, params["allow_non_ascii"])
        self.gcg = GCG(ev.model, ev.tok, _settings(GCGConfig, params, seed=seed), banned)

    def attack(self, rec: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """(message sent, adversarial part, transcript fields) for one prompt."""
        ev = self.ev
        device = next(ev.model.parameters()).device
        self.gcg.reseed(rec["id"])
        target_ids = text_ids(ev.tok, rec["target"])
        slots = chat_slots(ev.tok, f"{rec['prompt']} {SLOT}", target_ids, ev.system, device)

        def check(suffix: str) -> bool:
            return ev.unsafe(rec, f"{rec['prompt']} {suffix}")

        res, extra = self.optimise(slots, check)
        fields = {
            "losses": res.losses,
            "steps": res.steps,
            "stopped": res.stopped,
            "seconds": res.seconds,
            "loss": res.loss,
        }
        return f"{rec['prompt']} {res.suffix}", res.suffix, fields | extra

    def optimise(self, slots: Any, check: Callable[[str], bool]) -> tuple[Any, dict[str, Any]]:
        return self.gcg.optimise(slots, check_fn=check), {}


class AdaptiveAttack(GCGAttack):
    """The adaptive attack: GCG rounds that also push [RESET] down (the paper's Algorithm 1)."""

    def optimise(self, slots: Any, check: Callable[[str], bool]) -> tuple[Any, dict[str, Any]]:
        ev = self.ev
        acfg = AdaptiveConfig(**self.params["adaptive"])
        cont_cfg = generation_config(
            ev.tok,
            ev.reset_id,
            acfg.continuation_tokens,
            reset_logit_bias=ev.decoding.reset_logit_bias,
        )
        res = run_adaptive(self.gcg, slots, ev.reset_id, acfg, gen_cfg=cont_cfg, check_fn=check)
        return res, {"rounds": res.rounds}


class AutoDANAttack:
    """AutoDAN-GA (Liu et al. 2023): a genetic search over whole jailbreak templates."""

    def __init__(self, params: Mapping[str, Any], ev: Evaluator, seed: int) -> None:
        from backtrack.attacks.autodan import AutoDANConfig, load_reference_pool

        self.params, self.ev, self.seed = params, ev, seed
        self.cfg = _settings(AutoDANConfig, params)
        self.pool = load_reference_pool()

    def attack(self, rec: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """(message sent, adversarial part, transcript fields) for one prompt."""
        from backtrack.attacks.autodan import Templates, load_prototype, run_autodan

        ev, acfg = self.ev, self.cfg
        target_ids = text_ids(ev.tok, rec["target"])

        def losses(messages: list[str]) -> list[float]:
            return message_losses(
                ev.model,
                ev.tok,
                messages,
                target_ids,
                system=ev.system,
                batch_size=self.params.get("batch_size") or acfg.population,
            )

        res = run_autodan(
            rec["prompt"],
            losses,
            acfg,
            random.Random(f"{self.seed}-{rec['id']}"),
            Templates(self.pool, init=[load_prototype()]),
            check_fn=lambda m: ev.unsafe(rec, m),
        )
        fields = {
            "losses": res.losses,
            "steps": res.steps,
            "stopped": res.stopped,
            "seconds": res.seconds,
            "loss": res.best_loss,
        }
        return res.best_message, res.best_template, fields


#: The optimising attacks by config name (attacks.run).
ATTACKS: dict[str, type[GCGAttack] | type[AutoDANAttack]] = {
    "gcg": GCGAttack,
    "autodan": AutoDANAttack,
    "adaptive": AdaptiveAttack,
}


def attack_one(
    name: str, attacker: GCGAttack | AutoDANAttack, rec: Mapping[str, Any], ev: Evaluator
) -> dict[str, Any]:
    """Attack one prompt; returns its transcript line."""
    msg, adversarial, fields = attacker.attack(rec)
    final = ev.generate(rec, msg)
    return {
        **final,
        "attack": name,
        "target": rec["target"],
        "adversarial": adversarial,
        **fields,
        "check_unsafe": ev.unsafe(rec, msg),
    }


def run_attack(
    name: str,
    records: list[dict[str, Any]],
    params: Mapping[str, Any],
    ev: Evaluator,
    out_path: str | os.PathLike[str],
    stamp: str,
    *,
    progress: Callable[[dict[str, Any]], None] | None = None,
    reuse: Sequence[str | os.PathLike[str]] = (),
) -> list[dict[str, Any]]:
    """Attack every record with ``ev``'s model, appending each transcript to ``<out>.partial``
    as it finishes; a rerun skips prompts whose partial line carries the same ``stamp``, and so
    does a job that finds such a line in one of the ``reuse`` files (other shards' or an earlier
    split's transcripts, read only). A line counts only for the same prompt and target. The
    complete output is written atomically at the end and the partial file removed.
    """
    partial = Path(f"{out_path}.partial")
    done = finished_here(records, partial, stamp, reuse)
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}")
    attacker = ATTACKS[name](params, ev, ev.seed)
    for p in ev.model.parameters():
        p.requires_grad_(False)  # gradients flow to the one-hot suffix only
    out = []
    for rec in tqdm(records, desc=name, unit="prompt"):
        if rec["id"] not in done:
            t0 = time.perf_counter()
            line = attack_one(name, attacker, rec, ev)
            line["stamp"] = stamp
            line["attack_seconds"] = time.perf_counter() - t0
            append_jsonl(partial, line)
            done[rec["id"]] = line
            if progress:
                progress(line)
        out.append(done[rec["id"]])
    write_jsonl(out_path, out)
    partial.unlink(missing_ok=True)
    return out


def finished_here(
    records: list[dict[str, Any]],
    partial: Path,
    stamp: str,
    reuse: Sequence[str | os.PathLike[str]],
) -> dict[str, dict[str, Any]]:
    """The lines of ``stamp`` a job need not attack again, by id: its own ``partial`` file's,
    then other transcripts' (``reuse``), each copied into ``partial`` so that the job can
    resume from its own file alone. A line counts only for the same prompt and target."""
    mine = {r["id"]: r for r in records}

    def same_prompt(line: dict[str, Any]) -> bool:
        rec = mine.get(line["id"])
        return rec is not None and (line.get("prompt"), line.get("target")) == (
            rec["prompt"],
            rec["target"],
        )

    done: dict[str, dict[str, Any]] = {}
    if partial.exists():
        for line in read_partial_jsonl(partial):
            if line.get("stamp") == stamp and same_prompt(line):
                done[line["id"]] = line
        log.info("resuming: %d of %d prompts already attacked", len(done), len(records))
    others = [p for p in reuse if Path(p).resolve() != partial.resolve()]
    reused = 0
    for i, line in finished_lines(others, stamp).items():
        if i not in done and same_prompt(line):
            done[i] = line
            append_jsonl(partial, line)  # this job's own resumable copy
            reused += 1
    if reused:
        log.info(
            "reused %d finished prompt(s) from %d other transcript file(s)", reused, len(others)
        )
    return done
