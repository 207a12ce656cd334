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


SCORE_CONTENDERS = ["pipeline", "rewardlab", "rewardlab-pad1", "rewardlab-pad64", "rewardlab-pooled"]  # pooled: last layer at the pooled token (off by default on a GPU)


def score_contender(name: str, out: Path) -> None:
    """One scoring contender in a fresh process (so its first pass meets every shape for the first time):
    a first and a second pass over the 4,000 test texts, bf16 weights, batch SCORE_BATCH; rewards saved."""
    import numpy as np
    import torch

    from common import build, emit, read_pairs

    paths = build(size=SIZE)
    texts = [p["prompt"] + " " + p[k] for p in read_pairs(paths["test"]) for k in ("chosen", "rejected")]

    def timed(fn):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        return out, time.perf_counter() - t0

    result = {"contender": name}
    if name == "pipeline":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

        tok = AutoTokenizer.from_pretrained(paths["model"])
        plain = AutoModelForSequenceClassification.from_pretrained(paths["model"], dtype=torch.bfloat16).to(DEVICE).eval()
        pipe = pipeline("text-classification", model=plain, tokenizer=tok, device=plain.device, function_to_apply="none",
                        batch_size=SCORE_BATCH)
        pipe(texts[:128])  # warm-up
        result["first_pass_seconds"] = timed(lambda: pipe(texts, truncation=True, max_length=512))[1]
        rewards, result["seconds"] = timed(lambda: np.array([o["score"] for o in pipe(texts, truncation=True, max_length=512)]))
        result["parameters"] = sum(p.numel() for p in plain.parameters())
        result["tokens"] = sum(len(x) for x in tok(texts)["input_ids"])
    else:
        from rewardlab.models.scoring import score_texts
        from rewardlab.models.reward_model import load_reward_model

        multiple = int(name[len("rewardlab-pad"):]) if name.startswith("rewardlab-pad") else None  # None: the default
        rm, rtok, _ = load_reward_model(str(paths["model"]), dtype=torch.bfloat16)
        rm = rm.to(DEVICE).eval()
        rm.pooled_last_layer = True if name == "rewardlab-pooled" else "auto"

        def score(batch=SCORE_BATCH):
            return score_texts(rm, rtok, [""] * len(texts), texts, batch_size=batch, max_length=512, multiple=multiple)[0]

        score_texts(rm, rtok, [""] * 128, texts[:128], batch_size=SCORE_BATCH, multiple=multiple)  # warm-up
        result["first_pass_seconds"] = timed(score)[1]
        rewards, result["seconds"] = timed(score)
        result["pooled_last_layer"] = rm._pooled_state
        if name == "rewardlab":  # the GPU wants bigger batches than the pipeline's; same rewards, measured apart
            result["batch_128_seconds"] = timed(lambda: score(128))[1]
        if PROFILE and name == "rewardlab":
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                score_texts(rm, rtok, [""] * 640, texts[:640], batch_size=SCORE_BATCH, max_length=512)
                sync()
            PROFILE.write_text(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25) + "\n\n" +
                               prof.key_averages().table(sort_by="cuda_time_total", row_limit=15))
    np.save(out, np.asarray(rewards, dtype=np.float64))
    emit(result)


def bench_scoring(paths: dict) -> dict:
    """Each of SCORE_CONTENDERS in its own process; ratios against the pipeline's second (steady) pass."""
    import tempfile

    import numpy as np
    from transformers import AutoConfig

    from bench_score import forward_flops_per_token
    from common import run_contender

    tmp = Path(tempfile.mkdtemp())
    runs = {}
    for name in SCORE_CONTENDERS:
        result, failure = run_contender([__file__, "--score-contender", name, "--out", str(tmp / f"{name}.npy")]
                                        + (["--dry-run"] if DEVICE == "cpu" else []))
        runs[name] = result or {"failed": failure}
        if result:
            print(f"score {name:20s} first pass {result['first_pass_seconds']:6.2f} s, second {result['seconds']:6.2f} s", flush=True)
    p = runs["pipeline"]
    ref = np.load(tmp / "pipeline.npy")
    n_texts = len(ref)
    fpt = forward_flops_per_token(AutoConfig.from_pretrained(paths["model"]), p["tokens"] / n_texts)
    out = {"texts": n_texts, "tokens": p["tokens"], "parameters": p["parameters"], "batch_size": SCORE_BATCH,
           "forward_flops_per_token": fpt, "contenders": {}}
    for name, r in runs.items():
        if "failed" in r:
            out["contenders"][name] = r
            continue
        v = {**r, "texts_per_s": n_texts / r["seconds"], "tokens_per_s": p["tokens"] / r["seconds"],
             "speedup_vs_pipeline": p["seconds"] / r["seconds"], "first_pass_speedup_vs_pipeline": p["first_pass_seconds"] / r["first_pass_seconds"]}
        if name != "pipeline":
            rewards = np.load(tmp / f"{name}.npy")
            diff = np.abs(rewards - ref)
            v.update(max_abs_diff_vs_pipeline=float(diff.max()), mean_abs_diff_vs_pipeline=float(diff.mean()),
                     reward_std=float(ref.std()), pearson_vs_pipeline=float(np.corrcoef(rewards, ref)[0, 1]))
        out["contenders"][name] = v
    return out


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
    ap.add_argument("--score-contender", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--skip-score", action="store_true", help="training only")
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
    if args.score_contender:
        return score_contender(args.score_contender, Path(args.out))
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
    score = {} if args.skip_score else bench_scoring(paths)
    for v in score.get("contenders", {}).values():
        if "failed" not in v:
            v["achieved_tflops"] = score["forward_flops_per_token"] * v["tokens_per_s"] / 1e12
            v["fraction_of_bf16_peak"] = v["achieved_tflops"] * 1e3 / peaks["bf16"]
    setup = {"size": SIZE, "parameters": score.get("parameters"), "batch_size": bench_train.BATCH, "lr": bench_train.LR,
             "epochs": bench_train.EPOCHS, "seed": bench_train.SEED, "max_length": bench_train.MAX_LENGTH,
             "train_tokens_per_pair": train_tokens_per_pair, **info}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.results}.json").write_text(json.dumps({"setup": setup, "matmul_peak_gflops": peaks, "train": results,
                                                              "score": score}, indent=2) + "\n")
    lines = [f"{info['gpu']}; torch {info['torch']}, transformers {info['transformers']}, trl {info['trl']}. Matrix-multiply peak "
             f"measured here: bf16 {peaks['bf16'] / 1e3:.0f} TFLOP/s, fp32 (TF32 off) {peaks['fp32'] / 1e3:.0f} TFLOP/s. Model: "
             f"{SIZE} Llama config, random weights; batch {bench_train.BATCH} pairs, lr {bench_train.LR}, {bench_train.EPOCHS} epochs.",
             "", "Training:", ""]
    lines.append(bench_train.table(results) if results else "(skipped)")
    if results:
        lines += ["", "Achieved rate (3 × forward FLOPs on real tokens): " + ", ".join(
            f"{r['contender']} {r['achieved_tflops']:.0f} TFLOP/s ({100 * r['fraction_of_bf16_peak']:.0f}% of bf16 peak)"
            for r in results if "failed" not in r)]
    if score:
        lines += ["", f"Scoring ({score['texts']} texts, {score['tokens']} tokens, bf16 weights, batch {SCORE_BATCH}, each contender "
                  "in a fresh process; first pass = the first time through the texts, second = steady state):", "",
                  "| contender | second pass texts/s | × pipeline | first pass s | × pipeline | TFLOP/s (% of bf16 peak) | max abs Δ reward |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, v in score["contenders"].items():
            if "failed" in v:
                lines.append(f"| {name} | failed: {v['failed']} |")
                continue
            diff = f"{v['max_abs_diff_vs_pipeline']:.3g} (Pearson {v['pearson_vs_pipeline']:.5f})" if "pearson_vs_pipeline" in v else "–"
            lines.append(f"| {name} | {v['texts_per_s']:.0f} | {v['speedup_vs_pipeline']:.2f}× | {v['first_pass_seconds']:.2f} | "
                         f"{v['first_pass_speedup_vs_pipeline']:.2f}× | {v['achieved_tflops']:.1f} ({100 * v['fraction_of_bf16_peak']:.0f}%) | {diff} |")
        if "batch_128_seconds" in score["contenders"].get("rewardlab", {}):
            v = score["contenders"]["rewardlab"]
            lines += ["", f"rewardlab at batch 128: {score['texts'] / v['batch_128_seconds']:.0f} texts/s "
                      f"({score['contenders']['pipeline']['seconds'] / v['batch_128_seconds']:.2f}× the pipeline at batch {SCORE_BATCH})."]
    (RESULTS / f"{args.results}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
