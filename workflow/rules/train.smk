rule train_sft:
    input:
        model=get_base_model,
        examples=rules.build_sft_data.output.examples,
    output:
        model=directory("results/models/{model}/{method}/seed{seed}/sft"),
    log:
        "logs/train_sft/{model}_{method}_seed{seed}.log",
    benchmark:
        "benchmarks/train_sft/{model}_{method}_seed{seed}.tsv"
    wildcard_constraints:
        method=SFT_METHODS,
    priority: SFT_PRIORITY
    conda:
        "../../envs/train.yaml"
    threads: train_threads("train_sft")
    resources:
        **train_resources("train_sft"),
    params:
        stage="sft",
        train=get_trainer_params("sft"),
        dtype=get_model_dtype,
        seed=get_train_seed,
        launch=get_train_launch,
    script:
        "../scripts/train/train.py"


# The same job on DPO pairs, from the method's DPO start (its SFT model, another method's, or
# the base model); every method has a DPO model.
use rule train_sft as train_dpo with:
    input:
        model=get_dpo_start,
        pairs=rules.build_dpo_data.output.pairs,
    output:
        model=directory("results/models/{model}/{method}/seed{seed}/dpo"),
    log:
        "logs/train_dpo/{model}_{method}_seed{seed}.log",
    benchmark:
        "benchmarks/train_dpo/{model}_{method}_seed{seed}.tsv"
    wildcard_constraints:
        method=ALL_METHODS,
    priority: TRAINING_PRIORITY
    threads: train_threads("train_dpo")
    resources:
        **train_resources("train_dpo"),
    params:
        stage="dpo",
        train=get_trainer_params("dpo"),
