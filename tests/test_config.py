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
        (lambda c: c["attacks"]["gcg"].__setitem__("loss", "mse"), "attacks.gcg.loss"),
        (lambda c: c["attacks"]["gcg"].__setitem__("cw_margin", 0), "attacks.gcg.cw_margin"),
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


def _rename_model(c, new):
    """Rename the default config's model alias everywhere the run refers to it."""
    c["models"][new] = c["models"].pop("smollm2-135m")
    c["run"]["models"] = [new]


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c: _rename_model(c, ".."), "models..."),
        (lambda c: _rename_model(c, "."), "models.."),
        (lambda c: _rename_model(c, ".hidden"), "models..hidden"),
        (lambda c: _rename_model(c, "-rf"), "models.-rf"),
        (lambda c: c["run"].__setitem__("models", [".."]), "run.models.0"),
        (lambda c: c["prefill"].__setitem__("other_model", "../x"), "prefill.other_model"),
    ],
)
def test_path_component_values_must_be_safe_names(cfg, mutate, key):
    """A value that becomes a path component ('..' as a model alias) stops the plan, naming
    the key, instead of making models share (or escape) their result folders."""
    bad = copy.deepcopy(cfg)
    mutate(bad)
    with pytest.raises(ConfigError) as err:
        validate_config(bad)
    assert f"config key '{key}': " in str(err.value)
    assert "path component" in str(err.value)


def test_pool_from_dotdot_names_its_key(cfg):
    cfg["models"]["smollm2-135m"]["pool_from"] = ".."
    with pytest.raises(
        ConfigError, match=r"'models\.smollm2-135m\.pool_from': '\.\.' is not a safe"
    ):
        validate_config(cfg)


def test_eval_set_name_dotdot_names_its_key(cfg):
    cfg["data"]["eval_sets"][".."] = {"source": "advbench"}
    with pytest.raises(ConfigError, match=r"config key 'data\.eval_sets\.\.\.': the name"):
        validate_config(cfg)


def test_unsafe_names_checked_without_the_schema(cfg):
    """The cross-key check stands on its own (a schema without the patterns still refuses)."""
    from backtrack.config import check_path_names

    validate_config(cfg)
    _rename_model(cfg, "..")
    with pytest.raises(ConfigError, match=r"config key 'models\.\.\.': '\.\.' is not a safe name"):
        check_path_names(cfg)


@pytest.mark.parametrize(
    ("mutate", "key", "what"),
    [
        (
            lambda c: c["models"].__setitem__(
                "SmolLM2-135M", copy.deepcopy(c["models"]["smollm2-135m"])
            ),
            "models.SmolLM2-135M",
            "only in case",
        ),
        (
            lambda c: c["data"]["eval_sets"].__setitem__("benign", {"source": "advbench"}),
            "data.eval_sets.benign",
            "held-out benign set",
        ),
        (
            lambda c: c["sweeps"]["logit_bias"].__setitem__("values", [-5, 2.5, 2.5000001]),
            "sweeps.logit_bias.values[2]",
            "share the sweep folder",
        ),
        (
            lambda c: c["sweeps"]["logit_bias"].__setitem__("values", [0, -5, -5.0]),
            "sweeps.logit_bias.values[2]",
            "share the sweep folder",
        ),
    ],
)
def test_names_that_would_share_files_are_refused(cfg, mutate, key, what):
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert f"config key '{key}'" in str(err.value)
    assert what in str(err.value)


def test_safe_aliases_pass(cfg):
    _rename_model(cfg, "Llama-3.1_8B")
    validate_config(cfg)
