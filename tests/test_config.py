"""Config validation: defaults, and errors that name the offending key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from backtrack.config import ConfigError, validate_config
from backtrack.plan import eval_datasets, optimising_attacks, prefill_attack_sets

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cfg():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_default_config_is_valid(cfg):
    validate_config(cfg)
    assert cfg["generation"]["max_resets"] == 1


def test_defaults_are_filled(cfg):
    del cfg["generation"]["reset_logit_bias"]
    del cfg["report"]
    validate_config(cfg)
    assert cfg["generation"]["reset_logit_bias"] == 0.0
    assert cfg["report"]["ci_level"] == 0.95


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c: c["sft"].__setitem__("learning_rate", "fast"), "sft.learning_rate"),
        (lambda c: c["sft"].__setitem__("learningrate", 1e-5), "sft.learningrate"),
        (lambda c: c.__setitem__("bogus", 1), "bogus"),
        (lambda c: c["generation"].__setitem__("max_resets", -1), "generation.max_resets"),
        (lambda c: c["run"].__setitem__("models", ["nope"]), "run.models[0]"),
        (lambda c: c["run"].__setitem__("methods", ["magic"]), "run.methods.0"),
        (lambda c: c["prefill"].__setitem__("datasets", ["missing"]), "prefill.datasets[0]"),
        (lambda c: c["dpo"].pop("beta"), "dpo.beta"),
        (lambda c: c["dpo"].__setitem__("reset_init", "probe"), "dpo.reset_init"),
        (lambda c: c["dpo"].__setitem__("sampling", "group_by_length"), "dpo.sampling"),
        (lambda c: c["sft"].__setitem__("helpful_pairs", {}), "sft.helpful_pairs"),
        (
            lambda c: c["dpo"].__setitem__("helpful_pairs", {"fraction": 1.5}),
            "dpo.helpful_pairs.fraction",
        ),
        (
            lambda c: c["models"]["smollm2-135m"]["source"].pop("file"),
            "models.smollm2-135m.source.file",
        ),
        (
            lambda c: (
                c["sft"].__setitem__("prefix_min_fraction", 0.9)
                or c["sft"].__setitem__("prefix_max_fraction", 0.1)
            ),
            "sft.prefix_min_fraction",
        ),
        (lambda c: c.pop("sft"), "<top level>"),
        (lambda c: c["attacks"].__setitem__("dataset", "nope"), "attacks.dataset"),
        (lambda c: c["attacks"]["prefill"].__setitem__("tokens", [80]), "prefill.max_new_tokens"),
        (lambda c: c["attacks"]["gcg"].__setitem__("search_width", 0), "attacks.gcg.search_width"),
        (lambda c: c["attacks"].__setitem__("run", ["gcg", "pair"]), "attacks.run.1"),
        (lambda c: c["sft"].__setitem__("learning_rate", float("nan")), "sft.learning_rate"),
        (
            lambda c: c["generation"].__setitem__("reset_logit_bias", float("-inf")),
            "generation.reset_logit_bias",
        ),
        (
            lambda c: c["sweeps"]["logit_bias"]["values"].insert(0, float("inf")),
            "sweeps.logit_bias.values.0",
        ),
        (lambda c: c.__setitem__("reset_token", ""), "reset_token"),
        (
            lambda c: c["attacks"].__setitem__("n", c["data"]["eval_sets"]["advbench"]["n"] + 1),
            "attacks.n",
        ),
        (lambda c: c.__setitem__("reset_token", "[RE SET]"), "reset_token"),
        (
            lambda c: c["models"]["smollm2-135m"].__setitem__(
                "source", {"kind": "hf_dir", "path": "/nonexistent/model"}
            ),
            "models.smollm2-135m.source.path",
        ),
        (
            lambda c: c["models"]["smollm2-135m"].__setitem__(
                "source", {"kind": "gguf_file", "path": "/nonexistent/m.gguf"}
            ),
            "models.smollm2-135m.source.path",
        ),
    ],
)
def test_errors_name_the_key(cfg, mutate, key):
    bad = copy.deepcopy(cfg)
    mutate(bad)
    with pytest.raises(ConfigError) as err:
        validate_config(bad)
    assert f"'{key}'" in str(err.value)


def test_eval_datasets(cfg):
    validate_config(cfg)
    sets = eval_datasets(cfg)
    assert sets["benign"] == "benign"
    assert sets["advbench"] == "harmful"
    assert sets["advbench_prefill10"] == "prefill"


def test_attack_sets(cfg):
    validate_config(cfg)
    sweep = prefill_attack_sets(cfg)
    assert sweep["advbench_prefill40"] == ("advbench", 40, "base_model")
    assert sweep["advbench_sure40"] == ("advbench", 40, "sure_here")
    sources = cfg["prefill"]["sources"]
    assert len(sweep) == len(cfg["attacks"]["prefill"]["tokens"]) * len(sources)
    assert optimising_attacks(cfg) == ["gcg", "autodan", "adaptive"]
    cfg["attacks"]["run"] = ["gcg"]
    assert prefill_attack_sets(cfg) == {}
