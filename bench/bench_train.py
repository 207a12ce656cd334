"""RM training throughput: rewardlab vs TRL's RewardTrainer vs a plain PyTorch loop, same work.

Same model config, tokenizer, data, batch size, learning rate, epochs and seed for every contender;
each runs in its own process (peak memory is per process). Prints pairs/s, peak RSS and held-out
accuracy, and the ratio of each to TRL with its defaults, all measured in this run.

    python bench/bench_train.py                 # every contender, writes bench/results/train.json + .md
    python bench/bench_train.py --only rewardlab-bf16 trl-bf16
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timer, build, emit, read_pairs, run_contender, save_results  # noqa: E402

from rewardlab.runtime import cpu_has_fast_bf16  # noqa: E402

BATCH, EPOCHS, SEED, MAX_LENGTH = 16, 2, 0, 256
# bench/bench_gpu.py runs the same contenders on a CUDA GPU with a ~0.5B config (BENCH_DEVICE=cuda BENCH_SIZE=0.5b)
DEVICE, SIZE = os.environ.get("BENCH_DEVICE", "cpu"), os.environ.get("BENCH_SIZE", "mini")
LR = float(os.environ.get("BENCH_LR", "5e-4"))
# "default" = each tool with its own default precision: TRL bf16 mixed precision, rewardlab `auto`.
CONTENDERS = ["trl-default", "trl-fp32", "rewardlab-default", "rewardlab-fullpool", "rewardlab-nomalloc", "rewardlab-groups1", "plain-fp32"]
MAX_STEPS = int(os.environ.get("BENCH_MAX_STEPS", "0")) or None  # quick look: stop each contender after N optimizer steps


def capped(precision: str) -> int | None:
    """bf16 on a CPU without AVX-512 BF16 runs ~100× slower than fp32: measure its rate on a few steps only."""
    if precision == "bf16" and DEVICE == "cpu" and not cpu_has_fast_bf16():
        return min(MAX_STEPS or 6, 6)
    return MAX_STEPS


def joined(p: dict, response: str) -> str:
    return p["prompt"] + " " + response


def run_trl(paths: dict, precision: str) -> dict:
    import datasets
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tok = AutoTokenizer.from_pretrained(paths["model"])
    model = AutoModelForSequenceClassification.from_pretrained(paths["model"], num_labels=1)
    rows = lambda f: datasets.Dataset.from_list([{"prompt": p["prompt"] + " ", "chosen": p["chosen"], "rejected": p["rejected"]}
                                                for p in read_pairs(f)])
    train, test = rows(paths["train"]), rows(paths["test"])
    out = tempfile.mkdtemp()
    steps = capped("bf16" if precision == "default" else precision)  # TRL's default: bf16 mixed precision
    extra = {} if precision == "default" else {"bf16": False}
    args = RewardConfig(output_dir=out, per_device_train_batch_size=BATCH, per_device_eval_batch_size=32, learning_rate=LR,
                        num_train_epochs=EPOCHS, seed=SEED, save_strategy="no", report_to="none", max_steps=steps or -1,
                        logging_steps=50, max_length=MAX_LENGTH, use_cpu=DEVICE == "cpu", dataloader_num_workers=0, **extra)
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, eval_dataset=test, processing_class=tok)
    with Timer() as t:
        trainer.train()
    n_pairs = trainer.state.global_step * BATCH if steps else len(train) * EPOCHS
    acc = None if steps else trainer.evaluate()["eval_accuracy"]
    return {"pairs_per_s": n_pairs / t.seconds, "train_seconds": t.seconds, "accuracy": acc, "precision": "bf16" if args.bf16 else "fp32",
            "steps": trainer.state.global_step}


def run_rewardlab(paths: dict, precision: str) -> dict:
    from rewardlab.config import TrainConfig
    from rewardlab.train.loop import train

    from rewardlab.runtime import resolve_precision

    out = tempfile.mkdtemp()
    # default, fp32, compiled, gc, chunksN (N forwards per batch), groupsN (backward per N groups of pairs),
    # fullpool (last layer at every token), nomalloc (glibc's default allocator settings)
    variant = precision
    if variant == "fullpool":
        from rewardlab.models.reward_model import RewardModel

        RewardModel.pooled_last_layer = False
    mp = "auto" if variant.startswith(("chunks", "groups")) or variant in ("default", "gc", "fullpool", "nomalloc") else "no" if variant in ("fp32", "compiled") else variant
    steps = capped(resolve_precision(mp))
    cfg = TrainConfig(data=str(paths["train"]), eval_data=str(paths["test"]), model=str(paths["model"]), output=out, loss="bt",
                      batch_size=BATCH, lr=LR, epochs=EPOCHS, seed=SEED, warmup_ratio=0.0, max_length=MAX_LENGTH, max_steps=steps,
                      mixed_precision=mp, progress=False, save_every=10**9, eval_split=0.0, eval_every=10**9,  # held-out eval after the timed loop, as for TRL
                      compile=precision == "compiled",  # torch.compile (dynamic shapes); its compile time is inside the timed loop
                      gradient_checkpointing=precision == "gc",  # gc: recompute activations (TRL's default), less memory
                      **({"length_chunks": int(variant[6:])} if variant.startswith("chunks") else {}),
                      **({"backward_groups": int(variant[6:])} if variant.startswith("groups") else {}))
    meta = train(cfg, log=lambda *a: None)
    return {"pairs_per_s": meta["train"]["examples_per_second"], "train_seconds": meta["train"]["seconds"],
            "accuracy": None if steps else meta["metrics"]["accuracy"], "precision": meta["mixed_precision"], "steps": meta["update"]}


def run_plain(paths: dict, precision: str) -> dict:
    """A plain loop as a user would write it: random batches, chosen+rejected padded together, fp32 (or bf16 autocast)."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(SEED)
    tok = AutoTokenizer.from_pretrained(paths["model"])
    model = AutoModelForSequenceClassification.from_pretrained(paths["model"], num_labels=1).to(DEVICE)
    autocast = torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=precision == "bf16")
    train = read_pairs(paths["train"])
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    steps = EPOCHS * ((len(train) + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    model.train()
    step = 0
    with Timer() as t:
        for epoch in range(EPOCHS if not MAX_STEPS else 1):
            order = torch.randperm(len(train)).tolist()
            for i in range(0, len(order), BATCH):
                b = [train[j] for j in order[i: i + BATCH]]
                enc = tok([joined(p, p["chosen"]) for p in b] + [joined(p, p["rejected"]) for p in b], padding=True,
                          truncation=True, max_length=MAX_LENGTH, return_tensors="pt").to(DEVICE)
                with autocast:
                    r = model(**enc).logits.squeeze(-1).float()
                loss = -F.logsigmoid(r[: len(b)] - r[len(b):]).mean()
                loss.backward()
                opt.step(), sched.step(), opt.zero_grad()
                step += 1
                if MAX_STEPS and step >= MAX_STEPS:
                    break
    if MAX_STEPS:
        return {"pairs_per_s": step * BATCH / t.seconds, "train_seconds": t.seconds, "accuracy": None, "precision": precision, "steps": step}
    model.eval()
    test = read_pairs(paths["test"])
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test), 32):
            b = test[i: i + 32]
            enc = tok([joined(p, p["chosen"]) for p in b] + [joined(p, p["rejected"]) for p in b], padding=True,
                      truncation=True, max_length=MAX_LENGTH, return_tensors="pt").to(DEVICE)
            with autocast:
                r = model(**enc).logits.squeeze(-1).float()
            correct += (r[: len(b)] > r[len(b):]).sum().item()
    return {"pairs_per_s": len(train) * EPOCHS / t.seconds, "train_seconds": t.seconds, "accuracy": correct / len(test),
            "precision": precision, "steps": step}


RUNNERS = {"trl": run_trl, "rewardlab": run_rewardlab, "plain": run_plain}


def contender(name: str) -> None:
    kind, precision = name.split("-")
    if kind == "rewardlab" and precision != "nomalloc":  # as the `rewardlab` command line sets up its process
        from rewardlab.runtime import tune_allocator

        tune_allocator()
    paths = build(size=SIZE)
    result = RUNNERS[kind](paths, precision)
    emit({"contender": name, **result})


def drive(names: list[str], keep_going: bool = False, timeout: float | None = None) -> list[dict]:
    """Run each contender in its own process; ``keep_going`` records a failure (with its error) and goes on."""
    build(size=SIZE)
    results = []
    for name in names:
        result, failure = run_contender([__file__, "--contender", name], timeout)
        if result is None:
            if not keep_going:
                raise SystemExit(f"{name} failed ({failure})")
            results.append({"contender": name, "failed": failure})
            print(f"{name:18s} FAILED ({failure})", flush=True)
            continue
        results.append(result)
        r = results[-1]
        acc = "–" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        gpu = f"  {r['peak_gpu_mb']:7.0f} MB GPU" if "peak_gpu_mb" in r else ""
        print(f"{name:18s} {r['precision']:5s} {r['steps']:4d} steps {r['pairs_per_s']:7.1f} pairs/s  {r['peak_rss_mb']:7.0f} MB{gpu}  "
              f"accuracy {acc}", flush=True)
    return results


def table(results: list[dict]) -> str:
    by = {r["contender"]: r for r in results if "failed" not in r}
    gpu = any("peak_gpu_mb" in r for r in results)
    lines = ["| contender | precision | steps | pairs/s | × TRL default | × TRL fp32 | peak RSS MB |" + (" peak GPU MB |" if gpu else "")
             + " held-out accuracy |", "|---|---|---:|---:|---:|---:|---:|" + ("---:|" if gpu else "") + "---:|"]
    for r in results:
        if "failed" in r:
            lines.append(f"| {r['contender']} | failed: {r['failed']} |")
            continue
        ratios = [f"{r['pairs_per_s'] / by[b]['pairs_per_s']:.2f}" if b in by else "–" for b in ("trl-default", "trl-fp32")]
        acc = "– (rate on a few steps only)" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        mem = f" {r['peak_gpu_mb']:.0f} |" if gpu else ""
        lines.append(f"| {r['contender']} | {r['precision']} | {r['steps']} | {r['pairs_per_s']:.1f} | {ratios[0]} | {ratios[1]} | "
                     f"{r['peak_rss_mb']:.0f} |{mem} {acc} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contender", help=argparse.SUPPRESS)
    ap.add_argument("--only", nargs="*", default=None, help=f"subset of {CONTENDERS}")
    ap.add_argument("--results", default="train", help="stem of the files written under bench/results (default train)")
    args = ap.parse_args()
    if args.contender:
        return contender(args.contender)
    results = drive(args.only or CONTENDERS)
    setup = {"batch_size": BATCH, "lr": LR, "epochs": EPOCHS, "seed": SEED, "max_length": MAX_LENGTH,
             "cpu_fast_bf16": cpu_has_fast_bf16(), "max_steps": MAX_STEPS}
    save_results(args.results, setup, results, table(results))

if __name__ == "__main__":
    main()
