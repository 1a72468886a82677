from backtrack.checks import read_answers
from backtrack.data.prefill import cut_prefill_set
from backtrack.io import write_jsonl
from backtrack.models.base import load_tokenizer
from backtrack.smk import setup

log = setup(snakemake)
answers = read_answers(
    snakemake.input.answers,
    snakemake.input.eval_prompts,
    required=("id", "prompt", "answer", "label"),
)
k = snakemake.params.tokens
out = cut_prefill_set(load_tokenizer(snakemake.input.model), answers, k)
write_jsonl(snakemake.output.prompts, out)
log.info("prefill set: %d of %d prompts (prefix %d tokens)", len(out), len(answers), k)
