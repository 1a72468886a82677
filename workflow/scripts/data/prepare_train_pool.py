import json

from backtrack.data.pool import build_pool, pool_options
from backtrack.io import read_jsonl, write_jsonl
from backtrack.jobstats import write_job_stats
from backtrack.judge.registry import make_judge
from backtrack.models.base import load_model, load_tokenizer, reset_token_id
from backtrack.smk import param_json, setup

log = setup(snakemake)
p = param_json(snakemake, "pool")
judge_cfg = p["label_judge"]
tok = load_tokenizer(snakemake.input.model)
model = load_model(snakemake.input.model, snakemake.params.precision)
prompts = read_jsonl(snakemake.input.prompts, required=("id", "prompt", "harmful"))
pool, stats = build_pool(
    model,
    tok,
    reset_token_id(tok, snakemake.params.reset_token),
    [r for r in prompts if r["harmful"]],
    [r for r in prompts if not r["harmful"]],
    make_judge(judge_cfg["name"], judge_cfg["params"], snakemake.params.precision),
    unsafe_max_new_tokens=p["unsafe_max_new_tokens"],
    helpful_max_new_tokens=p["helpful_max_new_tokens"],
    batch_size=p["batch_size"],
    do_sample=p["do_sample"],
    temperature=p["temperature"],
    top_p=p["top_p"],
    seed=snakemake.params.seed,
    system=snakemake.params.system,
    reset_token=snakemake.params.reset_token,
    **pool_options(p),
)
if not any(r["harmful"] for r in pool):
    raise RuntimeError(f"no unsafe response survived the judge ({json.dumps(stats)})")
write_jsonl(snakemake.output.pool, pool)
log.info("pool: %s", json.dumps(stats, sort_keys=True))
write_job_stats(snakemake, snakemake.input.model, precision=model.dtype)
