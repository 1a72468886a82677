from backtrack.attacks.runner import Evaluator, fingerprint, model_stamp, run_attack
from backtrack.io import read_jsonl
from backtrack.judges import make_judge
from backtrack.models import load_model, load_tokenizer, reset_token_id
from backtrack.smk import param_json, setup

log = setup(snakemake)
name = snakemake.wildcards.attack
params = param_json(snakemake, "attack")
generation = param_json(snakemake, "generation")
check = param_json(snakemake, "check_judge")
tok = load_tokenizer(snakemake.input.model)
model = load_model(snakemake.input.model, snakemake.params.precision)
ev = Evaluator(
    model,
    tok,
    reset_token_id(tok, snakemake.params.reset_token),
    generation,
    make_judge(check["name"], check["params"], snakemake.params.precision),
    snakemake.params.system,
    snakemake.params.seed,
)
stamp = fingerprint(name, params, generation, check, model_stamp(snakemake.input.model))
lines = run_attack(
    name,
    model,
    tok,
    read_jsonl(snakemake.input.targets, required=("id", "prompt", "target")),
    params,
    ev,
    snakemake.output.transcripts,
    stamp,
    seed=snakemake.params.seed,
    progress=lambda t: log.info(
        "%s: %s after %d steps (%.0f s), loss %.3f, reset %s",
        t["id"],
        t["stopped"],
        t["steps"],
        t["attack_seconds"],
        t["loss"],
        t["reset"],
    ),
)
log.info(
    "%d prompts, %d unsafe by the label judge", len(lines), sum(t["check_unsafe"] for t in lines)
)
