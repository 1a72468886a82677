"""Judges by name, as the config names them (``judge.name``, ``pool.label_judge.name``).

Kept apart from the judges themselves so that the pattern judge is built without importing
torch; the options each judge takes are in :mod:`backtrack.catalog` (config validation reads
them there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from backtrack.judge.base import Judge
from backtrack.judge.refusal import RefusalJudge


def _llama_guard(**params: Any) -> Judge:
    """Imported on use: backtrack.judge.llama_guard needs torch and transformers."""
    from backtrack.judge.llama_guard import LlamaGuardJudge

    return LlamaGuardJudge(**params)


JUDGES: dict[str, Callable[..., Judge]] = {"refusal": RefusalJudge, "llama_guard": _llama_guard}


def make_judge(name: str, params: Mapping[str, Any], precision: str | None = None) -> Judge:
    """Build a judge from config, failing loudly on names or parameters it does not know.

    A parameter set to None is left out: config/paper.yaml, merged into config.yaml key by
    key, cannot otherwise drop an option of the embedded default's judge. A judge that runs a
    model takes its ``dtype`` from the ``precision`` policy unless the parameters set one.
    """
    if name not in JUDGES:
        known = ", ".join(sorted(JUDGES))
        raise ValueError(f"unknown judge {name!r}; known judges: {known}")
    params = {k: v for k, v in params.items() if v is not None}
    if name != "refusal" and precision is not None and "dtype" not in params:
        from backtrack.models.precision import DTYPE_NAMES, resolve_precision

        params["dtype"] = DTYPE_NAMES[resolve_precision(precision)]
    try:
        return JUDGES[name](**params)
    except TypeError as err:
        raise ValueError(f"bad parameters for judge {name!r}: {err}") from err
