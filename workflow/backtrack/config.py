"""Config validation: JSON schema with defaults, then cross-key checks; errors name the key."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from backtrack import catalog
from backtrack.catalog import JUDGE_PARAMS
from backtrack.plan import (
    BUDGET_UNITS,
    LOGIT_BIAS,
    TRAIN_RULES,
    TRANSFER,
    attack_n,
    attack_n_key,
    attack_shards,
    batch_plan,
    bias_label,
    generated_sets,
    job_gpus,
    optimising_attacks,
)

#: The attacks with a section that may set their own ``n``.
OPTIMISING = tuple(BUDGET_UNITS)
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


def _with_defaults(cls: type) -> type:
    """A validator that fills ``default`` values in, as Snakemake's ``validate`` does."""
    validate_properties = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(cls, {"properties": set_defaults})


_Validator = _with_defaults(Draft202012Validator)


def key_path(path: Any) -> str:
    """``deque(['sft', 'learning_rate'])`` -> ``sft.learning_rate``."""
    return ".".join(str(p) for p in path) or "<top level>"


def load_schema(path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


#: Config values that become path components (model aliases, eval set names): a letter or digit,
#: then letters, digits, '.', '_' or '-'. Rules out '.', '..', hidden names, '/', spaces and a
#: leading '-' (read as an option by command-line tools). The schema uses the same pattern.
SAFE_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]*$"
_SAFE_NAME = re.compile(SAFE_NAME_PATTERN)
#: Set names the workflow makes itself: an eval set of that name would share their files.
RESERVED_SET_NAMES = ("benign",)


def _unsafe_name(key: str, name: Any, where: str) -> ConfigError:
    return ConfigError(
        f"config key '{key}': {name!r} is not a safe name; it becomes a path component "
        f"({where}), so use letters, digits, '.', '_' and '-', starting with a letter or digit"
    )


def _schema_error(e: Any) -> ConfigError:
    """A schema error as a :class:`ConfigError` that names the offending key."""
    if e.validator == "additionalProperties":
        extra = sorted(set(e.instance) - set(e.schema.get("properties", {})))
        where = key_path([*e.absolute_path, extra[0]]) if extra else key_path(e.absolute_path)
        return ConfigError(f"config key '{where}': unknown key (not in the schema)")
    if "propertyNames" in e.absolute_schema_path:
        # The error is about a key of this object, not its value: name the key itself.
        where = key_path([*e.absolute_path, e.instance])
        if e.validator == "pattern" and e.validator_value == SAFE_NAME_PATTERN:
            return _unsafe_name(where, e.instance, "a folder or file name under results/")
        return ConfigError(f"config key '{where}': the name {e.message}")
    where = key_path(e.absolute_path)
    if e.validator == "pattern" and e.validator_value == SAFE_NAME_PATTERN:
        return _unsafe_name(where, e.instance, "a folder or file name under results/")
    return ConfigError(f"config key '{where}': {e.message}")


def validate_config(
    config: dict[str, Any], schema: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate in place (filling defaults) and return ``config``; raise :class:`ConfigError`."""
    schema = schema or load_schema()
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise _schema_error(errors[0])
    check_finite(config)
    drop_removed_eval_sets(config)
    for check in CROSS_KEY_CHECKS:
        check(config)
    return config


def check_finite(obj: Any, path: tuple[Any, ...] = ()) -> None:
    """NaN and infinity pass a JSON schema's ``type: number`` (YAML spells them ``.nan``,
    ``.inf``); no setting here means anything by them.
    """
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ConfigError(f"config key '{key_path(path)}': {obj} is not a finite number")
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            check_finite(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            check_finite(v, (*path, i))


def _path_names(config: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """``(config key, value, where it goes)`` of every config value that names a file or folder
    of an output (the {model} and {dataset} wildcards)."""
    models = "results/models/<alias>/"
    out: list[tuple[str, Any, str]] = [(f"models.{a}", a, models) for a in config["models"]]
    out += [(f"run.models[{i}]", a, models) for i, a in enumerate(config["run"]["models"])]
    out += [
        (f"models.{a}.pool_from", m["pool_from"], "results/data/train/<alias>/pool.jsonl")
        for a, m in config["models"].items()
        if m.get("pool_from") is not None
    ]
    other = config.get("prefill", {}).get("other_model")
    if other is not None:
        out.append(("prefill.other_model", other, "results/data/prefill/<alias>/"))
    sets = "results/data/eval/<set>.jsonl"
    out += [(f"data.eval_sets.{n}", n, sets) for n in config["data"]["eval_sets"]]
    return out


def check_path_names(config: dict[str, Any]) -> None:
    """Aliases and set names become path components: an unsafe one ('..', '.hidden', '-x')
    would put outputs outside their folder or make two models share files. Also refuses names
    that differ only in case (one folder on a case-insensitive file system), an eval set named
    like a set the workflow makes itself, and logit-bias values that print alike (one sweep
    folder for two biases).
    """
    for key, name, where in _path_names(config):
        if not isinstance(name, str) or not _SAFE_NAME.match(name):
            raise _unsafe_name(key, name, where)
    seen: dict[str, str] = {}
    for alias in config["models"]:
        first = seen.setdefault(alias.casefold(), alias)
        if first != alias:
            raise ConfigError(
                f"config key 'models.{alias}': differs from alias {first!r} only in case; "
                "on a case-insensitive file system both write results/models/"
                f"{first}/; rename one"
            )
    for name in RESERVED_SET_NAMES:
        if name in config["data"]["eval_sets"]:
            raise ConfigError(
                f"config key 'data.eval_sets.{name}': {name!r} is the held-out benign set's "
                "name (results/data/eval/benign.jsonl); rename this set"
            )
    labels: dict[str, int] = {}
    values = config.get("sweeps", {}).get(LOGIT_BIAS, {}).get("values", [])
    for i, v in enumerate(values):
        j = labels.setdefault(bias_label(v), i)
        if j != i:
            raise ConfigError(
                f"config key 'sweeps.logit_bias.values[{i}]': {v} and values[{j}] = "
                f"{values[j]} share the sweep folder results/sweeps/logit_bias/{bias_label(v)}/ "
                "(paths keep 6 significant digits); drop one or make them differ sooner"
            )


def check_model_paths(config: dict[str, Any]) -> None:
    """Local model sources of the run's models must exist when the graph is planned, not only
    when the job that reads them starts (paths are relative to the working directory).
    """
    for alias in config["run"]["models"]:
        src = config["models"][alias]["source"]
        key = f"models.{alias}.source.path"
        if src["kind"] == "gguf_file" and not Path(src["path"]).is_file():
            raise ConfigError(f"config key '{key}': GGUF file {src['path']} does not exist")
        if src["kind"] == "hf_dir" and not (Path(src["path"]) / "config.json").is_file():
            raise ConfigError(
                f"config key '{key}': {src['path']} is not a Hugging Face model directory "
                "(no config.json)"
            )


def drop_removed_eval_sets(config: dict[str, Any]) -> None:
    """``data.eval_sets.<name>: null`` removes a set inherited from config.yaml.

    config/paper.yaml is merged into config.yaml key by key, so it cannot otherwise drop the
    embedded default's sets.
    """
    sets = config["data"]["eval_sets"]
    for name in [n for n, spec in sets.items() if spec is None]:
        del sets[name]
    if not sets:
        raise ConfigError("config key 'data.eval_sets': every evaluation set was removed")


def _unknown_alias(key: str, alias: Any, models: Mapping[str, Any]) -> ConfigError:
    return ConfigError(
        f"config key '{key}': unknown model alias {alias!r}; defined in 'models': {sorted(models)}"
    )


def _unknown_set(key: str, name: Any, sets: Mapping[str, Any]) -> ConfigError:
    return ConfigError(
        f"config key '{key}': unknown eval set {name!r}; "
        f"defined in 'data.eval_sets': {sorted(sets)}"
    )


def check_run_models(config: dict[str, Any]) -> None:
    """Every model the run names is defined under ``models``."""
    for i, alias in enumerate(config["run"]["models"]):
        if alias not in config["models"]:
            raise _unknown_alias(f"run.models[{i}]", alias, config["models"])


#: The keys each kind of model source needs.
SOURCE_KEYS = {
    "gguf_package": ("package", "file"),
    "gguf_file": ("path",),
    "hf_dir": ("path",),
    "hub": ("repo_id",),
}


def check_model_sources(config: dict[str, Any]) -> None:
    """Each model's source has the keys its kind needs, and ``pool_from`` names a model that
    writes its own pool."""
    models = config["models"]
    for alias, m in models.items():
        src = m["source"]
        for k in SOURCE_KEYS[src["kind"]]:
            if k not in src:
                raise ConfigError(
                    f"config key 'models.{alias}.source.{k}': required for kind {src['kind']!r}"
                )
        if src.get("assemble") and src["kind"] != "gguf_package":
            raise ConfigError(
                f"config key 'models.{alias}.source.assemble': only for kind gguf_package"
            )
        other = m.get("pool_from")
        if other is not None and other not in models:
            raise _unknown_alias(f"models.{alias}.pool_from", other, models)
        chained = other is not None and models[other].get("pool_from") not in (None, other)
        if other != alias and chained:
            raise ConfigError(
                f"config key 'models.{alias}.pool_from': {other!r} trains on another model's "
                f"pool itself (models.{other}.pool_from); name the model that writes it"
            )


def check_prefill_sets(config: dict[str, Any]) -> None:
    """The prefilling attack's sets are eval sets, and its other model is a model."""
    sets = config["data"]["eval_sets"]
    prefill = config.get("prefill", {})
    for i, name in enumerate(prefill.get("datasets", [])):
        if name not in sets:
            raise _unknown_set(f"prefill.datasets[{i}]", name, sets)
    other = prefill.get("other_model")
    if "other_model" in prefill.get("sources", []) and other not in config["models"]:
        raise ConfigError(
            f"config key 'prefill.other_model': {other!r} is not a models alias "
            f"(defined: {sorted(config['models'])}); prefill.sources has other_model, which "
            "cuts its prefixes from that model's answers"
        )


def check_attack_set(config: dict[str, Any]) -> None:
    """The attacks' prompts are an eval set with enough prompts for every attack, no shard is
    empty, and the transfer row has the GCG attack it sends suffixes from."""
    sets = config["data"]["eval_sets"]
    attacks = config.get("attacks", {})
    if attacks.get("dataset", "advbench") not in sets:
        raise _unknown_set("attacks.dataset", attacks["dataset"], sets)
    n_set = (sets.get(attacks.get("dataset", "advbench")) or {}).get("n")
    named = [a for a in OPTIMISING if attacks.get(a, {}).get("n") is not None]
    for name in ["", *named]:
        key = f"attacks.{name}.n" if name else "attacks.n"
        n = attack_n(config, name) if name else attacks.get("n", 0)
        if n_set is not None and n > n_set:
            raise ConfigError(
                f"config key '{key}': {n} prompts asked of "
                f"data.eval_sets.{attacks['dataset']}, which has n = {n_set}"
            )
    for name in optimising_attacks(config):
        k, n = attack_shards(config, name), attack_n(config, name)
        if k > n:
            key = (
                f"attacks.shards_by_attack.{name}"
                if name in attacks.get("shards_by_attack", {})
                else "attacks.shards"
            )
            raise ConfigError(
                f"config key '{key}': {k} shards of the {name} attack for "
                f"{attack_n_key(config, name)} = {n} prompts; a shard needs at least one prompt"
            )
    run = attacks.get("run", [])
    if TRANSFER in run and "gcg" not in run:
        raise ConfigError(
            f"config key 'attacks.run': {TRANSFER} sends the suffixes of the gcg attack, "
            "which attacks.run does not have"
        )


def check_prefix_lengths(config: dict[str, Any]) -> None:
    """The base model's answers are long enough to cut the longest prefix asked for."""
    p = config.get("prefill", {})
    attacks = config.get("attacks", {})
    longest = max([p.get("tokens", 10), *attacks.get("prefill", {}).get("tokens", [])])
    if p.get("max_new_tokens", longest) < longest:
        raise ConfigError(
            f"config key 'prefill.max_new_tokens': {p['max_new_tokens']} is shorter than the "
            f"longest prefix asked for ({longest} tokens in prefill.tokens / "
            "attacks.prefill.tokens)"
        )


def check_training(config: dict[str, Any]) -> None:
    """SFT and DPO choices that the trainers cannot carry out."""
    dpo = config["dpo"]
    if dpo["sampling"] != "random":
        raise ConfigError(
            "config key 'dpo.sampling': only 'random' works for DPO (its examples have no "
            "input_ids column for the length-grouped sampler)"
        )
    if dpo["reset_init"] != "mean":
        raise ConfigError(
            "config key 'dpo.reset_init': the [RESET] embedding is initialised in SFT only"
        )
    if "beta" not in dpo:
        raise ConfigError("config key 'dpo.beta': required for DPO")
    if "helpful_pairs" in config["sft"]:
        raise ConfigError(
            "config key 'sft.helpful_pairs': preference pairs are DPO's; set dpo.helpful_pairs"
        )
    for stage in ("sft", "dpo"):
        lo, hi = config[stage]["prefix_min_fraction"], config[stage]["prefix_max_fraction"]
        if lo > hi:
            raise ConfigError(
                f"config key '{stage}.prefix_min_fraction': {lo} exceeds prefix_max_fraction {hi}"
            )


def check_training_batches(config: dict[str, Any]) -> None:
    """Every model's training jobs must reach the configured global batch on their GPU count."""
    for stage, rule in TRAIN_RULES.items():
        by_model = config.get("resources", {}).get(rule, {}).get("by_model", {})
        for alias in by_model:
            if alias not in config["models"]:
                raise ConfigError(
                    f"config key 'resources.{rule}.by_model.{alias}': unknown model alias; "
                    f"defined in 'models': {sorted(config['models'])}"
                )
        for alias in config["models"]:
            n = job_gpus(config, rule, alias)
            try:
                batch_plan(config[stage], n, stage)
            except ValueError as e:
                raise ConfigError(f"{e} (model {alias!r} trains on {n} GPU(s) in {rule})") from e


def check_sweeps(config: dict[str, Any]) -> None:
    """Sweep sets must be sets the graph can generate. Checked when a sweep target is planned,
    not at parse time, so that narrowing the run (fewer sets, other prefix lengths) never breaks
    Table 1 over a sweep setting. Swept methods and stages not in the run are ignored.
    """
    sweeps = config.get("sweeps", {})
    known = generated_sets(config)
    for sweep, spec in sweeps.items():
        for i, name in enumerate(spec.get("datasets") or []):
            if name not in known:
                raise ConfigError(
                    f"config key 'sweeps.{sweep}.datasets[{i}]': unknown set {name!r}; "
                    f"known: {sorted(known)}"
                )
            if sweep == "worst_of_k" and known[name] == "benign":
                raise ConfigError(
                    f"config key 'sweeps.worst_of_k.datasets[{i}]': {name!r} is benign; "
                    "worst-of-k counts unsafe answers to harmful prompts"
                )


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _check_harmful_spec(spec: dict[str, Any], key: str) -> None:
    """Source, ``hub`` and ``single_turn`` of a harmful prompt set (eval or training)."""
    source = spec["source"]
    if spec.get("hub") is not None:
        if source not in catalog.HUB_SOURCES:
            raise ConfigError(
                f"config key '{key}.hub': source {source!r} has no hub loader (hub sources: "
                f"{sorted(catalog.HUB_SOURCES)}); remove `hub` to read it offline"
            )
        allowed = catalog.HUB_SOURCES[source]
        for k in spec["hub"] or {}:
            if k not in allowed:
                raise ConfigError(
                    f"config key '{key}.hub.{k}': not an option of the {source} loader "
                    f"(it takes {list(allowed)})"
                )
    if spec.get("single_turn") and source not in catalog.MULTI_TURN_SOURCES:
        raise ConfigError(
            f"config key '{key}.single_turn': only dialogue sources "
            f"{list(catalog.MULTI_TURN_SOURCES)} have turns to filter, not {source!r}"
        )


def check_data_sources(config: dict[str, Any]) -> None:
    """Data sources that cannot be read as configured, named by their key.

    Checks the config only: nothing is loaded (a dry run must not need the hub).
    """
    data = config["data"]
    for name, spec in data["eval_sets"].items():
        _check_harmful_spec(spec, f"data.eval_sets.{name}")
    _check_harmful_spec(data["harmful_train"], "data.harmful_train")
    benign = data["benign"]
    bsource = catalog.benign_source(benign)
    if bsource == catalog.BENIGN_BUILTIN:
        if benign.get("hub") is not None:
            raise ConfigError(
                "config key 'data.benign.hub': the builtin benign prompts are offline; "
                "set data.benign.source: oasst2 to read OASST2"
            )
        for k in ("n_train", "n_heldout"):
            if benign[k] is None:
                raise ConfigError(
                    f"config key 'data.benign.{k}': the builtin prompts need a number "
                    "(null = all is for hub sources)"
                )
    else:
        allowed = catalog.BENIGN_SOURCES[bsource]
        for k in benign.get("hub") or {}:
            if k not in allowed:
                raise ConfigError(
                    f"config key 'data.benign.hub.{k}': not an option of the {bsource} loader "
                    f"(it takes {list(allowed)})"
                )


def check_pool(config: dict[str, Any]) -> None:
    """Training-pool choices the configured data sources cannot satisfy."""
    pool = config["pool"]
    harmful = config["data"]["harmful_train"]
    bsource = catalog.benign_source(config["data"]["benign"])
    for field in ("safe_from", "unsafe_from"):
        modes = _as_list(pool.get(field, []))
        if len(set(modes)) != len(modes):
            raise ConfigError(f"config key 'pool.{field}': {modes} names a mode twice")
        if "dataset" in modes and not catalog.has_responses(harmful):
            raise ConfigError(
                f"config key 'pool.{field}': 'dataset' needs a data.harmful_train source with "
                f"its own responses ({sorted(catalog.RESPONSE_FIELDS)}, from the hub); "
                f"data.harmful_train.source is {harmful['source']!r}"
            )
    if pool.get("helpful_from") == "dataset" and bsource not in catalog.BENIGN_WITH_RESPONSES:
        raise ConfigError(
            "config key 'pool.helpful_from': 'dataset' needs a benign source with replies "
            f"({list(catalog.BENIGN_WITH_RESPONSES)}); data.benign.source is {bsource!r}"
        )
    generates = "generated" in _as_list(pool.get("safe_from", [])) + _as_list(
        pool.get("unsafe_from", "generated")
    )
    if pool.get("samples", 1) > 1 and not (generates and pool["do_sample"]):
        raise ConfigError(
            f"config key 'pool.samples': {pool['samples']} candidates per prompt need "
            "pool.do_sample: true (greedy decoding gives one answer) and 'generated' in "
            "pool.safe_from or pool.unsafe_from"
        )


def check_judges(config: dict[str, Any]) -> None:
    """Judge options the judge does not take (checked here, not when the judge job starts)."""
    pool = config["pool"]
    for key, judge in (("judge", config["judge"]), ("pool.label_judge", pool["label_judge"])):
        known = JUDGE_PARAMS[judge["name"]]
        for k, v in judge["params"].items():
            if v is not None and k not in known:
                raise ConfigError(
                    f"config key '{key}.params.{k}': not an option of judge {judge['name']!r} "
                    f"(it takes {list(known)}; null drops an option inherited from config.yaml)"
                )


#: The cross-key checks the schema cannot express, in the order they run (the first failure is
#: the one reported).
CROSS_KEY_CHECKS: tuple[Callable[[dict[str, Any]], None], ...] = (
    check_path_names,
    check_run_models,
    check_model_sources,
    check_prefill_sets,
    check_attack_set,
    check_prefix_lengths,
    check_training,
    check_training_batches,
    check_model_paths,
    check_data_sources,
    check_pool,
    check_judges,
)
