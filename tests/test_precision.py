"""The precision policy: which dtype a job runs in, on CPUs with and without bf16 matrix units."""

from __future__ import annotations

import pytest
import torch
from backtrack.judge import registry
from backtrack.judge.registry import make_judge
from backtrack.models.base import load_model
from backtrack.models.precision import Precision, PrecisionError, cpu_flags, resolve_precision

WITH = {"fpu", "avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}
WITHOUT = {"fpu", "avx2", "avx512f"}


@pytest.mark.parametrize(
    ("setting", "flags", "want"),
    [
        ("auto", WITH, "bf16"),
        ("auto", {"avx512_bf16"}, "bf16"),
        ("auto", {"amx_bf16"}, "bf16"),
        ("auto", WITHOUT, "fp32"),
        ("bf16", WITH, "bf16"),
        ("fp32", WITH, "fp32"),
        ("fp32", WITHOUT, "fp32"),
    ],
)
def test_cpu_decision(setting, flags, want):
    assert resolve_precision(setting, cuda=False, flags=flags) == want


def test_bf16_on_a_cpu_without_it_names_the_key():
    with pytest.raises(PrecisionError, match=r"config key 'precision': bf16 asked for"):
        resolve_precision("bf16", cuda=False, flags=WITHOUT)


def test_unknown_setting_names_the_key():
    with pytest.raises(PrecisionError, match=r"config key 'precision'"):
        resolve_precision("fp16", cuda=False, flags=WITH)


def test_cuda_decision_asks_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "an old GPU")
    assert resolve_precision("auto", cuda=True) == "fp32"
    with pytest.raises(PrecisionError, match="an old GPU"):
        resolve_precision("bf16", cuda=True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", cuda=True) == "bf16"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512_bf16 amx_tile\nbogomips\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx512_bf16", "amx_tile"}
    assert cpu_flags(tmp_path / "missing") == set()


def test_the_loader_applies_the_policy(tiny_source_dir, monkeypatch, caplog):
    monkeypatch.setattr("backtrack.models.precision.cpu_flags", lambda *a: set(WITHOUT))
    assert load_model(tiny_source_dir, Precision.resolve("auto")).dtype == torch.float32
    monkeypatch.setattr("backtrack.models.precision.cpu_flags", lambda *a: set(WITH))
    with caplog.at_level("INFO", logger="backtrack.models.precision"):
        assert load_model(tiny_source_dir, Precision.resolve("auto")).dtype == torch.bfloat16
    assert "precision: bf16 (precision: auto; CPU flags amx_bf16, avx512_bf16)" in caplog.text
    assert load_model(tiny_source_dir, Precision.fixed("fp32")).dtype == torch.float32


def test_model_judges_follow_the_policy_unless_they_set_a_dtype(monkeypatch):
    seen = {}

    from types import SimpleNamespace

    from backtrack.models.precision import Precision

    def fake_guard(**kw):
        seen.update(kw)
        return SimpleNamespace()  # make_judge sets its reset_token

    monkeypatch.setitem(registry.JUDGES, "llama_guard", fake_guard)
    monkeypatch.setattr("backtrack.models.precision.cpu_flags", lambda *a: set(WITH))
    auto = Precision.resolve("auto")  # as the job resolves it, once
    make_judge("llama_guard", {"batch_size": 2}, reset_token="[RESET]", precision=auto)
    assert seen == {"batch_size": 2, "dtype": "bfloat16"}
    seen.clear()
    make_judge("llama_guard", {"dtype": "float32"}, reset_token="[RESET]", precision=auto)
    assert seen == {"dtype": "float32"}
    # The pattern judge takes no dtype.
    assert make_judge("refusal", {}, reset_token="[RESET]", precision=auto).name == "refusal"
