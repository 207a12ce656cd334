"""Metrics per data form on hand-made rewards; each expected value is derived in the docstring."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardlab.eval import analyze as A
from rewardlab.eval import metrics as M

RC = [2.0, 1.0, 0.0, 3.0, 5.0]
RR = [1.0, 1.0, 1.0, 0.0, 5.5]
TIE = [False, False, False, False, True]  # the last pair is a tie in the data


def test_pairs_headline_and_data_ties():
    """Strict pairs 0–3: Δ = [1, 0, −1, 3] → accuracy 2/4, one reward tie, mean margin 3/4,
    BT loss = mean softplus(−Δ). The data tie (pair 4, Δ = −0.5) is left out and summarised apart:
    mean |Δ| 0.5 there vs (1 + 0 + 1 + 3)/4 = 1.25 on strict pairs."""
    out = A.pair_analysis(RC, RR, tie=TIE, n_boot=300)
    assert out["accuracy"] == 0.5 and out["n_pairs"] == 4 and out["reward_ties"] == 1
    assert out["mean_margin"] == 0.75 and out["n_tie_pairs_in_data"] == 1
    assert out["loss"] == pytest.approx(np.mean(np.logaddexp(0, -np.array([1, 0, -1, 3.0]))))
    assert out["tie_pairs"] == {"n": 1, "mean_abs_delta": 0.5, "mean_abs_delta_strict_pairs": 1.25}
    lo, hi = out["accuracy_ci95"]
    assert 0 <= lo <= 0.5 <= hi <= 1
    assert out["rewards"]["chosen"]["mean"] == 1.5 and out["rewards"]["rejected"]["mean"] == 0.75


def test_pair_headline_is_the_head_of_pair_analysis():
    """pair_headline (the training loop's pair numbers) on RC/RR/TIE: the strict pairs' Δ = [1, 0, −1, 3]
    → accuracy ½, one reward tie, margin ¾, one data tie; pair_analysis opens with the same values."""
    head = A.pair_headline(RC, RR, tie=TIE)
    assert head == {k: v for k, v in A.pair_analysis(RC, RR, tie=TIE, n_boot=0).items() if k in head}
    assert (head["accuracy"], head["n_pairs"], head["reward_ties"], head["mean_margin"], head["n_tie_pairs_in_data"]) == (
        0.5, 4, 1, 0.75, 1)
    with pytest.raises(ValueError, match="ties in the data"):
        A.pair_headline([1.0], [0.0], tie=[True])


def test_pairs_strength_subsets_annotators():
    """strength [2, 1, 1, 2]: bucket 1 has Δ [0, −1] → 0, bucket 2 has Δ [1, 3] → 1.
    subsets [s1, s1, s2, s2] → s1: Δ [1, 0] → ½, s2: Δ [−1, 3] → ½.
    The RM's labels 1[Δ > 0] = [1, 0, 0, 1]; annotators (NaN = none)
        [[1, 1, –], [0, 1, 1], [1, 1, 0], [1, –, –]]
    annotator 0 labelled all 4: [1, 0, 1, 1] vs RM → 3/4; per-item plurality [1, 1, 1, 1] → RM agrees on
    items 0 and 3 → ½."""
    nan = np.nan
    ann = [[1, 1, nan], [0, 1, 1], [1, 1, 0], [1, nan, nan], [nan, nan, nan]]
    out = A.pair_analysis(RC, RR, tie=TIE, strength=[2, 1, 1, 2, nan], subsets=["s1", "s1", "s2", "s2", "s3"],
                          annotators=ann, n_boot=0)
    assert out["by_strength"]["labels"] == ["1", "2"] and out["by_strength"]["accuracy"] == [0.0, 1.0]
    assert out["subsets"] == {"s1": {"accuracy": 0.5, "n": 2}, "s2": {"accuracy": 0.5, "n": 2}}
    assert out["annotators"]["rm_vs_annotator"][0] == 0.75 and out["annotators"]["rm_vs_majority"] == 0.5
    assert out["accuracy_ci95"] is None


def test_pairs_calibration_and_temperature_split():
    """ECE/Brier on all strict pairs equal metrics.pairwise_calibration's; the temperature is fitted on a
    seeded half (split_indices) and before/after are reported on the other half."""
    rng = np.random.default_rng(0)
    rc, rr = rng.normal(1.0, 1.0, 200), rng.normal(0.0, 1.0, 200)
    out = A.pair_analysis(rc, rr, n_boot=0, calibration_split=0.5, seed=3)
    cal = out["calibration"]
    ref = M.pairwise_calibration(rc, rr)
    assert cal["ece"] == pytest.approx(ref["ece"]) and cal["brier"] == pytest.approx(ref["brier"])
    ts = cal["temperature_scaled"]
    fit, ev = A.split_indices(200, 0.5, seed=3)
    assert (ts["n_fit"], ts["n_eval"]) == (100, 100) and len(np.intersect1d(fit, ev)) == 0
    assert ts["temperature"] == pytest.approx(M.fit_temperature((rc - rr)[fit]))
    assert ts["after"]["nll"] <= ts["before"]["nll"] + 0.05


def test_separable_pairs_note_instead_of_silence():
    """Every Δ > 0: the temperature runs to its lower bound; the warning becomes a note in the result."""
    out = A.pair_analysis([1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 0], n_boot=0)
    assert any("separable" in n for n in out["notes"])


def test_rankings_with_ties_by_hand():
    """Group 1: rewards [3, 1, 2], ranks [1, 2, 3]: top = response 0 = best → credit 1; pairs (0,1) ✓
    (0,2) ✓ (1,2) ✗ → 2/3. Group 2: rewards [0, 1, 1], ranks [1, 1, 2] (a tie at the top): top
    rewards {1, 2}, best ranks {0, 1} → credit 1/2; pairs (0,2): 0 > 1 ✗, (1,2): 1 > 1 ✗ → 0/2.
    best-of-K (1 + ½)/2 = 0.75; micro 2/5; macro (2/3 + 0)/2; chance (1/3 + 2/3)/2 = ½."""
    out = A.ranking_analysis([np.array([3.0, 1, 2]), np.array([0.0, 1, 1])],
                             [np.array([1.0, 2, 3]), np.array([1.0, 1, 2])], n_boot=100)
    assert out["best_of_k_accuracy"] == 0.75 and out["accuracy"] == pytest.approx(0.4)
    assert out["pairwise_accuracy"] == pytest.approx(1 / 3) and out["chance_best_of_k"] == pytest.approx(0.5)
    assert out["pairs"] == {"n": 5, "reward_ties": 1}
    assert A.best_of_k_credits([np.array([3.0, 1, 2]), np.array([0.0, 1, 1])],
                               [np.array([1.0, 2, 3]), np.array([1.0, 1, 2])]).tolist() == [1.0, 0.5]


def test_ratings_by_hand():
    """rewards [1, 2, 3, 4], scores [10, 20, 40, 30]: rank differences d = [0, 0, 1, −1] →
    Spearman 1 − 6·2/(4·15) = 0.8. Within prompts: p (20 > 10, reward 2 > 1 ✓), p2 (40 > 30, reward
    3 > 4 ✗) → ½."""
    out = A.rating_analysis([1, 2, 3, 4], [10, 20, 40, 30], groups=["p", "p", "p2", "p2"],
                            attributes={"style": [1, 2, 3, np.nan]})
    assert out["spearman"] == pytest.approx(0.8)
    assert out["within_prompt_pairs"] == {"accuracy": 0.5, "n_pairs": 2, "n_prompts": 2}
    assert out["attributes"]["style"]["spearman"] == pytest.approx(1.0) and out["attributes"]["style"]["n"] == 3


def test_labels_given_and_fitted_threshold():
    """rewards [0.1, 0.4, 0.35, 0.8], labels [0, 0, 1, 1], t = 0.5 → predictions [0, 0, 0, 1]: accuracy
    3/4, precision 1, recall ½, F1 2/3. AUC: positives 0.35, 0.8 beat negatives in 3 of 4 pairs → ¾."""
    out = A.label_analysis([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], threshold=0.5)
    assert (out["accuracy"], out["precision"], out["recall"]) == (0.75, 1.0, 0.5)
    assert out["f1"] == pytest.approx(2 / 3) and out["auc"] == 0.75 and out["threshold_source"] == "given"
    fitted = A.label_analysis(np.arange(10.0), [0] * 5 + [1] * 5, fit_fraction=0.5)
    assert fitted["n_fit"] + fitted["n_eval"] == 10 and fitted["threshold_source"] == "fitted on a split"
    assert fitted["accuracy"] == 1.0 and fitted["auc"] == 1.0  # separable: any fitted threshold in the gap works


def test_label_accuracy_at_threshold_zero_counts_zero_as_good():
    """threshold 0 (the training loop's): ŷ = 1[r ≥ 0]. rewards [0, −1, 2, −0.5], labels [1, 0, 0, 1]
    → ŷ = [1, 0, 1, 0]: right on 0 and 1 → accuracy ½. A reward of exactly 0 is predicted good."""
    out = A.label_analysis([0.0, -1.0, 2.0, -0.5], [1, 0, 0, 1], threshold=0.0)
    assert out["accuracy"] == 0.5 and out["threshold"] == 0.0 and out["n"] == 4


def test_rewardbench_wiring():
    """v1: alpacaeval-easy [1, 0] → Chat ½; math-prm [1] and hep-cpp [0] → Reasoning 984/(984 + 164) = 6/7;
    Score = (2·½ + 2·6/7)/4. v2: Focus credits [½, 0] → ¼, Math [1] → Score (¼ + 1)/2."""
    v1 = A.rewardbench_v1(["alpacaeval-easy", "alpacaeval-easy", "math-prm", "hep-cpp"], [1, 0, 1, 0])
    assert v1["Chat"] == 0.5 and v1["Reasoning"] == pytest.approx(6 / 7)
    assert v1["Score"] == pytest.approx((1 + 12 / 7) / 4) and v1["subsets"]["hep-cpp"] == 0.0
    v2 = A.rewardbench_v2(["Focus", "Focus", "Math"], ["0", "1", "2"], [[3.0], [1.0], [2.0]],
                          [[1.0, 3.0, 2.0], [2.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert v2 == {"Focus": 0.25, "Math": 1.0, "Score": 0.625}
    assert A.rewardbench_v2(None, None, [[3.0]], [[1.0, 3.0]]) == {"Score": 0.5}


def test_paired_differences_all_pairs():
    """Three models → pairs (a,b), (a,c), (b,c). a = [1, 1, 0, 1], b = [1, 0, 0, 0]: difference ½,
    a alone right twice, b never → McNemar p = 2·(½)² = ½."""
    out = A.paired_differences({"a": np.array([1.0, 1, 0, 1]), "b": np.array([1.0, 0, 0, 0]),
                                "c": np.array([0.0, 0, 0, 0])}, n_boot=200)
    assert [(d["a"], d["b"]) for d in out] == [("a", "b"), ("a", "c"), ("b", "c")]
    ab = out[0]
    assert ab["difference"] == 0.5 and (ab["n_a_only"], ab["n_b_only"]) == (2, 0)
    assert ab["mcnemar_p"] == pytest.approx(0.5)
    no_ci = A.paired_differences({"a": np.array([1.0, 0]), "b": np.array([0.0, 0])}, n_boot=0)[0]
    assert no_ci["ci_low"] is None and no_ci["difference"] == 0.5


def test_within_group_pairs():
    """Ranks [2, 1, 1] (lower better): response 1 and 2 beat 0, equal ranks make no pair → 2 pairs."""
    p = A.within_group_pairs([np.array([5.0, 6.0, 7.0])], [np.array([2.0, 1.0, 1.0])], "lower",
                             [np.array([1.0, 2.0, 3.0])])
    assert p["r_chosen"].tolist() == [6.0, 7.0] and p["r_rejected"].tolist() == [5.0, 5.0]
    assert p["len_chosen"].tolist() == [2.0, 3.0] and p["group"].tolist() == [0, 0]
    with pytest.raises(ValueError, match="better"):
        A.within_group_pairs([np.zeros(2)], [np.zeros(2)], "up")
    assert not math.isnan(A.split_indices(5, 0.4)[0].sum())
