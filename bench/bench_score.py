"""Scoring throughput: rewardlab's scorer vs a transformers text-classification pipeline, same batch size.

Both score the same 4,000 texts (the benchmark's test pairs) with the same model; rewards must agree
(fp32: within 1e-4). Also reports the achieved FLOP rate against the matrix-multiply peak measured
here, for the ~5M benchmark model and a ~20M one. Every contender runs in its own process, set up
as its command would set it up (rewardlab: ``rewardlab.runtime.tune_allocator``, as the CLI does), and
the variants show what each of rewardlab's choices gives.

    python bench/bench_score.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, RESULTS, build, emit, read_pairs, run_contender  # noqa: E402

BATCH = 32


def matmul_peak(dtype, n: int = 2048, reps: int = 10) -> float:
    """GFLOP/s of an n×n by n×n matrix multiply in ``dtype`` on this machine (best of 3)."""
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    t0 = time.perf_counter()
    torch.mm(a, b)
    if time.perf_counter() - t0 > 1.0:  # no fast kernel for this dtype (e.g. bf16 without AVX-512 BF16): smaller problem
        return matmul_peak(dtype, n // 4, 2) if n > 512 else 2 * n**3 / (time.perf_counter() - t0) / 1e9
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * n**3 / best / 1e9


def forward_flops_per_token(config, mean_len: float) -> float:
    """2·N_non-embedding + 2·layers·context·width (Kaplan et al. 2020), N from the config."""
    d, L = config.hidden_size, config.num_hidden_layers
    inter = config.intermediate_size
    kv = getattr(config, "num_key_value_heads", config.num_attention_heads) / config.num_attention_heads
    per_layer = d * d * (2 + 2 * kv) + 3 * d * inter  # q, o + k, v projections; gated MLP (3 matrices)
    return 2 * L * per_layer + 2 * L * mean_len * d


def texts_of(paths) -> list[str]:
    pairs = read_pairs(paths["test"])
    return [p["prompt"] + " " + p[k] for p in pairs for k in ("chosen", "rejected")]


CONTENDERS = ["pipeline", "rewardlab", "rewardlab-fullpool", "rewardlab-nomalloc", "pipeline-malloc", "rewardlab-compiled"]
# what each contender is, in the table
LABELS = {"pipeline": "transformers pipeline",
          "pipeline-malloc": "transformers pipeline, in a process with rewardlab's allocator settings",
          "rewardlab": "rewardlab (`score` defaults)",
          "rewardlab-fullpool": "rewardlab, last layer at every token",
          "rewardlab-nomalloc": "rewardlab, glibc's default allocator settings",
          "rewardlab-compiled": "rewardlab `--compile`",
          "rewardlab-bf16": "rewardlab bf16 autocast"}


def model_dir(name: str) -> Path:
    return build()["model"] if name == "model" else CACHE / name


def contender(name: str, model: str, out: Path) -> None:
    """One contender in this process: time scoring every text (after a 64-text warm-up), save the rewards."""
    import numpy as np
    import torch

    if name.startswith("rewardlab") and name != "rewardlab-nomalloc" or name == "pipeline-malloc":
        from rewardlab.runtime import tune_allocator  # what the `rewardlab` command line does first

        tune_allocator()
    texts = texts_of(build())
    md = model_dir(model)
    result = {"contender": name, "model": model}
    if name.startswith("pipeline"):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

        tok = AutoTokenizer.from_pretrained(md)
        plain = AutoModelForSequenceClassification.from_pretrained(md).eval()
        pipe = pipeline("text-classification", model=plain, tokenizer=tok, device="cpu", function_to_apply="none", batch_size=BATCH)
        pipe(texts[:64])  # warm-up
        t0 = time.perf_counter()
        rewards = np.array([o["score"] for o in pipe(texts, truncation=True, max_length=512)])
        result["seconds"] = time.perf_counter() - t0
        result["parameters"] = sum(p.numel() for p in plain.parameters())
        result["tokens"] = sum(len(x) for x in tok(texts)["input_ids"])
        result["forward_flops_per_token"] = forward_flops_per_token(plain.config, result["tokens"] / len(texts))
    else:
        from rewardlab.models.scoring import compile_scorer, score_texts
        from rewardlab.models.reward_model import load_reward_model

        rm, rtok, _ = load_reward_model(str(md))
        rm.pooled_last_layer = False if name == "rewardlab-fullpool" else "auto"
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if name == "rewardlab-bf16" else torch.autocast("cpu", enabled=False)
        with ctx:
            if name == "rewardlab-compiled":  # the first call pays the compile; the second is the steady state
                compile_scorer(rm)
                t0 = time.perf_counter()
                score_texts(rm, rtok, [""] * len(texts), texts, batch_size=BATCH, max_length=512)
                result["first_call_seconds"] = time.perf_counter() - t0
            else:
                score_texts(rm, rtok, [""] * 64, texts[:64], batch_size=BATCH)  # warm-up
            t0 = time.perf_counter()
            rewards, _ = score_texts(rm, rtok, [""] * len(texts), texts, batch_size=BATCH, max_length=512)
            result["seconds"] = time.perf_counter() - t0
        result["pooled_last_layer"] = rm._pooled_state
    np.save(out, rewards)
    result["texts"] = len(texts)
    emit(result)


def run(name: str, model: str, out: Path) -> dict:
    result, failure = run_contender([__file__, "--contender", name, "--model", model, "--out", str(out)])
    if result is None:
        raise SystemExit(f"{name} on {model} failed ({failure})")
    return result


def main():
    import argparse

    import numpy as np
    import torch

    from rewardlab.models.tiny import save_tiny
    from rewardlab.runtime import cpu_has_fast_bf16

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contender", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=2, help="runs of the pipeline and of rewardlab's default on the 4.5M model "
                    "(the best of them counts: noise only slows a run); default 2")
    args = ap.parse_args()
    if args.contender:
        return contender(args.contender, args.model, Path(args.out))

    paths = build()
    texts = texts_of(paths)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"matmul peak: fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} GFLOP/s", flush=True)
    small = CACHE / "small-20m"
    if not (small / "config.json").exists():
        save_tiny(small, "llama", texts[:4000], "small", vocab_size=8000)
    names = CONTENDERS + (["rewardlab-bf16"] if cpu_has_fast_bf16() else [])
    results = []
    tmp = Path(tempfile.mkdtemp())
    for model in ("model", "small-20m"):
        # the 4.5M model: pipeline and rewardlab alternate `repeats` times; the 21M one runs each contender once
        order = (["pipeline", "rewardlab"] * args.repeats + names[2:]) if model == "model" else [n for n in names if n != "pipeline-malloc"]
        runs = []
        for name in order:
            r = run(name, model, tmp / f"{model}-{name}-{len(runs)}.npy")
            r["rewards_file"] = str(tmp / f"{model}-{name}-{len(runs)}.npy")
            runs.append(r)
            print(f"{model:10s} {name:22s} {r['seconds']:7.1f} s", flush=True)
        base = min((r for r in runs if r["contender"] == "pipeline"), key=lambda r: r["seconds"])
        ref = np.load(base["rewards_file"])
        per_model = {"model": model, "parameters": base["parameters"], "texts": base["texts"], "tokens": base["tokens"],
                     "forward_flops_per_token": base["forward_flops_per_token"], "contenders": {}}
        for name in dict.fromkeys(r["contender"] for r in runs):
            mine = [r for r in runs if r["contender"] == name]
            best = min(mine, key=lambda r: r["seconds"])
            v = {"seconds": best["seconds"], "all_seconds": [r["seconds"] for r in mine], "texts_per_s": base["texts"] / best["seconds"],
                 "tokens_per_s": base["tokens"] / best["seconds"], "speedup_vs_pipeline": base["seconds"] / best["seconds"],
                 "max_abs_diff_vs_pipeline": float(np.abs(np.load(best["rewards_file"]) - ref).max())}
            if "first_call_seconds" in best:
                v["first_call_seconds"] = best["first_call_seconds"]
                v["speedup_vs_pipeline_with_compile"] = base["seconds"] / best["first_call_seconds"]
            if "pooled_last_layer" in best:
                v["pooled_last_layer"] = best["pooled_last_layer"]
            precision = "bf16" if name.endswith("bf16") else "fp32"
            v["achieved_gflops"] = base["forward_flops_per_token"] * v["tokens_per_s"] / 1e9
            v["fraction_of_peak"] = v["achieved_gflops"] / peaks[precision]
            per_model["contenders"][name] = v
        results.append(per_model)
    (RESULTS / "score.json").write_text(json.dumps({"matmul_peak_gflops": peaks, "batch_size": BATCH, "results": results}, indent=2) + "\n")
    lines = [f"matrix-multiply peak measured here: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s; "
             f"batch {BATCH}; {results[0]['texts']} texts; each contender in its own process", "",
             "| model | params | contender | texts/s | × pipeline | max |Δreward| | GFLOP/s (% of peak) |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in results:
        for name, v in r["contenders"].items():
            extra = f" ({v['speedup_vs_pipeline_with_compile']:.2f}× counting the compile)" if "first_call_seconds" in v else ""
            runs = f" (best of {len(v['all_seconds'])})" if len(v["all_seconds"]) > 1 else ""
            diff = "–" if name == "pipeline" else f"{v['max_abs_diff_vs_pipeline']:.1e}"
            lines.append(f"| {r['model']} | {r['parameters'] / 1e6:.1f}M | {LABELS[name]}{runs} | {v['texts_per_s']:.0f} | "
                         f"{v['speedup_vs_pipeline']:.2f}×{extra} | {diff} | {v['achieved_gflops']:.1f} ({100 * v['fraction_of_peak']:.0f}%) |")
    (RESULTS / "score.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
