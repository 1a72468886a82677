rule prepare_base_model:
    input:
        chat_template=get_model_chat_template,
    output:
        model=directory("results/models/{model}/base"),
    log:
        "logs/prepare_base_model/{model}.log",
    benchmark:
        "benchmarks/prepare_base_model/{model}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: model_threads("prepare_base_model", share=1)
    resources:
        **model_resources("prepare_base_model"),
    params:
        source=get_model_source,
        dtype=get_model_dtype,
        reset_token=config["reset_token"],
    script:
        "../scripts/models/prepare_base_model.py"
