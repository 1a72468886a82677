import backtrack.train.trainers  # noqa: F401 (torch before setup(), which sets its thread count)
from backtrack.smk import param_json, setup
from backtrack.train.launch import train_job

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
log.info("dpo done: loss %.4f over %d steps", info["train_loss"], info["steps"])
