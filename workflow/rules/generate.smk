# A checkpoint's answers to every generated set, one file per set, written by up to three jobs
# (Table 1's plain sets, Table 1's prefilled sets, the prefilled sets only Table 2 reads:
# backtrack.plan.generation_groups), so that the interpreter, the imports and the model load
# (or a vLLM engine's start) are paid per group, not per set. Judging stays per set.
GENERATIONS = "results/generations/{model}/{method}/seed{seed}/{stage}/{dataset}.jsonl"


rule generate:
    input:
        model=get_model_dir,
        prompts=get_set_prompts(PLAIN_SETS),
    output:
        generations=expand(GENERATIONS, dataset=PLAIN_SETS, allow_missing=True),
    log:
        "logs/generate/{model}_{method}_seed{seed}_{stage}.log",
    benchmark:
        "benchmarks/generate/{model}_{method}_seed{seed}_{stage}.tsv"
    conda:
        GENERATE_ENV
    threads: model_threads("generate")
    resources:
        **model_resources("generate"),
    params:
        generation=json_param(config["generation"]),
        reset_token=config["reset_token"],
        system=config["system_prompt"],
        precision=config["precision"],
        seed=config["seed"],
    script:
        "../scripts/generate/generate.py"


if TABLE1_PREFILLED:

    use rule generate as generate_prefilled with:
        input:
            model=get_model_dir,
            prompts=get_set_prompts(TABLE1_PREFILLED),
        output:
            generations=expand(
                GENERATIONS, dataset=TABLE1_PREFILLED, allow_missing=True
            ),
        log:
            "logs/generate_prefilled/{model}_{method}_seed{seed}_{stage}.log",
        benchmark:
            "benchmarks/generate_prefilled/{model}_{method}_seed{seed}_{stage}.tsv"


if ATTACK_PREFILLED:

    use rule generate as generate_prefill_attack with:
        input:
            model=get_model_dir,
            prompts=get_set_prompts(ATTACK_PREFILLED),
        output:
            generations=expand(
                GENERATIONS, dataset=ATTACK_PREFILLED, allow_missing=True
            ),
        log:
            "logs/generate_prefill_attack/{model}_{method}_seed{seed}_{stage}.log",
        benchmark:
            "benchmarks/generate_prefill_attack/{model}_{method}_seed{seed}_{stage}.tsv"
