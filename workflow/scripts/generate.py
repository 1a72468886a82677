from backtrack.config import decoding_kwargs
from backtrack.io import read_jsonl, write_jsonl
from backtrack.models import load_tokenizer, provenance, reset_token_id
from backtrack.precision import DTYPE_NAMES, resolve_precision
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
precision = resolve_precision(snakemake.params.precision)
if g["backend"] == "vllm":
    from backtrack.vllm_backend import generate_records_vllm
    from vllm import LLM

    llm = LLM(
        model=snakemake.input.model,
        dtype=DTYPE_NAMES[precision],
        seed=snakemake.params.seed,
        gpu_memory_utilization=g["gpu_memory_utilization"],
        disable_log_stats=False,  # RequestOutput.metrics carries time to first token
    )
    records = generate_records_vllm(llm, tok, prompts, reset_id, **common)
else:
    from backtrack.generation import generate_records
    from backtrack.models import load_model

    model = load_model(snakemake.input.model, precision)
    records = generate_records(model, tok, prompts, reset_id, batch_size=g["batch_size"], **common)
# Table 1 reports the precision of decoding and of the checkpoint's training.
trained = provenance(snakemake.input.model).get("precision", "none")
for r in records:
    r["precision"], r["train_precision"] = precision, trained
write_jsonl(snakemake.output.generations, records)
log.info("%d generations, %d reset", len(records), sum(r["reset"] for r in records))
