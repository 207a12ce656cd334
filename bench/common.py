"""Shared set-up of the benchmarks: the same data, tokenizer and model config for every contender.

Data: the built-in gold task with responses of 20–90 words (the shape of the issue's benchmark),
labelled by the gold reward (no noise), prompt + response as plain text. Model: a Llama-style RM,
4 layers × 256 wide, 8k BPE vocabulary trained on the task's text (~5.3M parameters).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path(os.environ.get("REWARDLAB_BENCH_CACHE", Path(__file__).resolve().parent / ".cache"))
RESULTS = Path(__file__).resolve().parent / "results"


def build(n_train: int = 1600, n_test: int = 2000, seed: int = 0, size: str = "mini", vocab: int = 8000) -> dict:
    """Write train/test JSONL and a random model folder once; return their paths."""
    from rewardlab.models.tiny import save_tiny
    from rewardlab.tasks.gold import GoldTask
    from rewardlab.tasks.jsonl import to_jsonl

    root = CACHE / f"{size}-v{vocab}-n{n_train}-{n_test}-s{seed}"
    done = root / "done"
    if not done.exists():
        root.mkdir(parents=True, exist_ok=True)
        task = GoldTask(seed=seed, min_words=20, max_words=90, target_words=55, length_width=25.0)
        train, _ = task.make_pairs(n_train, seed=seed + 1)
        test, _ = task.make_pairs(n_test, seed=seed + 2)
        to_jsonl(train, root / "train.jsonl")
        to_jsonl(test, root / "test.jsonl")
        corpus = [t for p in train for t in (p.prompt, p.chosen, p.rejected)]
        save_tiny(root / "model", "llama", corpus, size, vocab_size=vocab, seed=seed)
        done.write_text("ok")
    return {"train": root / "train.jsonl", "test": root / "test.jsonl", "model": root / "model", "root": root}


def read_pairs(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(result: dict) -> None:
    """Contenders run in their own process and print one JSON line that the driver reads."""
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)  # tensors only, as the caching allocator saw them
    print("RESULT " + json.dumps(result), flush=True)


def run_contender(argv: list[str], timeout: float | None = None) -> tuple[dict | None, str]:
    """Run ``python *argv`` (a contender that ends with ``emit``) in its own process: (its result, "") or,
    after printing the end of its output to stderr, (None, why it failed)."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    try:
        proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, timeout=timeout)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        code, out, err = "timeout", (e.stdout or b"").decode(errors="replace"), (e.stderr or b"").decode(errors="replace")
    line = [x for x in out.splitlines() if x.startswith("RESULT ")]
    if code or not line:
        print(out[-2000:], err[-4000:], file=sys.stderr)
        return None, f"exit {code}: {err.strip().splitlines()[-1] if err.strip() else ''}"
    return json.loads(line[0][7:]), ""


def save_results(stem: str, setup: dict, results: list[dict], md: str) -> None:
    """bench/results/STEM.json (the setup, with this machine's CPU count, torch threads and processor, and every
    result) and STEM.md (the table); the table is printed too."""
    import platform

    import torch

    setup = {**setup, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
             "machine": platform.processor() or platform.machine()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"setup": setup, "results": results}, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(md + "\n")
    print(md)


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
