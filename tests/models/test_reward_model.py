"""RewardModel: pooling at the last real token, independent of padding side and batch composition."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rewardlab.data.batching import pad
from rewardlab.models.reward_model import RewardModel, load_backbone

TEXTS = ["What do you think of coffee? great answer.", "rain", "the answer is about chess and it seems quite wrong."]


@pytest.mark.parametrize("arch", ["llama", "gpt2", "bert"])
def test_rewards_independent_of_padding_and_batch(tiny_models, arch):
    model, tok = load_backbone(str(tiny_models[arch]))
    rm = RewardModel(model).eval()
    ids = [tok(t)["input_ids"] for t in TEXTS]
    with torch.no_grad():
        alone = torch.cat([rm(*pad([s], tok.pad_token_id)).rewards for s in ids])
        right = rm(*pad(ids, tok.pad_token_id)).rewards
        assert torch.allclose(alone, right, atol=1e-5)
        if arch != "bert":  # decoders: left padding gives the same rewards (positions follow the mask)
            T = max(map(len, ids))
            left = torch.tensor([[tok.pad_token_id] * (T - len(s)) + s for s in ids])
            mask = torch.tensor([[0] * (T - len(s)) + [1] * len(s) for s in ids])
            assert torch.allclose(alone, rm(left, mask).rewards, atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "bert"])
def test_plain_transformers_gives_same_rewards(tiny_models, arch):
    model, tok = load_backbone(str(tiny_models[arch]))
    rm = RewardModel(model).eval()
    plain = AutoModelForSequenceClassification.from_pretrained(tiny_models[arch]).eval()
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(rm(batch.input_ids, batch.attention_mask).rewards, plain(**batch).logits.squeeze(-1), atol=1e-5)


def test_pooling_choice(tiny_models):
    llama, _ = load_backbone(str(tiny_models["llama"]))
    bert, _ = load_backbone(str(tiny_models["bert"]))
    assert RewardModel(llama).pooling == "last_token" and RewardModel(bert).pooling == "model"
    with pytest.raises(ValueError, match="needs a decoder"):
        RewardModel(bert, pooling="last_token")
    with pytest.raises(ValueError, match="unknown pooling"):
        RewardModel(llama, pooling="mean")


def test_hidden_features(tiny_models):
    for arch in ("llama", "bert"):
        model, tok = load_backbone(str(tiny_models[arch]))
        b = tok(TEXTS, padding=True, return_tensors="pt")
        out = RewardModel(model)(b.input_ids, b.attention_mask, return_hidden=True)
        assert out.hidden.shape == (3, model.config.hidden_size)


def test_disable_dropout_zeroes_every_rate_has_dropout_sees():
    """BERT-style modules and an attention rate: has_dropout before, none after (what --disable-dropout does)."""
    from torch import nn

    from rewardlab.models.pooled import disable_dropout, has_dropout

    attn = nn.Module()
    attn.attention_dropout = 0.1
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1), attn)
    assert has_dropout(model)
    disable_dropout(model)
    assert not has_dropout(model) and model[1].p == 0.0 and attn.attention_dropout == 0.0
