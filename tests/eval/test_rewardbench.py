"""RewardBench v1 section arithmetic and v2 scoring on small hand-made tables."""

from __future__ import annotations

import math

import pytest

from rewardlab.eval import rewardbench as RB


# --------------------------------------------------------------------------- v1 tables


def test_official_tables_are_consistent():
    """23 subsets, each in exactly one section and with a count. math-prm is listed as 984 = 6 × 164,
    the six code subsets together; with its real size 447 the counts add up to RewardBench's
    2,985 prompts: Chat 358 + Chat Hard 456 + Safety 740 + Reasoning (447 + 984) = 2,985."""
    in_sections = [s for subsets in RB.SUBSET_MAPPING.values() for s in subsets]
    assert len(in_sections) == len(set(in_sections)) == 23
    assert set(in_sections) == set(RB.EXAMPLE_COUNTS)
    assert RB.EXAMPLE_COUNTS["math-prm"] == 6 * 164 == sum(RB.EXAMPLE_COUNTS[f"hep-{x}"] for x in
                                                           ("cpp", "go", "java", "js", "python", "rust"))
    assert sum(RB.EXAMPLE_COUNTS.values()) - 984 + 447 == 2985


def test_v1_correct_tie_is_wrong():
    assert RB.v1_correct(1.0, 0.5) == 1.0
    assert RB.v1_correct(0.5, 0.5) == 0.0


def _hand_table() -> list[tuple[str, float]]:
    """s1: [1, 0] → 1/2;  s2: [1, 1, 1, 0] → 3/4;  s3: [0, 1, 1] → 2/3;
    shp: [1, 0, 0, 0] → 1/4;  summarize: [1, 1] → 1."""
    rows = [("s1", 1), ("s1", 0), ("s2", 1), ("s2", 1), ("s2", 1), ("s2", 0), ("s3", 0), ("s3", 1), ("s3", 1)]
    rows += [("shp", 1), ("shp", 0), ("shp", 0), ("shp", 0), ("summarize", 1), ("summarize", 1)]
    return rows


MAPPING = {"A": ("s1", "s2"), "B": ("s3",)}
COUNTS = {"s1": 1, "s2": 3, "s3": 2}


def test_subset_accuracies():
    acc = RB.subset_accuracies(_hand_table())
    assert acc == pytest.approx({"s1": 0.5, "s2": 0.75, "s3": 2 / 3, "shp": 0.25, "summarize": 1.0})


def test_section_arithmetic_on_a_hand_table():
    """Sections weight subsets by the TABLE's counts (1 and 3), not by the pairs seen (2 and 4):
        A = (½·1 + ¾·3)/4 = 2.75/4 = 0.6875   (observed counts would give 4/6 = 0.667)
        B = 2/3
        Prior Sets = mean(shp ¼, summarize 1) = 0.625
        Score = (2·0.6875 + 2·⅔ + 1·0.625)/5 = 3.3333/5 = ⅔
        without prior sets (weight 0): (0.6875 + ⅔)/2 = 0.677083."""
    out = RB.section_scores(_hand_table(), subset_mapping=MAPPING, example_counts=COUNTS)
    assert out["A"] == pytest.approx(0.6875)
    assert out["B"] == pytest.approx(2 / 3)
    assert out["Prior Sets"] == pytest.approx(0.625)
    assert out["Score"] == pytest.approx(2 / 3)
    no_prior = RB.section_scores(_hand_table(), subset_mapping=MAPPING, example_counts=COUNTS, prior_sets_weight=0)
    assert no_prior["Score"] == pytest.approx((0.6875 + 2 / 3) / 2)


def test_reasoning_is_half_math_half_code():
    """math-prm accuracy 1, every code subset 0.5: (984·1 + 6·164·0.5)/(984 + 984) = 0.75 = ½·1 + ½·0.5.
    Only Reasoning has data, so it is the whole Score; the other sections are left out."""
    acc = {"math-prm": 1.0, **{f"hep-{x}": 0.5 for x in ("cpp", "go", "java", "js", "python", "rust")}}
    out = RB.sections_from_subsets(acc)
    assert out == pytest.approx({"Reasoning": 0.75, "Score": 0.75})


def test_official_chat_section_weights():
    """Chat: alpacaeval-easy 100 at 1.0, mt-bench-easy 28 at 0.0 → 100/128 = 0.78125."""
    out = RB.sections_from_subsets({"alpacaeval-easy": 1.0, "mt-bench-easy": 0.0})
    assert out["Chat"] == pytest.approx(100 / 128)


def test_prior_sets_outside_the_score_are_accepted_but_not_averaged():
    """anthropic_harmless is a known prior set but not one of the four in the Prior Sets column."""
    out = RB.sections_from_subsets({"alpacaeval-easy": 1.0, "anthropic_harmless": 0.0, "shp": 0.5})
    assert out["Prior Sets"] == 0.5
    assert out["Score"] == pytest.approx((2 * 1.0 + 1 * 0.5) / 3)


def test_unknown_subset_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown RewardBench subsets.*alpacaeval-easy"):
        RB.sections_from_subsets({"alpaca-typo": 1.0})


# --------------------------------------------------------------------------- v2


def test_rb2_tie_rule():
    """chosen 3 vs [1, 3, 2]: two responses at the max, the chosen one among them → ½.
    chosen 3 vs [3, 3, 3]: four at the max → ¼.   chosen 1 vs [2, 0, 0] → 0.   chosen 5 vs [1, 2, 3] → 1.
    Accuracy = (½ + ¼ + 0 + 1)/4 = 0.4375."""
    chosen = [[3.0], [3.0], [1.0], [5.0]]
    rejected = [[1.0, 3.0, 2.0], [3.0, 3.0, 3.0], [2.0, 0.0, 0.0], [1.0, 2.0, 3.0]]
    assert RB.rewardbench2_results(chosen, rejected) == [0.5, 0.25, 0.0, 1.0]
    assert RB.rewardbench2_accuracy(chosen, rejected) == pytest.approx(0.4375)


def test_rb2_several_chosen_generalisation():
    """Two chosen responses tied at the max with one rejected: 2 of the 3 top responses are chosen → 2/3."""
    assert RB.rewardbench2_prompt_result([4.0, 4.0], [4.0, 1.0]) == pytest.approx(2 / 3)


def _ties_rows():
    """ref:0  correct [5]     incorrect [1, 2]   margin 5−2 = 3      accurate
    tied:0  correct [5, 4]  incorrect [1, 4.5] margin 4−4.5 = −0.5 not accurate, spread 1
    ref:1   correct [2]     incorrect [3]      margin −1           not accurate
    tied:1  correct [6, 5.5] incorrect [1, 2]  margin 3.5          accurate, spread 0.5"""
    return [
        ("ref:0", [5.0], [1.0, 2.0]),
        ("tied:0", [5.0, 4.0], [1.0, 4.5]),
        ("ref:1", [2.0], [3.0]),
        ("tied:1", [6.0, 5.5], [1.0, 2.0]),
    ]


def test_rb2_ties_score_by_hand():
    """ref accuracy ½, tied accuracy ½.
    correctness_preferred: id 0: −0.5 > 1? no; id 1: 3.5 > 0.5 yes → ½.
    hard: id 0: min(3, −0.5) = −0.5 > 1? no; id 1: min(−1, 3.5) = −1 > 0.5? no → 0.
    margin score: mean(tanh(−0.5/1 − 1), tanh(−1/0.5 − 1)) = (tanh(−1.5) + tanh(−3))/2.
    score = 0.3·½ + 0.3·½ + 0.2·½ + 0.2·0 + 0.01·margin."""
    out = RB.rewardbench2_ties_score(_ties_rows())
    margin = (math.tanh(-1.5) + math.tanh(-3.0)) / 2
    assert (out["ref_accuracy"], out["tied_accuracy"]) == (0.5, 0.5)
    assert out["correctness_preferred"] == 0.5 and out["correctness_preferred_hard"] == 0.0
    assert out["correctness_margin_score"] == pytest.approx(margin)
    assert out["score"] == pytest.approx(0.15 + 0.15 + 0.1 + 0.01 * margin)
    assert out["score"] == pytest.approx(0.390499, abs=1e-6)
    assert (out["n_ref"], out["n_tied"], out["n_matched"]) == (2, 2, 2)


def test_rb2_ties_zero_spread():
    """Correct answers scored equally (spread 0): margin/0 → +∞ for a positive margin → tanh(∞) = 1.
    ref:0 margin 5−1 = 4, tied:0 correct [3, 3] vs [1] margin 2 → min 2 > 0 → preferred and hard 1, margin score 1.
    score = 0.3 + 0.3 + 0.2 + 0.2 + 0.01 = 1.01 (the formula's maximum)."""
    out = RB.rewardbench2_ties_score([("ref:0", [5.0], [1.0]), ("tied:0", [3.0, 3.0], [1.0])])
    assert out["correctness_margin_score"] == 1.0
    assert out["score"] == pytest.approx(1.01)


def test_rb2_ties_needs_matching_ids():
    with pytest.raises(ValueError, match="both a 'ref"):
        RB.rewardbench2_ties_score([("ref:0", [5.0], [1.0])])
    with pytest.raises(ValueError, match="ref:<int>"):
        RB.rewardbench2_ties_score([("other:0", [5.0], [1.0])])


def test_rb2_scores_mean_of_subsets():
    """Focus: prompts with credit 1 and ½ → 0.75; Ties as above (0.390499). Score = unweighted mean."""
    rows = [
        {"subset": "Focus", "chosen_scores": [2.0], "rejected_scores": [1.0, 0.0, 0.5]},
        {"subset": "Focus", "chosen_scores": [2.0], "rejected_scores": [2.0, 0.0, 0.5]},
    ] + [{"subset": "Ties", "id": i, "chosen_scores": c, "rejected_scores": r} for i, c, r in _ties_rows()]
    out = RB.rewardbench2_scores(rows)
    assert out["Focus"] == pytest.approx(0.75)
    assert out["Ties"] == pytest.approx(0.390499, abs=1e-6)
    assert out["Score"] == pytest.approx((0.75 + out["Ties"]) / 2)
    with pytest.raises(ValueError, match="known subsets"):
        RB.rewardbench2_scores([{"subset": "Chat", "chosen_scores": [1.0], "rejected_scores": [0.0]}])
