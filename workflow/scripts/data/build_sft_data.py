import json

from backtrack.data.examples import build_sft_examples
from backtrack.io import read_jsonl, write_jsonl
from backtrack.models.base import load_tokenizer, reset_token_id
from backtrack.smk import setup

log = setup(snakemake)
tok = load_tokenizer(snakemake.input.model)
examples, counts = build_sft_examples(
    read_jsonl(snakemake.input.pool),
    tok,
    snakemake.params.kind,
    reset_token_id(tok, snakemake.params.reset_token),
    min_fraction=snakemake.params.prefix_min_fraction,
    max_fraction=snakemake.params.prefix_max_fraction,
    max_length=snakemake.params.max_length,
    seed=snakemake.params.seed,
    system=snakemake.params.system,
    prefix_rule=snakemake.params.prefix_rule,
)
write_jsonl(snakemake.output.examples, examples)
log.info("sft %s: %s", snakemake.wildcards.method, json.dumps(counts))
