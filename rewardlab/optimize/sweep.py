"""The λ trade-off of ``mle_rl``: one short run per λ, then reference NLL against gold and proxy reward.

``mle_rl`` minimises L = NLL(references) − λ·(policy-gradient estimate of the reward). λ = 0 is plain MLE on the
references; as λ grows the reward term takes over and the run approaches RLOO on the reward alone. For each λ
the sweep runs ``mle_rl`` with the same settings and seed (``OUTPUT/lambda-<λ>/``) and reads the final ``eval``
line of its log (fixed held-out prompts and sampling seeds): ``ref_nll`` (mean token NLL of the held-out
references), ``gold``, ``proxy``, ``kl_k1`` (to the initial policy), ``length``. It writes

    sweep.png   left: gold vs reference NLL, right: proxy vs reference NLL, one point per λ (labelled), the
                initial policy as a star; lower NLL = closer to the references, higher = further
    sweep.json  the points and the initial policy's values
    sweep.md    the same as a table

``rewardlab optimize sweep`` is the command (options: :class:`rewardlab.config.SweepConfig` plus the ``mle_rl`` options).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence


COLUMNS = ("ref_nll", "gold", "proxy", "kl_k1", "length")


def run_name(lam: float) -> str:
    """``lambda-0.3``: the run folder of λ."""
    return f"lambda-{lam:g}"


def point_of(log_path: str | Path, lam: float) -> tuple[dict, dict]:
    """(final point, initial point) of one mle_rl run: the last and the step-0 ``eval`` lines of its log.jsonl."""
    evals = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    evals = [e for e in evals if e.get("split") == "eval"]
    if not evals or "ref_nll" not in evals[-1]:
        raise ValueError(f"{log_path}: no eval line with ref_nll (not an mle_rl run?)")
    pick = lambda e: {k: e.get(k) for k in COLUMNS}  # noqa: E731
    return {"lambda": lam, "step": evals[-1]["step"], **pick(evals[-1])}, pick(evals[0])


def lambda_sweep(base, lambdas: Sequence[float], output: str | Path, log=print) -> dict:
    """Run ``mle_rl`` (settings of ``base``, an OptimizeConfig) once per λ into output/lambda-<λ>/, then :func:`report`."""
    from rewardlab.optimize.run import optimize

    output = Path(output)
    started = time.time()
    points, initial = [], None
    for lam in lambdas:
        cfg = replace(base, method="mle_rl", mle_lambda=float(lam), output=str(output / run_name(lam)), overwrite=True,
                      resume=False)
        log(f"[sweep] mle_rl λ = {lam:g} for {cfg.steps} steps")
        optimize(cfg, log)
        point, first = point_of(Path(cfg.output) / "log.jsonl", float(lam))
        points.append(point)
        initial = initial or first
    return report(points, initial, output, seconds=round(time.time() - started, 1))


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.3f}"


def report(points: list[dict], initial: dict | None, output: str | Path, seconds: float | None = None) -> dict:
    """sweep.png, sweep.json and sweep.md in ``output`` from the final points (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    points = sorted(points, key=lambda p: p["lambda"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, key in zip(axes, ("gold", "proxy")):
        xs = [p["ref_nll"] for p in points if p[key] is not None]
        ys = [p[key] for p in points if p[key] is not None]
        ax.plot(xs, ys, "o-", color="tab:blue")
        for p in points:
            if p[key] is not None:
                ax.annotate(f"λ={p['lambda']:g}", (p["ref_nll"], p[key]), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if initial and initial.get(key) is not None:
            ax.plot([initial["ref_nll"]], [initial[key]], "*", color="tab:red", ms=12, label="initial policy")
            ax.legend(fontsize=8)
        ax.set_xlabel("reference NLL (nats per token, held-out references)")
        ax.set_ylabel(f"{key} reward (held-out prompts)")
        ax.set_title(f"mle_rl: {key} vs reference NLL as λ sweeps")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    png = output / "sweep.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    summary = {"figure": str(png), "initial": initial, "points": points, "seconds": seconds}
    (output / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = ["# mle_rl: the λ trade-off", "", f"![reference NLL vs gold and proxy]({png.name})", "",
             "| λ | ref NLL | gold | proxy | KL to initial | tokens |", "|---|---|---|---|---|---|"]
    if initial:
        lines.append(f"| initial policy | {_fmt(initial['ref_nll'])} | {_fmt(initial['gold'])} | {_fmt(initial['proxy'])} | 0 | "
                     f"{_fmt(initial['length'])} |")
    for p in points:
        lines.append(f"| {p['lambda']:g} | {_fmt(p['ref_nll'])} | {_fmt(p['gold'])} | {_fmt(p['proxy'])} | {_fmt(p['kl_k1'])} | "
                     f"{_fmt(p['length'])} |")
    (output / "sweep.md").write_text("\n".join(lines) + "\n")
    return summary
