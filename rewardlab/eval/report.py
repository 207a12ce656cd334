"""A self-contained HTML report of a reward model's evaluation, with its plots as PNG files.

``write_report`` writes into ``out_dir``:
    report.html                 one file, no external resources: CSS inline, plots as base64 <img>
    reliability.png             symmetrised reliability diagram of σ(Δ) (see metrics.pair_probabilities)
    reward_distributions.png    histograms of chosen and rejected rewards
    margin_histogram.png        histogram of Δ = r_chosen − r_rejected, correct (Δ > 0) vs wrong
    reward_vs_length.png        reward against response length (when lengths are given)
    accuracy_by_strength.png    accuracy per preference-strength bucket (when strengths are given)

``write_label_report`` (good/bad labels) writes report.html, label_distributions.png (rewards per label
with the threshold) and roc_curve.png. Both pages can carry a comparison table of several models and
extra tables (paired differences, RewardBench sections) given as lists of row dicts.

The page itself (skeleton, CSS, tables, cards, embedded figures) is built with ``rewardlab.report``.
Plots use matplotlib's object API on the Agg canvas (no pyplot, no global backend switch), so the
report can be written from any thread or a headless server.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rewardlab import report as rep
from rewardlab.eval import metrics as M
from rewardlab.report import flatten_metrics, format_value  # also this module's public names, as before

__all__ = ["write_report", "write_label_report", "flatten_metrics", "format_value", "PLOT_FILES", "LABEL_PLOT_FILES"]

PLOT_FILES = {
    "reliability": "reliability.png",
    "distributions": "reward_distributions.png",
    "margins": "margin_histogram.png",
    "length": "reward_vs_length.png",
    "strength": "accuracy_by_strength.png",
}
LABEL_PLOT_FILES = {"labels": "label_distributions.png", "roc": "roc_curve.png"}  # write_label_report

_CHOSEN, _REJECTED, _GOOD, _BAD, _INK = "#2b7bba", "#e07b39", "#3a9d5d", "#c8453c", "#333333"
_MAX_SCATTER = 4000  # points per group drawn in the length scatter (a fixed-seed subsample above)

# Direction of "better" by the last part of a metric's name; used to mark the best model in comparisons.
_HIGHER_BETTER = ("accuracy", "auc", "f1", "precision", "recall", "score", "spearman", "agreement")
_LOWER_BETTER = ("loss", "ece", "brier", "nll")


# --------------------------------------------------------------------------- comparison


def _direction(key: str) -> int:
    """+1 if higher is better, −1 if lower is better, 0 if unknown (judged from the last name part)."""
    last = key.rsplit(".", 1)[-1].lower()
    if last.startswith("n_") or last in ("n", "ties") or "ci_" in last or "threshold" in last:
        return 0
    if any(w in last for w in _LOWER_BETTER):
        return -1
    if any(w in last for w in _HIGHER_BETTER):
        return 1
    return 0


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str, np.integer, np.floating, np.bool_))


# --------------------------------------------------------------------------- plots


def _figure(width: float = 6.0, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(alpha=0.25, linewidth=0.6)
    ax.set_axisbelow(True)


def _plot_reliability(rc: np.ndarray, rr: np.ndarray, path: Path, temperature: float | None = None) -> None:
    cal = M.pairwise_calibration(rc, rr, n_bins=10, symmetrize=True)
    curve = cal["reliability"]
    n = max(sum(curve["counts"]), 1)

    def sizes(counts):  # marker area ∝ share of the pairs in the bin, so near-empty bins do not dominate
        return 12 + 220 * np.asarray(counts, dtype=float) / n

    fig = _figure(6.0, 5.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1, label="perfect calibration")
    top.plot(curve["mean_prob"], curve["frequency"], color=_CHOSEN, linewidth=1.2, label="reward model, σ(Δ)")
    top.scatter(curve["mean_prob"], curve["frequency"], s=sizes(curve["counts"]), color=_CHOSEN, zorder=3)
    width = 1.0 / curve["n_bins"]
    bottom.bar(curve["bin_centers"], curve["counts"], width=width * 0.9, color="#9bbcd8", label="σ(Δ)")
    if temperature is not None:
        scaled = M.pairwise_calibration(rc, rr, n_bins=10, symmetrize=True, temperature=temperature)["reliability"]
        top.plot(scaled["mean_prob"], scaled["frequency"], color=_REJECTED, linewidth=1, alpha=0.8,
                 label=f"after temperature scaling, σ(Δ/T), T = {temperature:.3g}")
        top.scatter(scaled["mean_prob"], scaled["frequency"], s=sizes(scaled["counts"]), marker="s", color=_REJECTED,
                    zorder=3)
        bottom.step(np.asarray(scaled["bin_centers"]), scaled["counts"], where="mid", color=_REJECTED, linewidth=1,
                    label="σ(Δ/T)")
        bottom.legend(frameon=False, fontsize=7, loc="upper left")
    top.set_ylabel("observed frequency (A wins)")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_title(f"Reliability of σ(Δ), pairs counted both ways — ECE {cal['ece']:.3f}")
    top.legend(loc="upper left", frameon=False, fontsize=8)
    _style(top)
    bottom.set_xlabel("predicted probability σ(r_A − r_B)")
    bottom.set_ylabel("count")
    _style(bottom)
    fig.savefig(path)


def _plot_distributions(rc: np.ndarray, rr: np.ndarray, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    edges = np.histogram_bin_edges(np.concatenate([rc, rr]), bins=40)
    ax.hist(rr, bins=edges, alpha=0.55, color=_REJECTED, label=f"rejected (mean {rr.mean():.3g})")
    ax.hist(rc, bins=edges, alpha=0.55, color=_CHOSEN, label=f"chosen (mean {rc.mean():.3g})")
    ax.set_xlabel("reward")
    ax.set_ylabel("responses")
    ax.set_title("Rewards of chosen and rejected responses")
    ax.legend(frameon=False)
    _style(ax)
    fig.savefig(path)


def _plot_margins(rc: np.ndarray, rr: np.ndarray, path: Path) -> None:
    delta = rc - rr
    fig = _figure()
    ax = fig.add_subplot()
    edges = np.histogram_bin_edges(delta, bins=40)
    good, bad = delta[delta > 0], delta[delta <= 0]
    ax.hist(
        [good, bad],
        bins=edges,
        stacked=True,
        color=[_GOOD, _BAD],
        label=[f"correct, Δ > 0 ({len(good)})", f"wrong or tie, Δ ≤ 0 ({len(bad)})"],
    )
    ax.axvline(0.0, color=_INK, linewidth=1)
    ax.set_xlabel("Δ = r(chosen) − r(rejected)")
    ax.set_ylabel("pairs")
    ax.set_title(f"Reward margins — accuracy {np.mean(delta > 0):.3f}")
    ax.legend(frameon=False)
    _style(ax)
    fig.savefig(path)


def _subsample(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= _MAX_SCATTER else np.sort(rng.choice(n, size=_MAX_SCATTER, replace=False))


def _plot_length(rc, rr, lc, lr, path: Path, length_label: str = "response length") -> None:
    bias = M.length_bias(rc, rr, lc, lr)
    rng = np.random.default_rng(0)
    fig = _figure()
    ax = fig.add_subplot()
    for lengths, rewards, color, name in ((lr, rr, _REJECTED, "rejected"), (lc, rc, _CHOSEN, "chosen")):
        idx = _subsample(len(lengths), rng)
        ax.scatter(lengths[idx], rewards[idx], s=9, alpha=0.45, color=color, edgecolors="none", label=name)
    lengths, rewards = np.concatenate([lc, lr]), np.concatenate([rc, rr])
    if np.ptp(lengths) > 0:  # least-squares trend over all responses, drawn over the central 98% of lengths
        slope, intercept = np.polyfit(lengths, rewards, 1)
        xs = np.quantile(lengths, [0.01, 0.99])
        ax.plot(xs, slope * xs + intercept, color=_INK, linestyle="--", linewidth=1.2,
                label=f"trend ({slope:.3g} per unit length)")
    ax.set_xlabel(length_label)
    ax.set_ylabel("reward")
    ax.set_title(
        f"Reward vs length — Pearson {format_value(bias['pearson'])}, Spearman {format_value(bias['spearman'])}"
    )
    fig.legend(frameon=False, markerscale=2, loc="outside lower center", ncol=3)
    _style(ax)
    fig.savefig(path)


def _plot_strength(rc, rr, strength, path: Path) -> None:
    by = M.accuracy_by_strength(rc, rr, strength)
    acc = [np.nan if a is None else a for a in by["accuracy"]]
    overall = float(np.mean((rc - rr) > 0))
    fig = _figure()
    ax = fig.add_subplot()
    x = np.arange(len(acc))
    bars = ax.bar(x, acc, color=_CHOSEN, width=0.7)
    for bar, a, n in zip(bars, acc, by["n"]):
        label = f"{a:.2f}\nn={n}" if not np.isnan(a) else f"n={n}"
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, 0 if np.isnan(a) else a),
                    xytext=(0, 3), textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.axhline(0.5, color="#999999", linestyle="--", linewidth=1, label="chance")
    ax.axhline(overall, color=_GOOD, linewidth=1, label=f"overall {overall:.3f}")
    ax.set_xticks(x, by["labels"], rotation=30 if len(x) > 5 else 0)
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("preference strength" + (" (quantile bins)" if by["kind"] == "quantile" else ""))
    ax.set_ylabel("pairwise accuracy")
    ax.set_title("Accuracy by preference strength")
    fig.legend(frameon=False, loc="outside lower center", ncol=2)
    _style(ax)
    fig.savefig(path)


def _plot_label_distributions(rewards: np.ndarray, labels: np.ndarray, threshold: float | None, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    edges = np.histogram_bin_edges(rewards, bins=40)
    for value, color, name in ((0, _BAD, "bad (0)"), (1, _GOOD, "good (1)")):
        r = rewards[labels == value]
        if len(r):
            ax.hist(r, bins=edges, alpha=0.55, color=color, label=f"{name}: {len(r)}, mean {r.mean():.3g}")
    if threshold is not None:
        ax.axvline(threshold, color=_INK, linewidth=1.2, linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set_xlabel("reward")
    ax.set_ylabel("responses")
    ax.set_title("Rewards of good and bad responses")
    ax.legend(frameon=False)
    _style(ax)
    fig.savefig(path)


def _plot_roc(rewards: np.ndarray, labels: np.ndarray, path: Path) -> None:
    thresholds = np.unique(rewards)[::-1]  # one point per distinct reward, so tied rewards move together
    tp = np.array([np.sum((rewards >= t) & (labels == 1)) for t in thresholds])
    fp = np.array([np.sum((rewards >= t) & (labels == 0)) for t in thresholds])
    tpr = np.concatenate([[0.0], tp / max(labels.sum(), 1)])
    fpr = np.concatenate([[0.0], fp / max((1 - labels).sum(), 1)])
    auc = M.roc_auc(rewards, labels)
    fig = _figure(5.0, 4.6)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1, label="chance")
    ax.plot(fpr, tpr, color=_CHOSEN, label=f"reward model (AUC {format_value(auc)})")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title("ROC of reward as a good/bad classifier")
    ax.legend(frameon=False, loc="lower right")
    _style(ax)
    fig.savefig(path)


_CAPTIONS = {
    "reliability": "Predicted probability σ(r_A − r_B) against how often A is the preferred response, every pair "
    "counted in both orders (so the curve is symmetric about the centre); marker area ∝ pairs in the bin. Points "
    "under the diagonal: overconfident. With a fitted temperature T (fitted on a split; its held-out numbers are in "
    "the metrics table) the curve of σ(Δ/T) on all pairs is drawn too.",
    "distributions": "Rewards of the chosen and of the rejected responses on shared bins; separation between the two "
    "is what pairwise accuracy measures.",
    "margins": "Δ per pair; green pairs are ranked correctly, red ones wrong or tied (a tie counts as wrong).",
    "length": "Each response's reward against its length; a strong trend means the reward partly measures length.",
    "strength": "Accuracy within buckets of annotated preference strength; a good RM is more accurate on clearer "
    "preferences. n = pairs in the bucket.",
    "labels": "Rewards of responses labelled good and bad; the dashed line is the threshold used for accuracy, "
    "precision, recall and F1.",
    "roc": "True against false positive rate as the threshold sweeps over all rewards; the area under it is the "
    "chance that a good response outscores a bad one.",
}


# --------------------------------------------------------------------------- sections (rewardlab.report)


def _comparison_table(compare: Mapping[str, Mapping[str, Any]]) -> str:
    """Models as rows, scalar metrics as columns; the best value of a column with a known direction in bold."""
    flat = {name: flatten_metrics(m) for name, m in compare.items()}
    columns: list[str] = []
    for m in flat.values():
        columns += [k for k, v in m.items() if k not in columns and _is_scalar(v) and not isinstance(v, str)]
    rows = [[str(name)] + [m.get(col) for col in columns] for name, m in flat.items()]
    best: set[tuple[int, int]] = set()  # (row, column) of each column's best value
    for j, col in enumerate(columns, start=1):
        nums = [float(row[j]) for row in rows if rep.is_number(row[j]) and not math.isnan(float(row[j]))]
        d = _direction(col)
        if d and len(nums) > 1:
            top = max(nums) if d > 0 else min(nums)
            best |= {(i, j) for i, row in enumerate(rows) if rep.is_number(row[j]) and float(row[j]) == top}
    return rep.table(["model", *columns], rows, best=best)


def _pair_cards(rc: np.ndarray, rr: np.ndarray) -> str:
    acc = M.pairwise_accuracy(rc, rr)
    cal = M.pairwise_calibration(rc, rr)
    return rep.cards([
        ("pairs", str(acc["n"])),
        ("accuracy", f"{acc['accuracy']:.3f}"),
        ("ties", str(acc["ties"])),
        ("mean margin Δ", f"{acc['mean_margin']:.3g}"),
        ("BT loss", f"{M.pairwise_loss_bt(rc, rr):.3f}"),
        ("ECE (sym.)", f"{cal['ece']:.3f}"),
    ])


def _write_page(out: Path, title: str, subtitle: str, cards: str, plots: list[tuple[str, Path]],
                metrics: Mapping[str, Any], compare, tables, footer: str, extra: Sequence[str] = ()) -> Path:
    """The page both reports share: cards, comparison, extra tables, plots (captions from ``_CAPTIONS``),
    ``extra`` sections (HTML fragments, e.g. ``eval --explain``'s), metrics."""
    parts = [cards]
    if compare:
        parts.append(rep.section("Comparison", _comparison_table(compare)))
    parts += [rep.section(heading, rep.records_table(list(rows))) for heading, rows in (tables or {}).items()]
    parts.append(rep.section("Plots", rep.figures(*(rep.figure(path, _CAPTIONS[key]) for key, path in plots))))
    parts += list(extra)
    rows = list(flatten_metrics(metrics).items())
    parts.append(rep.section("Metrics", rep.table(["metric", "value"], rows, css_class="metrics") if rows
                             else rep.paragraph("No metrics given.")))
    return rep.write(out / "report.html", rep.page(title, parts, subtitle=subtitle, footer=footer))


def write_report(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    r_chosen,
    r_rejected,
    len_chosen=None,
    len_rejected=None,
    strength=None,
    title: str = "Reward model evaluation",
    compare: Mapping[str, Mapping[str, Any]] | None = None,
    subtitle: str | None = None,
    tables: Mapping[str, list[Mapping[str, Any]]] | None = None,
    temperature: float | None = None,
    length_label: str = "response length",
    extra: Sequence[str] = (),
) -> Path:
    """Write ``report.html`` and its PNG plots into ``out_dir``; return the path of the HTML file.

    Args:
        out_dir: folder to write into (created if missing; files of the same names are replaced).
        metrics: any (nested) dict of metric values, shown flattened ("a.b") in the metrics table.
        r_chosen, r_rejected: rewards (B,) of the pairs; the summary cards and plots are computed from them.
        len_chosen, len_rejected: response lengths (B,) (tokens or characters); both or neither.
            Given: the reward-vs-length scatter.
        strength: preference strength per pair (B,) (e.g. the data's ``margin``). Given: accuracy by strength.
        title: the page title.
        compare: model name → metrics dict; given: a comparison table, models as rows, with the best
            value of each column whose direction is known (accuracy up, loss / ECE / Brier down) in bold.
        subtitle: a line under the title (e.g. the data and layout).
        tables: heading → list of row dicts, each shown as a table before the plots (e.g. paired
            differences, RewardBench sections).
        temperature: a fitted temperature T; given, the reliability diagram also shows σ(Δ/T).
        length_label: x-axis label of the length plot (say the unit, e.g. "response length (tokens)").
        extra: HTML sections shown after the plots (``rewardlab.report`` fragments).
    """
    rc, rr = M._pair(r_chosen, r_rejected)
    if (len_chosen is None) != (len_rejected is None):
        raise ValueError("give both len_chosen and len_rejected, or neither")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    plots: list[tuple[str, Path]] = []
    path = out / PLOT_FILES["reliability"]
    _plot_reliability(rc, rr, path, temperature)
    plots.append(("reliability", path))
    path = out / PLOT_FILES["distributions"]
    _plot_distributions(rc, rr, path)
    plots.append(("distributions", path))
    path = out / PLOT_FILES["margins"]
    _plot_margins(rc, rr, path)
    plots.append(("margins", path))
    if len_chosen is not None:
        lc, lr = M._vector(len_chosen, "len_chosen"), M._vector(len_rejected, "len_rejected")
        M._same_length(r_chosen=rc, len_chosen=lc, len_rejected=lr)
        path = out / PLOT_FILES["length"]
        _plot_length(rc, rr, lc, lr, path, length_label)
        plots.append(("length", path))
    if strength is not None:
        path = out / PLOT_FILES["strength"]
        _plot_strength(rc, rr, M._vector(strength, "strength"), path)
        plots.append(("strength", path))

    head = (subtitle + " · " if subtitle else "") + f"{len(rc)} preference pairs · generated by rewardlab"
    footer = ("Pairwise accuracy counts ties as wrong. Calibration uses σ(Δ) with each pair counted in both "
              "orders.")
    return _write_page(out, title, head, _pair_cards(rc, rr), plots, metrics, compare, tables, footer, extra)


def write_label_report(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    rewards,
    labels,
    threshold: float | None = None,
    title: str = "Reward model evaluation",
    subtitle: str | None = None,
    compare: Mapping[str, Mapping[str, Any]] | None = None,
    tables: Mapping[str, list[Mapping[str, Any]]] | None = None,
) -> Path:
    """``report.html`` for good/bad labels: reward histograms per label with the threshold, the ROC curve,
    the metrics table (and comparison / extra tables as in ``write_report``). Returns the HTML path."""
    r, y = M._vector(rewards, "rewards"), M._vector(labels, "labels")
    M._same_length(rewards=r, labels=y)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = [("labels", out / LABEL_PLOT_FILES["labels"]), ("roc", out / LABEL_PLOT_FILES["roc"])]
    _plot_label_distributions(r, y, threshold, plots[0][1])
    _plot_roc(r, y, plots[1][1])
    acc = M.label_metrics(r, y, threshold) if threshold is not None else M.label_metrics(r, y)
    items = [("responses", str(len(r))), ("good", str(int(y.sum()))), ("accuracy", format_value(acc["accuracy"])),
             ("F1", format_value(acc["f1"])), ("ROC AUC", format_value(acc["auc"])),
             ("threshold", format_value(acc["threshold"]))]
    head = (subtitle + " · " if subtitle else "") + f"{len(r)} labelled responses · generated by rewardlab"
    footer = "The cards use every response at the threshold shown; the metrics table reports a fitted threshold on held-out responses."
    return _write_page(out, title, head, rep.cards(items), plots, metrics, compare, tables, footer)
