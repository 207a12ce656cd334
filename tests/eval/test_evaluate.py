"""Scoring: encoding with response spans, truncation counts, order restored, and determinism across
batch sizes and padding sides (RewardBench users report the opposite as a bug)."""

from __future__ import annotations

import numpy as np
import pytest

from eval.helpers import LengthRM, WordRM, word_tokenizer
from rewardlab.eval import analyze as A
from rewardlab.models.scoring import encode_sequences, score_dataset, score_ids
from rewardlab.eval.evaluate import evaluate_records
from rewardlab.types import LabelRecord, PairRecord, RankRecord, RatingRecord

# prompt "q a" is 2 tokens; responses are counted in words (one token per word)
PAIRS = [
    PairRecord("q a", "x x x", "x"),  # Δ = 3 − 1 = 2   chosen longer, correct
    PairRecord("q a", "x", "x x"),  # Δ = 1 − 2 = −1  chosen shorter, wrong
    PairRecord("q a", "y y", "x x"),  # Δ = 0           equal length, a reward tie: wrong
    PairRecord("q a", "x x x x", "y"),  # Δ = 4 − 1 = 3   chosen longer, correct
]


def test_encode_finds_response_spans_and_counts_truncation():
    """"q a\\nx x x" → [q, a, x, x, x]: 2 prompt + 3 response tokens. max_length 4 cuts the chosen of
    pair 0 only: from the left → [a, x, x, x] (1 prompt token kept), from the right → [q, a, x, x]
    (2 kept). Response lengths are counted before truncation (3 either way)."""
    tok = word_tokenizer()
    enc = encode_sequences(PAIRS, tok, max_length=16)
    assert [len(s) for s in enc.ids] == [5, 3, 3, 4, 4, 4, 6, 3]
    assert enc.prompt_tokens == [2] * 8
    assert enc.response_tokens == [3, 1, 1, 2, 2, 2, 4, 1]
    assert enc.owner == [0, 0, 1, 1, 2, 2, 3, 3]
    assert enc.report.n_truncated_sequences == 0

    left = encode_sequences(PAIRS[:1], tok, max_length=4, truncation_side="left")
    assert tok.convert_ids_to_tokens(left.ids[0]) == ["a", "x", "x", "x"] and left.prompt_tokens[0] == 1
    assert left.response_tokens == [3, 1]
    r = left.report
    assert (r.n_truncated_sequences, r.n_truncated_examples, r.by_field) == (1, 1, {"chosen": 1})
    right = encode_sequences(PAIRS[:1], tok, max_length=4, truncation_side="right")
    assert tok.convert_ids_to_tokens(right.ids[0]) == ["q", "a", "x", "x"] and right.prompt_tokens[0] == 2


def test_append_eos_adds_one_token_once():
    """append_eos: [q, a, x, x, x] → [q, a, x, x, x, </s>] (the EOS counts as response); a response that
    already ends with </s> gets no second one."""
    tok = word_tokenizer()
    enc = encode_sequences([PairRecord("q a", "x x x", "x </s>")], tok, append_eos=True)
    assert tok.convert_ids_to_tokens(enc.ids[0]) == ["q", "a", "x", "x", "x", "</s>"]
    assert tok.convert_ids_to_tokens(enc.ids[1]) == ["q", "a", "x", "</s>"]
    assert enc.response_tokens == [4, 2]


def test_length_rm_metrics_by_hand():
    """reward = tokens → Δ = len_c − len_r = [2, −1, 0, 3]: accuracy 2/4 (the tie is wrong), 1 reward tie,
    mean margin (2 − 1 + 0 + 3)/4 = 1. Length bias: chosen longer in pairs 0, 3 (both right → 1.0),
    shorter in pair 1 (wrong → 0.0), equal in pair 2 (tie → 0.0); reward = 2 + length exactly, so
    Pearson = Spearman = 1."""
    scored = score_dataset(LengthRM(), word_tokenizer(), PAIRS, batch_size=3)
    r, ln = np.stack(scored.rewards), np.stack(scored.lengths)
    assert r.tolist() == [[5, 3], [3, 4], [4, 4], [6, 3]]
    out = A.pair_analysis(r[:, 0], r[:, 1], len_chosen=ln[:, 0], len_rejected=ln[:, 1], n_boot=200)
    assert out["accuracy"] == 0.5 and out["reward_ties"] == 1 and out["mean_margin"] == 1.0
    lb = out["length_bias"]
    assert lb["accuracy_chosen_longer"] == 1.0 and lb["n_chosen_longer"] == 2
    assert lb["accuracy_chosen_shorter"] == 0.0 and lb["accuracy_equal_length"] == 0.0
    assert lb["pearson"] == pytest.approx(1.0) and lb["spearman"] == pytest.approx(1.0)


def test_content_rm_is_not_length_biased():
    """reward = #good − #bad. Chosen "good" (1 word) vs rejected "bad x x" (3 words): Δ = 1 − (−1) = 2,
    correct though shorter; chosen "good x x" vs "bad": Δ = 2, correct and longer → accuracy on shorter
    and on longer both 1.0."""
    tok = word_tokenizer()
    recs = [PairRecord("q", "good", "bad x x"), PairRecord("q", "good x x", "bad")]
    scored = score_dataset(WordRM(tok), tok, recs)
    r, ln = np.stack(scored.rewards), np.stack(scored.lengths)
    lb = A.pair_analysis(r[:, 0], r[:, 1], len_chosen=ln[:, 0], len_rejected=ln[:, 1], n_boot=0)["length_bias"]
    assert lb["accuracy_chosen_shorter"] == 1.0 and lb["accuracy_chosen_longer"] == 1.0


def test_score_ids_restores_order():
    """Sequences of lengths 1, 4, 2, 3 are scored longest first but returned in input order."""
    seqs = [[3], [3, 4, 5, 6], [3, 4], [3, 4, 5]]
    assert score_ids(LengthRM(), seqs, pad_id=0, batch_size=2).tolist() == [1, 4, 2, 3]


def test_evaluate_records_every_form():
    """LengthRM on each form. Rankings: lengths [3, 1, 2] with ranks [1, 2, 3] → pairs (0,1) ✓ (0,2) ✓
    (1,2) ✗ → 2/3; the longest is best-ranked → best-of-K 1. Labels: reward > 0 always, labels [1, 0] → ½."""
    tok = word_tokenizer()
    out = evaluate_records(LengthRM(), tok, PAIRS)
    assert out["accuracy"] == 0.5 and out["n_pairs"] == 4 and out["reward_ties"] == 1
    out = evaluate_records(LengthRM(), tok, [RankRecord("q", ("x x x", "x", "y y"), (1.0, 2.0, 3.0))])
    assert out["accuracy"] == pytest.approx(2 / 3) and out["best_of_k_accuracy"] == 1.0
    out = evaluate_records(LengthRM(), tok, [RatingRecord("q", "x", 1.0), RatingRecord("q", "x x", 2.0),
                                             RatingRecord("q", "x x x", 4.0)])
    assert out["spearman"] == pytest.approx(1.0)
    out = evaluate_records(LengthRM(), tok, [LabelRecord("q", "x", 1), LabelRecord("q", "y", 0)])
    assert out["accuracy"] == 0.5


def test_evaluate_records_label_accuracy_is_rewardlab_evals_at_threshold_0():
    """WordRM (#good − #bad): rewards "x" 0, "bad" −1, "good" 1 with labels [1, 0, 0]. ŷ = 1[r ≥ 0] = [1, 0, 1]
    → right, right, wrong → 2/3, as ``label_analysis(threshold=0)`` (``rewardlab eval --threshold 0``) says.
    (Before, training counted r = 0 as bad: 1[r > 0] = [0, 0, 1] → 1/3.)"""
    tok = word_tokenizer()
    recs = [LabelRecord("q", "x", 1), LabelRecord("q", "bad", 0), LabelRecord("q", "good", 0)]
    out = evaluate_records(WordRM(tok), tok, recs)
    assert out["accuracy"] == pytest.approx(2 / 3) and out["n"] == 3
    assert out["accuracy"] == A.label_analysis([0.0, -1.0, 1.0], [1, 0, 0], threshold=0.0)["accuracy"]


@pytest.fixture(scope="module")
def llama_rm(tiny_llama):
    from rewardlab.models.reward_model import load_reward_model

    model, tok, _ = load_reward_model(str(tiny_llama))
    return model, tok


def test_rewards_do_not_depend_on_batch_size_or_padding_side(llama_rm):
    """The same 40 pairs (80 sequences of different lengths) at batch sizes 1, 7, 32, padded right and
    left: every reward equal within 1e-4 to batch size 1, right padding."""
    from conftest import toy_pairs

    model, tok = llama_rm
    recs = [PairRecord(r["prompt"], r["chosen"], r["rejected"]) for r in toy_pairs(40, seed=5)]
    ref = np.concatenate(score_dataset(model, tok, recs, batch_size=1).rewards)
    assert np.ptp(ref) > 1e-3  # the rewards differ between sequences: the comparison is not trivial
    for side in ("right", "left"):
        for bs in (1, 7, 32):
            got = np.concatenate(score_dataset(model, tok, recs, batch_size=bs, padding_side=side, shared_prompt=False).rewards)
            assert np.max(np.abs(got - ref)) < 1e-4, (side, bs)


def test_left_padding_refused_for_encoders():
    """An encoder (pooling "model") would see shifted positions with left padding: refused, not silently wrong."""

    class Encoderish(LengthRM):
        pooling = "model"

    with pytest.raises(ValueError, match="padding_side='left'"):
        score_ids(Encoderish(), [[3, 4]], pad_id=0, padding_side="left")


def test_held_out_loss_is_the_training_objective(llama_rm):
    """evaluate_records(loss=(spec, hp)): `loss` is the run's objective on the held-out rewards — for bt the BT loss
    it reports anyway; for hinge max(0, 1 − Δ) averaged by hand from the same rewards."""
    from rewardlab.losses import get_loss, resolve_hparams
    from rewardlab.types import PairRecord

    model, tok = llama_rm
    records = [PairRecord("q", "a good answer", "bad"), PairRecord("q2", "fine", "a worse one"), PairRecord("q3", "x", "y", tie=True)]
    plain = evaluate_records(model, tok, records)
    bt = evaluate_records(model, tok, records, loss=(get_loss("bt"), {}))
    assert bt["loss"] == pytest.approx(plain["loss"], rel=1e-5)
    rewards = score_dataset(model, tok, records).rewards
    delta = np.array([r[0] - r[1] for r in rewards[:2]])  # the tie pair does not count for hinge either
    spec = get_loss("hinge")
    hinge = evaluate_records(model, tok, records, loss=(spec, resolve_hparams(spec, {})))
    assert hinge["loss"] == pytest.approx(np.mean(np.maximum(0.0, 1.0 - delta)), rel=1e-5)  # m = 1


def test_held_out_loss_of_rankings_and_ratings(llama_rm):
    """Rankings of different sizes (the shorter one padded, as in training) and ratings: the objective from the
    scored rewards, computed here straight from the loss functions."""
    import torch

    from rewardlab.losses import get_loss

    model, tok = llama_rm
    ranks = [RankRecord("q", ("a", "bb", "ccc"), (0, 1, 2)), RankRecord("q2", ("dd", "e"), (1, 0))]
    r = score_dataset(model, tok, ranks).rewards
    pl = get_loss("plackett_luce")
    by_hand = np.mean([float(pl.fn(torch.tensor(x, dtype=torch.float32)[None], torch.tensor(rec.ranks, dtype=torch.float32)[None],
                                   torch.ones(1, len(x), dtype=torch.bool))) for x, rec in zip(r, ranks)])
    assert evaluate_records(model, tok, ranks, loss=(pl, {}))["loss"] == pytest.approx(by_hand, rel=1e-5)
    ratings = [RatingRecord("q", "a", score=1.0), RatingRecord("q", "bb", score=-2.0)]
    r = np.concatenate(score_dataset(model, tok, ratings).rewards)
    got = evaluate_records(model, tok, ratings, loss=(get_loss("mse"), {"weights": None}))["loss"]
    assert got == pytest.approx(np.mean((r - np.array([1.0, -2.0])) ** 2), rel=1e-5)
