"""Fixtures of the bad-input tests: a random tiny causal LM for the `optimize` verbs."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def random_policy_dir(tmp_path_factory):
    """A random nano causal LM with a tokenizer trained on the toy corpus: a policy folder in seconds (no training)."""
    from rewardlab.models.tiny import train_tokenizer
    from rewardlab.optimize.policy import build_policy
    from toydata import toy_corpus

    out = tmp_path_factory.mktemp("policy")
    tok = train_tokenizer(toy_corpus(), vocab_size=300)
    build_policy(tok, "nano", seed=0).save_pretrained(out)
    tok.save_pretrained(out)
    return out
