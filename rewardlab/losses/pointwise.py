"""Pointwise reward-model losses: one response and an absolute target per example.

Notation
    B   responses in the batch       A   rating attributes (multi-attribute regression)
    r   rewards (B,) or (B, A)       y   target of the same shape (bce_mse: (B, 2))
    σ   logistic sigmoid

Calling convention: ``fn(rewards, target, *, <hyperparameters>) -> (B,)``. A NaN in a target marks
a missing value (an attribute not rated, a label not given): it contributes nothing, in value or
gradient; a row with nothing present gives 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _same_shape(rewards: Tensor, target: Tensor, name: str) -> None:
    if rewards.shape != target.shape or rewards.dim() not in (1, 2):
        raise ValueError(f"{name}: rewards and target must both be (B,) or (B, A); "
                         f"got {tuple(rewards.shape)} and {tuple(target.shape)}")


def _masked_mean(values: Tensor, present: Tensor, weights: Tensor | None = None) -> Tensor:
    """Σ_a w_a v_a / Σ_a w_a over present entries of each row; (B,) in → itself; empty row → 0."""
    if values.dim() == 1:
        return torch.where(present, values, torch.zeros_like(values))
    w = present.to(values.dtype) if weights is None else present.to(values.dtype) * weights  # (B, A)
    num = (torch.where(present, values, torch.zeros_like(values)) * w).sum(dim=-1)  # (B,)
    den = w.sum(dim=-1)  # (B,)
    return num / torch.where(den > 0, den, torch.ones_like(den))


def mse(rewards: Tensor, target: Tensor, *, weights=None) -> Tensor:
    """(Weighted) squared error: ℓ = Σ_a w_a (r_a − y_a)² / Σ_a w_a  (B, A), or (r − y)² for (B,).

    Regression of the reward head onto human ratings, one output per attribute.
    Papers: Dong et al. 2023, "SteerLM: Attribute Conditioned SFT as an (User-Steerable) Alternative
    to RLHF"; Wang et al. 2023, "HelpSteer: Multi-attribute Helpfulness Dataset for SteerLM"
    (5 attributes rated 0–4).
    ``weights`` (A,) (tensor or list) weights the attributes; default None = equal weights. The
    result is a weighted *mean* over the present attributes, so its scale does not grow with A.
    NaN targets are missing attributes and are skipped.
    """
    _same_shape(rewards, target, "mse")
    present = ~torch.isnan(target)  # (B,) or (B, A)
    y = torch.where(present, target, torch.zeros_like(target)).to(rewards.dtype)
    sq = (rewards - y) ** 2
    w = None
    if weights is not None:
        if rewards.dim() != 2:
            raise ValueError("mse: weights apply to multi-attribute targets (B, A); rewards here are (B,)")
        w = torch.as_tensor(weights, dtype=rewards.dtype, device=rewards.device)
        if w.shape != (rewards.shape[1],) or bool((w < 0).any()):
            raise ValueError(f"mse: weights must be ({rewards.shape[1]},) and non-negative, got {tuple(w.shape)}")
    return _masked_mean(sq, present, w)


def bce(rewards: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy with the reward as logit: ℓ = −y log σ(r) − (1 − y) log σ(−r).

    A verifier / outcome reward model: predict whether the response is good (1) or bad (0).
    Paper: Cobbe et al. 2021, "Training Verifiers to Solve Math Word Problems".
    ``target`` ∈ [0, 1] (hard labels {0, 1}; soft labels allowed); (B, A) targets are averaged over A.
    NaN targets are skipped. No hyperparameters.
    """
    _same_shape(rewards, target, "bce")
    present = ~torch.isnan(target)
    y = torch.where(present, target, torch.zeros_like(target)).to(rewards.dtype)
    if bool(((y < 0) | (y > 1)).any()):
        raise ValueError("bce: targets must be in [0, 1]")
    return _masked_mean(F.binary_cross_entropy_with_logits(rewards, y, reduction="none"), present)


def focal_bce(rewards: Tensor, target: Tensor, *, gamma: float = 2.0) -> Tensor:
    """Focal binary cross-entropy: ℓ = −(1 − p_t)^γ log p_t, p_t = σ(r) if y = 1 else σ(−r).

    Paper: Lin et al. 2017, "Focal Loss for Dense Object Detection" (without the α class weight).
    Down-weights confidently right examples. Default γ = 2; γ = 0 gives ``bce``. Hard labels only
    (y ∈ {0, 1}, NaN = missing). Computed as −exp(γ log σ(−z)) log σ(z), z = (2y − 1) r.
    """
    if gamma < 0:
        raise ValueError(f"focal_bce: gamma must be >= 0, got {gamma}")
    _same_shape(rewards, target, "focal_bce")
    present = ~torch.isnan(target)
    y = torch.where(present, target, torch.zeros_like(target)).to(rewards.dtype)
    if bool(((y != 0) & (y != 1)).any()):
        raise ValueError("focal_bce: targets must be 0 or 1 (or NaN for missing)")
    z = (2.0 * y - 1.0) * rewards  # log-odds of the true class
    per = -torch.exp(gamma * F.logsigmoid(-z)) * F.logsigmoid(z)
    return _masked_mean(per, present)


def bce_mse(rewards: Tensor, target: Tensor, *, bce_weight: float = 1.0, mse_weight: float = 1.0) -> Tensor:
    """BCE on a label plus MSE on a score, both read from one scalar head.

        ℓ = bce_weight · BCE(r, y_label) + mse_weight · (r − y_score)²

    ``rewards`` (B,) one scalar per response; ``target`` (B, 2) = [label ∈ {0, 1}, score]. The head's
    output is both the logit of "good" and a score on the same scale, so the scores should be on a
    logit-like scale. Either column may be NaN (missing), which lets label-only and score-only data
    train one head together. Defaults: both weights 1. A combined objective defined here for
    rewardlab (no single paper); see docs/papers.md.
    """
    if rewards.dim() != 1 or target.shape != (rewards.shape[0], 2):
        raise ValueError(f"bce_mse: rewards must be (B,) and target (B, 2) = [label, score]; "
                         f"got {tuple(rewards.shape)} and {tuple(target.shape)}")
    label, score = target[:, 0], target[:, 1]  # (B,), (B,)
    return bce_weight * bce(rewards, label) + mse_weight * mse(rewards, score)
