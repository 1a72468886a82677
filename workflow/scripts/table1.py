import json
from pathlib import Path

from backtrack.io import atomic_file, read_jsonl
from backtrack.metrics import build_table, table1_row
from backtrack.smk import param_json, setup

log = setup(snakemake)
grid = param_json(snakemake, "grid")
datasets = param_json(snakemake, "datasets")
prov = param_json(snakemake, "provenance")
# results/judgments/{model}/{method}/{stage}/{dataset}.jsonl, keyed by its wildcards.
files = {(*Path(f).parts[-4:-1], Path(f).stem): f for f in snakemake.input.judgments}
rows = []
for model, method, stage in grid:
    sets = {d: read_jsonl(files[(model, method, stage, d)]) for d in datasets}
    rows.append(
        table1_row(
            {"model": model, "method": method, "stage": stage},
            sets,
            datasets,
            snakemake.params.ci_level,
            {
                "model_source": json.dumps(prov["models"][model]["source"], sort_keys=True),
                "train_data": json.dumps(prov["data"]["harmful_train"], sort_keys=True),
                "eval_data": json.dumps(prov["data"]["eval_sets"], sort_keys=True),
                "judge": prov["judge"]["name"],
            },
        )
    )
with atomic_file(snakemake.output.table) as tmp:
    build_table(rows).to_csv(tmp, index=False, float_format="%.4f")
log.info("table 1: %d rows", len(rows))
