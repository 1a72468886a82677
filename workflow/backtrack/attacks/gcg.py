"""Greedy Coordinate Gradient (Zou et al. 2023), as HarmBench and nanoGCG run it: the gradient of
the loss with respect to a one-hot suffix through the embedding matrix, top-k candidate tokens per
position, a batch of single-token swaps scored exactly, keep the best.

Differences from nanoGCG 0.3 (why it is written here): the prefix KV cache works with
transformers 5 ``DynamicCache``; the loss is a parameter (the adaptive attack adds a ``[RESET]``
term); the banned set covers ``[RESET]``, every special token and every row beyond the base
vocabulary; only the positions that predict the target go through the LM head; and
``accelerate.find_executable_batch_size`` halves the candidate batch when memory runs out.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from accelerate.utils import find_executable_batch_size
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from backtrack.attacks.scoring import (
    ChatSlots,
    LossFn,
    extend_cache,
    prefix_cache,
    segment_logits,
    target_loss,
)


def derived_seed(seed: int, key: str) -> int:
    """A 63-bit seed from ``(seed, key)``, stable across processes (``hash`` is salted)."""
    return int.from_bytes(hashlib.sha256(f"{seed}-{key}".encode()).digest()[:8], "big") >> 1


@dataclass
class GCGConfig:
    """Search budget and shape; HarmBench's defaults are 500 steps, width 512, top-k 256 and a
    20-token suffix of ``"!"``.
    """

    steps: int = 500
    search_width: int = 512
    topk: int = 256
    n_replace: int = 1
    suffix_init: str = " ".join(["!"] * 20)
    allow_non_ascii: bool = False
    loss: str = "ce"  # target loss: "ce" (HarmBench's) or "cw" (see scoring.target_cw)
    cw_margin: float = 1.0  # the cw loss's floor, in logits
    batch_size: int | None = None  # candidates per forward pass; None = the whole width
    use_prefix_cache: bool = True
    eval_every: int = 10  # steps between success checks (generate + judge)
    max_seconds: float | None = None  # wall-clock budget per prompt
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "search_width", "topk", "n_replace", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"gcg.{name} must be >= 1, got {getattr(self, name)}")
        if self.cw_margin <= 0:
            raise ValueError(f"gcg.cw_margin must be > 0, got {self.cw_margin}")
        target_loss(self.loss, self.cw_margin)  # names the key if the loss is unknown

    def target_loss(self) -> LossFn:
        """The configured target loss."""
        return target_loss(self.loss, self.cw_margin)


@dataclass
class GCGResult:
    """The best suffix found and how the search went."""

    suffix: str
    suffix_ids: list[int]
    loss: float
    losses: list[float] = field(default_factory=list)  # loss of the kept suffix at each step
    steps: int = 0
    stopped: str = "budget_steps"  # success | budget_steps | budget_time | no_candidates
    seconds: float = 0.0


@dataclass(frozen=True)
class Round:
    """One round of a longer search (the adaptive attack's): start from ``suffix`` (token ids;
    None: ``suffix_init``), run ``steps`` steps (None: ``cfg.steps``) and stop at ``deadline``
    (an absolute ``clock()`` time; None: only ``cfg.max_seconds``)."""

    suffix: torch.Tensor | None = None
    steps: int | None = None
    deadline: float | None = None


def sample_candidates(
    suffix: torch.Tensor,
    grad: torch.Tensor,
    banned: torch.Tensor,
    width: int,
    topk: int,
    n_replace: int,
    gen: torch.Generator,
) -> torch.Tensor:
    """``width`` copies of ``suffix`` with ``n_replace`` random positions each set to one of the
    ``topk`` tokens whose gradient most lowers the loss there (nanoGCG's sampler).
    """
    grad = grad.clone()
    grad[:, banned.to(grad.device)] = float("inf")
    top = (-grad).topk(topk, dim=1).indices  # (L, k)
    length = suffix.numel()
    pos = torch.argsort(torch.rand(width, length, generator=gen), dim=1)[:, :n_replace]
    pick = torch.randint(0, topk, (width, n_replace), generator=gen)
    pos, pick = pos.to(top.device), pick.to(top.device)
    cands = suffix[None].repeat(width, 1)
    cands.scatter_(1, pos, top[pos, pick])
    return cands


#: Candidate scoring with a shared suffix prefix uses at least this many batches (sorted by the
#: first changed position, each batch skips the tokens all its candidates share): more batches
#: skip more tokens but multiply smaller matrices. Four skip about 3/8 of the suffix.
SHARE_GROUPS = 4


def first_change(cands: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Per candidate, the first position where it differs from ``current`` (its length if none)."""
    diff = cands != current[None]
    return torch.where(diff.any(dim=1), diff.int().argmax(dim=1), cands.shape[1])


def retokenizes(tok: PreTrainedTokenizerBase, cands: torch.Tensor) -> torch.Tensor:
    """Mask of candidates whose ids come back unchanged from decode then encode: the attack is
    delivered as text, so a suffix that re-tokenises differently is not the one optimised.
    """
    texts = tok.batch_decode(cands)
    keep = [
        tok(t, add_special_tokens=False).input_ids == row
        for t, row in zip(texts, cands.tolist(), strict=True)
    ]
    return torch.tensor(keep, dtype=torch.bool, device=cands.device)


class GCG:
    """GCG against one model; :meth:`optimise` runs one prompt (and can resume from a suffix)."""

    def __init__(
        self,
        model: PreTrainedModel,
        tok: PreTrainedTokenizerBase,
        cfg: GCGConfig,
        banned: torch.Tensor,
    ) -> None:
        self.model, self.tok, self.cfg = model, tok, cfg
        self.banned = banned
        self.embed = model.get_input_embeddings()
        self.gen = torch.Generator().manual_seed(cfg.seed)
        # find_executable_batch_size remembers the halved size across calls.
        self._batch = cfg.batch_size or cfg.search_width

    def reseed(self, key: str) -> None:
        """Restart the candidate sampler from ``(cfg.seed, key)``: with the prompt id as key, a
        prompt's search does not depend on which prompts ran before it in this process (so a
        resumed or sharded run gives the same transcript as one uninterrupted run).
        """
        self.gen = torch.Generator().manual_seed(derived_seed(self.cfg.seed, key))

    def encode_suffix(self, text: str) -> torch.Tensor:
        ids = self.tok(text, add_special_tokens=False).input_ids
        bad = sorted(set(ids) & set(self.banned.tolist()))
        if bad:
            raise ValueError(f"gcg.suffix_init holds banned token ids {bad}")
        return torch.tensor(ids, dtype=torch.long, device=self.embed.weight.device)

    def gradient(
        self, slots: ChatSlots, suffix: torch.Tensor, loss_fn: LossFn, cache: DynamicCache | None
    ) -> torch.Tensor:
        """d loss / d one-hot(suffix), shape ``(L, V)``."""
        w = self.embed.weight
        one_hot = torch.zeros(suffix.numel(), w.shape[0], dtype=w.dtype, device=w.device)
        one_hot.scatter_(1, suffix[:, None], 1.0)
        one_hot.requires_grad_(True)
        logits = segment_logits(self.model, slots, (one_hot @ w)[None], cache)
        loss = loss_fn(logits, slots.segment).sum()
        (grad,) = torch.autograd.grad(loss, one_hot)
        return grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def losses(
        self,
        slots: ChatSlots,
        cands: torch.Tensor,
        loss_fn: LossFn,
        cache: DynamicCache | None,
        current: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Exact loss of every candidate, in batches that halve when memory runs out.

        With a prefix ``cache`` and ``current`` (the suffix the candidates were drawn from), the
        candidates are sorted by the first position where they differ from ``current`` and
        scored in at least :data:`SHARE_GROUPS` batches; each batch starts at the first position
        any of its candidates changes, on the cache of prefix + the suffix tokens before it
        (:func:`extend_cache`). Same losses up to rounding, fewer tokens: a single-token swap
        leaves on average half the suffix unchanged.
        """
        n = cands.shape[0]
        share = cache is not None and current is not None
        if share:
            first = first_change(cands, current)
            order = torch.argsort(first, stable=True)
        else:
            order = torch.arange(n, device=cands.device)

        # Halve on out-of-memory as HarmBench does (accelerate's default shrinks by 10%).
        @find_executable_batch_size(
            starting_batch_size=self._batch, reduce_batch_size_fn=lambda: self._batch // 2
        )
        def run(batch_size: int) -> torch.Tensor:
            self._batch = batch_size
            size = min(batch_size, -(-n // SHARE_GROUPS)) if share else batch_size
            out = torch.empty(n, dtype=torch.float32, device=cands.device)
            for i in range(0, n, size):
                idx = order[i : i + size]
                chunk, part, part_cache = cands[idx], slots, cache
                k = int(first[idx].min()) if share else 0
                if k:
                    part = slots.with_before(torch.cat([slots.before, current[:k]]))
                    part_cache = extend_cache(self.model, cache, current[:k], slots.before.numel())
                logits = segment_logits(self.model, part, self.embed(chunk[:, k:]), part_cache)
                out[idx] = loss_fn(logits, slots.segment).float()
            return out

        return run()

    def optimise(
        self,
        slots: ChatSlots,
        *,
        loss_fn: LossFn | None = None,
        part: Round | None = None,
        check_fn: Callable[[str], bool] | None = None,
        on_step: Callable[[int, float, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> GCGResult:
        """Run GCG steps: ``cfg.steps`` from ``suffix_init``, or one :class:`Round` (``part``).

        ``check_fn(suffix_text) -> bool`` is called every ``eval_every`` steps and at the end
        (generate and judge; True = jailbroken) and stops the search on success;
        ``cfg.max_seconds`` applies from the start of this call. ``loss_fn`` defaults to the
        configured target loss (``cfg.loss``).
        """
        cfg = self.cfg
        loss_fn = loss_fn if loss_fn is not None else cfg.target_loss()
        part = part or Round()
        suffix, steps, deadline = part.suffix, part.steps, part.deadline
        start = clock()
        if cfg.max_seconds is not None:
            deadline = min(deadline or float("inf"), start + cfg.max_seconds)
        self.model.eval()
        cache = prefix_cache(self.model, slots.before) if cfg.use_prefix_cache else None
        cur = self.encode_suffix(cfg.suffix_init) if suffix is None else suffix.clone()
        with torch.no_grad():
            cur_loss = float(self.losses(slots, cur[None], loss_fn, cache)[0])
        best_ids, best_loss = cur.clone(), cur_loss
        result = GCGResult("", [], cur_loss, steps=0)
        for step in range(steps if steps is not None else cfg.steps):
            grad = self.gradient(slots, cur, loss_fn, cache)
            cands = sample_candidates(
                cur, grad, self.banned, cfg.search_width, cfg.topk, cfg.n_replace, self.gen
            )
            cands = cands[retokenizes(self.tok, cands)]
            if cands.shape[0] == 0:
                result.stopped = "no_candidates"
                break
            losses = self.losses(slots, cands, loss_fn, cache, current=cur)
            i = int(losses.argmin())
            cur, cur_loss = cands[i], float(losses[i])
            result.losses.append(cur_loss)
            result.steps = step + 1
            if cur_loss < best_loss:
                best_ids, best_loss = cur.clone(), cur_loss
            text = self.tok.decode(cur)
            if on_step:
                on_step(step, cur_loss, text)
            if check_fn and (step + 1) % cfg.eval_every == 0 and check_fn(text):
                best_ids, best_loss, result.stopped = cur.clone(), cur_loss, "success"
                break
            if deadline is not None and clock() >= deadline:
                result.stopped = "budget_time"
                break
        result.suffix_ids = best_ids.tolist()
        result.suffix = self.tok.decode(best_ids)
        result.loss = best_loss
        if result.stopped != "success" and check_fn and check_fn(result.suffix):
            result.stopped = "success"
        result.seconds = clock() - start
        return result
