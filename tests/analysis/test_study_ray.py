"""`rewardlab study --executor ray` gives the runs `--executor local` gives: same grid, same seeds, same numbers.

A tiny head-mode grid on the built-in task (tiny random backbone, 2 losses × 2 seeds) runs once inline and once as
Ray tasks on a local cluster the executor starts itself (2 CPUs, no dashboard) and shuts down after. Ray's tasks
run in other processes, so equal results also say a run depends on nothing of the driver's process but its job.
About 15 s on a shared 2-core CPU, most of it Ray starting.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rewardlab.cli import app

ray = pytest.importorskip("ray")
TIMES = {"seconds", "train_seconds"}  # wall-clock fields of result.json; everything else must match


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    from rewardlab.analysis.features import resolve_backbone

    return resolve_backbone("tiny", tmp_path_factory.mktemp("tiny-backbone"))


def study(out: Path, backbone: str, *extra, losses: str = "bt,plackett_luce", seeds: str = "0,1") -> str:
    args = ["study", "--output", out, "--backbone", backbone, "--losses", losses, "--seeds", seeds, "--flip-rates", "0.2",
            "--train-sizes", 32, "--test-prompts", 2, "--candidates", 8, "--head-epochs", 2, "--no-progress", *extra]
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def runs_of(out: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/result.json"))}


def test_ray_executor_equals_local_executor(tmp_path, tiny_backbone, monkeypatch):
    from rewardlab.analysis.study import ray_init_args

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    local = ray_init_args(None, 2)  # a fresh cluster, even where a `ray start` left one behind
    assert local["address"] == "local" and local["num_cpus"] == 2 and local["include_dashboard"] is False
    assert ray_init_args("auto", 2) == {"address": "auto"}  # a cluster is joined as it is
    assert not ray.is_initialized()
    study(tmp_path / "local", tiny_backbone, "--workers", 1)
    log = study(tmp_path / "ray", tiny_backbone, "--executor", "ray", "--workers", 2)
    assert "4 runs in the grid; 0 done, 4 to run" in log and "report:" in log
    assert not ray.is_initialized()  # the executor started the local cluster, so it shut it down
    local, remote = runs_of(tmp_path / "local"), runs_of(tmp_path / "ray")
    assert len(local) == 4 and local.keys() == remote.keys()
    for run_id, a in local.items():
        b = remote[run_id]
        assert {k: v for k, v in a.items() if k not in TIMES} == {k: v for k, v in b.items() if k not in TIMES}, run_id
        assert 0.0 <= a["metrics"]["accuracy_gold"] <= 1.0
        ra, rb = (np.load(d / "runs" / run_id / "test_rewards.npy") for d in (tmp_path / "local", tmp_path / "ray"))
        assert np.array_equal(ra, rb), run_id  # bit for bit: same seeds, 1 torch thread or many
    summaries = [[{k: v for k, v in row.items() if not k.startswith("train_seconds")}
                  for row in json.loads((tmp_path / d / "results.json").read_text())["summary"]] for d in ("local", "ray")]
    assert summaries[0] == summaries[1]  # means, CIs, paired differences: all but the timing


@pytest.mark.slow
def test_ray_address_joins_a_running_cluster_and_leaves_it_running(tmp_path, tiny_backbone, monkeypatch):
    """`ray start --head` (token authentication on, Ray's default) then `--ray-address HOST:PORT` with RAY_AUTH_MODE=token:
    the study runs on that cluster, gives the local executor's result, and only disconnects from it. ~15 s.
    The head keeps its files (and its ray_current_cluster, which `ray.init()` would join) in a folder of its own."""
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_tmp = tempfile.mkdtemp(prefix="rl-ray-", dir="/tmp")  # short: Ray's unix sockets live below it (107-byte limit)
    head_log = tmp_path / "head.log"
    head = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--head", "--port", str(port),
                             "--num-cpus", "1", "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", ray_tmp,
                             "--block"], stdout=open(head_log, "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in head_log.read_text():  # --block: printed once up, then it serves until terminated
            assert head.poll() is None and time.monotonic() < deadline, head_log.read_text()[-3000:]
            time.sleep(0.5)
        monkeypatch.setenv("RAY_AUTH_MODE", "token")  # an explicit address does not switch token auth on by itself
        study(tmp_path / "local", tiny_backbone, "--workers", 1, losses="bt", seeds="0")
        log = study(tmp_path / "ray", tiny_backbone, "--executor", "ray", "--ray-address", f"127.0.0.1:{port}", losses="bt", seeds="0")
        assert "1 runs in the grid; 0 done, 1 to run" in log and not ray.is_initialized()
        assert head.poll() is None  # the cluster is not the study's to stop
        (a,), (b,) = runs_of(tmp_path / "local").values(), runs_of(tmp_path / "ray").values()
        assert {k: v for k, v in a.items() if k not in TIMES} == {k: v for k, v in b.items() if k not in TIMES}
    finally:
        head.terminate()  # the blocking head stops the processes of the cluster it started
        head.wait(timeout=60)
        shutil.rmtree(ray_tmp, ignore_errors=True)
