"""Policy optimisation over several processes: `torchrun --nproc_per_node 2 -m rewardlab optimize rloo|reinforce|ppo`
with --batch-size B equals one process with --batch-size 2B (gloo on CPUs); for ppo (gae and grpo) the 1-process run
has twice the --minibatch-size too, since PPO steps the optimiser per minibatch.

Why they can be equal: a step's 2B prompts are drawn once and cut in process order (``Session.rows_for_step``); each
generate call covers --sample-chunk prompts and is seeded by the step and its first prompt's global index
(``Session.rollout_step``), so a prompt's samples do not depend on the split; RLOO's baseline is within one prompt's
k samples (all on one process); REINFORCE's batch mean, the logged statistics and the eval samples are gathered in
process order; ``forward_tokens`` cuts columns that are padding in every row, so a minibatch's numbers do not depend on
how far its process's rollout was padded; DDP averages the gradients. PPO also whitens scores and GAE advantages over
every process, draws one permutation of all processes' samples (``algorithms.process_minibatches``: each process
takes its share of every global minibatch, an empty share a zero-weighted row) and divides each process's token sums
by half the global minibatch's token count.

Measured (tiny policy, 2 × 2 prompts × k 2, 3 steps, lr 3e-3, 24 new tokens; training moved weights by up to 9e-3):
one minibatch per process: final weights and every logged figure bit-identical. Two minibatches per process: the
samples are the same, weights within 1.2e-6 (rloo) / 5.5e-7 (reinforce) and logged KL / loss within ~1e-6 relative — one process adds four
minibatch gradients in a row, two processes add two each and DDP averages the sums (another rounding order).
PPO, 2 epochs: the samples are the same, weights within 2.3e-5 (gae, 12 AdamW steps) / 3.9e-5 (grpo, 24), logged
figures within 5.8e-5 / 1.6e-5 relative — the same rounding, grown over more optimiser steps. On a CPU without
AVX-512 BF16 (other kernels) gae grew further: weights 9.8e-5 apart, figures 1.6e-4 relative (test docstring).
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


def _run(policy, out: Path, method: str, batch_size: int, minibatch: int, processes: int, *extra: str) -> list[dict]:
    """One `rewardlab optimize` run (torchrun when processes > 1), ``extra`` CLI flags appended; its log.jsonl lines
    without the timings."""
    args = ["-m", "rewardlab", "optimize", method, "--policy", str(policy), "--reward", "gold", "--output", str(out),
            "--steps", "3", "--batch-size", str(batch_size), "--k", "2", "--minibatch-size", str(minibatch),
            "--sample-chunk", "2", "--lr", "3e-3", "--max-new-tokens", "24", "--eval-prompts", "16", "--n-prompts", "200",
            "--no-progress", *extra]
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
    _assert_same_run(one, two, rel=1e-4, atol=1e-5)
    a, b = _weights(tmp_path / "one" / "policy"), _weights(tmp_path / "two" / "policy")
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-5), k


def _assert_same_run(one: list[dict], two: list[dict], rel: float = 3e-4, atol: float = 1e-6) -> None:
    """The same samples (proxy, gold and length identical) and every other logged float within ``rel`` (default 3e-4)."""
    assert [(r["step"], r["split"]) for r in two] == [(r["step"], r["split"]) for r in one]
    assert len(one) == 5
    for x, y in zip(one, two):
        assert x.keys() == y.keys()
        assert (x["proxy"], x["gold"], x["length"]) == (y["proxy"], y["gold"], y["length"])  # the same samples
        for key, v in x.items():
            if isinstance(v, float):
                assert y[key] == pytest.approx(v, rel=rel, abs=atol), (x["step"], x["split"], key)


@pytest.mark.slow
@pytest.mark.skipif(not (BIN / "torchrun").exists(), reason="torchrun not installed")
def test_ppo_gae_two_processes_equal_one_process_within_rounding(tiny_policy, tmp_path):
    """PPO with GAE, --whiten-rewards, 2 epochs and 2 global minibatches of 4 samples a step: 1 process × 4 prompts ×
    k 2 with --minibatch-size 4 against 2 processes × 2 prompts with --minibatch-size 2 (per process). The scores and
    the advantages are whitened over both processes, one permutation of the 8 samples cuts the global minibatches
    (here shares of 1 to 3 samples), each loss is divided by half the global minibatch's tokens. Measured: the samples
    are identical, step 1's figures within 4e-8 relative. Twelve AdamW steps of lr 3e-3 grow the rounding, and how far
    depends on the CPU's kernels: on an AMD EPYC with AVX-512 BF16 the final weights were within 2.3e-5 and the logged
    figures within 5.8e-5 relative; on one without, within 9.8e-5 and 1.6e-4 relative (the final eval's k3 KL), and
    step 3's policy loss, a mean of whitened advantages that nearly cancels (-6.6e-4), 2.7e-6 apart. Hence weights
    within 5e-4, figures within 1e-3 relative or 2e-5 absolute (the advantages' unit scale). Training moved the weights
    by up to 3.3e-2; the old per-process code left them 5.8e-2 apart, with other samples from step 2 on."""
    extra = ("--ppo-epochs", "2", "--whiten-rewards")
    one = _run(tiny_policy, tmp_path / "one", "ppo", 4, 4, 1, *extra)
    two = _run(tiny_policy, tmp_path / "two", "ppo", 2, 2, 2, *extra)
    _assert_same_run(one, two, rel=1e-3, atol=2e-5)
    a, b, init = _weights(tmp_path / "one" / "policy"), _weights(tmp_path / "two" / "policy"), _weights(tiny_policy)
    assert max((a[k] - init[k]).abs().max().item() for k in a) > 1e-3  # training moved the policy
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=5e-4), k


@pytest.mark.slow
@pytest.mark.skipif(not (BIN / "torchrun").exists(), reason="torchrun not installed")
def test_grpo_two_processes_equal_one_process_within_rounding(tiny_policy, tmp_path):
    """GRPO (group advantages, k3 KL in the loss), 2 epochs of global minibatches of 2 samples: 1 process with
    --minibatch-size 2 against 2 processes with --minibatch-size 1. Half of the 24 global minibatches fall wholly on one
    process, so the other takes part with a zero-weighted row (the seeds of steps 0–2 make 12 such). Measured: the
    samples are identical, the weights within 3.9e-5 after 24 AdamW steps (training moved them by up to 5.8e-2; the old
    per-process code: 7.7e-2 apart), the logged figures within 1.6e-5 relative."""
    extra = ("--ppo-epochs", "2", "--advantage", "grpo")
    one = _run(tiny_policy, tmp_path / "one", "ppo", 4, 2, 1, *extra)
    two = _run(tiny_policy, tmp_path / "two", "ppo", 2, 1, 2, *extra)
    _assert_same_run(one, two)
    a, b = _weights(tmp_path / "one" / "policy"), _weights(tmp_path / "two" / "policy")
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-4), k
