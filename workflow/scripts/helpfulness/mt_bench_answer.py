from backtrack.helpfulness.mt_bench import answer_questions, load_questions
from backtrack.io import write_jsonl
from backtrack.models.base import load_model, load_tokenizer
from backtrack.settings import job_settings
from backtrack.smk import param_json, setup

log = setup(snakemake)
settings = job_settings(snakemake)
# The deployed decoding at MT-Bench's lengths, with the job's system prompt and seed.
decoding = settings.decoding(param_json(snakemake, "decoding"))
questions = load_questions(snakemake.input.questions, snakemake.params.n_questions)
tok = load_tokenizer(snakemake.input.model)
model = load_model(snakemake.input.model, settings.precision)
answers = answer_questions(model, tok, questions, settings.reset(tok).id, decoding)
write_jsonl(snakemake.output.answers, answers)
log.info(
    "%d questions answered, %d turns reset",
    len(answers),
    sum(n > 0 for a in answers for n in a["n_resets"]),
)
