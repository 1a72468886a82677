from dataclasses import asdict

from backtrack.checks import GENERATION_FIELDS, read_answers
from backtrack.io import write_jsonl
from backtrack.jobstats import COUNTER, write_job_stats
from backtrack.judge.base import JudgeInput
from backtrack.judge.registry import make_judge
from backtrack.smk import param_json, setup

log = setup(snakemake)
cfg = param_json(snakemake, "judge")
judge = make_judge(cfg["name"], cfg["params"], snakemake.params.precision)
# Sweep points may answer the first `limit` prompts, `samples` times each.
gens = read_answers(
    snakemake.input.generations,
    snakemake.input.prompts,
    samples=getattr(snakemake.params, "samples", 1),
    limit=getattr(snakemake.params, "limit", 0),
    required=GENERATION_FIELDS,
)
verdicts = judge.judge([JudgeInput.from_generation(g) for g in gens])
write_jsonl(
    snakemake.output.judgments,
    ({**g, **asdict(v), "judge": judge.name} for g, v in zip(gens, verdicts, strict=True)),
)
log.info("%d judged, %d unsafe", len(gens), sum(v.unsafe for v in verdicts))
if COUNTER.total():  # a judge that runs a model (Llama Guard); keyword judges count nothing
    write_job_stats(snakemake, judge.model, precision=getattr(judge, "dtype", None))
