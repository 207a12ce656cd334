"""The one objective (rewardlab.losses.objective): family call conventions, tie handling, regulariser inputs,
batch accuracy — each against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rewardlab.losses import get_loss, get_regularizer
from rewardlab.losses.objective import batch_accuracy, masked_mean, objective, regularization, regularizer_inputs
from rewardlab.types import PairBatch, PointBatch, RankBatch

softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731


def _pairs(tie=(False, False), margin=(0.0, 0.0)) -> PairBatch:
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]])  # 2 chosen rows then 2 rejected rows
    return PairBatch(torch.zeros_like(mask), mask, torch.tensor(margin), torch.tensor(tie))


def test_pairwise_bt_is_the_mean_over_pairs_and_drops_data_ties():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0])  # r_c = (1, 0), r_r = (0, 0)
    both = (softplus(-1.0) + math.log(2.0)) / 2  # (0.31326 + 0.69315) / 2
    assert objective(get_loss("bt"), rewards, _pairs(), {}).item() == pytest.approx(both, abs=1e-6)
    # pair 1 marked a tie in the data: BT does not model ties, so only pair 0 counts
    assert objective(get_loss("bt"), rewards, _pairs(tie=(False, True)), {}).item() == pytest.approx(softplus(-1.0), abs=1e-6)


def test_pairwise_margin_reaches_the_loss_that_takes_it():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0])
    # bt_margin: softplus(-(Δ - m)); Δ = (1, 0), m = (0.5, 0) → (softplus(-0.5) + log 2) / 2
    got = objective(get_loss("bt_margin"), rewards, _pairs(margin=(0.5, 0.0)), {}).item()
    assert got == pytest.approx((softplus(-0.5) + math.log(2.0)) / 2, abs=1e-6)


def test_all_pairs_ties_give_zero_with_a_gradient():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0], requires_grad=True)
    loss = objective(get_loss("bt"), rewards, _pairs(tie=(True, True)), {})
    loss.backward()
    assert loss.item() == 0.0 and rewards.grad is not None and rewards.grad.abs().sum() == 0


def test_listwise_plackett_luce_on_two_items_equals_bt():
    ranks = torch.tensor([[0.0, 1.0]])
    batch = RankBatch(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long), ranks, torch.ones(1, 2, dtype=torch.bool))
    got = objective(get_loss("plackett_luce"), torch.tensor([2.0, 0.0]), batch, {}).item()
    assert got == pytest.approx(softplus(-2.0), abs=1e-6)  # -log(e²/(e²+1)) = 0.126928


def test_pointwise_mse_is_the_mean_squared_error():
    batch = PointBatch(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long), torch.tensor([0.0, 3.0]))
    assert objective(get_loss("mse"), torch.tensor([1.0, 5.0]), batch, {}).item() == pytest.approx((1 + 4) / 2)


def test_masked_mean_divides_by_what_is_kept():
    per = torch.tensor([1.0, 2.0, 6.0])
    assert masked_mean(per).item() == pytest.approx(3.0)
    assert masked_mean(per, torch.tensor([True, False, True])).item() == pytest.approx(3.5)


def test_regularizer_inputs_and_regularization():
    rewards = torch.tensor([1.0, 2.0, -1.0, 0.0])
    avail = regularizer_inputs(_pairs(), rewards)
    assert avail["r_chosen"].tolist() == [1.0, 2.0] and avail["r_rejected"].tolist() == [-1.0, 0.0]
    assert avail["lengths"].tolist() == [2.0, 3.0, 1.0, 2.0]
    # center: mean((r_c + r_r)²) = ((1-1)² + (2+0)²)/2 = 2; l2_reward: mean(r²) = (1+4+1+0)/4 = 1.5
    regs = [(get_regularizer("center"), 0.1, {}), (get_regularizer("l2_reward"), 2.0, {})]
    assert regularization(regs, avail).item() == pytest.approx(0.1 * 2.0 + 2.0 * 1.5)
    with pytest.raises(ValueError, match="needs hidden"):
        regularization([(get_regularizer("triplet"), 1.0, {})], avail)


def test_ranking_padding_rows_are_not_regularised_or_counted():
    ranks = torch.tensor([[0.0, 1.0, 2.0]])
    valid = torch.tensor([[True, True, False]])  # the third response is padding
    batch = RankBatch(torch.zeros(3, 2, dtype=torch.long), torch.tensor([[1, 1], [1, 0], [1, 0]]), ranks, valid)
    rewards = torch.tensor([0.5, 1.0, 9.0])
    assert regularizer_inputs(batch, rewards)["rewards"].tolist() == [0.5, 1.0]
    correct, n = batch_accuracy(rewards, batch)
    assert (int(correct), int(n)) == (0, 1)  # one ordered valid pair (0 over 1), scored the wrong way


def test_pair_accuracy_leaves_out_data_ties():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.5])  # pair 0 right, pair 1 wrong
    assert [int(x) for x in batch_accuracy(rewards, _pairs())] == [1, 2]
    assert [int(x) for x in batch_accuracy(rewards, _pairs(tie=(False, True)))] == [1, 1]
