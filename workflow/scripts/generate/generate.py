from backtrack.generate.job import make_job, run
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
