"""The maths of policy optimisation on hand-made tensors: KL estimators vs exact KL, best-of-N vs its
analytic KL, advantages, GAE, PPO losses, the adaptive KL controller, RWR weights, RAFT filtering, and PPO's
token means and minibatches over several processes."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
import torch

from rewardlab.eval.metrics import best_of_n_expectation
from rewardlab.optimize import algorithms as A


def test_kl_estimators_match_exact_kl_of_a_categorical():
    """p = [0.4, 0.3, 0.2, 0.1], q = [0.25]*4: KL(p‖q) = Σ p log(4p) = 0.1064 nats (by hand:
    0.4·ln1.6 + 0.3·ln1.2 + 0.2·ln0.8 + 0.1·ln0.4 = 0.18800 + 0.05470 − 0.04463 − 0.09163).
    With 200k draws from p, k1 and k3 (unbiased) lie within 4 standard errors of it; k3 has the
    smaller variance. k2 is biased: its expectation is ½ Σ p log²(p/q) = ½·0.19225 = 0.0961 ≠ KL."""
    p, q = np.array([0.4, 0.3, 0.2, 0.1]), np.full(4, 0.25)
    exact = A.exact_kl(p, q)
    assert exact == pytest.approx(0.4 * math.log(1.6) + 0.3 * math.log(1.2) + 0.2 * math.log(0.8) + 0.1 * math.log(0.4))
    assert exact == pytest.approx(0.10644, abs=1e-5)
    rng = np.random.default_rng(0)
    x = rng.choice(4, size=200_000, p=p)
    logp, logq = torch.tensor(np.log(p)[x]), torch.tensor(np.log(q)[x])
    k1, k2, k3 = A.kl_k1(logp, logq), A.kl_k2(logp, logq), A.kl_k3(logp, logq)
    se = lambda t: float(t.std()) / math.sqrt(t.numel())  # noqa: E731
    assert abs(float(k1.mean()) - exact) < 4 * se(k1)
    assert abs(float(k3.mean()) - exact) < 4 * se(k3)
    assert float(k3.std()) < float(k1.std())
    assert float(k3.min()) >= 0.0 and float(k1.min()) < 0.0
    k2_expect = 0.5 * float(np.sum(p * np.log(p / q) ** 2))
    assert k2_expect == pytest.approx(0.0961, abs=1e-3)
    assert abs(float(k2.mean()) - k2_expect) < 4 * se(k2) and k2_expect < exact


def test_sequence_kl_sums_real_tokens_only():
    """Per-token log-ratios [0.5, −0.2, 9 (pad)] with mask [1, 1, 0] → k1 sum = 0.3."""
    logp = torch.tensor([[0.0, 0.0, 0.0]])
    logp_ref = torch.tensor([[-0.5, 0.2, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert A.sequence_kl(logp, logp_ref, mask, "k1").tolist() == pytest.approx([0.3])
    k3 = (math.exp(-0.5) - 1 + 0.5) + (math.exp(0.2) - 1 - 0.2)
    assert A.sequence_kl(logp, logp_ref, mask, "k3").tolist() == pytest.approx([k3])
    with pytest.raises(ValueError, match="known: k1, k2, k3"):
        A.sequence_kl(logp, logp_ref, mask, "k4")


def test_best_of_n_selection_matches_its_distribution_and_the_analytic_kl():
    """Base: uniform over M = 20 items of distinct reward. Best-of-4 picks rank i with
    p_i = (i/M)^4 − ((i−1)/M)^4 — simulated selections match it (max abs error < 0.01 over 100k trials),
    and the plug-in KL of the simulated selection ≈ the exact KL Σ p_i log(M p_i). The exact KL rises with M
    towards log N − (N−1)/N and stays below it (Beirami et al. 2024: the formula is an upper bound)."""
    m, n = 20, 4
    rng = np.random.default_rng(1)
    draws = rng.integers(0, m, size=(100_000, n))  # item index = rank − 1 (reward increasing with index)
    picked = draws.max(1)
    freq = np.bincount(picked, minlength=m) / picked.size
    probs = A.bon_selection_probs(m, n)
    assert probs.sum() == pytest.approx(1.0)
    assert np.abs(freq - probs).max() < 0.01
    assert A.exact_kl(freq, np.full(m, 1 / m)) == pytest.approx(A.bon_exact_kl(m, n), abs=0.01)
    analytic = A.bon_kl(n)
    assert analytic == pytest.approx(math.log(4) - 0.75)
    kls = [A.bon_exact_kl(mm, n) for mm in (5, 50, 500, 50_000)]
    assert all(a < b for a, b in zip(kls, kls[1:])) and all(k <= analytic for k in kls)
    assert kls[-1] == pytest.approx(analytic, abs=1e-3)
    assert A.bon_kl(1) == 0.0 and A.bon_kl(np.array([1, 2])).tolist() == pytest.approx([0.0, math.log(2) - 0.5])


def test_bon_expected_equals_the_average_over_all_subsets():
    """E[value of the proxy-best of n] from M samples equals the mean over all C(M, n) subsets (M = 6, n = 3)."""
    proxy = np.array([0.3, -1.0, 2.0, 0.7, 1.5, -0.2])
    gold = np.array([1.0, 2.0, -1.0, 0.5, 3.0, 0.0])
    brute = np.mean([gold[list(s)][np.argmax(proxy[list(s)])] for s in combinations(range(6), 3)])
    assert best_of_n_expectation(proxy, gold, 3) == pytest.approx(brute)
    assert best_of_n_expectation(proxy, gold, 1) == pytest.approx(gold.mean())
    assert best_of_n_expectation(proxy, gold, 6) == pytest.approx(gold[2])


def test_advantages_by_hand():
    """RLOO on r = [1, 2, 3]: A_i = r_i − mean of the others = [1 − 2.5, 2 − 2, 3 − 1.5] = [−1.5, 0, 1.5].
    Group normalisation: (r − 2)/std(ddof=1) = (r − 2)/1 = [−1, 0, 1]."""
    r = torch.tensor([[1.0, 2.0, 3.0]])
    assert A.rloo_advantages(r).tolist() == [[-1.5, 0.0, 1.5]]
    assert A.group_advantages(r).tolist()[0] == pytest.approx([-1.0, 0.0, 1.0], abs=1e-5)
    with pytest.raises(ValueError):
        A.rloo_advantages(torch.tensor([[1.0]]))


def test_token_rewards_and_gae_by_hand():
    """One completion of 2 real tokens (+1 pad), score 1, β = 0.1, kl = [0.5, 0.2]:
    rewards = [−0.05, −0.02 + 1, 0]. With values V = [0.3, 0.6], γ = 1, λ = 0.5:
    δ_1 = 0.98 + 0 − 0.6 = 0.38 → A_1 = 0.38; δ_0 = −0.05 + 0.6 − 0.3 = 0.25 → A_0 = 0.25 + 0.5·0.38 = 0.44;
    returns = A + V = [0.74, 0.98]."""
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    rewards = A.token_rewards(torch.tensor([1.0]), torch.tensor([[0.5, 0.2, 7.0]]), mask, 0.1)
    assert rewards.tolist()[0] == pytest.approx([-0.05, 0.98, 0.0])
    adv, ret = A.gae(rewards, torch.tensor([[0.3, 0.6, 5.0]]), mask, gamma=1.0, lam=0.5)
    assert adv.tolist()[0] == pytest.approx([0.44, 0.38, 0.0])
    assert ret.tolist()[0] == pytest.approx([0.74, 0.98, 0.0])


def test_ppo_losses_clip_by_hand():
    """ratio e^{0.4} ≈ 1.49 with A = 1, ε = 0.2 → the clipped term 1.2 wins: loss = −1.2; with A = −1 the
    unclipped −ratio·A = 1.49 is the max → loss = 1.49. Value: V = 1.0, V_old = 0, G = 1, ε = 0.2 → clipped
    V = 0.2: ½·max(0, 0.64) = 0.32."""
    logp, old = torch.tensor([[0.4]]), torch.tensor([[0.0]])
    mask = torch.ones(1, 1)
    loss, st = A.ppo_policy_loss(logp, old, torch.tensor([[1.0]]), mask, 0.2)
    assert float(loss) == pytest.approx(-1.2) and st["clipfrac"] == 1.0
    loss, _ = A.ppo_policy_loss(logp, old, torch.tensor([[-1.0]]), mask, 0.2)
    assert float(loss) == pytest.approx(math.exp(0.4))
    vl, _ = A.ppo_value_loss(torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[1.0]]), mask, 0.2)
    assert float(vl) == pytest.approx(0.32)


def test_adaptive_kl_controller_by_hand():
    """β = 0.1, target 6, horizon 1000. KL 12 → e = clip(1, ±0.2) = 0.2, n = 100 → β·(1 + 0.02) = 0.102.
    KL 5.4 → e = −0.1 → 0.102·(1 − 0.01) = 0.10098."""
    ctl = A.AdaptiveKLController(0.1, 6.0, 1000)
    ctl.update(12.0, 100)
    assert ctl.value == pytest.approx(0.102)
    ctl.update(5.4, 100)
    assert ctl.value == pytest.approx(0.10098)
    fixed = A.FixedKLController(0.3)
    fixed.update(100.0, 1000)
    assert fixed.value == 0.3


def test_rwr_weights_and_topk_filter():
    """RWR: w ∝ exp(r/β), mean 1: r = [0, ln 2·β, ln 4·β] → w ∝ [1, 2, 4] → [3/7, 6/7, 12/7].
    RAFT top-1 of each row of [[1, 3, 2], [5, 4, 6]] keeps columns 1 and 2."""
    beta = 0.5
    w = A.rwr_weights(torch.tensor([0.0, math.log(2) * beta, math.log(4) * beta]), beta)
    assert w.tolist() == pytest.approx([3 / 7, 6 / 7, 12 / 7], rel=1e-5)
    keep = A.topk_mask(torch.tensor([[1.0, 3.0, 2.0], [5.0, 4.0, 6.0]]), 1)
    assert keep.tolist() == [[False, True, False], [False, False, True]]
    assert A.topk_mask(torch.tensor([[1.0, 3.0, 2.0]]), 2).tolist() == [[False, True, True]]


def test_masked_mean_with_a_count_and_whitening_with_given_moments():
    """x = [1, 2, 3 (pad)], mask [1, 1, 0]: mean 1.5; with count 4 (e.g. 2 of a global minibatch's 8 tokens over
    2 processes) 3/4 = 0.75. Whitening with given μ = 1, σ² = 4: [(1 − 1)/2, (2 − 1)/2, 0] = [0, 0.5, 0]; without them
    the batch's own μ = 1.5, σ² = 0.25: [−1, 1, 0]."""
    x, mask = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    assert float(A.masked_mean(x, mask)) == 1.5
    assert float(A.masked_mean(x, mask, count=4.0)) == 0.75
    assert float(A.masked_mean(x, torch.zeros_like(mask), count=4.0)) == 0.0  # an empty share adds nothing
    with pytest.raises(ValueError, match="no dim"):
        A.masked_mean(x, mask, dim=-1, count=4.0)
    given = A.masked_whiten(x, mask, mean=torch.tensor(1.0), var=torch.tensor(4.0), eps=0.0)
    assert given.tolist()[0] == [0.0, 0.5, 0.0]
    assert A.masked_whiten(x, mask, eps=0.0).tolist()[0] == [-1.0, 1.0, 0.0]


def test_ppo_losses_divide_by_the_given_count():
    """Two processes, each holding one of a global minibatch's 2 tokens, count = 2/2 = 1: each loss is its own token's,
    and their mean (DDP's) is the 1-process token mean. Token A: ratio 1, A = 1 → −1; token B: ratio e^{0.4}, A = 1 →
    clipped −1.2; mean −1.1, clipfrac ½. Value: one real token, V = 1, V_old = 0, G = 1 → 0.32 (clipped), over count 2
→ 0.16."""
    logp, old, adv = torch.tensor([[0.0, 0.4]]), torch.zeros(1, 2), torch.ones(1, 2)
    both, st = A.ppo_policy_loss(logp, old, adv, torch.ones(1, 2), 0.2)
    assert float(both) == pytest.approx(-1.1) and st["clipfrac"] == 0.5
    shares = [A.ppo_policy_loss(logp, old, adv, torch.tensor([m]), 0.2, count=1.0) for m in ([1.0, 0.0], [0.0, 1.0])]
    assert [float(loss) for loss, _ in shares] == pytest.approx([-1.0, -1.2])
    assert sum(float(loss) for loss, _ in shares) / 2 == pytest.approx(float(both))
    assert sum(s["clipfrac"] for _, s in shares) / 2 == 0.5
    values, ret = torch.tensor([[1.0, 1.0]]), torch.ones(1, 2)
    vl, _ = A.ppo_value_loss(values, torch.tensor([[0.0, 1.0]]), ret, torch.tensor([[1.0, 0.0]]), 0.2, count=2.0)
    assert float(vl) == pytest.approx(0.32 / 2)


def test_process_minibatches_share_out_one_global_permutation():
    """8 samples over 2 processes (process 0 holds 0–3, process 1 holds 4–7), 2 per process per minibatch: order
    [5, 1, 6, 7, 0, 2, 3, 4] makes global minibatches [5, 1, 6, 7] and [0, 2, 3, 4]. Process 0 takes [1] and [0, 2, 3],
    process 1 takes [5, 6, 7] − 4 = [1, 2, 3] and [4] − 4 = [0]. With [4, 5, 6, 7, …] first, process 0's first share is
    empty. One process: order cut into minibatches of 2, unchanged."""
    order = np.array([5, 1, 6, 7, 0, 2, 3, 4])
    share = lambda o, p: [s.tolist() for s in A.process_minibatches(np.array(o), 2, p, 2)]  # noqa: E731
    assert share(order, 0) == [[1], [0, 2, 3]]
    assert share(order, 1) == [[1, 2, 3], [0]]
    assert share([4, 5, 6, 7, 0, 1, 2, 3], 0) == [[], [0, 1, 2, 3]]
    one = [s.tolist() for s in A.process_minibatches(order, 1, 0, 3)]
    assert one == [[5, 1, 6], [7, 0, 2], [3, 4]]
