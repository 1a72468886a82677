import json

from backtrack.data.examples import ExampleSettings, build_sft_examples
from backtrack.io import read_jsonl, write_jsonl
from backtrack.models.base import load_tokenizer
from backtrack.settings import job_settings
from backtrack.smk import setup

log = setup(snakemake)
settings = job_settings(snakemake)
tok = load_tokenizer(snakemake.input.model)
examples, counts = build_sft_examples(
    read_jsonl(snakemake.input.pool),
    tok,
    snakemake.params.kind,
    settings.reset(tok),
    ExampleSettings.from_params(snakemake.params, settings),
)
write_jsonl(snakemake.output.examples, examples)
log.info("sft %s: %s", snakemake.wildcards.method, json.dumps(counts))
