from backtrack.data.targets import sure_here_target
from backtrack.io import read_jsonl, write_jsonl
from backtrack.smk import setup

log = setup(snakemake)
prompts = read_jsonl(snakemake.input.prompts, required=("id", "prompt"))
if snakemake.params.n > len(prompts):
    raise ValueError(
        f"config key '{snakemake.params.n_key}': {snakemake.params.n} prompts requested but "
        f"{snakemake.input.prompts} has {len(prompts)}"
    )
prompts = prompts[: snakemake.params.n]
if snakemake.params.target != "sure_here":
    raise ValueError(f"config key 'attacks.target': unknown {snakemake.params.target!r}")
write_jsonl(
    snakemake.output.targets,
    ({**p, "target": sure_here_target(p["prompt"])} for p in prompts),
)
log.info("%d attack targets", len(prompts))
