from backtrack.generation import generate_records
from backtrack.io import read_jsonl, write_jsonl
from backtrack.models import load_model, load_tokenizer, reset_token_id
from backtrack.smk import param_json, setup

log = setup(snakemake)
g = param_json(snakemake, "generation")
tok = load_tokenizer(snakemake.input.model)
model = load_model(snakemake.input.model, snakemake.params.dtype)
records = generate_records(
    model,
    tok,
    read_jsonl(snakemake.input.prompts),
    reset_token_id(tok, snakemake.params.reset_token),
    max_new_tokens=g["max_new_tokens"],
    batch_size=g["batch_size"],
    do_sample=g["do_sample"],
    temperature=g["temperature"],
    top_p=g["top_p"],
    reset_logit_bias=g["reset_logit_bias"],
    max_resets=g["max_resets"],
    seed=snakemake.params.seed,
    system=snakemake.params.system,
)
write_jsonl(snakemake.output.generations, records)
log.info("%d generations, %d reset", len(records), sum(r["reset"] for r in records))
