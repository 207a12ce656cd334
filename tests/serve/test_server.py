"""A real `rewardlab serve` process: concurrent clients get offline-equal rewards; SIGTERM drains in-flight work."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from rewardlab.models.scoring import score_texts
from serve.conftest import start_server


def _items(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    words = ["good", "bad", "answer", "the", "a", "reward", "model", "helpful", "long", "short", "yes", "no"]
    return [{"prompt": " ".join(rng.choice(words, rng.integers(2, 8))), "response": " ".join(rng.choice(words, rng.integers(1, 30)))}
            for _ in range(n)]


def test_concurrent_clients_get_offline_rewards_and_no_errors(served_model):
    path, model, tok = served_model
    proc, url = start_server(path, "--max-wait-ms", "10")
    try:
        batches = [_items(int(np.random.default_rng(k).integers(1, 9)), k) for k in range(120)]
        with httpx.Client(timeout=60) as c, ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(lambda b: c.post(f"{url}/score", json={"items": b}), batches))
        assert [r.status_code for r in responses] == [200] * len(batches)
        for b, r in zip(batches, responses):
            offline, _ = score_texts(model, tok, [i["prompt"] for i in b], [i["response"] for i in b], 16, 512, "left")
            assert np.allclose(r.json()["rewards"], offline, atol=1e-5, rtol=0)
        metrics = httpx.get(f"{url}/metrics").text
        forwards = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("rewardlab_batch_items_count")))
        assert forwards < len(batches)  # requests were batched together
    finally:
        proc.kill()
        proc.wait()


def test_sigterm_finishes_in_flight_requests_then_exits(served_model):
    path, _, _ = served_model
    proc, url = start_server(path, "--max-batch-tokens", "256")  # small forwards: the big request takes a while
    result = {}

    def big_request():
        result["response"] = httpx.post(f"{url}/score", json={"items": _items(600, 1)}, timeout=120)

    t = threading.Thread(target=big_request)
    t.start()
    time.sleep(1.0)  # the request is in flight
    proc.send_signal(signal.SIGTERM)
    t.join(120)
    assert result["response"].status_code == 200 and len(result["response"].json()["rewards"]) == 600
    assert proc.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    assert "batcher drained" in proc.stderr.read()
    try:
        httpx.get(f"{url}/health", timeout=2)
        accepted = True
    except httpx.HTTPError:
        accepted = False
    assert not accepted
