"""Simulated labelers: turn gold rewards into noisy preferences, rankings, ratings and labels.

Notation: g gold reward (std ≈ 1 over random responses), ℓ response length in words,
λ length bias, s length scale (words per gold unit), T temperature, ε flip rate, σ the logistic.

* Pairs — Bradley–Terry (Bradley & Terry 1952), the labeler model behind RLHF reward models
  (Christiano et al. 2017; Ouyang et al. 2022):
      P(a ≻ b) = σ((g_a − g_b + λ·(ℓ_a − ℓ_b)/s) / T),   T → 0: a ≻ b iff the argument is > 0,
  then the label flips with probability ε (uniform label noise), and the pair is a tie when
  |g_a − g_b| ≤ tie_gap.
* Rankings — Plackett–Luce (Luce 1959; Plackett 1975) on utilities u = g + λ·ℓ/s with weights
  exp(u/T), sampled exactly by sorting u/T + Gumbel(0, 1) noise (the Gumbel-max trick).

Length bias enters the labeler, never the gold: it is a spurious signal a reward model can pick up
(the length confound studied by Singhal et al. 2023, "A Long Way to Go").
"""

from __future__ import annotations

import numpy as np

DEFAULT_LENGTH_SCALE = 10.0
"""Words of extra length worth one unit of gold to a labeler with length_bias = 1."""


def _check_common(temperature: float, flip_rate: float, length_scale: float) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0.0 <= flip_rate <= 1.0:
        raise ValueError(f"flip_rate must lie in [0, 1], got {flip_rate}")
    if length_scale <= 0:
        raise ValueError(f"length_scale must be > 0, got {length_scale}")


def label_pair(
    g_a: np.ndarray,
    g_b: np.ndarray,
    len_a: np.ndarray,
    len_b: np.ndarray,
    rng: np.random.Generator,
    temperature: float = 0.0,
    flip_rate: float = 0.0,
    tie_gap: float = 0.0,
    length_bias: float = 0.0,
    length_scale: float = DEFAULT_LENGTH_SCALE,
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy Bradley–Terry labeler over P pairs; returns ``(a_preferred, tie)``, both (P,) bool.

    P(a ≻ b) = σ((g_a − g_b + λ·(ℓ_a − ℓ_b)/s) / T); at T = 0 the labeler picks the larger argument
    (a fair coin at exactly 0). Then each label flips with probability ε = ``flip_rate``.
    ``tie`` is |g_a − g_b| ≤ ``tie_gap`` (so identical gold is a tie even at tie_gap = 0); a tie's
    order is still drawn as above but carries no preference.

    Defaults: T = 0, ε = 0, tie_gap = 0, λ = 0, s = 10 words — a clean, deterministic labeler.
    Draws exactly two uniforms per pair whatever the settings, so changing a knob never shifts the
    random stream of later draws.
    """
    _check_common(temperature, flip_rate, length_scale)
    if tie_gap < 0:
        raise ValueError(f"tie_gap must be >= 0, got {tie_gap}")
    g_a, g_b = np.asarray(g_a, dtype=float), np.asarray(g_b, dtype=float)  # (P,)
    len_a, len_b = np.asarray(len_a, dtype=float), np.asarray(len_b, dtype=float)  # (P,)
    if not (g_a.shape == g_b.shape == len_a.shape == len_b.shape):
        raise ValueError(f"shapes differ: g_a {g_a.shape}, g_b {g_b.shape}, len_a {len_a.shape}, len_b {len_b.shape}")
    u_choice = rng.random(g_a.shape)  # (P,)
    u_flip = rng.random(g_a.shape)  # (P,)
    z = (g_a - g_b) + length_bias * (len_a - len_b) / length_scale  # (P,)
    if temperature == 0.0:
        a_preferred = (z > 0) | ((z == 0) & (u_choice < 0.5))
    else:
        a_preferred = u_choice < 1.0 / (1.0 + np.exp(-np.clip(z / temperature, -500, 500)))
    a_preferred = a_preferred ^ (u_flip < flip_rate)
    tie = np.abs(g_a - g_b) <= tie_gap
    return a_preferred, tie


def plackett_luce_ranks(
    utilities: np.ndarray,
    rng: np.random.Generator,
    temperature: float = 0.0,
) -> np.ndarray:
    """Sample a Plackett–Luce ranking per row; returns ranks (B, K) int, 1 = best.

    Weights exp(u/T): sorting u/T + Gumbel(0, 1) in decreasing order is an exact Plackett–Luce
    sample (the first item is the softmax choice, the rest recursively). T = 0 sorts u itself
    (equal utilities keep their index order). Draws B·K Gumbels whatever T is.
    """
    _check_common(temperature, 0.0, 1.0)
    u = np.asarray(utilities, dtype=float)  # (B, K)
    if u.ndim != 2:
        raise ValueError(f"utilities must be (B, K), got shape {u.shape}")
    gumbel = rng.gumbel(size=u.shape)  # (B, K)
    keys = u if temperature == 0.0 else u / temperature + gumbel  # (B, K)
    order = np.argsort(-keys, axis=1, kind="stable")  # (B, K) item indices, best first
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, u.shape[1] + 1)[None, :].repeat(u.shape[0], 0), axis=1)
    return ranks  # (B, K)
