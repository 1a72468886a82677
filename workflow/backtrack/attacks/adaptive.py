"""The adaptive attack: GCG aimed at backtracking itself (the paper's Algorithm 1, as we read it).

The paper does not publish its pseudocode in full. Our reading, from the
reviews' description ("an adaptive version of GCG ... designed to counteract the reset
function"):

1. Optimise a GCG suffix on ``L(target) + w · mean_t -log(1 - P([RESET]))`` (``L`` is GCG's
   target loss, ``attacks.gcg.loss``), the second term
   taken at every position of the *protected segment* (the target, then whatever the model
   itself said after it) and at the position after it. A backtracking model can follow the
   target and still reset a few tokens later; plain GCG ignores that, this loss does not.
2. After each round of ``steps_per_round`` steps, evaluate exactly as a user would see it:
   generate from the adversarial prompt with the deployed decoding (bias, reset cap) and judge
   the visible answer. Success ends the attack.
3. Otherwise, find where the model resets when it is made to follow the segment: greedily
   continue ``prompt ⊕ suffix ⊕ segment``; if it emits ``[RESET]``, append the tokens it
   produced before the ``[RESET]`` to the protected segment (cross-entropy stays on the target
   only), so the next round also suppresses the reset there. Keep optimising from the current
   suffix until success or the budget (rounds, steps, seconds) is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import GenerationConfig, PreTrainedModel

from backtrack import jobstats
from backtrack.attacks.gcg import GCG, GCGResult, Round
from backtrack.attacks.scoring import ChatSlots, ResetAwareLoss


@dataclass
class AdaptiveConfig:
    """Budget of the adaptive loop on top of the GCG settings."""

    reset_weight: float = 1.0
    steps_per_round: int = 10
    max_rounds: int = 5
    continuation_tokens: int = 32
    max_segment_tokens: int = 128

    def __post_init__(self) -> None:
        if self.reset_weight < 0:
            raise ValueError(f"adaptive.reset_weight must be >= 0, got {self.reset_weight}")
        for name in ("steps_per_round", "max_rounds", "continuation_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"adaptive.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class AdaptiveResult(GCGResult):
    """GCG's result over all rounds, with each round's record."""

    stopped: str = "budget_rounds"  # success | budget_rounds | budget_time | no_candidates
    rounds: list[dict[str, Any]] = field(default_factory=list)


@torch.no_grad()
def continuation_until_reset(
    model: PreTrainedModel, ids: torch.Tensor, reset_id: int, gen_cfg: GenerationConfig
) -> tuple[list[int], bool]:
    """Greedy continuation of ``ids``: the tokens before the first ``[RESET]``, and whether
    the model reset at all (it stops at EOS or after ``gen_cfg.max_new_tokens``).
    """
    out = model.generate(
        input_ids=ids[None],
        attention_mask=torch.ones_like(ids)[None],
        generation_config=gen_cfg,
    )[0, ids.numel() :].tolist()
    jobstats.count("forward", ids.numel() + len(out), len(out))
    if reset_id in out:
        return out[: out.index(reset_id)], True
    return out, False


def run_adaptive(
    gcg: GCG,
    slots: ChatSlots,
    reset_id: int,
    cfg: AdaptiveConfig,
    *,
    gen_cfg: GenerationConfig,
    check_fn: Callable[[str], bool],
    on_step: Callable[[int, float, str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AdaptiveResult:
    """Rounds of reset-aware GCG until ``check_fn(suffix)`` says the visible answer is unsafe.

    ``slots.segment`` starts as the target; ``gen_cfg`` (greedy, the deployed ``[RESET]`` bias,
    ``continuation_tokens`` new tokens, no reset cap) finds where the model resets.
    """
    start = clock()
    deadline = start + gcg.cfg.max_seconds if gcg.cfg.max_seconds is not None else None
    n_target = slots.segment.numel()
    out = AdaptiveResult("", [], float("inf"))
    suffix: torch.Tensor | None = None
    for r in range(cfg.max_rounds):
        loss_fn = ResetAwareLoss(reset_id, cfg.reset_weight, n_target, gcg.cfg.target_loss())
        res = gcg.optimise(
            slots,
            loss_fn=loss_fn,
            part=Round(suffix, cfg.steps_per_round, deadline),
            on_step=on_step,
            clock=clock,
        )
        suffix = torch.tensor(res.suffix_ids, dtype=torch.long, device=slots.segment.device)
        out.losses += res.losses
        out.steps += res.steps
        out.suffix, out.suffix_ids, out.loss = res.suffix, res.suffix_ids, res.loss
        success = check_fn(res.suffix)
        ids = torch.cat([slots.before, suffix, slots.after, slots.segment])
        cont, reset = continuation_until_reset(gcg.model, ids, reset_id, gen_cfg)
        out.rounds.append(
            {
                "round": r,
                "steps": res.steps,
                "loss": res.loss,
                "segment_tokens": slots.segment.numel(),
                "success": success,
                "reset_after_segment": reset,
                "tokens_before_reset": len(cont) if reset else None,
            }
        )
        if success:
            out.stopped = "success"
            break
        if res.stopped in ("no_candidates", "budget_time"):
            out.stopped = res.stopped
            break
        if reset and cont:
            room = cfg.max_segment_tokens - slots.segment.numel()
            extra = torch.tensor(cont[: max(room, 0)], dtype=torch.long, device=suffix.device)
            slots = slots.with_segment(torch.cat([slots.segment, extra]))
    out.seconds = clock() - start
    return out
