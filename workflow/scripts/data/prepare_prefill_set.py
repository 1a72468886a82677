from backtrack.checks import read_answers
from backtrack.data.prefill import cut_prefill_set, opener_prefill_set
from backtrack.io import read_jsonl, write_jsonl
from backtrack.models.base import load_tokenizer
from backtrack.plan import ANSWER_SOURCES
from backtrack.smk import setup

log = setup(snakemake)
k, source = snakemake.params.tokens, snakemake.params.source
tok = load_tokenizer(snakemake.input.model)
if source in ANSWER_SOURCES:
    answers = read_answers(
        snakemake.input.answers,
        snakemake.input.eval_prompts,
        required=("id", "prompt", "answer", "label"),
    )
    out, total = cut_prefill_set(tok, answers, k, source), len(answers)
else:
    prompts = read_jsonl(snakemake.input.eval_prompts)
    out, total = opener_prefill_set(tok, prompts, k), len(prompts)
write_jsonl(snakemake.output.prompts, out)
log.info("prefill set (%s): %d of %d prompts (prefix %d tokens)", source, len(out), total, k)
