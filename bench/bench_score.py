"""Scoring throughput: rewardlab's scorer vs a transformers text-classification pipeline, same batch size.

Both score the same 4,000 texts (the benchmark's test pairs) with the same model; rewards must agree
(fp32: within 1e-4). Also reports the achieved FLOP rate against the matrix-multiply peak measured
here, for the ~5M benchmark model and a ~20M one.

    python bench/bench_score.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, RESULTS, build, read_pairs  # noqa: E402

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


def bench_model(model_dir: Path, texts: list[str]) -> dict:
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from rewardlab.eval.evaluate import score_texts
    from rewardlab.models.reward_model import load_reward_model

    tok = AutoTokenizer.from_pretrained(model_dir)
    plain = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    pipe = pipeline("text-classification", model=plain, tokenizer=tok, device="cpu", function_to_apply="none", batch_size=BATCH)
    n_tokens = sum(len(x) for x in tok(texts)["input_ids"])
    pipe(texts[:64])  # warm-up
    t0 = time.perf_counter()
    ref = np.array([o["score"] for o in pipe(texts, truncation=True, max_length=512)])
    t_pipe = time.perf_counter() - t0

    rm, rtok, _ = load_reward_model(str(model_dir))
    out = {}
    from rewardlab.train.loop import cpu_has_fast_bf16

    for precision in ("fp32", "bf16") if (cpu_has_fast_bf16() or torch.cuda.is_available()) else ("fp32",):
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)
        with ctx:
            score_texts(rm, rtok, [""] * 64, texts[:64], batch_size=BATCH)  # warm-up
            t0 = time.perf_counter()
            rewards, _ = score_texts(rm, rtok, [""] * len(texts), texts, batch_size=BATCH, max_length=512)
            t = time.perf_counter() - t0
        out[precision] = {"seconds": t, "texts_per_s": len(texts) / t, "tokens_per_s": n_tokens / t,
                          "speedup_vs_pipeline": t_pipe / t, "max_abs_diff_vs_pipeline": float(np.abs(rewards - ref).max())}
    # fp32 with torch.compile (score --compile): the first call pays the compile, the second is the steady state
    from rewardlab.eval.evaluate import compile_scorer

    compile_scorer(rm)
    t0 = time.perf_counter()
    score_texts(rm, rtok, [""] * len(texts), texts, batch_size=BATCH, max_length=512)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    rewards, _ = score_texts(rm, rtok, [""] * len(texts), texts, batch_size=BATCH, max_length=512)
    t = time.perf_counter() - t0
    out["fp32-compiled"] = {"seconds": t, "first_call_seconds": t_first, "texts_per_s": len(texts) / t,
                            "tokens_per_s": n_tokens / t, "speedup_vs_pipeline": t_pipe / t,
                            "speedup_vs_pipeline_with_compile": t_pipe / t_first,
                            "max_abs_diff_vs_pipeline": float(np.abs(rewards - ref).max())}
    params = sum(p.numel() for p in plain.parameters())
    return {"model": str(model_dir.name), "parameters": params, "texts": len(texts), "tokens": n_tokens,
            "pipeline": {"seconds": t_pipe, "texts_per_s": len(texts) / t_pipe, "tokens_per_s": n_tokens / t_pipe},
            "rewardlab": out, "forward_flops_per_token": forward_flops_per_token(plain.config, n_tokens / len(texts))}


def main():
    import torch

    from rewardlab.models.tiny import save_tiny

    paths = build()
    texts = texts_of(paths)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"matmul peak: fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} GFLOP/s")
    small = CACHE / "small-20m"
    if not (small / "config.json").exists():
        save_tiny(small, "llama", texts[:4000], "small", vocab_size=8000)
    results = []
    for model_dir in (paths["model"], small):
        r = bench_model(model_dir, texts)
        for precision, v in r["rewardlab"].items():  # bf16 only where the CPU has fast bf16
            v["achieved_gflops"] = r["forward_flops_per_token"] * v["tokens_per_s"] / 1e9
            v["fraction_of_peak"] = v["achieved_gflops"] / peaks[precision.split("-")[0]]
        r["pipeline"]["achieved_gflops"] = r["forward_flops_per_token"] * r["pipeline"]["tokens_per_s"] / 1e9
        results.append(r)
        print(json.dumps(r, indent=1))
    (RESULTS / "score.json").write_text(json.dumps({"matmul_peak_gflops": peaks, "batch_size": BATCH, "results": results}, indent=2) + "\n")
    lines = [f"matrix-multiply peak measured here: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s; "
             f"batch {BATCH}; {results[0]['texts']} texts", "",
             "| model | params | contender | texts/s | × pipeline | max |Δreward| | GFLOP/s (% of peak) |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in results:
        p = r["pipeline"]
        lines.append(f"| {r['model']} | {r['parameters'] / 1e6:.1f}M | transformers pipeline | {p['texts_per_s']:.0f} | 1.00× | – | "
                     f"{p['achieved_gflops']:.1f} ({100 * p['achieved_gflops'] / peaks['fp32']:.0f}%) |")
        for name, v in r["rewardlab"].items():
            extra = f" ({v['speedup_vs_pipeline_with_compile']:.2f}× counting the compile)" if "first_call_seconds" in v else ""
            lines.append(f"| {r['model']} | {r['parameters'] / 1e6:.1f}M | rewardlab {name} | {v['texts_per_s']:.0f} | "
                         f"{v['speedup_vs_pipeline']:.2f}×{extra} | {v['max_abs_diff_vs_pipeline']:.1e} | "
                         f"{v['achieved_gflops']:.1f} ({100 * v['fraction_of_peak']:.0f}%) |")
    (RESULTS / "score.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
