from backtrack.generate.job import make_job, run
from backtrack.jobstats import generation_counts, write_job_stats
from backtrack.smk import param_json, setup

setup(snakemake)
job = make_job(
    model=snakemake.input.model,
    prompts=snakemake.input.prompts,
    output=snakemake.output.generations,
    generation=param_json(snakemake, "generation"),
    reset_token=snakemake.params.reset_token,
    system=snakemake.params.system,
    precision=snakemake.params.precision,
    seed=snakemake.params.seed,
    threads=snakemake.threads,
    # Sweep points (rule generate_sweep) may take the first `limit` prompts and sample each k times.
    limit=getattr(snakemake.params, "limit", 0),
    samples=getattr(snakemake.params, "samples", 1),
)
# In-process, or in the vLLM environment when the job needs vLLM and this Python has none.
run([job])
# From the records: the model may have run in a vLLM subprocess, out of this counter's reach.
counts, precision = generation_counts(
    snakemake.output.generations, snakemake.input.model, snakemake.params.system
)
write_job_stats(snakemake, snakemake.input.model, counts, precision)
