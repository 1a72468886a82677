import json

from backtrack.data.examples import build_dpo_pairs
from backtrack.io import read_jsonl, write_jsonl
from backtrack.models.base import load_tokenizer
from backtrack.smk import setup

log = setup(snakemake)
pairs, counts = build_dpo_pairs(
    read_jsonl(snakemake.input.pool),
    load_tokenizer(snakemake.input.model),
    snakemake.params.kind,
    snakemake.params.reset_token,
    min_fraction=snakemake.params.prefix_min_fraction,
    max_fraction=snakemake.params.prefix_max_fraction,
    seed=snakemake.params.seed,
    system=snakemake.params.system,
    helpful_pairs=snakemake.params.helpful_pairs,
)
write_jsonl(snakemake.output.pairs, pairs)
log.info("dpo %s: %s", snakemake.wildcards.method, json.dumps(counts))
