"""The optimisers on a CUDA GPU (the session's Accelerator places policy, reference and value head there).
Skipped without a CUDA device (CI has none); run them with ``pytest -m gpu``."""

from __future__ import annotations

import json
import math

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
SMALL = ["--eval-prompts", "8", "--max-new-tokens", "16", "--seed", "1"]


def invoke(args: list) -> dict:
    from typer.testing import CliRunner

    from rewardlab.optimize.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + (repr(result.exception) if result.exception else "")
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", ["rloo", "ppo"])
def test_rl_steps_run_on_cuda(method, tiny_policy, tmp_path):
    torch.cuda.reset_peak_memory_stats()
    out = invoke([method, "--policy", tiny_policy, "--output", tmp_path / method, "--steps", 2, "--batch-size", 4, "--k", 2, *SMALL])
    assert out["steps"] == 2
    assert torch.cuda.max_memory_allocated() > 0  # the work ran on the GPU
    train = [json.loads(x) for x in (tmp_path / method / "log.jsonl").read_text().splitlines()]
    train = [r for r in train if r["split"] == "train"]
    assert len(train) == 2 and all(math.isfinite(r["kl_k3"]) and r["kl_k3"] >= 0 for r in train)
