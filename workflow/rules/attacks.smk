# One job per (model, method, stage, attack) with attacks.shards 1; otherwise attack_shard jobs
# (contiguous chunks of the targets) and merge_attack write the same transcript file.
rule attack:
    input:
        model=get_model_dir,
        targets=get_attack_targets,
    output:
        transcripts="results/attacks/{model}/{method}/seed{seed}/{stage}/{attack}.jsonl",
    log:
        "logs/attack/{model}_{method}_seed{seed}_{stage}_{attack}.log",
    benchmark:
        "benchmarks/attack/{model}_{method}_seed{seed}_{stage}_{attack}.tsv"
    wildcard_constraints:
        attack=UNSHARDED_ATTACKS,
    conda:
        "../../envs/train.yaml"
    threads: model_threads("attack")
    resources:
        **model_resources("attack"),
    params:
        attack=get_attack_params,
        decoding=json_param(decoding_kwargs(config["generation"])),
        check_judge=json_param(config["pool"]["label_judge"]),
        reset_token=config["reset_token"],
        system=config["system_prompt"],
        precision=config["precision"],
        seed=config["seed"],
        shard=get_whole_attack,
        reuse=get_attack_reuse,
    script:
        "../scripts/attacks/attack.py"


# Same job on shard {shard} of {shards}: the count is in the path, not in params, so a new split
# writes new files and reruns nothing else (finished prompts are reused, see attack.py).
use rule attack as attack_shard with:
    output:
        transcripts="results/attacks/{model}/{method}/seed{seed}/{stage}/{attack}/shard-{shard}-of-{shards}.jsonl",
    log:
        "logs/attack_shard/{model}_{method}_seed{seed}_{stage}_{attack}_{shard}-of-{shards}.log",
    benchmark:
        "benchmarks/attack_shard/{model}_{method}_seed{seed}_{stage}_{attack}_{shard}-of-{shards}.tsv"
    wildcard_constraints:
        attack=SHARDED_ATTACKS,
        shard="[1-9][0-9]*",
        shards="[1-9][0-9]*",
    params:
        shard=get_shard_of_attack,


rule merge_attack:
    input:
        shards=get_attack_shards,
        targets=get_attack_targets,
    output:
        transcripts="results/attacks/{model}/{method}/seed{seed}/{stage}/{attack}.jsonl",
    log:
        "logs/merge_attack/{model}_{method}_seed{seed}_{stage}_{attack}.log",
    benchmark:
        "benchmarks/merge_attack/{model}_{method}_seed{seed}_{stage}_{attack}.tsv"
    wildcard_constraints:
        attack=SHARDED_ATTACKS,
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/attacks/merge_attack.py"


# Table 1's judge on the attacks' transcripts, against the attack targets.
use rule judge as judge_attack with:
    input:
        generations=rules.attack.output.transcripts,
        prompts=get_attack_targets,
    output:
        judgments="results/judgments/{model}/{method}/seed{seed}/{stage}/attacks/{attack}.jsonl",
    log:
        "logs/judge_attack/{model}_{method}_seed{seed}_{stage}_{attack}.log",
    benchmark:
        "benchmarks/judge_attack/{model}_{method}_seed{seed}_{stage}_{attack}.tsv"
    resources:
        **model_resources("judge_attack"),


# HarmBench's GCG-Transfer: the suffixes that broke the source checkpoint (attacks.transfer) by
# the evaluation judge, with their prompts, once per model and training seed ...
rule transfer_set:
    input:
        transcripts=get_transfer_source("transcripts"),
        judgments=get_transfer_source("judgments"),
    output:
        prompts="results/data/attacks/gcg_transfer/{model}/seed{seed}/prompts.jsonl",
    log:
        "logs/transfer_set/{model}_seed{seed}.log",
    benchmark:
        "benchmarks/transfer_set/{model}_seed{seed}.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        source=lambda wildcards: transfer_source(config),
    script:
        "../scripts/attacks/transfer_set.py"


# ... then sent to each checkpoint of the run, decoded as the attacks decode (one at a time).
rule transfer_attack:
    input:
        model=get_model_dir,
        prompts=get_attack_targets,
    output:
        transcripts="results/attacks/{model}/{method}/seed{seed}/{stage}/{attack}.jsonl",
    log:
        "logs/transfer_attack/{model}_{method}_seed{seed}_{stage}_{attack}.log",
    benchmark:
        "benchmarks/transfer_attack/{model}_{method}_seed{seed}_{stage}_{attack}.tsv"
    wildcard_constraints:
        attack=TRANSFER,
    conda:
        "../../envs/train.yaml"
    threads: model_threads("attack")
    resources:
        **model_resources("attack"),
    params:
        decoding=json_param(decoding_kwargs(config["generation"])),
        reset_token=config["reset_token"],
        system=config["system_prompt"],
        precision=config["precision"],
        seed=config["seed"],
    script:
        "../scripts/attacks/transfer.py"
