from backtrack.generate.job import make_job, run
from backtrack.jobstats import counted_since, generation_counts, snapshot, write_job_stats
from backtrack.settings import job_settings
from backtrack.smk import as_paths, param_json, setup

setup(snakemake)
settings = job_settings(snakemake)
# One job answers several sets (rules generate, generate_prefilled) or one (generate_sweep):
# prompts and outputs are listed in the same order.
prompts = as_paths(snakemake.input.prompts)
outputs = as_paths(snakemake.output.generations)
generation = param_json(snakemake, "generation")
jobs = [
    make_job(
        settings,
        model=snakemake.input.model,
        prompts=p,
        output=o,
        generation=generation,
        # Sweep points (rule generate_sweep) may take the first `limit` prompts and sample
        # each k times.
        limit=getattr(snakemake.params, "limit", 0),
        samples=getattr(snakemake.params, "samples", 1),
    )
    for p, o in zip(prompts, outputs, strict=True)
]
# In-process, or in the vLLM environment when the job needs vLLM and this Python has none.
start = snapshot()
run(jobs)
# The positions the model computed here (a prefix a batch shares counted once, as it is
# computed once); where it ran in a vLLM subprocess, out of this counter's reach, every
# position of the records.
counts = counted_since(start)
if not counts.total():
    for o in outputs:
        c, _ = generation_counts(o, snakemake.input.model, settings.system)
        counts.merge(c)
write_job_stats(snakemake, snakemake.input.model, counts, settings.precision)
