import json
import sys

import pandas as pd
from backtrack.checks import JUDGMENT_FIELDS, read_answers
from backtrack.io import atomic_file
from backtrack.metrics import write_table
from backtrack.plan import cell_of
from backtrack.report.claims import Outcomes
from backtrack.report.readable import write_page
from backtrack.report.summary import plot_table1, summary_text, table1_claims
from backtrack.report.tables import table1_row
from backtrack.smk import param_json, setup

log = setup(snakemake)
cells = [cell_of(c) for c in param_json(snakemake, "cells")]
datasets = param_json(snakemake, "datasets")
prov = param_json(snakemake, "provenance")
# cells, judgments and prompts come in the same order.
judged = {}
for cell, path, prompts in zip(
    cells, snakemake.input.judgments, snakemake.input.prompts, strict=True
):
    judged[(cell.row, cell.dataset)] = read_answers(path, prompts, required=JUDGMENT_FIELDS)


def precisions(sets, field):
    """The precision(s) the row's records were made in (``precision`` policy), e.g. bf16."""
    return "/".join(sorted({str(r.get(field, "unknown")) for rs in sets.values() for r in rs}))


rows = []
for row in dict.fromkeys(c.row for c in cells):
    model = row.model
    sets = {d: judged[(row, d)] for d in datasets}
    rows.append(
        table1_row(
            {"model": model, "method": row.method, "seed": row.seed, "stage": row.stage},
            sets,
            datasets,
            snakemake.params.ci_level,
            {
                "model_source": json.dumps(prov["models"][model]["source"], sort_keys=True),
                "train_data": json.dumps(prov["data"]["harmful_train"], sort_keys=True),
                "eval_data": json.dumps(prov["data"]["eval_sets"], sort_keys=True),
                "judge": prov["judge"]["name"],
                "precision": precisions(sets, "precision"),
                "train_precision": precisions(sets, "train_precision"),
            },
        )
    )
write_table(rows, snakemake.output.table)
log.info("table 1: %d rows", len(rows))

# The summary and the figure read the table as written (its rounding), and the claims Table 1
# decides; over several seeds those need the answers, prompt by prompt.
table = pd.read_csv(snakemake.output.table)
write_page("table1", table, snakemake.output.page)
seeds = tuple(sorted({c.seed for c in cells}))
outcomes = None
if len(seeds) > 1:
    by_cell = {(c.model, c.method, c.seed, c.stage, c.dataset): judged[(c.row, c.dataset)]
               for c in cells}  # fmt: skip
    outcomes = Outcomes(
        by_cell, datasets, seeds, snakemake.params.ci_level, snakemake.params.bootstrap,
        snakemake.params.seed,
    )  # fmt: skip
level = snakemake.params.ci_level
claims = table1_claims(
    table,
    param_json(snakemake, "prefill_sources"),
    judge=prov["judge"]["name"],
    level=level,
    outcomes=outcomes,
)
text = summary_text(table, datasets, claims, level=level)
with atomic_file(snakemake.output.summary) as tmp:
    tmp.write_text(text)
with atomic_file(snakemake.output.figure) as tmp:
    plot_table1(table, datasets, tmp, level)
log.info("summary:\n%s", text)
print(text, file=sys.__stderr__, flush=True)  # the console, where the run ends
