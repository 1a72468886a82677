"""Grouped-query attention without copying key and value heads, for CPU inference.

Why it is written here: on a CPU neither of transformers' attention paths suits decoding.
torch's SDPA kernel is slow for one query position over a short cache, and the eager path first
copies every key and value head ``num_key_value_groups`` times (``repeat_kv``), then runs one
small matmul per query head. Here each key/value head is read once by its group of query heads,
stacked into one matmul. Measured with ``tools/benchmark_attention.py`` (SmolLM2-135M: 9 query
heads over 3 key/value heads; AdvBench at batch 128, 48 new tokens, bf16, 1 thread): a full-
batch decode step 0.85x SDPA's time, the whole decode 0.90x its CPU time. The operations are the
eager path's, in its dtypes (scores in the model's dtype, softmax in float32, cast back); only a
matmul's summation order can differ. SDPA rounds differently in bf16, so greedy answers change
at near-ties. It is registered with transformers' ``AttentionInterface`` under :data:`NAME` and
uses the eager path's additive mask, so a model selects it like any other
(``attn_implementation=NAME``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

NAME = "grouped_eager"


def grouped_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The eager attention of transformers' decoder models (Llama, Gemma-3: optional logit
    softcap), with the query heads of each key/value head stacked along the query axis.

    Shapes as transformers passes them: ``query`` [batch, heads, q, dim], ``key``/``value``
    [batch, kv_heads, kv, dim], ``attention_mask`` additive [batch, 1, q, kv] or None. Returns
    the output [batch, q, heads, dim] and the weights [batch, heads, q, kv].
    """
    if kwargs.get("s_aux") is not None or kwargs.get("sinks") is not None:
        raise ValueError(f"{NAME} attention does not support attention sinks")
    b, h, q, d = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    groups = h // kv_heads
    if scaling is None:
        scaling = d**-0.5
    # [b, kv_heads, groups * q, dim]: query heads 0..groups-1 read key/value head 0, and so on,
    # as repeat_kv pairs them.
    weights = torch.matmul(query.reshape(b, kv_heads, groups * q, d), key.transpose(2, 3))
    weights = weights * scaling
    if softcap is not None:
        weights = torch.tanh(weights / softcap) * softcap
    if attention_mask is not None:
        if attention_mask.shape[1] != 1:
            raise ValueError(f"{NAME} attention expects a mask shared by all heads")
        mask = attention_mask[:, :, None, :, :kv_len]  # [b, 1, 1, q, kv]
        weights = (weights.view(b, kv_heads, groups, q, kv_len) + mask).view(
            b, kv_heads, groups * q, kv_len
        )
    weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    out = torch.matmul(weights, value).view(b, h, q, d)
    return out.transpose(1, 2).contiguous(), weights.view(b, h, q, kv_len)


AttentionInterface.register(NAME, grouped_attention_forward)
AttentionMaskInterface.register(NAME, eager_mask)


def inference_attention(cuda: bool) -> str:
    """The attention a model runs with for inference: SDPA on a GPU (its fused kernels are
    fast there), :data:`NAME` on a CPU."""
    return "sdpa" if cuda else NAME
