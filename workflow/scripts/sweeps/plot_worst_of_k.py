import pandas as pd
from backtrack.io import atomic_file
from backtrack.smk import setup
from backtrack.sweeps.figures import plot_worst_of_k

log = setup(snakemake)
df = pd.read_csv(snakemake.input.table)
with atomic_file(snakemake.output.figure) as tmp:
    plot_worst_of_k(df, tmp)
log.info("figure: %d rows", len(df))
