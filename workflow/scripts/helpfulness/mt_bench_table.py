from backtrack.helpfulness.mt_bench import mt_bench_columns
from backtrack.io import atomic_file, read_jsonl
from backtrack.metrics import build_table
from backtrack.smk import param_json, setup

log = setup(snakemake)
# One judgments file per (model, method, seed, stage) row, in the order of the rule's `variants`.
inputs = zip(param_json(snakemake, "variants"), snakemake.input.judgments, strict=True)
rows = [
    {"model": m, "method": meth, "seed": seed, "stage": st}
    | mt_bench_columns(read_jsonl(path))
    | {"judge": snakemake.params.judge}
    for (m, meth, seed, st), path in inputs
]
with atomic_file(snakemake.output.table) as tmp:
    build_table(rows).to_csv(tmp, index=False, float_format="%.4f")
log.info("MT-Bench: %d rows", len(rows))
