from backtrack.attacks.transfer import transfer_set
from backtrack.io import read_jsonl, write_jsonl
from backtrack.smk import setup

log = setup(snakemake)
transcripts = read_jsonl(snakemake.input.transcripts, required=("id", "attack_prompt"))
judgments = read_jsonl(snakemake.input.judgments, required=("id", "unsafe"))
prompts = transfer_set(transcripts, judgments, snakemake.params.source)
write_jsonl(snakemake.output.prompts, prompts)
log.info(
    "%d of %d suffixes broke %s: the transfer set",
    len(prompts),
    len(transcripts),
    snakemake.params.source,
)
