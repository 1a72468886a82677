"""Time SFT and DPO training steps at the embedded default's shapes, variants interleaved.

    snakemake --cores all results/data/train/smollm2-135m/seed0/dpo_backtrack.jsonl \\
        results/models/smollm2-135m/backtrack/seed0/sft                 # the data and models, once
    python tools/benchmark_train_step.py --stage sft --method backtrack --threads 1
    python tools/benchmark_train_step.py --stage dpo --variants trl compact compact+eager
    python tools/benchmark_train_step.py --variants compact prefix --dir /path/to/a/finished/run

One trainer is built exactly as the ``train_sft``/``train_dpo`` job builds it (TRL's SFTTrainer or
DPOTrainer, config.yaml's hyperparameters, ``precision: auto``), on the job's real data. Each of
its batches then runs once per variant, the variants in turn and their order rotating from batch
to batch, so a shared machine's load falls on all of them alike: ``Trainer.training_step``
(forward and backward under the trainer's autocast) and the optimizer step. A variant is a set of
switches on the same model:

- ``trl``: TRL's fused LM head as the trainer installed it (every position projected on a CPU);
- ``compact``: :func:`backtrack.train.lm_head.compact_lm_head` (labelled positions only), the
  whole batch through the backbone;
- ``prefix``: the compact head, with the batch's common leading tokens through the backbone once
  (:mod:`backtrack.train.shared_prefix`), as the jobs run;
- ``+eager``: transformers' eager attention instead of SDPA;
- ``+grouped``: :mod:`backtrack.models.attention`'s grouped attention (eager's arithmetic
  without copying key/value heads) instead of SDPA.

Process CPU time is printed beside wall time (other load skews the wall clock more); the first
``--warmup`` batches are not counted. Medians over the counted batches, and each variant's
median ratio to the first variant, batch by batch.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--stage", choices=["sft", "dpo"], default="sft")
    ap.add_argument("--method", choices=["baseline", "backtrack"], default="backtrack")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=1, help="1: as each lane of a 2-core run")
    ap.add_argument("--batches", type=int, default=6, help="counted batches")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--variants", nargs="+", default=["trl", "compact"])
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--dir", type=Path, default=ROOT, help="the run whose data and models to use")
    ap.add_argument(
        "--profile", action="store_true", help="then torch.profiler's table of one step per variant"
    )
    args = ap.parse_args()

    import backtrack.train.trainers as training
    import torch
    import yaml
    from backtrack.bench import rotated, timed
    from backtrack.io import read_jsonl
    from backtrack.models.attention import NAME as GROUPED
    from backtrack.models.precision import Precision
    from backtrack.train.lm_head import MARK, compact_lm_head
    from backtrack.train.spec import TrainSettings

    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load((args.dir / "config.yaml").read_text())
    params = dict(cfg[args.stage], precision=args.precision, reset_token=cfg["reset_token"])
    models = args.dir / "results/models" / args.model
    data = read_jsonl(
        args.dir / f"results/data/train/{args.model}/seed0/{args.stage}_{args.method}.jsonl"
    )
    model_dir = models / ("base" if args.stage == "sft" else f"{args.method}/seed0/sft")
    grabbed = {}

    def keep(trainer, *a, **k):
        grabbed["trainer"] = trainer
        raise StopIteration

    training._train_and_save = keep  # the trainer as built, not trained
    training.compact_lm_head = lambda m, autocast: m  # each variant switches the head itself
    run = training.run_sft if args.stage == "sft" else training.run_dpo
    settings = TrainSettings(seed=0, dtype="float32", precision=Precision.resolve(args.precision))
    with contextlib.suppress(StopIteration):
        run(str(model_dir), data, tempfile.mkdtemp(), params, settings)
    trainer = grabbed["trainer"]
    nets = [trainer.model] + ([trainer.ref_model] if args.stage == "dpo" else [])
    trl_forward = [m.forward for m in nets]
    autocast = trainer.accelerator.autocast

    def compact(shared_prefix: bool) -> list:
        forwards = []
        for m, f in zip(nets, trl_forward, strict=True):
            m.forward = f
            setattr(m, MARK, False)
            forwards.append(compact_lm_head(m, autocast, shared_prefix=shared_prefix).forward)
        return forwards

    heads = {"trl": trl_forward, "compact": compact(False), "prefix": compact(True)}

    def switch(variant: str) -> None:
        name = next((h for h in ("prefix", "compact") if h in variant), "trl")
        for m, f in zip(nets, heads[name], strict=True):
            m.forward = f
            attn = "eager" if "eager" in variant else "sdpa"
            m.set_attn_implementation(GROUPED if "grouped" in variant else attn)

    trainer.create_optimizer_and_scheduler(num_training_steps=1000)
    trainer.current_gradient_accumulation_steps = 1  # set by train(), which is not run here
    opt, model = trainer.optimizer, trainer.model
    model.train()
    times = {v: [] for v in args.variants}
    batches = iter(trainer.get_train_dataloader())

    def step(batch: dict) -> None:
        with autocast():  # what train() adds to the policy's forward (accelerate's prepare)
            trainer.training_step(model, dict(batch))
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(args.warmup + args.batches):
        batch = next(batches)
        for v in rotated(args.variants, i):
            switch(v)
            _, wall, cpu = timed(lambda b=batch: step(b))
            if i >= args.warmup:
                times[v].append((wall, cpu))
    shape = tuple(batch["input_ids"].shape)
    print(f"{args.stage} {args.method}, {args.threads} thread(s), last batch {shape}")
    base = times[args.variants[0]]
    for v, t in times.items():
        wall = statistics.median(a for a, _ in t)
        cpu = statistics.median(b for _, b in t)
        ratio = statistics.median(b / b0 for (_, b), (_, b0) in zip(t, base, strict=True))
        print(f"{v:>16}: step wall {wall:6.2f} s, cpu {cpu:6.2f} s, cpu / first {ratio:.2f}")
    for v in args.variants if args.profile else []:
        switch(v)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            step(batch)
        print(f"\n{v}, one step:")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
