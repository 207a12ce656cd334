"""The adversarial reward: a discriminator trained online on references (real) vs policy samples (fake).

Tiny random Llama discriminators (the session's ``tiny_llama`` folder, loaded fresh per test), the toy
pairs of tests/toydata.py (chosen = praise words: the "reference" style; rejected = insults: the
"policy" style), one thread, fixed seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from toydata import toy_pairs

from rewardlab.rewards import DiscriminatorReward, RMReward, build_reward, reward_from_spec
from rewardlab.rewards.adversarial import FORMS, bce_disc_loss, bt_disc_loss, disc_accuracy


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def columns(rows):
    return [r["prompt"] for r in rows], [r["rejected"] for r in rows], {"reference": [r["chosen"] for r in rows]}


def weights(reward):
    return [p.detach().clone() for p in reward.model.parameters()]


# ---------------------------------------------------------------------------- pure functions by hand


def test_losses_forms_and_accuracy_by_hand():
    """d_real = [0, 2], d_fake = [−1], pairs (ref, sample) = [(0, 0), (1, 0)]:
    bce = ½(log 2 + log(1 + e^−2)) + log(1 + e^−1);   bt = ½(log(1 + e^−1) + log(1 + e^−3)).
    Forms at d = 2: log σ(2) = −log(1 + e^−2); −log(1 − σ(2)) = log(1 + e^2); logit 2; σ(2) = 1/(1 + e^−2).
    Accuracy: bce ½(½ + 1) = 0.75 (d_real = 0 is not > 0); bt: 0 − (−1) > 0 and 2 − (−1) > 0 → 1."""
    d_real, d_fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0])
    pairs = torch.tensor([[0, 0], [1, 0]])
    want_bce = 0.5 * (math.log(2) + math.log1p(math.exp(-2))) + math.log1p(math.exp(-1))
    assert float(bce_disc_loss(d_real, d_fake, pairs)) == pytest.approx(want_bce, rel=1e-6)
    assert float(bt_disc_loss(d_real, d_fake, pairs)) == pytest.approx(0.5 * (math.log1p(math.exp(-1)) + math.log1p(math.exp(-3))), rel=1e-6)
    d = torch.tensor([2.0], dtype=torch.float64)
    assert float(FORMS["logsigmoid"](d)) == pytest.approx(-math.log1p(math.exp(-2)), rel=1e-12)
    assert float(FORMS["neg_log_one_minus"](d)) == pytest.approx(math.log1p(math.exp(2)), rel=1e-12)
    assert float(FORMS["logit"](d)) == 2.0 and float(FORMS["sigmoid"](d)) == pytest.approx(1 / (1 + math.exp(-2)), rel=1e-12)
    assert disc_accuracy(d_real, d_fake, pairs, "bce") == 0.75 and disc_accuracy(d_real, d_fake, pairs, "bt") == 1.0


# ---------------------------------------------------------------------------- behaviour


CALLS = 30


@pytest.mark.parametrize("loss", ["bce", "bt"])
def test_discriminator_learns_to_separate_references_from_samples(tiny_llama, loss):
    """30 calls of 8 toy pairs (lr 3e-3, one step each). Measured (seed 0, EOS appended as the sequence convention
    says for a decoder): last batch accuracy 0.94 (bce) / 1.0 (bt); on 32 held-out pairs threshold accuracy 1.0 /
    0.98, every reference above its sample, logit gap ≈ 4.5 (from ≈ 0 before training). With 20 calls, as
    before the convention, it reached 0.875: the reward is read at the EOS, which the 2-layer model has to
    learn to route the words to. Thresholds: accuracy ≥ 0.9, mean log σ(d) gap > 0.5."""
    torch.manual_seed(0)
    reward = DiscriminatorReward.load(str(tiny_llama), lr=3e-3, loss=loss)
    held = toy_pairs(32, seed=12)
    hp, hs, hc = columns(held)

    def gap():  # mean reward of held-out references − of held-out samples
        return float(np.mean(_score(reward, hp, hc["reference"])) - np.mean(_score(reward, hp, hs)))

    before = gap()
    train = toy_pairs(8 * CALLS, seed=11)
    for i in range(CALLS):
        p, c, cols = columns(train[i * 8: (i + 1) * 8])
        out = reward(p, c, **cols)
        assert len(out) == 8 and all(math.isfinite(v) for v in out)
    assert reward.stats["accuracy"] >= 0.9 and reward.stats["p_ref"] > reward.stats["p_sample"]
    assert reward.updates == CALLS and abs(before) < 0.2
    assert gap() > 0.5
    d_ref, d_sample = np.array(reward.logits(hp, hc["reference"])), np.array(reward.logits(hp, hs))
    assert ((d_ref > 0).mean() + (d_sample < 0).mean()) / 2 >= 0.9 and (d_ref > d_sample).mean() >= 0.9


def _score(reward, prompts, completions):
    """Rewards without training (the session's evaluation switch)."""
    reward.update = False
    try:
        return reward(prompts, completions)
    finally:
        reward.update = True


@pytest.mark.parametrize("form", list(FORMS))
def test_reward_is_the_form_of_the_logit_after_the_update(tiny_llama, form):
    """The returned reward is form(d) with d the RM score (score_texts, as rm:PATH) of the *updated* weights:
    log σ(d) = −log(1 + e^−d), −log(1 − σ(d)) = log(1 + e^d), d, or 1/(1 + e^−d)."""
    torch.manual_seed(0)
    reward = DiscriminatorReward.load(str(tiny_llama), lr=3e-3, form=form)
    p, c, cols = columns(toy_pairs(6, seed=3))
    d_before = RMReward(reward.model, reward.tokenizer)(p, c)
    out = reward(p, c, **cols)
    d_after = RMReward(reward.model, reward.tokenizer)(p, c)
    hand = {"logsigmoid": lambda d: -math.log1p(math.exp(-d)), "neg_log_one_minus": lambda d: math.log1p(math.exp(d)),
            "logit": lambda d: d, "sigmoid": lambda d: 1 / (1 + math.exp(-d))}[form]
    assert out == pytest.approx([hand(d) for d in d_after], abs=1e-9)
    assert max(abs(a - b) for a, b in zip(d_before, d_after)) > 1e-4  # the update happened before scoring


def test_missing_reference_column_and_training_off(tiny_llama):
    """Training without the column is a ValueError naming it; ``update=False`` or ``steps=0`` only scores
    (weights and optimiser untouched, no column needed)."""
    reward = DiscriminatorReward.load(str(tiny_llama), lr=3e-3, column="gold_answer")
    p, c, cols = columns(toy_pairs(4, seed=3))
    with pytest.raises(ValueError, match="'gold_answer' column.*columns given: reference"):
        reward(p, c, **cols)
    w0 = weights(reward)
    reward.update = False
    first = reward(p, c)
    assert reward(p, c) == first and reward.updates == 0 and reward.stats == {}
    assert all(torch.equal(a, b) for a, b in zip(w0, weights(reward)))
    frozen = DiscriminatorReward.load(str(tiny_llama), steps=0)
    w0 = weights(frozen)
    assert frozen(p, c) == pytest.approx(first, abs=1e-9)
    assert all(torch.equal(a, b) for a, b in zip(w0, weights(frozen)))
    reward.update = True
    reward(p, c, gold_answer=cols["reference"])
    assert reward.updates == 1 and not all(torch.equal(a, b) for a, b in zip(w0, weights(reward)))


def test_spec_string_builds_it_and_checks_options(tiny_llama):
    reward = build_reward([f"adversarial:{tiny_llama};lr=1e-3;steps=2;loss=bt;form=logit;replay=4"])
    assert isinstance(reward, DiscriminatorReward)
    assert (reward.lr, reward.steps, reward.loss, reward.form, reward.buffer.maxlen) == (1e-3, 2, "bt", "logit", 4)
    assert reward.name == f"adversarial:{tiny_llama}" and reward.optimizer.param_groups[0]["lr"] == 1e-3
    p, c, cols = columns(toy_pairs(3, seed=4))
    reward(p, c, **cols)
    assert reward.updates == 2 and len(reward.buffer) == 3
    reward(p, c, **cols)
    assert len(reward.buffer) == 4  # the last 4 samples
    with pytest.raises(ValueError, match="unknown option.*nope.*known: lr, steps"):
        reward_from_spec(f"adversarial:{tiny_llama};nope=1")
    with pytest.raises(ValueError, match="known: bce, bt"):
        reward_from_spec(f"adversarial:{tiny_llama};loss=hinge")
    with pytest.raises(ValueError, match="known: logsigmoid, neg_log_one_minus, logit, sigmoid"):
        reward_from_spec(f"adversarial:{tiny_llama};form=prob")
    with pytest.raises(ValueError, match="needs path"):
        reward_from_spec("adversarial")


def test_state_round_trips_give_identical_rewards_and_training(tiny_llama, tmp_path):
    """state_dict → a fresh discriminator, and save → load (also readable as rm:PATH): the same rewards, and
    one more training call moves both the same way (optimiser state and replay buffer travel too)."""
    torch.manual_seed(0)
    a = DiscriminatorReward.load(str(tiny_llama), lr=3e-3, replay=8)
    train = toy_pairs(24, seed=5)
    for i in range(3):
        p, s, cols = columns(train[i * 8: (i + 1) * 8])
        a(p, s, **cols)
    b = DiscriminatorReward.load(str(tiny_llama), lr=3e-3, replay=8)
    b.load_state_dict(a.state_dict())
    a.save(tmp_path / "disc")
    c = DiscriminatorReward.load(str(tmp_path / "disc"), lr=3e-3, replay=8)
    p, s, cols = columns(toy_pairs(8, seed=6))
    want = _score(a, p, s)
    assert _score(b, p, s) == pytest.approx(want, abs=1e-9) and _score(c, p, s) == pytest.approx(want, abs=1e-6)
    assert reward_from_spec(f"rm:{tmp_path / 'disc'}")(p, s) == pytest.approx(a.logits(p, s), abs=1e-6)
    assert c.updates == b.updates == 3 and list(c.buffer) == list(b.buffer) == list(a.buffer)
    nxt = [r(p, s, **cols) for r in (a, b, c)]
    assert nxt[1] == pytest.approx(nxt[0], abs=1e-7) and nxt[2] == pytest.approx(nxt[0], abs=1e-5)
    assert a.stats == pytest.approx(b.stats)
