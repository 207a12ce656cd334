"""Pointwise losses: hand-derived values, NaN = missing, limiting cases, gradients, extremes, empty."""

import math

import pytest
import torch

from rewardlab.losses import LOSSES
from rewardlab.losses import pointwise as Pt

LOG2 = math.log(2.0)
NAN = float("nan")
POINTWISE = [n for n, s in LOSSES.items() if s.family == "pointwise"]


def t64(x):
    return torch.tensor(x, dtype=torch.float64)


def sample_target(name, B, dtype=torch.float64):
    """A valid target for each pointwise loss: labels for bce/focal_bce, [label, score] for bce_mse."""
    if name in ("bce", "focal_bce"):
        return torch.tensor([1.0, 0.0] * (B // 2) + [1.0] * (B % 2), dtype=dtype)
    if name == "bce_mse":
        return torch.stack([torch.tensor([1.0, 0.0] * (B // 2) + [1.0] * (B % 2), dtype=dtype),
                            torch.linspace(-1, 1, B, dtype=dtype)], dim=1)
    return torch.linspace(0, 4, B, dtype=dtype)


def test_mse_values():
    """(B,): r = [1, 2], y = [0, 0] → [1, 4]. (B, A) with weights [3, 1]: r = [1, 2], y = [0, 0] →
    (3·1 + 1·4)/4 = 1.75; unweighted mean → 2.5; y = [0, NaN] → only attribute 0 → 1; all NaN → 0."""
    torch.testing.assert_close(Pt.mse(t64([1.0, 2.0]), t64([0.0, 0.0])), t64([1.0, 4.0]))
    r = t64([[1.0, 2.0]] * 4)
    y = t64([[0.0, 0.0], [0.0, 0.0], [0.0, NAN], [NAN, NAN]])
    torch.testing.assert_close(Pt.mse(r[:1], y[:1], weights=[3.0, 1.0]), t64([1.75]))
    torch.testing.assert_close(Pt.mse(r, y), t64([2.5, 2.5, 1.0, 0.0]))
    with pytest.raises(ValueError, match="weights"):
        Pt.mse(r, y, weights=[1.0, 1.0, 1.0])


def test_mse_missing_targets_have_no_gradient():
    """A NaN target gives exactly zero gradient to its output (and no NaN anywhere)."""
    r = t64([[1.0, 2.0]]).requires_grad_(True)
    (g,) = torch.autograd.grad(Pt.mse(r, t64([[0.0, NAN]])).sum(), r)
    torch.testing.assert_close(g, t64([[2.0, 0.0]]))  # d/dr (r − 0)² = 2r = 2 at r = 1; mean over 1 present


def test_bce_values():
    """r = 0 → log 2 for y = 1 and y = 0. r = log 3 (σ = 3/4): y = 1 → log(4/3) = 0.287682; y = 0 → log 4.
    Soft label y = 1/2 at r = 0 → log 2. NaN label → 0. Out-of-range label → error."""
    r = t64([0.0, 0.0, math.log(3.0), math.log(3.0), 0.0, 5.0])
    y = t64([1.0, 0.0, 1.0, 0.0, 0.5, NAN])
    torch.testing.assert_close(Pt.bce(r, y), t64([LOG2, LOG2, math.log(4 / 3), math.log(4.0), LOG2, 0.0]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Pt.bce(t64([0.0]), t64([2.0]))


def test_focal_bce_values_and_limit():
    """γ = 2, r = log 3 (σ = 3/4): y = 1 → (1/4)² log(4/3) = 0.017980; y = 0 → p_t = 1/4, (3/4)² log 4 = 0.779791.
    γ = 0 equals bce. Soft labels are rejected."""
    r = t64([math.log(3.0), math.log(3.0)])
    torch.testing.assert_close(Pt.focal_bce(r, t64([1.0, 0.0])),
                               t64([0.0625 * math.log(4 / 3), 0.5625 * math.log(4.0)]))
    x, y = torch.randn(8, dtype=torch.float64), (torch.rand(8) > 0.5).double()
    torch.testing.assert_close(Pt.focal_bce(x, y, gamma=0.0), Pt.bce(x, y))
    with pytest.raises(ValueError, match="0 or 1"):
        Pt.focal_bce(t64([0.0]), t64([0.5]))


def test_bce_mse_values():
    """r = 0, target [label 1, score 2] → log 2 + (0 − 2)² = 4.693147; [NaN, 2] → 4; [1, NaN] → log 2.
    Weights: bce_weight = 2, mse_weight = 0.5 → 2 log 2 + 2 = 3.386294."""
    r = t64([0.0, 0.0, 0.0])
    y = t64([[1.0, 2.0], [NAN, 2.0], [1.0, NAN]])
    torch.testing.assert_close(Pt.bce_mse(r, y), t64([LOG2 + 4.0, 4.0, LOG2]))
    torch.testing.assert_close(Pt.bce_mse(r[:1], y[:1], bce_weight=2.0, mse_weight=0.5), t64([2 * LOG2 + 2.0]))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        Pt.bce_mse(r, t64([1.0, 0.0, 1.0]))


@pytest.mark.parametrize("name", POINTWISE)
def test_gradcheck(name):
    r = torch.randn(6, dtype=torch.float64, requires_grad=True)
    y = sample_target(name, 6)
    assert torch.autograd.gradcheck(lambda x: LOSSES[name].fn(x, y), (r,))


def test_gradcheck_mse_multi_attribute():
    r = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = t64([[1.0, NAN, 2.0], [0.0, 1.0, 3.0], [NAN, NAN, NAN], [4.0, 4.0, 0.0]])
    assert torch.autograd.gradcheck(lambda x: Pt.mse(x, y, weights=[1.0, 2.0, 0.5]), (r,))


@pytest.mark.parametrize("name", POINTWISE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_at_extreme_rewards(name, dtype):
    r = torch.tensor([1e4, -1e4], dtype=dtype, requires_grad=True)
    out = LOSSES[name].fn(r, sample_target(name, 2, dtype))
    (g,) = torch.autograd.grad(out.sum(), r)
    assert torch.isfinite(out).all() and torch.isfinite(g).all()


@pytest.mark.parametrize("name", POINTWISE)
def test_empty_batch(name):
    r = torch.zeros(0, dtype=torch.float64, requires_grad=True)
    out = LOSSES[name].fn(r, sample_target(name, 0))
    assert out.shape == (0,) and out.sum().item() == 0.0
