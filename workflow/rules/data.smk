rule prepare_eval_set:
    output:
        prompts="results/data/eval/{dataset}.jsonl",
    log:
        "logs/prepare_eval_set/{dataset}.log",
    benchmark:
        "benchmarks/prepare_eval_set/{dataset}.tsv"
    conda:
        "../../envs/train.yaml"
    params:
        spec=get_eval_spec,
        seed=config["seed"],
    script:
        "../scripts/data/prepare_eval_set.py"


rule prepare_train_prompts:
    input:
        evals=get_eval_prompt_files,
    output:
        prompts="results/data/train/prompts.jsonl",
    log:
        "logs/prepare_train_prompts/train.log",
    benchmark:
        "benchmarks/prepare_train_prompts/train.tsv"
    conda:
        "../../envs/train.yaml"
    params:
        harmful=json_param(config["data"]["harmful_train"]),
        benign=json_param(config["data"]["benign"]),
        seed=config["seed"],
    script:
        "../scripts/data/prepare_train_prompts.py"


rule prepare_train_pool:
    input:
        model=rules.prepare_base_model.output.model,
        prompts=rules.prepare_train_prompts.output.prompts,
    output:
        pool="results/data/train/{model}/pool.jsonl",
    log:
        "logs/prepare_train_pool/{model}.log",
    benchmark:
        "benchmarks/prepare_train_pool/{model}.tsv"
    priority: SFT_PRIORITY
    conda:
        "../../envs/train.yaml"
    threads: model_threads("prepare_train_pool")
    resources:
        **model_resources("prepare_train_pool"),
    params:
        pool=json_param(config["pool"]),
        reset_token=config["reset_token"],
        system=config["system_prompt"],
        seed=config["seed"],
        precision=config["precision"],
    script:
        "../scripts/data/prepare_train_pool.py"


rule build_sft_data:
    input:
        model=rules.prepare_base_model.output.model,
        pool=get_train_pool,
    output:
        examples="results/data/train/{model}/seed{seed}/sft_{method}.jsonl",
    log:
        "logs/build_sft_data/{model}_{method}_seed{seed}.log",
    benchmark:
        "benchmarks/build_sft_data/{model}_{method}_seed{seed}.tsv"
    wildcard_constraints:
        method=SFT_METHODS,
    priority: SFT_PRIORITY
    conda:
        "../../envs/train.yaml"
    params:
        kind=get_sft_kind,
        prefix_rule=get_prefix_rule,
        prefix_min_fraction=config["sft"]["prefix_min_fraction"],
        prefix_max_fraction=config["sft"]["prefix_max_fraction"],
        max_length=config["sft"]["max_length"],
        reset_token=config["reset_token"],
        system=config["system_prompt"],
        seed=get_train_seed,
    script:
        "../scripts/data/build_sft_data.py"


rule build_dpo_data:
    input:
        model=rules.prepare_base_model.output.model,
        pool=get_train_pool,
    output:
        pairs="results/data/train/{model}/seed{seed}/dpo_{method}.jsonl",
    log:
        "logs/build_dpo_data/{model}_{method}_seed{seed}.log",
    benchmark:
        "benchmarks/build_dpo_data/{model}_{method}_seed{seed}.tsv"
    priority: TRAINING_PRIORITY
    conda:
        "../../envs/train.yaml"
    params:
        kind=get_dpo_kind,
        prefix_min_fraction=config["dpo"]["prefix_min_fraction"],
        prefix_max_fraction=config["dpo"]["prefix_max_fraction"],
        helpful_pairs=config["dpo"].get("helpful_pairs"),
        reset_token=config["reset_token"],
        system=config["system_prompt"],
        seed=get_train_seed,
    script:
        "../scripts/data/build_dpo_data.py"


rule sample_prefill_answers:
    input:
        model=rules.prepare_base_model.output.model,
        prompts=rules.prepare_eval_set.output.prompts,
    output:
        answers="results/data/prefill/{model}/{dataset}_answers.jsonl",
    log:
        "logs/sample_prefill_answers/{model}_{dataset}.log",
    benchmark:
        "benchmarks/sample_prefill_answers/{model}_{dataset}.tsv"
    wildcard_constraints:
        dataset="|".join(map(re.escape, config["data"]["eval_sets"])),
    conda:
        "../../envs/train.yaml"
    threads: model_threads("sample_prefill_answers")
    resources:
        **model_resources("sample_prefill_answers"),
    params:
        max_new_tokens=config["prefill"]["max_new_tokens"],
        batch_size=config["generation"]["batch_size"],
        judge=json_param(config["pool"]["label_judge"]),
        reset_token=config["reset_token"],
        system=config["system_prompt"],
        precision=config["precision"],
    script:
        "../scripts/data/sample_prefill_answers.py"


rule prepare_prefill_set:
    input:
        model=rules.prepare_base_model.output.model,
        answers=get_prefill_answers,
        eval_prompts=get_prefill_eval_prompts,
    output:
        prompts="results/data/prefill/{model}/{dataset}.jsonl",
    log:
        "logs/prepare_prefill_set/{model}_{dataset}.log",
    benchmark:
        "benchmarks/prepare_prefill_set/{model}_{dataset}.tsv"
    wildcard_constraints:
        dataset="|".join(map(re.escape, PREFILLED_SETS)) or "(?!)",
    conda:
        "../../envs/train.yaml"
    params:
        tokens=get_prefill_tokens,
        source=get_prefill_source,
    script:
        "../scripts/data/prepare_prefill_set.py"


rule prepare_attack_targets:
    input:
        prompts=one(
            rules.prepare_eval_set.output.prompts, dataset=config["attacks"]["dataset"]
        ),
    output:
        targets="results/data/attacks/{attack}/targets.jsonl",
    log:
        "logs/prepare_attack_targets/{attack}.log",
    benchmark:
        "benchmarks/prepare_attack_targets/{attack}.tsv"
    wildcard_constraints:
        attack=ALL_OPTIMISING,
    conda:
        "../../envs/train.yaml"
    params:
        n=get_attack_n,
        n_key=get_attack_n_key,
        target=config["attacks"]["target"],
    script:
        "../scripts/data/prepare_attack_targets.py"
