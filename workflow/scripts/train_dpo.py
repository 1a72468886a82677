from backtrack.io import read_jsonl
from backtrack.smk import param_json, setup
from backtrack.training import run_dpo

log = setup(snakemake)
info = run_dpo(
    snakemake.input.model,
    read_jsonl(snakemake.input.pairs),
    snakemake.output.model,
    param_json(snakemake, "train"),
    seed=snakemake.params.seed,
    dtype=snakemake.params.dtype,
)
log.info("dpo done: loss %.4f over %d steps", info["train_loss"], info["steps"])
