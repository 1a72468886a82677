"""A training batch's common leading tokens, run through the backbone once.

Every training sequence here opens with the same chat-template turn (SmolLM2's system prompt and
``<|im_start|>user``: 27 of a row's ~75 tokens in the embedded default). A causal backbone
computes the same keys, values and hidden states at those positions in every row, so running
them once at batch size one and repeating the keys and values for the other rows gives the same
hidden states, and, through the repeat's backward (a sum over rows), the same gradients, for a
third fewer positions per step. vLLM's prefix caching does this at inference; transformers and
TRL have nothing for training (TRL 1.16's ``padding_free`` packs rows instead, needs flash
attention, and is switched off for DPO), hence this module.
"""

from __future__ import annotations

from typing import Any

import torch

# Keyword arguments the split forward understands; anything else (images, token types, a cache
# of the caller's) takes the plain forward.
_KNOWN = {"use_cache", "return_dict"}


def common_prefix_len(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> int:
    """Leading positions at which every row has the same token and no padding; at most
    ``width - 1`` (the rest of the batch needs one position of its own), 0 for one row."""
    if input_ids.dim() != 2 or input_ids.shape[0] < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(0)
    if attention_mask is not None:
        same &= (attention_mask != 0).all(0)
    return min(int(same.long().cumprod(0).sum()), input_ids.shape[1] - 1)


def backbone_hidden(
    backbone: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    min_prefix: int = 2,
    **kwargs: Any,
) -> torch.Tensor:
    """``backbone(...).last_hidden_state``, with the batch's common prefix computed once.

    ``backbone`` is a transformers base model (``model.base_model``). The split applies when
    at least ``min_prefix`` leading positions are shared, the positions there are ``0..k-1``,
    and the backbone is not gradient-checkpointed (checkpointing turns the cache off); otherwise
    this is the plain forward.
    """
    k = common_prefix_len(input_ids, attention_mask)
    if position_ids is not None and k:
        expected = torch.arange(k, device=position_ids.device)
        if not bool((position_ids[:, :k] == expected).all()):
            k = 0
    plain = (
        k < min_prefix or set(kwargs) - _KNOWN or getattr(backbone, "gradient_checkpointing", False)
    )
    if plain:
        return backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **kwargs,
        ).last_hidden_state
    rows = input_ids.shape[0]
    head = backbone(input_ids=input_ids[:1, :k], use_cache=True)
    cache = head.past_key_values
    cache.batch_repeat_interleave(rows)  # repeat_interleave: its backward sums over the rows
    tail = backbone(
        input_ids=input_ids[:, k:],
        attention_mask=attention_mask,  # the full width: the prefix's keys are in the cache
        position_ids=None if position_ids is None else position_ids[:, k:],
        past_key_values=cache,
        use_cache=True,
    )
    return torch.cat([head.last_hidden_state.expand(rows, -1, -1), tail.last_hidden_state], 1)
