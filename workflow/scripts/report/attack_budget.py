from backtrack.checks import JUDGMENT_FIELDS, read_answers
from backtrack.metrics import build_table, write_table
from backtrack.plan import cell_of
from backtrack.report.budget import budget_at_half, budget_rows, plot_budget
from backtrack.report.readable import write_page
from backtrack.smk import param_json, setup

log = setup(snakemake)
cells = [cell_of(c) for c in param_json(snakemake, "cells")]
points = param_json(snakemake, "points")
units = param_json(snakemake, "units")
level = snakemake.params.ci_level
rows = []
for cell, path, prompts in zip(
    cells, snakemake.input.judgments, snakemake.input.prompts, strict=True
):
    attack = cell.dataset.removeprefix("attacks/")
    judged = read_answers(path, prompts, required=(*JUDGMENT_FIELDS, "steps", "stopped"))
    key = {"model": cell.model, "method": cell.method, "seed": cell.seed, "stage": cell.stage}
    rows += budget_rows(key, attack, judged, points[attack], units[attack], level)
write_table(rows, snakemake.output.table)
table = build_table(rows)
plot_budget(table, snakemake.output.figure, level)
write_page("attack_budget", table, snakemake.output.page)
for _, r in budget_at_half(table).iterrows():
    log.info("%s %s %s seed %s %s: 50%% success at budget %s", *r.values)
log.info("attack budget: %d rows", len(rows))
