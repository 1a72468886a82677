from backtrack.generation import generate_records
from backtrack.io import read_jsonl, write_jsonl
from backtrack.judges import JudgeInput, make_judge
from backtrack.models import load_model, load_tokenizer, reset_token_id
from backtrack.smk import param_json, setup

log = setup(snakemake)
tok = load_tokenizer(snakemake.input.model)
model = load_model(snakemake.input.model)
prompts = read_jsonl(snakemake.input.prompts)
k = snakemake.params.tokens
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
verdicts = make_judge(judge_cfg["name"], judge_cfg["params"]).judge(
    [JudgeInput.from_generation(g) for g in gens]
)
out = []
for rec, g, v in zip(prompts, gens, verdicts, strict=True):
    ids = tok(g["visible"], add_special_tokens=False).input_ids
    # Only answers the judge calls unsafe make a prefilling attack, and only if long enough.
    if v.unsafe and len(ids) >= k:
        out.append({**rec, "prefill": tok.decode(ids[:k]), "prefill_source": "base-model"})
write_jsonl(snakemake.output.prompts, out)
log.info("prefill set: %d of %d prompts (prefix %d tokens)", len(out), len(prompts), k)
