"""tools/gpu_check.py and tools/gpu_check.sh, run here on the CPU.

Why: a GPU machine is lent rarely and briefly; what runs there must already have run here, so
that a lent machine's minutes go to the GPU, not to fixing the script.
"""

from __future__ import annotations

import filecmp
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> ModuleType:
    """A script of tools/ as a module, registered (its dataclasses need that)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


gpu_check = _load("gpu_check")
LINE = re.compile(r"^(?P<name>\w+)\s+(?P<status>ok|FAIL)\s+(?P<seconds>[\d.]+)s\s+(?P<figure>.*)$")


def _lines(stdout: str) -> dict[str, re.Match[str]]:
    """The check lines printed, by check name (each name once)."""
    found = [m for m in map(LINE.match, stdout.splitlines()) if m and m["name"] in gpu_check.RUN]
    names = [m["name"] for m in found]
    assert len(names) == len(set(names)), stdout
    return {m["name"]: m for m in found}


def _run(cmd: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cpu_run_prints_one_ok_line_per_check(tmp_path: Path) -> None:
    """Every check passes on the CPU, one line each, and the JSON says the same."""
    args = ["tools/gpu_check.py", "--device", "cpu", "--gcg-steps", "2", "--gcg-width", "8"]
    proc = _run([sys.executable, *args, "--out", str(tmp_path)])
    log = tmp_path / "gpu_check.log"
    tail = log.read_text()[-4000:] if log.exists() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr + tail
    lines = _lines(proc.stdout)
    assert list(lines) == list(gpu_check.CHECKS), proc.stdout
    assert all(m["status"] == "ok" for m in lines.values()), proc.stdout
    assert "[(0, 1)]" in lines["generate"]["figure"]  # the cap of 2 under a +100 bias
    assert "bf16" in lines["sft"]["figure"] and "bf16" in lines["dpo"]["figure"]
    assert "nanoGCG" in lines["gcg"]["figure"]
    assert re.search(r"^all ok: 6 checks in \d+ s on cpu", proc.stdout, re.M), proc.stdout
    figures = json.loads((tmp_path / "gpu_check.json").read_text())
    assert figures["device"] == "cpu"
    assert [(c["name"], c["ok"]) for c in figures["checks"]] == [(n, True) for n in lines]


def _wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-python wheel of one empty module ``name``."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{dist}/RECORD,,\n"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for member, text in {**files, f"{dist}/RECORD": record}.items():
            z.writestr(member, text)
    return path


@pytest.mark.skipif(sys.platform != "linux", reason="bash, timeout and mktemp of a Linux box")
def test_a_failing_check_fails_the_run_but_not_the_others(tmp_path: Path) -> None:
    """Through tools/gpu_check.sh: the carried wheels are installed and win over what the
    interpreter has (a stand-in nanogcg 9.9.9 shows in the env line); a check forced to fail
    (--force-fail, for testing) prints FAIL, the next check still runs, and the exit status is
    1."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "nanogcg", "9.9.9")
    checks = ["--checks", "generate", "env", "--force-fail", "generate"]
    proc = _run(
        ["bash", "tools/gpu_check.sh", "--device", "cpu", *checks, "--out", str(tmp_path / "out")],
        PYTHON=sys.executable,
        GPU_CHECK_WHEELS=str(wheels),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"installed 1 wheels from {wheels}/" in proc.stdout
    lines = _lines(proc.stdout)
    assert list(lines) == ["generate", "env"], proc.stdout
    assert lines["generate"]["status"] == "FAIL" and "forced" in lines["generate"]["figure"]
    assert lines["env"]["status"] == "ok" and "nanogcg 9.9.9" in lines["env"]["figure"]
    assert "FAILED generate: 2 checks" in proc.stdout


def test_the_fake_guard_is_the_one_fake_guard_py_writes(tmp_path: Path) -> None:
    """The judge check builds the guard from a saved tokenizer (a GPU machine has no gguf), as
    tools/gpu_wheels.sh saves it; that guard is byte for byte backtrack.judge.fake_guard's."""
    from backtrack.judge.fake_guard import make_fake_llama_guard_2

    ours = gpu_check.fake_guard_dir(
        gpu_check.source_tokenizer(gpu_check.save_tokenizer(tmp_path / "tokenizer")),
        tmp_path / "ours",
    )
    theirs = make_fake_llama_guard_2(tmp_path / "theirs")
    names = sorted(p.name for p in theirs.iterdir())
    assert names == sorted(p.name for p in ours.iterdir())
    _, mismatch, errors = filecmp.cmpfiles(theirs, ours, names, shallow=False)
    assert not mismatch and not errors, (mismatch, errors)
