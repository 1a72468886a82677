from backtrack.checks import JUDGMENT_FIELDS, read_answers
from backtrack.metrics import write_table
from backtrack.smk import param_json, setup
from backtrack.sweeps.curves import worst_of_k_rows

log = setup(snakemake)
spec = param_json(snakemake, "spec")
rows = []
inputs = zip(
    param_json(snakemake, "cells"), snakemake.input.judgments, snakemake.input.prompts, strict=True
)
for (model, method, seed, stage, dataset, _), path, prompts in inputs:
    judged = read_answers(
        path, prompts, samples=spec["k"], limit=spec["n"] or 0, required=JUDGMENT_FIELDS
    )
    rows += worst_of_k_rows(
        {"model": model, "method": method, "seed": seed, "stage": stage},
        dataset,
        judged,
        snakemake.params.ci_level,
        reps=spec["bootstrap"],
        seed=snakemake.params.seed,
    )
extra = {"temperature": spec["temperature"], "top_p": spec["top_p"]}
write_table([r | extra for r in rows], snakemake.output.table)
log.info("worst-of-k: %d rows", len(rows))
