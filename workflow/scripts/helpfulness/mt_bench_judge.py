from backtrack.helpfulness.mt_bench import judge_answers, load_questions, load_reference_answers
from backtrack.io import read_jsonl, write_jsonl
from backtrack.models.base import load_model
from backtrack.settings import job_settings
from backtrack.smk import param_json, setup
from transformers import AutoTokenizer

log = setup(snakemake)
settings = job_settings(snakemake)
cfg = param_json(snakemake, "judge")
questions = load_questions(snakemake.input.questions, snakemake.params.n_questions)
tok = AutoTokenizer.from_pretrained(cfg["model"])
judge = load_model(cfg["model"], settings.precision)
judgments = judge_answers(
    judge,
    tok,
    questions,
    read_jsonl(snakemake.input.answers),
    max_new_tokens=cfg["max_new_tokens"],
    batch_size=cfg["batch_size"],
    references=load_reference_answers(snakemake.input.reference_answers or None),
)
write_jsonl(snakemake.output.judgments, ({**j, "judge": cfg["model"]} for j in judgments))
log.info(
    "%d judgments, %d parse failures",
    len(judgments),
    sum(j["parse_error"] for j in judgments),
)
