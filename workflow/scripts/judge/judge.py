from backtrack.jobstats import COUNTER, write_job_stats
from backtrack.judge.job import make_job, ran_in, run
from backtrack.settings import job_settings, param
from backtrack.smk import param_json, setup

setup(snakemake)
settings = job_settings(snakemake)  # the precision resolved (and logged) once, here
judge = param_json(snakemake, "judge")
job = make_job(
    settings,
    judge=judge,
    generations=snakemake.input.generations,
    prompts=snakemake.input.prompts,
    output=snakemake.output.judgments,
    # Sweep points may answer the first `limit` prompts, `samples` times each.
    samples=param(snakemake, "samples", 1),
    limit=param(snakemake, "limit", 0),
)
# In-process, or in the vLLM environment when the judge runs on vLLM and this Python has none.
run([job])
if COUNTER.total():  # a model judge ran in this process (Llama Guard); patterns count nothing
    write_job_stats(snakemake, judge["params"]["model"], precision=ran_in(job))
