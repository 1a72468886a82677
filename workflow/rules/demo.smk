# The live demo's documented commands on one trained checkpoint per model, run through
# `backtrack chat` itself: the transcript the docs quote.
rule demo:
    input:
        model=get_demo_checkpoint,
        # backtrack chat names the bias the sweep recommends after a reset (docs/running.md)
        logit_bias=get_demo_sweep,
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
    resources:
        **model_resources("generate"),
    params:
        demo=json_param(config["demo"]),
        precision=config["precision"],
        system=config["system_prompt"],
        max_resets=config["generation"]["max_resets"],
    script:
        "../scripts/demo/demo.py"
