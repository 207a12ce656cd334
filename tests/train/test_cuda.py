"""Training and scoring on a CUDA GPU: bf16 chosen by default, accuracy kept, CPU and GPU rewards equal.
Skipped without a CUDA device (CI has none); run them with ``pytest -m gpu``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_train_on_cuda_defaults_to_bf16_and_learns(toy_data, tiny_llama, tmp_path):
    from rewardlab.config import TrainConfig
    from rewardlab.train.loop import train

    cfg = TrainConfig(data=str(toy_data["train"]), eval_data=str(toy_data["test"]), model=str(tiny_llama), output=str(tmp_path / "rm"),
                      loss="bt", epochs=3, lr=3e-3, batch_size=16, max_length=64, eval_split=0.0, progress=False)
    meta = train(cfg, log=lambda *a: None)
    assert meta["mixed_precision"] == "bf16"
    assert meta["metrics"]["accuracy"] >= 0.9
    assert torch.cuda.max_memory_allocated() > 0


def test_cuda_rewards_equal_cpu_rewards_fp32_and_track_them_in_bf16(tiny_llama):
    from rewardlab.models.scoring import score_texts
    from rewardlab.models.reward_model import load_reward_model
    from toydata import toy_pairs

    pairs = toy_pairs(64, seed=3)
    prompts, texts = [p["prompt"] for p in pairs] * 2, [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    torch.backends.cuda.matmul.allow_tf32 = False
    rm, tok, _ = load_reward_model(str(tiny_llama))
    cpu, _ = score_texts(rm.eval(), tok, prompts, texts, batch_size=16)
    gpu, _ = score_texts(rm.to("cuda"), tok, prompts, texts, batch_size=16)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)
    bf16, _ = score_texts(rm.to(torch.bfloat16), tok, prompts, texts, batch_size=16)
    assert np.corrcoef(bf16, cpu)[0, 1] > 0.99


def test_cuda_pooled_last_layer_matches_the_full_forward_in_bf16(tiny_llama):
    from rewardlab.models.scoring import score_texts
    from rewardlab.models.reward_model import load_reward_model
    from toydata import toy_pairs

    pairs = toy_pairs(64, seed=4)
    prompts, texts = [p["prompt"] for p in pairs], [p["chosen"] for p in pairs]
    rm, tok, _ = load_reward_model(str(tiny_llama), dtype=torch.bfloat16)
    rm = rm.to("cuda")
    rm.pooled_last_layer = False
    full, _ = score_texts(rm, tok, prompts, texts, batch_size=16)
    rm.pooled_last_layer = True
    short, _ = score_texts(rm, tok, prompts, texts, batch_size=16)
    assert rm._pooled_state == "on"
    np.testing.assert_allclose(short, full, atol=3e-2 * (1 + np.abs(full).max()))
