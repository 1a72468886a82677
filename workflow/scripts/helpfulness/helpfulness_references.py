from backtrack.generate.answers import own_answers
from backtrack.io import write_jsonl
from backtrack.smk import setup

log = setup(snakemake)
_, records = own_answers(
    snakemake.input.model,
    snakemake.input.prompts,
    reset_token=snakemake.params.reset_token,
    precision=snakemake.params.precision,
    max_new_tokens=snakemake.params.max_new_tokens,
    batch_size=snakemake.params.batch_size,
    system=snakemake.params.system,
    seed=snakemake.params.seed,
)
write_jsonl(snakemake.output.references, records)
log.info("%d reference answers, %d truncated", len(records), sum(r["truncated"] for r in records))
