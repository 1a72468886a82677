"""``backtrack`` command line: a live terminal demo of backtracking.

``backtrack chat --model DIR`` streams a prepared model's answer and retracts the text shown
before each ``[RESET]``; ``backtrack chat --script FILE`` replays a scripted answer (a JSON list
of strings, ``null`` for ``[RESET]``) without any model, for tests and quick demos. Model
libraries are imported only on the ``--model`` path, so a scripted demo starts at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from backtrack.generate.stream import PREFILL_STYLE, RetractingRenderer, replay


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backtrack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    chat = sub.add_parser(
        "chat",
        help="stream an answer, retracting what [RESET] discards",
        description="Stream an answer; on [RESET] the text already shown is erased.",
    )
    source = chat.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="prepared model directory (has [RESET])")
    source.add_argument(
        "--script", type=Path, help="JSON list of strings and nulls (null = [RESET]) to replay"
    )
    chat.add_argument("--prompt", help="one prompt; without it, prompts are read interactively")
    chat.add_argument("--prefill", default="", help="forced start of the answer (an attack)")
    chat.add_argument("--system", help="system message")
    chat.add_argument(
        "--reset-bias", type=float, default=0.0, help="logit bias added to [RESET] (0 = none)"
    )
    chat.add_argument(
        "--max-resets", type=int, default=1, help="cap on [RESET]s per answer (negative = none)"
    )
    chat.add_argument("--max-new-tokens", type=int, default=128)
    chat.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="fp32",
        help="the model's dtype (auto: bf16 where the hardware has it)",
    )
    chat.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    chat.add_argument(
        "--delay", type=float, default=0.0, help="seconds between scripted pieces (--script)"
    )
    return parser


def _load_script(path: Path) -> list[str | None]:
    """Read and check a script, so that a bad file fails before anything is shown."""
    events = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(events, list) or not all(e is None or isinstance(e, str) for e in events):
        raise ValueError(f"{path}: a script is a JSON list of strings and nulls")
    return events


def _show_prefill(renderer: RetractingRenderer, prefill: str) -> None:
    """Show the attacker-forced start as part of the answer, so a reset retracts it too."""
    renderer.feed_text(prefill, style=PREFILL_STYLE)


def _chat_script(args: argparse.Namespace) -> int:
    events = _load_script(args.script)
    renderer = RetractingRenderer(sys.stdout)
    _show_prefill(renderer, args.prefill)
    replay(events, renderer, delay=args.delay)
    return 0


class _ModelChat:
    """A loaded model and the generation settings for every prompt of one session."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        from backtrack.generate.hf import generation_config
        from backtrack.models.base import load_model, load_tokenizer, reset_token_id
        from backtrack.models.precision import Precision

        self.torch = torch
        self.args = args
        self.tok = load_tokenizer(args.model)
        self.model = load_model(args.model, Precision.resolve(args.precision))
        self.reset_id = reset_token_id(self.tok, checkpoint_reset_token(args.model))
        sample = args.temperature > 0
        self.gen_cfg = generation_config(
            self.tok,
            self.reset_id,
            args.max_new_tokens,
            do_sample=sample,
            temperature=args.temperature if sample else 1.0,
            reset_logit_bias=args.reset_bias,
        )

    def answer(self, prompt: str) -> None:
        """Stream one answer to stdout."""
        from transformers import LogitsProcessorList

        from backtrack.generate.hf import ResetCapProcessor
        from backtrack.generate.stream import TokenStreamer
        from backtrack.models.chat import prompt_ids, text_ids

        args, torch = self.args, self.torch
        ids = prompt_ids(self.tok, prompt, args.system)
        if args.prefill:
            ids = ids + text_ids(self.tok, args.prefill)
        procs = LogitsProcessorList()
        if args.max_resets >= 0:
            procs.append(ResetCapProcessor(self.reset_id, args.max_resets, len(ids)))
        renderer = RetractingRenderer(sys.stdout)
        _show_prefill(renderer, args.prefill)
        device = self.model.device
        input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        with torch.no_grad():
            self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=self.gen_cfg,
                logits_processor=procs,
                streamer=TokenStreamer(self.tok, renderer, self.reset_id),
            )


def checkpoint_reset_token(model_dir: Path) -> str:
    """The reset token a prepared checkpoint was made with (its provenance record, written by
    ``prepare_base_model``); a directory without one was not prepared by this project."""
    from backtrack.models.provenance import PROVENANCE_FILE, provenance

    token = provenance(model_dir).get("reset_token")
    if not token:
        raise ValueError(
            f"{Path(model_dir) / PROVENANCE_FILE}: no reset_token recorded; --model needs a "
            "directory made by the workflow (results/models/<model>/...)"
        )
    return token


def _read_prompts() -> Iterator[str]:
    """Prompts typed at ``>>> ``; an empty line or EOF ends the session."""
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            print()
            return
        if not line.strip():
            return
        yield line


def _chat_model(args: argparse.Namespace) -> int:
    chat = _ModelChat(args)
    prompts = [args.prompt] if args.prompt is not None else _read_prompts()
    for prompt in prompts:
        chat.answer(prompt)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``backtrack`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "chat":
        try:
            return _chat_script(args) if args.script else _chat_model(args)
        except KeyboardInterrupt:
            print()
            return 130
    raise AssertionError(f"unhandled command {args.command!r}")


if __name__ == "__main__":
    raise SystemExit(main())
