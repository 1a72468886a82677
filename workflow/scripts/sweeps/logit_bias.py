from collections import defaultdict

from backtrack.checks import JUDGMENT_FIELDS, read_answers
from backtrack.metrics import write_table
from backtrack.plan import point_bias
from backtrack.smk import param_json, setup
from backtrack.sweeps.curves import logit_bias_row

log = setup(snakemake)
kinds = param_json(snakemake, "datasets")
# (model, method, stage, seed, bias) -> {set: judged records}
cells = defaultdict(dict)
inputs = zip(
    param_json(snakemake, "cells"), snakemake.input.judgments, snakemake.input.prompts, strict=True
)
for (model, method, seed, stage, dataset, point), path, prompts in inputs:
    bias = point_bias(point, snakemake.params.default_bias)
    cells[(model, method, stage, seed, bias)][dataset] = read_answers(
        path, prompts, required=JUDGMENT_FIELDS
    )
rows = [
    logit_bias_row(
        {"model": m, "method": meth, "seed": seed, "stage": st},
        bias,
        {d: sets[d] for d in kinds},
        kinds,
        snakemake.params.ci_level,
    )
    for (m, meth, st, seed, bias), sets in sorted(cells.items())
]
write_table(rows, snakemake.output.table)
log.info("logit-bias sweep: %d rows", len(rows))
