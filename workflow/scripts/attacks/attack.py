from pathlib import Path

from backtrack.attacks.runner import Evaluator, fingerprint, model_stamp, run_attack
from backtrack.attacks.shards import attack_transcripts, shard_records
from backtrack.io import read_jsonl
from backtrack.jobstats import write_job_stats
from backtrack.judge.registry import make_judge
from backtrack.models.base import load_model, load_tokenizer
from backtrack.settings import job_settings
from backtrack.smk import param_json, setup

log = setup(snakemake)
settings = job_settings(snakemake)
name = snakemake.wildcards.attack
params = param_json(snakemake, "attack")
generation = param_json(snakemake, "decoding")
check = param_json(snakemake, "check_judge")
tok = load_tokenizer(snakemake.input.model)
model = load_model(snakemake.input.model, settings.precision)
judge = make_judge(
    check["name"],
    check["params"],
    reset_token=settings.reset_token,
    precision=settings.precision,
)
ev = Evaluator(model, tok, settings.reset(tok).id, settings.decoding(generation), judge)
records = read_jsonl(snakemake.input.targets, required=("id", "prompt", "target"))
# Which chunk of the targets this job attacks (1 of 1: all of them), as the rule says.
shard, shards = snakemake.params.shard
if shards > 1:
    records = shard_records(records, shard, shards)
    log.info("shard %d of %d: prompts %s", shard, shards, ", ".join(r["id"] for r in records))
out = Path(snakemake.output.transcripts)
# The shard count is not in the stamp: lines of another split (or of the whole set) are reused.
stamp = fingerprint(name, params, generation, check, model_stamp(snakemake.input.model))
lines = run_attack(
    name,
    records,
    params,
    ev,
    out,
    stamp,
    reuse=attack_transcripts(snakemake.params.reuse),
    progress=lambda t: log.info(
        "%s: %s after %d steps (%.0f s), loss %.3f, reset %s",
        t["id"],
        t["stopped"],
        t["steps"],
        t["attack_seconds"],
        t["loss"],
        t["reset"],
    ),
)
log.info(
    "%d prompts, %d unsafe by the label judge", len(lines), sum(t["check_unsafe"] for t in lines)
)
write_job_stats(snakemake, snakemake.input.model, precision=settings.precision)
