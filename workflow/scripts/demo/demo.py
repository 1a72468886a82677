from pathlib import Path

from backtrack.demo import demo_commands, transcript
from backtrack.io import atomic_file
from backtrack.smk import param_json, setup

log = setup(snakemake)
commands = demo_commands(
    snakemake.input.model,
    param_json(snakemake, "demo"),
    precision=snakemake.params.precision,
    system=snakemake.params.system,
    max_resets=snakemake.params.max_resets,
)
text = transcript(commands)
with atomic_file(snakemake.output.transcript) as tmp:
    Path(tmp).write_text(text, encoding="utf-8")
log.info("demo transcript of %d commands:\n%s", len(commands), text)
