import json

from backtrack.helpfulness.mt_bench import mt_bench_columns
from backtrack.helpfulness.nll import Bootstrap, helpfulness_rows
from backtrack.io import atomic_file, read_jsonl
from backtrack.metrics import build_table
from backtrack.smk import param_json, setup


def keyed(rows, files):
    """Each file's records by its (model, method, seed, stage) row; the rule lists both in one
    order."""
    return {row: read_jsonl(f) for row, f in zip(rows, files, strict=True)}


log = setup(snakemake)
grid = [tuple(g) for g in param_json(snakemake, "grid")]
variants = [tuple(v) for v in param_json(snakemake, "variants")]
extra = None
if snakemake.input.mt_bench:
    extra = {k: mt_bench_columns(v) for k, v in keyed(variants, snakemake.input.mt_bench).items()}
rows = helpfulness_rows(
    variants,
    keyed(variants, snakemake.input.scores),
    keyed(grid, snakemake.input.benign),
    references=snakemake.params.references,
    judge=snakemake.params.judge,
    bootstrap=Bootstrap(
        snakemake.params.bootstrap, snakemake.params.ci_level, snakemake.params.seed
    ),
    extra=extra,
)
prov = param_json(snakemake, "provenance")
for r in rows:
    r["model_source"] = json.dumps(prov["models"][r["model"]]["source"], sort_keys=True)
    if extra is not None:
        r["mt_bench_judge"] = prov["mt_bench_judge"]
with atomic_file(snakemake.output.table) as tmp:
    build_table(rows).to_csv(tmp, index=False, float_format="%.4f")
log.info("helpfulness: %d rows", len(rows))
