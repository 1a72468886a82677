# The graph's vocabulary (backtrack.plan) and the input functions; no rules here. Input
# functions expand the producing rule's own output pattern, so a path is spelled once, in the
# rule that writes it; table rules get the same keys, in the same order, as params.
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from backtrack.config import check_sweeps, validate_config
from backtrack.freshness import stale_message, stale_sources
from backtrack.models.provenance import checkpoint_problem
from backtrack.smk import as_json, json_param
from backtrack.plan import (
    ANSWER_SOURCES,
    BUDGET_UNITS,
    Cell,
    LOGIT_BIAS,
    METHODS,
    TRANSFER,
    WORST_OF_K,
    attack_budget,
    attack_budget_cells,
    attack_n,
    attack_n_key,
    attack_params,
    attack_shards,
    budget_label,
    cell_of,
    decoding_kwargs,
    eval_datasets,
    generated_sets,
    generation_groups,
    helpfulness_rows,
    job_resources,
    logit_bias_cells,
    optimising_attacks,
    point_decoding,
    prefill_answers_model,
    prefill_attack_sets,
    prefilled_sets,
    run_grid,
    sweep_datasets,
    table1_cells,
    table1_prefilled_sets,
    table2_attacks,
    table2_cells,
    train_seeds,
    trainer_params,
    transfer_checkpoint,
    transfer_source,
    worst_of_k_cells,
)

# Progress bars in job logs: each redraw is a line of its own (backtrack.smk.LineLog), at most
# one every 5 s per bar; tqdm reads TQDM_* defaults from the environment the jobs inherit.
os.environ.setdefault("TQDM_MININTERVAL", "5")

validate_config(config)

# Table 1's sets -> kind (harmful, dev, benign, prefill).
EVAL_SETS = eval_datasets(config)
# Table 2's prefilling attack: its prefilled sets are {dataset} values of generate/judge too.
PREFILL_ATTACK_SETS = prefill_attack_sets(config)
# Every prefilled set, Table 1's and the attack's -> (plain eval set, prefix tokens, source).
PREFILLED_SETS = prefilled_sets(config)
GENERATED_SETS = generated_sets(config)
# Each checkpoint's generations come from up to three jobs: Table 1's plain sets, Table 1's
# prefilled sets, the prefilled sets only Table 2 reads.
PLAIN_SETS, TABLE1_PREFILLED, ATTACK_PREFILLED = generation_groups(config)
OPTIMISING_ATTACKS = optimising_attacks(config)
# Attacks with a targets file of their own (the transfer reads GCG's).
ALL_OPTIMISING = "|".join(map(re.escape, OPTIMISING_ATTACKS)) or "(?!)"
# Table 2's rows with a transcript: the optimising attacks and the transfer.
TABLE2_ATTACKS = table2_attacks(config)
# Attacks split over several jobs (attacks.shards) are merged by merge_attack, the rest written
# by one attack job; per-rule wildcard constraints keep the two rules apart.
SHARDS = {a: attack_shards(config, a) for a in OPTIMISING_ATTACKS}
SHARDED_ATTACKS = "|".join(re.escape(a) for a in SHARDS if SHARDS[a] > 1) or "(?!)"
UNSHARDED_ATTACKS = "|".join(re.escape(a) for a in SHARDS if SHARDS[a] == 1) or "(?!)"
# vLLM needs its own torch build, hence its own environment: with --sdm conda on a GPU; on a
# CPU generate.py hands the job to tools/setup.sh's .venv-vllm (backtrack.generate.job).
GENERATE_ENV = (
    "../../envs/vllm.yaml"
    if config["generation"]["backend"] == "vllm"
    else "../../envs/train.yaml"
)
# The pattern judge needs no torch; a guard model needs transformers or vLLM.
_judge = config["judge"]
# Judges that run a model follow `precision`; the pattern judge does not rerun when it changes.
JUDGE_PRECISION = None if _judge["name"] == "refusal" else config["precision"]
JUDGE_ENV = (
    "../../envs/report.yaml"
    if _judge["name"] == "refusal"
    else (
        "../../envs/vllm.yaml"
        if _judge["params"].get("backend") == "vllm"
        else "../../envs/train.yaml"
    )
)
ALL_METHODS = "|".join(map(re.escape, METHODS))
# Methods that train an SFT model of their own (the others start DPO from another's).
SFT_METHODS = "|".join(re.escape(m) for m, spec in METHODS.items() if spec.sft)
# Helpfulness also scores each base model, as method and stage "base".
HELPFULNESS_METHODS = "|".join(["base", *METHODS])
HELPFULNESS_STAGES = "base|sft|dpo"
# Training and the data it starts from go first when jobs compete for cores: the two training
# lanes (SFT then DPO, each hundreds of seconds) are the run's critical path, and an evaluation
# job that starts first only delays them. Ordering only: no output depends on it. SFT and the
# data it starts from go before DPO's data, which waits for SFT anyway: both lanes then start
# SFT as soon as the training pool exists.
TRAINING_PRIORITY = 10
SFT_PRIORITY = TRAINING_PRIORITY + 1
HELPFULNESS = config["helpfulness"]
MT_BENCH = HELPFULNESS["mt_bench"]


def local_cores():
    """Cores of a local run; None when jobs go to a cluster executor (no total there), and in
    the Snakemake that runs one job on a cluster node: it is started with --cores all, the
    node's cores, not the job's allocation, and a thread count above the allocation fails the
    job step (srun: "More processors requested than permitted")."""
    if workflow.remote_exec:
        return None
    try:
        return workflow.cores
    except WorkflowError:
        return None


def model_threads(rule, share=2):
    """Threads of a job that runs a model. Locally, 1/share of the cores, so that the baseline
    and backtracking lanes of the graph run side by side (measured on 2 cores: two 1-thread
    SmolLM2 training steps in parallel take 9.1 s, one 2-thread step 6.5 s, 1.42x the
    throughput). On a cluster, resources.<rule>.threads from the config.
    """
    cores = local_cores()
    if cores:
        return max(1, cores // share)
    return rule_resources(rule).get("threads", 1)


wildcard_constraints:
    model="|".join(map(re.escape, config["models"])),
    method=ALL_METHODS,
    stage="sft|dpo",
    seed=r"[0-9]+",
    dataset="|".join(map(re.escape, GENERATED_SETS)),
    attack="|".join(map(re.escape, TABLE2_ATTACKS)) or "(?!)",
    point=rf"{LOGIT_BIAS}/-?[0-9.]+(?:e[-+]?[0-9]+)?|{WORST_OF_K}",


def rule_resources(rule):
    """Scheduler resources of a rule: resources.default, then resources.<rule> (config)."""
    r = config["resources"]
    return r.get("default", {}) | r.get(rule, {})


# What a job asks the scheduler for; threads are the rule's own `threads:`.
RESOURCE_KEYS = ("mem_mb", "runtime", "gpu")


def model_resources(rule):
    """Scheduler resources of a job that runs a model (`**model_resources(name)` in a rule)."""
    r = rule_resources(rule)
    return {key: r[key] for key in RESOURCE_KEYS}


def train_resources(rule):
    """The resources of a training rule, per model (train_resource), on one node: without
    nodes=1 the SLURM plugin asks for --gpus=N only, which SLURM may spread over several nodes
    (a job runs one accelerate process per GPU)."""
    return {key: train_resource(rule, key) for key in RESOURCE_KEYS} | {"nodes": 1}


def train_resource(rule, key):
    """A training job's resource `key` as a function of its model: resources.default, then
    resources.<rule>, then resources.<rule>.by_model.<model> (e.g. 8 GPUs for Llama-3-8B).
    """

    def get(wildcards):
        return job_resources(config, rule, wildcards.model)[key]

    return get


def train_threads(rule):
    """Threads of a training job: as model_threads locally; on a cluster, per model."""

    def get(wildcards):
        cores = local_cores()
        if cores:
            return max(1, cores // 2)
        return job_resources(config, rule, wildcards.model).get("threads", 1)

    return get


def get_train_launch(wildcards, resources):
    """How the job starts its processes: its GPU count and the accelerate config (launch.*).

    Taking `resources` makes this a derived param, which Snakemake leaves out of the params rerun
    trigger: moving a model to more GPUs, or changing the accelerate config, retrains nothing
    (the global batch stays sft/dpo.global_batch_size).
    """
    path = config["launch"]["accelerate_config"]
    return as_json(
        {
            "gpus": int(resources.get("gpu", 0)),
            "accelerate_config": os.path.join(workflow.basedir, path),
        }
    )


# The per-seed tables that table_seeds summarises over training seeds (Table 1 has its own
# summary, from the answers). Per table, the numeric columns that with the text columns say
# what a row is, and the columns with intervals that are not rates (not clipped to [0, 1]).
SEED_TABLES = {
    "table2": {"numeric_keys": [], "unbounded": []},
    "logit_bias": {"numeric_keys": ["bias"], "unbounded": []},
    "worst_of_k": {"numeric_keys": ["k"], "unbounded": []},
    "helpfulness": {"numeric_keys": [], "unbounded": ["answer_nll", "nll_vs_base"]},
}


def get_seed_table(wildcards):
    """How table_seeds groups and clips ``wildcards.table`` (:data:`SEED_TABLES`)."""
    return as_json(SEED_TABLES[wildcards.table])


def report_only_path():
    """The report file (`""` if `--report` names none) when this process only builds the report
    (`--report` without `--report-after-run`), else None.

    Then the final outputs are the ones that exist, so that after a narrower command (the
    first one builds Table 1 only) `snakemake --report` reports what was built instead of
    stopping on the first output that never was. Snakemake parses the Snakefile before it knows
    the mode, so the command line is read here."""
    args = sys.argv[1:]
    if "--report-after-run" in args:
        return None
    for i, a in enumerate(args):
        if a.startswith("--report="):
            return a.split("=", 1)[1]
        if a == "--report":
            after = args[i + 1] if i + 1 < len(args) else ""
            return "" if after.startswith("-") else after
    return None


def get_final_outputs():
    """Everything the report shows (rule all; `snakemake --report` reports this graph, or
    what of it exists: `report_only_path`)."""
    outputs = all_final_outputs()
    path = report_only_path()
    if path is None:
        return outputs
    if os.path.dirname(
        path
    ):  # results/ before any run: Snakemake would stop writing the file
        os.makedirs(os.path.dirname(path), exist_ok=True)
    return [p for p in outputs if os.path.exists(p)]


def all_final_outputs():
    """Every final output of the configured graph: tables, pages, figures, the demo."""
    return (
        [
            "results/claims.csv",
            "results/claims.html",
            "results/table1.csv",
            "results/table1.html",
            "results/table2.html",
            "results/table1_seeds.csv",
            "results/figures/logit_bias.png",
            "results/figures/worst_of_k.png",
        ]
        + (
            [f"results/demo/{m}.txt" for m in config["run"]["models"]]
            if demo_in_run()
            else []
        )
        + [f"results/{t}.csv" for t in SEED_TABLES]
        + [f"results/{t}_seeds.csv" for t in SEED_TABLES]
        + (
            [
                "results/attack_budget.csv",
                "results/attack_budget.html",
                "results/figures/attack_budget.png",
            ]
            if OPTIMISING_ATTACKS
            else []
        )
        + (
            ["results/mt_bench.csv"]
            if config["helpfulness"]["mt_bench"]["enabled"]
            else []
        )
    )


def one(pattern, **keys):
    """The one path ``pattern`` names with ``keys`` (a rule's output pattern, expanded)."""
    (path,) = expand(pattern, **keys)
    return path


def sound_checkpoint(path):
    """``path``, after checking that an existing checkpoint's weight files still match its
    provenance record (sizes only: a stat per file): a job planned to run from a damaged one
    stops the plan with the command that rebuilds it. (Where the job's own output exists,
    Snakemake swallows this error; the tables' check, `fresh`, catches that case.)"""
    problem = None
    if os.path.isdir(path) and not rebuilt_here(path):
        problem = checkpoint_problem(path)
    if problem:
        raise WorkflowError(
            f"checkpoint {path} is damaged: {problem}. Rebuild it and everything made from "
            f"it: rerun the same command with --forcerun {path}"
        )
    return path


def fresh(paths):
    """``paths`` (a table's inputs), after checking that no file they were made from, at any
    depth, is gone or a damaged checkpoint (backtrack.freshness): a job killed while rebuilding
    one leaves the old downstream files, which Snakemake would report as current."""
    stale = stale_sources(paths, problem=damaged_checkpoint)
    stale = {k: v for k, v in stale.items() if not rebuilt_here(k)}
    if stale:
        raise WorkflowError(stale_message(stale))
    return paths


def damaged_checkpoint(path):
    """What is wrong with a checkpoint directory's weight files (sizes against its record)."""
    if not os.path.isdir(path):
        return None
    problem = checkpoint_problem(path)
    return f"is damaged ({problem})" if problem else None


def rebuilt_here(path):
    """Whether this run was told to rebuild ``path``: --forceall, or --forcerun naming it or
    the rule that writes it (then the plan rebuilds it and everything made from it)."""
    settings = getattr(workflow, "dag_settings", None)
    if settings is None:
        return False
    if settings.forceall:
        return True
    for item in settings.forcerun or ():
        if workflow.is_rule(item):
            if workflow.get_rule(item).is_producer(path):
                return True
        elif os.path.normpath(item) == path:
            return True
    return False


def get_train_seed(wildcards):
    """The training seed of a job (its {seed}): data draws, data order, the trainers' seed."""
    return int(wildcards.seed)


def get_model_dir(wildcards):
    """The checkpoint a job runs: the trained model of its (model, method, seed, stage)."""
    train = rules.train_sft if wildcards.stage == "sft" else rules.train_dpo
    return sound_checkpoint(
        one(
            train.output.model,
            model=wildcards.model,
            method=wildcards.method,
            seed=wildcards.seed,
        )
    )


def get_dpo_start(wildcards):
    """The checkpoint DPO starts from (and uses as its reference): the method's own SFT model,
    or, for a method without SFT, the SFT model of `sft_from` (`base`: the base model), with
    the same training seed.
    """
    spec = METHODS[wildcards.method]
    source = wildcards.method if spec.sft else spec.sft_from
    if source == "base":
        return get_base_model(wildcards)
    return sound_checkpoint(
        one(
            rules.train_sft.output.model,
            model=wildcards.model,
            method=source,
            seed=wildcards.seed,
        )
    )


def get_sft_kind(wildcards):
    """Which SFT examples a method trains on (backtrack.plan.METHODS)."""
    return METHODS[wildcards.method].sft


def get_prefix_rule(wildcards):
    """How much of y- a method's SFT examples keep: `fraction` or Qi et al.'s `qi`."""
    return METHODS[wildcards.method].prefix_rule


def get_dpo_kind(wildcards):
    """Which DPO pairs a method trains on."""
    return METHODS[wildcards.method].dpo


def get_demo_checkpoint(wildcards):
    """The checkpoint the demo runs on: demo.method and demo.stage, the first training seed."""
    demo = config["demo"]
    trained = rules.train_sft if demo["stage"] == "sft" else rules.train_dpo
    return sound_checkpoint(
        one(
            trained.output.model,
            model=wildcards.model,
            method=demo["method"],
            seed=train_seeds(config)[0],
        )
    )


def demo_in_run():
    """Whether the run trains the demo's checkpoint (demo.method and demo.stage); if not, the
    final outputs leave the demo out instead of training a checkpoint only for it."""
    demo, run = config["demo"], config["run"]
    return demo["method"] in run["methods"] and demo["stage"] in run["stages"]


def get_demo_sweep(wildcards):
    """The logit-bias sweep whose recommendation the demo prints after a reset, where the run
    has that sweep (none without a backtracking method in sweeps.logit_bias.methods)."""
    return ["results/logit_bias.csv"] if logit_bias_cells(config) else []


def get_base_model(wildcards):
    return sound_checkpoint(
        one(rules.prepare_base_model.output.model, model=wildcards.model)
    )


def prompts_file(model, dataset):
    """The prompt set a generation file answers; prefilled sets are per model (cut from its
    base model's answers)."""
    if GENERATED_SETS[dataset] == "prefill":
        return one(
            rules.prepare_prefill_set.output.prompts, model=model, dataset=dataset
        )
    return one(rules.prepare_eval_set.output.prompts, dataset=dataset)


def get_set_prompts(datasets):
    """An input function: the prompt sets of ``datasets``, in that order (a generate job pairs
    them with its outputs, written in the same order)."""

    def prompts(wildcards):
        return [prompts_file(wildcards.model, d) for d in datasets]

    return prompts


def get_eval_input(wildcards):
    """An eval set's prompts (what generate answers and judge checks the answers against)."""
    return prompts_file(wildcards.model, wildcards.dataset)


def get_prefill_answers(wildcards):
    """The unsafe answers a prefilled set is cut from: the base model's own, or another model's
    (prefill.other_model); none for the written "Sure, here is" openers."""
    pre = PREFILLED_SETS[wildcards.dataset]
    if pre.source not in ANSWER_SOURCES:
        return []
    return one(
        rules.sample_prefill_answers.output.answers,
        model=prefill_answers_model(config, pre.source, wildcards.model),
        dataset=pre.dataset,
    )


def get_prefill_eval_prompts(wildcards):
    """The plain eval set a prefilled set is cut from (its answers must cover every prompt)."""
    return one(
        rules.prepare_eval_set.output.prompts,
        dataset=PREFILLED_SETS[wildcards.dataset].dataset,
    )


def get_prefill_tokens(wildcards):
    """Prefix length of a prefilled set."""
    return PREFILLED_SETS[wildcards.dataset].tokens


def get_prefill_source(wildcards):
    """Where a prefilled set's prefixes come from (prefill.sources)."""
    return PREFILLED_SETS[wildcards.dataset].source


def get_eval_prompt_files(wildcards):
    """Every plain eval prompt file, harmful and benign (for the train/eval overlap check)."""
    sets = [d for d, kind in EVAL_SETS.items() if kind != "prefill"]
    return expand(rules.prepare_eval_set.output.prompts, dataset=sets)


def judgment_file(cell):
    """The judged answers of one table cell, from the judging rule that writes them."""
    model, method, seed, stage, dataset, point = cell_of(cell)
    keys = {"model": model, "method": method, "seed": seed, "stage": stage}
    if point:
        return one(
            rules.judge_sweep.output.judgments, point=point, dataset=dataset, **keys
        )
    if dataset.startswith("attacks/"):
        attack = dataset.split("/", 1)[1]
        return one(rules.judge_attack.output.judgments, attack=attack, **keys)
    return one(rules.judge.output.judgments, dataset=dataset, **keys)


def prompt_file(cell):
    """The prompt set one table cell answers: its eval set, or the attack's targets."""
    cell = cell_of(cell)
    if cell.dataset.startswith("attacks/"):
        attack = cell.dataset.split("/", 1)[1]
        return attack_prompt_file(attack, cell.model, cell.seed)
    return prompts_file(cell.model, cell.dataset)


def attack_prompt_file(attack, model, seed):
    """The prompts an attack's transcript answers: its targets, or (the transfer) the
    suffixes that broke the source checkpoint of the same model and seed."""
    if attack == TRANSFER:
        return one(rules.transfer_set.output.prompts, model=model, seed=seed)
    return one(rules.prepare_attack_targets.output.targets, attack=attack)


def get_attack_targets(wildcards):
    """Input function: the targets file of the job's attack."""
    return attack_prompt_file(wildcards.attack, wildcards.model, wildcards.seed)


def attack_prompt_labels(config):
    """Table 2's `prompts` column per attack: `advbench[:n]`, or the transfer's source."""
    a = config["attacks"]
    out = {
        name: f"{a['dataset']}[:{attack_n(config, name)}]"
        for name in OPTIMISING_ATTACKS
    }
    if TRANSFER in TABLE2_ATTACKS:
        out[TRANSFER] = (
            f"those of {a['dataset']}[:{attack_n(config, 'gcg')}] that broke {transfer_source(config)}"
        )
    return out


def attack_budget_labels(config):
    """Table 2's `budget` column per attack (`40 steps`, `10 generations`)."""
    return {name: budget_label(config, name) for name in TABLE2_ATTACKS}


def get_attack_n(wildcards):
    """Prompts the attack runs on (attacks.<attack>.n, else attacks.n)."""
    return attack_n(config, wildcards.attack)


def get_attack_n_key(wildcards):
    """The config key that sets get_attack_n, for the targets script's error."""
    return attack_n_key(config, wildcards.attack)


def get_transfer_source(kind):
    """Input function: the source checkpoint's GCG transcript (kind "transcripts") or its
    judgments ("judgments") for the transfer set of one model and seed (attacks.transfer).
    """
    method, stage = transfer_checkpoint(config)
    producer = rules.attack if kind == "transcripts" else rules.judge_attack
    return lambda wildcards: one(
        getattr(producer.output, kind),
        model=wildcards.model,
        method=method,
        seed=wildcards.seed,
        stage=stage,
        attack="gcg",
    )


def cell_keys(cells):
    """A table's cells as params: (model, method, seed, stage, set, point), in input order."""
    return [list(c) for c in cells]


def judgments_of(cells_of, check=None):
    """Input function: the judged answers of a table's cells (`cells_of(config)`), in order;
    `check(config)` first where a config section is checked only when its table is built.
    """

    def get(wildcards):
        if check:
            check(config)
        return fresh([judgment_file(c) for c in cells_of(config)])

    return get


def prompts_of(cells_of):
    """Input function: the prompt sets of a table's cells, in the same order."""
    return lambda wildcards: [prompt_file(c) for c in cells_of(config)]


def get_attack_params(wildcards):
    """An attack's settings (the adaptive attack's include GCG's)."""
    return as_json(attack_params(config, wildcards.attack))


def get_whole_attack(wildcards, output):
    """Param `shard` of the attack rule: shard 1 of 1, every target. A param function that
    takes `output` is a derived param, left out of the params rerun trigger: how the targets
    are split changes no transcript."""
    return [1, 1]


def get_shard_of_attack(wildcards, output):
    """Param `shard` of the attack_shard rule: [shard, shards] (derived, as get_whole_attack)."""
    return [int(wildcards.shard), int(wildcards.shards)]


def get_attack_reuse(wildcards, output):
    """Every transcript an attack job may take finished prompts from: its attack's whole file
    and the shard files of any split (shard numbers as `*`); derived, as get_whole_attack.
    """
    keys = {
        k: getattr(wildcards, k) for k in ("model", "method", "seed", "stage", "attack")
    }
    return [
        one(rules.attack.output.transcripts, **keys),
        one(rules.attack_shard.output.transcripts, shard="*", shards="*", **keys),
    ]


def get_attack_shards(wildcards):
    """The shard transcripts merge_attack joins, in prompt order (attacks.shards)."""
    n = SHARDS[wildcards.attack]
    return expand(
        rules.attack_shard.output.transcripts,
        shard=range(1, n + 1),
        shards=n,
        model=wildcards.model,
        method=wildcards.method,
        seed=wildcards.seed,
        stage=wildcards.stage,
        attack=wildcards.attack,
    )


def get_model_source(wildcards):
    return as_json(config["models"][wildcards.model]["source"])


def get_model_chat_template(wildcards):
    """models.<alias>.chat_template, relative to the workflow's directory; [] when unset."""
    path = config["models"][wildcards.model].get("chat_template")
    return os.path.join(workflow.basedir, path) if path else []


def get_train_pool(wildcards):
    """The training pool a model trains on: its own, or models.<alias>.pool_from's (a base
    model trained on an instruct model's responses)."""
    other = config["models"][wildcards.model].get("pool_from") or wildcards.model
    return one(rules.prepare_train_pool.output.pool, model=other)


def get_model_dtype(wildcards):
    return config["models"][wildcards.model]["dtype"]


def get_eval_spec(wildcards):
    """The config entry an eval set is built from (params: a change rebuilds the set)."""
    if EVAL_SETS[wildcards.dataset] == "benign":
        return as_json(config["data"]["benign"])
    return as_json(config["data"]["eval_sets"][wildcards.dataset])


def get_trainer_params(stage):
    """What a training job reads of its config section (sft or dpo), as JSON."""
    return as_json(trainer_params(config, stage))


# --- Sweeps (results/logit_bias.csv, results/worst_of_k.csv) ---


def get_sweep_generation(wildcards):
    """The generation settings of a sweep point (a bias on [RESET], or sampling)."""
    gen, _ = point_decoding(config["generation"], config["sweeps"], wildcards.point)
    return as_json(gen)


def get_sweep_samples(wildcards):
    """Answers sampled per prompt at a sweep point (worst-of-k: k; else 1)."""
    return point_decoding(config["generation"], config["sweeps"], wildcards.point)[1]


def get_sweep_limit(wildcards):
    """Prompts a sweep point uses (worst-of-k: the first n; else all, 0)."""
    if wildcards.point == WORST_OF_K:
        return config["sweeps"][WORST_OF_K]["n"] or 0
    return 0


def get_logit_bias_kinds(wildcards):
    """The logit-bias sets with their kinds (harmful, prefill, benign), as JSON."""
    check_sweeps(config)
    return as_json({d: GENERATED_SETS[d] for d in sweep_datasets(config, LOGIT_BIAS)})


def get_logit_bias_cells(wildcards):
    check_sweeps(config)
    return as_json(cell_keys(logit_bias_cells(config)))


def get_worst_of_k_cells(wildcards):
    check_sweeps(config)
    return as_json(cell_keys(worst_of_k_cells(config)))


# --- Helpfulness (results/helpfulness.csv) and MT-Bench (results/mt_bench.csv) ---


def get_helpfulness_model(wildcards):
    """The checkpoint scored: the base model for method 'base', else the trained one."""
    if wildcards.method == "base":
        return get_base_model(wildcards)
    return get_model_dir(wildcards)


def get_helpfulness_references(wildcards):
    """Reference answers: the base model's greedy answers, or the benign eval set's own."""
    if HELPFULNESS["references"] == "base_model":
        return one(
            rules.helpfulness_references.output.references, model=wildcards.model
        )
    return one(rules.prepare_eval_set.output.prompts, dataset="benign")


def rows_of(pattern, rows):
    """``pattern`` expanded for each (model, method, seed, stage) row, in order."""
    return [one(pattern, **row._asdict()) for row in rows]


def get_helpfulness_scores(wildcards):
    return fresh(
        rows_of(rules.score_helpfulness.output.scores, helpfulness_rows(config))
    )


def get_helpfulness_benign(wildcards):
    """The benign judgments of the run's rows (over-refusal), in run order."""
    return fresh([judgment_file(Cell(*row, "benign")) for row in run_grid(config)])


def get_mt_bench_judgments(wildcards):
    """MT-Bench judgments for the helpfulness table: none unless the stage is enabled."""
    if not MT_BENCH["enabled"]:
        return []
    return fresh(
        rows_of(rules.mt_bench_judge.output.judgments, helpfulness_rows(config))
    )


def get_mt_bench_table_judgments(wildcards):
    if not MT_BENCH["enabled"]:
        raise WorkflowError(
            "results/mt_bench.csv: MT-Bench is off; set helpfulness.mt_bench.enabled: true "
            "(with helpfulness.mt_bench.questions and helpfulness.mt_bench.judge.model)"
        )
    return get_mt_bench_judgments(wildcards)


def get_mt_bench_questions(wildcards):
    """The local questions file; a missing one stops the plan with what to do."""
    path = MT_BENCH["questions"]
    if not Path(path).is_file():
        raise WorkflowError(
            f"config key 'helpfulness.mt_bench.questions': {path} does not exist. The MT-Bench "
            "questions are not shipped offline: download FastChat's "
            "fastchat/llm_judge/data/mt_bench/question.jsonl (github.com/lm-sys/FastChat) "
            "and point this key at it, or set helpfulness.mt_bench.enabled: false."
        )
    return path


def get_mt_bench_reference_answers(wildcards):
    """FastChat's reference answers for math/reasoning/coding, when configured."""
    return MT_BENCH["reference_answers"] or []


def get_mt_bench_decoding(wildcards):
    """The deployed decoding (generation.*: [RESET] bias and cap, sampling) at MT-Bench's
    length and batch size.
    """
    return as_json(
        decoding_kwargs(config["generation"])
        | {
            "max_new_tokens": MT_BENCH["max_new_tokens"],
            "batch_size": MT_BENCH["batch_size"],
        }
    )
