"""The loss catalogue: the single place a loss (or regulariser) is chosen by name.

``LOSSES`` and ``REGULARIZERS`` are literal dicts from name to ``LossSpec``. An unknown name is an
error that lists the known ones; nothing falls back silently. A spec's ``defaults`` are exactly the
keyword-only arguments of its function with their defaults (a test checks this), so
``spec.fn(*tensors, **resolve_hparams(spec, overrides))`` is always a complete call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import listwise, pairwise, pointwise, regularizers

FAMILIES = ("pairwise", "listwise", "pointwise", "regularizer")
DATA_FORMS = ("pairs", "rankings", "ratings", "labels", "any")


@dataclass(frozen=True)
class LossSpec:
    """One catalogue entry.

    name:         catalogue key (what ``--loss`` / ``--regularizer`` takes).
    fn:           the pure function; hyperparameters are its keyword-only arguments.
    family:       "pairwise" | "listwise" | "pointwise" | "regularizer" (decides the call convention).
    data_form:    "pairs" | "rankings" | "ratings" | "labels" | "any": the records it trains on.
    defaults:     hyperparameter name → default value (== the function's keyword-only defaults).
    paper:        short citation "Author et al. YEAR, Title".
    formula:      one-line formula in plain text / unicode.
    inputs:       losses: batch fields needed beyond the rewards ("margin", "tie"); the trainer passes
                  exactly these. Regularisers: every tensor argument of ``fn`` by name (e.g. "rewards",
                  "lengths", "hidden"), since the trainer calls ``fn(**{k: available[k] for k in inputs})``.
    handles_ties: True if the loss models tie pairs (the trainer then keeps them in the batch).
    """

    name: str
    fn: Callable
    family: str
    data_form: str
    defaults: dict
    paper: str
    formula: str
    inputs: tuple = ()
    handles_ties: bool = False

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: family {self.family!r} not in {FAMILIES}")
        if self.data_form not in DATA_FORMS:
            raise ValueError(f"{self.name}: data_form {self.data_form!r} not in {DATA_FORMS}")


P = "pairwise"

LOSSES: dict[str, LossSpec] = {
    # ── pairwise: fn(r_chosen (B,), r_rejected (B,), margin=None, tie=None, **hp) -> (B,) ──
    "bt": LossSpec(
        "bt", pairwise.bt, P, "pairs", {},
        "Stiennon et al. 2020, Learning to summarize from human feedback; Ouyang et al. 2022, InstructGPT",
        "−log σ(Δ)"),
    "bt_margin": LossSpec(
        "bt_margin", pairwise.bt_margin, P, "pairs", {},
        "Touvron et al. 2023, Llama 2: Open Foundation and Fine-Tuned Chat Models",
        "−log σ(Δ − m), m = margin from the rating (LLAMA2_MARGIN_SMALL / _LARGE)", inputs=("margin",)),
    "bt_scaled": LossSpec(
        "bt_scaled", pairwise.bt_scaled, P, "pairs", {},
        "Wang et al. 2024, HelpSteer2-Preference: Complementing Ratings with Preferences",
        "−m · log σ(Δ), m = preference strength (1 where absent)", inputs=("margin",)),
    "label_smoothing": LossSpec(
        "label_smoothing", pairwise.label_smoothing, P, "pairs", {"alpha": 0.1},
        "Mitchell 2023, A note on DPO with noisy preferences (cDPO); Wang et al. 2024, Secrets of RLHF Part II",
        "−(1 − α) log σ(Δ) − α log σ(−Δ)"),
    "robust": LossSpec(
        "robust", pairwise.robust, P, "pairs", {"flip_rate": 0.1},
        "Chowdhury et al. 2024, Provably Robust DPO: Aligning Language Models with Noisy Feedback",
        "[(1 − ε) ℓ(Δ) − ε ℓ(−Δ)] / (1 − 2ε), ℓ = −log σ, ε = flip_rate"),
    "focal": LossSpec(
        "focal", pairwise.focal, P, "pairs", {"gamma": 2.0},
        "Lin et al. 2017, Focal Loss for Dense Object Detection (transplanted; no RM paper)",
        "−(1 − p)^γ log p, p = σ(Δ)"),
    "hinge": LossSpec(
        "hinge", pairwise.hinge, P, "pairs", {"m": 1.0},
        "Zhao et al. 2023, SLiC-HF: Sequence Likelihood Calibration with Human Feedback",
        "max(0, m − Δ)"),
    "squared": LossSpec(
        "squared", pairwise.squared, P, "pairs", {"t": 1.0, "tau": None},
        "Azar et al. 2023, A General Theoretical Paradigm to Understand Learning from Human Preferences (IPO)",
        "(Δ − t)², t = 1/(2τ) when tau is given"),
    "ties": LossSpec(
        "ties", pairwise.ties, P, "pairs", {"model": "rao_kupper", "theta": 2.0, "nu": 1.0},
        "Rao & Kupper 1967, Ties in Paired-Comparison Experiments; Davidson 1970, On Extending the BT Model to Accommodate Ties",
        "strict: −log P(≻), tie: −log P(tie); RK: P(≻) = σ(Δ − log θ); Davidson: P(≻) = e^Δ/(e^Δ + 1 + ν e^{Δ/2})",
        inputs=("tie",), handles_ties=True),
    "adaptive_margin": LossSpec(
        "adaptive_margin", pairwise.adaptive_margin, P, "pairs", {"lam": 1.0},
        "Wang et al. 2024, Secrets of RLHF in Large Language Models Part II: Reward Modeling",
        "−log σ(Δ − λ · s), s = ensemble-estimated preference strength (margin)", inputs=("margin",)),
    # ── listwise: fn(rewards (B, K), ranks (B, K), valid (B, K), **hp) -> (B,) ──
    "kwise_bt": LossSpec(
        "kwise_bt", listwise.kwise_bt, "listwise", "rankings", {},
        "Ouyang et al. 2022, Training language models to follow instructions with human feedback",
        "mean over valid i, j with rank_i < rank_j of −log σ(r_i − r_j) (ties skipped)"),
    "plackett_luce": LossSpec(
        "plackett_luce", listwise.plackett_luce, "listwise", "rankings", {},
        "Zhu et al. 2023, Principled RLHF from Pairwise or K-wise Comparisons",
        "Σ_i [log Σ_{j: rank_j ≥ rank_i} e^{r_j} − r_i] (Plackett–Luce NLL, Breslow ties)"),
    "infonce": LossSpec(
        "infonce", listwise.infonce, "listwise", "rankings", {},
        "Ziegler et al. 2019, Fine-Tuning Language Models from Human Preferences",
        "−log Σ_{i ∈ best} e^{r_i} / Σ_j e^{r_j}"),
    # ── pointwise: fn(rewards, target, **hp) -> (B,) ──
    "mse": LossSpec(
        "mse", pointwise.mse, "pointwise", "ratings", {"weights": None},
        "Dong et al. 2023, SteerLM; Wang et al. 2023, HelpSteer: Multi-attribute Helpfulness Dataset for SteerLM",
        "Σ_a w_a (r_a − y_a)² / Σ_a w_a"),
    "bce": LossSpec(
        "bce", pointwise.bce, "pointwise", "labels", {},
        "Cobbe et al. 2021, Training Verifiers to Solve Math Word Problems",
        "−y log σ(r) − (1 − y) log σ(−r)"),
    "focal_bce": LossSpec(
        "focal_bce", pointwise.focal_bce, "pointwise", "labels", {"gamma": 2.0},
        "Lin et al. 2017, Focal Loss for Dense Object Detection",
        "−(1 − p_t)^γ log p_t, p_t = σ(r) if y = 1 else σ(−r)"),
    "bce_mse": LossSpec(
        "bce_mse", pointwise.bce_mse, "pointwise", "any", {"bce_weight": 1.0, "mse_weight": 1.0},
        "rewardlab (combined objective; BCE as in Cobbe et al. 2021, MSE as in SteerLM)",
        "w_b · BCE(r, label) + w_m · (r − score)², target (B, 2) = [label, score]"),
}

REGULARIZERS: dict[str, LossSpec] = {
    "center": LossSpec(
        "center", regularizers.center, "regularizer", "pairs", {},
        "Eisenstein et al. 2023, Helping or Herding? Reward Model Ensembles Mitigate but do not Eliminate Reward Hacking",
        "(r_c + r_r)²  (coefficient 0.01 in the paper)", inputs=("r_chosen", "r_rejected")),
    "l2_reward": LossSpec(
        "l2_reward", regularizers.l2_reward, "regularizer", "any", {},
        "common practice (no single paper)",
        "r²", inputs=("rewards",)),
    "triplet": LossSpec(
        "triplet", regularizers.triplet, "regularizer", "pairs", {"gap": 0.5},
        "rewardlab; contrastive RM objectives in Wang et al. 2024, Secrets of RLHF Part II",
        "max(0, d(h_c,i, h_c,i+1) − d(h_c,i, h_r,i) + gap), d = 1 − cos", inputs=("hidden",)),
    "length_decorrelation": LossSpec(
        "length_decorrelation", regularizers.length_decorrelation, "regularizer", "any", {},
        "rewardlab; squared form of the Pearson penalty of Chen et al. 2024, ODIN",
        "ρ(r, L)²  (batch Pearson correlation with length)", inputs=("rewards", "lengths")),
    "odin": LossSpec(
        "odin", regularizers.odin, "regularizer", "any", {},
        "Chen et al. 2024, ODIN: Disentangled Reward Mitigates Hacking in RLHF",
        "|ρ(r_Q, L)| − ρ(r_L, L)", inputs=("rewards", "lengths", "length_rewards")),
}


def _lookup(table: dict[str, LossSpec], name: str, what: str) -> LossSpec:
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(table)}")
    return table[name]


def get_loss(name: str) -> LossSpec:
    """The catalogue entry of loss ``name``; ValueError listing the known names otherwise."""
    return _lookup(LOSSES, name, "loss")


def get_regularizer(name: str) -> LossSpec:
    """The catalogue entry of regulariser ``name``; ValueError listing the known names otherwise."""
    return _lookup(REGULARIZERS, name, "regularizer")


def resolve_hparams(spec: LossSpec, overrides: dict | None) -> dict:
    """``spec.defaults`` updated with ``overrides``; an unknown key is a ValueError listing the valid ones."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(spec.defaults))
    if unknown:
        valid = ", ".join(spec.defaults) or "(none: this loss has no hyperparameters)"
        raise ValueError(f"unknown hyperparameter(s) {', '.join(map(repr, unknown))} for {spec.name!r}; valid: {valid}")
    return {**spec.defaults, **overrides}
