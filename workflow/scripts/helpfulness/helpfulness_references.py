from backtrack.generate.answers import own_answers
from backtrack.io import write_jsonl
from backtrack.settings import job_settings
from backtrack.smk import setup

log = setup(snakemake)
settings = job_settings(snakemake)
lengths = {k: getattr(snakemake.params, k) for k in ("max_new_tokens", "batch_size")}
_, records = own_answers(snakemake.input.model, snakemake.input.prompts, settings, **lengths)
write_jsonl(snakemake.output.references, records)
log.info("%d reference answers, %d truncated", len(records), sum(r["truncated"] for r in records))
