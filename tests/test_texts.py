"""Refusal generator and benign prompt pool."""

import random
import re

import pytest
from backtrack.data.benign import (
    benign_prompts,
    benign_template_counts,
    split_benign,
)
from backtrack.data.refusals import make_refusal, refusal_variants
from backtrack.judge.refusal import is_refusal


def draws(seed: int = 0, n: int = 500) -> list[str]:
    rng = random.Random(seed)
    return [make_refusal(rng) for _ in range(n)]


def test_every_refusal_is_detected_and_short():
    for text in draws():
        assert is_refusal(text), text
        assert len(text.split()) <= 40, text
        assert "[RESET]" not in text


def test_refusals_are_varied():
    assert len(set(draws())) >= 50


def test_refusals_deterministic():
    assert draws(seed=7, n=50) == draws(seed=7, n=50)
    assert draws(seed=7, n=50) != draws(seed=8, n=50)


def test_refusal_variants_counts_all_outputs():
    n = refusal_variants()
    assert n >= 8 * 7 * 6
    seen = set(draws(seed=1, n=20000))
    assert len(seen) <= n
    assert len(seen) > 0.9 * n


def test_benign_pool_size_and_uniqueness():
    prompts = benign_prompts()
    assert len(prompts) >= 320
    assert len({p["prompt"] for p in prompts}) == len(prompts)
    assert len({p["id"] for p in prompts}) == len(prompts)
    assert all(re.fullmatch(r"benign-\d{4}", p["id"]) for p in prompts)
    assert all(set(p) == {"id", "prompt"} for p in prompts)


def test_benign_ids_stable():
    assert benign_prompts() == benign_prompts()
    assert benign_prompts()[0]["id"] == "benign-0001"


def test_benign_prompts_short():
    for p in benign_prompts():
        assert 0 < len(p["prompt"].split()) < 25, p


def test_no_template_dominates():
    counts = benign_template_counts()
    total = sum(counts.values())
    assert total == len(benign_prompts())
    assert len(counts) >= 8
    for name, n in counts.items():
        assert n <= 0.15 * total, (name, n, total)


def test_benign_prompts_not_refusals():
    for p in benign_prompts():
        assert not is_refusal(p["prompt"]), p


BANNED = (
    "kill", "weapon", "gun", "bomb", "drug", "drugs", "hack", "hacking", "exploit", "poison",
    "steal", "attack", "violence", "violent", "knife", "explosive", "murder", "fight", "shoot",
)  # fmt: skip


def test_benign_prompts_avoid_harmful_words():
    pattern = re.compile(r"\b(" + "|".join(BANNED) + r")\b", re.IGNORECASE)
    for p in benign_prompts():
        assert not pattern.search(p["prompt"]), p


def test_split_disjoint_sized_deterministic():
    pool = benign_prompts()
    train, held = split_benign(pool, 200, 100, seed=3)
    assert len(train) == 200 and len(held) == 100
    assert not {p["prompt"] for p in train} & {p["prompt"] for p in held}
    assert not {p["id"] for p in train} & {p["id"] for p in held}
    assert split_benign(pool, 200, 100, seed=3) == (train, held)
    assert split_benign(pool, 200, 100, seed=4) != (train, held)
    assert pool == benign_prompts()  # input not mutated


def test_split_uses_whole_pool():
    pool = benign_prompts()
    train, held = split_benign(pool, len(pool) - 10, 10, seed=0)
    assert sorted(p["id"] for p in train + held) == sorted(p["id"] for p in pool)


def test_split_too_large_raises():
    pool = benign_prompts()
    with pytest.raises(ValueError, match=rf"300.*100.*{len(pool)}"):
        split_benign(pool, 300, 100, seed=0)


def test_split_negative_raises():
    with pytest.raises(ValueError):
        split_benign(benign_prompts(), -1, 5, seed=0)
