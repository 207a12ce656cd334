"""Pairwise losses: hand-derived values, limiting cases, gradients, extreme Δ, empty batches.

Notation: Δ = r_chosen − r_rejected; ℓ(x) = −log σ(x) = log(1 + e^−x). Expected values are derived
in each test's docstring; r_rejected = 0 unless said otherwise, so Δ = r_chosen.
"""

import math

import pytest
import torch

from rewardlab.losses import LLAMA2_MARGIN_LARGE, LLAMA2_MARGIN_SMALL, LOSSES
from rewardlab.losses import pairwise as P

LOG2 = math.log(2.0)
PAIRWISE = [n for n, s in LOSSES.items() if s.family == "pairwise"]


def d64(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def call(name, r_c, r_r, margin=None, tie=None, **hp):
    """Call a catalogue loss the way the trainer does (margin / tie only when the spec asks)."""
    spec = LOSSES[name]
    kw = {}
    if "margin" in spec.inputs:
        kw["margin"] = torch.zeros_like(r_c) if margin is None else margin
    elif margin is not None:
        kw["margin"] = margin
    if "tie" in spec.inputs:
        kw["tie"] = torch.zeros_like(r_c, dtype=torch.bool) if tie is None else tie
    return spec.fn(r_c, r_r, **kw, **{**spec.defaults, **hp})


def test_bt_values():
    """ℓ(0) = log 2 = 0.693147; ℓ(1) = log(1 + e^−1) = 0.313262; ℓ(−2) = log(1 + e^2) = 2.126928.
    Only Δ matters: (r_c, r_r) = (3, 3) gives log 2 as well."""
    out = P.bt(d64(0.0, 1.0, -2.0, 3.0), d64(0.0, 0.0, 0.0, 3.0))
    torch.testing.assert_close(out, d64(0.6931471805599453, 0.31326168751822286, 2.1269280110429727, LOG2))


def test_bt_margin_values_and_limit():
    """−log σ(Δ − m): Δ = 1, m = 1 → log 2; Δ = 2/3, m = 2/3 (Llama 2 "better", small) → log 2;
    Δ = 0, m = 1 → ℓ(−1) = log(1 + e) = 1.313262. m = 0 equals bt on random Δ."""
    out = P.bt_margin(d64(1.0, 2 / 3, 0.0), d64(0, 0, 0), margin=d64(1.0, LLAMA2_MARGIN_SMALL["better"], 1.0))
    torch.testing.assert_close(out, d64(LOG2, LOG2, math.log(1 + math.e)))
    r_c, r_r = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    torch.testing.assert_close(P.bt_margin(r_c, r_r, margin=torch.zeros(16, dtype=torch.float64)), P.bt(r_c, r_r))
    with pytest.raises(ValueError, match="margin"):
        P.bt_margin(r_c, r_r)


def test_llama2_margin_tables():
    """Llama 2 Table 28: small {1, 2/3, 1/3, 0}, large {3, 2, 1, 0}, same four rating levels."""
    assert LLAMA2_MARGIN_SMALL == {"significantly better": 1.0, "better": 2 / 3, "slightly better": 1 / 3,
                                   "negligibly better": 0.0}
    assert LLAMA2_MARGIN_LARGE == {"significantly better": 3.0, "better": 2.0, "slightly better": 1.0,
                                   "negligibly better": 0.0}


def test_bt_scaled_values():
    """−m log σ(Δ): Δ = 0, m = 3 → 3 log 2 = 2.079442; m = 0 or NaN means "absent" → m = 1 → log 2;
    margin=None → m = 1 everywhere (equals bt). Negative strength is an error."""
    out = P.bt_scaled(d64(0, 0, 0), d64(0, 0, 0), margin=d64(3.0, 0.0, float("nan")))
    torch.testing.assert_close(out, d64(3 * LOG2, LOG2, LOG2))
    r_c = torch.randn(8, dtype=torch.float64)
    torch.testing.assert_close(P.bt_scaled(r_c, torch.zeros_like(r_c)), P.bt(r_c, torch.zeros_like(r_c)))
    with pytest.raises(ValueError, match=">= 0"):
        P.bt_scaled(d64(0.0), d64(0.0), margin=d64(-1.0))


def test_label_smoothing_values_and_limit():
    """Δ = 0: (1−α) log 2 + α log 2 = log 2. The minimum is at Δ* = log((1−α)/α) = log 9 for α = 0.1, where
    the loss equals the binary entropy H(0.1) = −0.1 log 0.1 − 0.9 log 0.9 = 0.325083 and the gradient is 0.
    α = 0 equals bt."""
    d = d64(0.0, math.log(9.0)).requires_grad_(True)
    out = P.label_smoothing(d, torch.zeros_like(d), alpha=0.1)
    h = -0.1 * math.log(0.1) - 0.9 * math.log(0.9)
    torch.testing.assert_close(out, d64(LOG2, h), rtol=0, atol=1e-12)
    (g,) = torch.autograd.grad(out[1], d)
    assert abs(g[1].item()) < 1e-12
    r_c, r_r = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    torch.testing.assert_close(P.label_smoothing(r_c, r_r, alpha=0.0), P.bt(r_c, r_r))
    with pytest.raises(ValueError):
        P.label_smoothing(r_c, r_r, alpha=1.5)


def test_robust_values_unbiased_and_limit():
    """ε = 0.1: Δ = 0 → (0.9 − 0.1) log 2 / 0.8 = log 2; Δ = log 9 → (0.9 log(10/9) − 0.1 log 10)/0.8 = −0.169293.
    Unbiased: (1−ε) ℓ_ε(Δ) + ε ℓ_ε(−Δ) = [((1−ε)² − ε²) ℓ(Δ)]/(1 − 2ε) = ℓ(Δ). ε = 0 equals bt; ε ≥ 0.5 errors."""
    out = P.robust(d64(0.0, math.log(9.0)), d64(0.0, 0.0), flip_rate=0.1)
    torch.testing.assert_close(out, d64(LOG2, -0.16929255650920114))
    d = torch.randn(32, dtype=torch.float64) * 3
    z = torch.zeros_like(d)
    for eps in (0.1, 0.3):
        mix = (1 - eps) * P.robust(d, z, flip_rate=eps) + eps * P.robust(-d, z, flip_rate=eps)
        torch.testing.assert_close(mix, P.bt(d, z))
    torch.testing.assert_close(P.robust(d, z, flip_rate=0.0), P.bt(d, z))
    with pytest.raises(ValueError, match="0.5"):
        P.robust(d, z, flip_rate=0.5)


def test_focal_values_and_limit():
    """γ = 2: Δ = 0 → p = 1/2, (1/2)² log 2 = 0.173287; Δ = log 3 → p = 3/4, (1/4)² log(4/3) = 0.017980.
    γ = 0 equals bt."""
    out = P.focal(d64(0.0, math.log(3.0)), d64(0.0, 0.0), gamma=2.0)
    torch.testing.assert_close(out, d64(0.25 * LOG2, 0.0625 * math.log(4 / 3)))
    d = torch.randn(16, dtype=torch.float64) * 4
    torch.testing.assert_close(P.focal(d, torch.zeros_like(d), gamma=0.0), P.bt(d, torch.zeros_like(d)))


def test_hinge_values():
    """max(0, m − Δ), m = 1: Δ = 0 → 1, Δ = 2 → 0, Δ = −1 → 2. A per-pair margin replaces m:
    Δ = 1 with m = 0.5 → 0, with m = 3 → 2."""
    torch.testing.assert_close(P.hinge(d64(0.0, 2.0, -1.0), d64(0, 0, 0)), d64(1.0, 0.0, 2.0))
    torch.testing.assert_close(P.hinge(d64(1.0, 1.0), d64(0, 0), margin=d64(0.5, 3.0)), d64(0.0, 2.0))


def test_squared_values():
    """(Δ − t)²: t = 1: Δ = 0 → 1, Δ = 3 → 4. τ = 0.25 → t = 1/(2τ) = 2: Δ = 0 → 4. Both t and τ → error."""
    torch.testing.assert_close(P.squared(d64(0.0, 3.0), d64(0, 0)), d64(1.0, 4.0))
    torch.testing.assert_close(P.squared(d64(0.0), d64(0.0), tau=0.25), d64(4.0))
    with pytest.raises(ValueError, match="not both"):
        P.squared(d64(0.0), d64(0.0), t=2.0, tau=0.25)


def test_ties_rao_kupper_values():
    """θ = 2, Δ = log 2 (e^Δ = 2): P(≻) = σ(Δ − log θ) = σ(0) = 1/2 → log 2;
    P(tie) = (θ² − 1) e^Δ / ((e^Δ + θ)(1 + θ e^Δ)) = 3·2 / (4·5) = 0.3 → −log 0.3 = 1.203973;
    P(≺) = σ(−log 4) = 0.2, and 0.5 + 0.3 + 0.2 = 1. At Δ = 0: P(tie) = (θ − 1)/(θ + 1) = 1/3 → log 3."""
    d = d64(math.log(2.0), math.log(2.0), 0.0)
    tie = torch.tensor([False, True, True])
    out = P.ties(d, torch.zeros_like(d), tie=tie, model="rao_kupper", theta=2.0)
    torch.testing.assert_close(out, d64(LOG2, -math.log(0.3), math.log(3.0)))
    p_win = torch.exp(-P.ties(d[:1], d64(0.0), model="rao_kupper"))
    p_lose = torch.exp(-P.ties(d64(0.0), d[:1], model="rao_kupper"))
    p_tie = torch.exp(-out[1:2])
    torch.testing.assert_close(p_win + p_lose + p_tie, d64(1.0))


def test_ties_davidson_values_and_bt_limit():
    """ν = 1, Δ = 2 log 2 (e^Δ = 4, e^{Δ/2} = 2): Z = 4 + 1 + 2 = 7; P(≻) = 4/7 → 0.559616,
    P(tie) = 2/7 → 1.252763 (P(≺) = 1/7). ν = 0 on strict pairs equals bt; ν = 0 with a tie pair errors."""
    d = d64(2 * LOG2, 2 * LOG2)
    out = P.ties(d, torch.zeros_like(d), tie=torch.tensor([False, True]), model="davidson", nu=1.0)
    torch.testing.assert_close(out, d64(-math.log(4 / 7), -math.log(2 / 7)))
    r = torch.randn(8, dtype=torch.float64)
    torch.testing.assert_close(P.ties(r, torch.zeros_like(r), model="davidson", nu=0.0), P.bt(r, torch.zeros_like(r)))
    with pytest.raises(ValueError, match="nu"):
        P.ties(d, torch.zeros_like(d), tie=torch.tensor([False, True]), model="davidson", nu=0.0)


def test_ties_symmetric_and_errors():
    """For a tie pair the order is irrelevant: loss(Δ) = loss(−Δ) in both models. Bad θ / model name error."""
    d = torch.randn(8, dtype=torch.float64) * 3
    tie = torch.ones(8, dtype=torch.bool)
    for model in ("rao_kupper", "davidson"):
        torch.testing.assert_close(P.ties(d, torch.zeros_like(d), tie=tie, model=model),
                                   P.ties(-d, torch.zeros_like(d), tie=tie, model=model))
    with pytest.raises(ValueError, match="theta"):
        P.ties(d, d, theta=1.0)
    with pytest.raises(ValueError, match="known: rao_kupper, davidson"):
        P.ties(d, d, model="glenn")


def test_adaptive_margin_values():
    """−log σ(Δ − λ s): (Δ, s, λ) = (1, 1, 1) → log 2; (1, 2, 0.5) → log 2; (−1, −1, 1) → log 2 (negative
    strength lowers the required gap); (0, 1, 1) → log(1 + e) = 1.313262. Equals bt_margin at λ = 1."""
    out = torch.stack([
        P.adaptive_margin(d64(1.0), d64(0.0), margin=d64(1.0), lam=1.0),
        P.adaptive_margin(d64(1.0), d64(0.0), margin=d64(2.0), lam=0.5),
        P.adaptive_margin(d64(-1.0), d64(0.0), margin=d64(-1.0), lam=1.0),
        P.adaptive_margin(d64(0.0), d64(0.0), margin=d64(1.0), lam=1.0)]).squeeze(1)
    torch.testing.assert_close(out, d64(LOG2, LOG2, LOG2, math.log(1 + math.e)))
    r, m = torch.randn(8, dtype=torch.float64), torch.rand(8, dtype=torch.float64)
    torch.testing.assert_close(P.adaptive_margin(r, 0 * r, margin=m), P.bt_margin(r, 0 * r, margin=m))


@pytest.mark.parametrize("name", PAIRWISE)
def test_gradcheck(name):
    """Analytic gradients match finite differences in float64 (random points, away from hinge's kink)."""
    g = torch.Generator().manual_seed(0)
    r_c = torch.randn(6, generator=g, dtype=torch.float64).requires_grad_(True)
    r_r = (torch.randn(6, generator=g, dtype=torch.float64) + 0.37).requires_grad_(True)
    margin = torch.rand(6, generator=g, dtype=torch.float64)
    tie = torch.tensor([False, True, False, True, False, False])
    assert torch.autograd.gradcheck(lambda a, b: call(name, a, b, margin=margin, tie=tie), (r_c, r_r))


@pytest.mark.parametrize("name", PAIRWISE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_at_extreme_delta(name, dtype):
    """|Δ| = 1e4 (both signs, ties included): values and gradients are finite."""
    r_c = torch.tensor([1e4, -1e4, 1e4, -1e4], dtype=dtype, requires_grad=True)
    r_r = torch.zeros(4, dtype=dtype)
    out = call(name, r_c, r_r, margin=torch.ones(4, dtype=dtype), tie=torch.tensor([False, False, True, True]))
    (g,) = torch.autograd.grad(out.sum(), r_c)
    assert torch.isfinite(out).all() and torch.isfinite(g).all()


@pytest.mark.parametrize("name", PAIRWISE)
def test_empty_batch(name):
    """B = 0: an empty (0,) result whose sum is 0 and whose backward works (no NaN)."""
    r_c = torch.zeros(0, requires_grad=True)
    out = call(name, r_c, torch.zeros(0), margin=torch.zeros(0), tie=torch.zeros(0, dtype=torch.bool))
    assert out.shape == (0,)
    out.sum().backward()
    assert out.sum().item() == 0.0


@pytest.mark.parametrize("name", PAIRWISE)
def test_accepts_margin_and_tie(name):
    """Every pairwise loss accepts margin and tie by keyword (ignored where unused); result is (B,)."""
    spec = LOSSES[name]
    r = torch.randn(5)
    out = spec.fn(r, torch.zeros(5), margin=torch.ones(5), tie=torch.zeros(5, dtype=torch.bool))
    assert out.shape == (5,)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"\(B,\)"):
        P.bt(torch.zeros(3), torch.zeros(4))
