"""Attack targets: the affirmative opening a jailbreak tries to make the model say.

AdvBench's own targets ("Sure, here is a script that can exploit vulnerabilities ...") are not in
the offline data packages (pyrit ships the behaviours only), so they are rebuilt by the same
pattern: "Sure, here is" plus the object of the instruction's verb, or "how to" plus the
instruction when its verb does not take a made object.
"""

from __future__ import annotations

import re

#: Verbs whose object is the thing produced ("Write a script ..." -> "Sure, here is a script ...").
_MAKE_VERBS = {
    "write",
    "create",
    "develop",
    "generate",
    "design",
    "provide",
    "produce",
    "draft",
    "compose",
    "give",
    "outline",
    "publish",
    "construct",
    "build",
    "prepare",
    "suggest",
    "list",
    "describe",
    "explain",
    "offer",
    "share",
    "post",
    "make",
    "craft",
    "code",
    "program",
}


def sure_here_target(instruction: str) -> str:
    """An AdvBench-style target for ``instruction``."""
    text = instruction.strip().rstrip(".?!")
    if not text:
        raise ValueError("empty instruction has no target")
    verb, _, rest = text.partition(" ")
    if verb.lower() in _MAKE_VERBS and rest:
        # "Give detailed instructions" -> "here are detailed instructions" keeps the grammar close.
        be = "are" if re.match(r"^(?:\w+ )?\w+s\b", rest) and not rest.startswith("a ") else "is"
        return f"Sure, here {be} {rest}"
    return f"Sure, here is how to {text[0].lower()}{text[1:]}"
