from dataclasses import asdict

from backtrack.generation import generate_records
from backtrack.io import read_jsonl, write_jsonl
from backtrack.jobstats import write_job_stats
from backtrack.judges import JudgeInput, make_judge
from backtrack.models import load_model, load_tokenizer, reset_token_id
from backtrack.smk import param_json, setup

log = setup(snakemake)
tok = load_tokenizer(snakemake.input.model)
model = load_model(snakemake.input.model, snakemake.params.precision)
prompts = read_jsonl(snakemake.input.prompts, required=("id", "prompt"))
gens = generate_records(
    model,
    tok,
    prompts,
    reset_token_id(tok, snakemake.params.reset_token),
    max_new_tokens=snakemake.params.max_new_tokens,
    batch_size=snakemake.params.batch_size,
    max_resets=0,
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
write_job_stats(snakemake, snakemake.input.model, precision=model.dtype)
