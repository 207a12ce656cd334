"""Listwise losses: hand-derived values, K = 2 equals BT, padding invariance, empty rows, gradients.

ℓ(x) = −log σ(x) = log(1 + e^−x): ℓ(1) = 0.313262, ℓ(2) = 0.126928.
"""

import math

import pytest
import torch

from rewardlab.losses import LOSSES
from rewardlab.losses import listwise as L
from rewardlab.losses import pairwise as P

LISTWISE = [n for n, s in LOSSES.items() if s.family == "listwise"]
L1, L2 = 0.31326168751822286, 0.12692801104297263


def t64(rows):
    return torch.tensor(rows, dtype=torch.float64)


def all_valid(x):
    return torch.ones_like(x, dtype=torch.bool)


def test_kwise_bt_values():
    """r = [2, 1, 0], ranks [0, 1, 2]: pairs (0,1) Δ=1, (0,2) Δ=2, (1,2) Δ=1 → (2ℓ(1) + ℓ(2))/3 = 0.251151.
    Ranks [0, 0, 1] (items 0 and 1 tied, skipped): (0,2) Δ=2, (1,2) Δ=1 → (ℓ(2) + ℓ(1))/2 = 0.220095.
    All tied → no pair → 0."""
    r = t64([[2.0, 1.0, 0.0]] * 3)
    ranks = t64([[0, 1, 2], [0, 0, 1], [0, 0, 0]])
    torch.testing.assert_close(L.kwise_bt(r, ranks, all_valid(r)), t64([(2 * L1 + L2) / 3, (L1 + L2) / 2, 0.0]))


def test_plackett_luce_values():
    """r = 0 everywhere, ranks [0, 1, 2]: log 3 + log 2 + 0 = log 6 = 1.791759.
    r = [2, 1, 0]: (log(e² + e + 1) − 2) + (log(e + 1) − 1) + 0 = 0.407606 + 0.313262 = 0.720868.
    Breslow ties, r = 0, ranks [0, 0, 1]: the tied pair shares the risk set {0, 1, 2}: 2 log 3 = 2.197225."""
    r = t64([[0.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    ranks = t64([[0, 1, 2], [0, 1, 2], [0, 0, 1]])
    expected = t64([math.log(6.0), math.log(math.e**2 + math.e + 1) - 2 + L1, 2 * math.log(3.0)])
    torch.testing.assert_close(L.plackett_luce(r, ranks, all_valid(r)), expected)


def test_infonce_values():
    """r = 0, K = 4, best = slot 0 → −log(1/4) = log 4. r = [log 3, 0, 0, 0] → −log(3/6) = log 2.
    Ties at the best, r = 0, ranks [0, 0, 1, 2] → −log(2/4) = log 2. All tied → 0. Other ranks don't matter."""
    r = t64([[0.0] * 4, [math.log(3.0), 0, 0, 0], [0.0] * 4, [0.0] * 4, [math.log(3.0), 0, 0, 0]])
    ranks = t64([[0, 1, 2, 3], [0, 1, 2, 3], [0, 0, 1, 2], [1, 1, 1, 1], [0, 3, 3, 1]])
    expected = t64([math.log(4.0), math.log(2.0), math.log(2.0), 0.0, math.log(2.0)])
    torch.testing.assert_close(L.infonce(r, ranks, all_valid(r)), expected)


@pytest.mark.parametrize("name", LISTWISE)
def test_k2_equals_bt(name):
    """K = 2 with ranks [0, 1]: every listwise loss is −log σ(r_0 − r_1) = bt."""
    r = torch.randn(10, 2, dtype=torch.float64) * 3
    out = LOSSES[name].fn(r, t64([[0.0, 1.0]] * 10), all_valid(r))
    torch.testing.assert_close(out, P.bt(r[:, 0], r[:, 1]))


@pytest.mark.parametrize("name", LISTWISE)
def test_rank_order_not_slot_order(name):
    """Permuting slots together with their ranks changes nothing."""
    r = torch.randn(4, 5, dtype=torch.float64)
    ranks = torch.randint(0, 3, (4, 5)).to(torch.float64)
    perm = torch.randperm(5)
    fn = LOSSES[name].fn
    torch.testing.assert_close(fn(r, ranks, all_valid(r)), fn(r[:, perm], ranks[:, perm], all_valid(r)))


@pytest.mark.parametrize("name", LISTWISE)
def test_padding_does_not_change_values_or_gradients(name):
    """Two padding slots (reward NaN / huge, arbitrary rank) appended: same values, same gradients on the
    real slots, zero gradient (not NaN) on the padding."""
    fn = LOSSES[name].fn
    r = torch.randn(3, 3, dtype=torch.float64)
    ranks = t64([[0, 1, 2], [0, 0, 1], [2, 0, 1]])
    pad_r = torch.cat([r, t64([[float("nan"), 1e30]] * 3)], dim=1).requires_grad_(True)
    pad_ranks = torch.cat([ranks, t64([[-5.0, float("nan")]] * 3)], dim=1)
    valid = torch.tensor([[True] * 3 + [False] * 2] * 3)
    r0 = r.clone().requires_grad_(True)
    base = fn(r0, ranks, all_valid(r))
    padded = fn(pad_r, pad_ranks, valid)
    torch.testing.assert_close(padded, base)
    (g0,) = torch.autograd.grad(base.sum(), r0)
    (g1,) = torch.autograd.grad(padded.sum(), pad_r)
    torch.testing.assert_close(g1[:, :3], g0)
    assert torch.equal(g1[:, 3:], torch.zeros(3, 2, dtype=torch.float64))


@pytest.mark.parametrize("name", LISTWISE)
def test_no_valid_pairs_gives_zero(name):
    """Rows with no valid slot or a single valid slot give exactly 0 with finite (zero) gradients;
    a batch of zero rows gives a (0,) result."""
    fn = LOSSES[name].fn
    r = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    valid = torch.tensor([[False, False, False], [False, True, False]])
    out = fn(r, t64([[0, 1, 2], [0, 1, 2]]), valid)
    assert torch.equal(out, t64([0.0, 0.0]))
    (g,) = torch.autograd.grad(out.sum(), r)
    assert torch.equal(g, torch.zeros_like(g))
    empty = torch.zeros(0, 4, dtype=torch.float64)
    assert fn(empty, empty, empty.bool()).shape == (0,)


@pytest.mark.parametrize("name", LISTWISE)
def test_gradcheck(name):
    """float64 finite differences on a padded batch with ties."""
    r = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    ranks = t64([[0, 1, 2, 3], [1, 0, 0, 2], [0, 2, 1, 0]])
    valid = torch.tensor([[True, True, True, True], [True, True, True, False], [True, False, True, True]])
    assert torch.autograd.gradcheck(lambda x: LOSSES[name].fn(x, ranks, valid), (r,))


@pytest.mark.parametrize("name", LISTWISE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_at_extreme_rewards(name, dtype):
    """Rewards ±1e4 in either order: finite values and gradients."""
    r = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=dtype, requires_grad=True)
    out = LOSSES[name].fn(r, torch.tensor([[0.0, 1, 2], [0, 1, 1]], dtype=dtype), all_valid(r))
    (g,) = torch.autograd.grad(out.sum(), r)
    assert torch.isfinite(out).all() and torch.isfinite(g).all()


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        L.kwise_bt(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3, dtype=torch.bool))
