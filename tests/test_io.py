"""Reading and writing intermediates: errors that name the file and line, and no debris after a
crash (atomic outputs, stale temporaries, cut-off transcript lines, SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from backtrack.io import (
    append_jsonl,
    atomic_dir,
    atomic_file,
    read_jsonl,
    read_partial_jsonl,
    write_json,
    write_jsonl,
)


def test_read_jsonl_names_file_and_line_of_bad_bytes(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_bytes(b'{"id": "a"}\n{"id": "b", "visible": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"g\.jsonl:2: not UTF-8"):
        read_jsonl(p)


def test_read_jsonl_rejects_lines_that_are_not_objects(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_text('{"id": "a"}\n\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"g\.jsonl:3: expected a JSON object, got list"):
        read_jsonl(p)


def test_read_jsonl_names_the_record_missing_a_field(tmp_path):
    p = tmp_path / "g.jsonl"
    write_jsonl(p, [{"id": "a", "visible": "x"}, {"id": "b"}])
    assert len(read_jsonl(p, required=("id",))) == 2
    with pytest.raises(ValueError, match=r"g\.jsonl:2: record 'b' lacks field\(s\) visible"):
        read_jsonl(p, required=("id", "visible"))


def test_partial_transcript_loses_only_its_cut_line(tmp_path):
    p = tmp_path / "t.jsonl.partial"
    append_jsonl(p, {"id": "a"})
    with open(p, "ab") as f:
        f.write(b'{"id": "b", "los')
    assert read_partial_jsonl(p) == [{"id": "a"}]
    append_jsonl(p, {"id": "c"})
    assert read_jsonl(p) == [{"id": "a"}, {"id": "c"}]


def test_stale_temporaries_of_a_killed_writer_are_removed_by_the_next(tmp_path):
    out_file, out_dir = tmp_path / "x.jsonl", tmp_path / "model"
    (tmp_path / ".x.jsonl.abc123.tmp").write_text("half")
    (tmp_path / ".model.def456.tmp").mkdir()
    (tmp_path / ".model.def456.tmp" / "w.safetensors").write_text("half")
    (tmp_path / ".other.jsonl.zzz.tmp").write_text("not ours")
    with atomic_file(out_file) as tmp:
        tmp.write_text("done")
    with atomic_dir(out_dir) as tmp:
        (tmp / "w.safetensors").write_text("done")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".other.jsonl.zzz.tmp", "model", "x.jsonl"]


SIGTERM_JOB = """
import sys, time
from types import SimpleNamespace
from backtrack.io import atomic_dir
from backtrack.smk import setup
setup(SimpleNamespace(log=[sys.argv[2]], threads=1, rule="probe"))
with atomic_dir(sys.argv[1]) as tmp:
    (tmp / "part").write_text("x")
    print("inside", flush=True)
    time.sleep(60)
"""


def test_sigterm_during_a_save_leaves_no_temporary(tmp_path):
    out = tmp_path / "model"
    log = tmp_path / "job.log"
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_JOB, str(out), str(log)])
    deadline = time.monotonic() + 60
    while "inside" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline and proc.poll() is None, "job never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == [log]


def test_write_jsonl_round_trips_non_ascii(tmp_path):
    p = tmp_path / "r.jsonl"
    write_jsonl(p, [{"id": "ü", "t": "日本"}])
    assert json.loads(p.read_text(encoding="utf-8")) == {"id": "ü", "t": "日本"}
    assert read_jsonl(p) == [{"id": "ü", "t": "日本"}]
    assert Path(p).read_bytes().decode("utf-8").count("\n") == 1


@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    """Run the test under a umask, restored afterwards."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_atomic_outputs_get_the_mode_of_an_ordinary_open(tmp_path, umask):
    """Group-shared results stay readable: no 0600/0700 from the temporary's creation."""
    with atomic_file(tmp_path / "t.csv") as tmp:
        tmp.write_text("a,b\n")
    write_jsonl(tmp_path / "g.jsonl", [{"id": "a"}])
    write_json(tmp_path / "info.json", {"a": 1})
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "model.safetensors").write_bytes(b"w")
        (tmp / "tok").mkdir()
    (tmp_path / "plain.txt").write_text("x")
    assert _mode(tmp_path / "plain.txt") == 0o666 & ~umask
    for name in ("t.csv", "g.jsonl", "info.json", "model/model.safetensors"):
        assert _mode(tmp_path / name) == 0o666 & ~umask, name
    for name in ("model", "model/tok"):
        assert _mode(tmp_path / name) == 0o777 & ~umask, name


def test_atomic_file_replaces_an_output_with_the_ordinary_mode(tmp_path, umask):
    out = tmp_path / "t.csv"
    out.write_text("old")
    out.chmod(0o600)
    with atomic_file(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new"
    assert _mode(out) == 0o666 & ~umask


def test_a_full_disk_names_the_output(tmp_path):
    """safetensors' "No space left on device" names no file; the atomic writers say which."""
    import errno as errno_

    from backtrack.io import atomic_dir, atomic_file

    def full(*_):
        raise OSError(errno_.ENOSPC, "No space left on device")

    for writer, name in ((atomic_dir, "model"), (atomic_file, "table.csv")):
        with (
            pytest.raises(OSError, match=f"no space left to write .*{name}") as caught,
            writer(tmp_path / name),
        ):
            full()
        assert caught.value.errno == errno_.ENOSPC
        assert not list(tmp_path.glob(f".{name}.*.tmp"))
