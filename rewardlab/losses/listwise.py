"""Listwise reward-model losses: K responses per prompt with ranks.

Notation
    B   prompts in the batch        K   response slots per prompt (padded)
    r   rewards (B, K)              ranks (B, K) float, lower = better, equal = tie
    valid (B, K) bool: False marks padding slots
    ℓ(x) = −log σ(x) = log(1 + e^−x)

Calling convention: ``fn(rewards (B, K), ranks (B, K), valid (B, K), *, <hyperparameters>) -> (B,)``.
Padding slots never influence values or gradients: their rewards and ranks are replaced by
constants before any arithmetic (so even NaN in a padding slot is harmless), and a row with nothing
to compare (fewer than two valid slots, or all tied) gives 0.
All three losses equal ``pairwise.bt`` at K = 2 with a strict order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _clean(rewards: Tensor, ranks: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Check shapes; zero the rewards and ranks of padding slots (no NaN can leak, no gradient flows)."""
    if rewards.dim() != 2 or rewards.shape != ranks.shape or rewards.shape != valid.shape:
        raise ValueError(f"rewards, ranks, valid must all be (B, K); got {tuple(rewards.shape)}, "
                         f"{tuple(ranks.shape)}, {tuple(valid.shape)}")
    valid = valid.to(torch.bool)
    r = torch.where(valid, rewards, torch.zeros_like(rewards))  # (B, K)
    rk = torch.where(valid, ranks.to(rewards.dtype), torch.zeros_like(rewards))  # (B, K)
    return r, rk, valid


def kwise_bt(rewards: Tensor, ranks: Tensor, valid: Tensor) -> Tensor:
    """K-wise Bradley–Terry: mean of −log σ(r_i − r_j) over valid pairs with rank_i < rank_j.

    Paper: Ouyang et al. 2022, "Training language models to follow instructions with human feedback"
    (InstructGPT): all C(K, 2) comparisons of one prompt in one batch element, averaged.
    Tied pairs are skipped (they carry no order); a row without any strictly ordered pair gives 0.
    No hyperparameters. K = 2 equals ``bt``.
    """
    r, rk, valid = _clean(rewards, ranks, valid)
    both = valid[:, :, None] & valid[:, None, :]  # (B, K, K)
    better = both & (rk[:, :, None] < rk[:, None, :])  # (B, K, K): i strictly better than j
    pair_loss = -F.logsigmoid(r[:, :, None] - r[:, None, :])  # (B, K, K)  ℓ(r_i − r_j)
    total = torch.where(better, pair_loss, torch.zeros_like(pair_loss)).sum(dim=(1, 2))  # (B,)
    count = better.sum(dim=(1, 2)).clamp(min=1).to(r.dtype)  # (B,)
    return total / count


def plackett_luce(rewards: Tensor, ranks: Tensor, valid: Tensor) -> Tensor:
    """Plackett–Luce negative log-likelihood of the ranking, ties by Breslow's rule.

    Without ties, with the valid items sorted best first σ(1), …, σ(n):
        ℓ = −Σ_k [ r_σ(k) − log Σ_{l ≥ k} exp r_σ(l) ]      (the last term is 0)
    Ties (Breslow): every item i contributes −r_i + log Σ_{j valid, rank_j ≥ rank_i} exp r_j, i.e.
    items of a tied group share one "risk set" that contains the whole group. Without ties this is
    exactly the PL likelihood. A tied group pulls its rewards together (K = 2 tied: softplus(Δ) +
    softplus(−Δ), 2 log 2 at Δ = 0); a tied bottom group is not free (unlike a single last item).
    Summed over positions (not averaged). Paper: Zhu, Jordan, Jiao 2023, "Principled Reinforcement
    Learning with Human Feedback from Pairwise or K-wise Comparisons" (MLE under the PL model).
    No hyperparameters. K = 2 with a strict order equals ``bt``.
    """
    r, rk, valid = _clean(rewards, ranks, valid)
    K = r.shape[1]
    eye = torch.eye(K, dtype=torch.bool, device=r.device)  # (K, K)
    # risk[b, i, j]: j is in item i's risk set (i itself always, so every row's log-sum-exp is finite)
    risk = (valid[:, None, :] & (rk[:, None, :] >= rk[:, :, None])) | eye  # (B, K, K)
    scores = r[:, None, :].expand(-1, K, -1).masked_fill(~risk, float("-inf"))  # (B, K, K)
    term = torch.logsumexp(scores, dim=-1) - r  # (B, K)
    return torch.where(valid, term, torch.zeros_like(term)).sum(dim=-1)


def infonce(rewards: Tensor, ranks: Tensor, valid: Tensor) -> Tensor:
    """Best-of-K softmax (InfoNCE) loss: ℓ = −log softmax(r)[best] over the valid slots.

    Paper: Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences" (the labeler
    picks the best of 4 samples; loss −log e^{r_b} / Σ_i e^{r_i}).
    Only the best rank matters; the order of the others is ignored. Ties at the best rank: the
    probability that the model picks *one of* the tied best is used,
        ℓ = −log Σ_{i ∈ best} e^{r_i} + log Σ_{j valid} e^{r_j},
    so a row whose valid items are all tied gives 0. No hyperparameters. K = 2 equals ``bt``.
    """
    r, rk, valid = _clean(rewards, ranks, valid)
    big = torch.finfo(rk.dtype).max
    best_rank = torch.where(valid, rk, torch.full_like(rk, big)).min(dim=-1, keepdim=True).values  # (B, 1)
    best = valid & (rk == best_rank)  # (B, K)
    empty = ~valid.any(dim=-1, keepdim=True)  # (B, 1) rows without any valid slot: both sums run over all
    neg_inf = torch.full_like(r, float("-inf"))  # slots (r = 0 there), so the row gives exactly 0
    log_all = torch.logsumexp(torch.where(valid | empty, r, neg_inf), dim=-1)  # (B,)
    log_best = torch.logsumexp(torch.where(best | empty, r, neg_inf), dim=-1)  # (B,)
    return log_all - log_best
