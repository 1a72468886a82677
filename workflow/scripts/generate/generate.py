from backtrack.generate.job import make_job, run
from backtrack.jobstats import generation_counts, write_job_stats
from backtrack.settings import job_settings
from backtrack.smk import param_json, setup

setup(snakemake)
settings = job_settings(snakemake)
job = make_job(
    settings,
    model=snakemake.input.model,
    prompts=snakemake.input.prompts,
    output=snakemake.output.generations,
    generation=param_json(snakemake, "generation"),
    # Sweep points (rule generate_sweep) may take the first `limit` prompts and sample each k times.
    limit=getattr(snakemake.params, "limit", 0),
    samples=getattr(snakemake.params, "samples", 1),
)
# In-process, or in the vLLM environment when the job needs vLLM and this Python has none.
run([job])
# From the records: the model may have run in a vLLM subprocess, out of this counter's reach.
counts, _ = generation_counts(snakemake.output.generations, snakemake.input.model, settings.system)
write_job_stats(snakemake, snakemake.input.model, counts, settings.precision)
