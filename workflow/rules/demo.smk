# The live demo's documented commands on one trained checkpoint per model, run through
# `backtrack chat` itself: the transcript the docs quote.
rule demo:
    input:
        model=get_demo_checkpoint,
    output:
        transcript=report(
            "results/demo/{model}.txt",
            caption="../report/demo.rst",
            category="Demo",
        ),
    log:
        "logs/demo/{model}.log",
    benchmark:
        "benchmarks/demo/{model}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: model_threads("generate")
    params:
        demo=json_param(config["demo"]),
    script:
        "../scripts/demo/demo.py"
