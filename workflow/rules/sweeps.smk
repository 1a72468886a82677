# Inference-time sweeps: the [RESET] logit bias and worst-of-k sampling. The generate and judge
# steps are Table 1's rules at a sweep "point": logit_bias/<bias> or worst_of_k.


use rule generate as generate_sweep with:
    input:
        model=get_model_dir,
        prompts=get_eval_input,
    output:
        generations="results/sweeps/{point}/generations/{model}/{method}/seed{seed}/{stage}/{dataset}.jsonl",
    log:
        "logs/generate_sweep/{point}/{model}_{method}_seed{seed}_{stage}_{dataset}.log",
    benchmark:
        "benchmarks/generate_sweep/{point}/{model}_{method}_seed{seed}_{stage}_{dataset}.tsv"
    params:
        generation=get_sweep_generation,
        samples=get_sweep_samples,
        limit=get_sweep_limit,


use rule judge as judge_sweep with:
    input:
        generations=rules.generate_sweep.output.generations,
        prompts=get_eval_input,
    output:
        judgments="results/sweeps/{point}/judgments/{model}/{method}/seed{seed}/{stage}/{dataset}.jsonl",
    log:
        "logs/judge_sweep/{point}/{model}_{method}_seed{seed}_{stage}_{dataset}.log",
    benchmark:
        "benchmarks/judge_sweep/{point}/{model}_{method}_seed{seed}_{stage}_{dataset}.tsv"
    params:
        samples=get_sweep_samples,
        limit=get_sweep_limit,


rule logit_bias:
    input:
        judgments=judgments_of(logit_bias_cells, check_sweeps),
        prompts=prompts_of(logit_bias_cells),
    output:
        table=report(
            "results/logit_bias.csv",
            caption="../report/logit_bias_table.rst",
            category="Sweeps",
        ),
    log:
        "logs/logit_bias/logit_bias.log",
    benchmark:
        "benchmarks/logit_bias/logit_bias.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        cells=get_logit_bias_cells,
        datasets=get_logit_bias_kinds,
        default_bias=config["generation"]["reset_logit_bias"],
        ci_level=config["report"]["ci_level"],
    script:
        "../scripts/sweeps/logit_bias.py"


rule plot_logit_bias:
    input:
        table=rules.logit_bias.output.table,
    output:
        figure=report(
            "results/figures/logit_bias.png",
            caption="../report/logit_bias.rst",
            category="Sweeps",
        ),
    log:
        "logs/plot_logit_bias/logit_bias.log",
    benchmark:
        "benchmarks/plot_logit_bias/logit_bias.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        datasets=get_logit_bias_kinds,
    script:
        "../scripts/sweeps/plot_logit_bias.py"


rule worst_of_k:
    input:
        judgments=judgments_of(worst_of_k_cells, check_sweeps),
        prompts=prompts_of(worst_of_k_cells),
    output:
        table=report(
            "results/worst_of_k.csv",
            caption="../report/worst_of_k_table.rst",
            category="Sweeps",
        ),
    log:
        "logs/worst_of_k/worst_of_k.log",
    benchmark:
        "benchmarks/worst_of_k/worst_of_k.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        cells=get_worst_of_k_cells,
        spec=json_param(config["sweeps"]["worst_of_k"]),
        ci_level=config["report"]["ci_level"],
        seed=config["seed"],
    script:
        "../scripts/sweeps/worst_of_k.py"


rule plot_worst_of_k:
    input:
        table=rules.worst_of_k.output.table,
    output:
        figure=report(
            "results/figures/worst_of_k.png",
            caption="../report/worst_of_k.rst",
            category="Sweeps",
        ),
    log:
        "logs/plot_worst_of_k/worst_of_k.log",
    benchmark:
        "benchmarks/plot_worst_of_k/worst_of_k.tsv"
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/sweeps/plot_worst_of_k.py"
