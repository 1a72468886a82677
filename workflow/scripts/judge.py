from dataclasses import asdict

from backtrack.io import read_jsonl, write_jsonl
from backtrack.judges import JudgeInput, make_judge
from backtrack.smk import param_json, setup

log = setup(snakemake)
cfg = param_json(snakemake, "judge")
judge = make_judge(cfg["name"], cfg["params"])
gens = read_jsonl(snakemake.input.generations)
verdicts = judge.judge([JudgeInput.from_generation(g) for g in gens])
write_jsonl(
    snakemake.output.judgments,
    ({**g, **asdict(v), "judge": judge.name} for g, v in zip(gens, verdicts, strict=True)),
)
log.info("%d judged, %d unsafe", len(gens), sum(v.unsafe for v in verdicts))
