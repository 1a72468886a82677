# One script for both training rules: the rule's `stage` param says which trainer runs.
import backtrack.train.trainers  # noqa: F401 (torch before setup(), which sets its thread count)
from backtrack.jobstats import TokenCounts, write_job_stats
from backtrack.settings import job_settings
from backtrack.smk import param_json, setup
from backtrack.train.launch import train_job
from backtrack.train.spec import TrainJob, TrainSettings
from backtrack.train.trainers import done_message

log = setup(snakemake)
stage = snakemake.params.stage
params = param_json(snakemake, "train")
# The precision setting travels in the trainer's config section; resolved here, once.
settings = job_settings(snakemake, precision=params["precision"])
launch = param_json(snakemake, "launch")
job = TrainJob(
    stage,
    model_dir=snakemake.input.model,
    data=snakemake.input.examples if stage == "sft" else snakemake.input.pairs,
    out_dir=snakemake.output.model,
    params=params,
    settings=TrainSettings(settings.seed, snakemake.params.dtype, settings.precision),
    gpus=launch["gpus"],
)
info = train_job(job, threads=settings.threads, accelerate_config=launch["accelerate_config"])
t = info["tokens_seen"]
# DPO also runs the frozen reference model forward over the same tokens.
passes = {"train": [t, t]} | ({"reference": [t, t]} if stage == "dpo" else {})
write_job_stats(snakemake, snakemake.output.model, TokenCounts(passes), settings.precision)
log.info(done_message(stage, info))
