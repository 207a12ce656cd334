"""Metrics of a reward model on preference data: pure functions of numpy arrays.

Notation (as in ``rewardlab.types``):
    B   pairs (or prompts)               K   responses per prompt (rankings)
    r_c, r_r   reward of the chosen / rejected response        Δ = r_c − r_r
    σ(x) = 1 / (1 + e^{−x})   the Bradley–Terry probability that the chosen response wins

Every function takes numpy arrays (anything ``np.asarray`` accepts) and returns plain Python
floats, ints, lists and dicts, so results can be written to JSON as they are. A value that is
undefined (an empty group, a correlation of a constant) is ``None``, never NaN.

Conventions shared by all pairwise metrics:
    * a pair is correct when Δ > tol; ties (|Δ| <= tol, tol = 0 by default) count as WRONG,
      as RewardBench does (``1 if chosen > rejected else 0``), so a constant reward scores 0, not 0.5;
    * pairwise calibration is measured on p = σ(Δ) with outcome 1 (chosen wins), symmetrised by
      default (see ``pair_probabilities``).

This module imports nothing of rewardlab and no torch.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import numpy as np
from scipy import optimize, special, stats

__all__ = [
    "pairwise_accuracy",
    "correct_pairs",
    "bootstrap_ci",
    "pairwise_loss_bt",
    "accuracy_by_strength",
    "reliability_curve",
    "ece",
    "brier",
    "binary_nll",
    "pair_probabilities",
    "pairwise_calibration",
    "fit_temperature",
    "temperature_scaled_calibration",
    "length_bias",
    "reward_stats",
    "best_of_k_credits",
    "rank_accuracy",
    "best_of_n_weights",
    "best_of_n_expectation",
    "roc_auc",
    "label_metrics",
    "regression_metrics",
    "annotator_agreement",
    "paired_difference",
]


# --------------------------------------------------------------------------- helpers


def _vector(x, name: str, allow_nan: bool = False) -> np.ndarray:
    """``x`` as a float64 vector (B,); raises on other shapes, on emptiness and on NaN / inf."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    bad = np.isinf(a) if allow_nan else ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} non-finite values (first at index {int(np.argmax(bad))})")
    return a


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"arrays must have the same length, got {lengths}")
    return next(iter(lengths.values()))


def _pair(r_chosen, r_rejected) -> tuple[np.ndarray, np.ndarray]:
    rc, rr = _vector(r_chosen, "r_chosen"), _vector(r_rejected, "r_rejected")
    _same_length(r_chosen=rc, r_rejected=rr)
    return rc, rr


def _mean_or_none(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _check_probs_outcomes(probs, outcomes) -> tuple[np.ndarray, np.ndarray]:
    p, y = _vector(probs, "probs"), _vector(outcomes, "outcomes")
    _same_length(probs=p, outcomes=y)
    if (p < 0).any() or (p > 1).any():
        raise ValueError("probs must lie in [0, 1]")
    if (y < 0).any() or (y > 1).any():
        raise ValueError("outcomes must lie in [0, 1] (1 = the event happened, e.g. the chosen response wins)")
    return p, y


# --------------------------------------------------------------------------- pairwise accuracy


def correct_pairs(r_chosen, r_rejected, tol: float = 0.0) -> np.ndarray:
    """Per-pair correctness c_i = 1[Δ_i > tol] as floats (B,); ties (|Δ_i| <= tol) are 0.

    The per-pair vector feeds ``paired_difference`` and RewardBench's per-subset tables.
    """
    rc, rr = _pair(r_chosen, r_rejected)
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    return ((rc - rr) > tol).astype(np.float64)


def pairwise_accuracy(r_chosen, r_rejected, tol: float = 0.0) -> dict:
    """Pairwise accuracy with ties counted wrong.

    accuracy = (1/B) Σ_i 1[Δ_i > tol],   ties = #{i : |Δ_i| <= tol},   mean_margin = (1/B) Σ_i Δ_i

    Args:
        r_chosen, r_rejected: rewards (B,) of the preferred and the dispreferred response.
        tol: |Δ| at or below which a pair is a tie (default 0: only exact equality is a tie).

    Returns:
        {"accuracy", "ties", "n", "mean_margin"}.

    Example: r_c = [2, 1, 0, 3], r_r = [1, 1, 1, 0] → Δ = [1, 0, −1, 3]: accuracy 2/4 = 0.5,
    ties 1, mean_margin 3/4 = 0.75.
    """
    rc, rr = _pair(r_chosen, r_rejected)
    delta = rc - rr  # (B,)
    return {
        "accuracy": float(np.mean(correct_pairs(rc, rr, tol))),
        "ties": int(np.sum(np.abs(delta) <= tol)),
        "n": int(len(delta)),
        "mean_margin": float(np.mean(delta)),
    }


def bootstrap_ci(
    values,
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``stat(values)`` (Efron & Tibshirani, 1993).

    Draw n_boot resamples of the rows of ``values`` with replacement, x*_b; compute θ*_b = stat(x*_b);
    return the (α/2, 1 − α/2) quantiles of {θ*_b}. Rows are resampled along axis 0, so ``values``
    may be (N,) or (N, D) (e.g. paired columns, with a ``stat`` that reads both).

    Defaults: n_boot = 1000, alpha = 0.05 (a 95% interval), seed = 0 (deterministic).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    n = len(x)
    thetas = np.array([stat(x[rng.integers(0, n, size=n)]) for _ in range(n_boot)], dtype=np.float64)
    lo, hi = np.quantile(thetas, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def pairwise_loss_bt(r_chosen, r_rejected) -> float:
    """Mean Bradley–Terry negative log-likelihood, −(1/B) Σ_i log σ(Δ_i).

    Computed stably as softplus(−Δ) = log(1 + e^{−Δ}) = logaddexp(0, −Δ), which neither
    overflows for Δ → −∞ nor loses precision for Δ → +∞. Δ = 0 gives log 2 ≈ 0.6931.
    (Bradley & Terry, 1952; the standard RM loss of Ouyang et al., 2022.)
    """
    rc, rr = _pair(r_chosen, r_rejected)
    return float(np.mean(np.logaddexp(0.0, -(rc - rr))))


def accuracy_by_strength(
    r_chosen,
    r_rejected,
    strength,
    bins: int | Sequence[float] | None = None,
    max_discrete: int = 10,
    tol: float = 0.0,
) -> dict:
    """Pairwise accuracy per bucket of preference strength (e.g. Llama 2's rating margin).

    Bucketing:
        bins=None: strengths with at most ``max_discrete`` (default 10) distinct values get one
            bucket per value ("discrete"); otherwise 4 quantile bins (quartiles, "quantile").
        bins=int k: k quantile bins (edges at the j/k quantiles; duplicate edges merge).
        bins=sequence of increasing edges: buckets [e_0, e_1), …, [e_{m−1}, e_m] ("edges");
            a strength outside [e_0, e_m] is an error.

    accuracy_b = (1/n_b) Σ_{i∈b} 1[Δ_i > tol]  (None for an empty bucket).

    Returns:
        {"kind", "labels", "lo", "hi", "accuracy", "n"}: parallel lists in bucket order
        (for "discrete", lo == hi == the value).
    """
    rc, rr = _pair(r_chosen, r_rejected)
    s = _vector(strength, "strength")
    _same_length(r_chosen=rc, strength=s)
    correct = correct_pairs(rc, rr, tol)  # (B,)

    if bins is None and len(np.unique(s)) <= max_discrete:
        values = np.unique(s)
        acc = [float(np.mean(correct[s == v])) for v in values]
        counts = [int(np.sum(s == v)) for v in values]
        return {
            "kind": "discrete",
            "labels": [f"{v:g}" for v in values],
            "lo": [float(v) for v in values],
            "hi": [float(v) for v in values],
            "accuracy": acc,
            "n": counts,
        }

    if bins is None or isinstance(bins, (int, np.integer)):
        k = 4 if bins is None else int(bins)
        if k < 1:
            raise ValueError(f"bins must be >= 1, got {k}")
        edges = np.unique(np.quantile(s, np.linspace(0.0, 1.0, k + 1)))
        if len(edges) == 1:  # every strength equal: a single bucket
            edges = np.array([edges[0], edges[0]])
        kind = "quantile"
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bins as edges must be a strictly increasing sequence of at least 2 values")
        outside = (s < edges[0]) | (s > edges[-1])
        if outside.any():
            raise ValueError(
                f"{int(outside.sum())} strength values lie outside the bin edges [{edges[0]}, {edges[-1]}]"
            )
        kind = "edges"

    idx = np.searchsorted(edges[1:-1], s, side="right")  # (B,) bucket of each pair; last bucket closed
    labels, lo, hi, acc, counts = [], [], [], [], []
    for b in range(len(edges) - 1):
        in_b = idx == b
        closing = "]" if b == len(edges) - 2 else ")"
        labels.append(f"[{edges[b]:.3g}, {edges[b + 1]:.3g}{closing}")
        lo.append(float(edges[b]))
        hi.append(float(edges[b + 1]))
        acc.append(_mean_or_none(correct[in_b]))
        counts.append(int(in_b.sum()))
    return {"kind": kind, "labels": labels, "lo": lo, "hi": hi, "accuracy": acc, "n": counts}


# --------------------------------------------------------------------------- calibration


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins on [0, 1]: bin j holds [j/n, (j+1)/n); p = 1 goes to the last bin."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return np.minimum((p * n_bins).astype(np.int64), n_bins - 1)


def reliability_curve(probs, outcomes, n_bins: int = 10) -> dict:
    """Reliability diagram data on ``n_bins`` equal-width bins of [0, 1] (DeGroot & Fienberg, 1983).

    For each non-empty bin b: mean_prob_b = mean of p_i in b (confidence),
    frequency_b = mean of y_i in b (observed rate), counts_b = n_b. Empty bins are left out.

    Returns:
        {"bin_centers", "mean_prob", "frequency", "counts", "n_bins"}.
    """
    p, y = _check_probs_outcomes(probs, outcomes)
    b = _bin_index(p, n_bins)
    centers, conf, freq, counts = [], [], [], []
    for j in range(n_bins):
        in_j = b == j
        if in_j.any():
            centers.append((j + 0.5) / n_bins)
            conf.append(float(p[in_j].mean()))
            freq.append(float(y[in_j].mean()))
            counts.append(int(in_j.sum()))
    return {"bin_centers": centers, "mean_prob": conf, "frequency": freq, "counts": counts, "n_bins": n_bins}


def ece(probs, outcomes, n_bins: int = 10) -> float:
    """Expected calibration error (Naeini et al., 2015; Guo et al., 2017).

    ECE = Σ_b (n_b / N) · |frequency_b − mean_prob_b| over ``n_bins`` (default 10) equal-width bins.
    """
    curve = reliability_curve(probs, outcomes, n_bins)
    n = sum(curve["counts"])
    return float(
        sum(c / n * abs(f - m) for c, f, m in zip(curve["counts"], curve["frequency"], curve["mean_prob"]))
    )


def brier(probs, outcomes) -> float:
    """Brier score (Brier, 1950): (1/N) Σ_i (p_i − y_i)²."""
    p, y = _check_probs_outcomes(probs, outcomes)
    return float(np.mean((p - y) ** 2))


def binary_nll(logits, outcomes) -> float:
    """Mean negative log-likelihood of outcomes y under p = σ(z): (1/N) Σ_i [softplus(z_i) − y_i z_i]."""
    z, y = _vector(logits, "logits"), _vector(outcomes, "outcomes")
    _same_length(logits=z, outcomes=y)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def pair_probabilities(
    r_chosen, r_rejected, symmetrize: bool = True, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted probabilities and outcomes for calibrating pairwise preferences.

    p_i = σ(Δ_i / T), outcome 1 (the chosen response wins).
    symmetrize=True (default) also counts every pair the other way round: (1 − p_i, outcome 0),
    giving (2B,) arrays.

    Why symmetrise by default: with the chosen response always listed first every outcome is 1, so
    each bin's observed frequency is 1 and ECE collapses to 1 − mean(σ(Δ)) for every binning —
    even a perfectly calibrated RM scores far from 0 and the reliability diagram is flat.
    Counting each pair both ways asks the real question ("when the RM says A beats B with
    probability p, does A win a fraction p of the time?"); the diagram becomes symmetric about
    (0.5, 0.5). The Brier score and the NLL are the same either way, since (1 − p)² and −log p
    are unchanged by swapping the pair.
    """
    rc, rr = _pair(r_chosen, r_rejected)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    p = special.expit((rc - rr) / temperature)  # (B,)
    if not symmetrize:
        return p, np.ones_like(p)
    return np.concatenate([p, 1.0 - p]), np.concatenate([np.ones_like(p), np.zeros_like(p)])


def _calibration_from_logits(z: np.ndarray, y: np.ndarray, n_bins: int, symmetrize: bool) -> dict:
    """ECE, Brier, NLL and the reliability curve of outcomes y under p = σ(z)."""
    p = special.expit(z)
    if symmetrize:
        p_all, y_all = np.concatenate([p, 1.0 - p]), np.concatenate([y, 1.0 - y])
    else:
        p_all, y_all = p, y
    return {
        "ece": ece(p_all, y_all, n_bins),
        "brier": brier(p_all, y_all),
        "nll": binary_nll(z, y),
        "reliability": reliability_curve(p_all, y_all, n_bins),
        "symmetrized": bool(symmetrize),
    }


def pairwise_calibration(
    r_chosen, r_rejected, n_bins: int = 10, symmetrize: bool = True, temperature: float = 1.0
) -> dict:
    """Calibration of the BT probability σ(Δ/T) that the chosen response wins.

    Returns {"ece", "brier", "nll", "reliability", "symmetrized"}; see ``pair_probabilities`` for
    the symmetrisation (default on) and ``ece`` / ``brier`` / ``binary_nll`` for the formulas.
    """
    rc, rr = _pair(r_chosen, r_rejected)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = (rc - rr) / temperature
    return _calibration_from_logits(z, np.ones_like(z), n_bins, symmetrize)


def fit_temperature(deltas, outcomes=None, bounds: tuple[float, float] = (1e-3, 1e3)) -> float:
    """Temperature T that minimises the NLL of outcomes under σ(Δ/T) (Guo et al., 2017).

    T* = argmin_T (1/N) Σ_i [softplus(Δ_i/T) − y_i Δ_i/T],   T ∈ [bounds] (default [1e-3, 1e3]).

    ``outcomes`` y_i ∈ [0, 1] (None: all 1, i.e. Δ = r_chosen − r_rejected). The NLL is convex in
    β = 1/T, hence unimodal in log T; a bounded Brent search on log T finds the minimum. Two cases
    have no finite minimum and return a bound with a warning: separable data (every non-zero Δ_i on
    the side of its 0/1 outcome: the NLL keeps falling as T → 0) and Δ uninformative or
    anti-correlated with the outcomes (dNLL/dβ at β = 0, mean Δ_i(½ − y_i), is >= 0: T → ∞).
    """
    d = _vector(deltas, "deltas")
    y = np.ones_like(d) if outcomes is None else _vector(outcomes, "outcomes")
    _same_length(deltas=d, outcomes=y)
    lo, hi = bounds
    if not 0 < lo < hi:
        raise ValueError(f"bounds must satisfy 0 < lo < hi, got {bounds}")

    if np.mean(d * (0.5 - y)) >= 0:
        warnings.warn(
            f"fit_temperature: Δ does not predict the outcomes; returning the upper bound T={hi}", stacklevel=2
        )
        return float(hi)
    nonzero = d != 0
    if np.all(((y == 1) & (d > 0)) | ((y == 0) & (d < 0)) | ~nonzero):
        warnings.warn(f"fit_temperature: separable data; returning the lower bound T={lo}", stacklevel=2)
        return float(lo)

    def nll(log_t: float) -> float:
        z = d / np.exp(log_t)
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    res = optimize.minimize_scalar(nll, bounds=(np.log(lo), np.log(hi)), method="bounded", options={"xatol": 1e-6})
    t = float(np.exp(res.x))
    if np.isclose(t, lo, rtol=1e-3) or np.isclose(t, hi, rtol=1e-3):
        warnings.warn(
            f"fit_temperature: optimum at the bound T={t:.4g} of {bounds}: the NLL has no interior minimum "
            "(separable or anti-correlated data)",
            stacklevel=2,
        )
    return t


def temperature_scaled_calibration(
    deltas, fit_idx, eval_idx, outcomes=None, n_bins: int = 10, symmetrize: bool = True
) -> dict:
    """Fit T on ``fit_idx`` and report calibration on ``eval_idx`` before (T = 1) and after (T = T*).

    deltas: Δ (N,); fit_idx / eval_idx: disjoint integer index arrays (an overlap is an error:
    use ``fit_temperature`` + ``pairwise_calibration`` for in-sample numbers); outcomes: (N,) or
    None for all 1. Calibration metrics as in ``pairwise_calibration``.

    Returns {"temperature", "before": {...}, "after": {...}, "n_fit", "n_eval"}.
    """
    d = _vector(deltas, "deltas")
    y = np.ones_like(d) if outcomes is None else _vector(outcomes, "outcomes")
    _same_length(deltas=d, outcomes=y)
    fi, ei = np.asarray(fit_idx, dtype=np.int64), np.asarray(eval_idx, dtype=np.int64)
    if len(fi) == 0 or len(ei) == 0:
        raise ValueError("fit_idx and eval_idx must both be non-empty")
    overlap = np.intersect1d(fi, ei)
    if len(overlap):
        raise ValueError(f"fit_idx and eval_idx overlap in {len(overlap)} indices (first {int(overlap[0])})")
    t = fit_temperature(d[fi], y[fi])
    before = _calibration_from_logits(d[ei], y[ei], n_bins, symmetrize)
    after = _calibration_from_logits(d[ei] / t, y[ei], n_bins, symmetrize)
    return {"temperature": t, "before": before, "after": after, "n_fit": int(len(fi)), "n_eval": int(len(ei))}


# --------------------------------------------------------------------------- length bias


def _correlation(fn, x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson / Spearman statistic, or None when undefined (fewer than 2 points or a constant input)."""
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    return float(fn(x, y).statistic)


def length_bias(r_chosen, r_rejected, len_chosen, len_rejected, tol: float = 0.0) -> dict:
    """How much the reward follows response length (Singhal et al., 2023, "A Long Way to Go").

    pearson / spearman: correlation of reward with length over all 2B responses (chosen and
    rejected together); None when undefined (a constant input).
    accuracy_chosen_longer = mean of 1[Δ_i > tol] over pairs with len_c > len_r, and likewise for
    len_c < len_r ("shorter") and len_c == len_r ("equal"); None for an empty group. An RM that
    only rewards length scores 1 on "longer" and 0 on "shorter".

    Returns:
        {"pearson", "spearman", "accuracy_chosen_longer", "n_chosen_longer",
         "accuracy_chosen_shorter", "n_chosen_shorter", "accuracy_equal_length", "n_equal_length"}.
    """
    rc, rr = _pair(r_chosen, r_rejected)
    lc, lr = _vector(len_chosen, "len_chosen"), _vector(len_rejected, "len_rejected")
    _same_length(r_chosen=rc, len_chosen=lc, len_rejected=lr)
    rewards, lengths = np.concatenate([rc, rr]), np.concatenate([lc, lr])  # (2B,)
    correct = correct_pairs(rc, rr, tol)
    longer, shorter, equal = lc > lr, lc < lr, lc == lr
    return {
        "pearson": _correlation(stats.pearsonr, rewards, lengths),
        "spearman": _correlation(stats.spearmanr, rewards, lengths),
        "accuracy_chosen_longer": _mean_or_none(correct[longer]),
        "n_chosen_longer": int(longer.sum()),
        "accuracy_chosen_shorter": _mean_or_none(correct[shorter]),
        "n_chosen_shorter": int(shorter.sum()),
        "accuracy_equal_length": _mean_or_none(correct[equal]),
        "n_equal_length": int(equal.sum()),
    }


# --------------------------------------------------------------------------- distributions and rankings


def reward_stats(rewards) -> dict:
    """Summary of a reward distribution: mean, std (population, ddof = 0), min, 5/25/50/75/95% quantiles, max.

    Any shape is flattened; NaN entries (padding of (B, K) arrays) are left out and counted in
    ``n_missing``; infinities are an error.
    """
    r = np.asarray(rewards, dtype=np.float64).ravel()
    if np.isinf(r).any():
        raise ValueError("rewards contain infinities")
    missing = np.isnan(r)
    r = r[~missing]
    if len(r) == 0:
        raise ValueError("rewards has no finite values")
    q = np.quantile(r, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {
        "mean": float(r.mean()),
        "std": float(r.std()),
        "min": float(r.min()),
        "q05": float(q[0]),
        "q25": float(q[1]),
        "median": float(q[2]),
        "q75": float(q[3]),
        "q95": float(q[4]),
        "max": float(r.max()),
        "n": int(len(r)),
        "n_missing": int(missing.sum()),
    }


def _rank_groups(rewards, ranks) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Rewards and ranks (B, K), NaN-padded alike → [(r_g, rank_g)] (K_g,) of the groups that carry a
    preference (≥ 2 responses, not all ranks equal), and how many groups were skipped."""
    r = np.asarray(rewards, dtype=np.float64)
    k = np.asarray(ranks, dtype=np.float64)
    if r.ndim != 2 or r.shape != k.shape:
        raise ValueError(f"rewards and ranks must both be (B, K), got {r.shape} and {k.shape}")
    if np.any(np.isnan(r) != np.isnan(k)):
        raise ValueError("rewards and ranks must have NaN padding in the same places")
    if np.isinf(r).any() or np.isinf(k).any():
        raise ValueError("rewards and ranks must not contain infinities")
    groups, skipped = [], 0
    for rg, kg in zip(r, k):
        valid = ~np.isnan(rg)
        rg, kg = rg[valid], kg[valid]  # (K_g,)
        if len(rg) < 2 or np.all(kg == kg[0]):
            skipped += 1
        else:
            groups.append((rg, kg))
    return groups, skipped


def _best_of_k_credit(rg: np.ndarray, kg: np.ndarray, tol: float) -> float:
    top = np.abs(rg - rg.max()) <= tol
    return float((top & (kg == kg.min())).sum() / top.sum())


def best_of_k_credits(rewards, ranks, tol: float = 0.0) -> np.ndarray:
    """Per-group best-of-K credit |M_g ∩ Best_g| / |M_g| (G,) of the groups ``rank_accuracy`` keeps
    (see there); the per-prompt rows of a paired comparison or a bootstrap of best-of-K accuracy."""
    groups, _ = _rank_groups(rewards, ranks)
    return np.array([_best_of_k_credit(rg, kg, tol) for rg, kg in groups], dtype=np.float64)


def rank_accuracy(rewards, ranks, tol: float = 0.0) -> dict:
    """Agreement of rewards with rankings of K responses per prompt (lower rank = better).

    rewards, ranks: (B, K); NaN pads groups with fewer than K responses (NaN in the same places in
    both). Groups with fewer than 2 responses or all ranks equal carry no preference and are skipped.

    best_of_k_accuracy = mean_g |M_g ∩ Best_g| / |M_g|, where M_g = responses with the maximal reward
        (|r − max| <= tol) and Best_g = the best-ranked ones: the chance that picking the top-scored
        response (ties broken at random) picks a best-ranked one (per group: ``best_of_k_credits``).
    pairwise_accuracy = mean_g (1/|P_g|) Σ_{(i,j)∈P_g} 1[r_i − r_j > tol], P_g = {(i, j): rank_i < rank_j}
        (macro: each group weighs the same); pairwise_accuracy_micro pools all pairs.
    spearman = mean_g ρ_s(r_g, −rank_g) over groups where the rewards are not constant.

    Returns {"best_of_k_accuracy", "pairwise_accuracy", "pairwise_accuracy_micro", "spearman",
             "n_groups", "n_groups_skipped", "n_groups_spearman", "n_pairs"}.
    """
    groups, skipped = _rank_groups(rewards, ranks)
    if not groups:
        raise ValueError("no group has at least 2 responses with different ranks")
    best_of_k, pair_acc, rhos = [], [], []
    n_correct_pairs = n_pairs = 0
    for rg, kg in groups:
        best_of_k.append(_best_of_k_credit(rg, kg, tol))
        better = kg[:, None] < kg[None, :]  # (K_g, K_g): i ranked above j
        wins = (rg[:, None] - rg[None, :]) > tol
        n_g = int(better.sum())
        c_g = int((better & wins).sum())
        pair_acc.append(c_g / n_g)
        n_pairs += n_g
        n_correct_pairs += c_g
        rho = _correlation(stats.spearmanr, rg, -kg)
        if rho is not None:
            rhos.append(rho)
    return {
        "best_of_k_accuracy": float(np.mean(best_of_k)),
        "pairwise_accuracy": float(np.mean(pair_acc)),
        "pairwise_accuracy_micro": n_correct_pairs / n_pairs,
        "spearman": float(np.mean(rhos)) if rhos else None,
        "n_groups": len(best_of_k),
        "n_groups_skipped": skipped,
        "n_groups_spearman": len(rhos),
        "n_pairs": n_pairs,
    }


# --------------------------------------------------------------------------- best-of-N


def best_of_n_weights(c: int, n: int) -> np.ndarray:
    """w_j = C(c − j, n − 1) / C(c, n), j = 1 … c (c,): the probability that the j-th highest-scored of c
    candidates is the highest-scored member of a uniformly random n-subset (Σ_j w_j = 1).

    Example: c = 3, n = 2 → (C(2, 1), C(1, 1), C(0, 1)) / C(3, 2) = (2/3, 1/3, 0).
    """
    if not 1 <= n <= c:
        raise ValueError(f"need 1 <= n <= c, got n={n}, c={c}")
    total = math.comb(c, n)
    return np.array([math.comb(c - j, n - 1) / total for j in range(1, c + 1)])  # (c,)


def best_of_n_expectation(proxy, gold, n: int) -> float:
    """E[gold of the proxy-best of n candidates drawn without replacement], from all C candidates of each prompt.

    The unbiased estimator of Nakano et al. 2021 (WebGPT) and Gao et al. 2022 ("Scaling Laws for Reward
    Model Overoptimization"): sort each prompt's candidates by proxy, highest first; then

        E_n = mean over prompts of Σ_j w_j g_(j),   w = ``best_of_n_weights(C, n)``, g_(j) the gold of the j-th.

    n = 1 gives the mean gold; n = C the gold of the top-proxy candidate. Ties in the proxy: the pick among
    tied candidates is uniformly random, so tied candidates share their positions' weights equally and
    the result does not depend on the order of the candidates.

    Args:
        proxy, gold: (M, C) scores that choose and values that are averaged (M prompts, C candidates
            each), or (C,) for one prompt.
        n: 1 ≤ n ≤ C.

    Examples: proxy [3, 1, 2], gold [0, 3, 6], n = 2: sorted by proxy the gold is (0, 6, 3),
    w = (2/3, 1/3, 0) → 0·2/3 + 6·1/3 = 2. A tie: proxy [1, 1], gold [0, 1], n = 2 → both subsets' picks
    are a coin flip between the two → (0 + 1)/2 = ½ (each shares w = (1, 0) equally).
    """
    r, g = np.atleast_2d(np.asarray(proxy, np.float64)), np.atleast_2d(np.asarray(gold, np.float64))  # (M, C)
    if r.ndim != 2 or r.shape != g.shape:
        raise ValueError(f"proxy and gold must both be (M, C) or (C,), got {np.shape(proxy)} and {np.shape(gold)}")
    if not np.isfinite(r).all():
        raise ValueError("proxy has non-finite values")
    c = r.shape[1]
    w = best_of_n_weights(c, n)  # (C,)
    order = np.argsort(-r, axis=1, kind="stable")  # (M, C) highest proxy first
    r_sorted, g_sorted = np.take_along_axis(r, order, axis=1), np.take_along_axis(g, order, axis=1)  # (M, C)
    pos = np.arange(c)
    first = np.ones_like(r_sorted, dtype=bool)
    first[:, 1:] = r_sorted[:, 1:] != r_sorted[:, :-1]  # (M, C) position opens a run of tied proxies
    last = np.ones_like(first)
    last[:, :-1] = first[:, 1:]  # (M, C) position closes a run
    start = np.maximum.accumulate(np.where(first, pos, 0), axis=1)  # (M, C) first position of each run
    stop = np.minimum.accumulate(np.where(last, pos, c - 1)[:, ::-1], axis=1)[:, ::-1] + 1  # (M, C) one past its last
    cum = np.concatenate([[0.0], np.cumsum(w)])  # (C + 1,)
    w_shared = (cum[stop] - cum[start]) / (stop - start)  # (M, C) mean weight over the run
    return float(np.mean(np.sum(w_shared * g_sorted, axis=1)))


# --------------------------------------------------------------------------- good / bad labels


def roc_auc(scores, labels) -> float | None:
    """Area under the ROC curve from ranks, ties counted half (Mann–Whitney; Hanley & McNeil, 1982).

    AUC = P(s⁺ > s⁻) + ½ P(s⁺ = s⁻) = (R⁺ − n⁺(n⁺ + 1)/2) / (n⁺ n⁻), R⁺ = sum of the average ranks
    of the positives. None when one class is absent.
    """
    s, y = _vector(scores, "scores"), _vector(labels, "labels")
    _same_length(scores=s, labels=y)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = stats.rankdata(s)  # average ranks for ties
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _best_threshold(s: np.ndarray, y: np.ndarray) -> float:
    """Threshold t maximising accuracy of the rule ŷ = 1[s >= t]; the smallest such t on ties.

    Candidates: every distinct score u_k (ŷ = 1 for s >= u_k) and "all negative". The reported
    threshold is the midpoint (u_{k−1} + u_k)/2 (u_0 itself for k = 0; the float just above the
    largest score for "all negative"), which makes the same predictions on this data.
    """
    u = np.unique(s)  # sorted
    pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
    tp = len(pos) - np.searchsorted(pos, u, side="left")  # positives with s >= u_k
    tn = np.searchsorted(neg, u, side="left")  # negatives with s < u_k
    correct = np.append(tp + tn, len(neg))  # last: all predicted negative
    k = int(np.argmax(correct))
    if k == len(u):
        return float(np.nextafter(u[-1], np.inf))
    return float(u[0]) if k == 0 else float((u[k - 1] + u[k]) / 2)


def label_metrics(scores, labels, threshold: float | None = None) -> dict:
    """Classification metrics of rewards against good (1) / bad (0) labels; predict ŷ = 1[score >= t].

    accuracy = (TP + TN)/N, precision = TP/(TP + FP), recall = TP/(TP + FN),
    F1 = 2·precision·recall/(precision + recall), AUC as in ``roc_auc`` (threshold-free).
    threshold=None fits t to maximise accuracy on these data (``_best_threshold``; reported with
    threshold_fitted=True — an optimistic, in-sample number); a given t is used as is.
    Undefined values (no predicted positives, no positives) are None.

    Returns {"accuracy", "precision", "recall", "f1", "auc", "threshold", "threshold_fitted", "n", "n_pos"}.
    """
    s, y = _vector(scores, "scores"), _vector(labels, "labels")
    _same_length(scores=s, labels=y)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    fitted = threshold is None
    t = _best_threshold(s, y) if fitted else float(threshold)
    pred = s >= t
    truth = y == 1
    tp = int(np.sum(pred & truth))
    fp = int(np.sum(pred & ~truth))
    fn = int(np.sum(~pred & truth))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "accuracy": float(np.mean(pred == truth)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": roc_auc(s, y),
        "threshold": t,
        "threshold_fitted": fitted,
        "n": int(len(y)),
        "n_pos": int(truth.sum()),
    }


# --------------------------------------------------------------------------- ratings as regression targets


def regression_metrics(pred, target) -> dict:
    """How well predicted values fit ratings (a multi-attribute RM's output for one attribute vs its ratings),
    over the n entries whose target is not NaN (NaN = not rated):

        rmse = sqrt(mean (pred − target)²),  pearson, spearman (None when undefined), n

    Returns {"rmse", "pearson", "spearman", "n"}; rmse is None when nothing is rated.
    """
    p, t = _vector(pred, "pred"), _vector(target, "target", allow_nan=True)
    _same_length(pred=p, target=t)
    has = ~np.isnan(t)
    p, t = p[has], t[has]
    return {"rmse": float(np.sqrt(np.mean((p - t) ** 2))) if len(t) else None,
            "pearson": _correlation(stats.pearsonr, p, t), "spearman": _correlation(stats.spearmanr, p, t), "n": int(len(t))}


# --------------------------------------------------------------------------- annotators and comparisons


def _plurality(labels: np.ndarray) -> float | None:
    """The most frequent label if it is unique, else None (a tie, or no label)."""
    if len(labels) == 0:
        return None
    values, counts = np.unique(labels, return_counts=True)
    top = counts == counts.max()
    return float(values[top][0]) if top.sum() == 1 else None


def annotator_agreement(rm_labels, annotator_labels) -> dict:
    """Agreement of an RM's labels with several annotators', and of the annotators with each other.

    rm_labels: (N,) the RM's label per item (any categorical code, e.g. 1 = "A better", 0 = "B better",
        typically 1[r_A > r_B]). annotator_labels: (N, M) the label of annotator m on item i, NaN where
        m did not label i. Agreement is the fraction of equal labels where both exist.

    rm_vs_annotator[m]  agreement with annotator m (None if m shares no item)
    rm_vs_annotators    pooled over all (item, annotator) labels
    rm_vs_majority      agreement with the per-item plurality label, over items whose plurality is unique
    inter_annotator     pooled over all items and all pairs of annotators who both labelled the item
    annotator_vs_rest   each annotator against the plurality of the other annotators on the item
                        (items with a unique plurality among ≥ 1 others): the human baseline to set
                        against rm_vs_majority.

    Returns those keys plus "n_items", "n_annotators", "n_majority", "n_annotator_pairs".
    """
    rm = _vector(rm_labels, "rm_labels")
    a = np.asarray(annotator_labels, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != len(rm):
        raise ValueError(f"annotator_labels must be (N, M) with N = len(rm_labels) = {len(rm)}, got {a.shape}")
    if np.isinf(a).any():
        raise ValueError("annotator_labels must not contain infinities (NaN marks a missing label)")
    has = ~np.isnan(a)  # (N, M)

    per_annotator, n_per = [], []
    for m in range(a.shape[1]):
        both = has[:, m]
        per_annotator.append(_mean_or_none((a[both, m] == rm[both]).astype(float)))
        n_per.append(int(both.sum()))
    rm_pooled = _mean_or_none((a[has] == np.broadcast_to(rm[:, None], a.shape)[has]).astype(float))

    majority_hits, pair_hits, rest_hits = [], [], []
    for i in range(a.shape[0]):
        labels_i = a[i, has[i]]
        maj = _plurality(labels_i)
        if maj is not None:
            majority_hits.append(float(rm[i] == maj))
        for x in range(len(labels_i)):
            for z in range(x + 1, len(labels_i)):
                pair_hits.append(float(labels_i[x] == labels_i[z]))
            rest = _plurality(np.delete(labels_i, x))
            if rest is not None:
                rest_hits.append(float(labels_i[x] == rest))
    return {
        "rm_vs_annotator": per_annotator,
        "n_per_annotator": n_per,
        "rm_vs_annotators": rm_pooled,
        "rm_vs_majority": _mean_or_none(np.array(majority_hits)),
        "inter_annotator": _mean_or_none(np.array(pair_hits)),
        "annotator_vs_rest": _mean_or_none(np.array(rest_hits)),
        "n_items": int(a.shape[0]),
        "n_annotators": int(a.shape[1]),
        "n_majority": len(majority_hits),
        "n_annotator_pairs": len(pair_hits),
    }


def paired_difference(correct_a, correct_b, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Difference in accuracy of two RMs scored on the same pairs, with a paired bootstrap CI.

    difference = mean(c_a) − mean(c_b); the CI resamples pairs (rows of [c_a, c_b] together), which
    keeps the correlation between the two RMs and gives a much tighter interval than two independent
    CIs. For 0/1 correctness the exact McNemar test (McNemar, 1947) of the discordant pairs is also
    given: n_a_only = #(a right, b wrong), n_b_only = #(a wrong, b right), p = two-sided binomial
    test of n_a_only among n_a_only + n_b_only at ½ (1.0 when there is no discordant pair; None for
    non-binary correctness such as RewardBench 2's 1/k tie credit).

    Returns {"accuracy_a", "accuracy_b", "difference", "ci_low", "ci_high", "n", "n_a_only",
             "n_b_only", "mcnemar_p"}.
    """
    ca, cb = _vector(correct_a, "correct_a"), _vector(correct_b, "correct_b")
    _same_length(correct_a=ca, correct_b=cb)
    both = np.column_stack([ca, cb])  # (B, 2)
    lo, hi = bootstrap_ci(both, stat=lambda x: x[:, 0].mean() - x[:, 1].mean(), n_boot=n_boot, alpha=alpha, seed=seed)
    binary = np.isin(both, (0.0, 1.0)).all()
    a_only = int(np.sum((ca == 1) & (cb == 0))) if binary else None
    b_only = int(np.sum((ca == 0) & (cb == 1))) if binary else None
    if not binary:
        p = None
    elif a_only + b_only == 0:
        p = 1.0
    else:
        p = float(stats.binomtest(a_only, a_only + b_only, 0.5).pvalue)
    return {
        "accuracy_a": float(ca.mean()),
        "accuracy_b": float(cb.mean()),
        "difference": float(ca.mean() - cb.mean()),
        "ci_low": lo,
        "ci_high": hi,
        "n": int(len(ca)),
        "n_a_only": a_only,
        "n_b_only": b_only,
        "mcnemar_p": p,
    }
