"""Judges by name, as the config names them (``judge.name``, ``pool.label_judge.name``).

Kept apart from the judges themselves so that the pattern judge is built without importing
torch; the options each judge takes are in :mod:`backtrack.catalog` (config validation reads
them there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from backtrack.judge.base import Judge
from backtrack.judge.refusal import RefusalJudge

if TYPE_CHECKING:
    from backtrack.models.precision import Precision


def _llama_guard(**params: Any) -> Judge:
    """Imported on use: backtrack.judge.llama_guard needs torch and transformers."""
    from backtrack.judge.llama_guard import LlamaGuardJudge

    return LlamaGuardJudge(**params)


JUDGES: dict[str, Callable[..., Judge]] = {"refusal": RefusalJudge, "llama_guard": _llama_guard}


def make_judge(
    name: str,
    params: Mapping[str, Any],
    *,
    reset_token: str,
    precision: Precision | None = None,
) -> Judge:
    """Build a judge from config, failing loudly on names or parameters it does not know.

    A parameter set to None is left out: config/paper.yaml, merged into config.yaml key by
    key, cannot otherwise drop an option of the embedded default's judge. ``reset_token`` is the
    configured token, which no visible answer the judge is given may hold. A judge that runs a
    model loads it in the job's resolved ``precision`` unless the parameters set a ``dtype``
    (the pattern judge takes none; None leaves the judge's own default).
    """
    if name not in JUDGES:
        known = ", ".join(sorted(JUDGES))
        raise ValueError(f"unknown judge {name!r}; known judges: {known}")
    if not reset_token:
        raise ValueError(f"judge {name!r}: no reset token given (config key 'reset_token')")
    params = {k: v for k, v in params.items() if v is not None}
    if name != "refusal" and precision is not None and "dtype" not in params:
        params["dtype"] = precision.dtype_name
    try:
        judge = JUDGES[name](**params)
    except TypeError as err:
        raise ValueError(f"bad parameters for judge {name!r}: {err}") from err
    judge.reset_token = reset_token
    return judge
