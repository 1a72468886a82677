from pathlib import Path

from backtrack.attacks.runner import Evaluator, fingerprint, model_stamp, run_attack
from backtrack.attacks.shards import attack_transcripts, shard_records
from backtrack.io import read_jsonl
from backtrack.jobstats import write_job_stats
from backtrack.judge.registry import make_judge
from backtrack.models.base import load_model, load_tokenizer, reset_token_id
from backtrack.smk import param_json, setup

log = setup(snakemake)
name = snakemake.wildcards.attack
params = param_json(snakemake, "attack")
generation = param_json(snakemake, "decoding")
check = param_json(snakemake, "check_judge")
tok = load_tokenizer(snakemake.input.model)
model = load_model(snakemake.input.model, snakemake.params.precision)
ev = Evaluator(
    model,
    tok,
    reset_token_id(tok, snakemake.params.reset_token),
    generation,
    make_judge(check["name"], check["params"], snakemake.params.precision),
    snakemake.params.system,
    snakemake.params.seed,
)
records = read_jsonl(snakemake.input.targets, required=("id", "prompt", "target"))
out = Path(snakemake.output.transcripts)
if hasattr(snakemake.wildcards, "shard"):  # rule attack_shard: .../{attack}/shard-k-of-n.jsonl
    shard, shards = int(snakemake.wildcards.shard), int(snakemake.wildcards.shards)
    records = shard_records(records, shard, shards)
    log.info("shard %d of %d: prompts %s", shard, shards, ", ".join(r["id"] for r in records))
    attack_dir = out.parent.parent
else:  # rule attack: .../{attack}.jsonl
    attack_dir = out.parent
# The shard count is not in the stamp: lines of another split (or of the whole set) are reused.
stamp = fingerprint(name, params, generation, check, model_stamp(snakemake.input.model))
lines = run_attack(
    name,
    model,
    tok,
    records,
    params,
    ev,
    out,
    stamp,
    seed=snakemake.params.seed,
    reuse=attack_transcripts(attack_dir, name),
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
write_job_stats(snakemake, snakemake.input.model, precision=model.dtype)
