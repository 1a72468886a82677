"""What a config asks the graph to build: the workflow's vocabulary, free of torch.

The rules, their input functions and the table scripts all speak in these terms: which
(model, method, seed, stage) rows the run has (``seed``: a training seed, ``train_seeds``),
which evaluation sets each row is generated on, which attacks and sweep points exist, and in
which order each table reads its inputs. The rules expand their own output patterns with these
keys, and pass the same keys, in the same order, to the table scripts as params, so that no
script recovers a key by parsing a path. Validation lives in :mod:`backtrack.config`; this
module assumes a validated config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

LOGIT_BIAS = "logit_bias"
WORST_OF_K = "worst_of_k"
STAGES = ("sft", "dpo")
TRAIN_RULES = {"sft": "train_sft", "dpo": "train_dpo"}
#: Keys of the ``generation`` section that are decoding settings of generate_records (and of
#: the vLLM backend): what an attack's evaluation or a sweep point needs of that section.
DECODING_KEYS = (
    "max_new_tokens",
    "do_sample",
    "temperature",
    "top_p",
    "reset_logit_bias",
    "max_resets",
)


@dataclass(frozen=True)
class Method:
    """How a method's training data and checkpoints are made (a value of ``{method}``).

    ``sft``: which SFT examples it trains on (``baseline``, ``backtrack`` or ``recovery``), or
    None when it has no SFT of its own and its DPO starts from ``sft_from``'s SFT checkpoint
    (``base``: the base model). ``dpo``: which DPO pairs (``baseline`` or ``backtrack``).
    ``prefix_rule``: how much of ``y-`` an SFT example keeps (``fraction``: uniform in
    ``sft.prefix_min_fraction..prefix_max_fraction``; ``qi``: Qi et al.'s coin flip and
    ``randint(1, min(100, len))`` tokens).
    """

    sft: str | None
    dpo: str
    prefix_rule: str = "fraction"
    sft_from: str | None = None

    def stages(self) -> tuple[str, ...]:
        """The stages this method has a checkpoint of its own for."""
        return STAGES if self.sft else ("dpo",)


#: Every method the graph knows; ``run.methods`` picks. The first two are the paper's; the others
#: are ablations (config/ablations.yaml): recovery without a token (Qi et al. 2024), Qi et al.'s
#: prefix rule for backtracking SFT, and backtracking DPO without backtracking SFT.
METHODS: dict[str, Method] = {
    "baseline": Method(sft="baseline", dpo="baseline"),
    "backtrack": Method(sft="backtrack", dpo="backtrack"),
    "recovery": Method(sft="recovery", dpo="baseline", prefix_rule="qi"),
    "backtrack_qi_prefix": Method(sft="backtrack", dpo="backtrack", prefix_rule="qi"),
    "backtrack_dpo_from_baseline": Method(sft=None, dpo="backtrack", sft_from="baseline"),
    "backtrack_dpo_from_base": Method(sft=None, dpo="backtrack", sft_from="base"),
}


class Row(NamedTuple):
    """One checkpoint of the run: a method's stage, trained with one training seed. The base
    model's helpfulness row is method and stage ``base`` at the run's ``seed``."""

    model: str
    method: str
    seed: int
    stage: str


class Cell(NamedTuple):
    """One input of a table: a row's answers on one set, at one sweep point (``None``: the
    deployed decoding of Table 1). Attack rows name the set ``attacks/<attack>``."""

    model: str
    method: str
    seed: int
    stage: str
    dataset: str
    point: str | None = None

    @property
    def row(self) -> Row:
        return Row(self.model, self.method, self.seed, self.stage)


def cell_of(keys: Sequence[Any]) -> Cell:
    """A cell from its JSON form (a table rule's ``cells`` param: a list in field order)."""
    return Cell(*keys)


def train_seeds(config: Mapping[str, Any]) -> list[int]:
    """The training seeds (``train_seeds``; null: one run, with ``seed``). Everything made from
    the training data's random draws is built once per seed; the rest once."""
    seeds = config.get("train_seeds")
    return [int(config.get("seed", 0))] if seeds is None else [int(x) for x in seeds]


#: Where prefilled prefixes come from (``prefill.sources``) -> the infix of their set names.
#: ``base_model``: the base model's own unsafe answers (the distribution the backtracking models
#: were trained to reset after); ``sure_here``: the attack targets' "Sure, here is ..." openers,
#: text no model in the run wrote; ``other_model``: the unsafe answers of another model
#: (``prefill.other_model``), text the trained model's family never wrote.
PREFILL_SOURCES = {"base_model": "prefill", "sure_here": "sure", "other_model": "other"}
#: Sources whose prefixes are cut from a model's unsafe answers (sample_prefill_answers).
ANSWER_SOURCES = ("base_model", "other_model")


class Prefilled(NamedTuple):
    """A prefilled set: the plain eval set it is cut from, prefix tokens, prefix source."""

    dataset: str
    tokens: int
    source: str = "base_model"


def prefill_set_name(dataset: str, tokens: int, source: str = "base_model") -> str:
    """Name of the prefilled variant of an eval set (a {dataset} wildcard value)."""
    return f"{dataset}_{PREFILL_SOURCES[source]}{tokens}"


def prefill_attack_name(tokens: int, source: str = "base_model") -> str:
    """Table 2's name of one prefilling attack: ``prefill10``, ``sure10``."""
    return f"{PREFILL_SOURCES[source]}{tokens}"


def prefill_sources(config: Mapping[str, Any]) -> list[str]:
    """``prefill.sources`` (default: the base model's own answers only)."""
    return list(config.get("prefill", {}).get("sources", ["base_model"]))


def attack_params(config: Mapping[str, Any], attack: str) -> dict[str, Any]:
    """An attack's search settings (``attacks.<attack>``); the adaptive attack runs GCG inside,
    so it takes the GCG section with its own as ``adaptive``. ``n`` is left out: how many
    prompts are attacked changes no transcript line, so it is not part of the transcripts'
    stamp (a larger ``n`` reuses the finished prompts)."""
    a = config["attacks"]
    if attack == "adaptive":
        out = dict(a["gcg"]) | {"adaptive": _without_n(a["adaptive"])}
    else:
        out = dict(a[attack])
    return _without_n(out)


def _without_n(section: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k != "n"}


def attack_n(config: Mapping[str, Any], attack: str) -> int:
    """Prompts an optimising attack runs on: ``attacks.<attack>.n``, else ``attacks.n`` (the
    first ones of ``attacks.dataset``)."""
    a = config["attacks"]
    n = a.get(attack, {}).get("n")
    return int(a.get("n", 4) if n is None else n)


def attack_n_key(config: Mapping[str, Any], attack: str) -> str:
    """The config key that sets :func:`attack_n`, for error messages."""
    if config["attacks"].get(attack, {}).get("n") is not None:
        return f"attacks.{attack}.n"
    return "attacks.n"


#: What an optimising attack's budget counts, and the config keys of its checkpoints.
BUDGET_UNITS = {"gcg": "steps", "autodan": "generations", "adaptive": "steps"}


def attack_budget(config: Mapping[str, Any], attack: str) -> list[int]:
    """The budget points an attack's success can be read at from one run (ascending; the last
    is the configured budget). Every optimising attack stops at its first successful check, and
    its search is seeded per prompt, so a run with a smaller budget would have made the same
    steps and checks up to there: success by check ``b`` is success under budget ``b``. GCG
    and AutoDAN check every ``eval_every`` steps (generations) and at the end, the adaptive
    attack after every round of ``steps_per_round`` GCG steps."""
    a = config["attacks"]
    if attack == "adaptive":
        per, rounds = a["adaptive"]["steps_per_round"], a["adaptive"]["max_rounds"]
        return [per * (r + 1) for r in range(rounds)]
    total, every = a[attack]["steps"], a[attack]["eval_every"]
    return sorted({*range(every, total + 1, every), total})


def budget_label(config: Mapping[str, Any], attack: str) -> str:
    """The configured budget in words (Table 2, the claims): ``40 steps``, ``10 generations``."""
    if attack == TRANSFER:
        return f"suffixes of {transfer_source(config)}'s GCG at " + budget_label(config, "gcg")
    return f"{attack_budget(config, attack)[-1]} {BUDGET_UNITS[attack]}"


#: HarmBench's GCG-Transfer: the GCG suffixes that broke the source checkpoint (attacks.transfer),
#: sent with the same prompts to every checkpoint.
TRANSFER = "gcg_transfer"


def transfer_checkpoint(config: Mapping[str, Any]) -> tuple[str, str]:
    """(method, stage) of the checkpoint whose GCG suffixes the transfer row sends."""
    t = config["attacks"].get("transfer", {})
    return t.get("method", "baseline"), t.get("stage", "sft")


def transfer_source(config: Mapping[str, Any]) -> str:
    """:func:`transfer_checkpoint` in words: ``baseline sft``."""
    return " ".join(transfer_checkpoint(config))


def prefill_answers_model(config: Mapping[str, Any], source: str, model: str) -> str:
    """The model whose answers a prefilled set of ``model`` is cut from: its own base model, or
    ``prefill.other_model`` for the ``other_model`` source."""
    if source == "other_model":
        return str(config["prefill"]["other_model"])
    return model


def eval_datasets(config: Mapping[str, Any]) -> dict[str, str]:
    """Table 1's sets, {dataset} -> its kind: ``harmful``, ``dev``, ``benign`` or ``prefill``.

    ``dev`` sets (``data.eval_sets.<name>.dev``) are judged and reported like harmful ones but
    left out of the pooled ``overall_unsafe`` (the paper develops on the HH-RLHF test split).
    """
    out = {
        name: "dev" if spec.get("dev") else "harmful"
        for name, spec in config["data"]["eval_sets"].items()
    }
    out["benign"] = "benign"
    return out | dict.fromkeys(table1_prefilled_sets(config), "prefill")


def table1_prefilled_sets(config: Mapping[str, Any]) -> dict[str, Prefilled]:
    """Table 1's prefilled sets: every ``prefill.datasets`` set at ``prefill.tokens`` from each
    of ``prefill.sources``."""
    p = config.get("prefill", {})
    return {
        prefill_set_name(d, p["tokens"], src): Prefilled(d, p["tokens"], src)
        for src in prefill_sources(config)
        for d in p.get("datasets", [])
    }


def prefill_attack_sets(config: Mapping[str, Any]) -> dict[str, Prefilled]:
    """Table 2's prefilling attack: {dataset} wildcard -> its :class:`Prefilled`, for every
    source and prefix length."""
    a = config.get("attacks", {})
    if "prefill" not in a.get("run", []):
        return {}
    return {
        prefill_set_name(d, k, src): Prefilled(d, k, src)
        for src in prefill_sources(config)
        for d in config.get("prefill", {}).get("datasets", [])
        for k in a["prefill"]["tokens"]
    }


def prefilled_sets(config: Mapping[str, Any]) -> dict[str, Prefilled]:
    """Every prefilled set, Table 1's and the prefilling attack's: {dataset} -> its
    :class:`Prefilled` (the plain eval set it is cut from, prefix tokens, source)."""
    return table1_prefilled_sets(config) | prefill_attack_sets(config)


def generated_sets(config: Mapping[str, Any]) -> dict[str, str]:
    """Every set the generate rule answers, {dataset} -> kind: Table 1's and Table 2's
    prefilled ones."""
    return eval_datasets(config) | dict.fromkeys(prefill_attack_sets(config), "prefill")


def generation_groups(config: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """The generated sets as each checkpoint's generate jobs answer them: Table 1's sets of
    plain prompts, Table 1's prefilled sets, and the prefilled sets only Table 2's prefilling
    attack reads (its other prefix lengths).

    A job per set paid the interpreter, imports and model load (about 4.5 s on a CPU, a vLLM
    engine's start on a GPU) for a few seconds of decoding; one job for all of a checkpoint's
    sets would leave the last checkpoint's generation on one core, and make Table 1 wait for
    Table 2's sets. On the default, the first two hold 400 and 481 prompts.
    """
    table1 = eval_datasets(config)
    return (
        [d for d, kind in table1.items() if kind != "prefill"],
        [d for d, kind in table1.items() if kind == "prefill"],
        [d for d in prefill_attack_sets(config) if d not in table1],
    )


def optimising_attacks(config: Mapping[str, Any]) -> list[str]:
    """Table 2's attacks that run an optimiser (one attack job per model, or its shards)."""
    return [a for a in config.get("attacks", {}).get("run", []) if a not in ("prefill", TRANSFER)]


def table2_attacks(config: Mapping[str, Any]) -> list[str]:
    """Table 2's rows read from attack transcripts: the optimising attacks, then the transfer."""
    run = config.get("attacks", {}).get("run", [])
    return optimising_attacks(config) + ([TRANSFER] if TRANSFER in run else [])


def attack_shards(config: Mapping[str, Any], name: str) -> int:
    """Jobs an optimising attack's prompts are split into: attacks.shards_by_attack.<name>,
    else attacks.shards (1 = one job writes the transcript, no merge step)."""
    a = config.get("attacks", {})
    return int(a.get("shards_by_attack", {}).get(name, a.get("shards", 1)))


def decoding_kwargs(generation: Mapping[str, Any]) -> dict[str, Any]:
    """The ``generation`` section as generate_records' (and the vLLM backend's) decoding
    keywords, so Table 1's generations and the attacks' evaluations decode alike."""
    return {k: generation[k] for k in DECODING_KEYS}


#: Keys of the sft/dpo sections that only the data step reads (where y- is cut into a prefix):
#: the trainers are not given them, so a change rebuilds the examples and nothing else directly.
DATA_KEYS = ("prefix_min_fraction", "prefix_max_fraction", "helpful_pairs")


def trainer_params(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """What a training job reads: its config section (``sft`` or ``dpo``) without the data
    step's keys, the precision policy, and for SFT the reset token it adds."""
    out = {k: v for k, v in config[stage].items() if k not in DATA_KEYS}
    out["precision"] = config["precision"]
    if stage == "sft":
        out["reset_token"] = config["reset_token"]
    return out


def job_resources(config: Mapping[str, Any], rule: str, model: str | None = None) -> dict[str, Any]:
    """Scheduler resources of one job: resources.default, then resources.<rule>, then (training
    rules) resources.<rule>.by_model.<model>, merged key by key."""
    r = config.get("resources", {})
    rule_res = dict(r.get(rule, {}))
    by_model = rule_res.pop("by_model", {})
    out = r.get("default", {}) | rule_res
    if model is not None:
        out |= by_model.get(model, {})
    return out


def job_gpus(config: Mapping[str, Any], rule: str, model: str) -> int:
    """Processes of one training job: its GPU count, at least 1."""
    return max(1, int(job_resources(config, rule, model).get("gpu", 0)))


def batch_plan(params: Mapping[str, Any], num_processes: int, key: str) -> dict[str, int]:
    """Per-device batch, accumulation and global batch of one job, checked against the config.

    ``key`` is the config section (``sft`` or ``dpo``) for error messages. With
    ``global_batch_size`` null the global batch is whatever ``batch_size x accumulation x N`` gives
    (accumulation null means 1). With it set, accumulation null is derived, and an explicit one
    must multiply out; either way a mismatch raises ``ValueError`` naming the config key.
    """
    n = max(1, int(num_processes))
    per_device = int(params["batch_size"])
    accum = params.get("gradient_accumulation_steps")
    want = params.get("global_batch_size")
    if want is None:
        accum = 1 if accum is None else int(accum)
    elif accum is None:
        per_step = per_device * n
        if want % per_step:
            raise ValueError(
                f"config key '{key}.global_batch_size': {want} examples per optimizer step cannot "
                f"be split into {key}.batch_size {per_device} x {n} GPU(s) x a whole number of "
                f"accumulation steps ({want} is not a multiple of {per_step}); change "
                f"{key}.batch_size or the job's GPU count (resources)"
            )
        accum = want // per_step
    elif per_device * int(accum) * n != want:
        raise ValueError(
            f"config key '{key}.gradient_accumulation_steps': {key}.batch_size {per_device} x "
            f"{accum} x {n} GPU(s) = {per_device * int(accum) * n}, not {key}.global_batch_size "
            f"{want}; set gradient_accumulation_steps to null to derive it per job"
        )
    else:
        accum = int(accum)
    return {
        "num_processes": n,
        "per_device_batch_size": per_device,
        "gradient_accumulation_steps": accum,
        "global_batch_size": per_device * accum * n,
    }


# --- Sweep points: a changed decoding at which the generate and judge steps run again ---


def bias_label(bias: float) -> str:
    """A bias as it appears in paths (``-10``, ``2.5``, ``0``): short and round-trips by float."""
    label = f"{float(bias):g}"
    return "0" if label == "-0" else label


def point_name(sweep: str, value: float | None = None) -> str:
    """A sweep point's name, the ``{point}`` wildcard: ``logit_bias/-5`` or ``worst_of_k``."""
    return f"{sweep}/{bias_label(value)}" if sweep == LOGIT_BIAS else sweep


def point_decoding(
    generation: Mapping[str, Any], sweeps: Mapping[str, Any], point: str
) -> tuple[dict[str, Any], int]:
    """The generation config and samples per prompt of a sweep point."""
    if point.startswith(LOGIT_BIAS + "/"):
        return {**generation, "reset_logit_bias": float(point.split("/", 1)[1])}, 1
    if point == WORST_OF_K:
        w = sweeps[WORST_OF_K]
        sampled = {"do_sample": True, "temperature": w["temperature"], "top_p": w["top_p"]}
        return {**generation, **sampled}, w["k"]
    raise ValueError(f"unknown sweep point {point!r}")


def point_bias(point: str | None, default: float) -> float:
    """The [RESET] logit bias of a logit-bias point (None, Table 1's own files: ``default``)."""
    return default if point is None else float(point.split("/", 1)[1])


def sweep_datasets(config: Mapping[str, Any], sweep: str) -> list[str]:
    """The sets a sweep generates: its ``datasets``, or by default Table 1's sets (logit bias)
    or Table 1's harmful sets (worst-of-k)."""
    names = config["sweeps"][sweep]["datasets"]
    if names is not None:
        return list(names)
    sets = eval_datasets(config)
    return [d for d, kind in sets.items() if sweep == LOGIT_BIAS or kind == "harmful"]


# --- The rows and cells of each table ---


def run_grid(config: Mapping[str, Any]) -> list[Row]:
    """Every (model, method, seed, stage) that Table 1 covers, in the table's order (a method
    without SFT of its own has no sft row); a row's seeds side by side."""
    r = config["run"]
    return [
        Row(m, meth, seed, st)
        for m in r["models"]
        for meth in r["methods"]
        for st in r["stages"]
        if st in METHODS[meth].stages()
        for seed in train_seeds(config)
    ]


def table1_cells(config: Mapping[str, Any]) -> list[Cell]:
    """Every Table 1 cell: each row of the run on each of Table 1's sets."""
    sets = eval_datasets(config)
    return [Cell(*row, d) for row in run_grid(config) for d in sets]


def table2_cells(config: Mapping[str, Any]) -> list[Cell]:
    """Every Table 2 row: the prefilling attack's sets, then each optimising attack (and the
    transfer) as ``attacks/<attack>``."""
    prefill = prefill_attack_sets(config)
    attacks = table2_attacks(config)
    out = []
    for row in run_grid(config):
        out += [Cell(*row, d) for d in prefill]
        out += [Cell(*row, f"attacks/{a}") for a in attacks]
    return out


def attack_budget_cells(config: Mapping[str, Any]) -> list[Cell]:
    """The cells the budget curves read: every optimising attack's row of Table 2."""
    return [c for c in table2_cells(config) if c.dataset.removeprefix("attacks/") in BUDGET_UNITS]


def sweep_grid(config: Mapping[str, Any], sweep: str) -> list[Row]:
    """The rows a sweep covers."""
    s = config["sweeps"][sweep]
    return [
        row
        for row in run_grid(config)
        if row.method in s.get("methods", [row.method])
        and row.stage in s.get("stages", [row.stage])
    ]


def logit_bias_cells(config: Mapping[str, Any]) -> list[Cell]:
    """Every swept cell; the bias Table 1 uses reuses its files (point None). Baseline rows of
    the run come in at Table 1's bias as reference lines."""
    used = config["generation"]["reset_logit_bias"]
    sets = sweep_datasets(config, LOGIT_BIAS)
    spec = config["sweeps"][LOGIT_BIAS]
    swept = sweep_grid(config, LOGIT_BIAS)
    out = []
    for row in swept:
        for bias in spec["values"]:
            point = None if bias == used else point_name(LOGIT_BIAS, bias)
            out += [Cell(*row, d, point) for d in sets]
    for row in run_grid(config):
        if row.method == "baseline" and row.stage in spec["stages"] and row not in swept:
            out += [Cell(*row, d, None) for d in sets]
    return out


def worst_of_k_cells(config: Mapping[str, Any]) -> list[Cell]:
    """Every row of the run on each worst-of-k set, sampled k times per prompt."""
    return [
        Cell(*row, d, WORST_OF_K)
        for row in run_grid(config)
        for d in sweep_datasets(config, WORST_OF_K)
    ]


def helpfulness_rows(config: Mapping[str, Any]) -> list[Row]:
    """Every row scored for helpfulness: each model's base model (method and stage ``base``,
    at the run's ``seed``: it is trained by no seed) first, then its rows of the run."""
    out = []
    for m in config["run"]["models"]:
        out.append(Row(m, "base", int(config.get("seed", 0)), "base"))
        out += [row for row in run_grid(config) if row.model == m]
    return out
