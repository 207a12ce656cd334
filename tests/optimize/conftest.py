"""Fixtures of the optimisation tests: one thread per test (the CPU is shared; OpenMP spin-waiting on a busy
2-core machine makes tiny models 10× slower), a random tiny causal LM, and the tiny trained policy."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_here(one_thread):
    """Every optimize test runs on one torch thread (``one_thread`` of tests/conftest.py)."""


@pytest.fixture(scope="session")
def random_lm():
    """(random LlamaForCausalLM "nano", tokenizer) over the built-in task's text; no training."""
    from rewardlab.models.tiny import train_tokenizer
    from rewardlab.optimize.policy import build_policy
    from rewardlab.tasks.gold import GoldTask

    records, _ = GoldTask().make_ratings(200, seed=5)
    tok = train_tokenizer([r.prompt for r in records] + [r.response for r in records], vocab_size=400)
    tok.padding_side = "left"
    model = build_policy(tok, "nano", seed=0).eval()
    return model, tok


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory):
    """The tiny initial policy, trained by rewardlab on the built-in task (SFT, ~10 s on one core)."""
    from rewardlab.config import PolicyConfig
    from rewardlab.optimize.policy import train_policy

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("policy")
    train_policy(PolicyConfig(output=str(out), n_examples=1500, epochs=2, lr=5e-3, seed=0), log=lambda m: None)
    return out
