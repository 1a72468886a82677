import pandas as pd
from backtrack.io import atomic_file
from backtrack.smk import param_json, setup
from backtrack.sweeps.figures import plot_logit_bias

log = setup(snakemake)
kinds = param_json(snakemake, "datasets")
df = pd.read_csv(snakemake.input.table)
safety = [d for d, kind in kinds.items() if kind != "benign"]
benign = next((d for d, kind in kinds.items() if kind == "benign"), None)
if benign is None:
    raise ValueError("config key 'sweeps.logit_bias.datasets': the figure needs the benign set")
with atomic_file(snakemake.output.figure) as tmp:
    plot_logit_bias(df, tmp, safety, benign)
log.info("figure: %d rows, sets %s", len(df), list(kinds))
