# Validation, wildcard constraints and input functions; no rules here.
import json
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError

from backtrack.config import (
    attack_shards,
    check_sweeps,
    decoding_kwargs,
    eval_datasets,
    job_resources,
    optimising_attacks,
    prefill_sweep_sets,
    sweep_datasets,
    validate_config,
)
from backtrack.sweeps import LOGIT_BIAS, WORST_OF_K, point_decoding, point_name

validate_config(config)

EVAL_SETS = eval_datasets(config)
# Table 2's prefilling sweep reuses generate/judge; its sets are {dataset} values too.
SWEEP_SETS = prefill_sweep_sets(config)
GEN_SETS = EVAL_SETS | {name: "prefill" for name in SWEEP_SETS}
ATTACKS = optimising_attacks(config)
# Attacks split over several jobs (attacks.shards) are merged by merge_attack, the rest written
# by one attack job; per-rule wildcard constraints keep the two rules apart.
SHARDS = {a: attack_shards(config, a) for a in ATTACKS}
SHARDED_ATTACKS = "|".join(re.escape(a) for a in ATTACKS if SHARDS[a] > 1) or "(?!)"
UNSHARDED_ATTACKS = "|".join(re.escape(a) for a in ATTACKS if SHARDS[a] == 1) or "(?!)"
ATTACK_TARGETS = "results/data/attacks/targets.jsonl"
# vLLM needs its own torch build, hence its own environment: with --sdm conda on a GPU; on a
# CPU generate.py hands the job to scripts/setup.sh's .venv-vllm (backtrack.generate_job).
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
    method="baseline|backtrack",
    stage="sft|dpo",
    dataset="|".join(map(re.escape, GEN_SETS)),
    attack="|".join(map(re.escape, ATTACKS)) or "(?!)",
    point=rf"{LOGIT_BIAS}/-?[0-9.]+(?:e[-+]?[0-9]+)?|{WORST_OF_K}",


def rule_resources(rule):
    """Scheduler resources of a rule: resources.default, then resources.<rule> (config)."""
    r = config["resources"]
    return r.get("default", {}) | r.get(rule, {})


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


def as_json(obj):
    """Hyperparameters as sorted JSON, so that key order never triggers a rerun."""
    return json.dumps(obj, sort_keys=True)


def run_grid():
    """Every (model, method, stage) that Table 1 covers."""
    r = config["run"]
    return [
        (m, meth, st)
        for m in r["models"]
        for meth in r["methods"]
        for st in r["stages"]
    ]


def get_final_outputs():
    """Everything the report shows (rule all; `snakemake --report` reports this graph)."""
    return [
        "results/table1.csv",
        "results/table2.csv",
        "results/logit_bias.csv",
        "results/figures/logit_bias.png",
        "results/worst_of_k.csv",
        "results/figures/worst_of_k.png",
        "results/helpfulness.csv",
    ] + (
        ["results/mt_bench.csv"] if config["helpfulness"]["mt_bench"]["enabled"] else []
    )


def get_model_dir(wildcards):
    """The checkpoint a generation job runs: results/models/{model}/{method}/{stage}."""
    return f"results/models/{wildcards.model}/{wildcards.method}/{wildcards.stage}"


def prompts_file(model, dataset):
    """The prompt set a generation file answers; prefilled sets are per model (cut from its
    base model's answers)."""
    if GEN_SETS[dataset] == "prefill":
        return f"results/data/prefill/{model}/{dataset}.jsonl"
    return f"results/data/eval/{dataset}.jsonl"


def get_eval_input(wildcards):
    """An eval set's prompts (what generate answers and judge checks the answers against)."""
    return prompts_file(wildcards.model, wildcards.dataset)


def get_prefill_answers(wildcards):
    """The base model's answers on the plain eval set a prefilled set is cut from."""
    base = wildcards.dataset.rsplit("_prefill", 1)[0]
    return f"results/data/prefill/{wildcards.model}/{base}_answers.jsonl"


def get_prefill_eval_prompts(wildcards):
    """The plain eval set a prefilled set is cut from (its answers must cover every prompt)."""
    return f"results/data/eval/{wildcards.dataset.rsplit('_prefill', 1)[0]}.jsonl"


def get_prefill_tokens(wildcards):
    """Prefix length of a prefilled set, from its name ({dataset}_prefill{k})."""
    return int(wildcards.dataset.rsplit("_prefill", 1)[1])


def get_harmful_eval_files(wildcards):
    """Every harmful and benign eval prompt file (for the train/eval overlap check)."""
    return [
        f"results/data/eval/{d}.jsonl"
        for d, kind in EVAL_SETS.items()
        if kind != "prefill"
    ]


def table1_cells():
    """(model, method, stage, set) of every Table 1 cell, in the table's order."""
    return [(m, meth, st, d) for (m, meth, st) in run_grid() for d in EVAL_SETS]


def get_table1_judgments(wildcards):
    return [judgment_path(*cell) for cell in table1_cells()]


def get_table1_prompts(wildcards):
    """The prompt set of each Table 1 cell (same order): a judgment file must answer it."""
    return [prompts_file(m, d) for m, _, _, d in table1_cells()]


def get_attack_params(wildcards):
    """An attack's settings; the adaptive attack runs GCG inside, so it takes both sections."""
    a = config["attacks"]
    if wildcards.attack == "adaptive":
        return as_json(a["gcg"] | {"adaptive": a["adaptive"]})
    return as_json(a[wildcards.attack])


def get_attack_shards(wildcards):
    """The shard transcripts merge_attack joins, in prompt order (attacks.shards)."""
    n = SHARDS[wildcards.attack]
    return [
        f"results/attacks/{wildcards.model}/{wildcards.method}/{wildcards.stage}/"
        f"{wildcards.attack}/shard-{k}-of-{n}.jsonl"
        for k in range(1, n + 1)
    ]


def table2_cells():
    """(model, method, stage, name) of every Table 2 row: the prefilling sweep's sets, then
    each optimising attack as ``attacks/<attack>``."""
    out = []
    for m, meth, st in run_grid():
        out += [(m, meth, st, d) for d in SWEEP_SETS]
        out += [(m, meth, st, f"attacks/{a}") for a in ATTACKS]
    return out


def get_table2_inputs(wildcards):
    """Judgments Table 2 reads: the prefilling sweep's sets and each optimising attack's."""
    return [judgment_path(*cell) for cell in table2_cells()]


def get_table2_prompts(wildcards):
    """The prompt set of each Table 2 row (same order): prefilled sets, or the attack targets."""
    return [
        ATTACK_TARGETS if name.startswith("attacks/") else prompts_file(m, name)
        for m, _, _, name in table2_cells()
    ]


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
    return f"results/data/train/{other}/pool.jsonl"


def get_model_dtype(wildcards):
    return config["models"][wildcards.model]["dtype"]


def get_eval_spec(wildcards):
    """The config entry an eval set is built from (params: a change rebuilds the set)."""
    if EVAL_SETS[wildcards.dataset] == "benign":
        return as_json(config["data"]["benign"])
    return as_json(config["data"]["eval_sets"][wildcards.dataset])


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


def sweep_grid(sweep):
    """The (model, method, stage) a sweep covers."""
    s = config["sweeps"][sweep]
    return [
        (m, meth, st)
        for m, meth, st in run_grid()
        if meth in s.get("methods", [meth]) and st in s.get("stages", [st])
    ]


def get_logit_bias_kinds(wildcards):
    """The logit-bias sets with their kinds (harmful, prefill, benign), as JSON."""
    check_sweeps(config)
    return as_json({d: GEN_SETS[d] for d in sweep_datasets(config, LOGIT_BIAS)})


def judgment_path(model, method, stage, dataset, point=None):
    """A judged generation file: Table 1's, or a sweep point's."""
    rest = f"judgments/{model}/{method}/{stage}/{dataset}.jsonl"
    return f"results/sweeps/{point}/{rest}" if point else f"results/{rest}"


def logit_bias_cells():
    """Every swept (model, method, stage, set, point); the bias Table 1 uses reuses its files
    (point None). Baseline models of the run come in at Table 1's bias as reference lines.
    """
    check_sweeps(config)
    used = config["generation"]["reset_logit_bias"]
    sets = sweep_datasets(config, LOGIT_BIAS)
    out = []
    for m, meth, st in sweep_grid(LOGIT_BIAS):
        for bias in config["sweeps"][LOGIT_BIAS]["values"]:
            point = None if bias == used else point_name(LOGIT_BIAS, bias)
            out += [(m, meth, st, d, point) for d in sets]
    stages = config["sweeps"][LOGIT_BIAS]["stages"]
    for m, meth, st in run_grid():
        if (
            meth == "baseline"
            and st in stages
            and (m, meth, st) not in sweep_grid(LOGIT_BIAS)
        ):
            out += [(m, meth, st, d, None) for d in sets]
    return out


def worst_of_k_cells():
    """Every (model, method, stage, set, point) of the run, sampled k times per prompt."""
    check_sweeps(config)
    return [
        (m, meth, st, d, WORST_OF_K)
        for m, meth, st in run_grid()
        for d in sweep_datasets(config, WORST_OF_K)
    ]


def get_logit_bias_inputs(wildcards):
    return [judgment_path(*cell) for cell in logit_bias_cells()]


def get_logit_bias_prompts(wildcards):
    """The prompt set of each logit-bias judgment file (same order)."""
    return [prompts_file(m, d) for m, _, _, d, _ in logit_bias_cells()]


def get_worst_of_k_inputs(wildcards):
    return [judgment_path(*cell) for cell in worst_of_k_cells()]


def get_worst_of_k_prompts(wildcards):
    """The prompt set of each worst-of-k judgment file (same order)."""
    return [prompts_file(m, d) for m, _, _, d, _ in worst_of_k_cells()]


# --- Helpfulness (results/helpfulness.csv) and MT-Bench (results/mt_bench.csv) ---
HELPFULNESS = config["helpfulness"]
MT_BENCH = HELPFULNESS["mt_bench"]


def helpfulness_variants():
    """Every (model, method, stage) scored for helpfulness: each model's base model (method and
    stage 'base') first, then its rows of the run grid."""
    out = []
    for m in config["run"]["models"]:
        out.append((m, "base", "base"))
        out += [(mm, meth, st) for (mm, meth, st) in run_grid() if mm == m]
    return out


def get_helpfulness_model(wildcards):
    """The checkpoint scored: the base model for method 'base', else the trained one."""
    if wildcards.method == "base":
        return f"results/models/{wildcards.model}/base"
    return get_model_dir(wildcards)


def get_helpfulness_references(wildcards):
    """Reference answers: the base model's greedy answers, or the benign eval set's own."""
    if HELPFULNESS["references"] == "base_model":
        return f"results/helpfulness/{wildcards.model}/references.jsonl"
    return "results/data/eval/benign.jsonl"


def get_helpfulness_scores(wildcards):
    return [
        f"results/helpfulness/{m}/{meth}/{st}/answer_nll.jsonl"
        for (m, meth, st) in helpfulness_variants()
    ]


def get_helpfulness_benign(wildcards):
    """The existing benign judgments of the run grid (over-refusal)."""
    return [
        f"results/judgments/{m}/{meth}/{st}/benign.jsonl"
        for (m, meth, st) in run_grid()
    ]


def get_mt_bench_judgments(wildcards):
    """MT-Bench judgments for the helpfulness table: none unless the stage is enabled."""
    if not MT_BENCH["enabled"]:
        return []
    return [
        f"results/mt_bench/{m}/{meth}/{st}/judgments.jsonl"
        for (m, meth, st) in helpfulness_variants()
    ]


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
