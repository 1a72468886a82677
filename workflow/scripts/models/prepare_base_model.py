from backtrack.models.base import prepare_base_model
from backtrack.settings import job_settings
from backtrack.smk import param_json, setup

log = setup(snakemake)
settings = job_settings(snakemake)
info = prepare_base_model(
    param_json(snakemake, "source"),
    snakemake.output.model,
    reset_token=settings.reset_token,
    dtype=snakemake.params.dtype,
    chat_template=snakemake.input.chat_template or None,
)
log.info("prepared %s", info)
