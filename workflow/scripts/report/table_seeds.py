import pandas as pd
from backtrack.metrics import write_table
from backtrack.report.seeds import summarise_table
from backtrack.smk import param_json, setup

log = setup(snakemake)
spec = param_json(snakemake, "spec")
per_seed = pd.read_csv(snakemake.input.table)
summary = summarise_table(
    per_seed,
    numeric_keys=spec["numeric_keys"],
    unbounded=spec["unbounded"],
    level=snakemake.params.ci_level,
)
write_table(summary.to_dict("records"), snakemake.output.table)
log.info("%s over seeds: %d rows from %d", snakemake.wildcards.table, len(summary), len(per_seed))
