from dataclasses import asdict

from backtrack.generate.answers import own_answers
from backtrack.io import write_jsonl
from backtrack.jobstats import write_job_stats
from backtrack.judge.base import JudgeInput
from backtrack.judge.registry import make_judge
from backtrack.settings import job_settings
from backtrack.smk import param_json, setup

log = setup(snakemake)
settings = job_settings(snakemake)
prompts, gens = own_answers(
    snakemake.input.model,
    snakemake.input.prompts,
    settings,
    max_new_tokens=snakemake.params.max_new_tokens,
    batch_size=snakemake.params.batch_size,
)
judge_cfg = param_json(snakemake, "judge")
judge = make_judge(
    judge_cfg["name"],
    judge_cfg["params"],
    reset_token=settings.reset_token,
    precision=settings.precision,
)
verdicts = judge.judge([JudgeInput.from_generation(g) for g in gens])
write_jsonl(
    snakemake.output.answers,
    (
        {**rec, "answer": g["visible"], "label": asdict(v)}
        for rec, g, v in zip(prompts, gens, verdicts, strict=True)
    ),
)
log.info("%d answers, %d unsafe", len(gens), sum(v.unsafe for v in verdicts))
write_job_stats(snakemake, snakemake.input.model, precision=settings.precision)
