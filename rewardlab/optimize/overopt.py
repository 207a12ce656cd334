"""Over-optimisation: gold and proxy reward against d = √KL, and the functional forms of Gao et al.

Gao, Schulman & Hilton 2022, "Scaling Laws for Reward Model Overoptimization" (arXiv:2210.10760),
measure the *gain* of the gold reward over the initial policy as a function of d = √KL(π‖π_init):

    best-of-N   R_bon(d) = d (α − β d)            (KL_bon = log N − (N−1)/N)
    RL          R_rl(d)  = d (α − β log d)

Both are linear in (α, β), so they are fitted by ordinary least squares through the origin
(R(0) = 0 by construction). The gold gain peaks at

    best-of-N   d* = α / (2β),          R* = α² / (4β)
    RL          d* = exp(α/β − 1),      R* = β d*

(for β > 0; with β < 0 the fitted gain grows without bound: d* = ∞). Proxy gains are fitted
with the same forms. To share one axis with the gold, a proxy gain is rescaled by σ_gold / σ_proxy,
the ratio of the two rewards' std over the initial policy's samples ("proxy in gold-std units").

``overopt`` runs best-of-N and an RL method for each proxy RM on the built-in task, fits both forms,
and writes ``overopt.png`` (one colour per RM; gold: filled markers, solid fit; proxy: hollow
markers, dashed fit), ``overopt.json`` and ``overopt.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from rewardlab import report as R

FORMS = ("bon", "rl")


def _design(d: np.ndarray, form: str) -> np.ndarray:
    d = np.asarray(d, dtype=float)
    if form == "bon":
        return np.stack([d, -d * d], 1)  # (n, 2)
    if form == "rl":
        dlogd = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
        return np.stack([d, -dlogd], 1)  # (n, 2)
    raise ValueError(f"unknown form {form!r}; known: {', '.join(FORMS)}")


def fit(d: Sequence[float], r: Sequence[float], form: str) -> dict:
    """Least-squares (α, β) of R(d) = d(α − βd) (form "bon") or d(α − β log d) (form "rl").

    Returns {alpha, beta, r2 (uncentred, through the origin), rmse, n, d_star, r_star}.
    """
    d, r = np.asarray(d, dtype=float), np.asarray(r, dtype=float)
    keep = np.isfinite(d) & np.isfinite(r)
    d, r = d[keep], r[keep]
    if d.size < 2:
        raise ValueError(f"need at least 2 points to fit 2 parameters, got {d.size}")
    X = _design(d, form)
    (alpha, beta), *_ = np.linalg.lstsq(X, r, rcond=None)
    pred = X @ np.array([alpha, beta])
    ss_res = float(np.sum((r - pred) ** 2))
    ss_tot = float(np.sum(r**2))
    d_star, r_star = peak(float(alpha), float(beta), form)
    return {"alpha": float(alpha), "beta": float(beta), "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
            "rmse": math.sqrt(ss_res / d.size), "n": int(d.size), "d_star": d_star, "r_star": r_star}


def predict(d, alpha: float, beta: float, form: str) -> np.ndarray:
    """R(d) of a fitted form."""
    return _design(np.asarray(d, dtype=float), form) @ np.array([alpha, beta])


def peak(alpha: float, beta: float, form: str) -> tuple[float, float]:
    """(d*, R*) where the fitted gain is largest. With β < 0 (or β = 0 < α) the fitted gain grows without
    bound: (∞, ∞); with β = 0 ≥ α it never rises above 0: (0, 0)."""
    if beta < 0 or (beta == 0 and alpha > 0):
        return math.inf, math.inf
    if beta == 0:
        return 0.0, 0.0
    if form == "bon":
        return alpha / (2 * beta), alpha**2 / (4 * beta)
    exponent = alpha / beta - 1.0
    if exponent > 700:  # beyond float range: no peak in any measurable range
        return math.inf, math.inf
    d_star = math.exp(exponent)
    return d_star, beta * d_star


# ---------------------------------------------------------------------------- curves from runs


@dataclass
class Curve:
    """Points of one run: d = √KL, gold and proxy gain over the initial policy (proxy in gold-std units)."""

    name: str
    form: str
    d: list = field(default_factory=list)
    gold: list = field(default_factory=list)
    proxy: list = field(default_factory=list)
    kl: list = field(default_factory=list)
    proxy_scale: float = 1.0

    def fits(self) -> dict:
        out = {"gold": fit(self.d, self.gold, self.form)}
        if self.proxy:
            out["proxy"] = fit(self.d, self.proxy, self.form)
        return out


def _scale(gold_std, proxy_std) -> float:
    if gold_std is None or not proxy_std:
        return 1.0
    return float(gold_std) / float(proxy_std)


def curve_from_bon(summary: dict, name: str) -> Curve:
    """Curve of a best-of-N run's summary.json (its ``curve`` of N, KL, proxy, gold); gains vs N = 1."""
    pts = summary["curve"]
    if pts[0]["n"] != 1 or pts[0].get("gold") is None:
        raise ValueError("a best-of-N over-optimisation curve needs N = 1 in --n and the gold reward")
    scale = _scale(summary.get("gold_std"), summary.get("proxy_std"))
    g0, p0 = pts[0]["gold"], pts[0]["proxy"]
    return Curve(name, "bon", d=[math.sqrt(p["kl"]) for p in pts], gold=[p["gold"] - g0 for p in pts],
                 proxy=[(p["proxy"] - p0) * scale for p in pts], kl=[p["kl"] for p in pts], proxy_scale=scale)


def curve_from_log(log_path: str | Path, name: str, kl_key: str = "kl_k1") -> Curve:
    """Curve of an RL run's log.jsonl: its ``eval`` lines (fixed held-out prompts); gains vs step 0.
    d = √max(KL, 0) with the k1 estimator by default (``kl_key="kl_k3"`` for k3)."""
    evals = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    evals = [e for e in evals if e.get("split") == "eval"]
    if not evals or evals[0]["step"] != 0 or evals[0].get("gold") is None:
        raise ValueError(f"{log_path}: need an eval line at step 0 with the gold reward")
    first = evals[0]
    scale = _scale(first.get("gold_std"), first.get("proxy_std"))
    return Curve(name, "rl", d=[math.sqrt(max(e[kl_key], 0.0)) for e in evals], gold=[e["gold"] - first["gold"] for e in evals],
                 proxy=[(e["proxy"] - first["proxy"]) * scale for e in evals], kl=[e[kl_key] for e in evals], proxy_scale=scale)


# ---------------------------------------------------------------------------- report


def plot(curves: Sequence[Curve], path: str | Path, title: str | None = None) -> Path:
    """One figure: a panel per form present (best-of-N, RL); per RM a colour; gold filled + solid fit,
    proxy hollow + dashed fit; x = d = √KL (nats^½), y = gain over the initial policy (gold units)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    forms = [f for f in FORMS if any(c.form == f for c in curves)]
    fig, axes = plt.subplots(1, len(forms), figsize=(6.4 * len(forms), 5.6), squeeze=False)
    names = list(dict.fromkeys(c.name for c in curves))
    colours = {n: plt.get_cmap("tab10")(i % 10) for i, n in enumerate(names)}
    labels = {"bon": "best-of-N:  R = d(α − βd)", "rl": "RL:  R = d(α − β log d)"}
    for ax, form in zip(axes[0], forms):
        for c in (c for c in curves if c.form == form):
            col = colours[c.name]
            grid = np.linspace(0.0, max(c.d) * 1.05 if c.d else 1.0, 200)
            fits = c.fits()
            g = fits["gold"]
            ax.plot(c.d, c.gold, "o", color=col, ms=5)
            ax.plot(grid, predict(grid, g["alpha"], g["beta"], form), "-", color=col, lw=1.8,
                    label=f"{c.name} gold (α={g['alpha']:.2f}, β={g['beta']:.2f})")
            if "proxy" in fits:
                p = fits["proxy"]
                ax.plot(c.d, c.proxy, "o", mfc="none", color=col, ms=5)
                ax.plot(grid, predict(grid, p["alpha"], p["beta"], form), "--", color=col, lw=1.2,
                        label=f"{c.name} proxy (α={p['alpha']:.2f}, β={p['beta']:.2f})")
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_xlabel("d = √KL(π ‖ π_init)  [nats^½]")
        ax.set_ylabel("reward gain over the initial policy (gold units)")
        ax.set_title(labels[form])
        ax.set_xlim(left=0.0)
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _fmt(x) -> str:
    return "∞" if isinstance(x, float) and math.isinf(x) else f"{x:.3f}"


def report(curves: Sequence[Curve], output: str | Path, title: str = "Over-optimisation on the built-in task") -> dict:
    """overopt.png, overopt.json, overopt.md and overopt.html in ``output``; returns the JSON summary."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    png = plot(curves, output / "overopt.png", title)
    rows = []
    for c in curves:
        fits = c.fits()
        rows.append({"rm": c.name, "form": c.form, "fits": fits, "points": {"d": c.d, "kl": c.kl, "gold": c.gold, "proxy": c.proxy},
                     "proxy_scale": c.proxy_scale, "max_gold_gain": max(c.gold), "final_gold_gain": c.gold[-1],
                     "final_kl": c.kl[-1]})
    summary = {"figure": str(png), "curves": rows}
    (output / "overopt.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    lines = [f"# {title}", "", f"![gold and proxy vs d = √KL]({png.name})", "",
             "Gains over the initial policy (gold units; proxy rescaled by σ_gold/σ_proxy of the initial policy). "
             "Fits: best-of-N R = d(α − βd), RL R = d(α − β log d) (Gao et al. 2022); d* is where the fitted gold gain peaks.", "",
             "| RM | form | gold α | gold β | gold R² | d* | R* | proxy α | proxy β | max gold gain | final KL |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        g, p = r["fits"]["gold"], r["fits"].get("proxy", {})
        lines.append(f"| {r['rm']} | {r['form']} | {g['alpha']:.3f} | {g['beta']:.3f} | {g['r2']:.3f} | {_fmt(g['d_star'])} | "
                     f"{_fmt(g['r_star'])} | {p.get('alpha', float('nan')):.3f} | {p.get('beta', float('nan')):.3f} | "
                     f"{r['max_gold_gain']:.3f} | {r['final_kl']:.3f} |")
    lines += ["", "Over-optimises less: at equal d, the RM whose gold curve stays higher (larger α, smaller β; later d*)."]
    (output / "overopt.md").write_text("\n".join(lines) + "\n")
    write_html(rows, png, output / "overopt.html", title)
    return summary


def write_html(rows: list[dict], png: Path, path: Path, title: str) -> Path:
    """overopt.html: the figure and the fit table as sections of the one report page (``rewardlab.report``)."""
    header = ["RM", "form", "gold α", "gold β", "gold R²", "d*", "R*", "proxy α", "proxy β", "max gold gain", "final KL"]
    table = [[r["rm"], r["form"], r["fits"]["gold"]["alpha"], r["fits"]["gold"]["beta"], r["fits"]["gold"]["r2"],
              _fmt(r["fits"]["gold"]["d_star"]), _fmt(r["fits"]["gold"]["r_star"]), r["fits"].get("proxy", {}).get("alpha"),
              r["fits"].get("proxy", {}).get("beta"), r["max_gold_gain"], r["final_kl"]] for r in rows]
    parts = [R.section("Gold and proxy reward against d = √KL", R.figure(png, "gains over the initial policy; proxy rescaled by "
                                                                          "σ_gold/σ_proxy of the initial policy")),
             R.section("Fits (Gao et al. 2022)", R.paragraph("Best-of-N R = d(α − βd), RL R = d(α − β log d); d* is where the fitted "
                                                             "gold gain peaks. Over-optimises less: at equal d, the RM whose gold curve "
                                                             "stays higher (larger α, smaller β; later d*)."), R.table(header, table))]
    return R.write(path, R.page(title, parts))


# ---------------------------------------------------------------------------- the command


def run_overopt(base, rms: Sequence[str], names: Sequence[str] | None, output: str | Path, rl_method: str = "ppo",
                bon_n: Sequence[int] = (1, 2, 4, 8, 16, 32, 64), log=print, extra_curves: Sequence[Curve] = ()) -> dict:
    """For each RM: best-of-N and ``rl_method`` on the built-in task with reward ``rm:PATH`` (settings from
    ``base``, an OptimizeConfig), gold logged; then :func:`report` of their curves plus ``extra_curves``.
    Runs go to output/<name>/{bon,<method>}."""
    from rewardlab.optimize.run import optimize

    names = list(names) if names else [Path(p).name or f"rm{i}" for i, p in enumerate(rms)]
    if len(names) != len(rms):
        raise ValueError(f"{len(rms)} RMs but {len(names)} names")
    if len(set(names)) != len(names):
        raise ValueError(f"RM names must be distinct, got {names}")
    if base.prompts is not None:
        raise ValueError("overopt needs the built-in task's prompts (its gold reward); drop --prompts")
    output = Path(output)
    curves = []
    for name, path in zip(names, rms):
        spec = path if ":" in path and not Path(path).exists() else f"rm:{path}"
        bon_cfg = replace(base, method="bon", reward=[spec], reward_weight=[], gold=True, n=sorted(set(int(n) for n in bon_n)), overwrite=True,
                          output=str(output / name / "bon"))
        log(f"[overopt] {name}: best-of-N {bon_cfg.n}")
        curves.append(curve_from_bon(optimize(bon_cfg, log), name))
        rl_cfg = replace(base, method=rl_method, reward=[spec], reward_weight=[], gold=True, eval_every=base.eval_every or 1, overwrite=True,
                         output=str(output / name / rl_method))
        log(f"[overopt] {name}: {rl_method} for {rl_cfg.steps} steps")
        optimize(rl_cfg, log)
        curves.append(curve_from_log(Path(rl_cfg.output) / "log.jsonl", name))
    return report(curves + list(extra_curves), output)
