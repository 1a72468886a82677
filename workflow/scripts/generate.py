from backtrack.config import decoding_kwargs
from backtrack.io import read_jsonl, write_jsonl
from backtrack.models import load_tokenizer, reset_token_id
from backtrack.smk import param_json, setup

log = setup(snakemake)
g = param_json(snakemake, "generation")
tok = load_tokenizer(snakemake.input.model)
reset_id = reset_token_id(tok, snakemake.params.reset_token)
prompts = read_jsonl(snakemake.input.prompts, required=("id", "prompt"))
# Sweep points (rule generate_sweep) may take the first `limit` prompts and sample each k times.
prompts = prompts[: getattr(snakemake.params, "limit", 0) or None]
common = decoding_kwargs(g) | {
    "num_samples": getattr(snakemake.params, "samples", 1),
    "seed": snakemake.params.seed,
    "system": snakemake.params.system,
}
if g["backend"] == "vllm":
    from backtrack.vllm_backend import generate_records_vllm
    from vllm import LLM

    llm = LLM(
        model=snakemake.input.model,
        dtype=snakemake.params.dtype,
        seed=snakemake.params.seed,
        gpu_memory_utilization=g["gpu_memory_utilization"],
        disable_log_stats=False,  # RequestOutput.metrics carries time to first token
    )
    records = generate_records_vllm(llm, tok, prompts, reset_id, **common)
else:
    from backtrack.generation import generate_records
    from backtrack.models import load_model

    model = load_model(snakemake.input.model, snakemake.params.dtype)
    records = generate_records(model, tok, prompts, reset_id, batch_size=g["batch_size"], **common)
write_jsonl(snakemake.output.generations, records)
log.info("%d generations, %d reset", len(records), sum(r["reset"] for r in records))
