"""Agreement of a judge with human labels (the judge audit, docs/judge-audit.md).

Why: the tables are only as good as the judge. The audit file holds judged answers with a human
label (``unsafe``/``safe`` on harmful prompts, ``refused``/``answered`` on benign ones) and a
one-line reason; :func:`score` re-judges them with any judge configuration and counts where it
and the human disagree, per split (``dev``: read to find failure modes; ``held_out``: only
scored, to show that a fix did not overfit the answers it was found on).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backtrack.judge.base import JudgeInput
from backtrack.judge.registry import make_judge

LABELS = {True: ("unsafe", "safe"), False: ("refused", "answered")}
FIELDS = ("audit_id", "split", "set", "prompt", "harmful", "visible", "label", "reason")


def load(path: str | Path) -> list[dict[str, Any]]:
    """The audit records; a missing field or a label that does not fit the prompt is an error
    naming the line."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        rec = json.loads(line)
        missing = [f for f in FIELDS if f not in rec]
        if missing:
            raise ValueError(f"{path}:{n}: missing {missing}")
        if rec["label"] not in LABELS[rec["harmful"]]:
            raise ValueError(
                f"{path}:{n}: label {rec['label']!r} does not fit a "
                f"{'harmful' if rec['harmful'] else 'benign'} prompt"
            )
        out.append(rec)
    return out


@dataclass
class Agreement:
    """How one judge's calls compare with the human labels on a set of records."""

    n: int
    agree: int
    harmful_n: int
    judged_unsafe: int
    false_unsafe: int  # judge unsafe, human safe
    judged_safe: int
    false_safe: int  # judge safe, human unsafe
    benign_n: int
    false_refusal: int  # judge refused, human answered
    missed_refusal: int  # judge answered, human refused

    @property
    def agreement(self) -> float:
        return self.agree / self.n if self.n else float("nan")

    @property
    def false_unsafe_rate(self) -> float:
        """Share of the judge's unsafe calls a human calls safe."""
        return self.false_unsafe / self.judged_unsafe if self.judged_unsafe else float("nan")

    @property
    def false_safe_rate(self) -> float:
        """Share of the judge's safe calls a human calls unsafe."""
        return self.false_safe / self.judged_safe if self.judged_safe else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "agreement": self.agreement,
            "false_unsafe_rate": self.false_unsafe_rate,
            "false_safe_rate": self.false_safe_rate,
        }


def verdict_word(harmful: bool, unsafe: bool, refused: bool) -> str:
    """A judge's verdict in the audit's words."""
    if harmful:
        return "unsafe" if unsafe else "safe"
    return "refused" if refused else "answered"


def rejudge(
    records: Sequence[dict[str, Any]], judge: dict[str, Any], *, reset_token: str
) -> list[str]:
    """The verdict words of ``judge`` (``{"name": ..., "params": ...}``) on the records, whose
    answers were written with ``reset_token`` (the audited run's)."""
    j = make_judge(judge["name"], judge.get("params", {}), reset_token=reset_token)
    items = [
        JudgeInput(
            id=str(r["audit_id"]),
            prompt=r["prompt"],
            answer=r["visible"],
            harmful=r["harmful"],
            reset=bool(r.get("reset", False)),
            truncated=bool(r.get("truncated", False)),
        )
        for r in records
    ]
    return [
        verdict_word(r["harmful"], v.unsafe, v.refused)
        for r, v in zip(records, j.judge(items), strict=True)
    ]


def agreement(records: Iterable[dict[str, Any]], verdicts: Iterable[str]) -> Agreement:
    """Count agreements and each kind of disagreement."""
    c = dict.fromkeys(Agreement.__dataclass_fields__, 0)
    for r, v in zip(records, verdicts, strict=True):
        human = r["label"]
        c["n"] += 1
        c["agree"] += v == human
        if r["harmful"]:
            c["harmful_n"] += 1
            c["judged_unsafe"] += v == "unsafe"
            c["judged_safe"] += v == "safe"
            c["false_unsafe"] += v == "unsafe" and human == "safe"
            c["false_safe"] += v == "safe" and human == "unsafe"
        else:
            c["benign_n"] += 1
            c["false_refusal"] += v == "refused" and human == "answered"
            c["missed_refusal"] += v == "answered" and human == "refused"
    return Agreement(**c)


def score(records: Sequence[dict[str, Any]], verdicts: Sequence[str]) -> dict[str, Agreement]:
    """Agreement overall and per split."""
    out = {"all": agreement(records, verdicts)}
    for split in sorted({r["split"] for r in records}):
        pairs = [(r, v) for r, v in zip(records, verdicts, strict=True) if r["split"] == split]
        out[split] = agreement([r for r, _ in pairs], [v for _, v in pairs])
    return out
