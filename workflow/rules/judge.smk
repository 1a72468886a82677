rule judge:
    input:
        generations="results/generations/{model}/{method}/{stage}/{dataset}.jsonl",
    output:
        judgments="results/judgments/{model}/{method}/{stage}/{dataset}.jsonl",
    log:
        "logs/judge/{model}_{method}_{stage}_{dataset}.log",
    benchmark:
        "benchmarks/judge/{model}_{method}_{stage}_{dataset}.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        judge=as_json(config["judge"]),
    script:
        "../scripts/judge.py"
