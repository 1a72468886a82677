from dataclasses import asdict

from backtrack.generate.answers import own_answers
from backtrack.io import write_jsonl
from backtrack.jobstats import write_job_stats
from backtrack.judge.base import JudgeInput
from backtrack.judge.registry import make_judge
from backtrack.models.precision import resolve_precision
from backtrack.smk import param_json, setup

log = setup(snakemake)
prompts, gens = own_answers(
    snakemake.input.model,
    snakemake.input.prompts,
    reset_token=snakemake.params.reset_token,
    precision=snakemake.params.precision,
    max_new_tokens=snakemake.params.max_new_tokens,
    batch_size=snakemake.params.batch_size,
    system=snakemake.params.system,
)
judge_cfg = param_json(snakemake, "judge")
verdicts = make_judge(judge_cfg["name"], judge_cfg["params"], snakemake.params.precision).judge(
    [JudgeInput.from_generation(g) for g in gens]
)
write_jsonl(
    snakemake.output.answers,
    (
        {**rec, "answer": g["visible"], "label": asdict(v)}
        for rec, g, v in zip(prompts, gens, verdicts, strict=True)
    ),
)
log.info("%d answers, %d unsafe", len(gens), sum(v.unsafe for v in verdicts))
write_job_stats(
    snakemake, snakemake.input.model, precision=resolve_precision(snakemake.params.precision)
)
