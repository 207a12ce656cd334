"""Regularisers: terms added to any loss with a coefficient (loss + c · mean(reg)).

Notation
    B   pairs;  N   sequences scored in the batch (N = 2B for pairs: chosen rows, then rejected rows)
    r   rewards (N,)     r_c, r_r  rewards of chosen / rejected (B,)     h   pooled head features (N, C)
    L   response lengths (N,)     ρ(x, y)  Pearson correlation within the batch

Calling convention: every tensor argument is named, and the catalogue's ``inputs`` lists exactly
those names; the trainer calls ``spec.fn(**{name: tensor for name in spec.inputs}, **hyperparameters)``
and takes the ``.mean()`` of the result. A result is per pair (B,), per sequence (N,) or a batch
scalar (a correlation is a property of the batch, not of one example).
Inputs the trainer provides: rewards, r_chosen, r_rejected, hidden, lengths (and, for ``odin``,
length_rewards from a second head).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

_TINY = 1e-12


def center(r_chosen: Tensor, r_rejected: Tensor) -> Tensor:
    """Reward centring: (r_c + r_r)², i.e. the mean reward of each pair pushed to 0.

    BT only sees differences, so the reward's offset is free and drifts; this pins it near 0, which
    makes rewards of different models (and ensembles) comparable.
    Paper: Eisenstein et al. 2023, "Helping or Herding? Reward Model Ensembles Mitigate but do not
    Eliminate Reward Hacking" (coefficient 0.01; TRL's ``center_rewards_coefficient``).
    Returns (B,). No hyperparameters; the coefficient is the trainer's.
    """
    if r_chosen.shape != r_rejected.shape:
        raise ValueError(f"center: r_chosen {tuple(r_chosen.shape)} and r_rejected {tuple(r_rejected.shape)} differ")
    return (r_chosen + r_rejected) ** 2


def l2_reward(rewards: Tensor) -> Tensor:
    """Reward magnitude penalty: r² for every scored sequence. Returns (N,).

    Keeps rewards small and the BT logits away from saturation; unlike ``center`` it also shrinks
    the differences. A common ad-hoc regulariser (no single paper). No hyperparameters.
    """
    return rewards**2


def triplet(hidden: Tensor, *, gap: float = 0.5) -> Tensor:
    """Triplet loss on pooled head features: max(0, d(a, p) − d(a, n) + gap), d = 1 − cos.

    ``hidden`` (2B, C): chosen rows first, then rejected rows (``PairBatch`` layout). For pair i:
        anchor   a = h(chosen_i)
        positive p = h(chosen_{(i+1) mod B})  — another prompt's preferred response (a itself if B = 1)
        negative n = h(rejected_i)            — the dispreferred response to the same prompt
    so preferred responses gather in feature space and each rejected response is pushed at least
    ``gap`` further (in cosine distance, range [0, 2]) from its own chosen one than the other
    preferred responses are. A hypothesis in the spirit of the contrastive objectives of "Secrets of
    RLHF Part II" (Wang et al. 2024); this triplet form and gap = 0.5 are rewardlab's choice.
    Returns (B,).
    """
    if hidden.dim() != 2 or hidden.shape[0] % 2:
        raise ValueError(f"triplet: hidden must be (2B, C) with chosen rows then rejected rows, got {tuple(hidden.shape)}")
    B = hidden.shape[0] // 2
    chosen, rejected = hidden[:B], hidden[B:]  # (B, C), (B, C)
    positive = torch.roll(chosen, shifts=-1, dims=0)  # (B, C)
    d_pos = 1.0 - F.cosine_similarity(chosen, positive, dim=-1)  # (B,)
    d_neg = 1.0 - F.cosine_similarity(chosen, rejected, dim=-1)  # (B,)
    return F.relu(d_pos - d_neg + gap)


def _pearson(x: Tensor, y: Tensor) -> Tensor:
    """ρ(x, y) within the batch; 0 (with zero gradient) when either has no variance or N < 2."""
    if x.shape != y.shape or x.dim() != 1:
        raise ValueError(f"correlation needs two (N,) tensors, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.numel() < 2:
        return x.sum() * 0.0
    y = y.to(x.dtype)
    xc, yc = x - x.mean(), y - y.mean()  # (N,)
    cov, var_prod = (xc * yc).sum(), (xc**2).sum() * (yc**2).sum()
    ok = var_prod > _TINY
    return torch.where(ok, cov / torch.sqrt(torch.where(ok, var_prod, torch.ones_like(var_prod))), torch.zeros_like(cov))


def length_decorrelation(rewards: Tensor, lengths: Tensor) -> Tensor:
    """Squared Pearson correlation of reward with response length in the batch: ρ(r, L)². Scalar.

    Penalises the length bias of the reward (the most common reward hack) without fixing the sign.
    Computed as cov² / (var_r · var_L) — no square root, so the gradient is finite even at ρ = 0.
    Related to ODIN (Chen et al. 2024), which uses |ρ| on a quality head; see ``odin``.
    A batch of < 2 sequences or constant rewards/lengths gives 0. No hyperparameters.
    """
    if rewards.shape != lengths.shape or rewards.dim() != 1:
        raise ValueError(f"length_decorrelation: rewards and lengths must be (N,), got {tuple(rewards.shape)}, {tuple(lengths.shape)}")
    if rewards.numel() < 2:
        return rewards.sum() * 0.0
    L = lengths.to(rewards.dtype)
    rc, lc = rewards - rewards.mean(), L - L.mean()  # (N,)
    cov, var_prod = (rc * lc).sum(), (rc**2).sum() * (lc**2).sum()
    ok = var_prod > _TINY
    return torch.where(ok, cov**2 / torch.where(ok, var_prod, torch.ones_like(var_prod)), torch.zeros_like(cov))


def odin(rewards: Tensor, lengths: Tensor, length_rewards: Tensor) -> Tensor:
    """ODIN length disentanglement: |ρ(r_Q, L)| − ρ(r_L, L). Scalar in [−1, 2].

    ``rewards`` (N,) from the quality head, ``length_rewards`` (N,) from the length head, ``lengths``
    (N,). The quality head is pushed to be uncorrelated with length, the length head to be
    correlated with it. The preference loss is applied to r_Q + r_L by the trainer; at RL time only
    r_Q is used. ODIN's orthogonality penalty |W_Qᵀ W_L| acts on head weights, not on rewards, and
    is not part of this function.
    Paper: Chen et al. 2024, "ODIN: Disentangled Reward Mitigates Hacking in RLHF" (arXiv 2402.07319).
    No hyperparameters; the coefficient is the trainer's.
    """
    if not (rewards.shape == lengths.shape == length_rewards.shape) or rewards.dim() != 1:
        raise ValueError("odin: rewards, lengths and length_rewards must all be (N,)")
    return _pearson(rewards, lengths).abs() - _pearson(length_rewards, lengths)
