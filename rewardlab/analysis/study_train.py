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

Full mode calls ``rewardlab.train.loop.train`` on the records. LoRA mode (Hu et al. 2021, "LoRA:
Low-Rank Adaptation of Large Language Models") wraps the backbone with peft adapters of rank r on
peft's default target modules for the architecture, keeps the score head trainable, and runs the
same per-family steps as the trainer in a short loop here.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from rewardlab.analysis.study_data import FormData


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
    """Mean catalogue loss of the examples ``rows`` of ``data``; x holds the features of ``data.texts`` (T, D)."""
    idx = torch.as_tensor(data.index[rows])  # (B, 2) | (B, K) | (B,)
    r = head(x[idx])  # same shape as idx
    if spec.family == "pairwise":
        kwargs = {}
        if "margin" in spec.inputs:
            kwargs["margin"] = torch.as_tensor(data.margin[rows], dtype=torch.float32)
        tie = torch.as_tensor(data.tie[rows])
        if "tie" in spec.inputs:
            kwargs["tie"] = tie
        per = spec.fn(r[:, 0], r[:, 1], **kwargs, **hp)  # (B,)
        if not spec.handles_ties:
            per = per[~tie]
    elif spec.family == "listwise":
        ranks = torch.as_tensor(data.ranks[rows], dtype=torch.float32)  # (B, K)
        per = spec.fn(r, ranks, torch.ones_like(ranks, dtype=torch.bool), **hp)  # (B,)
    else:
        per = spec.fn(r, torch.as_tensor(data.target[rows], dtype=torch.float32), **hp)  # (B,)
    return per.mean() if per.numel() else r.sum() * 0.0


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
               max_length: int, seed: int, log=lambda *a, **k: None):
    """``rewardlab.train.loop.train`` on ``records``; returns (RewardModel, tokenizer) loaded from ``output``."""
    from rewardlab.config import TrainConfig
    from rewardlab.models.reward_model import load_reward_model
    from rewardlab.train.loop import train

    cfg = TrainConfig(data="study", model=backbone, output=str(output), loss=loss, loss_args=dict(hp), epochs=epochs, lr=lr,
                      batch_size=batch_size, max_length=max_length, seed=seed, eval_split=0.0, progress=False)
    train(cfg, records=records, eval_records=[], log=log)
    model, tokenizer, _ = load_reward_model(str(output))
    return model, tokenizer


def lora_targets(model) -> list[str] | None:
    """peft's default LoRA target modules for the model's architecture (None: let peft decide)."""
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as M
    except ImportError:  # pragma: no cover - older peft
        return None
    return M.get(model.config.model_type)


def train_lora(backbone: str, records: list, loss: str, hp: dict, *, epochs: float, lr: float, batch_size: int,
               max_length: int, seed: int, r: int = 8, alpha: int = 16, dropout: float = 0.0):
    """LoRA adapters (rank r, scale alpha/r) on the backbone plus a trainable score head; returns (RewardModel, tokenizer).

    The loop: length-grouped batches (``data.batching``), the trainer's per-family step
    (``train.loop.STEPS``), AdamW on the trainable parameters, gradient clipping at 1, constant lr.
    """
    from peft import LoraConfig, get_peft_model

    from rewardlab.data.batching import COLLATORS, Encoder, encode_records, length_grouped_batches
    from rewardlab.data.sequence import default_append_eos
    from rewardlab.losses.catalogue import get_loss
    from rewardlab.models.reward_model import RewardModel, _head, default_pooling, load_backbone
    from rewardlab.train.loop import FAMILY_FORM, STEPS

    torch.manual_seed(seed)
    spec = get_loss(loss)
    form = spec.data_form if spec.data_form != "any" else FAMILY_FORM[spec.family]
    model, tokenizer = load_backbone(backbone)
    pooling = default_pooling(model)
    targets = lora_targets(model)
    if not targets:
        raise ValueError(f"no default LoRA target modules for model type {model.config.model_type!r}")
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets))
    inner = peft_model.base_model.model  # the original model with LoRA layers injected
    for p in _head(inner).parameters():
        p.requires_grad_(True)
    rm = RewardModel(inner, pooling=pooling, append_eos=default_append_eos(tokenizer, pooling))
    encoded = encode_records(records, Encoder(tokenizer, max_length, "left", rm.append_eos))
    params = [p for p in rm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    collate, pad_id = COLLATORS[form], tokenizer.pad_token_id
    rm.train()
    for epoch in range(math.ceil(epochs)):
        batches = length_grouped_batches([e.length for e in encoded], batch_size, seed, epoch)
        if epoch + 1 > epochs:  # a fractional last epoch
            batches = batches[: int(round((epochs - epoch) * len(batches)))]
        for b in batches:
            out = STEPS[spec.family](rm, collate([encoded[i] for i in b], pad_id), spec, hp, [], False)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
    rm.eval()
    return rm, tokenizer


def score_pairs_of_texts(model, tokenizer, texts: list, max_length: int, batch_size: int = 32) -> np.ndarray:
    """Rewards (N,) of (prompt, response) texts with a RewardModel (``models.scoring.score_texts``)."""
    from rewardlab.models.scoring import score_texts

    rewards, _ = score_texts(model, tokenizer, [p for p, _ in texts], [r for _, r in texts], batch_size, max_length, "left")
    return rewards


def timed(fn, *args, **kwargs):
    """(fn(*args, **kwargs), seconds)."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
