import backtrack.training  # noqa: F401 (torch before setup(), which sets its thread count)
from backtrack.jobstats import TokenCounts, write_job_stats
from backtrack.launch import train_job
from backtrack.smk import param_json, setup

log = setup(snakemake)
launch = param_json(snakemake, "launch")
info = train_job(
    "dpo",
    model_dir=snakemake.input.model,
    data=snakemake.input.pairs,
    out_dir=snakemake.output.model,
    params=param_json(snakemake, "train"),
    seed=snakemake.params.seed,
    dtype=snakemake.params.dtype,
    gpus=launch["gpus"],
    threads=snakemake.threads,
    accelerate_config=launch["accelerate_config"],
)
t = info["tokens_seen"]
# DPO runs the frozen reference model forward over the same tokens.
write_job_stats(
    snakemake,
    snakemake.output.model,
    TokenCounts({"train": [t, t], "reference": [t, t]}),
    info["precision"],
)
log.info("dpo done: loss %.4f over %d steps", info["train_loss"], info["steps"])
