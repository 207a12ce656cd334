"""The last layer at the pooled token only (rewardlab.models.pooled): the same rewards and gradients as
the full forward on every supported layer type, padding on either side; full forward where it must."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rewardlab.models import pooled
from rewardlab.models.reward_model import RewardModel, load_reward_model


def _batch(seed: int = 0, left: bool = False):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 300, (6, 13), generator=g)
    mask = torch.ones_like(ids)
    for row, n in ((0, 9), (2, 4), (3, 1), (5, 12)):  # real lengths; the rest is padding
        if left:
            mask[row, : 13 - n] = 0
        else:
            mask[row, n:] = 0
    return ids, mask


def _config_model(kind: str):
    """Tiny random decoders of the layer types the shortcut knows: Mistral with grouped-query attention,
    Qwen2 (q/k/v biases), Qwen3 (q_norm / k_norm)."""
    from transformers import MistralConfig, Qwen2Config, Qwen3Config

    common = dict(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, num_labels=1, pad_token_id=0, max_position_embeddings=64)
    cfg = {"mistral": lambda: MistralConfig(**common, sliding_window=None),
           "qwen2": lambda: Qwen2Config(**common), "qwen3": lambda: Qwen3Config(**common, head_dim=16)}[kind]()
    torch.manual_seed(0)
    return RewardModel(AutoModelForSequenceClassification.from_config(cfg).eval())


def _both(rm, ids, mask):
    with torch.no_grad():
        rm.pooled_last_layer = False
        full = rm(ids, mask, return_hidden=True)
        rm.pooled_last_layer = True
        short = rm(ids, mask, return_hidden=True)
    return full, short


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("left", [False, True])
def test_pooled_rewards_equal_the_full_forward(tiny_models, arch, left):
    rm, _, _ = load_reward_model(str(tiny_models[arch]))
    full, short = _both(rm, *_batch(left=left))
    assert rm._pooled_state == "on"
    torch.testing.assert_close(short.rewards, full.rewards, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(short.hidden, full.hidden, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["mistral", "qwen2", "qwen3"])
def test_pooled_rewards_equal_on_gqa_bias_and_qk_norm_layers(kind):
    rm = _config_model(kind)
    assert pooled._kind(pooled.last_layer(rm.model.model)) == "llama"
    full, short = _both(rm, *_batch(seed=1))
    assert rm._pooled_state == "on"
    torch.testing.assert_close(short.rewards, full.rewards, atol=1e-5, rtol=1e-5)


def test_pooled_gradients_equal_the_full_forward(tiny_llama):
    rm, _, _ = load_reward_model(str(tiny_llama))
    rm.train()
    ids, mask = _batch(seed=2)
    grads = []
    for flag in (False, True):
        rm.pooled_last_layer = flag
        rm.zero_grad()
        r = rm(ids, mask).rewards
        (r * torch.arange(1.0, 7.0)).sum().backward()
        grads.append({n: p.grad.clone() for n, p in rm.named_parameters() if p.grad is not None})
    assert rm._pooled_state == "on" and grads[0].keys() == grads[1].keys()
    for name in grads[0]:  # the last layer's query / MLP weights get their gradient through the pooled rows only
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5, rtol=1e-4)


def test_full_forward_under_gradient_checkpointing_and_dropout(tiny_models):
    rm, _, _ = load_reward_model(str(tiny_models["llama"]))
    rm.train()
    rm.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert not rm._pooled_trainable(rm.model.model)  # the recomputation would run the layer without the pooled spec
    r = rm(*_batch()).rewards
    r.sum().backward()
    assert rm._pooled_state is None  # never tried
    with torch.no_grad():  # scoring is not affected
        rm(*_batch())
    assert rm._pooled_state == "on"

    gpt2 = AutoModelForSequenceClassification.from_pretrained(tiny_models["gpt2"], num_labels=1, resid_pdrop=0.1)
    model = RewardModel(gpt2).train()
    assert pooled.has_dropout(gpt2) and not model._pooled_trainable(gpt2.transformer)


def test_a_mismatch_turns_the_shortcut_off_with_a_warning(tiny_llama, monkeypatch):
    rm, _, _ = load_reward_model(str(tiny_llama))
    ids, mask = _batch()
    with torch.no_grad():
        full = rm.model.score(rm.model.model(input_ids=ids, attention_mask=mask,
                                              position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).last_hidden_state)
    wrong = pooled.POOLED["llama"]
    monkeypatch.setitem(pooled.POOLED, "llama", lambda *a: wrong(*a) + 1.0)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        out = rm(ids, mask).rewards
    assert rm._pooled_state == "off" and any("differs from the full forward" in str(w.message) for w in caught)
    last = (torch.arange(13) * mask).argmax(-1)
    torch.testing.assert_close(out, full[torch.arange(6), last, 0], atol=1e-5, rtol=1e-5)


def test_unknown_layers_run_in_full_and_weights_are_untouched(tiny_models, tmp_path):
    rm, _, _ = load_reward_model(str(tiny_models["llama"]))
    keys = list(rm.state_dict())
    with torch.no_grad():
        rm(*_batch())
    assert list(rm.state_dict()) == keys  # the layer is patched on the instance, not wrapped
    copied = copy.deepcopy(rm)  # a deep copy calls its own weights, not the original's
    with torch.no_grad():
        for p in copied.parameters():
            p.mul_(0.5)
        a, b = rm(*_batch()).rewards, copied(*_batch()).rewards
    assert not torch.allclose(a, b)
    rm.save_pretrained(tmp_path / "saved")
    again = RewardModel(AutoModelForSequenceClassification.from_pretrained(tmp_path / "saved")).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(*_batch()).rewards, a)

    class Odd(torch.nn.Module):  # a layer of a shape the module does not know
        def __init__(self):
            super().__init__()
            self.attn = torch.nn.Linear(4, 4)

    assert pooled._kind(Odd()) is None


def test_score_ids_pads_to_a_multiple_with_the_same_rewards(tiny_llama):
    from rewardlab.data.batching import pad
    from rewardlab.models.scoring import score_ids

    ids, mask = pad([[5, 6, 7], [8]], 0, multiple=8)
    assert ids.shape == (2, 8) and mask.sum().item() == 4
    ids, mask = pad([[5, 6, 7], [8]], 0, multiple=4, side="left")
    assert ids.tolist() == [[0, 5, 6, 7], [0, 0, 0, 8]] and mask.tolist() == [[0, 1, 1, 1], [0, 0, 0, 1]]
    rm, _, _ = load_reward_model(str(tiny_llama))
    seqs = [list(range(3, 3 + n)) for n in (5, 9, 2, 14, 7)]
    a = score_ids(rm, seqs, 0, batch_size=2)
    b = score_ids(rm, seqs, 0, batch_size=2, multiple=16)
    np.testing.assert_allclose(b, a, atol=1e-5)


def test_threads_scoring_one_model_at_once_get_their_own_rewards(tiny_llama):
    from concurrent.futures import ThreadPoolExecutor

    rm, _, _ = load_reward_model(str(tiny_llama))
    batches = [_batch(seed=s, left=bool(s % 2)) for s in range(8)]
    with torch.no_grad():
        rm.pooled_last_layer = False
        expected = [rm(*b).rewards for b in batches]
        rm.pooled_last_layer = True

        def score(b):
            return [rm(*b).rewards for _ in range(20)]

        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(score, batches))
    assert rm._pooled_state == "on"
    for want, runs in zip(expected, got):
        for r in runs:
            torch.testing.assert_close(r, want, atol=1e-5, rtol=1e-5)
