"""Learned reward models as rewards: one RM, and ensembles of RMs (Coste et al. 2023).

An RM reward scores ``(prompt, completion)`` with a rewardlab checkpoint or any 1-label Hugging
Face sequence classifier (loaded by :func:`rewardlab.models.reward_model.load_reward_model`; a
multi-attribute RM gives the weighted sum of its attributes, with the weights saved with it), in
length-sorted batches, through :func:`rewardlab.models.scoring.score_texts` — the same code path
as ``rewardlab score``, so rewards do not depend on the batch or its padding.

Ensembles aggregate M member rewards per completion, r ∈ R^{M×N}:

    mean      r̄ = (1/M) Σ_m r_m
    min       min_m r_m                           worst-case optimisation (WCO)
    mean_std  r̄ − λ·σ,  σ² = (1/M) Σ_m (r_m − r̄)²  uncertainty-penalised mean (this issue's form)
    uwo       r̄ − λ·σ²                            uncertainty-weighted optimisation (UWO)

Coste, Anwar, Kirk & Krueger 2023, "Reward Model Ensembles Help Mitigate Overoptimization"
(arXiv:2310.02743) define WCO (min) and UWO (mean − λ·intra-ensemble variance). σ is the population
std (ddof = 0). Default λ = 0.5.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rewardlab.rewards.base import check_inputs, check_output, reward_name

AGGREGATIONS = ("mean", "min", "mean_std", "uwo")


def aggregate(scores: np.ndarray, how: str = "mean", lam: float = 0.5) -> np.ndarray:
    """Aggregate member rewards ``scores`` (M, N) into (N,) by ``how`` (see the module docstring).

    >>> aggregate(np.array([[1.0, 0.0], [3.0, 0.0]]), "mean_std", lam=1.0).tolist()
    [1.0, 0.0]
    """
    scores = np.asarray(scores, dtype=float)  # (M, N)
    if scores.ndim != 2 or scores.shape[0] < 1:
        raise ValueError(f"scores must be (M, N) with M >= 1, got shape {scores.shape}")
    if how == "mean":
        return scores.mean(0)
    if how == "min":
        return scores.min(0)
    if how == "mean_std":
        return scores.mean(0) - lam * scores.std(0)
    if how == "uwo":
        return scores.mean(0) - lam * scores.var(0)
    raise ValueError(f"unknown ensemble aggregation {how!r}; known: {', '.join(AGGREGATIONS)}")


class RMReward:
    """Reward of a learned RM: r(x, y) = RM(prompt ⊕ completion), batched.

    Build from a checkpoint with ``RMReward.load(path)`` or from a loaded (RewardModel, tokenizer).
    ``max_length`` defaults to the RM's training max_length (its ``rewardlab.json``), else 512;
    long inputs are cut from the left so the completion, where the reward is read, survives.
    """

    def __init__(self, model, tokenizer, *, batch_size: int = 32, max_length: int = 512, name: str = "rm"):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_length, self.name = batch_size, max_length, name
        self.truncation: dict = {}

    @classmethod
    def load(cls, path: str, *, batch_size: int = 32, max_length: int | None = None, device: str | None = None,
             name: str | None = None, trust_remote_code: bool = False, allow_pickle: bool = False) -> "RMReward":
        from rewardlab.models.reward_model import load_reward_model

        model, tokenizer, meta = load_reward_model(path, trust_remote_code=trust_remote_code, allow_pickle=bool(allow_pickle))
        if device is not None:
            model.to(device)
        return cls(model, tokenizer, batch_size=batch_size, max_length=max_length or meta.get("max_length", 512),
                   name=name or f"rm:{path}")

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        from rewardlab.models.scoring import score_texts

        n = check_inputs(prompts, completions, columns)
        if n == 0:
            return []
        rewards, self.truncation = score_texts(self.model, self.tokenizer, list(prompts), list(completions),
                                               self.batch_size, self.max_length)
        return rewards.astype(float).tolist()


class EnsembleReward:
    """M rewards aggregated per completion by ``how`` in AGGREGATIONS with penalty ``lam`` (λ)."""

    def __init__(self, members: Sequence, how: str = "mean", lam: float = 0.5, name: str | None = None):
        if not members:
            raise ValueError("an ensemble needs at least one member reward")
        if how not in AGGREGATIONS:
            raise ValueError(f"unknown ensemble aggregation {how!r}; known: {', '.join(AGGREGATIONS)}")
        self.members, self.how, self.lam = list(members), how, lam
        self.name = name or f"ensemble-{how}"

    def member_scores(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> np.ndarray:
        """(M, N) rewards of each member."""
        n = check_inputs(prompts, completions, columns)
        rows = [check_output(reward_name(m), m(prompts, completions, **columns), n) for m in self.members]
        return np.asarray(rows, dtype=float).reshape(len(self.members), n)  # (M, N)

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        return aggregate(self.member_scores(prompts, completions, **columns), self.how, self.lam).tolist()
