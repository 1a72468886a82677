"""The live demo: retraction on [RESET], as escape sequences, as plain text and on a real screen."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch
from backtrack.cli import checkpoint_reset_token, main
from backtrack.generate.stream import RetractingRenderer, TokenStreamer, replay

BIN = Path(sys.executable).parent / "backtrack"
PREFILL = "Sure, here is how"
UNSAFE = (
    " to pick a pin tumbler lock: slide the tension wrench into the bottom of the keyway, "
    "keep light torque and rake every pin upward until the plug turns free."
)
SAFE = "I'm sorry, but I can't help with that."


class FakeTTY(io.StringIO):
    """A StringIO that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def words(text: str) -> list[str]:
    """Split text into pieces that keep their leading space, like BPE tokens."""
    return re.findall(r" ?\S+", text)


def test_plain_stream_has_no_escapes() -> None:
    out = io.StringIO()
    r = RetractingRenderer(out)
    replay(["Step", " one", None, "No."], r)
    assert out.getvalue() == "Step one\n[retracted 2 tokens]\nNo.\n"
    assert "\x1b" not in out.getvalue()


def test_plain_marker_after_newline_and_with_color_off() -> None:
    out = FakeTTY()
    r = RetractingRenderer(out, color=False, width=20)
    r.feed_text("line\n")
    r.reset(1)
    r.finish()
    assert out.getvalue() == "line\n[retracted 1 token]\n"


def test_tty_retraction_of_wrapped_text() -> None:
    out = FakeTTY()
    r = RetractingRenderer(out, color=True, width=20)
    r.feed_text("a" * 45)  # rows of 20, 20 and 5 cells: the cursor is 2 rows below the start
    r.reset(7)
    r.feed_text("ok")
    r.finish()
    assert out.getvalue() == "a" * 45 + "\x1b[2F\x1b[J\x1b[2m⟲ retracted 7 tokens\x1b[0m\nok\n"


def test_tty_pending_wrap_stays_on_its_row() -> None:
    out = FakeTTY()
    r = RetractingRenderer(out, color=True, width=20)
    r.feed_text("b" * 40)  # exactly two full rows: the cursor waits at the end of row 2
    r.reset(2)
    assert out.getvalue() == "b" * 40 + "\x1b[1F\x1b[J\x1b[2m⟲ retracted 2 tokens\x1b[0m\n"


def test_tty_retraction_of_text_with_newline() -> None:
    out = FakeTTY()
    r = RetractingRenderer(out, color=True, width=20)
    r.feed_text("hello\n" + "w" * 25)  # 1 row, then 25 cells wrapping to a 2nd: 2 rows up
    r.reset(3)
    assert (
        out.getvalue() == "hello\n" + "w" * 25 + "\x1b[2F\x1b[J\x1b[2m⟲ retracted 3 tokens\x1b[0m\n"
    )


def test_tty_retraction_on_the_same_row_and_twice() -> None:
    out = FakeTTY()
    r = RetractingRenderer(out, color=True, width=20)
    r.feed_text("Sure", style="33")
    r.reset(1)
    r.feed_text("x\ny")
    r.reset(2)
    marker = "\x1b[J\x1b[2m⟲ retracted {} token{}\x1b[0m\n"
    expected = "\x1b[33mSure\x1b[0m\r" + marker.format(1, "")
    expected += "x\ny\x1b[1F" + marker.format(2, "s")
    assert out.getvalue() == expected


def test_control_characters_cannot_move_the_cursor() -> None:
    out = FakeTTY()
    r = RetractingRenderer(out, color=True, width=20)
    r.feed_text("a\x1b[2Jb\rc")
    r.reset(1)
    assert out.getvalue().startswith("a\ufffd[2Jb\ufffdc\r\x1b[J")


class FakeTokenizer:
    """Ids 0..n map to byte strings; id 9 is half of a two-byte character."""

    eos_token_id = 2
    pieces: ClassVar[dict[int, bytes]] = {3: b"Step", 4: b" one", 5: b" No", 6: b"."}
    pieces |= {7: b" caf", 8: b"\xc3", 9: b"\xa9"}

    def decode(self, ids: list[int], **kw: Any) -> str:
        return b"".join(self.pieces[i] for i in ids).decode("utf-8", errors="replace")


class Recorder:
    """Records renderer calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def feed_text(self, text: str) -> None:
        self.calls.append(("text", text))

    def reset(self, n_tokens: int) -> None:
        self.calls.append(("reset", n_tokens))

    def finish(self) -> None:
        self.calls.append(("finish", None))


def test_token_streamer_skips_prompt_retracts_and_stops_at_eos() -> None:
    from transformers.generation.streamers import BaseStreamer

    rec = Recorder()
    s = TokenStreamer(FakeTokenizer(), rec, reset_id=1)
    assert isinstance(s, BaseStreamer)
    s.put(torch.tensor([[3, 4, 5]]))  # the prompt
    for tid in [3, 4, 7, 8, 9, 1, 5, 6, 2, 4]:
        s.put(torch.tensor([tid]))
    s.end()
    assert rec.calls == [
        ("text", "Step"),
        ("text", " one"),
        ("text", " caf"),
        ("text", "é"),  # held back until its second byte arrived
        ("reset", 5),
        ("text", " No"),
        ("text", "."),
        ("finish", None),
    ]


def test_token_streamer_rejects_batches() -> None:
    s = TokenStreamer(FakeTokenizer(), Recorder(), reset_id=1)
    with pytest.raises(ValueError, match="batch size 1"):
        s.put(torch.tensor([[3], [4]]))


def test_the_first_reset_also_counts_the_prefill_it_erases() -> None:
    rec = Recorder()
    s = TokenStreamer(FakeTokenizer(), rec, reset_id=1, prefill_tokens=4)
    s.put(torch.tensor([[3, 4, 5]]))  # the prompt (the prefill's tokens end it)
    for tid in [1, 3, 1, 5]:  # reset at once, one token, reset again, one token
        s.put(torch.tensor([tid]))
    s.end()
    resets = [n for kind, n in rec.calls if kind == "reset"]
    assert resets == [4, 1]  # the prefill alone, then only what was generated after


def write_script(tmp_path: Path) -> Path:
    path = tmp_path / "script.json"
    path.write_text(json.dumps([*words(UNSAFE), None, *words(SAFE)]))
    return path


def test_main_script_to_plain_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--script", str(write_script(tmp_path)), "--prefill", PREFILL]) == 0
    out = capsys.readouterr().out
    n = len(words(UNSAFE)) + 1  # the prefill is erased too: one more scripted piece
    assert out == f"{PREFILL}{UNSAFE}\n[retracted {n} tokens]\n{SAFE}\n"


def test_main_model_path_wires_generate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The --model path, with the model and tokenizer faked (no weights are loaded)."""
    seen: dict[str, Any] = {}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m/config.json").write_text("{}")

    class Tok(FakeTokenizer):
        pad_token_id = 0

        def apply_chat_template(self, messages: list[dict[str, str]], **kw: Any) -> str:
            return "P"

        def __call__(self, text: str, **kw: Any) -> SimpleNamespace:
            return SimpleNamespace(input_ids=[10] if text == "P" else [11, 12])

    class Model:
        device = torch.device("cpu")
        config = SimpleNamespace(max_position_embeddings=131)  # 3 prompt + 128 new: fits

        def to(self, device: str) -> Model:
            return self

        def generate(self, **kw: Any) -> None:
            seen.update(kw)
            for t in [kw["input_ids"], *(torch.tensor([i]) for i in [3, 1, 5, 6, 2])]:
                kw["streamer"].put(t)
            kw["streamer"].end()

    monkeypatch.setattr("backtrack.models.base.load_tokenizer", lambda d: Tok())
    monkeypatch.setattr("backtrack.models.base.load_model", lambda d, precision: Model())
    monkeypatch.setattr("backtrack.models.base.reset_token_id", lambda tok, t: 1)
    monkeypatch.setattr("backtrack.models.provenance.provenance", lambda d: {"reset_token": "R"})
    argv = ["chat", "--model", "m", "--prompt", "q", "--prefill", "Sure", "--reset-bias", "2"]
    assert main(argv) == 0
    # the prefill's 2 tokens and the 1 generated before [RESET] are erased
    assert capsys.readouterr().out == "SureStep\n[retracted 3 tokens]\n No.\n"
    assert seen["input_ids"].tolist() == [[10, 11, 12]]
    assert seen["generation_config"].sequence_bias == {(1,): 2.0}
    assert seen["generation_config"].do_sample is False
    (cap,) = seen["logits_processor"]
    assert (cap.reset_id, cap.max_resets, cap.prompt_len) == (1, 1, 3)


def test_the_reset_token_comes_from_the_checkpoint(tmp_path: Path) -> None:
    """The demo decodes with the token the checkpoint was prepared with; without a record of
    it, the error names the file it looked in."""
    (tmp_path / "backtrack_provenance.json").write_text('{"reset_token": "<undo>"}')
    assert checkpoint_reset_token(tmp_path) == "<undo>"
    with pytest.raises(ValueError, match=r"empty/backtrack_provenance\.json"):
        checkpoint_reset_token(tmp_path / "empty")


MODEL_DIR = "results/models/tiny/backtrack/seed0/dpo"


class ChatTok(FakeTokenizer):
    """The template adds one token; each word of a prompt or prefill is one more."""

    pad_token_id = 0

    def apply_chat_template(self, messages: list[dict[str, str]], **kw: Any) -> str:
        return "<t> " + messages[-1]["content"]

    def __call__(self, text: str, **kw: Any) -> SimpleNamespace:
        return SimpleNamespace(input_ids=[11] * len(text.split()))


def fake_chat(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, context: int
) -> tuple[Path, list[list[int]]]:
    """A prepared-looking checkpoint directory whose model is faked; returns the directory and
    the list that collects each prompt's ids handed to ``generate``."""
    model_dir = tmp_path / MODEL_DIR
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text(json.dumps({"max_position_embeddings": context}))
    (model_dir / "backtrack_provenance.json").write_text('{"reset_token": "[RESET]"}')
    prompts: list[list[int]] = []

    class Model:
        device = torch.device("cpu")
        config = SimpleNamespace(max_position_embeddings=context)

        def generate(self, **kw: Any) -> None:
            prompts.append(kw["input_ids"][0].tolist())
            for t in [kw["input_ids"], torch.tensor([3]), torch.tensor([2])]:
                kw["streamer"].put(t)
            kw["streamer"].end()

    monkeypatch.setattr("backtrack.models.base.load_tokenizer", lambda d: ChatTok())
    monkeypatch.setattr("backtrack.models.base.load_model", lambda d, precision: Model())
    monkeypatch.setattr("backtrack.models.base.reset_token_id", lambda tok, t: 1)
    return model_dir, prompts


def run_bin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_chat_without_a_prepared_model_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A missing directory, or one the workflow did not prepare, is named with what to run,
    before any model library loads (not a transformers traceback about hub repo ids)."""
    proc = run_bin("chat", "--model", MODEL_DIR, "--prompt", "hi", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert f"--model {MODEL_DIR}: no such directory" in line
    assert f"snakemake --cores all {MODEL_DIR}" in line
    assert proc.stdout == ""

    raw = tmp_path / "raw-hf"
    raw.mkdir()
    (raw / "config.json").write_text("{}")
    proc = run_bin("chat", "--model", str(raw), "--prompt", "hi", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert f"{raw}/backtrack_provenance.json: no reset_token recorded" in line
    assert "results/models/<model>/base" in line


def test_chat_names_a_damaged_checkpoint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A weight file that disagrees with the provenance record ends in one line naming it."""
    model_dir, prompts = fake_chat(monkeypatch, tmp_path, context=64)
    monkeypatch.undo()  # the real loader, which checks the weights before reading them
    monkeypatch.setattr("backtrack.models.base.load_tokenizer", lambda d: ChatTok())
    (model_dir / "model.safetensors").write_bytes(b"half")
    record = {"reset_token": "[RESET]", "weights": {"model.safetensors": {"size": 8, "sha256": ""}}}
    (model_dir / "backtrack_provenance.json").write_text(json.dumps(record))
    assert main(["chat", "--model", str(model_dir), "--prompt", "q"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"{model_dir}/model.safetensors has 4 bytes" in err
    assert prompts == []


def test_chat_refuses_an_empty_prompt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model_dir, prompts = fake_chat(monkeypatch, tmp_path, context=64)
    assert main(["chat", "--model", str(model_dir), "--prompt", " \t "]) == 2
    out = capsys.readouterr()
    assert out.err == "backtrack chat: empty prompt: type a question for the model\n"
    assert (out.out, prompts) == ("", [])


def test_chat_refuses_a_prompt_longer_than_the_context(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Template + prompt + prefill + max_new_tokens must fit max_position_embeddings: past it
    the model writes garbage, so the prompt is refused before anything is shown."""
    model_dir, prompts = fake_chat(monkeypatch, tmp_path, context=10)
    argv = ["chat", "--model", str(model_dir), "--prompt", "a b c d", "--prefill", "Sure"]
    assert main([*argv, "--max-new-tokens", "4"]) == 0  # 1 + 4 + 1 + 4 = 10: fits exactly
    assert prompts == [[11] * 6]
    capsys.readouterr()
    assert main([*argv, "--max-new-tokens", "5"]) == 2
    out = capsys.readouterr()
    assert out.out == ""  # not even the prefill
    assert (
        "prompt too long: 6 tokens (chat template and --prefill included) plus --max-new-tokens 5"
        f" is 11, over the model's context of 10 tokens (max_position_embeddings in "
        f"{model_dir}/config.json)" in out.err
    )
    assert len(prompts) == 1


def test_interactive_chat_asks_again_after_an_empty_or_too_long_prompt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model_dir, prompts = fake_chat(monkeypatch, tmp_path, context=10)
    typed = iter(["", "   ", "one two three four five six seven", "a b"])

    def fake_input(prompt: str) -> str:
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    assert main(["chat", "--model", str(model_dir), "--max-new-tokens", "4"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("Type a prompt and press Enter; Ctrl-D (or Ctrl-C) quits.\n")
    assert err.count("empty prompt: type a question, or press Ctrl-D to quit") == 2
    assert err.count("prompt too long: 8 tokens") == 1
    assert prompts == [[11] * 3]  # the session went on to answer the last prompt


def test_script_demo_imports_no_model_library(tmp_path: Path) -> None:
    code = (
        "import sys; from backtrack.cli import main; "
        f"rc = main(['chat', '--script', {str(write_script(tmp_path))!r}]); "
        "heavy = sorted({'torch', 'transformers'} & set(sys.modules)); "
        "print('HEAVY', heavy, rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.splitlines()[-1] == "HEAVY [] 0"


def test_a_bad_script_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["chat", "--script", str(bad)]) == 2
    assert capsys.readouterr().err == (
        f"backtrack chat: {bad}: a script is a JSON list of strings and nulls\n"
    )
    assert main(["chat", "--script", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: cannot read it" in capsys.readouterr().err


def tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


@pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux not installed (apt-get install tmux)"
)
def test_retraction_on_a_real_screen(tmp_path: Path) -> None:
    """Run the demo in a 60x20 tmux pane and read what the screen really shows afterwards."""
    script = write_script(tmp_path)
    socket = str(tmp_path / "tmux.sock")  # a private server: no other tmux is touched
    # A command line above the answer, as in a shell: an answer starting at the top-left cell
    # makes ESC[J clear the whole screen, which tmux (scroll-on-clear) copies into its history.
    cmd = (
        f"echo '$ backtrack chat'; {shlex.quote(str(BIN))} chat --script "
        f"{shlex.quote(str(script))} --delay 0.05 --prefill {shlex.quote(PREFILL)}; "
        "echo __DONE__ $?; sleep 30"
    )
    env = {**os.environ, "LANG": "C.UTF-8", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    env.pop("TMUX", None)
    new = ["new-session", "-d", "-s", "demo", "-x", "60", "-y", "20", cmd]
    subprocess.run(
        ["tmux", "-S", socket, "-u", *new],
        check=True,
        env=env,
        timeout=10,
    )
    try:
        deadline = time.monotonic() + 30
        screen = ""
        while time.monotonic() < deadline:
            screen = tmux("-S", socket, "capture-pane", "-p", "-t", "demo")
            if "__DONE__" in screen:
                break
            time.sleep(0.2)
        assert "__DONE__ 0" in screen, screen
        history = tmux("-S", socket, "capture-pane", "-p", "-S", "-", "-t", "demo")
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, timeout=10)
    n = len(words(UNSAFE)) + 1  # the prefill counts as erased
    assert f"retracted {n} tokens" in screen
    assert SAFE in screen
    for shown_before in [PREFILL, "tension", "wrench", "plug turns"]:
        assert shown_before not in screen, screen
        assert shown_before not in history, history  # nor in the scrollback


def test_reset_hint_names_the_bias_the_sweep_recommends(tmp_path: Path) -> None:
    from backtrack.cli import reset_hint

    model = tmp_path / "results/models/m/backtrack/seed0/dpo"
    model.mkdir(parents=True)
    generic = reset_hint(model, 0.0)
    assert generic is not None and "results/logit_bias.csv" in generic  # how to measure one
    head = "model,method,stage,seed,bias,advbench_unsafe,advbench_unsafe_ci_hi,benign_reset_rate"
    rows = [
        "m,backtrack,dpo,0,-7.5000,0.30,0.40,0.00",  # less safe than bias 0's interval allows
        "m,backtrack,dpo,0,-2.5000,0.12,0.20,0.05",
        "m,backtrack,dpo,0,0.0000,0.10,0.18,0.25",
        "m,baseline,dpo,0,-2.5000,0.00,0.00,0.00",  # another checkpoint: not read
    ]
    (tmp_path / "results/logit_bias.csv").write_text("\n".join([head, *rows]) + "\n")
    hint = reset_hint(model, 0.0)
    assert hint is not None and hint.startswith("if the request was harmless, this reset was")
    assert "--reset-bias -2.5 makes resets rarer" in hint
    assert "5% of benign prompts reset there against 25% at 0" in hint
    assert reset_hint(model, -2.5) is None  # nothing better from there
    assert reset_hint(tmp_path / "elsewhere", 0.0) is None  # not a workflow checkpoint
