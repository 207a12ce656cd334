"""Pairwise reward-model losses: one preference (chosen ≻ rejected) per example.

Notation
    B   pairs in the batch
    Δ   r_chosen − r_rejected                                   # (B,)
    σ   logistic sigmoid;  ℓ(x) = −log σ(x) = log(1 + e^−x)    (the Bradley–Terry negative log-likelihood)
    m   per-pair margin / preference strength (the ``margin`` tensor)

Calling convention (the trainer relies on it):
    fn(r_chosen (B,), r_rejected (B,), margin=None, tie=None, *, <hyperparameters>) -> (B,)
Every loss accepts ``margin`` and ``tie``; a loss that does not use one says so and ignores it.
Hyperparameters are keyword-only; their defaults are the catalogue's defaults. Values are
per-example (no reduction). Everything is written with ``logsigmoid`` / ``logaddexp`` so that values
and gradients stay finite for |Δ| up to 1e4 and beyond.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

# Llama 2 (Touvron et al. 2023, Table 28): margin from the annotators' 4-level preference rating.
LLAMA2_MARGIN_SMALL = {"significantly better": 1.0, "better": 2 / 3, "slightly better": 1 / 3, "negligibly better": 0.0}
LLAMA2_MARGIN_LARGE = {"significantly better": 3.0, "better": 2.0, "slightly better": 1.0, "negligibly better": 0.0}

TIE_MODELS = ("rao_kupper", "davidson")


def _delta(r_chosen: Tensor, r_rejected: Tensor) -> Tensor:
    if r_chosen.shape != r_rejected.shape or r_chosen.dim() != 1:
        raise ValueError(f"r_chosen and r_rejected must both be (B,); got {tuple(r_chosen.shape)} and {tuple(r_rejected.shape)}")
    return r_chosen - r_rejected  # (B,)


def _nll(x: Tensor) -> Tensor:
    """ℓ(x) = −log σ(x), stable for any |x|."""
    return -F.logsigmoid(x)  # exact for all x (torch's softplus switches to x above 20)


def _need_margin(margin: Tensor | None, name: str, delta: Tensor) -> Tensor:
    if margin is None:
        raise ValueError(f"{name} needs a per-pair `margin` tensor (B,); pass margin=torch.zeros(B) for none")
    if margin.shape != delta.shape:
        raise ValueError(f"{name}: margin must have shape {tuple(delta.shape)}, got {tuple(margin.shape)}")
    return margin.to(delta.dtype)


def bt(r_chosen: Tensor, r_rejected: Tensor, margin: Tensor | None = None, tie: Tensor | None = None) -> Tensor:
    """Bradley–Terry loss: ℓ = −log σ(Δ).

    The negative log-likelihood of the preference under P(chosen ≻ rejected) = σ(Δ).
    Paper: Stiennon et al. 2020, "Learning to summarize from human feedback"; Ouyang et al. 2022,
    "Training language models to follow instructions with human feedback" (InstructGPT).
    No hyperparameters. Ignores ``margin`` and ``tie``. ℓ(0) = log 2.
    """
    return _nll(_delta(r_chosen, r_rejected))


def bt_margin(r_chosen: Tensor, r_rejected: Tensor, margin: Tensor | None = None, tie: Tensor | None = None) -> Tensor:
    """Bradley–Terry with a margin from the data: ℓ = −log σ(Δ − m).

    Paper: Touvron et al. 2023, "Llama 2: Open Foundation and Fine-Tuned Chat Models" (§3.2.2).
    ``margin`` (B,) is required: m is a discrete function of the annotators' preference rating, see
    ``LLAMA2_MARGIN_SMALL`` ({1, 2/3, 1/3, 0}) and ``LLAMA2_MARGIN_LARGE`` ({3, 2, 1, 0}). Pairs rated
    more distinct must be separated by a larger reward gap. m = 0 gives ``bt``. Ignores ``tie``.
    """
    delta = _delta(r_chosen, r_rejected)
    return _nll(delta - _need_margin(margin, "bt_margin", delta))


def bt_scaled(r_chosen: Tensor, r_rejected: Tensor, margin: Tensor | None = None, tie: Tensor | None = None) -> Tensor:
    """Scaled Bradley–Terry: ℓ = −m · log σ(Δ), m = preference strength as a per-pair weight.

    Paper: Wang et al. 2024, "HelpSteer2-Preference: Complementing Ratings with Preferences"
    (strength = magnitude of the −3…3 preference score, so m ∈ {1, 2, 3}).
    m = 1 where absent: ``margin=None`` means m = 1 for every pair, and inside a tensor 0 or NaN mean
    "no strength recorded" (``PairBatch.margin`` is 0 where the data has none) and are read as 1.
    Negative strengths are an error. Ignores ``tie``.
    """
    delta = _delta(r_chosen, r_rejected)
    if margin is None:
        return _nll(delta)
    m = _need_margin(margin, "bt_scaled", delta)
    if bool((m < 0).any()):
        raise ValueError("bt_scaled: preference strengths (margin) must be >= 0")
    m = torch.where(torch.isnan(m) | (m == 0), torch.ones_like(m), m)
    return m * _nll(delta)


def label_smoothing(r_chosen: Tensor, r_rejected: Tensor, margin: Tensor | None = None, tie: Tensor | None = None,
                    *, alpha: float = 0.1) -> Tensor:
    """Label-smoothed BT: ℓ = −(1 − α) log σ(Δ) − α log σ(−Δ).

    Cross-entropy against a soft label α: the target P(chosen ≻ rejected) is 1 − α, so the loss is
    minimised at the finite margin Δ* = log((1 − α)/α) instead of pushing Δ → ∞.
    Papers: Mitchell 2023, "A note on DPO with noisy preferences" (conservative DPO, cDPO);
    Wang et al. 2024, "Secrets of RLHF in Large Language Models Part II: Reward Modeling".
    Default α = 0.1; α = 0 gives ``bt``. Requires 0 ≤ α ≤ 1. Ignores ``margin`` and ``tie``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"label_smoothing: alpha must be in [0, 1], got {alpha}")
    delta = _delta(r_chosen, r_rejected)
    return (1.0 - alpha) * _nll(delta) + alpha * _nll(-delta)


def robust(r_chosen: Tensor, r_rejected: Tensor, margin: Tensor | None = None, tie: Tensor | None = None,
           *, flip_rate: float = 0.1) -> Tensor:
    """Unbiased loss under label flips: ℓ_ε(Δ) = [(1 − ε) ℓ(Δ) − ε ℓ(−Δ)] / (1 − 2ε), ℓ = −log σ.

    If each label is flipped with probability ε (= ``flip_rate``), the expectation of ℓ_ε over the
    flip equals the clean BT loss ℓ(Δ): the estimator is unbiased. The price: ℓ_ε is unbounded below
    (≈ −εΔ/(1 − 2ε) as Δ → +∞); it is convex in Δ with the same curvature as BT.
    Paper: Chowdhury, Kini, Natarajan 2024, "Provably Robust DPO: Aligning Language Models with Noisy
    Feedback" (rDPO). Default ε = 0.1; ε = 0 gives ``bt``; requires 0 ≤ ε < 0.5.
    Ignores ``margin`` and ``tie``.
    """
    if not 0.0 <= flip_rate < 0.5:
        raise ValueError(f"robust: flip_rate must be in [0, 0.5), got {flip_rate}")
    delta = _delta(r_chosen, r_rejected)
    return ((1.0 - flip_rate) * _nll(delta) - flip_rate * _nll(-delta)) / (1.0 - 2.0 * flip_rate)


def focal(r_chosen: Tensor, r_rejected: Tensor, margin: Tensor | None = None, tie: Tensor | None = None,
          *, gamma: float = 2.0) -> Tensor:
    """Focal BT loss: ℓ = −(1 − p)^γ log p, p = σ(Δ).

    Transplanted from Lin et al. 2017, "Focal Loss for Dense Object Detection". No reward-model
    paper established it; it is here because it down-weights easy (well-separated) pairs, a
    hypothesis worth testing against BT. Default γ = 2; γ = 0 gives ``bt``. Requires γ ≥ 0.
    Computed as −exp(γ · log σ(−Δ)) · log σ(Δ). Ignores ``margin`` and ``tie``.
    """
    if gamma < 0:
        raise ValueError(f"focal: gamma must be >= 0, got {gamma}")
    delta = _delta(r_chosen, r_rejected)
    weight = torch.exp(gamma * F.logsigmoid(-delta))  # (1 − p)^γ
    return weight * _nll(delta)


def hinge(r_chosen: Tensor, r_rejected: Tensor, margin: Tensor | None = None, tie: Tensor | None = None,
          *, m: float = 1.0) -> Tensor:
    """Hinge (ranking calibration) loss: ℓ = max(0, m − Δ).

    Paper: Zhao et al. 2023, "SLiC-HF: Sequence Likelihood Calibration with Human Feedback"
    (the calibration loss max(0, δ − log P(y+|x) + log P(y−|x)), here on rewards).
    Default m = 1. If a per-pair ``margin`` tensor is passed it is used as m (pair by pair) instead
    of the scalar; the catalogue does not list "margin" as an input, so the trainer passes none.
    Ignores ``tie``.
    """
    delta = _delta(r_chosen, r_rejected)
    target = m if margin is None else _need_margin(margin, "hinge", delta)
    return F.relu(target - delta)


def squared(r_chosen: Tensor, r_rejected: Tensor, margin: Tensor | None = None, tie: Tensor | None = None,
            *, t: float = 1.0, tau: float | None = None) -> Tensor:
    """Squared (IPO-style) loss: ℓ = (Δ − t)².

    Paper: Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
    Preferences" (IPO: (h − 1/(2τ))², h the log-likelihood-ratio gap, τ the regularisation strength).
    Regresses every gap onto the fixed target t instead of pushing it to ∞, so it is bounded below
    and never rewards over-separation. Default t = 1 (τ = 0.5). Give ``tau`` to set t = 1/(2τ);
    giving both a non-default t and tau is an error. Ignores ``margin`` and ``tie``.
    """
    if tau is not None:
        if t != 1.0:
            raise ValueError("squared: give t or tau, not both")
        if tau <= 0:
            raise ValueError(f"squared: tau must be > 0, got {tau}")
        t = 1.0 / (2.0 * tau)
    return (_delta(r_chosen, r_rejected) - t) ** 2


def ties(r_chosen: Tensor, r_rejected: Tensor, margin: Tensor | None = None, tie: Tensor | None = None,
         *, model: str = "rao_kupper", theta: float = 2.0, nu: float = 1.0) -> Tensor:
    """Bradley–Terry with ties: −log P(chosen ≻ rejected) on strict pairs, −log P(tie) on tie pairs.

    ``tie`` (B,) bool marks tie pairs (None = no ties). For a tie pair the order is irrelevant:
    P(tie) is symmetric in Δ.

    model="rao_kupper" (Rao & Kupper 1967, "Ties in Paired-Comparison Experiments: A Generalization
    of the Bradley-Terry Model"), θ > 1:
        P(≻) = σ(Δ − log θ),   P(tie) = 1 − σ(Δ − log θ) − σ(−Δ − log θ)
             = (θ² − 1) e^Δ / ((e^Δ + θ)(1 + θ e^Δ))
    model="davidson" (Davidson 1970, "On Extending the Bradley-Terry Model to Accommodate Ties in
    Paired Comparison Experiments"), ν ≥ 0:
        P(≻) = e^Δ / (e^Δ + 1 + ν e^{Δ/2}),   P(tie) = ν e^{Δ/2} / (e^Δ + 1 + ν e^{Δ/2})
    Defaults θ = 2, ν = 1: both give P(tie | Δ = 0) = 1/3. Davidson with ν = 0 is ``bt`` on strict
    pairs (tie pairs then have probability 0, an error). Ignores ``margin``.
    """
    delta = _delta(r_chosen, r_rejected)
    is_tie = torch.zeros_like(delta, dtype=torch.bool) if tie is None else tie.to(torch.bool)
    if is_tie.shape != delta.shape:
        raise ValueError(f"ties: tie must have shape {tuple(delta.shape)}, got {tuple(is_tie.shape)}")
    if model == "rao_kupper":
        if not theta > 1.0:
            raise ValueError(f"ties (rao_kupper): theta must be > 1, got {theta}")
        log_theta = math.log(theta)
        nll_win = _nll(delta - log_theta)
        log_p_tie = (math.log(theta**2 - 1.0) + delta
                     - torch.logaddexp(delta, torch.full_like(delta, log_theta)) + F.logsigmoid(-(delta + log_theta)))
        nll_tie = -log_p_tie
    elif model == "davidson":
        if not nu >= 0.0:
            raise ValueError(f"ties (davidson): nu must be >= 0, got {nu}")
        if nu == 0.0:
            if bool(is_tie.any()):
                raise ValueError("ties (davidson): nu = 0 gives ties probability 0; use nu > 0 with tie pairs")
            return _nll(delta)
        log_nu = math.log(nu)
        log_z = torch.logsumexp(torch.stack([delta, torch.zeros_like(delta), log_nu + delta / 2]), dim=0)  # (B,)
        nll_win = log_z - delta
        nll_tie = log_z - log_nu - delta / 2
    else:
        raise ValueError(f"ties: unknown model {model!r}; known: {', '.join(TIE_MODELS)}")
    return torch.where(is_tie, nll_tie, nll_win)


def adaptive_margin(r_chosen: Tensor, r_rejected: Tensor, margin: Tensor | None = None, tie: Tensor | None = None,
                    *, lam: float = 1.0) -> Tensor:
    """BT with an adaptive margin: ℓ = −log σ(Δ − λ · s), s = estimated preference strength.

    Paper: Wang et al. 2024, "Secrets of RLHF in Large Language Models Part II: Reward Modeling"
    (§ adaptive margin): s is the mean reward gap that an ensemble of reward models assigns to the
    pair, a continuous estimate of how strong (or, when s < 0, how doubtful) the preference is.
    ``margin`` (B,) carries s and is required. Default λ = 1.

    Difference to ``bt_margin``: there m is a fixed table lookup of the annotators' discrete rating
    (≥ 0, Llama 2); here s is model-estimated, continuous, may be negative (likely mislabelled pairs
    then get a *smaller* required gap) and is scaled by λ. With λ = 1 and the same numbers in
    ``margin`` the two losses coincide. Ignores ``tie``.
    """
    delta = _delta(r_chosen, r_rejected)
    return _nll(delta - lam * _need_margin(margin, "adaptive_margin", delta))
