import random

from backtrack.benign import benign_prompts, split_benign
from backtrack.io import read_jsonl, write_jsonl
from backtrack.smk import param_json, setup
from backtrack.sources import check_no_overlap, find_overlap, load_harmful

log = setup(snakemake)
harmful_spec = param_json(snakemake, "harmful")
benign_spec = param_json(snakemake, "benign")
seed = snakemake.params.seed
evals = [r for path in snakemake.input.evals for r in read_jsonl(path)]

candidates = load_harmful(harmful_spec["source"])
clash = {a for a, _ in find_overlap(candidates, evals)}
log.info("excluding %d harmful candidates that appear in eval sets", len(clash))
candidates = [r for r in candidates if r["id"] not in clash]
random.Random(seed).shuffle(candidates)
if len(candidates) < harmful_spec["n"]:
    raise ValueError(
        f"config key 'data.harmful_train.n': {harmful_spec['n']} requested but only "
        f"{len(candidates)} {harmful_spec['source']} prompts are free of eval overlap"
    )
harmful = [{**r, "harmful": True} for r in candidates[: harmful_spec["n"]]]
train_benign, _ = split_benign(
    benign_prompts(), benign_spec["n_train"], benign_spec["n_heldout"], seed
)
benign = [{**r, "source": "benign", "harmful": False} for r in train_benign]
records = harmful + benign
check_no_overlap(records, evals)
write_jsonl(snakemake.output.prompts, records)
log.info("train prompts: %d harmful, %d benign", len(harmful), len(benign))
