"""The study's outputs: results / summary files, plots, the findings written from the numbers, report.md and report.html.

report.html is built with ``rewardlab.report`` from the same blocks as report.md (``report_blocks``).

Everything here reads the per-run results (``runs/<id>/result.json`` + ``test_rewards.npy``) through
plain dicts and arrays; nothing trains. The report's claims are generated from the measured numbers
(``findings``): a published claim, what the study measured, and a verdict that follows a fixed rule
(stated with the numbers), whichever way it falls.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from rewardlab import report as rep
from rewardlab.analysis.study_metrics import DIFF_METRICS, mean_ci

PLOTS = {"accuracy_vs_noise": "Accuracy against the gold and against the labels across the grid (x: the first of ε, λ, n that "
                              "varies; mean and 95% CI over seeds)",
         "calibration": "Calibration of σ(Δ) against the labels: ECE by ε, and reliability at the highest ε (seeds pooled)",
         "best_of_n": "Best-of-N: gold reward of the response each RM picks among N candidates (exact expectation), mean and 95% CI",
         "length": "Correlation of reward with response length (the gold's own correlation as a dashed line)"}
ROBUST_LOSSES = ("label_smoothing", "robust")


def fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:+.{digits}f}" if isinstance(x, float) and x < 0 else f"{x:.{digits}f}"


def fmt_p(p) -> str:
    """A p-value: 3 decimals, or "< 0.001"."""
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def fmt_ci(row: dict, col: str, digits: int = 3) -> str:
    m, lo, hi = row.get(col), row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
    if m is None:
        return "–"
    if lo is None:
        return fmt(m, digits)
    return f"{fmt(m, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


# --------------------------------------------------------------------------- files


def write_csv(path: Path, rows: list[dict]) -> Path:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    return path


def write_json(path: Path, obj) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")
    tmp.replace(path)
    return path


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


# --------------------------------------------------------------------------- grid helpers


def main_cell(summary: list[dict]) -> tuple[float, int]:
    """(λ, n) the single-number findings are read at: the smallest length bias and the largest size."""
    return min(r["length_bias"] for r in summary), max(r["train_size"] for r in summary)


def cell(summary: list[dict], loss: str, eps: float, lam: float, n: int) -> dict | None:
    for r in summary:
        if r["loss"] == loss and r["flip_rate"] == eps and r["length_bias"] == lam and r["train_size"] == n:
            return r
    return None


def losses_of(summary: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["loss"] for r in summary))


def bon_ns(summary: list[dict]) -> list[int]:
    return sorted({int(k[4:]) for r in summary for k in r if k.startswith("bon_") and "_ci_" not in k})


def loss_colors(losses: list[str]) -> dict:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(losses)}


# --------------------------------------------------------------------------- plots


def _errorbar(ax, x, rows, col, **kw):
    y = np.array([np.nan if r is None or r.get(col) is None else r[col] for r in rows], float)
    lo = np.array([np.nan if r is None or r.get(f"{col}_ci_low") is None else r[f"{col}_ci_low"] for r in rows], float)
    hi = np.array([np.nan if r is None or r.get(f"{col}_ci_high") is None else r[f"{col}_ci_high"] for r in rows], float)
    err = np.vstack([y - lo, hi - y])
    err = np.where(np.isnan(err), 0.0, err)
    ax.errorbar(x, y, yerr=err, capsize=3, marker="o", ms=4, lw=1.5, **kw)


AXES = {"flip_rate": "flip rate ε", "length_bias": "length bias λ", "train_size": "labelled responses n"}


def x_axis(summary: list[dict]) -> str:
    """The grid axis accuracy is plotted against: the first of ε, λ, n with several values (else ε)."""
    for key in AXES:
        if len({r[key] for r in summary}) > 1:
            return key
    return "flip_rate"


def plot_accuracy_vs_noise(summary: list[dict], path: Path, has_gold: bool) -> Path:
    """Accuracy (vs gold, vs labels) against ``x_axis``; one row of panels per combination of the other axes (≤ 4)."""
    import matplotlib.pyplot as plt

    losses, colors = losses_of(summary), loss_colors(losses_of(summary))
    xkey = x_axis(summary)
    others = [k for k in AXES if k != xkey]
    combos = sorted({tuple(r[k] for k in others) for r in summary})[:4]
    cols = ["accuracy_gold", "accuracy_labels"] if has_gold else ["accuracy_labels"]
    titles = {"accuracy_gold": "accuracy vs gold preferences", "accuracy_labels": "accuracy vs the (noisy) labels"}
    short = {"flip_rate": "ε", "length_bias": "λ", "train_size": "n"}
    fig, axes = plt.subplots(len(combos), len(cols), figsize=(5.2 * len(cols), 3.6 * len(combos)), squeeze=False)
    xs = sorted({r[xkey] for r in summary})
    log_x = xkey == "train_size" and len(xs) > 1
    span = (np.log(max(xs)) - np.log(min(xs))) if log_x else (max(xs) - min(xs))
    width = (span or 1.0) * 0.012
    for i, combo in enumerate(combos):
        fixed = dict(zip(others, combo))
        for j, col in enumerate(cols):
            ax = axes[i][j]
            for k, loss in enumerate(losses):
                rows = [next((r for r in summary if r["loss"] == loss and r[xkey] == x and all(r[o] == v for o, v in fixed.items())), None)
                        for x in xs]
                shift = (k - (len(losses) - 1) / 2) * width
                x = np.exp(np.log(xs) + shift) if log_x else np.array(xs, float) + shift
                _errorbar(ax, x, rows, col, color=colors[loss], label=loss)
            ax.set_title(f"{titles[col]}\n" + ", ".join(f"{short[o]} = {v:g}" for o, v in fixed.items()), fontsize=10)
            if log_x:
                ax.set_xscale("log")
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
            ax.set_xlabel(AXES[xkey])
            ax.set_ylabel("accuracy")
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_calibration(summary: list[dict], reliability: dict, path: Path) -> Path:
    """Left: ECE vs labels per loss and ε (bars, CI); right: reliability diagram at the highest ε."""
    import matplotlib.pyplot as plt

    losses, colors = losses_of(summary), loss_colors(losses_of(summary))
    lam, n = main_cell(summary)
    eps_all = sorted({r["flip_rate"] for r in summary})
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    w = 0.8 / len(losses)
    for k, loss in enumerate(losses):
        rows = [cell(summary, loss, e, lam, n) for e in eps_all]
        y = [r["ece_labels"] if r and r.get("ece_labels") is not None else np.nan for r in rows]
        lo = [r["ece_labels_ci_low"] if r and r.get("ece_labels_ci_low") is not None else v for r, v in zip(rows, y)]
        hi = [r["ece_labels_ci_high"] if r and r.get("ece_labels_ci_high") is not None else v for r, v in zip(rows, y)]
        x = np.arange(len(eps_all)) + (k - (len(losses) - 1) / 2) * w
        a1.bar(x, y, width=w, color=colors[loss], label=loss)
        a1.errorbar(x, y, yerr=[np.array(y) - np.array(lo), np.array(hi) - np.array(y)], fmt="none", ecolor="black", capsize=2, lw=1)
    a1.set_xticks(range(len(eps_all)), [f"ε = {e:g}" for e in eps_all])
    a1.set_ylabel("ECE of σ(Δ) vs labels (lower is better)")
    a1.set_title(f"expected calibration error (λ = {lam:g}, n = {n})", fontsize=10)
    a1.legend(fontsize=8)
    a1.grid(axis="y", alpha=0.3)
    a2.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    for loss in losses:
        rc = reliability.get(loss)
        if rc:
            a2.plot(rc["mean_prob"], rc["frequency"], marker="o", ms=3, color=colors[loss], label=loss)
    a2.set_xlim(0, 1)
    a2.set_ylim(0, 1)
    a2.set_xlabel("predicted P(first wins) = σ(Δ)")
    a2.set_ylabel("observed frequency in the labels")
    a2.set_title(f"reliability at ε = {max(eps_all):g}, λ = {lam:g} (seeds pooled)", fontsize=10)
    a2.legend(fontsize=8, loc="upper left")
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_best_of_n(summary: list[dict], reference: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    losses, colors = losses_of(summary), loss_colors(losses_of(summary))
    lam, n = main_cell(summary)
    eps_all = sorted({r["flip_rate"] for r in summary})
    lams = sorted({r["length_bias"] for r in summary})
    panels = [(e, lam) for e in eps_all] + [(e, l2) for l2 in lams if l2 != lam for e in eps_all]
    panels = panels[:6]
    ns = bon_ns(summary)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.9), squeeze=False)
    for ax, (eps, lb) in zip(axes[0], panels):
        oracle = reference.get("bon_oracle", {})
        if oracle:
            ax.plot(ns, [oracle[str(k)] for k in ns], color="black", ls="--", lw=1, label="oracle (pick by gold)")
        for loss in losses:
            r = cell(summary, loss, eps, lb, n)
            if r is None:
                continue
            y = np.array([r[f"bon_{k}"] for k in ns], float)
            lo = np.array([r.get(f"bon_{k}_ci_low") if r.get(f"bon_{k}_ci_low") is not None else r[f"bon_{k}"] for k in ns], float)
            hi = np.array([r.get(f"bon_{k}_ci_high") if r.get(f"bon_{k}_ci_high") is not None else r[f"bon_{k}"] for k in ns], float)
            ax.plot(ns, y, marker="o", ms=3, color=colors[loss], label=loss)
            ax.fill_between(ns, lo, hi, color=colors[loss], alpha=0.12)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(k) for k in ns])
        ax.set_xlabel("N (candidates)")
        ax.set_ylabel("gold reward of the pick")
        ax.set_title(f"best-of-N, ε = {eps:g}, λ = {lb:g}, n = {n}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_length(summary: list[dict], reference: dict, path: Path) -> Path:
    import matplotlib.pyplot as plt

    losses, colors = losses_of(summary), loss_colors(losses_of(summary))
    _, n = main_cell(summary)
    cells = sorted({(r["length_bias"], r["flip_rate"]) for r in summary})
    fig, ax = plt.subplots(figsize=(max(7.5, 1.4 * len(cells) + 4.5), 4.0))
    w = 0.8 / len(losses)
    for k, loss in enumerate(losses):
        rows = [cell(summary, loss, e, lam, n) for lam, e in cells]
        y = [r["length_corr"] if r and r.get("length_corr") is not None else np.nan for r in rows]
        lo = [r["length_corr_ci_low"] if r and r.get("length_corr_ci_low") is not None else v for r, v in zip(rows, y)]
        hi = [r["length_corr_ci_high"] if r and r.get("length_corr_ci_high") is not None else v for r, v in zip(rows, y)]
        x = np.arange(len(cells)) + (k - (len(losses) - 1) / 2) * w
        ax.bar(x, y, width=w, color=colors[loss], label=loss)
        ax.errorbar(x, y, yerr=[np.array(y) - np.array(lo), np.array(hi) - np.array(y)], fmt="none", ecolor="black", capsize=2, lw=1)
    if reference.get("gold_length_corr") is not None:
        ax.axhline(reference["gold_length_corr"], color="black", ls="--", lw=1, label="gold reward")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(cells)), [f"λ = {lam:g}\nε = {e:g}" for lam, e in cells])
    ax.set_ylabel("Pearson ρ(reward, length in words)")
    ax.set_title(f"reward–length correlation on the test responses (n = {n})", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_plots(folder: Path, summary: list[dict], reference: dict, reliability: dict, has_gold: bool) -> dict:
    """The report's PNGs (``PLOTS``) in ``folder``; returns name → path."""
    import matplotlib

    matplotlib.use("Agg")
    out = {"accuracy_vs_noise": plot_accuracy_vs_noise(summary, folder / "accuracy_vs_noise.png", has_gold),
           "calibration": plot_calibration(summary, reliability, folder / "calibration.png")}
    if has_gold and bon_ns(summary):
        out["best_of_n"] = plot_best_of_n(summary, reference, folder / "best_of_n.png")
    out["length"] = plot_length(summary, reference, folder / "length.png")
    return out


# --------------------------------------------------------------------------- findings


def _verdict_from(seed_lo, seed_hi, pooled_lo, pooled_hi, better_if_positive: bool = True) -> str:
    """Fixed rule: 'supported' if the seed-level CI excludes 0 in the claimed direction; 'supported on
    these runs only' if only the pooled paired CI does; 'contradicted' (…) likewise the other way;
    otherwise 'not resolved'."""
    sign = 1 if better_if_positive else -1

    def side(lo, hi):
        if lo is None or hi is None:
            return 0
        return 1 if sign * lo > 0 and sign * hi > 0 else (-1 if sign * lo < 0 and sign * hi < 0 else 0)

    s, p = side(seed_lo, seed_hi), side(pooled_lo, pooled_hi)
    if s == 1:
        return "supported"
    if s == -1:
        return "contradicted"
    if p == 1:
        return "supported on these runs only (pooled paired test; the seed-level CI includes 0)"
    if p == -1:
        return "contradicted on these runs only (pooled paired test; the seed-level CI includes 0)"
    return "not resolved (both intervals include 0)"


def noise_finding(summary: list[dict], baseline: str | None) -> dict | None:
    """Label smoothing / robust BT against BT at the highest flip rate (accuracy vs gold, calibration)."""
    eps_all = sorted({r["flip_rate"] for r in summary})
    present = [x for x in ROBUST_LOSSES if x in losses_of(summary)]
    if baseline != "bt" or not present or max(eps_all) < 0.1:
        return None
    lam, n = main_cell(summary)
    eps = max(eps_all)
    base = cell(summary, "bt", eps, lam, n)
    acc_col = "accuracy_gold" if base.get("accuracy_gold") is not None else "accuracy_labels"
    what = "gold" if acc_col == "accuracy_gold" else "held-out human labels"
    labels = "the noisy labels" if acc_col == "accuracy_gold" else "the held-out labels"
    lines, verdicts = [], {}
    for name in present:
        r = cell(summary, name, eps, lam, n)
        if r is None:
            continue
        v = _verdict_from(r.get(f"diff_{acc_col}_ci_low"), r.get(f"diff_{acc_col}_ci_high"),
                          r.get(f"pooled_diff_{acc_col}_ci_low"), r.get(f"pooled_diff_{acc_col}_ci_high"))
        lo, hi = r.get("diff_ece_labels_ci_low"), r.get("diff_ece_labels_ci_high")
        cal = ("lower ECE than bt (better calibrated)" if hi is not None and hi < 0 else
               "higher ECE than bt (worse calibrated)" if lo is not None and lo > 0 else "ECE difference not resolved")
        verdicts[name] = f"accuracy claim {v}; calibration vs {labels}: {cal} (Δ ECE {fmt(r.get('diff_ece_labels'))} {_ci(r, 'diff_ece_labels')})"
        p = r.get("mcnemar_p")
        lines.append(
            f"{name}: accuracy vs {what} {fmt(r[acc_col])} against bt {fmt(base[acc_col])}, difference "
            f"{fmt(r.get(f'diff_{acc_col}'))} (95% CI over {r['n_seeds']} seeds {_ci(r, f'diff_{acc_col}')}; pooled paired "
            f"bootstrap over seeds × test pairs {_ci(r, f'pooled_diff_{acc_col}')}, McNemar p {'' if fmt_p(p).startswith('<') else '= '}{fmt_p(p)}); ECE against {labels} "
            f"{fmt(r.get('ece_labels'))} vs {fmt(base.get('ece_labels'))}, Brier {fmt(r.get('brier_labels'))} vs "
            f"{fmt(base.get('brier_labels'))} → accuracy claim {v}.")
    clean = min(eps_all)
    drops = []
    for name in ["bt", *present]:
        r0, r1 = cell(summary, name, clean, lam, n), cell(summary, name, eps, lam, n)
        if r0 and r1 and r0.get(acc_col) is not None:
            drops.append(f"{name} {fmt(r0[acc_col])} → {fmt(r1[acc_col])} ({fmt(100 * (r1[acc_col] - r0[acc_col]), 1)} points)")
    if drops:
        lines.append(f"Accuracy vs {what} from ε = {clean:g} to ε = {eps:g}: " + "; ".join(drops) + ".")
    return {"id": "noise_robust_losses",
            "title": f"Label smoothing / robust BT vs BT under {eps:.0%} flipped labels",
            "claim": "Label smoothing (Wang et al. 2024, Secrets of RLHF Part II; cDPO, Mitchell 2023) and the unbiased "
                     "robust loss (Chowdhury et al. 2024, Provably Robust DPO) are reported to make preference models less "
                     "hurt by flipped labels than plain Bradley–Terry.",
            "setting": f"ε = {eps:g}, λ = {lam:g}, n = {n} labelled responses",
            "result": lines, "verdicts": verdicts}


def _ci(row: dict, col: str) -> str:
    lo, hi = row.get(f"{col}_ci_low"), row.get(f"{col}_ci_high")
    return "–" if lo is None else f"[{fmt(lo)}, {fmt(hi)}]"


def overoptimization_finding(summary: list[dict], per_seed_bon: dict, reference: dict) -> dict | None:
    """Does best-of-N gold peak and fall as N grows (Gao et al. 2022)? Read per (loss, ε, λ) at the largest n.

    Rule: peak N* of the mean curve; fall = E_Nmax − E_N*, with its t-interval over seeds; 'peaks and
    falls' when N* < Nmax and the interval lies below 0.
    """
    ns = bon_ns(summary)
    if not ns or not per_seed_bon:
        return None
    _, n = main_cell(summary)
    nmax = ns[-1]
    rows, falling, peaked = [], [], []
    for r in summary:
        if r["train_size"] != n:
            continue
        curve = [r[f"bon_{k}"] for k in ns]
        peak = ns[int(np.argmax(curve))]
        seeds = per_seed_bon.get((r["loss"], r["flip_rate"], r["length_bias"], r["train_size"]), {})
        d = mean_ci([s[str(nmax)] - s[str(peak)] for s in seeds.values()])
        rows.append((r["loss"], r["flip_rate"], r["length_bias"], peak, max(curve), curve[-1], d))
        if peak < nmax:
            peaked.append(rows[-1])
            if d["ci_high"] is not None and d["ci_high"] < 0:
                falling.append(rows[-1])
    lines = []
    oracle = reference.get("bon_oracle", {})
    if oracle:
        lines.append(f"Oracle (pick by gold): {fmt(oracle[str(ns[0])])} at N = {ns[0]} → {fmt(oracle[str(nmax)])} at N = {nmax}.")
    mono = [x for x in rows if x[3] == nmax]
    if mono:
        gains = [x[5] - oracle.get(str(ns[0]), 0.0) for x in mono] if oracle else []
        lines.append(f"{len(mono)} of {len(rows)} (loss, ε, λ) cells rise all the way to N = {nmax}"
                     + (f" (gold gain at N = {nmax} over N = 1: {fmt(min(gains))} to {fmt(max(gains))})." if gains else "."))
    for loss, eps, lam, peak, top, last, d in peaked:
        sig = "falls significantly" if d["ci_high"] is not None and d["ci_high"] < 0 else "the fall is within noise"
        lines.append(f"{loss} at ε = {eps:g}, λ = {lam:g}: peaks at N = {peak} (gold {fmt(top)}) and ends at {fmt(last)} for "
                     f"N = {nmax}: change {fmt(d['mean'])} (95% CI over seeds {_fmt_pair(d)}) — {sig}.")
    verdict = (f"over-optimisation seen in {len(falling)} of {len(rows)} cells" if falling else
               f"no significant over-optimisation up to N = {nmax} (KL ≈ {math.log(nmax) - (nmax - 1) / nmax:.2f} nats)")
    return {"id": "best_of_n_overoptimization",
            "title": "Best-of-N against a proxy RM: does the gold reward peak and fall as N grows?",
            "claim": "Gao, Schulman & Hilton 2022 (Scaling Laws for Reward Model Overoptimization): optimising a proxy RM with "
                     "best-of-N first raises then lowers the gold reward, the earlier the weaker the RM (less data, smaller model).",
            "setting": f"n = {n} labelled responses, N = {ns[0]} … {nmax} from {nmax} candidates per prompt",
            "result": lines, "verdicts": {"overall": verdict}}


def _fmt_pair(d: dict) -> str:
    return "–" if d.get("ci_low") is None else f"[{fmt(d['ci_low'])}, {fmt(d['ci_high'])}]"


def length_finding(summary: list[dict], reference: dict) -> dict | None:
    """Reward–length correlation against the gold's (Singhal et al. 2023), by length bias λ."""
    vals = [r for r in summary if r.get("length_corr") is not None]
    if not vals:
        return None
    lines = []
    gold = reference.get("gold_length_corr")
    for lam in sorted({r["length_bias"] for r in vals}):
        sel = [r for r in vals if r["length_bias"] == lam]
        lo, hi = min(sel, key=lambda r: r["length_corr"]), max(sel, key=lambda r: r["length_corr"])
        lines.append(f"λ = {lam:g}: ρ(reward, length) from {fmt(lo['length_corr'])} ({lo['loss']}, ε = {lo['flip_rate']:g}) to "
                     f"{fmt(hi['length_corr'])} ({hi['loss']}, ε = {hi['flip_rate']:g})"
                     + (f"; the gold's own is {fmt(gold)}." if gold is not None else "."))
    lams = sorted({r["length_bias"] for r in vals})
    verdict = "–"
    if len(lams) > 1:
        m0 = float(np.mean([r["length_corr"] for r in vals if r["length_bias"] == lams[0]]))
        m1 = float(np.mean([r["length_corr"] for r in vals if r["length_bias"] == lams[-1]]))
        verdict = (f"mean ρ over losses moves from {fmt(m0)} at λ = {lams[0]:g} to {fmt(m1)} at λ = {lams[-1]:g}: "
                   + ("the RMs pick up the labelers' length bias" if m1 > m0 + 0.05 else "no clear pick-up of the length bias"))
    elif gold is not None:
        m0 = float(np.mean([r["length_corr"] for r in vals]))
        verdict = f"mean ρ over cells {fmt(m0)} vs gold {fmt(gold)}"
    return {"id": "length", "title": "Reward and length",
            "claim": "Singhal et al. 2023 (A Long Way to Go: Investigating Length Correlations in RLHF): reward models learn "
                     "length as a proxy for quality when the labels favour longer answers.",
            "setting": "λ = labeler length bias; the gold itself prefers ~20 words",
            "result": lines, "verdicts": {"overall": verdict}}


def forms_finding(summary: list[dict]) -> dict | None:
    """Which loss (data form) is most accurate per ε under the equal-response budget."""
    lam, n = main_cell(summary)
    col = "accuracy_gold" if summary[0].get("accuracy_gold") is not None else "accuracy_labels"
    lines = []
    for eps in sorted({r["flip_rate"] for r in summary}):
        sel = [r for r in summary if r["flip_rate"] == eps and r["length_bias"] == lam and r["train_size"] == n and r.get(col) is not None]
        if len(sel) < 2:
            continue
        sel.sort(key=lambda r: -r[col])
        lines.append(f"ε = {eps:g}: " + ", ".join(f"{r['loss']} ({r['data_form']}) {fmt(r[col])}" for r in sel) + ".")
    if not lines:
        return None
    return {"id": "forms", "title": "Losses and data forms under an equal budget of labelled responses",
            "claim": "(no single published claim: a ranking of the losses on this task)",
            "setting": f"λ = {lam:g}, n = {n} labelled responses, ranked by {col}", "result": lines, "verdicts": {}}


def findings(summary: list[dict], baseline: str | None, per_seed_bon: dict, reference: dict) -> list[dict]:
    out = [noise_finding(summary, baseline), overoptimization_finding(summary, per_seed_bon, reference),
           length_finding(summary, reference), forms_finding(summary)]
    return [f for f in out if f is not None]


# --------------------------------------------------------------------------- tables


def summary_table(summary: list[dict], has_gold: bool, baseline: str | None) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the summary table shown in the console and the reports."""
    lams = {r["length_bias"] for r in summary}
    sizes = {r["train_size"] for r in summary}
    ns = bon_ns(summary)
    header = ["loss", "form", "ε"] + (["λ"] if len(lams) > 1 else []) + (["n"] if len(sizes) > 1 else [])
    acc = "accuracy_gold" if has_gold else "accuracy_labels"
    header += ["acc gold [95% CI]"] if has_gold else []
    header += ["acc labels", "ECE labels", "Brier labels"]
    header += ["Spearman gold"] if has_gold else []
    header += ["ρ(r, len)", "reward std"]
    header += [f"BoN@{ns[-1]} gold"] if has_gold and ns else []
    if baseline:
        header += [f"Δacc vs {baseline} [95% CI]"]
    rows = []
    for r in summary:
        row = [r["loss"], r["data_form"], f"{r['flip_rate']:g}"]
        row += [f"{r['length_bias']:g}"] if len(lams) > 1 else []
        row += [str(r["train_size"])] if len(sizes) > 1 else []
        row += [fmt_ci(r, "accuracy_gold")] if has_gold else []
        row += [fmt(r.get("accuracy_labels")), fmt(r.get("ece_labels")), fmt(r.get("brier_labels"))]
        row += [fmt(r.get("spearman_gold"))] if has_gold else []
        row += [fmt(r.get("length_corr")), fmt(r.get("reward_std"))]
        row += [fmt_ci(r, f"bon_{ns[-1]}")] if has_gold and ns else []
        if baseline:
            row += ["–" if r["loss"] == baseline else fmt_ci(r, f"diff_{acc}")]
        rows.append(row)
    return header, rows


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(out)


def diff_table(summary: list[dict], baseline: str, has_gold: bool) -> tuple[list[str], list[list[str]]]:
    cols = [c for c in DIFF_METRICS if has_gold or "gold" not in c]
    header = ["loss", "ε", "λ", "n"] + [f"Δ {c}" for c in cols] + ["pooled Δacc [95% CI]", "McNemar p"]
    acc = "accuracy_gold" if has_gold else "accuracy_labels"
    rows = []
    for r in summary:
        if r["loss"] == baseline:
            continue
        rows.append([r["loss"], f"{r['flip_rate']:g}", f"{r['length_bias']:g}", str(r["train_size"])]
                    + [fmt_ci(r, f"diff_{c}") for c in cols] + [fmt_ci(r, f"pooled_diff_{acc}"), fmt_p(r.get("mcnemar_p"))])
    return header, rows


# --------------------------------------------------------------------------- report


def report_blocks(meta: dict, summary: list[dict], found: list[dict], plots: dict, has_gold: bool, baseline: str | None) -> list[tuple]:
    """The report as blocks: ("h1"|"h2"|"h3"|"p"|"ul", text or items) | ("table", header, rows) | ("img", name, caption)."""
    b: list[tuple] = [("h1", f"rewardlab loss study — {meta['title']}")]
    b.append(("p", meta["setup"]))
    b.append(("ul", meta["details"]))
    b.append(("h2", "Findings"))
    for f in found:
        b.append(("h3", f["title"]))
        b.append(("p", f"Published claim: {f['claim']}"))
        b.append(("p", f"Setting: {f['setting']}."))
        b.append(("ul", f["result"]))
        if f["verdicts"]:
            b.append(("p", "Verdict: " + "; ".join(f"{k}: {v}" for k, v in f["verdicts"].items()) + "."))
    b.append(("h2", "Summary (mean over seeds, 95% CI)"))
    b.append(("table", *summary_table(summary, has_gold, baseline)))
    if baseline:
        b.append(("h2", f"Paired differences against {baseline}"))
        b.append(("p", "Per-seed differences (same training texts, same test set) with a Student-t 95% interval over seeds; "
                       "accuracy also pooled over seeds × test pairs with a paired bootstrap and McNemar's test."))
        b.append(("table", *diff_table(summary, baseline, has_gold)))
    b.append(("h2", "Plots"))
    for name, path in plots.items():
        b.append(("img", Path(path).name, PLOTS[name]))
    b.append(("h2", "Files"))
    b.append(("ul", ["results.json — config, every run's metrics, summary and findings", "results.csv — one row per run",
                     "summary.csv — one row per (loss, ε, λ, n): mean and CI of every metric, differences against the baseline",
                     "rewardlab_config.yaml — `rewardlab study --config rewardlab_config.yaml` reproduces this study",
                     "runs/<run>/result.json, test_rewards.npy — per-run results (a finished run is not redone)"]))
    return b


def render_md(blocks: list[tuple]) -> str:
    out = []
    for blk in blocks:
        kind = blk[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + blk[1])
        elif kind == "p":
            out.append(blk[1])
        elif kind == "ul":
            out.append("\n".join(f"- {x}" for x in blk[1]))
        elif kind == "table":
            out.append(md_table(blk[1], blk[2]))
        elif kind == "img":
            out.append(f"![{blk[2]}]({blk[1]})\n\n*{blk[2]}*")
    return "\n\n".join(out) + "\n"


def render_html(blocks: list[tuple], folder: Path) -> str:
    """The blocks as one self-contained page of ``rewardlab.report``: the h1 is the page title, each h2 / h3
    opens a section holding the blocks up to the next heading, and the plots are embedded from ``folder``."""
    title, intro, sections = "rewardlab study", [], []
    for kind, *args in blocks:
        if kind == "h1":
            title = args[0]
        elif kind in ("h2", "h3"):
            sections.append((args[0], int(kind[1]), []))
        else:
            (sections[-1][2] if sections else intro).append(_html_block(kind, args, folder))
    return rep.page(title, intro + [rep.section(heading, *parts, level=level) for heading, level, parts in sections])


def _html_block(kind: str, args: list, folder: Path) -> str:
    if kind == "p":
        return rep.paragraph(args[0])
    if kind == "ul":
        return rep.bullets(args[0])
    if kind == "table":
        return rep.table(*args)
    if kind == "img":
        return rep.figure(folder / args[0], args[1])
    raise ValueError(f"unknown report block {kind!r}; known: h1, h2, h3, p, ul, table, img")
