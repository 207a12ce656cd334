"""A served tiny reward model: the app in-process (TestClient) and a real server in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from rewardlab.client import wait_until_healthy


@pytest.fixture(scope="session")
def served_model(tiny_llama):
    """(model folder, RewardModel, tokenizer): the tiny Llama loaded as `rewardlab score` loads it."""
    from rewardlab.models.reward_model import load_reward_model

    model, tok, _ = load_reward_model(str(tiny_llama))
    return str(tiny_llama), model, tok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, *args: str, env: dict | None = None, timeout: float = 120.0, **popen):
    """`rewardlab serve` in a subprocess on a free loopback port; waits for /health. Returns (process, base url).
    ``popen``: more Popen arguments, or other ``stdout``/``stderr`` than pipes."""
    port = free_port()
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    proc = subprocess.Popen([sys.executable, "-m", "rewardlab", "serve", "--model", model, "--port", str(port), *args],
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, text=True, **popen)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, timeout, lambda: None if proc.poll() is None else
                           f"{proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    except TimeoutError:
        proc.kill()
        raise
    return proc, url
