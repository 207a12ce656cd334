"""Simulated labelers: Bradley–Terry pairs, ties, flips, length bias, Plackett–Luce rankings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardlab.tasks import GoldTask, label_pair, plackett_luce_ranks


@pytest.fixture(scope="module")
def task() -> GoldTask:
    return GoldTask()


def test_label_pair_by_hand():
    """T = 0: a ≻ b iff g_a − g_b + λ(ℓ_a − ℓ_b)/s > 0.

    pair 0: Δg = 1 → a.  pair 1: Δg = −1 → b.
    pair 2: Δg = 0, ℓ_a − ℓ_b = 10, λ = 0.5, s = 10 → z = 0.5 → a; |Δg| = 0 ≤ tie_gap 0.1 → tie.
    pair 3: Δg = −0.3, ℓ_a − ℓ_b = 10 → z = −0.3 + 0.5 = 0.2 → a (length bias beats the gold).
    """
    a_pref, tie = label_pair(
        np.array([1.0, 0.0, 0.5, 0.0]), np.array([0.0, 1.0, 0.5, 0.3]),
        np.array([10, 10, 20, 20]), np.array([10, 10, 10, 10]),
        np.random.default_rng(0), tie_gap=0.1, length_bias=0.5,
    )
    assert a_pref.tolist() == [True, False, True, True]
    assert tie.tolist() == [False, False, True, False]


def test_bradley_terry_probability():
    """T = 1, Δg = ln 3: P(a ≻ b) = σ(ln 3) = 3 / (1 + 3) = 0.75; at T = 2: σ(ln 3 / 2) = √3/(1+√3) = 0.63397.
    Over 20,000 pairs the binomial std is ≈ 0.003, so ±0.015 is 5σ."""
    n = 20_000
    g_a, g_b, ell = np.full(n, math.log(3)), np.zeros(n), np.zeros(n)
    p1 = label_pair(g_a, g_b, ell, ell, np.random.default_rng(1), temperature=1.0)[0].mean()
    p2 = label_pair(g_a, g_b, ell, ell, np.random.default_rng(2), temperature=2.0)[0].mean()
    assert p1 == pytest.approx(0.75, abs=0.015)
    assert p2 == pytest.approx(math.sqrt(3) / (1 + math.sqrt(3)), abs=0.015)


def test_clean_labels_agree_with_gold(task):
    """T → 0, ε = 0, λ = 0: every non-tie pair is ordered as the gold orders it."""
    _, info = task.make_pairs(2000, seed=3)
    strict = ~info["tie"]
    assert strict.mean() > 0.95
    assert info["agrees_with_gold"][strict].all()
    assert (info["gold_chosen"][strict] > info["gold_rejected"][strict]).all()


def test_flip_rate_sets_agreement(task):
    """ε = 0.3 at T = 0: agreement = 1 − ε = 0.7; the binomial std over 3000 pairs is
    √(0.21 / 3000) = 0.0084, so ±0.03 is 3.6σ."""
    _, info = task.make_pairs(3000, seed=4, flip_rate=0.3)
    strict = ~info["tie"]
    assert info["agrees_with_gold"][strict].mean() == pytest.approx(0.7, abs=0.03)


def test_temperature_lowers_agreement(task):
    """Higher T → flatter Bradley–Terry → lower agreement with gold."""
    agree = [task.make_pairs(1500, seed=5, temperature=t)[1]["agrees_with_gold"].mean() for t in (0.0, 0.5, 2.0)]
    assert agree[0] > agree[1] > agree[2] > 0.5


def test_ties_at_configured_rate(task):
    """tie_gap = the 0.2-quantile of |Δg| (on calibration pairs) → ≈ 20 % ties on fresh pairs
    (binomial std √(0.16 / 3000) = 0.0073); tie ⇔ |Δg| ≤ tie_gap; ties carry margin 0."""
    gap = task.tie_gap_for_rate(0.2)
    records, info = task.make_pairs(3000, seed=6, tie_gap=gap)
    assert info["tie"].mean() == pytest.approx(0.2, abs=0.03)
    assert np.array_equal(info["tie"], np.abs(info["gold_chosen"] - info["gold_rejected"]) <= gap)
    assert all(r.tie == t and (r.margin == 0.0) >= t for r, t in zip(records, info["tie"].tolist()))


def test_length_bias_favours_longer(task):
    """λ > 0 adds λ·(ℓ_c − ℓ_r)/s to the labeler's margin, so more chosen responses are the longer one."""

    def longer_share(length_bias: float) -> float:
        _, info = task.make_pairs(2000, seed=7, length_bias=length_bias)
        differ = info["len_chosen"] != info["len_rejected"]
        return (info["len_chosen"] > info["len_rejected"])[differ].mean()

    base, biased = longer_share(0.0), longer_share(2.0)
    assert biased > base + 0.15


def test_margins():
    """margin='gap' is |Δg|; 'bucket' is 0, 1/3, 2/3, 1 at |Δg| thresholds 0.25, 0.75, 1.5; 'none' is None."""
    task = GoldTask()
    recs, info = task.make_pairs(300, seed=8)
    gap = info["gold_chosen"] - info["gold_rejected"]
    np.testing.assert_allclose([r.margin for r in recs], np.abs(gap))
    recs_b, _ = task.make_pairs(300, seed=8, margin="bucket")
    expected = np.select([np.abs(gap) < 0.25, np.abs(gap) < 0.75, np.abs(gap) < 1.5], [0, 1 / 3, 2 / 3], 1.0)
    np.testing.assert_allclose([r.margin for r in recs_b], np.where(info["tie"], 0.0, expected))
    assert {r.margin for r in task.make_pairs(20, seed=8, margin="none")[0]} == {None}


def test_plackett_luce_first_choice():
    """Utilities log(1), log(2), log(3) at T = 1: P(item first) = w / Σw = 1/6, 2/6, 3/6.
    T = 0 sorts: ranks (3, 2, 1). 20,000 rows: std of a share ≤ 0.0035, ±0.015 is > 4σ."""
    u = np.log(np.tile([1.0, 2.0, 3.0], (20_000, 1)))  # (B, 3)
    ranks = plackett_luce_ranks(u, np.random.default_rng(0), temperature=1.0)  # (B, 3)
    np.testing.assert_allclose((ranks == 1).mean(axis=0), [1 / 6, 2 / 6, 3 / 6], atol=0.015)
    assert np.array_equal(np.sort(ranks, axis=1), np.tile([1, 2, 3], (20_000, 1)))
    assert plackett_luce_ranks(u[:2], np.random.default_rng(0)).tolist() == [[3, 2, 1], [3, 2, 1]]
