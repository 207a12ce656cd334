"""Reward functions: metric rewards against sacrebleu / rouge-score, ensembles by hand, gold,
user functions, weighted sums, running normalisation and clipping, and the spec catalogue."""

from __future__ import annotations

import math
import sys
import textwrap

import numpy as np
import pytest

from rewardlab.rewards import (
    BLEUReward, ChrFReward, Clip, EnsembleReward, FunctionReward, GoldReward, NgramReward, RougeReward, RunningNorm,
    WeightedSum, aggregate, build_reward, ngram_f1, parse_spec, reward_from_spec,
)

HYPS = ["the cat sat on the mat", "a quick brown fox jumps over the lazy dog", "hello there", ""]
REFS = ["the cat is on the mat", ["the quick brown fox jumped over the lazy dog", "a fast fox"], "general kenobi", "nothing"]
PROMPTS = ["p"] * len(HYPS)


def test_bleu_and_chrf_equal_sacrebleu_sentence_scores_over_100():
    """BLEU / chrF rewards are sacrebleu's own sentence scores divided by 100 (multi-reference rows included)."""
    sacrebleu = pytest.importorskip("sacrebleu")
    refs = [[r] if isinstance(r, str) else r for r in REFS]
    want_bleu = [sacrebleu.sentence_bleu(h, r).score / 100 for h, r in zip(HYPS, refs)]
    want_chrf = [sacrebleu.sentence_chrf(h, r).score / 100 for h, r in zip(HYPS, refs)]
    assert BLEUReward()(PROMPTS, HYPS, reference=REFS) == pytest.approx(want_bleu, abs=1e-12)
    assert ChrFReward()(PROMPTS, HYPS, reference=REFS) == pytest.approx(want_chrf, abs=1e-12)
    assert want_bleu[0] > 0.1 and want_bleu[2] == 0.0  # a shared 4-gram-free pair scores 0, a close one does not


def test_rouge_equals_rouge_score_fmeasure_best_over_references():
    """ROUGE reward = rouge-score's F-measure with stemming; with several references the best one."""
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    for kind in ("rouge1", "rouge2", "rougeL"):
        scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
        want = []
        for h, r in zip(HYPS, REFS):
            refs = [r] if isinstance(r, str) else r
            want.append(max(scorer.score(x, h)[kind].fmeasure for x in refs))
        assert RougeReward(kind)(PROMPTS, HYPS, reference=REFS) == pytest.approx(want, abs=1e-12)


def test_rouge1_by_hand():
    """'the cat sat on the mat' vs 'the cat is on the mat': unigram overlap the×2, cat, on, mat = 5 of 6
    each side → P = R = F = 5/6."""
    assert RougeReward("rouge1")(["p"], [HYPS[0]], reference=[REFS[0]]) == pytest.approx([5 / 6])


def test_ngram_f1_by_hand():
    """Bigrams of 'the cat sat .' = {the cat, cat sat, sat .}; of 'the cat ran .' = {the cat, cat ran, ran .}:
    1 shared → P = R = 1/3 → F1 = 1/3. Unigrams: the, cat, . shared of 4 → 3/4."""
    assert ngram_f1("The cat sat.", "the cat ran.", 2) == pytest.approx(1 / 3)
    assert ngram_f1("The cat sat.", "the cat ran.", 1) == pytest.approx(3 / 4)
    assert ngram_f1("", "x", 1) == 0.0
    assert NgramReward(1)(["p", "p"], ["a b", "c"], reference=[["x", "a b"], "d"]) == [1.0, 0.0]


def test_metric_rewards_need_the_reference_column():
    with pytest.raises(ValueError, match="'reference' column"):
        BLEUReward()(["p"], ["x"])
    with pytest.raises(ValueError, match="1 values for 2"):
        BLEUReward()(["p", "p"], ["x", "y"], reference=["r"])
    assert BLEUReward(reference_column="summary")(["p"], ["a b c d"], summary=["a b c d"]) == pytest.approx([1.0])


def test_ensemble_aggregations_by_hand():
    """Members (M = 3) × completions (N = 2): [[1, 4], [2, 4], [3, 4]].
    mean = [2, 4]; min = [1, 4]; std (ddof 0) = [√(2/3), 0], var = [2/3, 0];
    mean_std with λ = 0.5 = [2 − 0.5·√(2/3), 4]; uwo with λ = 0.5 = [2 − 1/3, 4]."""
    scores = np.array([[1.0, 4.0], [2.0, 4.0], [3.0, 4.0]])
    assert aggregate(scores, "mean").tolist() == [2.0, 4.0]
    assert aggregate(scores, "min").tolist() == [1.0, 4.0]
    assert aggregate(scores, "mean_std", 0.5) == pytest.approx([2 - 0.5 * math.sqrt(2 / 3), 4.0])
    assert aggregate(scores, "uwo", 0.5) == pytest.approx([2 - 1 / 3, 4.0])
    members = [lambda p, c, v=v, **k: [v, 4.0] for v in (1.0, 2.0, 3.0)]
    assert EnsembleReward(members, "min")(["a", "b"], ["x", "y"]) == [1.0, 4.0]
    with pytest.raises(ValueError, match="known: mean, min, mean_std, uwo"):
        aggregate(scores, "median")


def test_gold_reward_is_the_task_gold():
    from rewardlab.tasks.gold import GoldTask

    task = GoldTask()
    prompts = task.prompts(4, seed=3)
    responses = ["I love the coffee.", "The sand is awful.", "", "I would call the idea great."]
    assert GoldReward(task)(prompts, responses) == pytest.approx(task.gold_many(prompts, responses).tolist())


def test_function_reward_from_module_and_file(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent("""
        def length(prompts, completions, **columns):
            return [len(c) for c in completions]
        def broken(prompts, completions, **columns):
            return [1.0]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_rewards", None)
    assert FunctionReward("my_rewards:length")(["p", "p"], ["ab", "abc"]) == [2.0, 3.0]
    assert reward_from_spec(f"fn:{tmp_path / 'my_rewards.py'}:length")(["p"], ["abcd"]) == [4.0]
    with pytest.raises(ValueError, match="returned 1 values for 2"):
        FunctionReward("my_rewards:broken")(["p", "p"], ["a", "b"])
    with pytest.raises(ValueError, match="its callables: broken, length"):
        FunctionReward("my_rewards:nope")


def test_weighted_sum_normalisation_and_clipping():
    """Sum: 2·[1, 2] + (−1)·[10, 20] = [−8, −16].
    RunningNorm: batch 1 = [1, 3] → μ = 2, σ = 1 → [−1, 1]; batch 2 = [5] → all seen [1, 3, 5]: μ = 3,
    σ = √(8/3) → (5 − 3)/√(8/3). Clip to [−0.5, 0.5]."""
    a = lambda p, c, **k: [1.0, 2.0]  # noqa: E731
    b = lambda p, c, **k: [10.0, 20.0]  # noqa: E731
    total = WeightedSum([a, b], [2.0, -1.0])
    assert total(["p", "q"], ["x", "y"]) == [-8.0, -16.0]
    values = iter([[1.0, 3.0], [5.0]])
    norm = RunningNorm(lambda p, c, **k: next(values))
    assert norm(["p", "p"], ["x", "y"]) == pytest.approx([-1.0, 1.0])
    assert norm(["p"], ["z"]) == pytest.approx([2.0 / math.sqrt(8 / 3)], rel=1e-6)
    assert Clip(lambda p, c, **k: [-3.0, 0.2, 9.0], -0.5, 0.5)(["p"] * 3, ["a", "b", "c"]) == [-0.5, 0.2, 0.5]


def test_running_norm_matches_numpy_over_many_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=n) for n in (5, 1, 17, 8)]
    norm = RunningNorm(lambda p, c, **k: [])
    for b in batches:
        norm.observe(b)
    allv = np.concatenate(batches)
    assert norm.mean == pytest.approx(allv.mean()) and norm.std == pytest.approx(allv.std())


def test_spec_catalogue_builds_sums_and_rejects_unknown_kinds():
    assert parse_spec("ensemble:a,b;agg=min;lam=0.25") == ("ensemble", "a,b", {"agg": "min", "lam": 0.25})
    reward = build_reward(["bleu", "rouge:rouge1"], [1.0, 2.0])
    out = reward(["p"], ["the cat is on the mat"], reference=["the cat is on the mat"])
    assert out == pytest.approx([3.0])
    with pytest.raises(ValueError, match="known: gold, rm, ensemble, fn"):
        build_reward(["bleurt"])
    with pytest.raises(ValueError, match="unknown option"):
        build_reward(["bleu;colum=x"])
    normed = build_reward(["gold"], normalize=True, clip=1.0)
    assert isinstance(normed, Clip) and isinstance(normed.reward, RunningNorm)



def test_http_spec_takes_its_key_from_the_environment_only(monkeypatch):
    """``http://HOST:PORT;…`` builds an HTTPReward without connecting; a key in the spec or an unset variable is refused.
    Scoring through a real server: tests/serve/test_client.py."""
    monkeypatch.setenv("RM_KEY", "k")
    reward = reward_from_spec("http://127.0.0.1:9/;api_key_env=RM_KEY;timeout=5;retries=0;max_items=8")
    assert reward.name == "http://127.0.0.1:9" and reward.client.max_items == 8 and reward.client.retries == 0
    assert reward.client._http.headers["authorization"] == "Bearer k" and reward.client._http.timeout.read == 5
    assert reward_from_spec("https://rm.example.org").client.url == "https://rm.example.org"
    assert reward([], []) == []
    with pytest.raises(ValueError, match="no api_key in a spec"):
        reward_from_spec("http://127.0.0.1:9;api_key=k")
    with pytest.raises(ValueError, match="NOT_SET_ANYWHERE is not set"):
        reward_from_spec("http://127.0.0.1:9;api_key_env=NOT_SET_ANYWHERE")
    with pytest.raises(ValueError, match="write http://HOST:PORT"):
        reward_from_spec("http")
    with pytest.raises(ValueError, match="known: api_key_env, timeout, retries, max_items"):
        reward_from_spec("http://127.0.0.1:9;device=cpu")

def test_rm_reward_and_ensemble_of_saved_models(tiny_llama):
    """An RM reward equals score_texts on the same model; an ensemble of two copies with mean equals it too,
    and mean_std of identical members has no penalty."""
    from rewardlab.models.scoring import score_texts
    from rewardlab.models.reward_model import load_reward_model

    prompts, comps = ["What do you think of coffee?"] * 3, ["great and kind.", "awful.", "it is about this topic"]
    rm = reward_from_spec(f"rm:{tiny_llama};batch_size=2")
    model, tok, _ = load_reward_model(str(tiny_llama))
    want, _ = score_texts(model, tok, prompts, comps, 16, 512)
    assert rm(prompts, comps) == pytest.approx(want.tolist(), abs=1e-5)
    ens = reward_from_spec(f"ensemble:{tiny_llama},{tiny_llama};agg=mean_std;lam=2")
    assert ens(prompts, comps) == pytest.approx(want.tolist(), abs=1e-5)
