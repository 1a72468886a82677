rule generate:
    input:
        model=get_model_dir,
        prompts=get_eval_input,
    output:
        generations="results/generations/{model}/{method}/seed{seed}/{stage}/{dataset}.jsonl",
    log:
        "logs/generate/{model}_{method}_seed{seed}_{stage}_{dataset}.log",
    benchmark:
        "benchmarks/generate/{model}_{method}_seed{seed}_{stage}_{dataset}.tsv"
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
