"""Prompt rendering with the model's own chat template (never hand-rolled)."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase


def render_prompt(tok: PreTrainedTokenizerBase, prompt: str, system: str | None = None) -> str:
    """The chat-template text up to and including the assistant header."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def prompt_ids(tok: PreTrainedTokenizerBase, prompt: str, system: str | None = None) -> list[int]:
    """Token ids of :func:`render_prompt`; the template already holds any BOS it needs."""
    return tok(render_prompt(tok, prompt, system), add_special_tokens=False).input_ids


def text_ids(tok: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of a piece of assistant text, with no special tokens added."""
    return tok(text, add_special_tokens=False).input_ids
