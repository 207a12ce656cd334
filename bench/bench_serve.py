"""Serving under load: `rewardlab serve` with dynamic batching against the same server with batching off and
against the `serve_rm` pattern (each request scored on its own, in the request handler, as OpenRLHF's
``openrlhf.cli.serve_rm`` does), all on loopback, one after the other.

Load: ``--requests`` requests from ``--clients`` concurrent clients (asyncio + httpx in this process), each
request 1–``--max-items`` (prompt, response) items drawn from the benchmark's test pairs (20–90 words);
bounded by ``--time-limit`` seconds per server. Model: bench/common.py's "mini" Llama RM (~5.3M parameters),
fp32. Every reward is checked against offline scoring (``models.scoring.score_texts``, what ``rewardlab
score`` runs) within 1e-5. Printed and saved (bench/results/serve.{json,md}): requests/s, items/s, p50/p99
latency, 5xx count, mismatches, and each server's throughput as a multiple of the two baselines.

    python bench/bench_serve.py                          # 2,000 requests, 32 clients, three servers
    python bench/bench_serve.py --requests 300 --clients 16 --results serve_quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build, read_pairs, save_results  # noqa: E402

from rewardlab.client import wait_until_healthy  # noqa: E402

SERVERS = {
    "rewardlab": "rewardlab serve (dynamic batching, defaults)",
    "rewardlab-nobatch": "rewardlab serve --no-batching (each request its own forward)",
    "serve_rm": "the serve_rm pattern: each request scored in its handler, one at a time",
}


# --------------------------------------------------------------------------- the serve_rm-pattern server


def serve_rm_pattern(model_dir: str, port: int) -> None:
    """A FastAPI app that scores each request inside its (async) handler, blocking the event loop, so requests
    run one after another — the scheduling of OpenRLHF's serve_rm. Same tokenisation, scoring path (Encoder +
    score_ids, batch 16) and torch threads as rewardlab serve, so only the scheduling differs."""
    import uvicorn
    from fastapi import FastAPI

    from rewardlab.data.batching import Encoder
    from rewardlab.models.reward_model import load_reward_model
    from rewardlab.models.scoring import score_ids

    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))  # as `rewardlab serve` sets it: only the scheduling differs
    model, tok, meta = load_reward_model(model_dir)
    encoder = Encoder(tok, meta.get("max_length", 512), "left", model.append_eos)
    app = FastAPI()

    @app.post("/score")
    async def score(body: dict):
        items = body["items"]
        seqs = [encoder.encode_example(i["prompt"], [i["response"]], ["response"])[0] for i in items]
        return {"rewards": score_ids(model, seqs, tok.pad_token_id, batch_size=16).tolist()}

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --------------------------------------------------------------------------- load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(server: str, model_dir: str, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    port = free_port()
    if server == "serve_rm":
        argv = [sys.executable, __file__, "--serve-rm", model_dir, "--port", str(port)]
    else:
        argv = [sys.executable, "-m", "rewardlab", "serve", "--model", model_dir, "--port", str(port)]
        argv += ["--no-batching"] if server == "rewardlab-nobatch" else []
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, timeout, lambda: None if proc.poll() is None else f"{server}: {proc.stderr.read()[-2000:]}")
    except TimeoutError:
        proc.kill()
        raise
    return proc, url


async def _load(url: str, requests: list[list[dict]], clients: int, time_limit: float) -> dict:
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for k in range(len(requests)):
        queue.put_nowait(k)
    latency, status, rewards = {}, {}, {}
    t_end = time.perf_counter() + time_limit

    async def client(c: httpx.AsyncClient):
        while not queue.empty() and time.perf_counter() < t_end:
            k = queue.get_nowait()
            t0 = time.perf_counter()
            try:
                r = await c.post(f"{url}/score", json={"items": requests[k]})
                status[k] = r.status_code
                if r.status_code == 200:
                    rewards[k] = r.json()["rewards"]
            except httpx.HTTPError as e:
                status[k] = type(e).__name__
            latency[k] = time.perf_counter() - t0

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(clients)))
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "latency": latency, "status": status, "rewards": rewards}


def run_load(url: str, requests: list[list[dict]], clients: int, time_limit: float) -> dict:
    return asyncio.run(_load(url, requests, clients, time_limit))


def forwards(url: str) -> int:
    """Model forwards a `rewardlab serve` ran so far (its /metrics)."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return int(float(next(line.split()[-1] for line in text.splitlines() if line.startswith("rewardlab_batch_items_count"))))


def make_requests(pairs: list[dict], n: int, max_items: int, seed: int = 0) -> list[list[dict]]:
    """``n`` requests of 1..max_items items (prompt, chosen or rejected), seeded."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        picks = rng.integers(0, len(pairs), rng.integers(1, max_items + 1))
        out.append([{"prompt": pairs[i]["prompt"], "response": pairs[i]["chosen" if rng.random() < 0.5 else "rejected"]}
                    for i in picks])
    return out


def offline_rewards(model_dir: str, requests: list[list[dict]]) -> list[np.ndarray]:
    """What `rewardlab score` gives each item (``score_texts``, the model's max_length), per request."""
    from rewardlab.models.reward_model import load_reward_model
    from rewardlab.models.scoring import score_texts

    model, tok, meta = load_reward_model(model_dir)
    flat = [i for r in requests for i in r]
    r, _ = score_texts(model, tok, [i["prompt"] for i in flat], [i["response"] for i in flat], 32, meta.get("max_length", 512), "left")
    out, start = [], 0
    for req in requests:
        out.append(r[start: start + len(req)])
        start += len(req)
    return out


def summarize(server: str, load: dict, requests: list[list[dict]], reference: list[np.ndarray]) -> dict:
    done = sorted(load["status"])
    codes = [load["status"][k] for k in done]
    lat = np.array([load["latency"][k] for k in done])
    ok = [k for k in done if load["status"][k] == 200]
    mismatched = sum(not np.allclose(load["rewards"][k], reference[k], atol=1e-5, rtol=0) for k in ok)
    max_diff = max((float(np.max(np.abs(np.asarray(load["rewards"][k]) - reference[k]))) for k in ok), default=0.0)
    items = sum(len(requests[k]) for k in ok)
    return {"server": server, "requests_sent": len(done), "ok": len(ok),
            "5xx": sum(isinstance(c, int) and c >= 500 for c in codes), "other_errors": sum(not isinstance(c, int) or 400 <= c < 500 for c in codes),
            "mismatched": int(mismatched), "max_abs_diff": max_diff, "seconds": round(load["seconds"], 2),
            "requests_per_s": round(len(ok) / load["seconds"], 2), "items_per_s": round(items / load["seconds"], 2),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1) if lat.size else None,
            "p99_ms": round(float(np.percentile(lat, 99)) * 1000, 1) if lat.size else None}


def table(results: list[dict]) -> str:
    by = {r["server"]: r for r in results}
    head = ["server", "requests ok", "5xx", "mismatched (>1e-5)", "req/s", "items/s", "p50 ms", "p99 ms", "× batching off", "× serve_rm"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        ratio = lambda other: f"{r['requests_per_s'] / by[other]['requests_per_s']:.2f}" if other in by and by[other]["requests_per_s"] else "–"  # noqa: E731
        lines.append(f"| {r['server']} | {r['ok']}/{r['requests_sent']} | {r['5xx']} | {r['mismatched']} | {r['requests_per_s']} | "
                     f"{r['items_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {ratio('rewardlab-nobatch')} | {ratio('serve_rm')} |")
    return "\n".join(lines)


def bench(requests_n: int, clients: int, max_items: int, time_limit: float, servers: list[str], size: str = "mini",
          log=print) -> tuple[dict, list[dict]]:
    paths = build(size=size)
    requests = make_requests(read_pairs(paths["test"]), requests_n, max_items)
    reference = offline_rewards(str(paths["model"]), requests)
    results = []
    for server in servers:
        proc, url = start(server, str(paths["model"]))
        try:
            run_load(url, requests[: min(64, len(requests))], clients, 30)  # warm-up (first forwards, allocator)
            results.append(summarize(server, run_load(url, requests, clients, time_limit), requests, reference))
            log(json.dumps(results[-1]))
        finally:
            proc.terminate()
            proc.wait(30)
    setup = {"requests": requests_n, "clients": clients, "max_items": max_items, "time_limit_s": time_limit,
             "model": f"bench {size} Llama (models/tiny.py SIZES), fp32", "torch_threads_per_server": max(1, (os.cpu_count() or 2) // 2),
             "servers": {s: SERVERS[s] for s in servers}}
    return setup, results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--max-items", type=int, default=4, help="items per request are 1..this")
    ap.add_argument("--time-limit", type=float, default=300, help="seconds of load per server at most")
    ap.add_argument("--servers", nargs="*", default=list(SERVERS), choices=list(SERVERS))
    ap.add_argument("--size", default="mini", help="model size of bench/common.py's builder: mini (4 × 256, ~5.3M), micro (2 × 64), nano")
    ap.add_argument("--results", default="serve", help="stem of the files written under bench/results (default serve)")
    ap.add_argument("--serve-rm", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_rm:
        return serve_rm_pattern(args.serve_rm, args.port)
    setup, results = bench(args.requests, args.clients, args.max_items, args.time_limit, args.servers, args.size)
    save_results(args.results, setup, results, table(results))


if __name__ == "__main__":
    main()
