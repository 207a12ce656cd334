"""Policy optimisation over several processes: `torchrun --nproc_per_node 2 -m rewardlab optimize rloo|reinforce`
with --batch-size B equals one process with --batch-size 2B (gloo on CPUs).

Why they can be equal: a step's 2B prompts are drawn once and cut in process order (``Session.rows_for_step``); each
generate call covers --sample-chunk prompts and is seeded by the step and its first prompt's global index
(``Session.rollout_step``), so a prompt's samples do not depend on the split; RLOO's baseline is within one prompt's
k samples (all on one process); REINFORCE's batch mean, the logged statistics and the eval samples are gathered in
process order; ``forward_tokens`` cuts columns that are padding in every row, so a minibatch's numbers do not depend on
how far its process's rollout was padded; DDP averages the gradients.

Measured (tiny policy, 2 × 2 prompts × k 2, 3 steps, lr 3e-3, 24 new tokens; training moved weights by up to 9e-3):
one minibatch per process: final weights and every logged figure bit-identical. Two minibatches per process: the
samples are the same, weights within 1.2e-6 (rloo) / 5.5e-7 (reinforce) and logged KL / loss within ~1e-6 relative — one process adds four
minibatch gradients in a row, two processes add two each and DDP averages the sums (another rounding order).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

BIN = Path(sys.executable).parent


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _run(policy, out: Path, method: str, batch_size: int, minibatch: int, processes: int) -> list[dict]:
    """One `rewardlab optimize` run (torchrun when processes > 1); its log.jsonl lines without the timings."""
    args = ["-m", "rewardlab", "optimize", method, "--policy", str(policy), "--reward", "gold", "--output", str(out),
            "--steps", "3", "--batch-size", str(batch_size), "--k", "2", "--minibatch-size", str(minibatch),
            "--sample-chunk", "2", "--lr", "3e-3", "--max-new-tokens", "24", "--eval-prompts", "16", "--n-prompts", "200",
            "--no-progress"]
    launcher = [sys.executable] if processes == 1 else [str(BIN / "torchrun"), "--nproc_per_node", str(processes),
                                                        "--master_port", _free_port()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # gloo on CPU, also on a machine with a GPU
    proc = subprocess.run([*launcher, *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count('{"method"') == 1  # one summary line, printed by the main process only
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in (out / "log.jsonl").read_text().splitlines()]


def _weights(folder: Path) -> dict:
    return load_file(folder / "model.safetensors")


@pytest.mark.slow
@pytest.mark.skipif(not (BIN / "torchrun").exists(), reason="torchrun not installed")
def test_rloo_two_processes_equal_one_process_bit_for_bit(tiny_policy, tmp_path):
    """One minibatch per process (--minibatch-size 4 = 2 prompts × k 2): the 1-process run adds the gradients of its two
    minibatches, each scaled by 4/8; DDP averages the two processes' gradients, each scaled by 4/4 — the same sums
    (a power-of-two scale is exact), so weights and every logged figure are identical."""
    one = _run(tiny_policy, tmp_path / "one", "rloo", batch_size=4, minibatch=4, processes=1)
    two = _run(tiny_policy, tmp_path / "two", "rloo", batch_size=2, minibatch=4, processes=2)
    assert [(r["step"], r["split"]) for r in two] == [(0, "eval"), (1, "train"), (2, "train"), (3, "train"), (3, "eval")]
    assert two == one  # only the main process wrote, and every figure is the 1-process run's
    a, b, init = _weights(tmp_path / "one" / "policy"), _weights(tmp_path / "two" / "policy"), _weights(tiny_policy)
    assert max((a[k] - init[k]).abs().max().item() for k in a) > 1e-3  # training moved the policy
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
@pytest.mark.skipif(not (BIN / "torchrun").exists(), reason="torchrun not installed")
def test_reinforce_two_processes_equal_one_process_within_rounding(tiny_policy, tmp_path):
    """Two minibatches per process (--minibatch-size 2) and REINFORCE's baseline over the gathered batch: the samples
    (hence proxy and gold) are identical; weights and the other figures agree to rounding (measured: 5.5e-7)."""
    one = _run(tiny_policy, tmp_path / "one", "reinforce", batch_size=4, minibatch=2, processes=1)
    two = _run(tiny_policy, tmp_path / "two", "reinforce", batch_size=2, minibatch=2, processes=2)
    assert len(one) == len(two) == 5
    for x, y in zip(one, two):
        assert x.keys() == y.keys()
        assert (x["proxy"], x["gold"], x["length"]) == (y["proxy"], y["gold"], y["length"])  # the same samples
        for key, v in x.items():
            if isinstance(v, float):
                assert y[key] == pytest.approx(v, rel=1e-4, abs=1e-5), (x["step"], x["split"], key)
    a, b = _weights(tmp_path / "one" / "policy"), _weights(tmp_path / "two" / "policy")
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-5), k
