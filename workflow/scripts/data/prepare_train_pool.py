import json

from backtrack.data.pool import PoolSettings, build_pool
from backtrack.io import read_jsonl, write_jsonl
from backtrack.jobstats import write_job_stats
from backtrack.judge.registry import make_judge
from backtrack.models.base import load_model, load_tokenizer
from backtrack.settings import job_settings
from backtrack.smk import param_json, setup

log = setup(snakemake)
settings = job_settings(snakemake)
p = param_json(snakemake, "pool")
judge_cfg = p["label_judge"]
tok = load_tokenizer(snakemake.input.model)
model = load_model(snakemake.input.model, settings.precision)
prompts = read_jsonl(snakemake.input.prompts, required=("id", "prompt", "harmful"))
judge = make_judge(
    judge_cfg["name"],
    judge_cfg["params"],
    reset_token=settings.reset_token,
    precision=settings.precision,
)
pool, stats = build_pool(
    model,
    tok,
    settings.reset(tok),
    [r for r in prompts if r["harmful"]],
    [r for r in prompts if not r["harmful"]],
    judge,
    PoolSettings.from_config(p, seed=settings.seed, system=settings.system),
)
if not any(r["harmful"] for r in pool):
    raise RuntimeError(f"no unsafe response survived the judge ({json.dumps(stats)})")
write_jsonl(snakemake.output.pool, pool)
log.info("pool: %s", json.dumps(stats, sort_keys=True))
write_job_stats(snakemake, snakemake.input.model, precision=settings.precision)
