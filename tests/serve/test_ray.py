"""`rewardlab serve --replicas N`: the same app on Ray Serve. A real 2-replica server gives offline-equal rewards,
spreads requests over both replicas, keeps the API key, and on SIGTERM answers the request in flight, stops and
leaves no Ray process behind. Without Ray, --replicas is a clear error naming the install command."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.config import ServeConfig
from rewardlab.models.scoring import score_texts
from rewardlab.serve.replicas import import_ray, replica_resources
from serve.conftest import start_server

KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}
WORDS = ["good", "bad", "answer", "the", "a", "reward", "model", "helpful", "long", "short", "yes", "no"]


def _items(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"prompt": " ".join(rng.choice(WORDS, rng.integers(2, 8))), "response": " ".join(rng.choice(WORDS, rng.integers(1, 30)))}
            for _ in range(n)]


def session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``: a server started in its own session and all that Ray started
    under it (Ray's workers take their own process groups, not their own sessions)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, _pgrp, session = stat.read_text().rsplit(")", 1)[1].split()[:4]  # after "pid (name)"
        except OSError:  # ended meanwhile
            continue
        if int(session) == sid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def test_replica_resources_split_the_machine_so_that_all_replicas_fit():
    """2 CPUs over 2 replicas: 1 each; over 3: 0.6666 (2/3 cut to Ray's 1e-4 step, 3 × 0.6666 <= 2). GPUs: a
    replica never spans two GPUs: 3 on 2 GPUs → 1/2 each; 2 on 4 GPUs → 1 each; 4 on 1 GPU → 1/4."""
    assert replica_resources(2, 2) == {"num_cpus": 1.0}
    three = replica_resources(3, 2)["num_cpus"]
    assert three == pytest.approx(0.6666) and 3 * three <= 2
    assert replica_resources(3, 2, gpus=2)["num_gpus"] == 0.5
    assert replica_resources(2, 16, gpus=4) == {"num_cpus": 8.0, "num_gpus": 1.0}
    assert replica_resources(4, 16, gpus=1)["num_gpus"] == 0.25


def test_replicas_is_validated_and_without_ray_is_a_clear_error(monkeypatch, tiny_llama):
    with pytest.raises(ValueError, match="replicas must be >= 0"):
        ServeConfig(model="m", replicas=-1)
    for name in ("ray", "ray.serve"):
        monkeypatch.setitem(sys.modules, name, None)  # import ray → ImportError, installed or not
    with pytest.raises(ValueError, match=r'pip install "ray\[serve\]"'):
        import_ray()
    result = CliRunner().invoke(app, ["serve", "--model", str(tiny_llama), "--replicas", "2"])
    assert result.exit_code != 0 and 'pip install "ray[serve]"' in result.output


def test_a_wrong_model_fails_before_ray_starts(tmp_path):
    pytest.importorskip("ray.serve", reason='needs ray[serve] (pip install -e ".[serve]")')
    t0 = time.time()
    result = CliRunner().invoke(app, ["serve", "--model", str(tmp_path / "no-such-model"), "--replicas", "2"])
    assert result.exit_code != 0 and "no-such-model" in result.output and time.time() - t0 < 30


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc to find Ray's processes")
def test_two_replicas_score_like_offline_share_the_load_and_stop_cleanly(served_model, tmp_path):
    pytest.importorskip("ray.serve", reason='needs ray[serve] (pip install -e ".[serve]")')
    path, model, tok = served_model
    ray_tmp = tempfile.mkdtemp(prefix="rlray-", dir="/tmp")  # Ray's socket paths must stay short: not under tmp_path
    log = open(tmp_path / "server.log", "w")
    proc = None
    try:
        # small forwards (--max-batch-tokens 32) so that the big request below is still in flight at SIGTERM
        proc, url = start_server(path, "--replicas", "2", "--api-key", KEY, "--max-batch-tokens", "32", env={"RAY_TMPDIR": ray_tmp},
                                 timeout=150, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        replicas, deadline = set(), time.time() + 60
        while len(replicas) < 2 and time.time() < deadline:  # /health names the replica that answered it
            replicas.add(httpx.get(f"{url}/health", timeout=10).json()["replica"])
        assert len(replicas) == 2, replicas

        batches = [_items(int(np.random.default_rng(k).integers(1, 9)), k) for k in range(48)]
        with httpx.Client(timeout=60, headers=AUTH) as c, ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda b: c.post(f"{url}/score", json={"items": b}), batches))
        assert [r.status_code for r in responses] == [200] * len(batches)
        for b, r in zip(batches, responses):
            offline, _ = score_texts(model, tok, [i["prompt"] for i in b], [i["response"] for i in b], 16, 512, "left")
            assert np.allclose(r.json()["rewards"], offline, atol=1e-5, rtol=0)
        assert {r.headers["x-rewardlab-replica"] for r in responses} == replicas  # both replicas scored

        denied = httpx.post(f"{url}/score", json={"items": batches[0]}, timeout=10)
        assert denied.status_code == 401 and denied.json()["error"]["code"] == 401 and denied.headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401

        big, result = _items(1000, 1), {}
        t = threading.Thread(target=lambda: result.update(r=httpx.post(f"{url}/score", json={"items": big}, headers=AUTH, timeout=120)))
        t.start()
        time.sleep(0.5)  # the request is in flight
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        t.join(120)
        assert result["r"].status_code == 200 and len(result["r"].json()["rewards"]) == 1000
        assert proc.wait(60) == 0
        stopped_in = time.time() - t0
        deadline = time.time() + 15
        while session_processes(proc.pid) and time.time() < deadline:  # Ray's processes end after the driver
            time.sleep(0.2)
        assert session_processes(proc.pid) == [], "Ray processes left behind"
        assert stopped_in < 60 and "serve: stopped" in (tmp_path / "server.log").read_text()
    finally:
        if proc is not None:
            for pid in session_processes(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(ray_tmp, ignore_errors=True)
