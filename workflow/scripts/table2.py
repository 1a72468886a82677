from pathlib import Path

from backtrack.io import atomic_file, read_jsonl
from backtrack.metrics import build_table, table2_row
from backtrack.smk import param_json, setup

log = setup(snakemake)
grid = param_json(snakemake, "grid")
sweep = param_json(snakemake, "sweep")
attacks = param_json(snakemake, "attacks")
level = snakemake.params.ci_level
judge = snakemake.params.judge


def _key(path):
    """(model, method, stage, name) of .../{model}/{method}/{stage}/[attacks/]{name}.jsonl."""
    p = Path(path)
    if p.parent.name == "attacks":
        return (*p.parts[-5:-2], f"attacks/{p.stem}")
    return (*p.parts[-4:-1], p.stem)


# The declared inputs (get_table2_inputs), keyed by their wildcards.
files = {_key(f): f for f in snakemake.input.judgments}
rows = []
for model, method, stage in grid:
    key = {"model": model, "method": method, "stage": stage}
    # params come as sorted JSON: put the sweep back in (dataset, prefix length) order.
    for name, (dataset, k) in sorted(sweep.items(), key=lambda kv: tuple(kv[1])):
        judged = read_jsonl(files[(model, method, stage, name)])
        rows.append(table2_row(key, f"prefill{k}", dataset, judged, level, judge))
    for a in attacks:
        judged = read_jsonl(files[(model, method, stage, f"attacks/{a}")])
        rows.append(table2_row(key, a, snakemake.params.attack_prompts, judged, level, judge))
with atomic_file(snakemake.output.table) as tmp:
    build_table(rows).to_csv(tmp, index=False, float_format="%.4f")
log.info("table 2: %d rows", len(rows))
