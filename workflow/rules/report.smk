# Table 1, its summary for a person (also printed when it is built) and its figure.
rule table1:
    input:
        judgments=judgments_of(table1_cells),
        prompts=prompts_of(table1_cells),
    output:
        table=report(
            "results/table1.csv",
            caption="../report/table1.rst",
            category="Table 1",
        ),
        page=report(
            "results/table1.html",
            caption="../report/table1.rst",
            category="Table 1",
        ),
        summary="results/table1_summary.txt",
        figure=report(
            "results/figures/table1.png",
            caption="../report/table1_figure.rst",
            category="Table 1",
        ),
    log:
        "logs/table1/table1.log",
    benchmark:
        "benchmarks/table1/table1.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        cells=json_param(cell_keys(table1_cells(config))),
        datasets=json_param(EVAL_SETS),
        ci_level=config["report"]["ci_level"],
        prefill_sources=json_param(
            {name: pre.source for name, pre in table1_prefilled_sets(config).items()}
        ),
        bootstrap=config["report"]["seed_bootstrap"],
        seed=config["seed"],
        provenance=json_param(
            {
                "models": config["models"],
                "data": config["data"],
                "judge": config["judge"],
            }
        ),
    script:
        "../scripts/report/table1.py"


# Table 1 over training seeds: per (model, method, stage) the mean, range and an interval
# over prompts and seeds (one row per model, method and stage; with one seed, its rates).
rule table1_seeds:
    input:
        judgments=judgments_of(table1_cells),
        prompts=prompts_of(table1_cells),
    output:
        table=report(
            "results/table1_seeds.csv",
            caption="../report/table1_seeds.rst",
            category="Table 1",
        ),
    log:
        "logs/table1_seeds/table1_seeds.log",
    benchmark:
        "benchmarks/table1_seeds/table1_seeds.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        cells=json_param(cell_keys(table1_cells(config))),
        datasets=json_param(EVAL_SETS),
        ci_level=config["report"]["ci_level"],
        bootstrap=config["report"]["seed_bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/report/table1_seeds.py"


# Table 2, the sweeps and the helpfulness table over training seeds, from the per-seed table:
# one row per group of rows that differ only in their seed (with one seed, its rows).
rule table_seeds:
    input:
        table="results/{table}.csv",
    output:
        table=report(
            "results/{table}_seeds.csv",
            caption="../report/table_seeds.rst",
            category="Seeds",
        ),
    log:
        "logs/table_seeds/{table}.log",
    benchmark:
        "benchmarks/table_seeds/{table}.tsv"
    wildcard_constraints:
        table="|".join(SEED_TABLES),
    conda:
        "../../envs/report.yaml"
    params:
        spec=get_seed_table,
        ci_level=config["report"]["ci_level"],
    script:
        "../scripts/report/table_seeds.py"


rule table2:
    input:
        judgments=judgments_of(table2_cells),
        prompts=prompts_of(table2_cells),
    output:
        table=report(
            "results/table2.csv",
            caption="../report/table2.rst",
            category="Table 2",
        ),
        page=report(
            "results/table2.html",
            caption="../report/table2.rst",
            category="Table 2",
        ),
    log:
        "logs/table2/table2.log",
    benchmark:
        "benchmarks/table2/table2.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        cells=json_param(cell_keys(table2_cells(config))),
        prefill_sets=json_param(PREFILL_ATTACK_SETS),
        attack_prompts=json_param(attack_prompt_labels(config)),
        budgets=json_param(attack_budget_labels(config)),
        ci_level=config["report"]["ci_level"],
        judge=config["judge"]["name"],
    script:
        "../scripts/report/table2.py"


rule attack_budget:
    input:
        judgments=judgments_of(attack_budget_cells),
        prompts=prompts_of(attack_budget_cells),
    output:
        table=report(
            "results/attack_budget.csv",
            caption="../report/attack_budget.rst",
            category="Table 2",
        ),
        page=report(
            "results/attack_budget.html",
            caption="../report/attack_budget.rst",
            category="Table 2",
        ),
        figure=report(
            "results/figures/attack_budget.png",
            caption="../report/attack_budget_figure.rst",
            category="Table 2",
        ),
    log:
        "logs/attack_budget/attack_budget.log",
    benchmark:
        "benchmarks/attack_budget/attack_budget.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        cells=json_param(cell_keys(attack_budget_cells(config))),
        points=json_param({a: attack_budget(config, a) for a in BUDGET_UNITS}),
        units=json_param(BUDGET_UNITS),
        ci_level=config["report"]["ci_level"],
    script:
        "../scripts/report/attack_budget.py"


rule claims:
    input:
        table1="results/table1.csv",
        table2="results/table2.csv",
        logit_bias="results/logit_bias.csv",
        worst_of_k="results/worst_of_k.csv",
        judgments=judgments_of(table1_cells),
        prompts=prompts_of(table1_cells),
    output:
        table=report(
            "results/claims.csv",
            caption="../report/claims.rst",
            category="Claims",
        ),
        page=report(
            "results/claims.html",
            caption="../report/claims.rst",
            category="Claims",
        ),
    log:
        "logs/claims/claims.log",
    benchmark:
        "benchmarks/claims/claims.tsv"
    conda:
        "../../envs/report.yaml"
    params:
        prefill_sources=json_param(
            {name: pre.source for name, pre in table1_prefilled_sets(config).items()}
        ),
        ci_level=config["report"]["ci_level"],
        judge=config["judge"]["name"],
        cells=json_param(cell_keys(table1_cells(config))),
        datasets=json_param(EVAL_SETS),
        bootstrap=config["report"]["seed_bootstrap"],
        seed=config["seed"],
        budgets=json_param(attack_budget_labels(config)),
    script:
        "../scripts/report/claims.py"
