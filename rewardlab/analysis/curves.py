"""Loss and gradient curves of the catalogue: what each loss does as a function of Δ.

Notation
    Δ   r_chosen − r_rejected (one pair; r_rejected = 0 on the curves)
    L(Δ)  the per-pair loss;  L'(Δ) = dL/dΔ (autograd, float64)
    ε   fraction of pairs whose label is flipped (label noise)

Under label noise a pair with true gap Δ is seen as (chosen, rejected) with probability 1 − ε and
reversed with probability ε, so the expected loss is E(Δ) = (1 − ε) L(Δ) + ε L(−Δ) and its gradient
    E'(Δ) = (1 − ε) L'(Δ) − ε L'(−Δ).
The *stationary margin* is the Δ where E' crosses zero from below: the gap training settles at.
For BT it is log((1 − ε)/ε); a loss whose E' never crosses zero keeps pushing Δ → ∞ (inf).

Which losses have curves
    pairwise  L(Δ) = fn(Δ, 0); losses that need a margin get ``margin`` (default CURVE_MARGIN = 1),
              ``ties`` is shown on a strict (non-tie) pair.
    listwise  the K = 2 list [Δ, 0] with ranks [0, 1] (chosen first); all three equal BT there.
    pointwise / regularisers: not functions of Δ alone → ValueError naming the reason.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch

from rewardlab.losses.catalogue import LOSSES, REGULARIZERS, LossSpec, resolve_hparams

CURVE_MARGIN = 1.0  # per-pair margin used on the curves of losses that need one (bt_margin, bt_scaled, adaptive_margin)
CURVE_FAMILIES = ("pairwise", "listwise")
# Where stationary margins are searched (step 0.01). Beyond |Δ| ≈ 30 float64 gradients of the
# σ-type losses (≈ e^−|Δ|) drown in rounding (a cancelled 1 − 1 reads as exactly 0), so a crossing
# found there would be an artefact; a stationary margin above 30 is reported as inf.
_GRID = np.linspace(-30.0, 30.0, 6001)

# Shape of each curve-able loss at its default hyperparameters (margin = CURVE_MARGIN), derived by
# hand and checked numerically by tests/analysis: bounded below / above in Δ, convex in Δ.
PROPERTIES: dict[str, dict[str, bool]] = {
    "bt": {"bounded_below": True, "bounded_above": False, "convex": True},
    "bt_margin": {"bounded_below": True, "bounded_above": False, "convex": True},
    "bt_scaled": {"bounded_below": True, "bounded_above": False, "convex": True},
    "label_smoothing": {"bounded_below": True, "bounded_above": False, "convex": True},
    "robust": {"bounded_below": False, "bounded_above": False, "convex": True},
    "focal": {"bounded_below": True, "bounded_above": False, "convex": False},
    "hinge": {"bounded_below": True, "bounded_above": False, "convex": True},
    "squared": {"bounded_below": True, "bounded_above": False, "convex": True},
    "ties": {"bounded_below": True, "bounded_above": False, "convex": True},
    "adaptive_margin": {"bounded_below": True, "bounded_above": False, "convex": True},
    "kwise_bt": {"bounded_below": True, "bounded_above": False, "convex": True},
    "plackett_luce": {"bounded_below": True, "bounded_above": False, "convex": True},
    "infonce": {"bounded_below": True, "bounded_above": False, "convex": True},
}

_NOTES = {
    "robust": "unbounded below: ≈ −εΔ/(1 − 2ε) as Δ → +∞ (keeps rewarding separation); unbiased for the clean BT loss when the flip rate is exactly ε",
    "focal": "not convex for Δ below about −2.8 (γ = 2): the weight (1 − p)^γ bends the linear tail",
    "hinge": "gradient is exactly 0 beyond Δ = m: separated pairs stop contributing",
    "squared": "pulls every gap to t, from either side: over-separated pairs are pushed back",
    "label_smoothing": "minimum log((1 − α)/α) even without noise; gradient never vanishes for separated pairs below it",
}


def _spec(name: str) -> LossSpec:
    if name in LOSSES:
        return LOSSES[name]
    if name in REGULARIZERS:
        return REGULARIZERS[name]
    raise ValueError(f"unknown loss {name!r}; known: {', '.join([*LOSSES, *REGULARIZERS])}")


def _delta_fn(name: str, hp: dict):
    """(spec, L) with L: Δ (n,) float64 → per-pair loss (n,); ``hp`` may hold a scalar ``margin``."""
    spec = _spec(name)
    if spec.family not in CURVE_FAMILIES:
        raise ValueError(f"{name!r} is a {spec.family} {'loss' if spec.family != 'regularizer' else 'term'}: it is not a "
                         f"function of Δ alone, so it has no curve (curves exist for {' and '.join(CURVE_FAMILIES)} losses)")
    hp = dict(hp)
    margin = hp.pop("margin", None)
    hp = resolve_hparams(spec, hp)
    if spec.family == "listwise":
        if margin is not None:
            raise ValueError(f"{name!r} is listwise and takes no margin")

        def L(d: torch.Tensor) -> torch.Tensor:
            rewards = torch.stack([d, torch.zeros_like(d)], dim=1)  # (n, 2): chosen first
            ranks = torch.tensor([[0.0, 1.0]], dtype=d.dtype).expand(d.shape[0], 2)
            return spec.fn(rewards, ranks, torch.ones_like(rewards, dtype=torch.bool), **hp)

        return spec, L
    if margin is None and "margin" in spec.inputs:
        margin = CURVE_MARGIN

    def L(d: torch.Tensor) -> torch.Tensor:
        kw = {}
        if margin is not None:
            kw["margin"] = torch.full_like(d, float(margin))
        if "tie" in spec.inputs:
            kw["tie"] = torch.zeros_like(d, dtype=torch.bool)
        return spec.fn(d, torch.zeros_like(d), **kw, **hp)

    return spec, L


def _value_and_grad(f, deltas) -> tuple[np.ndarray, np.ndarray]:
    d = torch.as_tensor(np.asarray(deltas, dtype=np.float64)).reshape(-1).clone().requires_grad_(True)
    value = f(d)
    (grad,) = torch.autograd.grad(value.sum(), d)  # each value depends on its own Δ only
    return value.detach().numpy(), grad.numpy()


def loss_curve(name: str, deltas: np.ndarray, **hp) -> tuple[np.ndarray, np.ndarray]:
    """(L(Δ), dL/dΔ) on ``deltas`` for a pairwise or listwise (K = 2) loss; r_rejected = 0.

    ``hp``: the loss's hyperparameters, plus ``margin`` (scalar) for losses that take one
    (default CURVE_MARGIN = 1 for bt_margin, bt_scaled, adaptive_margin; hinge uses it as m if given).
    Pointwise losses and regularisers raise ValueError.
    """
    _, L = _delta_fn(name, hp)
    return _value_and_grad(L, deltas)


def expected_gradient(name: str, deltas: np.ndarray, eps: float, **hp) -> np.ndarray:
    """E'(Δ) = (1 − ε) L'(Δ) − ε L'(−Δ): the gradient of the per-pair loss expected when a
    fraction ``eps`` of labels is flipped. ``hp`` as in ``loss_curve``."""
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps (label-flip fraction) must be in [0, 1], got {eps}")
    _, L = _delta_fn(name, hp)
    _, grad = _value_and_grad(lambda d: (1.0 - eps) * L(d) + eps * L(-d), deltas)
    return grad


def stationary_margin(name: str, eps: float, **hp) -> float:
    """Δ where the expected gradient under ε label flips first crosses zero from below, or ``inf``.

    Searched on Δ ∈ [−30, 30] (step 0.01), then refined by bisection (a margin beyond 30 is inf). ``inf`` means the expected
    gradient stays negative: training keeps pushing Δ up (BT at ε = 0; ``robust`` at ε = flip_rate).
    Where the gradient first becomes exactly 0 (hinge at ε = 0) that point is returned.
    Examples: bt → log((1 − ε)/ε); squared → t(1 − 2ε); hinge (0 < ε < 1/2) → m.
    """
    grid = _GRID
    g = expected_gradient(name, grid, eps, **hp)
    up = (g[:-1] < 0) & (g[1:] >= 0)  # (n − 1,) first step from negative to non-negative
    if not up.any():
        return math.inf
    i = int(np.argmax(up))
    lo, hi = float(grid[i]), float(grid[i + 1])
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if expected_gradient(name, np.array([mid]), eps, **hp)[0] < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def loss_table(include_regularizers: bool = True) -> list[dict]:
    """One row per catalogue entry: name, family, data_form, hyperparameters (name → default),
    inputs, handles_ties, paper, formula."""
    specs = [*LOSSES.values(), *(REGULARIZERS.values() if include_regularizers else [])]
    return [{"name": s.name, "family": s.family, "data_form": s.data_form, "hyperparameters": dict(s.defaults),
             "inputs": list(s.inputs), "handles_ties": s.handles_ties, "paper": s.paper, "formula": s.formula}
            for s in specs]


def _fmt_margin(x: float) -> str:
    return "∞ (keeps pushing)" if math.isinf(x) else f"{x:.3f}"


def describe(name: str) -> str:
    """A readable card: formula, paper, defaults, inputs and, for curve-able losses, the properties
    of L(Δ) (bounded? convex?) and the stationary margin under 10% and 20% label flips."""
    spec = _spec(name)
    hp = ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items()) or "(none)"
    lines = [f"{spec.name} — {spec.family} ({spec.data_form})",
             f"  formula:          {spec.formula}",
             f"  paper:            {spec.paper}",
             f"  hyperparameters:  {hp}",
             f"  inputs:           {', '.join(spec.inputs) or '(rewards only)'}",
             f"  handles ties:     {'yes' if spec.handles_ties else 'no'}"]
    if spec.family in CURVE_FAMILIES:
        p = PROPERTIES[name]
        yn = {True: "yes", False: "no"}
        extra = f" (margin = {CURVE_MARGIN:g})" if "margin" in spec.inputs else ""
        lines += [f"  properties in Δ at the defaults{extra}:",
                  f"    bounded below: {yn[p['bounded_below']]}, bounded above: {yn[p['bounded_above']]}, "
                  f"convex: {yn[p['convex']]}",
                  "    stationary margin under label flips: "
                  + ", ".join(f"ε={e:g}: {_fmt_margin(stationary_margin(name, e))}" for e in (0.0, 0.1, 0.2))]
        if name in _NOTES:
            lines.append(f"    note: {_NOTES[name]}")
    else:
        lines.append("  curves: none (not a function of Δ alone)")
    fn_doc = (spec.fn.__doc__ or "").strip().splitlines()
    if fn_doc:
        lines += ["", *fn_doc]
    return "\n".join(lines)


def plot_losses(names: list[str] | None, out_dir: str | Path, eps: float = 0.2,
                delta_range: tuple[float, float] = (-10.0, 10.0), points: int = 801) -> dict[str, Path]:
    """Write ``losses.png`` (loss, dL/dΔ, expected gradient under ε flips with stationary margins
    marked) and ``losses.csv`` (long format: name, delta, loss, dloss_ddelta, expected_grad, eps,
    stationary_margin) to ``out_dir``. ``names`` None = every pairwise and listwise loss.
    Returns {"png": path, "csv": path}. Uses matplotlib's Agg canvas (no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [n for n, s in LOSSES.items() if s.family in CURVE_FAMILIES] if names is None else list(names)
    for n in names:
        _delta_fn(n, {})  # fail early on an unknown or curve-less name
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    deltas = np.linspace(delta_range[0], delta_range[1], points)
    rows, curves = [], {}
    for n in names:
        loss, grad = loss_curve(n, deltas)
        eg = expected_gradient(n, deltas, eps)
        sm = stationary_margin(n, eps)
        curves[n] = (loss, grad, eg, sm)
        rows += [(n, d, l, g, e, eps, sm) for d, l, g, e in zip(deltas, loss, grad, eg)]

    csv_path = out_dir / "losses.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "delta", "loss", "dloss_ddelta", "expected_grad", "eps", "stationary_margin"])
        for n, d, l, g, e, ep, sm in rows:
            w.writerow([n, f"{d:.6g}", f"{l:.8g}", f"{g:.8g}", f"{e:.8g}", ep, "inf" if math.isinf(sm) else f"{sm:.6g}"])

    fig = Figure(figsize=(17, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    colors = [f"C{i % 10}" for i in range(len(names))]
    styles = ["-", "--", "-.", ":"]
    all_loss = np.concatenate([c[0] for c in curves.values()])
    # loss panel: clip the view (not the data) so that quadratic / linear tails don't flatten the rest
    lo_y = max(float(np.min(all_loss)), -4.0)
    axes[0].set_ylim(lo_y - 0.3, min(float(np.max(all_loss)), 8.0) + 0.3)
    for k, n in enumerate(names):
        loss, grad, eg, sm = curves[n]
        # colour and dash both vary, so curves that coincide (bt, kwise_bt, …) stay visible
        style = dict(color=colors[k], linestyle=styles[k % len(styles)], linewidth=2.2 if k % len(styles) else 1.6)
        axes[0].plot(deltas, loss, label=n, **style)
        axes[1].plot(deltas, grad, **style)
        axes[2].plot(deltas, eg, **style)
        if math.isfinite(sm) and delta_range[0] <= sm <= delta_range[1]:
            axes[2].axvline(sm, color=colors[k], linestyle=":", linewidth=1.0)
            axes[2].plot([sm], [0.0], marker="o", color=colors[k], markersize=6)
    axes[1].set_ylim(-1.6, 1.6)
    axes[2].set_ylim(-1.6, 1.6)
    titles = ["loss L(Δ)  (view clipped)", "dL/dΔ  (view clipped to ±1.6)",
              f"expected gradient, ε = {eps:g} of labels flipped\n(dots: stationary margin)"]
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("Δ = r_chosen − r_rejected")
        ax.axhline(0.0, color="0.6", linewidth=0.8)
        ax.axvline(0.0, color="0.85", linewidth=0.8)
        ax.grid(True, alpha=0.3)
        ax.set_xlim(*delta_range)
    margin_text = f"margin = {CURVE_MARGIN:g} where a loss takes one; listwise: K = 2"
    sm_labels = [f"{n}  (Δ* = {_fmt_margin(curves[n][3])})" for n in names]
    handles = axes[0].get_lines()[: len(names)]
    fig.legend(handles, sm_labels, loc="outside lower center", ncol=min(5, len(names)), fontsize=9,
               title=f"stationary margin Δ* at ε = {eps:g}; {margin_text}", title_fontsize=9)
    png_path = out_dir / "losses.png"
    fig.savefig(png_path, dpi=110)
    return {"png": png_path, "csv": csv_path}
