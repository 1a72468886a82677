rule train_sft:
    input:
        model=rules.prepare_base_model.output.model,
        examples=rules.build_sft_data.output.examples,
    output:
        model=directory("results/models/{model}/{method}/sft"),
    log:
        "logs/train_sft/{model}_{method}.log",
    benchmark:
        "benchmarks/train_sft/{model}_{method}.tsv"
    wildcard_constraints:
        method=SFT_METHODS,
    conda:
        "../../envs/train.yaml"
    threads: train_threads("train_sft")
    resources:
        mem_mb=train_resource("train_sft", "mem_mb"),
        runtime=train_resource("train_sft", "runtime"),
        gpu=train_resource("train_sft", "gpu"),
        # All GPUs on one node (one accelerate process each): without it the SLURM plugin
        # asks for --gpus=N only, which SLURM may spread over several nodes.
        nodes=1,
    params:
        stage="sft",
        train=get_trainer_params("sft"),
        dtype=get_model_dtype,
        seed=config["seed"],
        launch=get_train_launch,
    script:
        "../scripts/train/train.py"


rule train_dpo:
    input:
        model=get_dpo_start,
        pairs=rules.build_dpo_data.output.pairs,
    output:
        model=directory("results/models/{model}/{method}/dpo"),
    log:
        "logs/train_dpo/{model}_{method}.log",
    benchmark:
        "benchmarks/train_dpo/{model}_{method}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: train_threads("train_dpo")
    resources:
        mem_mb=train_resource("train_dpo", "mem_mb"),
        runtime=train_resource("train_dpo", "runtime"),
        gpu=train_resource("train_dpo", "gpu"),
        # All GPUs on one node (one accelerate process each): without it the SLURM plugin
        # asks for --gpus=N only, which SLURM may spread over several nodes.
        nodes=1,
    params:
        stage="dpo",
        train=get_trainer_params("dpo"),
        dtype=get_model_dtype,
        seed=config["seed"],
        launch=get_train_launch,
    script:
        "../scripts/train/train.py"
