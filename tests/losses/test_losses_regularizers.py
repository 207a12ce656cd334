"""Regularisers: hand-derived values, degenerate batches, gradients."""

import math

import pytest
import torch

from rewardlab.losses import REGULARIZERS
from rewardlab.losses import regularizers as R


def t64(x):
    return torch.tensor(x, dtype=torch.float64)


def test_center_values():
    """(r_c + r_r)²: (1, −1) → 0; (2, 1) → 9."""
    torch.testing.assert_close(R.center(t64([1.0, 2.0]), t64([-1.0, 1.0])), t64([0.0, 9.0]))


def test_l2_reward_values():
    """r²: [2, −3] → [4, 9]."""
    torch.testing.assert_close(R.l2_reward(t64([2.0, -3.0])), t64([4.0, 9.0]))


def test_triplet_values():
    """B = 2, rows [chosen0, chosen1, rejected0, rejected1], gap 0.5, d = 1 − cos.
    Pair 0: a = [1, 0], p = chosen1 = [1, 0] (d = 0), n = [1, 1] (cos = 1/√2, d = 0.292893) →
    max(0, 0 − 0.292893 + 0.5) = 0.207107. Pair 1: a = [1, 0], p = chosen0 (d = 0), n = [−1, 0] (d = 2) → 0."""
    h = t64([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    torch.testing.assert_close(R.triplet(h, gap=0.5), t64([0.5 - (1 - 1 / math.sqrt(2)), 0.0]))
    with pytest.raises(ValueError, match=r"\(2B, C\)"):
        R.triplet(torch.zeros(3, 2))


def test_triplet_single_pair():
    """B = 1: the positive is the anchor itself (d = 0): orthogonal chosen/rejected → max(0, 0 − 1 + 0.5) = 0;
    identical chosen/rejected → 0.5."""
    torch.testing.assert_close(R.triplet(t64([[1.0, 0.0], [0.0, 1.0]])), t64([0.0]))
    torch.testing.assert_close(R.triplet(t64([[1.0, 2.0], [1.0, 2.0]])), t64([0.5]))


def test_length_decorrelation_values():
    """ρ² with r = [1, 2, 3]: L = [10, 20, 30] → 1. L = [30, 10, 20]: centred r = [−1, 0, 1], L = [10, −10, 0],
    cov = −10, Σr² = 2, ΣL² = 200 → ρ² = 100/400 = 0.25. Constant L, or N = 1 → 0."""
    r = t64([1.0, 2.0, 3.0])
    torch.testing.assert_close(R.length_decorrelation(r, t64([10.0, 20.0, 30.0])), t64(1.0))
    torch.testing.assert_close(R.length_decorrelation(r, t64([30.0, 10.0, 20.0])), t64(0.25))
    torch.testing.assert_close(R.length_decorrelation(r, t64([5.0, 5.0, 5.0])), t64(0.0))
    torch.testing.assert_close(R.length_decorrelation(t64([1.0]), t64([3.0])), t64(0.0))


def test_length_decorrelation_integer_lengths_and_zero_variance_gradient():
    """Integer lengths are accepted; zero variance gives a zero (not NaN) gradient."""
    r = t64([1.0, 1.0, 1.0]).requires_grad_(True)
    out = R.length_decorrelation(r, torch.tensor([3, 5, 9]))
    (g,) = torch.autograd.grad(out, r)
    assert out.item() == 0.0 and torch.equal(g, torch.zeros(3, dtype=torch.float64))


def test_odin_values():
    """|ρ(r_Q, L)| − ρ(r_L, L): r_Q = r_L = [1, 2, 3], L = [10, 20, 30] → 1 − 1 = 0.
    r_Q = [1, 2, 3], L = [30, 10, 20] (|ρ| = 0.5), r_L = [3, 1, 2] (ρ = 1) → −0.5."""
    torch.testing.assert_close(R.odin(t64([1.0, 2, 3]), t64([10.0, 20, 30]), t64([1.0, 2, 3])), t64(0.0))
    torch.testing.assert_close(R.odin(t64([1.0, 2, 3]), t64([30.0, 10, 20]), t64([3.0, 1, 2])), t64(-0.5))


def _inputs(name, n=6, dtype=torch.float64, scale=1.0):
    g = torch.Generator().manual_seed(1)
    pool = {"rewards": torch.randn(n, generator=g, dtype=dtype) * scale,
            "r_chosen": torch.randn(n // 2, generator=g, dtype=dtype) * scale,
            "r_rejected": torch.randn(n // 2, generator=g, dtype=dtype) * scale,
            "hidden": torch.randn(n, 4, generator=g, dtype=dtype) * scale,
            "lengths": torch.arange(n, dtype=dtype) * 7 % 5 + 1,
            "length_rewards": torch.randn(n, generator=g, dtype=dtype) * scale}
    return {k: pool[k] for k in REGULARIZERS[name].inputs}


@pytest.mark.parametrize("name", list(REGULARIZERS))
def test_gradcheck(name):
    spec = REGULARIZERS[name]
    inputs = _inputs(name)
    keys = [k for k in inputs if k != "lengths"]
    for k in keys:
        inputs[k].requires_grad_(True)

    def f(*xs):
        return spec.fn(**{**inputs, **dict(zip(keys, xs))}, **spec.defaults)

    assert torch.autograd.gradcheck(f, tuple(inputs[k] for k in keys))


@pytest.mark.parametrize("name", list(REGULARIZERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_at_extreme_rewards(name, dtype):
    spec = REGULARIZERS[name]
    inputs = _inputs(name, dtype=dtype, scale=1e4)
    for v in inputs.values():
        v.requires_grad_(v.is_floating_point())
    out = spec.fn(**inputs, **spec.defaults)
    grads = torch.autograd.grad(out.sum(), [v for v in inputs.values()], allow_unused=True)
    assert torch.isfinite(out).all() and all(g is None or torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", list(REGULARIZERS))
def test_empty_batch_is_finite(name):
    """N = 0: the result (per-row or scalar) sums to 0, never NaN."""
    spec = REGULARIZERS[name]
    out = spec.fn(**_inputs(name, n=0), **spec.defaults)
    assert out.sum().item() == 0.0
