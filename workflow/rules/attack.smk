rule attack:
    input:
        model=get_model_dir,
        targets=ATTACK_TARGETS,
    output:
        transcripts="results/attacks/{model}/{method}/{stage}/{attack}.jsonl",
    log:
        "logs/attack/{model}_{method}_{stage}_{attack}.log",
    benchmark:
        "benchmarks/attack/{model}_{method}_{stage}_{attack}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: model_threads("attack")
    resources:
        mem_mb=rule_resources("attack")["mem_mb"],
        runtime=rule_resources("attack")["runtime"],
        gpu=rule_resources("attack")["gpu"],
    params:
        attack=get_attack_params,
        generation=as_json(config["generation"]),
        check_judge=as_json(config["pool"]["label_judge"]),
        reset_token=config["reset_token"],
        system=config["system_prompt"],
        precision=config["precision"],
        seed=config["seed"],
    script:
        "../scripts/attack.py"


rule judge_attack:
    input:
        generations="results/attacks/{model}/{method}/{stage}/{attack}.jsonl",
        prompts=ATTACK_TARGETS,
    output:
        judgments="results/judgments/{model}/{method}/{stage}/attacks/{attack}.jsonl",
    log:
        "logs/judge_attack/{model}_{method}_{stage}_{attack}.log",
    benchmark:
        "benchmarks/judge_attack/{model}_{method}_{stage}_{attack}.tsv"
    conda:
        JUDGE_ENV
    resources:
        mem_mb=rule_resources("judge_attack")["mem_mb"],
        runtime=rule_resources("judge_attack")["runtime"],
        gpu=rule_resources("judge_attack")["gpu"],
    params:
        judge=as_json(config["judge"]),
        precision=JUDGE_PRECISION,
    script:
        "../scripts/judge.py"
