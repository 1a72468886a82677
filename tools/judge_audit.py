"""The judge audit: draw a stratified sample of judged answers to label by hand, and score a
judge against the labels.

    python tools/judge_audit.py sample results/judgments --n 240 --out sample.jsonl
    python tools/judge_audit.py score                     # docs/judge-audit/labels.jsonl
    python tools/judge_audit.py score --write             # also docs/judge-audit/summary.json

Why: the refusal judge is a pattern match; how often it calls a harmless answer unsafe (or a
harmful one safe) can only be learnt by reading answers. ``sample``: strata are (evaluation set,
the judge's verdict), so rare verdicts (a refusal under prefilling, a benign refusal) are not
drowned out; within a stratum the records are drawn round-robin over the (method, stage)
directories, so every model is read. Each record gets ``split``: ``dev`` (read to find failure
modes and fix the judge) or ``held_out`` (only scored, to show a fix did not overfit),
alternating within each stratum. Label each record ``unsafe``/``safe`` (harmful prompt) or
``refused``/``answered`` (benign) with a one-line ``reason``. ``score``: each judge
configuration in JUDGES re-judges the labelled answers; agreement, false-unsafe and false-safe
counts per split.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

KEEP = ("id", "prompt", "harmful", "prefill", "visible", "reset", "truncated", "unsafe", "refused")


def verdict(rec: dict) -> str:
    """The judge's call on a judged record, in the audit's words."""
    from backtrack.judge.audit import verdict_word

    return verdict_word(rec["harmful"], rec["unsafe"], rec["refused"])


def sample_cmd(args: argparse.Namespace) -> int:
    """Write the stratified sample (see the module docstring)."""
    strata: dict[tuple[str, str], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(args.judgments.glob("*/*/seed*/*/*.jsonl")):
        model, method, seed, stage = path.parts[-5:-1]
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            out = {k: rec[k] for k in KEEP} | {
                "model": model,
                "method": method,
                "seed": int(seed.removeprefix("seed")),
                "stage": stage,
                "set": path.stem,
                "judge": rec["judge"],
                "judge_verdict": verdict(rec),
            }
            strata[(path.stem, verdict(rec))][f"{method}/{stage}"].append(out)
    rng = random.Random(args.seed)
    per = -(-args.n // len(strata))
    drawn = []
    for key in sorted(strata):
        groups = [rng.sample(g, len(g)) for _, g in sorted(strata[key].items())]
        picked: list[dict] = []
        while len(picked) < per and any(groups):
            for g in groups:
                if g and len(picked) < per:
                    picked.append(g.pop())
        for i, rec in enumerate(picked):
            drawn.append(rec | {"split": "dev" if i % 2 == 0 else "held_out"})
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in drawn))
    counts = defaultdict(int)
    for r in drawn:
        counts[(r["set"], r["judge_verdict"])] += 1
    print(len(drawn), "records;", dict(counts))
    return 0


ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "docs/judge-audit/labels.jsonl"
SUMMARY = ROOT / "docs/judge-audit/summary.json"
#: Judge configurations the audit scores: the default evaluation judge and its fix.
JUDGES = {
    "refusal": {"name": "refusal", "params": {"window_chars": 200}},
    "refusal+continuation_phrases": {
        "name": "refusal",
        "params": {"window_chars": 200, "continuation_phrases": True},
    },
}


def default_reset_token() -> str:
    """The config schema's default ``reset_token``: the one the audited run's answers used."""
    from backtrack.config import load_schema

    return load_schema()["properties"]["reset_token"]["default"]


def summarise(path: Path = LABELS, reset_token: str | None = None) -> dict:
    """Per judge configuration and split, the agreement figures (what summary.json holds)."""
    from backtrack.judge.audit import load, rejudge, score

    records = load(path)
    token = reset_token or default_reset_token()
    return {
        name: {
            split: a.as_dict()
            for split, a in score(records, rejudge(records, j, reset_token=token)).items()
        }
        for name, j in JUDGES.items()
    }


def score_cmd(args: argparse.Namespace) -> int:
    summary = summarise(args.labels, args.reset_token)
    print(f"{'judge':30} {'split':9} {'n':>4} {'agree':>6} {'false-unsafe':>13} {'false-safe':>11}")
    for name, splits in summary.items():
        for split, a in splits.items():
            fu = f"{a['false_unsafe']}/{a['judged_unsafe']}"
            fs = f"{a['false_safe']}/{a['judged_safe']}"
            print(f"{name:30} {split:9} {a['n']:4d} {a['agreement']:6.3f} {fu:>13} {fs:>11}")
    if args.write:
        SUMMARY.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        print("wrote", SUMMARY)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample", help="draw a stratified sample to label")
    s.add_argument(
        "judgments", type=Path, help="results/judgments (model/method/seedN/stage/set.jsonl)"
    )
    s.add_argument("--n", type=int, default=240)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(run=sample_cmd)
    c = sub.add_parser("score", help="score judge configurations against the labels")
    c.add_argument("--labels", type=Path, default=LABELS)
    c.add_argument("--reset-token", help="the audited run's reset_token (default: the schema's)")
    c.add_argument("--write", action="store_true", help=f"write {SUMMARY.relative_to(ROOT)}")
    c.set_defaults(run=score_cmd)
    args = ap.parse_args()
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
