"""The gold reward, the generator and determinism of the built-in task."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from rewardlab.tasks import GoldTask
from rewardlab.tasks import vocab

BEACH = "Question: Tell me about the beach.\nAnswer:"


@pytest.fixture(scope="module")
def task() -> GoldTask:
    return GoldTask()


def test_vocabulary_is_consistent():
    """Sentiment words carry VADER valence of the listed sign, every other word none, topics disjoint."""
    vocab.check_vocabulary()
    lex = vocab.vader_lexicon()
    assert lex["wonderful"] == 2.7 and lex["awful"] == -2.0
    assert lex["ok"] == 1.2  # listed twice (1.6, then 1.2): the last wins, as in VADER


def test_gold_prefers_positive_on_topic_response(task):
    """Hand-derived terms (VADER: wonderful 2.7, lovely 2.8, awful −2.0, terrible −2.1; n* = 20, w = 10).

    pos = "The beach is wonderful and the sand is lovely."   9 words, on-topic: beach, sand
        S = (2.7 + 2.8) / 9 = 0.61111,  R = (2 − 0) / (2 + 0 + 1) = 0.66667,
        L = exp(−(9 − 20)² / 200) = exp(−0.605) = 0.54607
        raw = 3·0.61111 + 0.66667 + 0.54607 = 3.04607
    neg = "The espresso is awful and the subway is terrible."   9 words, off-topic: espresso (coffee), subway (city)
        S = (−2.0 − 2.1) / 9 = −0.45556,  R = (0 − 2) / (0 + 2 + 1) = −0.66667,  L = 0.54607
        raw = 3·(−0.45556) − 0.66667 + 0.54607 = −1.48726
    g = (raw − offset) / scale, so g(pos) − g(neg) = 4.53333 / scale, with scale ≈ 1.
    """
    pos = "The beach is wonderful and the sand is lovely."
    neg = "The espresso is awful and the subway is terrible."
    lex = vocab.vader_lexicon()
    assert [w for w in vocab.words(pos + " " + neg) if w in lex] == ["wonderful", "lovely", "awful", "terrible"]
    terms = task.gold_terms_many([BEACH, BEACH], [pos, neg])
    np.testing.assert_allclose(terms.sentiment, [5.5 / 9, -4.1 / 9], atol=1e-12)
    np.testing.assert_allclose(terms.relevance, [2 / 3, -2 / 3], atol=1e-12)
    np.testing.assert_allclose(terms.length, [math.exp(-0.605)] * 2, atol=1e-12)
    np.testing.assert_allclose(terms.raw, [3.04607, -1.48726], atol=1e-5)
    cal = task.calibration
    np.testing.assert_allclose(terms.gold, (terms.raw - cal["offset"]) / cal["scale"], atol=1e-12)
    assert 0.8 < cal["scale"] < 1.25
    assert task.gold(BEACH, pos) - task.gold(BEACH, neg) == pytest.approx(4.53333 / cal["scale"], abs=1e-4)
    assert task.topic_of(BEACH) == "beach"


def test_length_term_peaks_at_target(task):
    """L(n) = exp(−(n − 20)² / 200): L(20) = 1, L(10) = L(30) = exp(−0.5) = 0.60653, L(60) = exp(−8).

    A response of n neutral words ("so" has no valence, no topic) has S = R = 0, so raw = w_L·L(n)
    and the gold peaks at n = 20 and falls on both sides.
    """
    L = task.length_term(np.arange(0, 81))
    assert int(np.argmax(L)) == 20 and L[20] == 1.0
    np.testing.assert_allclose([L[10], L[30], L[60]], [math.exp(-0.5), math.exp(-0.5), math.exp(-8)])
    lengths = np.arange(1, 61)
    g = task.gold_many([BEACH] * len(lengths), [" ".join(["so"] * n) + "." for n in lengths])
    assert int(lengths[np.argmax(g)]) == 20
    assert np.all(np.diff(g[:20]) > 0) and np.all(np.diff(g[19:]) < 0)


def test_gold_std_about_one_and_quality_knob(task):
    """Over random responses (a seed other than the calibration's) g has mean ≈ 0 and std ≈ 1;
    mean gold rises with the quality knob."""
    prompts = task.prompts(1500, seed=11)
    rng = np.random.default_rng(12)
    responses = [task.sample_responses(p, 1, rng)[0] for p in prompts]
    g = task.gold_many(prompts, responses)
    assert abs(g.mean()) < 0.1 and abs(g.std() - 1.0) < 0.1
    means = [task.gold_many([BEACH] * 300, task.sample_responses(BEACH, 300, rng, quality=q)).mean() for q in (0, 0.5, 1)]
    assert means[0] < means[1] < means[2] and means[2] - means[0] > 1.5


def test_texts_read_as_prompt_plus_answer(task):
    """Prompts end with 'Answer:'; responses are sentences of min_words..max_words words."""
    records, info = task.make_pairs(300, seed=5)
    for r in records[:50]:
        assert r.prompt.startswith("Question: ") and r.prompt.endswith("\nAnswer:")
        assert r.chosen[0].isupper() and r.chosen.endswith((".", "?"))
    lengths = np.concatenate([info["len_chosen"], info["len_rejected"]])
    assert lengths.min() >= task.min_words and lengths.max() <= task.max_words
    assert lengths.max() - lengths.min() > 30  # lengths vary


def test_determinism_by_seed():
    """Same seed → identical records; another seed → different ones; the task's seed is the default."""
    a, _ = GoldTask(seed=1).make_pairs(40, flip_rate=0.2, temperature=0.5)
    b, _ = GoldTask(seed=1).make_pairs(40, flip_rate=0.2, temperature=0.5)
    c, _ = GoldTask(seed=0).make_pairs(40, seed=1, flip_rate=0.2, temperature=0.5)
    d, _ = GoldTask(seed=2).make_pairs(40, flip_rate=0.2, temperature=0.5)
    assert a == b == c and a != d
    t = GoldTask()
    assert t.prompts(20, seed=3) == t.prompts(20, seed=3) != t.prompts(20, seed=4)
    r1 = t.sample_responses(BEACH, 5, np.random.default_rng(7))
    r2 = t.sample_responses(BEACH, 5, np.random.default_rng(7))
    assert r1 == r2 != t.sample_responses(BEACH, 5, np.random.default_rng(8))
    for make in (t.make_rankings, t.make_ratings, t.make_labels):
        assert make(10, seed=4)[0] == make(10, seed=4)[0] != make(10, seed=5)[0]
    # the gold does not depend on the task's seed (its calibration uses a fixed seed)
    assert GoldTask(seed=9).gold(BEACH, "The sand is lovely.") == t.gold(BEACH, "The sand is lovely.")


def test_errors_name_the_problem(task):
    with pytest.raises(ValueError, match="known topics: beach, coffee"):
        task.gold("Question: Tell me about nothing.\nAnswer:", "The sand is lovely.")
    with pytest.raises(ValueError, match="known: gap, bucket, none"):
        task.make_pairs(3, margin="big")
    with pytest.raises(ValueError, match="n_topics"):
        GoldTask(n_topics=1)
    with pytest.raises(ValueError, match="quality"):
        task.sample_responses(BEACH, 2, np.random.default_rng(0), quality=1.5)


def test_best_of_n_candidates(task):
    """Candidates span quality: the mean gold of the best of N rises with N (the best-of-N curve)."""
    groups = task.best_of_n_candidates(60, 64, seed=2)
    assert len(groups) == 60
    prompt, responses, g = groups[0]
    assert len(responses) == 64 and g.shape == (64,)
    np.testing.assert_allclose(g, task.gold_many([prompt] * 64, responses))
    gold = np.stack([grp[2] for grp in groups])  # (60, 64)
    best = [gold[:, :n].max(axis=1).mean() for n in (1, 4, 16, 64)]
    assert all(x < y for x, y in zip(best, best[1:])) and best[-1] - best[0] > 1.0


def test_ten_thousand_pairs_are_fast():
    start = time.perf_counter()
    records, _ = GoldTask(seed=3).make_pairs(10_000)
    elapsed = time.perf_counter() - start
    assert len(records) == 10_000
    assert elapsed < 5.0, f"10,000 pairs took {elapsed:.2f} s"


def test_print_examples(capsys):
    """Shows three pairs so a person can judge that they read as text (run with -s to see them)."""
    task = GoldTask()
    records, info = task.make_pairs(3, seed=1)
    with capsys.disabled():
        for r, gc, gr in zip(records, info["gold_chosen"], info["gold_rejected"]):
            print(f"\n{r.prompt} ...\n  chosen   (g={gc:+.2f}): {r.chosen}\n  rejected (g={gr:+.2f}): {r.rejected}")
    assert all(r.chosen != r.rejected for r in records)
