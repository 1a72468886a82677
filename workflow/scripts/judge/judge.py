from backtrack.jobstats import COUNTER, write_job_stats
from backtrack.judge.job import make_job, run
from backtrack.models.precision import resolve_precision
from backtrack.smk import param_json, setup

setup(snakemake)
job = make_job(
    judge=param_json(snakemake, "judge"),
    precision=snakemake.params.precision,
    generations=snakemake.input.generations,
    prompts=snakemake.input.prompts,
    output=snakemake.output.judgments,
    # Sweep points may answer the first `limit` prompts, `samples` times each.
    samples=getattr(snakemake.params, "samples", 1),
    limit=getattr(snakemake.params, "limit", 0),
    threads=snakemake.threads,
)
# In-process, or in the vLLM environment when the judge runs on vLLM and this Python has none.
run([job])
if COUNTER.total():  # a model judge ran in this process (Llama Guard); patterns count nothing
    cfg = param_json(snakemake, "judge")
    precision = cfg["params"].get("dtype") or resolve_precision(snakemake.params.precision)
    write_job_stats(snakemake, cfg["params"]["model"], precision=precision)
