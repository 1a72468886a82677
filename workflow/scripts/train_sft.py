from backtrack.io import read_jsonl
from backtrack.smk import param_json, setup
from backtrack.training import run_sft

log = setup(snakemake)
info = run_sft(
    snakemake.input.model,
    read_jsonl(snakemake.input.examples),
    snakemake.output.model,
    param_json(snakemake, "train"),
    seed=snakemake.params.seed,
    dtype=snakemake.params.dtype,
)
log.info("sft done: loss %.4f over %d steps", info["train_loss"], info["steps"])
