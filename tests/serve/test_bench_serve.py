"""bench/bench_serve.py, small: concurrent clients against `rewardlab serve` and the serve_rm pattern on the tiny
model — no 5xx, every reward equal to offline scoring, and requests really batched together. Throughput is the
bench's to report (bench/results/serve.md): on a 2-core CPU dynamic batching does not beat one request at a time."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_serve.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_serve", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_small_load_no_errors_offline_equal_and_batching_pays(tiny_llama, toy_data):
    import json

    b = _bench()
    pairs = [json.loads(x) for x in Path(toy_data["train"]).read_text().splitlines()]
    requests = b.make_requests(pairs, 160, 4)
    reference = b.offline_rewards(str(tiny_llama), requests)
    results = {}
    for server in ("rewardlab", "serve_rm"):
        proc, url = b.start(server, str(tiny_llama))
        try:
            results[server] = b.summarize(server, b.run_load(url, requests, 16, 120), requests, reference)
            if server == "rewardlab":
                results[server]["forwards"] = b.forwards(url)
        finally:
            proc.kill()
            proc.wait()
    for r in results.values():
        assert (r["ok"], r["5xx"], r["mismatched"]) == (160, 0, 0), r
    assert results["rewardlab"]["forwards"] < 160  # concurrent requests shared forwards
