import json

from backtrack.data.examples import ExampleSettings, build_dpo_pairs
from backtrack.io import read_jsonl, write_jsonl
from backtrack.models.base import load_tokenizer
from backtrack.settings import job_settings
from backtrack.smk import setup

log = setup(snakemake)
settings = job_settings(snakemake)
tok = load_tokenizer(snakemake.input.model)
pairs, counts = build_dpo_pairs(
    read_jsonl(snakemake.input.pool),
    tok,
    snakemake.params.kind,
    settings.reset(tok),
    ExampleSettings.from_params(snakemake.params, settings),
    helpful_pairs=snakemake.params.helpful_pairs,
)
write_jsonl(snakemake.output.pairs, pairs)
log.info("dpo %s: %s", snakemake.wildcards.method, json.dumps(counts))
