# Helpfulness: NLL of held-out helpful answers and benign over-refusal (results/helpfulness.csv),
# and optionally MT-Bench with a local judge (results/mt_bench.csv). Explicit targets only.


rule helpfulness_references:
    input:
        model=rules.prepare_base_model.output.model,
        prompts=one(rules.prepare_eval_set.output.prompts, dataset="benign"),
    output:
        references="results/helpfulness/{model}/references.jsonl",
    log:
        "logs/helpfulness_references/{model}.log",
    benchmark:
        "benchmarks/helpfulness_references/{model}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: model_threads("helpfulness_references")
    resources:
        **model_resources("helpfulness_references"),
    params:
        max_new_tokens=HELPFULNESS["max_new_tokens"],
        batch_size=HELPFULNESS["batch_size"],
        reset_token=config["reset_token"],
        system=config["system_prompt"],
        precision=config["precision"],
        seed=config["seed"],
    script:
        "../scripts/helpfulness/helpfulness_references.py"


rule score_helpfulness:
    input:
        model=get_helpfulness_model,
        references=get_helpfulness_references,
    output:
        scores="results/helpfulness/{model}/{method}/seed{seed}/{stage}/answer_nll.jsonl",
    log:
        "logs/score_helpfulness/{model}_{method}_seed{seed}_{stage}.log",
    benchmark:
        "benchmarks/score_helpfulness/{model}_{method}_seed{seed}_{stage}.tsv"
    wildcard_constraints:
        method=HELPFULNESS_METHODS,
        stage=HELPFULNESS_STAGES,
    conda:
        "../../envs/train.yaml"
    threads: model_threads("score_helpfulness")
    resources:
        **model_resources("score_helpfulness"),
    params:
        references=HELPFULNESS["references"],
        batch_size=HELPFULNESS["batch_size"],
        padding_side=HELPFULNESS["padding_side"],
        include_eos=HELPFULNESS["include_eos"],
        system=config["system_prompt"],
        precision=config["precision"],
    script:
        "../scripts/helpfulness/score_helpfulness.py"


rule helpfulness_table:
    input:
        scores=get_helpfulness_scores,
        benign=get_helpfulness_benign,
        mt_bench=get_mt_bench_judgments,
    output:
        table=report(
            "results/helpfulness.csv",
            caption="../report/helpfulness.rst",
            category="Helpfulness",
        ),
    log:
        "logs/helpfulness_table/helpfulness.log",
    benchmark:
        "benchmarks/helpfulness_table/helpfulness.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        grid=json_param(run_grid(config)),
        variants=json_param(helpfulness_rows(config)),
        references=HELPFULNESS["references"],
        bootstrap=HELPFULNESS["bootstrap"],
        ci_level=config["report"]["ci_level"],
        seed=config["seed"],
        judge=config["judge"]["name"],
        provenance=json_param(
            {
                "models": config["models"],
                "mt_bench_judge": MT_BENCH["judge"]["model"],
            }
        ),
    script:
        "../scripts/helpfulness/helpfulness_table.py"


rule mt_bench_answer:
    input:
        model=get_helpfulness_model,
        questions=get_mt_bench_questions,
    output:
        answers="results/mt_bench/{model}/{method}/seed{seed}/{stage}/answers.jsonl",
    log:
        "logs/mt_bench_answer/{model}_{method}_seed{seed}_{stage}.log",
    benchmark:
        "benchmarks/mt_bench_answer/{model}_{method}_seed{seed}_{stage}.tsv"
    wildcard_constraints:
        method=HELPFULNESS_METHODS,
        stage=HELPFULNESS_STAGES,
    conda:
        "../../envs/train.yaml"
    threads: model_threads("mt_bench_answer")
    resources:
        **model_resources("mt_bench_answer"),
    params:
        decoding=get_mt_bench_decoding,
        n_questions=MT_BENCH["n"],
        reset_token=config["reset_token"],
        system=config["system_prompt"],
        precision=config["precision"],
        seed=config["seed"],
    script:
        "../scripts/helpfulness/mt_bench_answer.py"


rule mt_bench_judge:
    input:
        answers=rules.mt_bench_answer.output.answers,
        questions=get_mt_bench_questions,
        reference_answers=get_mt_bench_reference_answers,
    output:
        judgments="results/mt_bench/{model}/{method}/seed{seed}/{stage}/judgments.jsonl",
    log:
        "logs/mt_bench_judge/{model}_{method}_seed{seed}_{stage}.log",
    benchmark:
        "benchmarks/mt_bench_judge/{model}_{method}_seed{seed}_{stage}.tsv"
    wildcard_constraints:
        method=HELPFULNESS_METHODS,
        stage=HELPFULNESS_STAGES,
    conda:
        "../../envs/train.yaml"
    threads: model_threads("mt_bench_judge")
    resources:
        **model_resources("mt_bench_judge"),
    params:
        judge=json_param(MT_BENCH["judge"]),
        n_questions=MT_BENCH["n"],
        precision=config["precision"],
    script:
        "../scripts/helpfulness/mt_bench_judge.py"


rule mt_bench_table:
    input:
        judgments=get_mt_bench_table_judgments,
    output:
        table=report(
            "results/mt_bench.csv",
            caption="../report/mt_bench.rst",
            category="Helpfulness",
        ),
    log:
        "logs/mt_bench_table/mt_bench.log",
    benchmark:
        "benchmarks/mt_bench_table/mt_bench.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        variants=json_param(helpfulness_rows(config)),
        judge=MT_BENCH["judge"]["model"],
    script:
        "../scripts/helpfulness/mt_bench_table.py"
