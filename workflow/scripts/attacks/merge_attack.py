from backtrack.attacks.shards import merge_shards
from backtrack.checks import read_answers
from backtrack.io import write_jsonl
from backtrack.smk import setup

log = setup(snakemake)
lines = merge_shards(snakemake.input.shards, snakemake.input.targets)
write_jsonl(snakemake.output.transcripts, lines)
# The file judge_attack and table2 read: every prompt of the set exactly once.
read_answers(snakemake.output.transcripts, snakemake.input.targets)
log.info("%d shards, %d prompts", len(snakemake.input.shards), len(lines))
