from backtrack.checks import JUDGMENT_FIELDS, read_answers
from backtrack.metrics import write_table
from backtrack.plan import PREFILL_SOURCES, prefill_attack_name
from backtrack.report.tables import table2_row
from backtrack.smk import param_json, setup

log = setup(snakemake)
cells = param_json(snakemake, "cells")
sweep = param_json(snakemake, "prefill_sets")
level = snakemake.params.ci_level
judge = snakemake.params.judge

# cells, judgments and prompts come in the same order: (model, method, stage, name), name a
# prefilled set or attacks/<attack>.
judged = {}
for cell, path, prompts in zip(
    cells, snakemake.input.judgments, snakemake.input.prompts, strict=True
):
    judged[tuple(cell[:4])] = read_answers(path, prompts, required=JUDGMENT_FIELDS)
rows = []
for model, method, stage in dict.fromkeys(tuple(c[:3]) for c in cells):
    key = {"model": model, "method": method, "stage": stage}
    # params come as sorted JSON: put the sweep back in (source, dataset, prefix length) order.
    order = {src: i for i, src in enumerate(PREFILL_SOURCES)}
    for name, (dataset, k, src) in sorted(
        sweep.items(), key=lambda kv: (order[kv[1][2]], kv[1][0], kv[1][1])
    ):
        records = judged[(model, method, stage, name)]
        attack = prefill_attack_name(k, src)
        rows.append(table2_row(key, attack, dataset, records, level, judge))
    for name in [c[3] for c in cells if tuple(c[:3]) == (model, method, stage)]:
        if name.startswith("attacks/"):
            records = judged[(model, method, stage, name)]
            attack = name.split("/", 1)[1]
            rows.append(
                table2_row(key, attack, snakemake.params.attack_prompts, records, level, judge)
            )
write_table(rows, snakemake.output.table)
log.info("table 2: %d rows", len(rows))
