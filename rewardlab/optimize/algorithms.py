"""The maths of policy optimisation against a reward: pure functions of tensors, no models.

Notation: B samples, R completion tokens, P prompts × K samples each (B = P·K, rows prompt-major),
mask (B, R) 1 on real completion tokens; logp, logp_ref (B, R) per-token log-probs of the sampled
tokens under the policy π and the frozen reference π_ref; x_t = logp_t − logp_ref,t; r (B,) the
sequence reward (score) of each completion.

KL estimators (Schulman 2020, "Approximating KL Divergence"), for y ~ π, ρ = π_ref / π = exp(−x):
    k1 = x = log π/π_ref                 unbiased, high variance, can be negative
    k2 = x² / 2                           biased, low variance
    k3 = (ρ − 1) − log ρ                  unbiased, low variance, always ≥ 0
Per sequence, KL(π‖π_ref)(·|prompt) is estimated by Σ_t k_t over the completion's tokens.

Best-of-N KL (Stiennon et al. 2020, Appendix; Gao et al. 2022): KL(π_BoN ‖ π) ≈ log N − (N−1)/N,
exact in the limit of a continuous reward and an upper bound otherwise (Beirami et al. 2024).
The expected reward of best-of-N is an evaluation metric: ``eval.metrics.best_of_n_expectation``.
"""

from __future__ import annotations

import numpy as np
import torch

# ---------------------------------------------------------------------------- KL


def kl_k1(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """k1 = log π − log π_ref per token (same shape as the inputs)."""
    return logp - logp_ref


def kl_k2(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """k2 = (log π − log π_ref)² / 2 per token."""
    return 0.5 * (logp - logp_ref) ** 2


def kl_k3(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """k3 = (ρ − 1) − log ρ with ρ = π_ref / π, per token; ≥ 0 and unbiased for KL(π‖π_ref)."""
    log_rho = logp_ref - logp
    return torch.expm1(log_rho) - log_rho


KL_ESTIMATORS = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


def sequence_kl(logp: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """(B,) Σ_t k_t over each completion's real tokens, for ``estimator`` in KL_ESTIMATORS."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r}; known: {', '.join(KL_ESTIMATORS)}")
    return (KL_ESTIMATORS[estimator](logp, logp_ref) * mask).sum(-1)


def exact_kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p‖q) = Σ_i p_i log(p_i / q_i) of two categorical distributions (terms with p_i = 0 are 0)."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    keep = p > 0
    return float(np.sum(p[keep] * np.log(p[keep] / q[keep])))


# ---------------------------------------------------------------------------- best-of-N


def bon_kl(n: int | np.ndarray) -> float | np.ndarray:
    """Analytic KL(π_BoN ‖ π) = log N − (N − 1)/N (0 at N = 1)."""
    n = np.asarray(n, dtype=float)
    if np.any(n < 1):
        raise ValueError("N must be >= 1")
    out = np.log(n) - (n - 1.0) / n
    return float(out) if out.ndim == 0 else out


def bon_selection_probs(m: int, n: int) -> np.ndarray:
    """(M,) P(best-of-n picks the item of rank i) when the base draws uniformly (with replacement) from
    M items of distinct reward, ranks ascending: p_i = (i/M)^n − ((i−1)/M)^n."""
    i = np.arange(1, m + 1, dtype=float)
    return (i / m) ** n - ((i - 1) / m) ** n


def bon_exact_kl(m: int, n: int) -> float:
    """Exact KL(π_BoN ‖ uniform over M distinct items) = Σ_i p_i log(M p_i); tends to log n − (n−1)/n as M → ∞."""
    return exact_kl(bon_selection_probs(m, n), np.full(m, 1.0 / m))


# ---------------------------------------------------------------------------- weights and filters


def rwr_weights(r: torch.Tensor, beta: float) -> torch.Tensor:
    """Reward-weighted regression weights w_i ∝ exp(r_i / β), scaled to mean 1 over the batch (B,).

    Peters & Schaal 2007 ("Reinforcement learning by reward-weighted regression"); the maximiser
    of E[r] − β KL over a fixed sample set reweights it by exp(r/β) (Peng et al. 2019, AWR).
    Smaller β → greedier. Computed as a softmax (stable for any scale of r).
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    return torch.softmax(r / beta, 0) * r.numel()


def topk_mask(r: torch.Tensor, k: int) -> torch.Tensor:
    """(P, K) bool: the k highest rewards in each row (per prompt), ties by position (RAFT, Dong et al. 2023)."""
    if not 1 <= k <= r.shape[-1]:
        raise ValueError(f"keep must lie in [1, {r.shape[-1]}], got {k}")
    idx = torch.topk(r, k, dim=-1).indices  # (P, k)
    return torch.zeros_like(r, dtype=torch.bool).scatter_(-1, idx, True)


# ---------------------------------------------------------------------------- advantages


def rloo_advantages(r: torch.Tensor) -> torch.Tensor:
    """Leave-one-out advantages (P, K): A_i = r_i − (1/(K−1)) Σ_{j≠i} r_j (Kool et al. 2019; Ahmadian et al. 2024)."""
    k = r.shape[-1]
    if k < 2:
        raise ValueError("RLOO needs K >= 2 samples per prompt")
    return r - (r.sum(-1, keepdim=True) - r) / (k - 1)


def group_advantages(r: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GRPO's group-normalised advantages (P, K): (r − mean_group) / (std_group + ε), std with ddof = 1
    (Shao et al. 2024, DeepSeekMath)."""
    if r.shape[-1] < 2:
        raise ValueError("group normalisation needs K >= 2 samples per prompt")
    return (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True) + eps)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None, count: torch.Tensor | float | None = None) -> torch.Tensor:
    """Σ x·mask / Σ mask (at least 1), over all entries or along ``dim``. ``count`` (all entries only) replaces Σ mask as
    the divisor: over several processes each one divides its own sum by its share of the tokens of every process, so
    that the processes' values add up (DDP: average up) to the mean over all of them."""
    m = mask.to(x.dtype)
    if dim is None:
        return (x * m).sum() / (m.sum().clamp(min=1.0) if count is None else count)
    if count is not None:
        raise ValueError("count divides the sum over all entries; give no dim with it")
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1.0)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8,
                  mean: torch.Tensor | None = None, var: torch.Tensor | None = None) -> torch.Tensor:
    """(x − μ)/σ over the real entries (μ, σ of the masked values); keeps μ when ``shift_mean`` is False. ``mean`` and
    ``var`` given (e.g. over every process's tokens, so that the split of a batch does not change its advantages)
    replace the masked moments of ``x``."""
    mean = masked_mean(x, mask) if mean is None else mean
    var = masked_mean((x - mean) ** 2, mask) if var is None else var
    out = (x - mean) * torch.rsqrt(var + eps)
    return (out if shift_mean else out + mean) * mask.to(x.dtype)


def token_rewards(score: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-token rewards (B, R) of Ziegler et al. 2019: r_t = −β·kl_t, plus the score at the last real token."""
    rewards = -beta * kl * mask  # (B, R)
    last = (mask.long().cumsum(-1) == mask.long().sum(-1, keepdim=True)) & mask.bool()  # (B, R) the last real token
    return rewards + last.to(rewards.dtype) * score[:, None]


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95):
    """Generalised advantage estimation (Schulman et al. 2016) over right-padded completions.

    δ_t = r_t + γ V_{t+1} − V_t (V after the last real token = 0); A_t = δ_t + γλ A_{t+1};
    returns = A + V. Returns (advantages, returns), both (B, R), 0 at padding.
    """
    m = mask.to(values.dtype)
    values, rewards = values * m, rewards * m
    R = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(values[:, 0])
    for t in reversed(range(R)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv) * m[:, t]
        adv[:, t] = next_adv
        next_value = values[:, t]
    return adv, (adv + values) * m


# ---------------------------------------------------------------------------- minibatches


def process_minibatches(order: np.ndarray, processes: int, process: int, size: int) -> list[np.ndarray]:
    """This process's share of each global minibatch: ``order`` is a permutation of the N = processes·n samples of a
    step (process p holds samples p·n … (p+1)·n − 1, in process order), global minibatch j is
    order[j·processes·size : (j+1)·processes·size], and its share here is the entries this process holds, as indices
    into its own n samples, in the permutation's order — uneven, possibly empty. One process: the minibatches of
    ``size`` of ``order`` itself; every process gets the same number of shares, so each takes as many steps."""
    n = len(order) // processes
    first = process * n
    shares = []
    for start in range(0, len(order), processes * size):
        chunk = order[start: start + processes * size]  # (≤ processes·size,) global indices
        shares.append(chunk[(chunk >= first) & (chunk < first + n)] - first)
    return shares


# ---------------------------------------------------------------------------- losses


def ppo_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                    clip: float = 0.2, count: torch.Tensor | float | None = None) -> tuple[torch.Tensor, dict]:
    """Clipped surrogate (Schulman et al. 2017): −mean_t min(ρ_t A_t, clip(ρ_t, 1 − ε, 1 + ε) A_t), ρ_t = π/π_old.

    Returns the loss and {clipfrac, approx_kl (mean k3 of π_old vs π)}; ``count`` divides the token sums instead of
    the mask's own count (:func:`masked_mean`).
    """
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    loss = torch.maximum(-adv * ratio, -adv * torch.clamp(ratio, 1.0 - clip, 1.0 + clip))
    with torch.no_grad():
        clipfrac = masked_mean(((ratio - 1.0).abs() > clip).float(), mask, count=count)
        approx_kl = masked_mean(torch.expm1(-log_ratio) + log_ratio, mask, count=count)
    return masked_mean(loss, mask, count=count), {"clipfrac": float(clipfrac), "approx_kl": float(approx_kl)}


def ppo_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                   clip: float = 0.2, count: torch.Tensor | float | None = None) -> tuple[torch.Tensor, dict]:
    """Clipped value loss: ½ mean_t max((V − G)², (V_old + clip(V − V_old, −ε, ε) − G)²); ``count`` as in
    :func:`ppo_policy_loss`."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    loss = 0.5 * torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    with torch.no_grad():
        vclipfrac = masked_mean(((values - old_values).abs() > clip).float(), mask, count=count)
    return masked_mean(loss, mask, count=count), {"vf_clipfrac": float(vclipfrac)}


def policy_gradient_loss(seq_logp: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """REINFORCE / RLOO: −mean_i A_i · log π(y_i | x_i), the completion as one action (Williams 1992)."""
    return -(adv.detach() * seq_logp).mean()


def mle_rl_loss(nll: torch.Tensor, seq_logp: torch.Tensor, adv: torch.Tensor, lam: float) -> torch.Tensor:
    """Maximum likelihood on references mixed with a policy-gradient estimate of the reward (scalar):

        L = NLL − λ · (1/N) Σ_i A_i log π(y_i | x_i)

    ``nll`` is the mean token negative log-likelihood of the reference completions (scalar, with its graph),
    ``seq_logp`` (N,) log π of the policy's own samples, ``adv`` (N,) their advantages (treated as constants;
    the run uses RLOO's leave-one-out baseline). λ = 0 is plain MLE; as λ grows the reward term dominates
    and, up to the scale of the step, the update approaches REINFORCE / RLOO. The mixed ML + RL objective of
    Paulus et al. 2017 (arXiv 1705.04304) is (1 − γ)·L_ml + γ·L_rl, i.e. this L scaled by 1 − γ with
    λ = γ / (1 − γ). No default λ here; ``OptimizeConfig.mle_lambda`` is 1.
    """
    return nll + lam * policy_gradient_loss(seq_logp, adv)


# ---------------------------------------------------------------------------- KL coefficient


class FixedKLController:
    """β stays at its initial value."""

    def __init__(self, value: float):
        self.value = value

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences", eq. (2):
    e = clip(KL / KL_target − 1, −0.2, 0.2); β ← β (1 + K_β e), K_β = n_steps / horizon.
    Paper defaults: initial β 0.1 (varied), horizon 10,000 (in samples, here: in samples too)."""

    def __init__(self, init: float, target: float, horizon: float = 10_000):
        if target <= 0 or horizon <= 0:
            raise ValueError("target KL and horizon must be > 0")
        self.value, self.target, self.horizon = init, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = float(np.clip(current_kl / self.target - 1.0, -0.2, 0.2))
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])
