rule judge:
    input:
        generations="results/generations/{model}/{method}/{stage}/{dataset}.jsonl",
    output:
        judgments="results/judgments/{model}/{method}/{stage}/{dataset}.jsonl",
    params:
        judge=as_json(config["judge"]),
    log:
        "logs/judge/{model}_{method}_{stage}_{dataset}.log",
    benchmark:
        "benchmarks/judge/{model}_{method}_{stage}_{dataset}.tsv"
    script:
        "../scripts/judge.py"
