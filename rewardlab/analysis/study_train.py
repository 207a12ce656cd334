"""Training one reward model of a study: a head on frozen features, full fine-tuning, or LoRA.

Every mode trains with the catalogue loss of the run, called as the trainer calls it
(``rewardlab.train.loop``): pairwise ``fn(r_c (B,), r_r (B,), [margin], [tie], **hp)`` with tie pairs
left out unless the loss models ties; listwise ``fn(r (B, K), ranks (B, K), valid (B, K), **hp)``;
pointwise ``fn(r (B,), target (B,), **hp)``; each reduced by the mean.

Head mode. Features x (D,) of frozen backbone outputs (``analysis.features``) are standardised with
the training texts' mean μ and std s (part of the head), then

    linear   r(x) = wᵀ (x − μ)/s + b
    mlp      r(x) = w₂ᵀ GELU(W₁ (x − μ)/s + b₁) + b₂,   hidden width ``head_hidden``

trained with AdamW (lr, weight decay, batch size, epochs from the study config; defaults 3e-3, 1e-2,
64, 30), shuffled by the run's seed. Deterministic on CPU for a given seed.

Full mode calls ``rewardlab.train.loop.train`` on the records; LoRA mode (Hu et al. 2021, "LoRA:
Low-Rank Adaptation of Large Language Models") calls it too, with adapters of rank r (``train --lora-r``:
every linear layer, the score head trained in full, adapters merged into the saved model).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from rewardlab.analysis.study_data import FormData
from rewardlab.config import TrainConfig
from rewardlab.losses.objective import objective
from rewardlab.models.reward_model import load_reward_model
from rewardlab.models.scoring import score_texts
from rewardlab.train.loop import train
from rewardlab.types import PairBatch, PointBatch, RankBatch


class RewardHead(nn.Module):
    """Standardise features with fixed (μ, s), then a linear map or a one-hidden-layer MLP to a scalar."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, kind: str = "linear", hidden: int = 128):
        super().__init__()
        dim = len(mean)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))  # (D,)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))  # (D,)
        if kind == "linear":
            self.net = nn.Linear(dim, 1)
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        else:
            raise ValueError(f"unknown head {kind!r}; known: linear, mlp")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., D) → rewards (...)
        return self.net((x - self.mean) / self.std).squeeze(-1)


def head_step_loss(head: RewardHead, x: torch.Tensor, data: FormData, rows: np.ndarray, spec, hp: dict) -> torch.Tensor:
    """The run's objective (``losses.objective``, as the trainer calls it) on the examples ``rows`` of ``data``;
    x holds the features of ``data.texts`` (T, D)."""
    r = head(x[torch.as_tensor(data.index[rows])])  # (B, 2) | (B, K) | (B,)
    if spec.family == "pairwise":  # chosen rows, then rejected rows
        batch = PairBatch(None, None, torch.as_tensor(data.margin[rows], dtype=torch.float32), torch.as_tensor(data.tie[rows]))
        return objective(spec, torch.cat([r[:, 0], r[:, 1]]), batch, hp)
    if spec.family == "listwise":
        ranks = torch.as_tensor(data.ranks[rows], dtype=torch.float32)  # (B, K)
        return objective(spec, r.flatten(), RankBatch(None, None, ranks, torch.ones_like(ranks, dtype=torch.bool)), hp)
    return objective(spec, r, PointBatch(None, None, torch.as_tensor(data.target[rows], dtype=torch.float32)), hp)


def train_head(features: np.ndarray, data: FormData, spec, hp: dict, *, kind: str = "linear", hidden: int = 128,
               epochs: int = 30, lr: float = 3e-3, weight_decay: float = 1e-2, batch_size: int = 64, seed: int = 0) -> RewardHead:
    """Train a reward head on frozen features (T, D) of ``data.texts`` with the catalogue loss ``spec``.

    Runs on one torch thread: the tensors are small, and extra threads only wait on a shared CPU.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_head(features, data, spec, hp, kind, hidden, epochs, lr, weight_decay, batch_size, seed)
    finally:
        torch.set_num_threads(threads)


def _train_head(features, data, spec, hp, kind, hidden, epochs, lr, weight_decay, batch_size, seed) -> RewardHead:
    torch.manual_seed(seed)
    x = torch.as_tensor(features, dtype=torch.float32)  # (T, D)
    used = np.unique(data.index)
    mean, std = features[used].mean(0), features[used].std(0) + 1e-6  # (D,) each
    head = RewardHead(mean, std, kind, hidden)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng([seed, 7])
    for _ in range(epochs):
        perm = rng.permutation(len(data))
        for start in range(0, len(perm), batch_size):
            loss = head_step_loss(head, x, data, perm[start:start + batch_size], spec, hp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    head.eval()
    return head


@torch.no_grad()
def head_rewards(head: RewardHead, features: np.ndarray) -> np.ndarray:
    """Rewards (N,) of features (N, D)."""
    return head(torch.as_tensor(features, dtype=torch.float32)).numpy().astype(np.float64)


# --------------------------------------------------------------------------- full and LoRA fine-tuning


def train_full(backbone: str, records: list, loss: str, hp: dict, output, *, epochs: float, lr: float, batch_size: int,
               max_length: int, seed: int, lora_r: int = 0, lora_alpha: float = 16.0, allow_pickle: bool = False,
               log=lambda *a, **k: None):
    """``rewardlab.train.loop.train`` on ``records`` (LoRA adapters of rank ``lora_r`` when > 0, merged at the end);
    returns (RewardModel, tokenizer) loaded from ``output``."""
    cfg = TrainConfig(data="study", model=backbone, output=str(output), loss=loss, loss_args=dict(hp), epochs=epochs, lr=lr,
                      batch_size=batch_size, max_length=max_length, seed=seed, eval_split=0.0, progress=False,
                      lora_r=lora_r, lora_alpha=lora_alpha, overwrite=True,  # the study owns its run folders
                      allow_pickle=allow_pickle)
    train(cfg, records=records, eval_records=[], log=log)
    model, tokenizer, _ = load_reward_model(str(output))
    return model, tokenizer


def score_pairs_of_texts(model, tokenizer, texts: list, max_length: int, batch_size: int = 32) -> np.ndarray:
    """Rewards (N,) of (prompt, response) texts with a RewardModel (``models.scoring.score_texts``)."""
    rewards, _ = score_texts(model, tokenizer, [p for p, _ in texts], [r for _, r in texts], batch_size, max_length, "left")
    return rewards


def timed(fn, *args, **kwargs):
    """(fn(*args, **kwargs), seconds)."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
