"""Paper-scale datasets (OASST2, HH-RLHF harmless, four harmful prompt sets) via ``datasets``.

Every loader takes *where* the data is: a hub id (the default, listed below) or a
local path, either a directory written by ``save_to_disk`` or data files (csv, json, jsonl, parquet;
a directory of them too). Local paths let the paper scale run on machines without hub access: fetch
once elsewhere, copy, and point the config key at the copy. The output is the project's record
format (``id``, ``prompt``, ``source``, ``harmful`` + source fields) in a deterministic order with
stable ids, so that cached files downstream only change when the data does.

Failures to reach the hub are turned into :class:`HubDataError`, whose message says what to do
(accept a licence, log in, or use a local copy) instead of a deep ``datasets`` traceback.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import huggingface_hub
import huggingface_hub.constants
import huggingface_hub.utils
from datasets.exceptions import DatasetNotFoundError
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)

from .sources import _record

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

OASST2_ID = "OpenAssistant/oasst2"
HH_RLHF_ID = "Anthropic/hh-rlhf"
HH_HARMLESS_DIR = "harmless-base"
ADVBENCH_ID = "walledai/AdvBench"
MALICIOUS_INSTRUCTIONS_ID = "walledai/SafetyDatasets"
MALICIOUS_INSTRUCTIONS_CONFIG = "MaliciousInstructions"
SIMPLE_SAFETY_TESTS_ID = "Bertievidgen/SimpleSafetyTests"
STRONGREJECT_ID = "walledai/StrongREJECT"

_DATA_FILE_BUILDERS = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".arrow": "arrow",
}
_SAVED_MARKERS = ("dataset_dict.json", "state.json")
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
_TRUE = {"1", "ON", "YES", "TRUE"}
# httpx2 (huggingface_hub >= 1.x) or httpx: its transport errors mean "no network".
_httpx = getattr(huggingface_hub.utils, "httpx", None)
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    (_httpx.TransportError,) if _httpx is not None and hasattr(_httpx, "TransportError") else ()
)


class HubDataError(RuntimeError):
    """A hub dataset could not be loaded; the message says how to get it.

    ``reason`` is ``"gated"`` (HTTP 401/403, licence not accepted or no token), ``"unreachable"``
    (offline mode or no network, and not in the local cache) or ``"not_found"``.
    """

    def __init__(self, message: str, *, dataset: str, reason: str) -> None:
        super().__init__(message)
        self.dataset = dataset
        self.reason = reason


class HubRecords(list[dict[str, Any]]):
    """Records (a plain list of dicts) plus what was skipped and why.

    Skips are data decisions (deleted messages, malformed transcripts); counting them keeps them
    visible in logs and tests instead of silently shrinking the data.
    """

    def __init__(
        self,
        records: Iterable[dict[str, Any]] = (),
        skipped: Counter[str] | None = None,
        dataset: str = "",
    ) -> None:
        super().__init__(records)
        self.skipped: Counter[str] = Counter() if skipped is None else skipped
        self.dataset = dataset


# --------------------------------------------------------------------------- loading and errors


def _is_local(path: PathLike) -> bool:
    return os.path.exists(os.path.expanduser(os.fspath(path)))


def _env_offline() -> bool:
    return any(
        os.environ.get(k, "").strip().upper() in _TRUE
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


@contextlib.contextmanager
def _honour_offline_env() -> Iterator[None]:
    """Apply HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set after ``datasets`` was imported.

    Both libraries read the variables once, at import; without this a variable set later (a test,
    a long-lived process) is ignored and a load retries the network for ~25 s before failing.
    Only ever switches offline mode on, and restores the previous values.
    """
    if not _env_offline():
        yield
        return
    saved = (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = True
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def _status(e: BaseException) -> int | None:
    response = getattr(e, "response", None)
    return getattr(response, "status_code", None)


def classify_hub_error(exc: BaseException) -> str | None:
    """``gated``, ``unreachable``, ``not_found`` or None (not a hub access problem).

    ``datasets`` 5 re-raises hub errors as its own classes and drops their cause (``from None``),
    so gated access survives only as a :class:`DatasetNotFoundError` whose message says "gated".
    """
    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, GatedRepoError) or (
            isinstance(e, HfHubHTTPError) and _status(e) in (401, 403)
        ):
            return "gated"
        if isinstance(e, DatasetNotFoundError) and "gated" in str(e).lower():
            return "gated"
    unreachable = (
        OfflineModeIsEnabled,
        ConnectionError,
        TimeoutError,
        LocalEntryNotFoundError,
        *_TRANSPORT_ERRORS,
    )
    if any(isinstance(e, unreachable) for e in chain):
        return "unreachable"
    if any(isinstance(e, (DatasetNotFoundError, RepositoryNotFoundError)) for e in chain):
        return "not_found"
    if isinstance(exc, FileNotFoundError):
        return "not_found"
    return None


def hub_error_message(dataset: str, reason: str, cause: BaseException) -> str:
    """The user-facing explanation for a hub failure, naming the dataset and every way out."""
    page = f"https://huggingface.co/datasets/{dataset}"
    lead = {
        "gated": f"dataset {dataset!r} is gated or needs authentication (HTTP 401/403)",
        "unreachable": (
            f"dataset {dataset!r} could not be loaded: the Hugging Face Hub cannot be reached "
            "(offline mode or no network) and the dataset is not in the local cache"
        ),
        "not_found": (
            f"dataset {dataset!r} was not found on the Hugging Face Hub or cannot be accessed "
            "(gated and private datasets look missing without a token)"
        ),
    }[reason]
    return (
        f"{lead}. To fix: (1) accept its licence / access conditions on its hub page {page}; "
        "(2) log in with `hf auth login` (older versions: `huggingface-cli login`) or set the "
        "HF_TOKEN environment variable; or (3) download it once on a machine with access, e.g. "
        f"`datasets.load_dataset({dataset!r}).save_to_disk(DIR)` or its data files "
        "(csv/json/jsonl/parquet), copy it here and point the config key for this dataset at "
        f"that local path. [{type(cause).__name__}: {cause}]"
    )


def _select_split(
    obj: datasets.Dataset | datasets.DatasetDict, split: str | None, where: str
) -> datasets.Dataset:
    """One split, or with ``split=None`` all of them in sorted order (deterministic)."""
    if isinstance(obj, datasets.Dataset):
        return obj
    if split is None:
        return datasets.concatenate_datasets(
            [obj[s].add_column("split", [s] * len(obj[s])) for s in sorted(obj)]
            if len(obj) > 1 and "split" not in obj[next(iter(obj))].column_names
            else [obj[s] for s in obj]
        )
    if split not in obj:
        raise ValueError(f"{where} has no split {split!r}; its splits: {sorted(obj)}")
    return obj[split]


def _load_local(
    path: Path, *, split: str | None, name: str | None, data_dir: str | None, cache_dir: str | None
) -> datasets.Dataset:
    if path.is_file():
        suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
        builder = _DATA_FILE_BUILDERS.get(suffix.removesuffix(".gz"))
        if builder is None:
            raise ValueError(
                f"{path}: unsupported data file type; use one of {sorted(_DATA_FILE_BUILDERS)}"
                " (optionally .gz) or a directory written by save_to_disk"
            )
        # A single file is the split the caller asked for, whatever the file is called.
        return datasets.load_dataset(
            builder, data_files=str(path), split="train", cache_dir=cache_dir
        )
    # A repository snapshot keeps subsets in sub-directories (hh-rlhf/harmless-base/...).
    for sub in (data_dir, name):
        if sub and (path / sub).is_dir():
            path = path / sub
            break
    if any((path / m).is_file() for m in _SAVED_MARKERS):
        return _select_split(datasets.load_from_disk(str(path)), split, str(path))
    dd = datasets.load_dataset(str(path), cache_dir=cache_dir)
    return _select_split(dd, split, str(path))


def load_table(
    path: PathLike,
    *,
    split: str | None = None,
    name: str | None = None,
    data_dir: str | None = None,
    revision: str | None = None,
    cache_dir: PathLike | None = None,
) -> datasets.Dataset:
    """A ``datasets.Dataset`` from a hub id or a local path, with hub failures explained.

    ``split=None`` takes every split (sorted by name, with a ``split`` column when there are
    several). A local data file is taken as the requested split whatever its name. ``name`` (hub
    config) and ``data_dir`` also select a sub-directory of a local snapshot; ``revision`` pins
    the hub commit and is ignored for local paths.
    """
    cache = None if cache_dir is None else os.fspath(cache_dir)
    spath = os.path.expanduser(os.fspath(path))
    if _is_local(spath):
        if revision is not None:
            log.warning("revision %r ignored for the local path %s", revision, spath)
        return _load_local(Path(spath), split=split, name=name, data_dir=data_dir, cache_dir=cache)
    if not _HUB_ID.match(spath) or Path(spath.removesuffix(".gz")).suffix in _DATA_FILE_BUILDERS:
        raise FileNotFoundError(
            f"{spath!r} is neither an existing local path nor a hub dataset id (owner/name)"
        )
    try:
        with _honour_offline_env():
            loaded = datasets.load_dataset(
                spath,
                name=name,
                data_dir=data_dir,
                split=split,
                revision=revision,
                cache_dir=cache,
            )
    except Exception as e:
        reason = classify_hub_error(e)
        if reason is None:
            raise
        raise HubDataError(hub_error_message(spath, reason, e), dataset=spath, reason=reason) from e
    return _select_split(loaded, split, spath)


def _rows(ds: datasets.Dataset, columns: Sequence[str]) -> list[dict[str, Any]]:
    keep = [c for c in columns if c in ds.column_names]
    return ds.select_columns(keep).to_list()


def _require(ds: datasets.Dataset, dataset: str, required: Sequence[str]) -> None:
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"{dataset}: missing column(s) {missing}; columns found: {ds.column_names}"
        )


def _pick(ds: datasets.Dataset, dataset: str, candidates: Sequence[str], what: str) -> str:
    for c in candidates:
        if c in ds.column_names:
            return c
    raise ValueError(
        f"{dataset}: no {what} column (expected one of {list(candidates)}); "
        f"columns found: {ds.column_names}"
    )


def _log_skipped(dataset: str, skipped: Counter[str], kept: int) -> None:
    if skipped:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items()))
        log.warning("%s: kept %d, skipped %d (%s)", dataset, kept, sum(skipped.values()), detail)


# --------------------------------------------------------------------------- OASST2

_OASST_COLUMNS = (
    "message_id",
    "parent_id",
    "text",
    "role",
    "lang",
    "rank",
    "deleted",
    "review_result",
    "message_tree_id",
)
_ROLES = {"prompter": "user", "assistant": "assistant"}


def _rank_key(msg: dict[str, Any], order: int) -> tuple[int, float, int]:
    rank = msg.get("rank")
    return (rank is None, float("inf") if rank is None else float(rank), order)


def _oasst_trees(
    ds: datasets.Dataset, dataset: str
) -> tuple[list[dict[str, Any]], dict[str, list[tuple[int, dict[str, Any]]]], Counter[str]]:
    """Usable English roots (dataset order) and each message's usable children."""
    _require(ds, dataset, ("message_id", "parent_id", "text", "role", "lang"))
    skipped: Counter[str] = Counter()
    roots: list[dict[str, Any]] = []
    children: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for order, m in enumerate(_rows(ds, _OASST_COLUMNS)):
        if m.get("deleted"):
            skipped["deleted message"] += 1
        elif m.get("review_result") is False:
            skipped["failed review"] += 1
        elif m["lang"] != "en":
            skipped["not English"] += 1
        elif m["role"] not in _ROLES:
            skipped["unknown role"] += 1
        elif m["parent_id"] is None:
            if m["role"] == "prompter":
                roots.append(m)
            else:
                skipped["root not a prompter message"] += 1
        else:
            children.setdefault(m["parent_id"], []).append((order, m))
    return roots, children, skipped


def _best_path(
    root: dict[str, Any], children: dict[str, list[tuple[int, dict[str, Any]]]]
) -> list[dict[str, Any]]:
    path = [root]
    while kids := children.get(path[-1]["message_id"]):
        # Best-ranked reply (rank 0, else lowest rank, unranked last; ties: dataset order).
        expected = "assistant" if path[-1]["role"] == "prompter" else "prompter"
        kids = [(o, k) for o, k in kids if k["role"] == expected]
        if not kids:
            break
        path.append(min(kids, key=lambda ok: _rank_key(ok[1], ok[0]))[1])
    if path[-1]["role"] == "prompter":
        path.pop()  # a trailing unanswered user turn teaches nothing
    return path


def _oasst_id(root: dict[str, Any]) -> str:
    return f"oasst2-{root['message_id']}"


def load_oasst2(
    path: PathLike = OASST2_ID,
    *,
    split: str = "train",
    revision: str | None = None,
    cache_dir: PathLike | None = None,
) -> HubRecords:
    """English OASST2 conversations along the best-ranked replies (the paper's utility data).

    OASST2 ships one row per message; conversations are rebuilt from ``parent_id``. Deleted
    messages, failed reviews and non-English messages are dropped (with their subtrees), and at
    each turn the best-ranked reply is followed. The id is the root message's own id, so it does
    not move when other trees are filtered differently.
    """
    dataset = f"OASST2 ({os.fspath(path)}, {split})"
    ds = load_table(path, split=split, revision=revision, cache_dir=cache_dir)
    roots, children, skipped = _oasst_trees(ds, dataset)
    out = HubRecords(skipped=skipped, dataset=dataset)
    for root in roots:
        path_msgs = _best_path(root, children)
        if len(path_msgs) < 2:
            skipped["tree without an assistant reply"] += 1
            continue
        messages = [{"role": _ROLES[m["role"]], "content": m["text"]} for m in path_msgs]
        rec = _record("oasst2", 0, root["text"], harmful=False)
        rec["id"] = _oasst_id(root)
        rec.update(
            messages=messages,
            response=path_msgs[1]["text"],
            message_tree_id=root.get("message_tree_id", root["message_id"]),
        )
        out.append(rec)
    _log_skipped(dataset, skipped, len(out))
    return out


def load_oasst2_safe_prompts(
    path: PathLike = OASST2_ID,
    *,
    split: str = "validation",
    revision: str | None = None,
    cache_dir: PathLike | None = None,
) -> HubRecords:
    """First user turns of English OASST2 validation trees: the paper's "safe queries".

    Answered or not, every usable root counts: only the prompt is needed to measure false
    resets and over-refusal.
    """
    dataset = f"OASST2 ({os.fspath(path)}, {split})"
    ds = load_table(path, split=split, revision=revision, cache_dir=cache_dir)
    roots, _, skipped = _oasst_trees(ds, dataset)
    out = HubRecords(skipped=skipped, dataset=dataset)
    for root in roots:
        rec = _record("oasst2", 0, root["text"], harmful=False)
        rec["id"] = _oasst_id(root)
        rec["message_tree_id"] = root.get("message_tree_id", root["message_id"])
        out.append(rec)
    _log_skipped(dataset, skipped, len(out))
    return out


# --------------------------------------------------------------------------- HH-RLHF harmless

_TURN = re.compile(r"\n\n(Human|Assistant):")


class TranscriptError(ValueError):
    """An HH-RLHF transcript that cannot be split into turns unambiguously."""


def parse_hh_transcript(text: str) -> list[dict[str, str]]:
    """``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` -> ``[{role, content}, ...]``.

    Raises :class:`TranscriptError` rather than guessing: text before the first marker, a first
    turn that is not Human, or turns that do not alternate.
    """
    parts = _TURN.split(text)
    if parts[0].strip():
        raise TranscriptError("text before the first Human/Assistant marker")
    if len(parts) < 3:
        raise TranscriptError("no Human/Assistant turns")
    turns = [
        {"role": "user" if who == "Human" else "assistant", "content": body.strip()}
        for who, body in zip(parts[1::2], parts[2::2], strict=True)
    ]
    if turns[0]["role"] != "user":
        raise TranscriptError("does not start with a Human turn")
    if any(a["role"] == b["role"] for a, b in itertools.pairwise(turns)):
        raise TranscriptError("turns do not alternate")
    return turns


def parse_hh_pair(chosen: str, rejected: str) -> dict[str, Any]:
    """Split a chosen/rejected transcript pair into shared context and the two final replies."""
    c, r = parse_hh_transcript(chosen), parse_hh_transcript(rejected)
    if c[-1]["role"] != "assistant" or r[-1]["role"] != "assistant":
        raise TranscriptError("does not end with an Assistant turn")
    if c[:-1] != r[:-1]:
        raise TranscriptError("chosen and rejected prefixes differ")
    return {
        "messages": c[:-1],
        "prompt": c[-2]["content"],
        "chosen": c[-1]["content"],
        "rejected": r[-1]["content"],
    }


def load_hh_harmless(
    path: PathLike = HH_RLHF_ID,
    *,
    split: str = "train",
    data_dir: str | None = HH_HARMLESS_DIR,
    revision: str | None = None,
    cache_dir: PathLike | None = None,
) -> HubRecords:
    """HH-RLHF harmless-base preference pairs (the paper's safety data); ``test`` is development.

    ``messages`` holds every turn before the final assistant reply (it ends with the last human
    turn, which is also ``prompt``). Harmless-base comes from red-teaming dialogues, hence
    ``harmful=True``. Pairs that do not parse are counted per reason in ``.skipped`` and logged;
    ids count rows before skipping so they stay put when the parser changes.
    """
    dataset = f"HH-RLHF harmless ({os.fspath(path)}, {split})"
    ds = load_table(path, split=split, data_dir=data_dir, revision=revision, cache_dir=cache_dir)
    _require(ds, dataset, ("chosen", "rejected"))
    skipped: Counter[str] = Counter()
    out = HubRecords(skipped=skipped, dataset=dataset)
    for i, row in enumerate(_rows(ds, ("chosen", "rejected"))):
        try:
            parsed = parse_hh_pair(row["chosen"] or "", row["rejected"] or "")
        except TranscriptError as e:
            skipped[str(e)] += 1
            log.debug("%s row %d skipped: %s", dataset, i, e)
            continue
        rec = _record("hh_harmless", i, parsed["prompt"], harmful=True)
        rec["id"] = f"hh_harmless-{split}-{i:05d}"
        rec.update(
            messages=parsed["messages"], chosen=parsed["chosen"], rejected=parsed["rejected"]
        )
        out.append(rec)
    _log_skipped(dataset, skipped, len(out))
    return out


# --------------------------------------------------------------------------- harmful prompt sets


def _prompt_set(
    ds: datasets.Dataset,
    *,
    source: str,
    dataset: str,
    prompt_columns: Sequence[str],
    extras: dict[str, Sequence[str]],
    id_column: str | None = None,
) -> HubRecords:
    """Harmful prompts from one of several known column names, plus optional extra fields."""
    col = _pick(ds, dataset, prompt_columns, "prompt")
    found = {
        field: next((c for c in cols if c in ds.column_names), None)
        for field, cols in extras.items()
    }
    wanted = [col, *(c for c in found.values() if c), "split"]
    if id_column:
        wanted.append(id_column)
    skipped: Counter[str] = Counter()
    out = HubRecords(skipped=skipped, dataset=dataset)
    for i, row in enumerate(_rows(ds, wanted)):
        prompt = row[col]
        if not isinstance(prompt, str) or not prompt.strip():
            skipped["empty prompt"] += 1
            continue
        fields = {f: row[c] for f, c in found.items() if c is not None}
        if "split" in row:
            fields["split"] = row["split"]
        rec = _record(source, i, prompt, harmful=True, **fields)
        if id_column and row.get(id_column) not in (None, ""):
            rec["id"] = f"{source}-{row[id_column]}"
        out.append(rec)
    _log_skipped(dataset, skipped, len(out))
    return out


def load_advbench_hub(
    path: PathLike = ADVBENCH_ID,
    *,
    split: str | None = None,
    revision: str | None = None,
    cache_dir: PathLike | None = None,
) -> HubRecords:
    """AdvBench harmful behaviours (520) from the hub or the original ``harmful_behaviors.csv``.

    Same ``source`` and ids as :func:`backtrack.data.sources.load_advbench`, so the two are
    interchangeable in configs and overlap checks.
    """
    ds = load_table(path, split=split, revision=revision, cache_dir=cache_dir)
    return _prompt_set(
        ds,
        source="advbench",
        dataset=f"AdvBench ({os.fspath(path)})",
        prompt_columns=("prompt", "goal"),
        extras={"target": ("target",)},
    )


def _explode_lists(ds: datasets.Dataset) -> datasets.Dataset:
    """The original I-MaliciousInstructions.json is one object of lists; make it one row each."""
    if ds.num_rows != 1 or "instructions" not in ds.column_names:
        return ds
    row = ds[0]
    if not isinstance(row["instructions"], list):
        return ds
    n = len(row["instructions"])
    cols = {k: v for k, v in row.items() if isinstance(v, list) and len(v) == n}
    return datasets.Dataset.from_dict(cols)


def load_malicious_instructions(
    path: PathLike = MALICIOUS_INSTRUCTIONS_ID,
    *,
    name: str | None = MALICIOUS_INSTRUCTIONS_CONFIG,
    split: str | None = None,
    revision: str | None = None,
    cache_dir: PathLike | None = None,
) -> HubRecords:
    """MaliciousInstructions (Bianchi et al., arXiv 2309.07875; 100 prompts), the paper's set.

    Not MaliciousInstruct (arXiv 2310.06987). Accepts the hub copy or the original
    ``I-MaliciousInstructions.json`` (``{"instructions": [...], "tags": [...]}``).
    """
    ds = _explode_lists(
        load_table(path, split=split, name=name, revision=revision, cache_dir=cache_dir)
    )
    return _prompt_set(
        ds,
        source="malicious_instructions",
        dataset=f"MaliciousInstructions ({os.fspath(path)})",
        prompt_columns=("prompt", "instruction", "instructions"),
        extras={"category": ("category", "tags")},
    )


def load_simple_safety_tests(
    path: PathLike = SIMPLE_SAFETY_TESTS_ID,
    *,
    split: str | None = None,
    revision: str | None = None,
    cache_dir: PathLike | None = None,
) -> HubRecords:
    """SimpleSafetyTests (100 prompts over five harm areas); every split by default.

    The original csv names the prompt ``prompts_final`` and has its own ``id`` (kept in ours);
    walledai's copy calls it ``prompt`` and splits it into ``info``/``instruct``.
    """
    ds = load_table(path, split=split, revision=revision, cache_dir=cache_dir)
    return _prompt_set(
        ds,
        source="simple_safety_tests",
        dataset=f"SimpleSafetyTests ({os.fspath(path)})",
        prompt_columns=("prompts_final", "prompt"),
        extras={"harm_area": ("harm_area",), "category": ("category",)},
        id_column="id",
    )


def load_strongreject(
    path: PathLike = STRONGREJECT_ID,
    *,
    split: str | None = None,
    revision: str | None = None,
    cache_dir: PathLike | None = None,
) -> HubRecords:
    """StrongREJECT forbidden prompts (313) with their category.

    The upstream column ``source`` (where the prompt came from) is kept as ``origin`` since
    ``source`` names the prompt set in our records.
    """
    ds = load_table(path, split=split, revision=revision, cache_dir=cache_dir)
    return _prompt_set(
        ds,
        source="strongreject",
        dataset=f"StrongREJECT ({os.fspath(path)})",
        prompt_columns=("prompt", "forbidden_prompt"),
        extras={"category": ("category",), "origin": ("source",)},
    )


# --------------------------------------------------------------------------- registry

HUB_SOURCES: dict[str, Callable[..., HubRecords]] = {
    "oasst2": load_oasst2,
    "oasst2_safe": load_oasst2_safe_prompts,
    "hh_harmless": load_hh_harmless,
    "advbench": load_advbench_hub,
    "malicious_instructions": load_malicious_instructions,
    "simple_safety_tests": load_simple_safety_tests,
    "strongreject": load_strongreject,
}


def load_hub_source(name: str, *, config_key: str | None = None, **kwargs: Any) -> HubRecords:
    """Load a paper-scale source by name; ``config_key`` is named in hub errors as the fix."""
    try:
        loader = HUB_SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown hub source {name!r}; known: {sorted(HUB_SOURCES)}") from None
    try:
        return loader(**kwargs)
    except HubDataError as e:
        if config_key is None:
            raise
        msg = str(e).replace("the config key for this dataset", f"the config key {config_key!r}")
        raise HubDataError(msg, dataset=e.dataset, reason=e.reason) from e
