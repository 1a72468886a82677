"""Streaming a backtracking answer to a terminal, retracting what ``[RESET]`` discards.

A streaming UI has already shown the unsafe prefix when ``[RESET]`` arrives. The user should see
only what follows the last reset, so :class:`RetractingRenderer` erases the shown text and leaves
a short dim marker in its place; :class:`TokenStreamer` feeds it from HF ``generate`` and
:func:`replay` from a script (demos, tests).

``transformers`` is imported only when :class:`TokenStreamer` is first used, so that scripted
demos start without it (about a second).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from transformers.generation.streamers import BaseStreamer

ESC = "\x1b"
DIM = "2"
PREFILL_STYLE = "33"  # yellow: text the attacker forced, not the model
MARKER_SYMBOL = "⟲"


class Renderer(Protocol):
    """What the streamers need from a renderer (tests may pass a recorder)."""

    def feed_text(self, text: str) -> None: ...

    def reset(self, n_tokens: int) -> None: ...

    def finish(self) -> None: ...


def _color_default(out: TextIO) -> bool:
    """Escapes only for an interactive terminal that wants them (NO_COLOR, TERM=dumb opt out)."""
    isatty = getattr(out, "isatty", None)
    if isatty is None or not isatty():
        return False
    return "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _sanitise(text: str) -> str:
    """Replace control characters other than newline and tab with U+FFFD.

    Model output goes to a terminal: an ESC or CR in it could move the cursor behind the
    renderer's back (breaking the row count) or inject escape sequences.
    """
    return "".join(
        "\ufffd" if (ch < " " and ch not in "\n\t") or "\x7f" <= ch <= "\x9f" else ch for ch in text
    )


class RetractingRenderer:
    """Writes a streamed answer and erases it from the screen when the model resets.

    The renderer assumes the answer starts at column 0 and that each character takes one cell
    (wide and combining characters are out of scope); control characters other than newline and
    tab are shown as U+FFFD, so that model output cannot move the cursor itself.

    To erase, it counts the terminal rows the current segment occupies and moves the cursor up
    that many rows (``ESC[nF``), then clears to the end of the screen (``ESC[J``). Rows are
    counted instead of saving the cursor position (``ESC 7`` / ``ESC[s``) because a saved
    position is a screen coordinate: once the streamed text makes the terminal scroll, the saved
    row points at text further down, and restoring it would leave the scrolled part of the unsafe
    text on screen. (Text scrolled off the top of the screen cannot be erased either way.)

    Without escapes (``out`` is not a terminal, or ``color=False``) nothing can be erased, so a
    plain ``[retracted N tokens]`` line marks the cut and logs stay readable.
    """

    def __init__(
        self, out: TextIO | None = None, *, color: bool | None = None, width: int | None = None
    ) -> None:
        self.out: TextIO = sys.stdout if out is None else out
        self.color = _color_default(self.out) if color is None else color
        self._fixed_width = width
        self._width = self._measure_width()
        self._row = 0  # rows of the current segment above the cursor's row
        self._col = 0  # cells used on the cursor's row; == width means a wrap is pending
        self._symbol = self._encodable(MARKER_SYMBOL)

    def _measure_width(self) -> int:
        """The terminal width, read once per segment: rows already written cannot be re-counted."""
        width = self._fixed_width or shutil.get_terminal_size().columns
        return max(1, width)

    def _encodable(self, symbol: str) -> str:
        """The marker symbol, or ``<<`` where the stream's encoding cannot write it."""
        encoding = getattr(self.out, "encoding", None)
        if not encoding:
            return symbol
        try:
            symbol.encode(encoding)
        except (UnicodeEncodeError, LookupError):
            return "<<"
        return symbol

    def _advance(self, text: str) -> None:
        """Track the cursor as a terminal with autowrap would move it (text is sanitised)."""
        for ch in text:
            if ch == "\n":
                self._row += 1
                self._col = 0
            elif ch == "\t":
                self._col = min((self._col // 8 + 1) * 8, self._width - 1)
            else:
                if self._col >= self._width:  # the pending wrap happens on the next character
                    self._row += 1
                    self._col = 0
                self._col += 1

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def feed_text(self, text: str, *, style: str | None = None) -> None:
        """Append visible text; ``style`` is an SGR code (e.g. :data:`PREFILL_STYLE`)."""
        text = _sanitise(text)
        if not text:
            return
        self._advance(text)
        if style and self.color:
            text = f"{ESC}[{style}m{text}{ESC}[0m"
        self._write(text)

    def reset(self, n_tokens: int) -> None:
        """Erase the text shown since the answer started or since the last reset, then mark it."""
        label = f"retracted {n_tokens} token{'' if n_tokens == 1 else 's'}"
        if self.color:
            # Counted rows, not a saved cursor position: that breaks once the terminal scrolls.
            up = f"{ESC}[{self._row}F" if self._row else "\r"
            self._write(f"{up}{ESC}[J{ESC}[{DIM}m{self._symbol} {label}{ESC}[0m\n")
        else:
            self._write(f"{chr(10) if self._col else ''}[{label}]\n")
        self._row = self._col = 0
        self._width = self._measure_width()

    def finish(self) -> None:
        """End the answer's line so that what follows starts on a fresh row."""
        if self._col:
            self._write("\n")
        else:
            self.out.flush()
        self._row = self._col = 0
        self._width = self._measure_width()


class _TokenStreamerImpl:
    """The logic of :class:`TokenStreamer`, kept free of ``transformers`` (see module doc)."""

    def __init__(
        self,
        tok: Any,
        renderer: Renderer,
        reset_id: int,
        eos_ids: Sequence[int] | None = None,
        prefill_tokens: int = 0,
    ) -> None:
        self.tok, self.renderer, self.reset_id = tok, renderer, reset_id
        self.prefill_tokens = prefill_tokens
        self.answer_resets = 0
        if eos_ids is None:
            eos_ids = [] if tok.eos_token_id is None else [tok.eos_token_id]
        self.eos_ids = set(eos_ids)
        self._start()

    def _start(self) -> None:
        self._prompt_seen = False
        self._ended = False
        self._segment: list[int] = []
        self._shown = ""  # decoded text of the segment already handed to the renderer
        # Tokens shown before the first generated one (a prefill): the first reset erases them.
        self._before = self.prefill_tokens
        self.resets = 0

    def put(self, value: Any) -> None:
        """Take the prompt (skipped), then each new token, from ``generate``."""
        shape = tuple(value.shape)
        # The prompt comes as (batch, length), each new token as (batch,).
        rows = shape[0] if shape and (len(shape) > 1 or self._prompt_seen) else 1
        if rows != 1:
            raise ValueError(f"TokenStreamer supports batch size 1 only, got shape {shape}")
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        ids = value.tolist()
        if len(shape) > 1:
            ids = ids[0]
        for tid in ids if isinstance(ids, list) else [ids]:
            self._token(int(tid))

    def _token(self, tid: int) -> None:
        if self._ended:
            return
        if tid in self.eos_ids:
            self._flush(final=True)
            self._ended = True
        elif tid == self.reset_id:
            self.renderer.reset(self._before + len(self._segment))
            self.resets += 1
            self._segment, self._shown, self._before = [], "", 0
        else:
            self._segment.append(tid)
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        """Hand over the newly decoded suffix of the segment.

        The whole segment is decoded each time because one character can span several tokens
        (byte-level BPE): a trailing U+FFFD means its last bytes are still to come, so it waits.
        """
        text = self.tok.decode(
            self._segment, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        if not final and text.endswith("\ufffd"):
            return
        if len(text) > len(self._shown):
            self.renderer.feed_text(text[len(self._shown) :])
            self._shown = text

    def end(self) -> None:
        """Flush held-back text, end the answer's line, and get ready for another prompt."""
        if not self._ended:
            self._flush(final=True)
        self.renderer.finish()
        self.answer_resets = self.resets  # what the finished answer did, for the caller
        self._start()


@functools.cache
def _token_streamer_class() -> type[_TokenStreamerImpl]:
    from transformers.generation.streamers import BaseStreamer

    class TokenStreamer(_TokenStreamerImpl, BaseStreamer):
        """Streams one generated answer (batch size 1) from HF ``generate`` to a renderer.

        ``tok`` decodes; ``[RESET]`` (``reset_id``) retracts the current segment, whose token
        count the marker shows (the first segment's count includes the ``prefill_tokens`` shown
        before generation began: they are erased too); generation stops being rendered at an
        EOS id (``eos_ids``, default the tokenizer's). Tokens are decoded by id, never by
        searching the decoded text for ``[RESET]``, like
        :func:`backtrack.generate.hf.split_generation`.
        """

    TokenStreamer.__module__ = __name__
    TokenStreamer.__qualname__ = "TokenStreamer"
    return TokenStreamer


if TYPE_CHECKING:

    class TokenStreamer(_TokenStreamerImpl, BaseStreamer):
        """See :func:`_token_streamer_class` (the real class is built on first use)."""


def __getattr__(name: str) -> Any:
    """Build :class:`TokenStreamer` (a ``BaseStreamer`` subclass) only when it is asked for."""
    if name == "TokenStreamer":
        return _token_streamer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def replay(
    events: Iterable[str | None], renderer: Renderer, delay: float = 0.0, shown: int = 0
) -> None:
    """Play a scripted answer: each event is a piece of text, or ``None`` for ``[RESET]``.

    Each piece counts as one token in the retraction marker, as do ``shown`` pieces already on
    screen before it (a prefill); ``delay`` seconds pass after each event, so that a demo
    streams at a readable pace.
    """
    count = shown
    for event in events:
        if event is None:
            renderer.reset(count)
            count = 0
        else:
            renderer.feed_text(event)
            count += 1
        if delay > 0:
            time.sleep(delay)
    renderer.finish()
