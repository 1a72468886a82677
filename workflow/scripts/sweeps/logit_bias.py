from collections import defaultdict

from backtrack.checks import JUDGMENT_FIELDS, read_answers
from backtrack.io import atomic_file
from backtrack.plan import point_bias
from backtrack.report.tables import build_table
from backtrack.smk import param_json, setup
from backtrack.sweeps.curves import logit_bias_row

log = setup(snakemake)
kinds = param_json(snakemake, "datasets")
# (model, method, stage, bias) -> {set: judged records}
cells = defaultdict(dict)
inputs = zip(
    param_json(snakemake, "cells"), snakemake.input.judgments, snakemake.input.prompts, strict=True
)
for (model, method, stage, dataset, point), path, prompts in inputs:
    bias = point_bias(point, snakemake.params.default_bias)
    cells[(model, method, stage, bias)][dataset] = read_answers(
        path, prompts, required=JUDGMENT_FIELDS
    )
rows = [
    logit_bias_row(
        {"model": m, "method": meth, "stage": st},
        bias,
        {d: sets[d] for d in kinds},
        kinds,
        snakemake.params.ci_level,
    )
    for (m, meth, st, bias), sets in sorted(cells.items())
]
with atomic_file(snakemake.output.table) as tmp:
    build_table(rows).to_csv(tmp, index=False, float_format="%.4f")
log.info("logit-bias sweep: %d rows", len(rows))
