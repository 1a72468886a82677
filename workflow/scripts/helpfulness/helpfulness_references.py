from backtrack.generate.hf import generate_records
from backtrack.io import read_jsonl, write_jsonl
from backtrack.models.base import load_model, load_tokenizer, reset_token_id
from backtrack.smk import setup

log = setup(snakemake)
tok = load_tokenizer(snakemake.input.model)
model = load_model(snakemake.input.model, snakemake.params.precision)
prompts = read_jsonl(snakemake.input.prompts, required=("id", "prompt"))
# Greedy and without [RESET] (max_resets=0): the base model's own answer, as the pool samples it.
records = generate_records(
    model,
    tok,
    prompts,
    reset_token_id(tok, snakemake.params.reset_token),
    max_new_tokens=snakemake.params.max_new_tokens,
    batch_size=snakemake.params.batch_size,
    max_resets=0,
    seed=snakemake.params.seed,
    system=snakemake.params.system,
)
write_jsonl(snakemake.output.references, records)
log.info("%d reference answers, %d truncated", len(records), sum(r["truncated"] for r in records))
