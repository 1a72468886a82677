import pandas as pd
from backtrack.io import atomic_file
from backtrack.report.claims import build_claims
from backtrack.smk import param_json, setup

log = setup(snakemake)
sources = param_json(snakemake, "prefill_sources")
claims = build_claims(
    pd.read_csv(snakemake.input.table1),
    table2=pd.read_csv(snakemake.input.table2),
    logit_bias=pd.read_csv(snakemake.input.logit_bias),
    worst_of_k=pd.read_csv(snakemake.input.worst_of_k),
    prefill_sets=sources,
    judge=snakemake.params.judge,
    level=snakemake.params.ci_level,
)
with atomic_file(snakemake.output.table) as tmp:
    claims.to_csv(tmp, index=False, float_format="%.4f")
for row in claims.itertuples():
    log.info("%s %s: %s", row.model, row.claim, row.verdict)
