"""Multi-attribute reward models: a head of A outputs, their weighted sum as the reward, masked MSE over the
attributes, per-attribute metrics. Expected values are derived by hand in each docstring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewardlab.data.batching import COLLATORS, Encoded, example_fields
from rewardlab.data.records import DataError, rating_from_row
from rewardlab.eval import analyze
from rewardlab.losses.catalogue import get_loss
from rewardlab.losses.objective import objective
from rewardlab.models.reward_model import RewardModel, attribute_spec, load_backbone, load_reward_model, set_attributes
from rewardlab.models.scoring import score_dataset, score_ids, score_shared_prefix, score_texts
from rewardlab.types import RatingRecord

NAMES = ["helpfulness", "correctness", "verbosity"]
WEIGHTS = [0.5, 2.0, -1.0]
TEXTS = ["What do you think of coffee? great answer.", "rain", "the answer is about chess and it seems quite wrong."]


def k_head(path, names=NAMES, weights=WEIGHTS):
    """(model, tokenizer): a backbone with a fresh head of len(names) outputs, named and weighted."""
    model, tok = load_backbone(str(path), num_labels=len(names))
    set_attributes(model.config, names, weights)
    return model.eval(), tok


@pytest.fixture(scope="module")
def saved_k_model(tiny_llama, tmp_path_factory):
    """A tiny Llama with a random 3-attribute head, saved as a plain HF folder."""
    model, tok = k_head(tiny_llama)
    out = tmp_path_factory.mktemp("k-head")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_k_head_reward_is_the_weighted_attributes_decoder(tiny_llama):
    """Hand head on the pooled state h (C,): rows e0, e1, e0 + e1 (zero elsewhere), so the attributes are
    (h0, h1, h0 + h1); with weights (0.5, 2, −1) the reward is 0.5·h0 + 2·h1 − (h0 + h1) = −0.5·h0 + h1."""
    model, tok = k_head(tiny_llama)
    with torch.no_grad():
        w = torch.zeros_like(model.score.weight)  # (3, C)
        w[0, 0] = w[1, 1] = w[2, 0] = w[2, 1] = 1.0
        model.score.weight.copy_(w)
    rm = RewardModel(model).eval()
    assert rm.attributes == NAMES and rm.attribute_weights.tolist() == WEIGHTS
    b = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = rm(b.input_ids, b.attention_mask, return_hidden=True)
    h = out.hidden  # (3, C)
    assert out.attributes.shape == (3, 3)
    assert torch.allclose(out.attributes, torch.stack([h[:, 0], h[:, 1], h[:, 0] + h[:, 1]], 1), atol=1e-6)
    assert torch.allclose(out.rewards, -0.5 * h[:, 0] + h[:, 1], atol=1e-6)


def test_k_head_reward_is_the_weighted_attributes_encoder(tiny_models):
    """BERT's classifier with zero weights and bias (1, 2, 3): every response has attributes (1, 2, 3) and
    reward 0.5·1 + 2·2 − 1·3 = 1.5."""
    model, tok = k_head(tiny_models["bert"])
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
    rm = RewardModel(model).eval()
    b = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = rm(b.input_ids, b.attention_mask)
    assert torch.allclose(out.attributes, torch.tensor([[1.0, 2.0, 3.0]] * 3))
    assert torch.allclose(out.rewards, torch.full((3,), 1.5))


def test_default_weights_are_the_mean_and_one_label_path_is_unchanged(tiny_llama):
    """Default weights 1/A; a 1-label RM gives its head's output itself (bit for bit) and no attributes."""
    model, _ = load_backbone(str(tiny_llama), num_labels=2)
    assert set_attributes(model.config, ["a", "b"]) == [0.5, 0.5]
    one, tok = load_backbone(str(tiny_llama))
    rm = RewardModel(one).eval()
    assert rm.attributes is None and attribute_spec(one.config) is None
    b = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = rm(b.input_ids, b.attention_mask, return_hidden=True)
        assert out.attributes is None
        assert torch.equal(out.rewards, one.score(out.hidden).squeeze(-1))


def test_k_labels_without_weights_and_bad_attribute_configs_are_refused(tiny_llama):
    model, _ = load_backbone(str(tiny_llama), num_labels=3)
    with pytest.raises(ValueError, match="num_labels=1, or one label per attribute"):
        RewardModel(model)
    with pytest.raises(ValueError, match="2 attributes but the head has 3 outputs"):
        set_attributes(model.config, ["a", "b"])
    with pytest.raises(ValueError, match="distinct"):
        set_attributes(model.config, ["a", "a", "b"])
    with pytest.raises(ValueError, match="3 finite numbers"):
        set_attributes(model.config, ["a", "b", "c"], [1.0, 2.0])


def test_saved_k_model_loads_with_names_weights_and_plain_transformers(saved_k_model):
    """The folder is a plain HF classifier: num_labels = 3, id2label = the names, attribute_weights in config.json;
    load_reward_model gives the weighted sum of the same logits transformers gives."""
    from transformers import AutoModelForSequenceClassification

    rm, tok, meta = load_reward_model(str(saved_k_model))
    assert meta["attributes"] == {"names": NAMES, "weights": WEIGHTS}
    plain = AutoModelForSequenceClassification.from_pretrained(saved_k_model).eval()
    assert plain.config.num_labels == 3 and [plain.config.id2label[i] for i in range(3)] == NAMES
    assert plain.config.attribute_weights == WEIGHTS and plain.config.problem_type == "regression"
    b = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = plain(**b).logits  # (3, 3)
        out = rm(b.input_ids, b.attention_mask)
    assert torch.allclose(out.attributes, logits, atol=1e-5)
    assert torch.allclose(out.rewards, logits @ torch.tensor(WEIGHTS), atol=1e-5)
    again, _ = load_backbone(str(saved_k_model), num_labels=3)  # what --resume loads: the saved head, not a fresh one
    assert torch.equal(again.score.weight, plain.score.weight)


def test_scoring_paths_give_rewards_and_attributes_together(saved_k_model, tiny_llama):
    """score_ids / score_texts / score_dataset / score_shared_prefix: rewards = attributes @ weights, the same
    numbers whichever path (shared prefix within 1e-4)."""
    rm, tok, _ = load_reward_model(str(saved_k_model))
    rewards, report, values = score_texts(rm, tok, ["Say hi."] * 3, TEXTS, attributes=True)
    assert values.shape == (3, 3) and np.allclose(rewards, values @ np.array(WEIGHTS), atol=1e-5)
    plain, _ = score_texts(rm, tok, ["Say hi."] * 3, TEXTS)
    assert np.allclose(plain, rewards, atol=1e-6)
    recs = [RatingRecord("Say hi.", t, score=1.0) for t in TEXTS]
    scored = score_dataset(rm, tok, recs, attributes=True)
    assert np.allclose(np.concatenate(scored.attributes), values, atol=1e-5)
    ids = [tok("Say hi. " + t)["input_ids"] for t in TEXTS]
    r1, v1 = score_ids(rm, ids, tok.pad_token_id, attributes=True)
    r2, v2 = score_shared_prefix(rm, ids, [0, 0, 0], tok.pad_token_id, attributes=True)
    assert np.allclose(r1, r2, atol=1e-4) and np.allclose(v1, v2, atol=1e-4)
    r3, v3 = score_shared_prefix(rm, ids, [0, 1, 2], tok.pad_token_id, attributes=True)  # nothing shared: the plain path
    assert np.allclose(r1, r3, atol=1e-6) and np.allclose(v1, v3, atol=1e-6)
    one, _, meta = load_reward_model(str(tiny_llama))
    assert one.attributes is None and meta["attributes"] is None
    with pytest.raises(ValueError, match="not a multi-attribute RM"):
        score_ids(one, ids, tok.pad_token_id, attributes=True)


def test_masked_mse_over_attributes_on_a_hand_batch():
    """Two records over attributes (a, b): the first rates both (1, 3), the second only b (0), so its target is
    (NaN, 0). Predictions (2, 1) and (5, 1):
        row 1: ((2 − 1)² + (1 − 3)²) / 2 = 2.5      row 2: a masked, (1 − 0)² / 1 = 1      mean 1.75
    With mse weights (1, 3): row 1: (1·1 + 3·4) / 4 = 3.25, row 2: 1, mean 2.125. The masked prediction (row 2, a)
    gets no gradient."""
    recs = [RatingRecord("p", "x", scores={"a": 1.0, "b": 3.0}), RatingRecord("p", "y", scores={"b": 0.0})]
    batch = COLLATORS["ratings"]([Encoded([[0]], **example_fields(r, ["a", "b"])) for r in recs], 0)
    assert torch.isnan(batch.target[1, 0]) and batch.target[1, 1] == 0.0
    pred = torch.tensor([[2.0, 1.0], [5.0, 1.0]], requires_grad=True)
    spec = get_loss("mse")
    loss = objective(spec, pred, batch, {"weights": None})
    assert loss.item() == pytest.approx(1.75)
    loss.backward()
    assert pred.grad[1, 0] == 0.0 and pred.grad[1, 1] == pytest.approx(0.5 * 2 * 1.0)  # d/dr (r − 0)² / 1, over B = 2
    assert objective(spec, pred.detach(), batch, {"weights": [1.0, 3.0]}).item() == pytest.approx(2.125)


def test_null_attribute_is_not_rated():
    """A null value in `scores` leaves the attribute out of the record; all null without a score is an error."""
    rec, _ = rating_from_row({"prompt": "p", "response": "r", "scores": {"a": 2, "b": None}}, "f:1")
    assert rec.scores == {"a": 2.0}
    assert example_fields(rec, ["a", "b"])["target"][0] == 2.0 and math.isnan(example_fields(rec, ["a", "b"])["target"][1])
    with pytest.raises(DataError, match="every attribute is null"):
        rating_from_row({"prompt": "p", "response": "r", "scores": {"a": None}}, "f:2")


def test_attribute_metrics_by_hand():
    """Predictions (1, 2, 3, 4) against ratings (1, NaN, 2, 5): 3 rated, errors (0, 1, −1) → RMSE √(2/3).
    Pearson of (1, 3, 4) and (1, 2, 5): deviations (−5, 1, 4)/3 and (−5, −2, 7)/3 → 51 / √(42·78) = 0.89105;
    Spearman 1 (same order). A second attribute no response rates: n 0, RMSE None."""
    values = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]])
    targets = np.array([[1.0, np.nan], [np.nan, np.nan], [2.0, np.nan], [5.0, np.nan]])
    out = analyze.attribute_analysis(values, targets, ["a", "b"])
    assert out["a"]["rmse"] == pytest.approx(math.sqrt(2 / 3)) and out["a"]["n"] == 3
    assert out["a"]["pearson"] == pytest.approx(51 / math.sqrt(42 * 78)) and out["a"]["spearman"] == pytest.approx(1.0)
    assert out["b"] == {"rmse": None, "pearson": None, "spearman": None, "n": 0}
    recs = [RatingRecord("p", "x", scores={"a": 1.0}), RatingRecord("p", "y", score=2.0)]
    assert np.array_equal(analyze.attribute_targets(recs, ["a", "b"]), np.array([[1.0, np.nan], [np.nan, np.nan]]), equal_nan=True)


def test_train_config_checks_attributes():
    from rewardlab.config import TrainConfig

    cfg = TrainConfig(loss="mse", attributes="a,b".split(","), attribute_weights=[1, -1])
    assert cfg.attributes == ["a", "b"] and cfg.attribute_weights == [1.0, -1.0]
    with pytest.raises(ValueError, match="use --loss mse"):
        TrainConfig(loss="bt", attributes=["a", "b"])
    with pytest.raises(ValueError, match="1 attribute weights for 2 attributes"):
        TrainConfig(loss="mse", attributes=["a", "b"], attribute_weights=[1.0])
    with pytest.raises(ValueError, match="give --attributes too"):
        TrainConfig(loss="mse", attribute_weights=[1.0])
    with pytest.raises(ValueError, match="distinct"):
        TrainConfig(loss="mse", attributes=["a", "a"])
