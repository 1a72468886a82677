import pandas as pd
from backtrack.checks import JUDGMENT_FIELDS, read_answers
from backtrack.metrics import write_table
from backtrack.plan import PREFILL_SOURCES, cell_of, prefill_attack_name
from backtrack.report.readable import write_page
from backtrack.report.tables import table2_row
from backtrack.smk import param_json, setup

log = setup(snakemake)
cells = [cell_of(c) for c in param_json(snakemake, "cells")]
sweep = param_json(snakemake, "prefill_sets")
level = snakemake.params.ci_level
asked_of = param_json(snakemake, "attack_prompts")
budgets = param_json(snakemake, "budgets")
judge = snakemake.params.judge

# cells, judgments and prompts come in the same order; a cell's set is a prefilled set or
# attacks/<attack>.
judged = {}
for cell, path, prompts in zip(
    cells, snakemake.input.judgments, snakemake.input.prompts, strict=True
):
    judged[(cell.row, cell.dataset)] = read_answers(path, prompts, required=JUDGMENT_FIELDS)
rows = []
for row in dict.fromkeys(c.row for c in cells):
    key = {"model": row.model, "method": row.method, "seed": row.seed, "stage": row.stage}
    # params come as sorted JSON: put the sweep back in (source, dataset, prefix length) order.
    order = {src: i for i, src in enumerate(PREFILL_SOURCES)}
    for name, (dataset, k, src) in sorted(
        sweep.items(), key=lambda kv: (order[kv[1][2]], kv[1][0], kv[1][1])
    ):
        records = judged[(row, name)]
        attack = prefill_attack_name(k, src)
        rows.append(table2_row(key, attack, dataset, records, level, judge))
    for name in [c.dataset for c in cells if c.row == row]:
        if name.startswith("attacks/"):
            records = judged[(row, name)]
            attack = name.split("/", 1)[1]
            line = table2_row(key, attack, asked_of[attack], records, level, judge)
            rows.append(line | {"budget": budgets[attack]})
write_table(rows, snakemake.output.table)
write_page("table2", pd.read_csv(snakemake.output.table), snakemake.output.page)
log.info("table 2: %d rows", len(rows))
