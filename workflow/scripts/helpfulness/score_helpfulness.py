from backtrack.helpfulness.nll import reference_records, score_answers
from backtrack.io import read_jsonl, write_jsonl
from backtrack.models.base import load_model, load_tokenizer
from backtrack.settings import job_settings
from backtrack.smk import setup

log = setup(snakemake)
settings = job_settings(snakemake)
refs = reference_records(
    snakemake.params.references,
    read_jsonl(snakemake.input.references),
    source=snakemake.input.references,
)
tok = load_tokenizer(snakemake.input.model)
model = load_model(snakemake.input.model, settings.precision)
scores = score_answers(
    model,
    tok,
    refs,
    batch_size=snakemake.params.batch_size,
    system=settings.system,
    include_eos=snakemake.params.include_eos,
    padding_side=snakemake.params.padding_side,
)
write_jsonl(snakemake.output.scores, scores)
tokens = sum(s["n_tokens"] for s in scores)
log.info(
    "%d answers, %d tokens, mean NLL %.4f",
    len(scores),
    tokens,
    sum(s["nll_sum"] for s in scores) / max(tokens, 1),
)
