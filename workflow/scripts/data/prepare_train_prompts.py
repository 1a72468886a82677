import json

from backtrack.data.sets import train_prompts
from backtrack.io import read_jsonl, write_jsonl
from backtrack.smk import param_json, setup

log = setup(snakemake)
evals = [r for path in snakemake.input.evals for r in read_jsonl(path)]
records, stats = train_prompts(
    param_json(snakemake, "harmful"),
    param_json(snakemake, "benign"),
    evals,
    snakemake.params.seed,
)
write_jsonl(snakemake.output.prompts, records)
log.info("train prompts: %d harmful, %d benign", stats["harmful"], stats["benign"])
log.info("train prompt stats: %s", json.dumps(stats, sort_keys=True))
