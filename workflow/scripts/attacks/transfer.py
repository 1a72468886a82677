from backtrack.attacks.runner import Evaluator
from backtrack.attacks.transfer import run_transfer
from backtrack.io import read_jsonl, write_jsonl
from backtrack.jobstats import write_job_stats
from backtrack.models.base import load_model, load_tokenizer
from backtrack.settings import job_settings
from backtrack.smk import param_json, setup

log = setup(snakemake)
settings = job_settings(snakemake)
tok = load_tokenizer(snakemake.input.model)
model = load_model(snakemake.input.model, settings.precision)
decoding = settings.decoding(param_json(snakemake, "decoding"))
# No early-stop check here: the evaluator only generates.
ev = Evaluator(model, tok, settings.reset(tok).id, decoding, check_judge=None)
prompts = read_jsonl(snakemake.input.prompts, required=("id", "prompt", "attack_prompt"))
lines = run_transfer(ev, prompts)
write_jsonl(snakemake.output.transcripts, lines)
log.info("%d transferred suffixes answered", len(lines))
write_job_stats(snakemake, snakemake.input.model, precision=settings.precision)
