import json

from backtrack.data.sets import eval_set
from backtrack.io import write_jsonl
from backtrack.smk import param_json, setup

log = setup(snakemake)
spec = param_json(snakemake, "spec")
name = snakemake.wildcards.dataset
kind = "benign" if name == "benign" else "harmful"
records = eval_set(name, kind, spec, snakemake.params.seed)
n = write_jsonl(snakemake.output.prompts, records)
log.info("%s: %d prompts (%s)", name, n, json.dumps(spec))
