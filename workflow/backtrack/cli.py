"""``backtrack`` command line: a live terminal demo of backtracking.

``backtrack chat --model DIR`` streams a prepared model's answer and retracts the text shown
before each ``[RESET]``; ``backtrack chat --script FILE`` replays a scripted answer (a JSON list
of strings, ``null`` for ``[RESET]``) without any model, for tests and quick demos. Model
libraries are imported only on the ``--model`` path, so a scripted demo starts at once.

Problems the user can fix (a missing or unprepared model directory, an empty prompt, a prompt
longer than the model's context) end in one line on stderr and exit code 2, before any model
library loads where that is possible.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from backtrack.generate.stream import PREFILL_STYLE, RetractingRenderer, replay

EXIT_USAGE = 2
#: The directories the workflow writes checkpoints to (``results/models/<model>/...``).
CHECKPOINT_PATH = re.compile(
    r"(?:^|/)(results/models/[^/]+/(?:base|[^/]+/seed[0-9]+/(?:sft|dpo)))/?$"
)
CHECKPOINTS = "results/models/<model>/base or results/models/<model>/<method>/seed<N>/{sft,dpo}"


class ChatError(ValueError):
    """A problem with the command's input that the user can fix; the message says how."""


class PromptError(ChatError):
    """One prompt cannot be answered; an interactive session asks for another."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    chat.add_argument(
        "--prompt", help="one prompt; without it, prompts are read interactively (Ctrl-D ends)"
    )
    chat.add_argument("--prefill", default="", help="forced start of the answer (an attack)")
    chat.add_argument("--system", help="system message")
    chat.add_argument(
        "--reset-bias", type=float, default=0.0, help="logit bias added to [RESET] (0 = none)"
    )
    chat.add_argument(
        "--max-resets", type=int, default=1, help="cap on [RESET]s per answer (negative = none)"
    )
    chat.add_argument("--max-new-tokens", type=_positive_int, default=128)
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
    try:
        events = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ChatError(f"--script {path}: cannot read it ({e.strerror or e})") from e
    except ValueError as e:
        raise ChatError(f"--script {path}: not valid JSON ({e})") from e
    if not isinstance(events, list) or not all(e is None or isinstance(e, str) for e in events):
        raise ChatError(f"{path}: a script is a JSON list of strings and nulls")
    return events


def _show_prefill(renderer: RetractingRenderer, prefill: str) -> None:
    """Show the attacker-forced start as part of the answer, so a reset retracts it too."""
    renderer.feed_text(prefill, style=PREFILL_STYLE)


def _chat_script(args: argparse.Namespace) -> int:
    events = _load_script(args.script)
    renderer = RetractingRenderer(sys.stdout)
    _show_prefill(renderer, args.prefill)
    replay(events, renderer, delay=args.delay, shown=1 if args.prefill else 0)
    return 0


def check_prompt(prompt: str) -> str:
    """Refuse an empty or whitespace-only prompt: the model would answer a bare template."""
    if not prompt.strip():
        raise PromptError("empty prompt: type a question for the model")
    return prompt


def check_context(model_dir: Path, n_prompt: int, max_new_tokens: int, context: int | None) -> None:
    """Refuse a prompt whose tokens plus the answer's budget exceed the model's context.

    Past ``max_position_embeddings`` the model sees positions it was never trained on and
    writes garbage; refusing says why instead.
    """
    if context is None or n_prompt + max_new_tokens <= context:
        return
    raise PromptError(
        f"prompt too long: {n_prompt} tokens (chat template and --prefill included) plus "
        f"--max-new-tokens {max_new_tokens} is {n_prompt + max_new_tokens}, over the model's "
        f"context of {context} tokens (max_position_embeddings in {model_dir / 'config.json'}); "
        "shorten the prompt or lower --max-new-tokens"
    )


class _ModelChat:
    """A loaded model and the generation settings for every prompt of one session."""

    def __init__(self, args: argparse.Namespace, reset_token: str) -> None:
        import torch
        from transformers.utils import logging as hf_logging

        from backtrack.generate.hf import generation_config
        from backtrack.models.base import load_model, load_tokenizer, reset_token_id
        from backtrack.models.precision import Precision

        hf_logging.disable_progress_bar()  # no weight-loading bar between prompt and answer
        self.torch = torch
        self.args = args
        self.tok = load_tokenizer(args.model)
        self.model = load_model(args.model, Precision.resolve(args.precision))
        self.context: int | None = getattr(self.model.config, "max_position_embeddings", None)
        self.reset_id = reset_token_id(self.tok, reset_token)
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
        """Stream one answer to stdout; :class:`PromptError` before anything is shown when the
        prompt cannot be answered."""
        from transformers import LogitsProcessorList

        from backtrack.generate.hf import ResetCapProcessor
        from backtrack.generate.stream import TokenStreamer
        from backtrack.models.chat import prompt_ids, text_ids

        args, torch = self.args, self.torch
        check_prompt(prompt)
        ids = prompt_ids(self.tok, prompt, args.system)
        prefill = text_ids(self.tok, args.prefill) if args.prefill else []
        ids = ids + prefill
        check_context(args.model, len(ids), args.max_new_tokens, self.context)
        procs = LogitsProcessorList()
        if args.max_resets >= 0:
            procs.append(ResetCapProcessor(self.reset_id, args.max_resets, len(ids)))
        renderer = RetractingRenderer(sys.stdout)
        _show_prefill(renderer, args.prefill)
        device = self.model.device
        input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        streamer = TokenStreamer(self.tok, renderer, self.reset_id, prefill_tokens=len(prefill))
        with torch.no_grad():
            self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=self.gen_cfg,
                logits_processor=procs,
                streamer=streamer,
            )
        hint = reset_hint(args.model, args.reset_bias) if streamer.answer_resets else None
        if hint:
            print(f"({hint})", file=sys.stderr)


def _build_hint(model_dir: Path) -> str:
    """What to run to get a usable ``--model`` directory."""
    m = CHECKPOINT_PATH.search(model_dir.as_posix())
    if m:
        return f"build it in the workflow directory with: snakemake --cores all {m.group(1)}"
    return f"pass a directory the workflow built ({CHECKPOINTS})"


def checkpoint_reset_token(model_dir: Path) -> str:
    """The reset token a prepared checkpoint was made with (its provenance record, written by
    ``prepare_base_model``); a directory without one was not prepared by this project."""
    from backtrack.models.provenance import PROVENANCE_FILE, provenance

    model_dir = Path(model_dir)
    record = model_dir / PROVENANCE_FILE
    try:
        token = provenance(model_dir).get("reset_token")
    except (OSError, ValueError) as e:
        raise ChatError(f"{record}: unreadable ({e}); {_build_hint(model_dir)}") from e
    if not token:
        raise ChatError(
            f"{record}: no reset_token recorded, so --model is not a directory the workflow "
            f"prepared; {_build_hint(model_dir)}"
        )
    return token


def check_model_dir(model_dir: Path) -> str:
    """Check ``--model`` before any model library loads and return its reset token, so that a
    wrong path costs one line, not a transformers traceback about hub repo ids."""
    if not model_dir.is_dir():
        raise ChatError(f"--model {model_dir}: no such directory; {_build_hint(model_dir)}")
    token = checkpoint_reset_token(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ChatError(
            f"--model {model_dir}: no config.json, so the checkpoint is incomplete; "
            f"{_build_hint(model_dir)}"
        )
    return token


#: Printed once when an interactive session starts, so a bare ``>>>`` is never a puzzle.
GREETING = "Type a prompt and press Enter; Ctrl-D (or Ctrl-C) quits."


def reset_hint(model_dir: Path, bias: float) -> str | None:
    """A line for after an answer that reset: the ``--reset-bias`` that the logit-bias sweep of
    this checkpoint's run recommends against spurious resets
    (:func:`backtrack.sweeps.curves.recommended_bias`), or how to measure one. None where the
    sweep exists and recommends nothing (or cannot be read)."""
    import csv

    # absolute(), not resolve(): a symlinked results/ must still name its own run directory.
    m = CHECKPOINT_PATH.search(Path(model_dir).absolute().as_posix())
    parts = m.group(1).split("/") if m else []
    if len(parts) != 6:  # results/models/<model>/<method>/seed<N>/<stage>
        return None
    lead = "if the request was harmless, this reset was spurious"
    sweep = Path(model_dir).absolute().parents[5] / "results/logit_bias.csv"
    if not sweep.is_file():
        return (
            f"{lead}: a negative --reset-bias makes resets rarer; the logit-bias sweep "
            "(snakemake --cores all results/logit_bias.csv) measures what it costs"
        )
    from backtrack.sweeps.curves import recommended_bias

    model, method, seed, stage = parts[2], parts[3], parts[4].removeprefix("seed"), parts[5]
    with sweep.open(newline="") as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if (r["model"], r["method"], r["seed"], r["stage"]) == (model, method, seed, stage)
        ]
    try:
        best = recommended_bias(rows, bias)
    except (KeyError, ValueError):  # a column missing or a rate not measured (empty cell)
        return None
    if best is None:
        return None
    at = {float(r["bias"]): r for r in rows}
    now, then = float(at[bias]["benign_reset_rate"]), float(at[best]["benign_reset_rate"])
    return (
        f"{lead}: --reset-bias {best:g} makes resets rarer; results/logit_bias.csv measures "
        f"{then:.0%} of benign prompts reset there against {now:.0%} at {bias:g}, with no "
        "harmful set measurably less safe"
    )


def _read_prompts() -> Iterator[str]:
    """Prompts typed at ``>>> ``; EOF (Ctrl-D) ends the session, an empty line asks again."""
    print(GREETING, file=sys.stderr)
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            print()
            return
        if not line.strip():
            print("empty prompt: type a question, or press Ctrl-D to quit", file=sys.stderr)
            continue
        yield line


def _chat_model(args: argparse.Namespace) -> int:
    from backtrack.models.provenance import CheckpointError

    if args.prompt is not None:
        check_prompt(args.prompt)
    reset_token = check_model_dir(args.model)
    try:
        chat = _ModelChat(args, reset_token)
    except CheckpointError as e:
        raise ChatError(str(e)) from e
    if args.prompt is not None:
        chat.answer(args.prompt)
        return 0
    for prompt in _read_prompts():
        try:
            chat.answer(prompt)
        except PromptError as e:
            print(f"backtrack chat: {e}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``backtrack`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "chat":
        try:
            return _chat_script(args) if args.script else _chat_model(args)
        except ChatError as e:
            print(f"backtrack chat: {e}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print()
            return 130
    raise AssertionError(f"unhandled command {args.command!r}")


if __name__ == "__main__":
    raise SystemExit(main())
