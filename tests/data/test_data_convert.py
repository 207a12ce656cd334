"""Conversions between forms, with expected pairs derived by hand."""

import pytest

from rewardlab.data.convert import pairwise_to_ranks, rankings_to_pairs, ranks_agree, ratings_to_pairs
from rewardlab.types import PairRecord, RankRecord, RatingRecord


def test_rankings_to_pairs_all_pairs_with_rank_gap():
    """ranks (a, b, c) = (2, 1, 2): (a, b) → b > a, gap 1; (a, c) → tie; (b, c) → b > c, gap 1."""
    rec = RankRecord("p", ("a", "b", "c"), (2.0, 1.0, 2.0), source="f:1")
    assert rankings_to_pairs([rec]) == [PairRecord("p", "b", "a", margin=1.0, source="f:1 pair 0-1"),
                                        PairRecord("p", "b", "c", margin=1.0, source="f:1 pair 1-2")]
    kept = rankings_to_pairs([rec], ties="keep")
    assert kept[1] == PairRecord("p", "a", "c", margin=0.0, tie=True, source="f:1 pair 0-2")
    assert len(kept) == 3  # C(3, 2)
    with pytest.raises(ValueError, match="known: skip, keep"):
        rankings_to_pairs([rec], ties="drop")


def test_rankings_to_pairs_count_is_k_choose_2():
    rec = RankRecord("p", tuple("abcde"), (1.0, 2.0, 3.0, 4.0, 5.0))
    pairs = rankings_to_pairs([rec])
    assert len(pairs) == 10 and pairs[-1].margin == 1.0 and pairs[3] == PairRecord("p", "a", "e", margin=4.0,
                                                                                   source="pair 0-4")


def ratings():
    return [RatingRecord("p", "a", score=3.0, scores={"x": 0.0}, source="1"),
            RatingRecord("q", "d", score=0.5, scores={"x": 1.0}, source="2"),
            RatingRecord("p", "b", score=1.0, scores={"x": 2.0}, source="3"),
            RatingRecord("p", "c", score=3.0, scores={"x": 1.0}, source="4"),
            RatingRecord("q", "e", score=0.7, scores={"x": 0.0}, source="5")]


def test_ratings_to_pairs_groups_by_prompt():
    """Group p = a 3, b 1, c 3: (a, b) gap 2 → a > b; (a, c) tie; (b, c) gap −2 → c > b.
    Group q = d 0.5, e 0.7: e > d, gap 0.2."""
    pairs = ratings_to_pairs(ratings())
    assert [(p.prompt, p.chosen, p.rejected, p.tie) for p in pairs] == [
        ("p", "a", "b", False), ("p", "c", "b", False), ("q", "e", "d", False)]
    assert [p.margin for p in pairs] == pytest.approx([2.0, 2.0, 0.2])
    assert pairs[0].source == "1 > 3"
    assert [(p.chosen, p.rejected) for p in ratings_to_pairs(ratings(), min_gap=0.5)] == [("a", "b"), ("c", "b")]
    kept = ratings_to_pairs(ratings(), ties="keep")
    assert kept[1] == PairRecord("p", "a", "c", margin=0.0, tie=True, source="1 = 4")


def test_ratings_to_pairs_by_attribute_and_missing_scores():
    """Attribute x: p = a 0, b 2, c 1 → b > a (2), c > a (1), b > c (1); q = d 1, e 0 → d > e (1)."""
    pairs = ratings_to_pairs(ratings(), attribute="x")
    assert [(p.chosen, p.rejected, p.margin) for p in pairs] == [("b", "a", 2.0), ("c", "a", 1.0), ("b", "c", 1.0),
                                                                 ("d", "e", 1.0)]
    with pytest.raises(ValueError, match="no score for attribute 'y'; known: x"):
        ratings_to_pairs(ratings(), attribute="y")
    with pytest.raises(ValueError, match="pass attribute=NAME"):
        ratings_to_pairs([RatingRecord("p", "a", scores={"x": 1.0})])


def test_ratings_to_pairs_chat_prompts_group_and_identical_responses_drop():
    u = [{"role": "user", "content": "hi"}]
    recs = [RatingRecord(list(u), "a", score=1.0), RatingRecord(list(u), "a", score=2.0),
            RatingRecord(list(u), "b", score=0.0)]
    assert [(p.chosen, p.rejected) for p in ratings_to_pairs(recs)] == [("a", "b"), ("a", "b")]


def test_pairwise_to_ranks_win_count():
    """Outcomes 0>1, 0>2, 1=2: wins+½ties = 2, 0.5, 0.5 → ranks 1, 2, 2 (consistent)."""
    outcomes = {(0, 1): 1, (0, 2): 1, (1, 2): 0}
    assert pairwise_to_ranks(3, outcomes) == (1.0, 2.0, 2.0) and ranks_agree((1.0, 2.0, 2.0), outcomes)
    cycle = {(0, 1): 1, (1, 2): 1, (0, 2): 2}  # 0 > 1 > 2 > 0: everyone scores 1
    assert pairwise_to_ranks(3, cycle) == (1.0, 1.0, 1.0) and not ranks_agree((1.0, 1.0, 1.0), cycle)
    with pytest.raises(ValueError, match="expected 1"):
        pairwise_to_ranks(2, {(0, 1): 3})
