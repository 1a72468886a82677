"""TRL's fused LM head, scoring only the labelled positions on a CPU.

TRL 1.16's trainers replace the model's forward with a fused LM head (``add_fused_lm_head``):
``model(..., labels=..., fused_lm_head=True)`` returns per-token log-probabilities without the
full ``(batch, seq, vocab)`` logits. On CUDA it projects only the positions whose label is not
-100; everywhere else it projects every position (prompt and padding included), recomputes the
projection in the backward and accumulates the gradient GEMMs in fp32. On this project's CPU
runs that head was the largest single cost of a training step (profiled at the embedded default's
shapes: ~43% of a bf16 SFT step, where only ~35% of the positions carry a label).

:func:`compact_lm_head` wraps the trainer's patched forward: on a CPU it runs the backbone,
keeps the hidden states at labelled positions, and projects them with the model's own LM head
(under the trainer's autocast, like the rest of the model), scoring in fp32 with
``log_softmax``. Its output is TRL's ``FusedCausalLMOutput`` with the same fields; the per-token
``entropy``, ``mean_logits``, ``log_sum_sq_probs`` and ``is_top1`` are computed without gradient
(SFTTrainer and DPOTrainer log them, detached). Elsewhere (a GPU, pre-shifted labels under
sequence parallelism, a model whose logits are scaled or soft-capped, an MoE model's router
loss) it calls TRL's head unchanged. The trainers here add the head at temperature 1, which this
one assumes.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from transformers import PreTrainedModel
from trl.trainer.utils import FusedCausalLMOutput

from backtrack.train.shared_prefix import backbone_hidden

MARK = "_backtrack_compact_lm_head"


def _plain_logits(model: Any) -> bool:
    """Whether the model's logits are the LM head's output as is (no scale, no soft-cap)."""
    cfg = model.config.get_text_config()
    scaled = any(
        getattr(cfg, k, None) not in (None, 1.0)
        for k in ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")
    )
    moe = getattr(cfg, "output_router_logits", False)  # TRL's head adds the router loss
    return not scaled and not moe and getattr(cfg, "final_logit_softcapping", None) is None


def compact_lm_head(
    model: Any,
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
    shared_prefix: bool = True,
) -> Any:
    """Wrap ``model``'s TRL fused LM head (already added by the trainer) as described above.

    ``autocast`` is the trainer's mixed precision (``trainer.accelerator.autocast``), entered
    around the compact path: accelerate wraps a model's forward in it when it prepares the
    model, and DPOTrainer prepares its reference model before this wrapper is added, so without
    it the reference would run in fp32. (The policy's forward is wrapped again by ``train()``;
    nested, the same autocast changes nothing.)

    ``shared_prefix``: the batch's common leading tokens go through the backbone once
    (:mod:`backtrack.train.shared_prefix`).

    Returns the model; wrapping twice, or wrapping a distributed wrapper (DDP's, which is not a
    ``PreTrainedModel``; it runs on GPUs, where TRL's head is compact already), is a no-op.
    """
    if (
        not isinstance(model, PreTrainedModel)
        or getattr(model, MARK, False)
        or not _plain_logits(model)
    ):
        return model
    fused_forward = model.forward  # TRL's, bound to the model

    @functools.wraps(type(model).forward)  # generate() checks its kwargs against this signature
    def forward(
        self: Any,
        *args: Any,
        fused_lm_head: bool = False,
        labels: torch.Tensor | None = None,
        shift_labels: torch.Tensor | None = None,
        num_items_in_batch: Any = None,
        **kwargs: Any,
    ) -> Any:
        head = self.get_output_embeddings()
        if (
            not fused_lm_head
            or shift_labels is not None
            or head.weight.device.type != "cpu"
            or kwargs.get("output_router_logits")
        ):
            return fused_forward(
                *args,
                fused_lm_head=fused_lm_head,
                labels=labels,
                shift_labels=shift_labels,
                num_items_in_batch=num_items_in_batch,
                **kwargs,
            )
        kwargs["use_cache"] = False
        with autocast():
            if shared_prefix and not args and "input_ids" in kwargs:
                hidden = backbone_hidden(self.base_model, **kwargs)[:, :-1]
            else:
                hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
            labels = labels[:, 1:].to(hidden.device)
            mask = labels != -100
            target = labels[mask]
            logits = head(hidden[mask]).float()
        logp = logits.log_softmax(-1)
        picked = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            entropy = -(logp.exp() * logp).sum(-1)
            mean_logits = logits.mean(-1)
            log_sum_sq = torch.logsumexp(2 * logp, dim=-1)
            # argmax takes the first maximum: a tie with an earlier token is not a top-1 hit (TRL)
            is_top1 = logits.argmax(-1) == target

        def full(x: torch.Tensor) -> torch.Tensor:
            # masked_scatter keeps an all-ignored batch connected to the graph (a zero loss)
            return x.new_zeros(mask.shape).masked_scatter(mask, x)

        log_probs = full(picked)
        denom = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / denom,
            log_probs=log_probs,
            entropy=full(entropy),
            log_sum_sq_probs=full(log_sum_sq),
            mean_logits=full(mean_logits),
            is_top1=full(is_top1),
            label_mask=mask,
        )

    model.forward = types.MethodType(forward, model)
    setattr(model, MARK, True)
    return model
