from collections import defaultdict

from backtrack.checks import JUDGMENT_FIELDS, read_answers
from backtrack.metrics import write_table
from backtrack.plan import cell_of
from backtrack.report.seeds import summary_row
from backtrack.smk import param_json, setup

log = setup(snakemake)
cells = [cell_of(c) for c in param_json(snakemake, "cells")]
kinds = param_json(snakemake, "datasets")
# (model, method, stage) -> seed -> set -> judged records; cells, judgments and prompts come in
# the same order.
groups = defaultdict(lambda: defaultdict(dict))
for cell, path, prompts in zip(
    cells, snakemake.input.judgments, snakemake.input.prompts, strict=True
):
    records = read_answers(path, prompts, required=JUDGMENT_FIELDS)
    groups[(cell.model, cell.method, cell.stage)][cell.seed][cell.dataset] = records
rows = [
    summary_row(
        {"model": model, "method": method, "stage": stage},
        per_seed,
        kinds,
        level=snakemake.params.ci_level,
        reps=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
    )
    for (model, method, stage), per_seed in groups.items()
]
write_table(rows, snakemake.output.table)
log.info("table 1 over seeds: %d rows", len(rows))
