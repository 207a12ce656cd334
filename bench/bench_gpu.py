"""GPU benchmarks: a ~0.5B Llama-style RM config (random weights) in bf16 on one CUDA GPU.

The same contenders as bench_train.py (rewardlab, TRL's RewardTrainer with its defaults, a plain loop)
on the same data, tokenizer, batch size, learning rate, epochs and seed, each in its own process, plus
scoring (rewardlab vs a transformers pipeline, bf16 weights, same batch size) and the achieved FLOP
rate against the bf16 and fp32 matrix-multiply peaks measured here first.

    python bench/bench_gpu.py                  # writes bench/results/gpu.json + gpu.md
    BENCH_GPU_SIZE=small python bench/bench_gpu.py --results gpu-small   # a quick look on a small config

Exits with status 2 and a message where no CUDA device is visible. ``--dry-run`` runs every step on the
CPU with a tiny config and a few steps (to check the script itself; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SIZE = os.environ.get("BENCH_GPU_SIZE", "0.5b")
DEVICE = "cuda"
LR = os.environ.get("BENCH_GPU_LR", "1e-4")  # one rate for every contender; 5e-4 (the CPU bench's) is high for 28 layers
CONTENDERS = ["trl-default", "rewardlab-default", "rewardlab-gc", "plain-bf16"]
SCORE_BATCH = 32
PROFILE = Path(os.environ["BENCH_GPU_PROFILE"]) if os.environ.get("BENCH_GPU_PROFILE") else None  # a profile of scoring, written there


def sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def matmul_peak(dtype, n: int = 8192, reps: int = 10) -> float:
    """GFLOP/s of an n×n by n×n product in ``dtype`` (TF32 off for fp32), mean of ``reps`` after 3 warm-ups."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = torch.randn(n, n, dtype=dtype, device=DEVICE), torch.randn(n, n, dtype=dtype, device=DEVICE)
    for _ in range(3):
        torch.mm(a, b)
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    sync()
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def token_stats(paths: dict) -> dict:
    """Mean real tokens per scored text (prompt + " " + response) of the train and test sets."""
    from transformers import AutoTokenizer

    from common import read_pairs

    tok = AutoTokenizer.from_pretrained(paths["model"])
    out = {}
    for split in ("train", "test"):
        texts = [p["prompt"] + " " + p[k] for p in read_pairs(paths[split]) for k in ("chosen", "rejected")]
        out[split] = {"texts": len(texts), "tokens": sum(len(x) for x in tok(texts)["input_ids"])}
    return out


def bench_scoring(paths: dict) -> dict:
    """Pipeline vs rewardlab's scorer, both bf16 weights on the GPU, batch SCORE_BATCH, the 4,000 test texts."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from common import read_pairs
    from rewardlab.eval.evaluate import score_texts
    from rewardlab.models.reward_model import load_reward_model

    texts = [p["prompt"] + " " + p[k] for p in read_pairs(paths["test"]) for k in ("chosen", "rejected")]
    tok = AutoTokenizer.from_pretrained(paths["model"])
    n_tokens = sum(len(x) for x in tok(texts)["input_ids"])

    def timed(fn):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        return out, time.perf_counter() - t0

    plain = AutoModelForSequenceClassification.from_pretrained(paths["model"], dtype=torch.bfloat16).to(DEVICE).eval()
    pipe = pipeline("text-classification", model=plain, tokenizer=tok, device=plain.device, function_to_apply="none",
                    batch_size=SCORE_BATCH)
    pipe(texts[:128])  # warm-up
    first_pipe = timed(lambda: pipe(texts, truncation=True, max_length=512))[1]  # the first pass meets every shape once
    ref, t_pipe = timed(lambda: np.array([o["score"] for o in pipe(texts, truncation=True, max_length=512)]))
    params = sum(p.numel() for p in plain.parameters())
    config = plain.config
    del pipe, plain

    rm, rtok, _ = load_reward_model(str(paths["model"]), dtype=torch.bfloat16)
    rm = rm.to(DEVICE).eval()
    score_texts(rm, rtok, [""] * 128, texts[:128], batch_size=SCORE_BATCH)  # warm-up
    first_rl = timed(lambda: score_texts(rm, rtok, [""] * len(texts), texts, batch_size=SCORE_BATCH, max_length=512))[1]
    (rewards, _), t_rl = timed(lambda: score_texts(rm, rtok, [""] * len(texts), texts, batch_size=SCORE_BATCH, max_length=512))
    big = {}
    for batch in (128,):  # the GPU wants bigger batches than the pipeline's; same rewards, measured apart
        (_, _), t = timed(lambda: score_texts(rm, rtok, [""] * len(texts), texts, batch_size=batch, max_length=512))
        big[batch] = t
    if PROFILE:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            score_texts(rm, rtok, [""] * 640, texts[:640], batch_size=SCORE_BATCH, max_length=512)
            sync()
        PROFILE.write_text(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25) + "\n\n" +
                           prof.key_averages().table(sort_by="cuda_time_total", row_limit=15))
    from bench_score import forward_flops_per_token

    fpt = forward_flops_per_token(config, n_tokens / len(texts))
    diff = np.abs(np.asarray(rewards) - ref)
    return {"texts": len(texts), "tokens": n_tokens, "parameters": params, "batch_size": SCORE_BATCH, "forward_flops_per_token": fpt,
            "first_pass_seconds": {"pipeline": first_pipe, "rewardlab": first_rl},
            "pipeline": {"seconds": t_pipe, "texts_per_s": len(texts) / t_pipe, "tokens_per_s": n_tokens / t_pipe},
            "rewardlab": {"seconds": t_rl, "texts_per_s": len(texts) / t_rl, "tokens_per_s": n_tokens / t_rl,
                          "speedup_vs_pipeline": t_pipe / t_rl, "max_abs_diff_vs_pipeline": float(diff.max()),
                          "mean_abs_diff_vs_pipeline": float(diff.mean()), "reward_std": float(ref.std()),
                          "pearson_vs_pipeline": float(np.corrcoef(rewards, ref)[0, 1])},
            "rewardlab_bigger_batches": {str(b): {"texts_per_s": len(texts) / t, "speedup_vs_pipeline": t_pipe / t} for b, t in big.items()}}


def versions() -> dict:
    import importlib.metadata as md

    import torch

    out = {"python": platform.python_version(), "gpu": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "none (dry run on CPU)"}
    for name in ("torch", "transformers", "accelerate", "trl", "datasets"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=None, help=f"subset of {CONTENDERS}")
    ap.add_argument("--skip-train", action="store_true", help="scoring and peaks only")
    ap.add_argument("--timeout", type=float, default=240, help="seconds per training contender before it counts as failed")
    ap.add_argument("--results", default="gpu", help="stem of the files written under bench/results (default gpu)")
    ap.add_argument("--dry-run", action="store_true", help="CPU, nano config, 4 steps: checks the script, measures nothing")
    args = ap.parse_args()
    global DEVICE, SIZE
    import torch

    if args.dry_run:
        DEVICE, SIZE = "cpu", "nano"
        os.environ["BENCH_MAX_STEPS"] = "4"
        os.environ.setdefault("REWARDLAB_BENCH_CACHE", "/tmp/rewardlab-bench-dry")
    elif not torch.cuda.is_available():
        print("bench_gpu: no CUDA device visible; nothing measured", file=sys.stderr)
        raise SystemExit(2)
    os.environ.update(BENCH_DEVICE=DEVICE, BENCH_SIZE=SIZE, BENCH_LR=LR)
    import bench_train  # reads BENCH_* at import
    from common import RESULTS, build

    info = versions()
    print(json.dumps(info), flush=True)
    n = 8192 if DEVICE == "cuda" else 512
    peaks = {"bf16": matmul_peak(torch.bfloat16, n), "fp32": matmul_peak(torch.float32, n)}
    print(f"matmul peak: bf16 {peaks['bf16'] / 1e3:.0f} TFLOP/s, fp32 (no TF32) {peaks['fp32'] / 1e3:.0f} TFLOP/s", flush=True)
    t0 = time.perf_counter()
    paths = build(size=SIZE)
    stats = token_stats(paths)
    print(f"data + {SIZE} model built in {time.perf_counter() - t0:.0f} s; tokens {stats}", flush=True)

    from transformers import AutoConfig

    from bench_score import forward_flops_per_token

    config = AutoConfig.from_pretrained(paths["model"])
    train_tokens_per_pair = stats["train"]["tokens"] / (stats["train"]["texts"] / 2)
    fpt_train = forward_flops_per_token(config, stats["train"]["tokens"] / stats["train"]["texts"])
    results = []
    if not args.skip_train:
        results = bench_train.drive(args.only or CONTENDERS, keep_going=True, timeout=args.timeout)
        for r in results:
            if "failed" not in r:  # forward + backward ≈ 3 × forward, on the real (unpadded) tokens
                r["achieved_tflops"] = 3 * fpt_train * train_tokens_per_pair * r["pairs_per_s"] / 1e12
                r["fraction_of_bf16_peak"] = r["achieved_tflops"] * 1e3 / peaks["bf16"]
    score = bench_scoring(paths)
    for v in (score["pipeline"], score["rewardlab"]):
        v["achieved_tflops"] = score["forward_flops_per_token"] * v["tokens_per_s"] / 1e12
        v["fraction_of_bf16_peak"] = v["achieved_tflops"] * 1e3 / peaks["bf16"]
    setup = {"size": SIZE, "parameters": score["parameters"], "batch_size": bench_train.BATCH, "lr": bench_train.LR,
             "epochs": bench_train.EPOCHS, "seed": bench_train.SEED, "max_length": bench_train.MAX_LENGTH,
             "train_tokens_per_pair": train_tokens_per_pair, **info}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.results}.json").write_text(json.dumps({"setup": setup, "matmul_peak_gflops": peaks, "train": results,
                                                              "score": score}, indent=2) + "\n")
    lines = [f"{info['gpu']}; torch {info['torch']}, transformers {info['transformers']}, trl {info['trl']}. Matrix-multiply peak "
             f"measured here: bf16 {peaks['bf16'] / 1e3:.0f} TFLOP/s, fp32 (TF32 off) {peaks['fp32'] / 1e3:.0f} TFLOP/s. Model: "
             f"{SIZE} Llama config, {score['parameters'] / 1e6:.0f}M parameters, random weights; batch {bench_train.BATCH} pairs, "
             f"lr {bench_train.LR}, {bench_train.EPOCHS} epochs.", "", "Training:", ""]
    lines.append(bench_train.table(results) if results else "(skipped)")
    if results:
        lines += ["", "Achieved rate (3 × forward FLOPs on real tokens): " + ", ".join(
            f"{r['contender']} {r['achieved_tflops']:.0f} TFLOP/s ({100 * r['fraction_of_bf16_peak']:.0f}% of bf16 peak)"
            for r in results if "failed" not in r)]
    p, r = score["pipeline"], score["rewardlab"]
    lines += ["", f"Scoring ({score['texts']} texts, {score['tokens']} tokens, bf16 weights, batch {SCORE_BATCH}):", "",
              "| contender | texts/s | × pipeline | TFLOP/s (% of bf16 peak) |", "|---|---:|---:|---:|",
              f"| transformers pipeline | {p['texts_per_s']:.0f} | 1.00× | {p['achieved_tflops']:.1f} ({100 * p['fraction_of_bf16_peak']:.0f}%) |",
              f"| rewardlab score | {r['texts_per_s']:.0f} | {r['speedup_vs_pipeline']:.2f}× | {r['achieved_tflops']:.1f} "
              f"({100 * r['fraction_of_bf16_peak']:.0f}%) |"]
    for b, v in score["rewardlab_bigger_batches"].items():
        lines.append(f"| rewardlab score, batch {b} | {v['texts_per_s']:.0f} | {v['speedup_vs_pipeline']:.2f}× | |")
    fp = score["first_pass_seconds"]
    lines += ["", f"Steady state shown (second pass over the texts); first passes: pipeline {fp['pipeline']:.2f} s, "
              f"rewardlab {fp['rewardlab']:.2f} s."]
    lines += ["", f"Rewards vs the pipeline (both bf16): max |Δ| {r['max_abs_diff_vs_pipeline']:.3g}, mean |Δ| "
              f"{r['mean_abs_diff_vs_pipeline']:.3g} (reward std {r['reward_std']:.3g}), Pearson {r['pearson_vs_pipeline']:.5f}."]
    (RESULTS / f"{args.results}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
