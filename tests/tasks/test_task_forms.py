"""Rankings, ratings and labels from the same gold, and writing every form as JSON lines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from rewardlab.tasks import GoldTask, to_jsonl
from rewardlab.types import LabelRecord, PairRecord, RankRecord, RatingRecord


@pytest.fixture(scope="module")
def task() -> GoldTask:
    return GoldTask()


def test_rankings_follow_gold(task):
    """T = 0, λ = 0: ranks sort the gold (rank 1 = highest g), so every ranking equals the gold's;
    at T = 1 Plackett–Luce noise lowers pairwise agreement, which stays above chance (0.5)."""
    records, info = task.make_rankings(200, k=4, seed=1)
    assert all(isinstance(r, RankRecord) and len(r.responses) == 4 for r in records)
    assert info["agrees_with_gold"].all() and (info["pair_agreement"] == 1.0).all()
    for r, g in zip(records[:20], info["gold"][:20]):
        assert g[list(r.ranks).index(1)] == g.max()
        np.testing.assert_allclose(g, task.gold_many([r.prompt] * 4, list(r.responses)))
    _, noisy = task.make_rankings(400, k=4, seed=1, temperature=1.0)
    assert 0.55 < noisy["pair_agreement"].mean() < 0.95


def test_ratings_match_gold(task):
    """noise = 0: score = g exactly (Spearman 1) and attribute scores are the gold's terms;
    noise = 1: score − g has std ≈ 1 and Spearman drops below 1."""
    records, info = task.make_ratings(500, seed=2)
    scores = np.array([r.score for r in records])
    assert spearmanr(scores, info["gold"]).statistic == pytest.approx(1.0)
    np.testing.assert_allclose(scores, info["gold"])
    assert set(records[0].scores) == {"sentiment", "relevance", "length"}
    np.testing.assert_allclose([r.scores["relevance"] for r in records], info["relevance"])
    terms = task.gold_terms_many([r.prompt for r in records], [r.response for r in records])
    np.testing.assert_allclose(terms.gold, info["gold"])
    _, noisy = task.make_ratings(2000, seed=2, noise=1.0)
    assert noisy["error"].std() == pytest.approx(1.0, abs=0.05)
    assert spearmanr(noisy["score"], noisy["gold"]).statistic < 0.9


def test_labels_match_gold(task):
    """Clean labels are 1[g > threshold]; flip_rate 0.2 leaves ≈ 80 % agreeing (std 0.009 at n = 2000)."""
    records, info = task.make_labels(2000, threshold=0.0, seed=3)
    labels = np.array([r.label for r in records])
    assert set(labels.tolist()) == {0, 1}
    np.testing.assert_array_equal(labels, (info["gold"] > 0).astype(int))
    assert info["agrees_with_gold"].all() and 0.3 < labels.mean() < 0.7
    _, flipped = task.make_labels(2000, threshold=0.0, seed=3, flip_rate=0.2)
    assert flipped["agrees_with_gold"].mean() == pytest.approx(0.8, abs=0.03)


def test_to_jsonl_round_trip(task, tmp_path):
    """Each form is written with its documented fields; None fields are left out; forms do not mix."""
    pairs, _ = task.make_pairs(3, seed=1)
    ranks, _ = task.make_rankings(2, k=3, seed=1)
    ratings, _ = task.make_ratings(2, seed=1)
    labels, _ = task.make_labels(2, seed=1)
    expected_keys = {
        "pairs": {"prompt", "chosen", "rejected", "margin", "tie"},
        "rankings": {"prompt", "responses", "ranks"},
        "ratings": {"prompt", "response", "score", "scores"},
        "labels": {"prompt", "response", "label"},
    }
    for name, records in (("pairs", pairs), ("rankings", ranks), ("ratings", ratings), ("labels", labels)):
        path = to_jsonl(records, tmp_path / f"{name}.jsonl")
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(rows) == len(records) and all(set(r) == expected_keys[name] for r in rows)
    row = json.loads((tmp_path / "pairs.jsonl").read_text().splitlines()[0])
    assert (row["prompt"], row["chosen"], row["rejected"]) == (pairs[0].prompt, pairs[0].chosen, pairs[0].rejected)
    row = json.loads((tmp_path / "rankings.jsonl").read_text().splitlines()[0])
    assert row["responses"] == list(ranks[0].responses) and row["ranks"] == list(ranks[0].ranks)
    no_margin = to_jsonl([PairRecord("p", "a", "b")], tmp_path / "m.jsonl").read_text()
    assert json.loads(no_margin) == {"prompt": "p", "chosen": "a", "rejected": "b", "tie": False}
    with pytest.raises(ValueError, match="one form per file"):
        to_jsonl([PairRecord("p", "a", "b"), LabelRecord("p", "a", 1)], tmp_path / "x.jsonl")
    with pytest.raises(TypeError, match="known record types"):
        to_jsonl([{"prompt": "p"}], tmp_path / "y.jsonl")
    assert isinstance(ratings[0], RatingRecord)
