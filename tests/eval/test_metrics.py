"""Metrics on tiny hand-made arrays; every expected value is derived by hand in the docstring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rewardlab.eval import metrics as M

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


# --------------------------------------------------------------------------- pairwise accuracy


def test_pairwise_accuracy_counts_ties_wrong():
    """Δ = [2−1, 1−1, 0−1, 3−0] = [1, 0, −1, 3]: correct {0, 3} → 2/4 = 0.5; one tie (Δ = 0);
    mean margin (1 + 0 − 1 + 3)/4 = 0.75."""
    out = M.pairwise_accuracy([2, 1, 0, 3], [1, 1, 1, 0])
    assert out == {"accuracy": 0.5, "ties": 1, "n": 4, "mean_margin": 0.75}


def test_pairwise_accuracy_tolerance():
    """tol = 1: |Δ| <= 1 for Δ ∈ {1, 0, −1} → 3 ties; only Δ = 3 > 1 is correct → 1/4."""
    out = M.pairwise_accuracy([2, 1, 0, 3], [1, 1, 1, 0], tol=1.0)
    assert out["accuracy"] == 0.25 and out["ties"] == 3


def test_constant_reward_scores_zero_not_half():
    """Every pair tied → every pair wrong → accuracy 0 (RewardBench convention)."""
    assert M.pairwise_accuracy([1.0] * 5, [1.0] * 5)["accuracy"] == 0.0


def test_shape_and_nan_errors():
    with pytest.raises(ValueError, match="same length"):
        M.pairwise_accuracy([1, 2], [1])
    with pytest.raises(ValueError, match="non-finite"):
        M.pairwise_accuracy([1, float("nan")], [0, 0])


def test_bt_loss_values_and_stability():
    """Δ = 0 → −log σ(0) = log 2. Δ = ln 3 → σ = 3/4 → log(4/3). Mean of the two = (log 2 + log 4/3)/2.
    Δ = −1000 → softplus(1000) = 1000 (no overflow); Δ = +1000 → 0."""
    assert M.pairwise_loss_bt([0.0], [0.0]) == pytest.approx(math.log(2))
    assert M.pairwise_loss_bt([0.0, math.log(3)], [0.0, 0.0]) == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)
    assert M.pairwise_loss_bt([-1000.0], [0.0]) == pytest.approx(1000.0)
    assert M.pairwise_loss_bt([1000.0], [0.0]) == pytest.approx(0.0, abs=1e-300)


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_constant_and_deterministic():
    """All resamples of a constant give the constant; the same seed gives the same interval."""
    assert M.bootstrap_ci([0.7] * 20) == pytest.approx((0.7, 0.7))
    x = np.random.default_rng(1).normal(size=50)
    assert M.bootstrap_ci(x, seed=3) == M.bootstrap_ci(x, seed=3)


def test_bootstrap_ci_matches_normal_approximation():
    """280 ones and 120 zeros: mean 0.7, standard error sqrt(0.7·0.3/400) = 0.0229; a 95% interval
    is about 0.7 ± 1.96·0.0229 = [0.655, 0.745]; the percentile bootstrap lands within ±0.01."""
    x = np.array([1.0] * 280 + [0.0] * 120)
    lo, hi = M.bootstrap_ci(x, n_boot=2000)
    assert lo == pytest.approx(0.655, abs=0.01) and hi == pytest.approx(0.745, abs=0.01)


# --------------------------------------------------------------------------- strength buckets


def test_accuracy_by_strength_discrete():
    """Strengths [1, 1, 2, 2, 2] with correctness [1, 0, 1, 1, 0] (Δ = [1, −1, 1, 1, 0]):
    strength 1 → 1/2 of 2 pairs; strength 2 → 2/3 of 3 pairs (the tie is wrong)."""
    out = M.accuracy_by_strength([1, 0, 1, 1, 0], [0, 1, 0, 0, 0], [1, 1, 2, 2, 2])
    assert out["kind"] == "discrete"
    assert out["labels"] == ["1", "2"]
    assert out["n"] == [2, 3]
    assert out["accuracy"] == pytest.approx([0.5, 2 / 3])


def test_accuracy_by_strength_quantile_and_edges():
    """Strengths 1..8, bins=2: the median 4.5 splits [1, 4.5) = {1..4} and [4.5, 8] = {5..8}.
    Correct pairs at strengths {4, 5, 6, 7, 8} → accuracy 1/4 and 4/4.
    Edges [0, 5, 10]: [0, 5) = {1..4} → 1/4, [5, 10] = {5..8} → 1."""
    s = np.arange(1, 9, dtype=float)
    delta = np.array([-1, -1, -1, 1, 1, 1, 1, 1], dtype=float)
    q = M.accuracy_by_strength(delta, np.zeros(8), s, bins=2)
    assert q["kind"] == "quantile" and q["n"] == [4, 4]
    assert q["accuracy"] == [0.25, 1.0]
    assert q["lo"] == [1.0, 4.5] and q["hi"] == [4.5, 8.0]
    e = M.accuracy_by_strength(delta, np.zeros(8), s, bins=[0, 5, 10])
    assert e["accuracy"] == [0.25, 1.0] and e["labels"] == ["[0, 5)", "[5, 10]"]
    with pytest.raises(ValueError, match="outside the bin edges"):
        M.accuracy_by_strength(delta, np.zeros(8), s, bins=[2, 5, 10])


def test_accuracy_by_strength_continuous_default_is_quartiles():
    """More than max_discrete=10 distinct strengths → 4 quantile bins of 25 pairs each (100 distinct values)."""
    s = np.linspace(0, 1, 100)
    out = M.accuracy_by_strength(np.ones(100), np.zeros(100), s)
    assert out["kind"] == "quantile" and out["n"] == [25, 25, 25, 25] and out["accuracy"] == [1.0] * 4


# --------------------------------------------------------------------------- calibration


def test_ece_and_reliability_on_hand_built_bins():
    """10 bins. p = 0.05 (y 0) → bin 0: conf .05, freq 0, gap .05, weight 1/4.
    p = 0.15, 0.15 (y 0, 1) → bin 1: conf .15, freq .5, gap .35, weight 2/4.
    p = 0.95 (y 1) → bin 9: conf .95, freq 1, gap .05, weight 1/4.
    ECE = .0125 + .175 + .0125 = 0.2; empty bins are left out of the curve."""
    p, y = [0.05, 0.15, 0.15, 0.95], [0, 0, 1, 1]
    assert M.ece(p, y, n_bins=10) == pytest.approx(0.2)
    curve = M.reliability_curve(p, y, n_bins=10)
    assert curve["bin_centers"] == pytest.approx([0.05, 0.15, 0.95])
    assert curve["counts"] == [1, 2, 1]
    assert curve["frequency"] == pytest.approx([0.0, 0.5, 1.0])
    assert curve["mean_prob"] == pytest.approx([0.05, 0.15, 0.95])


def test_probability_one_goes_to_last_bin():
    """p = 1.0 would index bin 10 of 10; it belongs to the last bin [0.9, 1.0]."""
    assert M.reliability_curve([1.0], [1], n_bins=10)["bin_centers"] == pytest.approx([0.95])


def test_brier():
    """((0.8 − 1)² + (0.3 − 0)²)/2 = (0.04 + 0.09)/2 = 0.065."""
    assert M.brier([0.8, 0.3], [1, 0]) == pytest.approx(0.065)


def test_unsymmetrised_pair_ece_collapses_to_one_minus_mean_prob():
    """With every outcome 1, each bin's frequency is 1, so ECE = Σ_b w_b (1 − conf_b) = 1 − mean σ(Δ)
    whatever the binning — the reason symmetrising is the default."""
    rng = np.random.default_rng(0)
    rc, rr = rng.normal(size=200), rng.normal(size=200)
    p, y = M.pair_probabilities(rc, rr, symmetrize=False)
    expected = 1 - np.mean(1 / (1 + np.exp(-(rc - rr))))
    for n_bins in (3, 10, 25):
        assert M.ece(p, y, n_bins) == pytest.approx(expected)


def test_symmetrised_pair_calibration_by_hand():
    """Δ = [ln 3, −ln 3] → p = [3/4, 1/4]. Symmetrised: (3/4, 1), (1/4, 1), (1/4, 0), (3/4, 0).
    Bin of 1/4: freq 1/2, gap 1/4; bin of 3/4: freq 1/2, gap 1/4 → ECE 0.25.
    Brier is the same either way: ((1/4)² + (3/4)²)/2 = 0.3125; NLL = (log 4/3 + log 4)/2."""
    rc, rr = [math.log(3), 0.0], [0.0, math.log(3)]
    cal = M.pairwise_calibration(rc, rr)
    assert cal["symmetrized"] is True
    assert cal["ece"] == pytest.approx(0.25)
    assert cal["brier"] == pytest.approx(0.3125)
    assert M.pairwise_calibration(rc, rr, symmetrize=False)["brier"] == pytest.approx(0.3125)
    assert cal["nll"] == pytest.approx((math.log(4 / 3) + math.log(4)) / 2)
    assert cal["reliability"]["frequency"] == pytest.approx([0.5, 0.5])


def _bt_data(t_true: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Δ ~ N(0, 4²) and outcomes y ~ Bernoulli(σ(Δ / T_true))."""
    rng = np.random.default_rng(seed)
    d = rng.normal(0.0, 4.0, size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-d / t_true))).astype(float)
    return d, y


def test_fit_temperature_recovers_t():
    """Data drawn from σ(Δ/2), 5,000 pairs: the NLL minimiser is T ≈ 2 (standard error ≈ 0.05)."""
    d, y = _bt_data(2.0, 5000, seed=0)
    assert M.fit_temperature(d, y) == pytest.approx(2.0, abs=0.1)


def test_fit_temperature_orientation_invariant():
    """Flipping a pair (Δ → −Δ, y → 1 − y) leaves its NLL unchanged, so fitting on pairs oriented
    chosen-first (all outcomes 1, outcomes=None) gives the same T."""
    d, y = _bt_data(2.0, 2000, seed=1)
    oriented = np.where(y == 1, d, -d)
    assert M.fit_temperature(oriented) == pytest.approx(M.fit_temperature(d, y), rel=1e-4)


def test_fit_temperature_without_interior_minimum_warns():
    """Every Δ > 0 with outcome 1: the NLL falls as T → 0 → the lower bound, with a warning.
    Δ = [1, −2] with outcomes [0, 1]: dNLL/dβ at β = 0 is (1·½ + (−2)(−½))/2 = 0.75 >= 0 → the upper bound."""
    with pytest.warns(UserWarning, match="lower bound"):
        assert M.fit_temperature([1.0, 2.0, 3.0]) == 1e-3
    with pytest.warns(UserWarning, match="upper bound"):  # Δ against the outcomes: T → ∞
        assert M.fit_temperature([1.0, -2.0], [0, 1]) == 1e3


def test_temperature_scaling_improves_held_out_calibration():
    """Rewards twice too sharp (true T = 2, evaluated at T = 1): fitting T on one half and evaluating on
    the other must lower the held-out NLL and ECE; overlapping index sets are an error."""
    d, y = _bt_data(2.0, 4000, seed=2)
    out = M.temperature_scaled_calibration(d, np.arange(2000), np.arange(2000, 4000), outcomes=y)
    assert out["temperature"] == pytest.approx(2.0, abs=0.15)
    assert out["after"]["nll"] < out["before"]["nll"]
    assert out["after"]["ece"] < out["before"]["ece"]
    assert out["n_fit"] == 2000 and out["n_eval"] == 2000
    with pytest.raises(ValueError, match="overlap"):
        M.temperature_scaled_calibration(d, np.arange(10), np.arange(5, 20), outcomes=y)


# --------------------------------------------------------------------------- length bias


def test_length_bias_of_a_pure_length_reward():
    """Reward = length. Over all 8 responses reward and length are identical → Pearson = Spearman = 1.
    Pairs (len_c, len_r) = (10, 5), (20, 30), (5, 5), (7, 3): chosen longer in pairs 0 and 3 → both
    correct (1.0, n 2); chosen shorter in pair 1 → wrong (0.0, n 1); equal in pair 2 → Δ = 0, a tie,
    wrong (0.0, n 1)."""
    lc, lr = np.array([10, 20, 5, 7.0]), np.array([5, 30, 5, 3.0])
    out = M.length_bias(lc, lr, lc, lr)
    assert out["pearson"] == pytest.approx(1.0) and out["spearman"] == pytest.approx(1.0)
    assert (out["accuracy_chosen_longer"], out["n_chosen_longer"]) == (1.0, 2)
    assert (out["accuracy_chosen_shorter"], out["n_chosen_shorter"]) == (0.0, 1)
    assert (out["accuracy_equal_length"], out["n_equal_length"]) == (0.0, 1)


def test_length_bias_undefined_parts_are_none():
    """Constant rewards: correlation undefined → None; no equal-length pair → accuracy None, n 0."""
    out = M.length_bias([1, 1], [1, 1], [3, 1], [2, 2])
    assert out["pearson"] is None and out["spearman"] is None
    assert out["accuracy_equal_length"] is None and out["n_equal_length"] == 0
    json.dumps(out)  # JSON-safe: no NaN


# --------------------------------------------------------------------------- distributions and rankings


def test_reward_stats():
    """[1, 2, 3, 4] (+ one NaN pad): mean 2.5, population std sqrt(1.25), linear quantiles
    q25 = 1.75, median 2.5, q75 = 3.25; n 4, n_missing 1."""
    out = M.reward_stats([1, 2, 3, 4, float("nan")])
    assert out["mean"] == pytest.approx(2.5) and out["std"] == pytest.approx(math.sqrt(1.25))
    assert (out["q25"], out["median"], out["q75"]) == pytest.approx((1.75, 2.5, 3.25))
    assert (out["min"], out["max"], out["n"], out["n_missing"]) == (1.0, 4.0, 4, 1)


def test_rank_accuracy_by_hand():
    """Group 1: r = [3, 1, 2], ranks [1, 2, 3]. Top-scored = response 0 = best → 1.
        Pairs by rank: (0,1) 3 > 1 ✓, (0,2) 3 > 2 ✓, (1,2) 1 > 2 ✗ → 2/3.
        Spearman(r, −rank): ranks of r [3, 1, 2] vs [3, 2, 1]: d² = 0 + 1 + 1 = 2 → 1 − 6·2/(3·8) = 0.5.
    Group 2: r = [2, 2, pad], ranks [2, 1, pad]. Both tied at the max, one is best → 1/2.
        Pair (1, 0): Δ = 0, a tie → wrong → 0/1. Rewards constant → no Spearman.
    Group 3: ranks [1, 1, pad] all equal → skipped.
    best-of-K (1 + 1/2)/2 = 0.75; pairwise macro (2/3 + 0)/2 = 1/3; micro 2/4 = 0.5; Spearman 0.5."""
    nan = float("nan")
    rewards = [[3, 1, 2], [2, 2, nan], [1, 5, nan]]
    ranks = [[1, 2, 3], [2, 1, nan], [1, 1, nan]]
    out = M.rank_accuracy(rewards, ranks)
    assert out["best_of_k_accuracy"] == pytest.approx(0.75)
    assert out["pairwise_accuracy"] == pytest.approx(1 / 3)
    assert out["pairwise_accuracy_micro"] == pytest.approx(0.5)
    assert out["spearman"] == pytest.approx(0.5)
    assert (out["n_groups"], out["n_groups_skipped"], out["n_groups_spearman"], out["n_pairs"]) == (2, 1, 1, 4)


def test_rank_accuracy_padding_must_match():
    with pytest.raises(ValueError, match="NaN padding"):
        M.rank_accuracy([[1.0, 2.0]], [[1.0, float("nan")]])


def test_best_of_k_credits_are_rank_accuracys_groups():
    """The per-group credits of test_rank_accuracy_by_hand's data: group 1 → 1, group 2 (tied at the max,
    one of the two best) → ½, group 3 skipped; their mean is best_of_k_accuracy 0.75."""
    nan = float("nan")
    rewards = [[3, 1, 2], [2, 2, nan], [1, 5, nan]]
    ranks = [[1, 2, 3], [2, 1, nan], [1, 1, nan]]
    assert M.best_of_k_credits(rewards, ranks).tolist() == [1.0, 0.5]
    assert M.best_of_k_credits(rewards, ranks).mean() == M.rank_accuracy(rewards, ranks)["best_of_k_accuracy"]


# --------------------------------------------------------------------------- best-of-N


def test_best_of_n_ties_share_their_weights_by_hand():
    """proxy [2, 1, 1, 0], gold [5, 0, 3, 9], n = 2. The 6 subsets: {0, x} ×3 → 5 each; {1, 2} a proxy tie,
    the pick a coin flip → (0 + 3)/2; {1, 3} → 0; {2, 3} → 3. E = (15 + 1.5 + 0 + 3)/6 = 3.25.
    By the weights: w(4, 2) = (3, 2, 1, 0)/6, the tied 2nd and 3rd share (2 + 1)/12 = ¼ each:
    5·½ + (0 + 3)·¼ + 9·0 = 3.25. (Breaking the tie by position gave 3.0 — first wins — or 3.5 — last
    wins — before one estimator replaced two.) Two tied candidates, n = 2: ½ each → (0 + 1)/2."""
    assert M.best_of_n_weights(4, 2) == pytest.approx([1 / 2, 1 / 3, 1 / 6, 0])
    assert M.best_of_n_expectation([2.0, 1.0, 1.0, 0.0], [5.0, 0.0, 3.0, 9.0], 2) == pytest.approx(3.25)
    assert M.best_of_n_expectation([2.0, 1.0, 1.0, 0.0], [5.0, 3.0, 0.0, 9.0], 2) == pytest.approx(3.25)
    assert M.best_of_n_expectation([1.0, 1.0], [0.0, 1.0], 2) == 0.5
    assert M.best_of_n_expectation([1.0, 1.0], [0.0, 1.0], 1) == 0.5


def test_best_of_n_equals_enumeration_with_random_tie_breaks():
    """On proxies with many ties (integers 0–2), E_n equals the mean over all C(C, n) subsets of the mean
    gold among the subset's proxy-best; a (M, C) batch is the mean of its rows; order does not matter."""
    from itertools import combinations

    rng = np.random.default_rng(0)
    proxy, gold = rng.integers(0, 3, size=(5, 7)).astype(float), rng.normal(size=(5, 7))
    for n in range(1, 8):
        per_row = []
        for r, g in zip(proxy, gold):
            picks = [g[list(s)][r[list(s)] == r[list(s)].max()].mean() for s in combinations(range(7), n)]
            per_row.append(np.mean(picks))
            perm = rng.permutation(7)
            assert M.best_of_n_expectation(r[perm], g[perm], n) == pytest.approx(per_row[-1])
        assert M.best_of_n_expectation(proxy, gold, n) == pytest.approx(np.mean(per_row))


def test_best_of_n_errors():
    with pytest.raises(ValueError, match="1 <= n <= c"):
        M.best_of_n_expectation([1.0, 2.0], [1.0, 2.0], 3)
    with pytest.raises(ValueError, match="same|both"):
        M.best_of_n_expectation([1.0, 2.0], [1.0, 2.0, 3.0], 1)
    with pytest.raises(ValueError, match="non-finite"):
        M.best_of_n_expectation([1.0, float("nan")], [1.0, 2.0], 1)


# --------------------------------------------------------------------------- labels


def test_auc_with_ties_against_hand_count():
    """Positives {0.4, 0.8}, negatives {0.1, 0.4}: (0.4 vs 0.1) 1, (0.4 vs 0.4) ½, (0.8 vs 0.1) 1,
    (0.8 vs 0.4) 1 → 3.5 / 4 = 0.875."""
    assert M.roc_auc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1]) == pytest.approx(0.875)
    assert M.roc_auc([0.1, 0.2], [1, 1]) is None


def test_label_metrics_fitted_threshold():
    """Sorted (score, label): (0.1, 0), (0.35, 1), (0.4, 0), (0.8, 1). Accuracy of ŷ = 1[s >= t]:
    t = 0.1 → 2/4, t = 0.35 → 3/4, t = 0.4 → 2/4, t = 0.8 → 3/4, none → 2/4. The first best is
    t = 0.35, reported as the midpoint (0.1 + 0.35)/2 = 0.225. There TP 2, FP 1, FN 0:
    precision 2/3, recall 1, F1 = 2·(2/3)/(5/3) = 0.8. AUC: 0.35 beats 0.1 only, 0.8 beats both → 3/4."""
    out = M.label_metrics([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert out["threshold"] == pytest.approx(0.225) and out["threshold_fitted"] is True
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["precision"] == pytest.approx(2 / 3) and out["recall"] == 1.0
    assert out["f1"] == pytest.approx(0.8) and out["auc"] == pytest.approx(0.75)


def test_label_metrics_given_threshold():
    """t = 0.5: only 0.8 predicted good. TP 1, FP 0, FN 1, TN 2 → accuracy 3/4, precision 1,
    recall 1/2, F1 = 2·1·½/(3/2) = 2/3."""
    out = M.label_metrics([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], threshold=0.5)
    assert out["threshold_fitted"] is False and out["threshold"] == 0.5
    assert (out["accuracy"], out["precision"], out["recall"]) == pytest.approx((0.75, 1.0, 0.5))
    assert out["f1"] == pytest.approx(2 / 3)


def test_label_metrics_all_negative_threshold():
    """All labels 0: predicting nothing positive is right on all 4; the threshold lies above the max score."""
    out = M.label_metrics([1.0, 2.0, 3.0, 4.0], [0, 0, 0, 0])
    assert out["accuracy"] == 1.0 and out["threshold"] > 4.0
    assert out["precision"] is None and out["recall"] is None and out["auc"] is None


# --------------------------------------------------------------------------- annotators and paired comparison


def test_annotator_agreement_by_hand():
    """RM = [1, 0, 1, 1]; annotators (NaN = not labelled):
        item 0: [1, 1, 0] majority 1 | item 1: [0, 1, –] no majority | item 2: [1, 1, 1] → 1 | item 3: [0, 0, –] → 0
    RM vs annotator 0 ([1, 0, 1, 0]) 3/4; vs 1 ([1, 1, 1, 0]) 2/4; vs 2 (items 0, 2: [0, 1]) 1/2; pooled 6/10.
    RM vs majority: items 0 ✓, 2 ✓, 3 ✗ → 2/3 (3 items).
    Inter-annotator pairs: item 0: 1 of 3 agree, item 1: 0 of 1, item 2: 3 of 3, item 3: 1 of 1 → 5/8.
    Each annotator vs the others' majority: item 0: only annotator 2 has one ([1, 1]) ✗; item 1: ✗ ✗;
    item 2: ✓ ✓ ✓; item 3: ✓ ✓ → 5/8."""
    nan = float("nan")
    ann = [[1, 1, 0], [0, 1, nan], [1, 1, 1], [0, 0, nan]]
    out = M.annotator_agreement([1, 0, 1, 1], ann)
    assert out["rm_vs_annotator"] == pytest.approx([0.75, 0.5, 0.5])
    assert out["n_per_annotator"] == [4, 4, 2]
    assert out["rm_vs_annotators"] == pytest.approx(0.6)
    assert out["rm_vs_majority"] == pytest.approx(2 / 3) and out["n_majority"] == 3
    assert out["inter_annotator"] == pytest.approx(5 / 8) and out["n_annotator_pairs"] == 8
    assert out["annotator_vs_rest"] == pytest.approx(5 / 8)


def _squality_items():
    """SQuALITY human eval: each (question, pair of systems) is an item; each reviewer's label is
    1 if they ranked system A above B (lower overall-rank), 0 if below, NaN if tied or absent."""
    path = DATA / "squality-human-eval-all-responses.jsonl"
    if not path.exists():
        pytest.skip(f"real data not found at {path} (the shared data folder is not part of a clone)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    systems = ("bart", "bart-dpr", "human")
    items, lengths = [], []
    for row in rows:
        for q in row["questions"].values():
            for i, a in enumerate(systems):
                for b in systems[i + 1 :]:
                    rank_a = {r["worker_id"]: r["overall-rank"] for r in q[a]["reviews"]}
                    rank_b = {r["worker_id"]: r["overall-rank"] for r in q[b]["reviews"]}
                    items.append({w: float(rank_a[w] < rank_b[w]) for w in rank_a
                                  if w in rank_b and rank_a[w] != rank_b[w]})
                    lengths.append((len(q[a]["response"]), len(q[b]["response"])))
    workers = sorted({w for it in items for w in it})
    labels = np.array([[it.get(w, np.nan) for w in workers] for it in items])
    return labels, np.array(lengths, dtype=float)


def test_annotator_agreement_on_squality():
    """Real ratings (20 passages × 5 questions × 3 system pairs = 300 items, 3 reviewers each).
    A "reward model" that outputs the majority label agrees with the majority exactly (1.0).
    Reviewers agree on 87% of their pairwise judgements (measured: 784/900 = 0.871), far above the
    length-only "RM" (longer summary wins), which matches the majority on about 60% of items."""
    labels, lengths = _squality_items()
    assert labels.shape[0] == 300
    majority = np.array([M._plurality(row[~np.isnan(row)]) for row in labels], dtype=object)
    rm = np.array([1.0 if m is None else m for m in majority])
    out = M.annotator_agreement(rm, labels)
    assert out["rm_vs_majority"] == 1.0
    assert 0.8 < out["inter_annotator"] < 0.95
    longer_wins = (lengths[:, 0] > lengths[:, 1]).astype(float)  # a length-only "RM"
    by_length = M.annotator_agreement(longer_wins, labels)
    assert 0.5 < by_length["rm_vs_majority"] < out["inter_annotator"]
    assert by_length["n_majority"] == out["n_majority"]


def test_paired_difference_by_hand():
    """a = [1,1,1,1,1,1,0], b = [0,0,0,0,0,1,0]: accuracies 6/7 and 1/7, difference 5/7.
    Discordant: a right & b wrong on 5 pairs, b right & a wrong on 0 → exact McNemar p = 2·(½)^5 = 0.0625."""
    a = [1, 1, 1, 1, 1, 1, 0]
    b = [0, 0, 0, 0, 0, 1, 0]
    out = M.paired_difference(a, b)
    assert out["difference"] == pytest.approx(5 / 7)
    assert (out["n_a_only"], out["n_b_only"]) == (5, 0)
    assert out["mcnemar_p"] == pytest.approx(0.0625)
    assert out["ci_low"] <= 5 / 7 <= out["ci_high"]


def test_paired_difference_identical_and_fractional():
    """The same RM twice: difference 0 in every resample → CI (0, 0), McNemar p = 1.
    Fractional correctness (RewardBench 2 tie credit) has no McNemar test → None."""
    same = M.paired_difference([1, 0, 1], [1, 0, 1])
    assert (same["difference"], same["ci_low"], same["ci_high"], same["mcnemar_p"]) == (0.0, 0.0, 0.0, 1.0)
    frac = M.paired_difference([0.5, 1.0], [0.0, 1.0])
    assert frac["mcnemar_p"] is None and frac["difference"] == pytest.approx(0.25)
