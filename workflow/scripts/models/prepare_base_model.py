from backtrack.models.base import prepare_base_model
from backtrack.smk import param_json, setup

log = setup(snakemake)
info = prepare_base_model(
    param_json(snakemake, "source"),
    snakemake.output.model,
    reset_token=snakemake.params.reset_token,
    dtype=snakemake.params.dtype,
    chat_template=snakemake.input.chat_template or None,
)
log.info("prepared %s", info)
