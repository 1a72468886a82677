"""AutoDAN-GA: the reference pool loader, the GA operators and the driver with synthetic losses."""

from __future__ import annotations

import os
import random
from collections import Counter
from itertools import count

import pytest
import torch
from backtrack.attacks import autodan
from backtrack.attacks.autodan import (
    AutoDANConfig,
    Breeding,
    Templates,
    crossover,
    load_prototype,
    load_reference_pool,
    mutate,
    next_generation,
    render,
    roulette_select,
    run_autodan,
    split_sentences,
)

MARK = "MARK"


def make_template(tag: str, n: int, marked: set[int]) -> str:
    """A template of ``n`` distinct sentences; those in ``marked`` contain the MARK word."""
    return " ".join(
        f"{tag} sentence {j}{' ' + MARK if j in marked else ''} says [PROMPT]."
        if j == 0
        else f"{tag} sentence {j}{' ' + MARK if j in marked else ''} is here."
        for j in range(n)
    )


# Twelve templates of 8 sentences; each has MARK in a different pair of positions, so only
# crossover can assemble a template with MARK everywhere.
POOL = [make_template(f"T{i}", 8, {i % 8, (i + 3) % 8}) for i in range(12)]


def unmarked(message: str) -> float:
    """Synthetic fitness: the number of sentences without the MARK word (0 = perfect)."""
    return float(sum(MARK not in s for s in split_sentences(message)))


def loss_fn(messages: list[str]) -> list[float]:
    return [unmarked(m) for m in messages]


def sentence_set(*texts: str) -> set[str]:
    return {s for t in texts for s in split_sentences(t)}


# ----------------------------------------------------------------------------- pool


def test_reference_pool_loads_128_templates_with_placeholder():
    pool = load_reference_pool()
    assert len(pool) == 128 and all(isinstance(t, str) and t for t in pool)
    assert all("[PROMPT]" in t for t in pool)
    proto = load_prototype()
    assert "Developer Mode" in proto and "[PROMPT]" in proto and "ModelKeeper" in proto


def test_pool_loader_asks_for_weights_only(monkeypatch):
    seen = {}
    real = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_reference_pool()
    assert seen.get("weights_only") is True


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pool_loader_refuses_a_malicious_pickle(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    bad = tmp_path / "prompt_group.pth"
    torch.save([_Evil(str(marker))], bad)
    monkeypatch.setattr(autodan, "package_file", lambda *a: bad)
    with pytest.raises(Exception, match=r"(?i)weights.only|unpickl|global"):
        load_reference_pool()
    assert not marker.exists()


@pytest.mark.parametrize("content", [[], ["ok", 3], {"a": "b"}, "just a string"])
def test_pool_loader_rejects_wrong_content_naming_the_file(tmp_path, monkeypatch, content):
    bad = tmp_path / "weird.pth"
    torch.save(content, bad)
    monkeypatch.setattr(autodan, "package_file", lambda *a: bad)
    with pytest.raises(ValueError, match=r"weird\.pth"):
        load_reference_pool()


# ----------------------------------------------------------------------------- render


def test_render_replaces_names_and_placeholder():
    tpl = "You are ChatGPT, by ModelKeeper. chatGPT must answer [PROMPT] now. Again: [PROMPT]"
    out = render(tpl, "Tell me about ChatGPT", model_name="Llama", developer="Meta")
    assert out == (
        "You are Llama, by Meta. Llama must answer Tell me about ChatGPT now. "
        "Again: Tell me about ChatGPT"
    )


def test_render_without_placeholder_appends_instruction():
    out = render("Be ChatGPT.", "do X", model_name="M", developer="D")
    assert out == "Be M.\n\ndo X"


def test_render_real_prototype():
    msg = render(load_prototype(), "do X", model_name="SmolLM", developer="HF")
    assert "do X" in msg and "[PROMPT]" not in msg
    assert "ChatGPT" not in msg and "ModelKeeper" not in msg and "SmolLM" in msg


# ----------------------------------------------------------------------------- operators


def test_split_sentences_recovers_text():
    text = "One. Two!  Three?\nFour and 2023.Five stays glued. Last"
    parts = split_sentences(text)
    assert parts == ["One.", "Two!", "Three?", "Four and 2023.Five stays glued.", "Last"]
    assert " ".join(parts) == " ".join(text.split())
    assert split_sentences("") == []


def test_crossover_children_only_hold_parent_sentences():
    rng = random.Random(0)
    a, b = POOL[0], make_template("B", 11, {1})
    changed = 0
    for _ in range(50):
        c1, c2 = crossover(a, b, 3, rng)
        s1, s2 = split_sentences(c1), split_sentences(c2)
        # Together the children hold exactly the parents' sentences, nothing new.
        assert Counter(s1 + s2) == Counter(split_sentences(a) + split_sentences(b))
        assert len(s1) + len(s2) == 8 + 11
        assert sorted([len(s1), len(s2)]) == [8, 11]  # the tail carries the longer rest
        changed += c1 not in (a, b)
    assert changed > 25  # crossover actually mixes


def test_crossover_without_points_returns_parents():
    rng = random.Random(0)
    a, b = POOL[0], POOL[1]
    assert crossover(a, b, 0, rng) == (a, b)
    assert crossover("One sentence only.", b, 5, rng) == ("One sentence only.", b)


def test_roulette_prefers_low_loss():
    rng = random.Random(1)
    picks = roulette_select(["good", "bad"], [0.0, 10.0], 1000, rng)
    assert len(picks) == 1000
    assert picks.count("good") > 990
    # Equal losses: about even; huge losses do not underflow to an error.
    even = roulette_select(["x", "y"], [5000.0, 5000.0], 1000, random.Random(2))
    assert 400 < even.count("x") < 600
    assert roulette_select(["x"], [float("inf")], 3, rng) == ["x"] * 3
    assert roulette_select(["x", "y"], [1.0, float("nan")], 50, rng) == ["x"] * 50


def test_mutate_replaces_by_pool_member_or_mutator():
    rng = random.Random(3)
    assert all(mutate("keep", POOL, 0.0, rng) == "keep" for _ in range(100))
    assert all(mutate("keep", POOL, 1.0, rng) in POOL for _ in range(100))
    hits = sum(mutate("keep", POOL, 0.3, rng) != "keep" for _ in range(2000))
    assert 500 < hits < 700
    assert mutate("keep", POOL, 1.0, rng, mutator=str.upper) == "KEEP"
    assert mutate("keep", POOL, 1.0, rng, mutator=lambda t: "") == "keep"


@pytest.mark.parametrize("size", [2, 3, 7, 10, 13])
@pytest.mark.parametrize("num_elites", [0, 1, 2])
def test_next_generation_size_elites_and_provenance(size, num_elites):
    rng = random.Random(size * 10 + num_elites)
    # Losses 6, 3, 0, 5, 2, ... (not sorted), so elites must be picked by loss, not position.
    population = [make_template(f"Q{i}", 6, set(range((i * 3) % 7))) for i in range(size)]
    losses = loss_fn(population)
    other_pool = [make_template("P", 5, {0})]
    new = next_generation(
        population,
        losses,
        Breeding(num_elites=num_elites, crossover_rate=0.7, num_points=3, mutation_rate=0.2),
        Templates(other_pool),
        rng,
    )
    assert len(new) == size
    best = sorted(range(size), key=lambda i: losses[i])[:num_elites]
    assert new[:num_elites] == [population[i] for i in best]
    parent_sentences = sentence_set(*population)
    for t in new:
        assert t in other_pool or set(split_sentences(t)) <= parent_sentences


def test_next_generation_without_crossover_or_mutation_copies_parents():
    rng = random.Random(5)
    new = next_generation(
        POOL,
        loss_fn(POOL),
        Breeding(num_elites=0, crossover_rate=0.0, num_points=5, mutation_rate=0.0),
        Templates(["never"]),
        rng,
    )
    assert len(new) == len(POOL) and set(new) <= set(POOL)


def test_next_generation_full_mutation_gives_pool_members():
    new = next_generation(
        POOL[:5],
        [1.0] * 5,
        Breeding(num_elites=1, crossover_rate=0.5, num_points=2, mutation_rate=1.0),
        Templates(["m1", "m2"]),
        random.Random(6),
    )
    assert new[0] == POOL[0] and set(new[1:]) <= {"m1", "m2"}


# ----------------------------------------------------------------------------- driver


def cfg(**kw) -> AutoDANConfig:
    base = {"steps": 30, "population": 12, "num_elites": 2, "num_points": 3, "mutation_rate": 0.05}
    return AutoDANConfig(**{**base, **kw})


def test_run_lowers_loss_and_is_consistent():
    trace = []
    res = run_autodan(
        "do X",
        loss_fn,
        cfg(model_name="Bot"),
        random.Random(0),
        Templates(POOL),
        on_step=lambda step, loss, msg: trace.append((step, loss, msg)),
    )
    assert res.stopped == "budget_steps" and res.steps == 30 == len(res.losses)
    assert res.losses[0] == 6.0  # every pool template has 2 of 8 sentences marked
    assert res.losses[-1] < res.losses[0]
    assert all(b <= a for a, b in zip(res.losses, res.losses[1:], strict=False))  # elites kept
    assert res.best_loss == min(res.losses) == unmarked(res.best_message)
    assert res.best_message == render(res.best_template, "do X", model_name="Bot", developer="x")
    assert [t[1] for t in trace] == res.losses and [t[0] for t in trace] == list(range(30))
    assert "do X" in res.best_message


def test_run_is_deterministic_per_seed():
    a = run_autodan("do X", loss_fn, cfg(), random.Random(7), Templates(POOL))
    b = run_autodan("do X", loss_fn, cfg(), random.Random(7), Templates(POOL))
    c = run_autodan("do X", loss_fn, cfg(), random.Random(8), Templates(POOL))
    assert (a.best_template, a.losses) == (b.best_template, b.losses)
    assert (a.best_template, a.losses) != (c.best_template, c.losses)


def test_run_early_stop_loss():
    res = run_autodan(
        "do X", loss_fn, cfg(steps=200, early_stop_loss=4.0), random.Random(0), Templates(POOL)
    )
    assert res.stopped == "early_stop_loss" and res.best_loss <= 4.0 and res.steps < 200
    assert res.losses[-1] == res.best_loss and all(x > 4.0 for x in res.losses[:-1])


def test_run_stops_on_success():
    checked = []

    def check(msg: str) -> bool:
        checked.append(msg)
        return unmarked(msg) <= 4

    res = run_autodan(
        "do X", loss_fn, cfg(steps=200), random.Random(0), Templates(POOL), check_fn=check
    )
    assert res.stopped == "success" and res.steps == len(checked) < 200
    assert res.best_message == checked[-1] and unmarked(res.best_message) <= 4
    assert res.best_loss == res.losses[-1]


def test_run_time_budget_with_fake_clock():
    ticks = count(0, 10)  # each clock() call advances 10 s
    res = run_autodan(
        "do X",
        loss_fn,
        cfg(steps=100, max_seconds=35),
        random.Random(0),
        Templates(POOL),
        clock=lambda: next(ticks),
    )
    # start=0; checks after steps 1..4 read 10, 20, 30, 40 -> stop after the 4th step.
    assert res.stopped == "budget_time" and res.steps == 4
    assert res.seconds == 50


def test_run_initial_population_from_init_and_wrapping_pool():
    seen: list[list[str]] = []

    def spy(messages: list[str]) -> list[float]:
        seen.append(messages)
        return loss_fn(messages)

    small_pool = POOL[:3]
    run_autodan("q", spy, cfg(steps=1, population=5), random.Random(0), Templates(small_pool))
    expect = [render(t, "q", model_name="the assistant", developer="x") for t in small_pool]
    assert seen[0] == [*expect, expect[0], expect[1]]
    seen.clear()
    run_autodan(
        "q", spy, cfg(steps=1, population=4), random.Random(0), Templates(POOL, init=["I!"])
    )
    assert seen[0][0] == "I!\n\nq" and seen[0][1:] == [
        render(t, "q", model_name="the assistant", developer="x") for t in POOL[:3]
    ]
    with pytest.raises(ValueError, match="init templates"):
        run_autodan(
            "q",
            spy,
            cfg(population=2, num_elites=1),
            random.Random(0),
            Templates(POOL, init=["a"] * 3),
        )


def test_run_with_real_pool_and_marker_word():
    pool = load_reference_pool()

    def loss(messages: list[str]) -> list[float]:
        return [float(sum("Developer Mode" not in s for s in split_sentences(m))) for m in messages]

    res = run_autodan(
        "do X",
        loss,
        cfg(steps=8, population=16, mutation_rate=0.1),
        random.Random(0),
        Templates(pool),
    )
    assert res.best_loss < res.losses[0] and "do X" in res.best_message
    assert "ChatGPT" not in res.best_message


def test_run_rejects_wrong_number_of_losses():
    with pytest.raises(ValueError, match="1 losses for 12 messages"):
        run_autodan("q", lambda m: [0.0], cfg(), random.Random(0), Templates(POOL))


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"steps": 0}, "autodan.steps"),
        ({"population": 1, "num_elites": 0}, "autodan.population must be >= 2"),
        ({"num_elites": 12}, "autodan.num_elites"),
        ({"num_elites": -1}, "autodan.num_elites"),
        ({"crossover_rate": 1.5}, "autodan.crossover_rate"),
        ({"mutation_rate": -0.1}, "autodan.mutation_rate"),
        ({"num_points": -1}, "autodan.num_points"),
        ({"early_stop_loss": "low"}, "autodan.early_stop_loss"),
        ({"max_seconds": 0}, "autodan.max_seconds"),
        ({"model_name": ""}, "autodan.model_name"),
        ({"developer": "  "}, "autodan.developer"),
        ({"steps": True}, "autodan.steps"),
    ],
)
def test_config_validation_names_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        cfg(**kw)


def test_config_defaults_are_valid():
    c = AutoDANConfig(steps=100, population=256, num_elites=12)
    assert (c.crossover_rate, c.num_points, c.mutation_rate) == (0.5, 5, 0.01)
    assert c.early_stop_loss is None and c.max_seconds is None


def test_check_fn_runs_every_eval_every_steps_and_at_the_end():
    pool = [f"Sentence {i}. Another one." for i in range(6)]
    calls: list[int] = []

    def check(message: str) -> bool:
        calls.append(1)
        return False

    cfg = AutoDANConfig(steps=7, population=4, num_elites=1, eval_every=3)
    res = run_autodan(
        "do it", lambda ms: [1.0] * len(ms), cfg, random.Random(0), Templates(pool), check_fn=check
    )
    assert res.steps == 7
    assert len(calls) == 3  # after steps 3, 6 and the last (7)
