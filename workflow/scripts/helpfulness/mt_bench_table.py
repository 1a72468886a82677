from pathlib import Path

from backtrack.helpfulness.mt_bench import mt_bench_columns
from backtrack.io import atomic_file, read_jsonl
from backtrack.report.tables import build_table
from backtrack.smk import param_json, setup

log = setup(snakemake)
# results/mt_bench/{model}/{method}/{stage}/judgments.jsonl, keyed by its wildcards.
files = {tuple(Path(f).parts[-4:-1]): f for f in snakemake.input.judgments}
rows = [
    {"model": m, "method": meth, "stage": st}
    | mt_bench_columns(read_jsonl(files[(m, meth, st)]))
    | {"judge": snakemake.params.judge}
    for m, meth, st in param_json(snakemake, "variants")
]
with atomic_file(snakemake.output.table) as tmp:
    build_table(rows).to_csv(tmp, index=False, float_format="%.4f")
log.info("MT-Bench: %d rows", len(rows))
