import pandas as pd
from backtrack.checks import JUDGMENT_FIELDS, read_answers
from backtrack.io import atomic_file
from backtrack.plan import cell_of
from backtrack.report.claims import Outcomes, build_claims
from backtrack.report.readable import write_page
from backtrack.smk import param_json, setup

log = setup(snakemake)
sources = param_json(snakemake, "prefill_sources")
cells = [cell_of(c) for c in param_json(snakemake, "cells")]
seeds = tuple(sorted({c.seed for c in cells}))
outcomes = None
if len(seeds) > 1:  # the rows over all seeds need Table 1's answers, prompt by prompt
    judged = {
        (c.model, c.method, c.seed, c.stage, c.dataset): read_answers(
            path, prompts, required=JUDGMENT_FIELDS
        )
        for c, path, prompts in zip(
            cells, snakemake.input.judgments, snakemake.input.prompts, strict=True
        )
    }
    outcomes = Outcomes(
        judged,
        param_json(snakemake, "datasets"),
        seeds,
        snakemake.params.ci_level,
        snakemake.params.bootstrap,
        snakemake.params.seed,
    )
claims = build_claims(
    pd.read_csv(snakemake.input.table1),
    table2=pd.read_csv(snakemake.input.table2),
    logit_bias=pd.read_csv(snakemake.input.logit_bias),
    worst_of_k=pd.read_csv(snakemake.input.worst_of_k),
    prefill_sets=sources,
    judge=snakemake.params.judge,
    level=snakemake.params.ci_level,
    outcomes=outcomes,
    attack_budgets=param_json(snakemake, "budgets"),
)
with atomic_file(snakemake.output.table) as tmp:
    claims.to_csv(tmp, index=False, float_format="%.4f")
write_page("claims", pd.read_csv(snakemake.output.table), snakemake.output.page)
for row in claims.itertuples():
    log.info("%s %s seed %s: %s", row.model, row.claim, row.seed, row.verdict)
