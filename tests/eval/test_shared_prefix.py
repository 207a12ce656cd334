"""Shared-prompt scoring: each prompt encoded once, its responses appended to the KV cache.

The rewards must be those of the full sequences (``score_ids``), for every decoder family the tiny
models cover, for pairs and K-wise rankings of uneven K, and at any batch size.
"""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab.models.scoring import score_dataset, shared_prefixes, supports_shared_prefix
from rewardlab.types import PairRecord, RankRecord


def test_shared_prefixes_by_hand():
    seqs = [[1, 2, 3, 4], [1, 2, 3, 9, 9], [1, 2], [5, 6, 7], [1, 7], [1, 8], [1, 2, 3]]
    owner = [0, 0, 1, 2, 2, 2, 3]
    groups, plen = shared_prefixes(seqs, owner)
    assert groups == [[0, 1], [2], [3, 4, 5], [6]]
    # [1,2,3] shared by record 0; record 2 shares nothing ([5..] vs [1..]); singletons get 0
    assert plen == [3, 0, 0, 0]
    # a sequence that is entirely the prefix of another keeps its last token as its own suffix
    groups, plen = shared_prefixes([[1, 2, 3], [1, 2, 3, 4]], [0, 0])
    assert plen == [2]


@pytest.fixture(scope="module")
def decoders(tiny_models):
    from rewardlab.models.reward_model import load_reward_model

    out = {}
    for arch in ("llama", "gpt2"):
        model, tok, _ = load_reward_model(str(tiny_models[arch]))
        out[arch] = (model, tok)
    return out


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_shared_prompt_equals_full_sequences(decoders, arch):
    """40 pairs + 10 rankings of K = 2..4: shared-prompt rewards equal full-sequence rewards within 1e-4."""
    from conftest import toy_pairs

    model, tok = decoders[arch]
    assert supports_shared_prefix(model)
    rows = toy_pairs(60, seed=7)
    pairs = [PairRecord(r["prompt"], r["chosen"], r["rejected"]) for r in rows[:40]]
    ranks = [RankRecord(r["prompt"], [r["chosen"], r["rejected"], rows[i + 1]["chosen"], rows[i + 2]["rejected"]][: 2 + i % 3],
                        list(range(2 + i % 3))) for i, r in enumerate(rows[40:50], 40)]
    for recs in (pairs, ranks):
        full = np.concatenate(score_dataset(model, tok, recs, batch_size=5, shared_prompt=False).rewards)
        assert np.ptp(full) > 1e-3
        for bs in (1, 6, 64):
            shared = np.concatenate(score_dataset(model, tok, recs, batch_size=bs, shared_prompt=True).rewards)
            assert np.max(np.abs(shared - full)) < 1e-4, (arch, bs)


def test_encoders_and_singletons_fall_back(tiny_models):
    """An encoder (bidirectional: the prompt sees the response) never uses the cache path."""
    from rewardlab.models.reward_model import load_reward_model

    model, tok, _ = load_reward_model(str(tiny_models["bert"]))
    assert not supports_shared_prefix(model)
    recs = [PairRecord("a prompt", "one answer", "another answer")]
    scored = score_dataset(model, tok, recs, shared_prompt=True)
    ref = np.concatenate(score_dataset(model, tok, recs, shared_prompt=False).rewards)
    assert np.array_equal(np.concatenate(scored.rewards), ref) and scored.shared_prompt is False  # the fallback is reported


def test_eval_says_when_shared_prompt_falls_back_and_refuses_left_padding(tiny_models, tmp_path):
    import json
    import subprocess
    import sys

    from rewardlab.config import EvalConfig

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "a prompt", "chosen": "one answer", "rejected": "another"}) + "\n")
    proc = subprocess.run([sys.executable, "-m", "rewardlab", "eval", "--model", str(tiny_models["bert"]), "--data", str(data),
                           "--shared-prompt", "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--shared-prompt not used" in proc.stderr
    with pytest.raises(ValueError, match="--padding-side left would be ignored"):
        EvalConfig(model="m", data="d", shared_prompt=True, padding_side="left")
