import json
import random

from backtrack.benign import benign_prompts, split_benign
from backtrack.io import write_jsonl
from backtrack.smk import param_json, setup
from backtrack.sources import load_harmful

log = setup(snakemake)
spec = param_json(snakemake, "spec")
seed = snakemake.params.seed
if snakemake.wildcards.dataset == "benign":
    _, records = split_benign(benign_prompts(), spec["n_train"], spec["n_heldout"], seed)
    records = [{**r, "source": "benign", "harmful": False} for r in records]
else:
    records = load_harmful(spec["source"])
    random.Random(seed).shuffle(records)
    records = [{**r, "harmful": True} for r in records[: spec["n"] or None]]
n = write_jsonl(snakemake.output.prompts, records)
log.info("%s: %d prompts (%s)", snakemake.wildcards.dataset, n, json.dumps(spec))
