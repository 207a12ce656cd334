"""Shared-prompt scoring (prompt encoded once, responses appended via the KV cache) vs full sequences.

Same model (the benchmark's ~5M Llama RM), same records, batch 32, one torch thread, best of 2 runs
each, interleaved. Real data from ../shared/data (skipped when absent): HH-RLHF pairs (multi-turn
prompts), FineGrainedRLHF pairs and rankings with passages (long prompts, cut at 512 from the left).

    python bench/bench_shared_prompt.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, build  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def main():
    import numpy as np
    import torch

    from rewardlab.data.formats import load_records
    from rewardlab.models.scoring import encode_sequences, score_dataset, shared_prefixes
    from rewardlab.models.reward_model import load_reward_model

    if not DATA.is_dir():
        sys.exit(f"{DATA} is absent: this benchmark needs the shared real data")
    torch.set_num_threads(1)
    rm, tok, _ = load_reward_model(str(build()["model"]))
    fgr = str(DATA / "finegrainedrlhf-qa-feedback-dev.json")
    sets = {"hh-rlhf pairs": load_records(str(DATA / "hh-rlhf-harmless-base-test.jsonl.gz"), on_bad_record="skip", limit=300)[0],
            "finegrained pairs": load_records(fgr, form="pairs", limit=300)[0],
            "finegrained rankings+passages": load_records(fgr, form="rankings", include_passages=True, limit=80)[0]}
    rows = []
    for name, recs in sets.items():
        enc = encode_sequences(recs, tok, 512, "left")
        groups, plen = shared_prefixes(enc.ids, enc.owner)
        total = sum(len(s) for s in enc.ids)
        saved = sum(p * (len(g) - 1) for g, p in zip(groups, plen))
        score_dataset(rm, tok, recs[:8], batch_size=32)  # warm-up
        times, rewards = {False: [], True: []}, {}
        for shared in (False, True, False, True):
            t0 = time.perf_counter()
            rewards[shared] = np.concatenate(score_dataset(rm, tok, recs, batch_size=32, shared_prompt=shared).rewards)
            times[shared].append(time.perf_counter() - t0)
        full, shared = min(times[False]), min(times[True])
        rows.append({"data": name, "records": len(recs), "sequences": len(enc.ids), "mean_tokens": total / len(enc.ids),
                     "shared_token_fraction": saved / total, "full_seconds": full, "shared_seconds": shared,
                     "speedup": full / shared, "max_abs_diff": float(np.abs(rewards[True] - rewards[False]).max())})
        print(json.dumps(rows[-1]))
    (RESULTS / "shared_prompt.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| data | sequences | mean tokens | tokens shared | full s | shared s | speed-up | max |Δ| |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['data']} | {r['sequences']} | {r['mean_tokens']:.0f} | {r['shared_token_fraction']:.0%} | {r['full_seconds']:.1f} | "
              f"{r['shared_seconds']:.1f} | {r['speedup']:.2f}× | {r['max_abs_diff']:.1e} |")


if __name__ == "__main__":
    main()
