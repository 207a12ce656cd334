"""From rewards to the numbers ``rewardlab eval`` reports, one function per data form: pure numpy.

Notation (as in ``metrics``): B pairs, K responses per prompt, Δ = r_chosen − r_rejected,
σ(x) = 1/(1 + e^{−x}). A pair is correct when Δ > 0; a reward tie (Δ = 0) is wrong (RewardBench's rule).

    pair_headline      accuracy, reward ties, mean margin, BT loss (also the training loop's evaluation)
    pair_analysis      the headline + bootstrap CI, accuracy by strength, calibration
                       (ECE / Brier / NLL, reliability curve, temperature scaling fitted on a split),
                       length bias, reward distributions, per-subset accuracy, annotator agreement
    ranking_analysis   best-of-K accuracy + CI, pairwise accuracy inside rankings, Spearman
    rating_analysis    Pearson / Spearman of reward with score (all responses, per attribute) and
                       pairwise accuracy between responses to the same prompt
    attribute_analysis a multi-attribute RM's own output per attribute against that attribute's ratings:
                       RMSE, Pearson, Spearman
    label_analysis     accuracy, precision, recall, F1 at a given threshold or one fitted on a split; ROC AUC
    rewardbench_v1 / rewardbench_v2   RewardBench section / subset scores (``eval.rewardbench``)
    paired_differences every pair of models on the same examples (``metrics.paired_difference``)

Values that are undefined are None (never NaN), so results can be written as JSON. Warnings of the
fits (e.g. separable data in temperature scaling) are returned in a ``notes`` list.
This module imports nothing of rewardlab but ``eval.metrics`` and ``eval.rewardbench``, and no torch.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Mapping, Sequence

import numpy as np

from rewardlab.eval import metrics as M
from rewardlab.eval import rewardbench as RB

__all__ = [
    "split_indices",
    "pair_headline",
    "pair_analysis",
    "rank_table",
    "best_of_k_credits",
    "ranking_analysis",
    "rating_target",
    "correlations",
    "rating_analysis",
    "attribute_analysis",
    "attribute_targets",
    "label_analysis",
    "within_group_pairs",
    "rewardbench_v1",
    "rewardbench_v2",
    "paired_differences",
]


def split_indices(n: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random split of range(n): (fit, eval) with round(fraction·n) indices in fit, both sorted.

    Used to fit a temperature or a threshold on one part and report on the other (Guo et al., 2017
    fit T on a validation set). Deterministic in ``seed``.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    k = int(round(fraction * n))
    return np.sort(perm[:k]), np.sort(perm[k:])


def _ci(values: np.ndarray, n_boot: int, seed: int) -> list | None:
    if n_boot <= 0 or len(values) == 0:
        return None
    lo, hi = M.bootstrap_ci(values, n_boot=n_boot, seed=seed)
    return [lo, hi]


def _with_notes(fn, *args, **kwargs):
    """fn(...) and the messages of the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught]


# --------------------------------------------------------------------------- pairs


def _calibration(delta: np.ndarray, split: float, seed: int, notes: list) -> dict:
    """σ(Δ) calibration on all pairs (symmetrised) + temperature scaling fitted on a split."""
    ones = np.ones_like(delta)
    cal = M.pairwise_calibration(delta, np.zeros_like(delta))
    fit, ev = split_indices(len(delta), split, seed) if len(delta) >= 4 and split > 0 else (np.array([]), np.array([]))
    if len(fit) >= 2 and len(ev) >= 2:
        scaled, msgs = _with_notes(M.temperature_scaled_calibration, delta, fit, ev, ones)
        notes += [f"temperature scaling: {m}" for m in msgs]
        cal["temperature_scaled"] = {
            "temperature": scaled["temperature"], "n_fit": scaled["n_fit"], "n_eval": scaled["n_eval"],
            "fit_fraction": split,
            "before": {k: scaled["before"][k] for k in ("ece", "brier", "nll")},
            "after": {k: scaled["after"][k] for k in ("ece", "brier", "nll")},
            "reliability_after": scaled["after"]["reliability"],
        }
    else:
        notes.append(f"temperature scaling skipped: {len(delta)} pairs are too few to split (need >= 4)")
        cal["temperature_scaled"] = None
    return cal


def _strict_pairs(r_chosen, r_rejected, tie) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(r_c, r_r, tie) (B,) checked; an error when every pair is a tie in the data."""
    rc, rr = M._pair(r_chosen, r_rejected)
    tie = np.zeros(len(rc), bool) if tie is None else np.asarray(tie, bool)
    if tie.shape != rc.shape:
        raise ValueError(f"tie must be ({len(rc)},) like the rewards, got {tie.shape}")
    if tie.all():
        raise ValueError(f"all {len(rc)} pairs are ties in the data: no preference to measure")
    return rc, rr, tie


def pair_headline(r_chosen, r_rejected, *, tie=None) -> dict:
    """The headline pairwise numbers, on the pairs the data does not mark as ties (``tie``, (B,) bool).

    accuracy = mean 1[Δ > 0] (a reward tie Δ = 0 is wrong: ``metrics.pairwise_accuracy``), n_pairs,
    reward_ties = #{Δ = 0}, mean_margin = mean Δ, loss = mean −log σ(Δ) (``metrics.pairwise_loss_bt``),
    n_tie_pairs_in_data. They open ``pair_analysis`` (``rewardlab eval``) and are the training loop's
    evaluation of pairs (``eval.evaluate.evaluate_records``).
    """
    rc, rr, tie = _strict_pairs(r_chosen, r_rejected, tie)
    c, r = rc[~tie], rr[~tie]
    acc = M.pairwise_accuracy(c, r)
    return {"accuracy": acc["accuracy"], "n_pairs": acc["n"], "reward_ties": acc["ties"], "mean_margin": acc["mean_margin"],
            "loss": M.pairwise_loss_bt(c, r), "n_tie_pairs_in_data": int(tie.sum())}


def pair_analysis(
    r_chosen,
    r_rejected,
    *,
    tie=None,
    strength=None,
    len_chosen=None,
    len_rejected=None,
    subsets: Sequence[str] | None = None,
    annotators=None,
    n_boot: int = 1000,
    calibration_split: float = 0.5,
    strength_bins: int | None = None,
    seed: int = 0,
) -> dict:
    """Every pairwise metric of one reward model on B pairs.

    Args:
        r_chosen, r_rejected: rewards (B,).
        tie: (B,) bool, pairs the DATA marks as ties (e.g. FineGrainedRLHF outcome 0). They carry no
            preference, so every metric below uses the strict pairs only; tie pairs are summarised
            apart (mean |Δ|: a good RM gives them close rewards).
        strength: (B,) preference strength (Llama 2's margin), NaN where absent → ``by_strength``.
        len_chosen, len_rejected: response lengths (B,) → ``length_bias``.
        subsets: (B,) subset name per pair → ``subsets`` (accuracy per subset).
        annotators: (B, M) labels of M annotators, 1 = chosen preferred, 0 = rejected, NaN = none
            → ``annotators`` (``metrics.annotator_agreement`` of the RM's 1[Δ > 0]).
        n_boot: bootstrap resamples of the accuracy CI (0: no CI). calibration_split: fraction of the
            pairs on which the temperature is fitted (the rest reports before/after).
        strength_bins: None = ``metrics.accuracy_by_strength``'s default bucketing, k = k quantile bins.

    Returns a dict: the ``pair_headline`` numbers (accuracy, n_pairs, reward_ties, mean_margin, loss
    (BT NLL), n_tie_pairs_in_data) with accuracy_ci95, tie_pairs, by_strength, calibration,
    length_bias, rewards, subsets, annotators (those without data are None), notes.
    """
    rc, rr, tie = _strict_pairs(r_chosen, r_rejected, tie)
    strict = ~tie
    notes: list[str] = []
    c, r = rc[strict], rr[strict]
    delta = c - r  # (B',)
    correct = M.correct_pairs(c, r)  # (B',)
    head = pair_headline(rc, rr, tie=tie)
    out: dict = {"accuracy": head["accuracy"], "accuracy_ci95": _ci(correct, n_boot, seed), **head, "tie_pairs": None}
    if tie.any():
        out["tie_pairs"] = {"n": int(tie.sum()), "mean_abs_delta": float(np.mean(np.abs(rc[tie] - rr[tie]))),
                            "mean_abs_delta_strict_pairs": float(np.mean(np.abs(delta)))}

    out["by_strength"] = None
    if strength is not None:
        s = np.asarray(strength, dtype=np.float64)[strict]
        has = ~np.isnan(s)
        if has.any():
            out["by_strength"] = M.accuracy_by_strength(c[has], r[has], s[has], bins=strength_bins)
            if not has.all():
                notes.append(f"by_strength: {int((~has).sum())} pairs without a strength left out")

    out["calibration"] = _calibration(delta, calibration_split, seed, notes)

    out["length_bias"] = None
    if len_chosen is not None:
        lc, lr = np.asarray(len_chosen, float)[strict], np.asarray(len_rejected, float)[strict]
        out["length_bias"] = M.length_bias(c, r, lc, lr)
        out["length_bias"]["mean_length_chosen"] = float(lc.mean())
        out["length_bias"]["mean_length_rejected"] = float(lr.mean())

    out["rewards"] = {"chosen": M.reward_stats(c), "rejected": M.reward_stats(r), "delta": M.reward_stats(delta)}

    out["subsets"] = None
    if subsets is not None:
        names = np.asarray([str(x) for x in subsets], dtype=object)[strict]
        table = {}
        for name in dict.fromkeys(names):  # order of first appearance
            m = names == name
            table[name] = {"accuracy": float(correct[m].mean()), "n": int(m.sum())}
        out["subsets"] = table

    out["annotators"] = None
    if annotators is not None:
        a = np.asarray(annotators, dtype=np.float64)[strict]
        out["annotators"] = M.annotator_agreement(correct, a)
    out["notes"] = notes
    return out


# --------------------------------------------------------------------------- rankings


def _padded(groups: Sequence[np.ndarray]) -> np.ndarray:
    """(B, K) float array of variable-length groups, NaN-padded."""
    K = max(len(g) for g in groups)
    out = np.full((len(groups), K), np.nan)
    for i, g in enumerate(groups):
        out[i, : len(g)] = g
    return out


def rank_table(rewards: Sequence[np.ndarray], ranks: Sequence[np.ndarray]) -> dict:
    """``metrics.rank_accuracy`` of variable-length groups (NaN-padded to (B, K))."""
    if len(rewards) != len(ranks) or not len(rewards):
        raise ValueError(f"need as many reward groups as rank groups, and at least one; got {len(rewards)} and {len(ranks)}")
    return M.rank_accuracy(_padded(rewards), _padded(ranks))


def best_of_k_credits(rewards: Sequence[np.ndarray], ranks: Sequence[np.ndarray]) -> np.ndarray:
    """``metrics.best_of_k_credits`` of variable-length groups: per group |M ∩ Best| / |M| (M: responses at
    the maximal reward, Best: best-ranked), for the groups ``metrics.rank_accuracy`` keeps."""
    return M.best_of_k_credits(_padded(rewards), _padded(ranks)) if len(rewards) else np.array([])


def within_group_pairs(rewards: Sequence[np.ndarray], order: Sequence[np.ndarray], better: str = "lower",
                       lengths: Sequence[np.ndarray] | None = None) -> dict:
    """Every pair (i, j) inside a group where response i is better than j: rewards (and lengths) as pairs.

    order: ranks (``better="lower"``) or scores (``better="higher"``) per group; equal values make no pair.
    Returns {"r_chosen", "r_rejected", "len_chosen", "len_rejected", "group"} arrays (P,) (lengths None
    when not given). This turns rankings and ratings into pairs for the pairwise plots and calibration.
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    rc, rr, lc, lr, grp = [], [], [], [], []
    for g, (rw, od) in enumerate(zip(rewards, order)):
        rw, od = np.asarray(rw, float), np.asarray(od, float)
        wins = od[:, None] < od[None, :] if better == "lower" else od[:, None] > od[None, :]  # (K, K)
        i, j = np.nonzero(wins)
        rc.append(rw[i])
        rr.append(rw[j])
        grp.append(np.full(len(i), g))
        if lengths is not None:
            ln = np.asarray(lengths[g], float)
            lc.append(ln[i])
            lr.append(ln[j])
    cat = lambda xs: np.concatenate(xs) if xs else np.array([])  # noqa: E731
    return {"r_chosen": cat(rc), "r_rejected": cat(rr), "len_chosen": cat(lc) if lengths is not None else None,
            "len_rejected": cat(lr) if lengths is not None else None, "group": cat(grp).astype(np.int64)}


def ranking_analysis(rewards: Sequence[np.ndarray], ranks: Sequence[np.ndarray], *, lengths=None, n_boot: int = 1000,
                     seed: int = 0) -> dict:
    """Agreement of rewards with rankings of K responses per prompt (lower rank = better, ties allowed).

    best_of_k_accuracy (the chance that the top-scored response is a best-ranked one; ties at the top
    share the credit), with a bootstrap CI over prompts; pairwise accuracy inside the rankings
    (macro: per prompt then averaged; micro: pooled) — ``metrics.rank_accuracy``. ``accuracy`` is the
    pooled (micro) pairwise accuracy. Reward distributions of best-ranked vs other responses.
    """
    table = rank_table(rewards, ranks)
    credits = best_of_k_credits(rewards, ranks)
    best, rest = [], []
    for rg, kg in zip(rewards, ranks):
        kg = np.asarray(kg, float)
        best.append(np.asarray(rg)[kg == kg.min()])
        rest.append(np.asarray(rg)[kg != kg.min()])
    rest_all = np.concatenate(rest) if rest else np.array([])
    pairs = within_group_pairs(rewards, ranks, "lower", lengths)
    out = {
        "accuracy": table["pairwise_accuracy_micro"],
        "best_of_k_accuracy": table["best_of_k_accuracy"],
        "best_of_k_ci95": _ci(credits, n_boot, seed),
        "chance_best_of_k": float(np.mean([np.mean(np.asarray(k) == np.min(k)) for k in ranks
                                           if len(k) >= 2 and not np.all(np.asarray(k) == k[0])])),
        **{k: v for k, v in table.items() if k not in ("best_of_k_accuracy",)},
        "rewards": {"best_ranked": M.reward_stats(np.concatenate(best)),
                    "others": M.reward_stats(rest_all) if len(rest_all) else None},
    }
    out["pairs"] = {"n": int(len(pairs["r_chosen"])),
                    "reward_ties": int(np.sum(pairs["r_chosen"] == pairs["r_rejected"]))}
    if lengths is not None and len(pairs["r_chosen"]):
        out["length_bias"] = M.length_bias(pairs["r_chosen"], pairs["r_rejected"], pairs["len_chosen"], pairs["len_rejected"])
    return out


# --------------------------------------------------------------------------- ratings


def rating_target(record) -> float:
    """A rating record's scalar target: ``score``, else the mean of its ``scores``."""
    if record.score is not None:
        return float(record.score)
    return float(np.mean(list(record.scores.values())))


def correlations(x, y) -> dict:
    """Pearson and Spearman correlation (None when undefined: fewer than 2 points or a constant input)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return {"pearson": M._correlation(M.stats.pearsonr, x, y), "spearman": M._correlation(M.stats.spearmanr, x, y),
            "n": int(len(x))}


def rating_analysis(rewards, scores, *, groups: Sequence | None = None, attributes: Mapping[str, Sequence] | None = None,
                    lengths=None) -> dict:
    """Agreement of rewards with scalar ratings.

    pearson / spearman: correlation of reward with score over all N responses (``correlations``).
    attributes: {name: (N,) values, NaN where absent} → the same correlations per attribute.
    groups: (N,) prompt key per response → pairwise accuracy between responses to the SAME prompt
        (i beats j when score_i > score_j; equal scores make no pair), the comparison an RM is
        trained for; rewards of different prompts need not be on one scale.
    lengths: (N,) response lengths → Pearson / Spearman of reward and of score with length.
    """
    r = M._vector(rewards, "rewards")
    s = M._vector(scores, "scores")
    M._same_length(rewards=r, scores=s)
    out = {**correlations(r, s), "accuracy": None, "within_prompt_pairs": None, "attributes": None,
           "rewards": M.reward_stats(r)}
    if attributes:
        out["attributes"] = {}
        for name, vals in attributes.items():
            v = np.asarray(vals, float)
            has = ~np.isnan(v)
            out["attributes"][name] = correlations(r[has], v[has])
    if groups is not None:
        by: dict = defaultdict(list)
        for i, g in enumerate(groups):
            by[g].append(i)
        idx = [np.asarray(v) for v in by.values()]
        pairs = within_group_pairs([r[i] for i in idx], [s[i] for i in idx], "higher")
        if len(pairs["r_chosen"]):
            correct = M.correct_pairs(pairs["r_chosen"], pairs["r_rejected"])
            out["accuracy"] = float(correct.mean())
            out["within_prompt_pairs"] = {"accuracy": out["accuracy"], "n_pairs": int(len(correct)),
                                          "n_prompts": sum(len(i) >= 2 for i in idx)}
    if lengths is not None:
        ln = np.asarray(lengths, float)
        out["length_bias"] = {"reward_vs_length": correlations(r, ln), "score_vs_length": correlations(s, ln)}
    return out


def attribute_analysis(values, targets, names: Sequence[str]) -> dict:
    """A multi-attribute RM's outputs against the ratings of the same attributes.

    values: (N, A) the RM's attribute values; targets: (N, A) ratings, NaN where an attribute is not rated;
    names: the A attribute names. Returns {name: ``metrics.regression_metrics``} = {rmse, pearson, spearman, n}
    per attribute, over the responses rated on it.
    """
    v, t = np.asarray(values, float), np.asarray(targets, float)
    if v.shape != t.shape or v.ndim != 2 or v.shape[1] != len(names):
        raise ValueError(f"values and targets must both be (N, {len(names)}), got {v.shape} and {t.shape}")
    return {name: M.regression_metrics(v[:, a], t[:, a]) for a, name in enumerate(names)}


def attribute_targets(records, names: Sequence[str]) -> np.ndarray:
    """(N, A) ratings of rating records' ``scores`` for the attributes ``names``, NaN where not rated."""
    return np.array([[float((x.scores or {}).get(n, np.nan)) for n in names] for x in records], float).reshape(len(records), len(names))


# --------------------------------------------------------------------------- labels


def label_analysis(rewards, labels, *, threshold: float | None = None, fit_fraction: float = 0.5, seed: int = 0) -> dict:
    """Good (1) / bad (0) labels: accuracy, precision, recall, F1 at a threshold t, and ROC AUC.

    threshold given: ``metrics.label_metrics`` at t on all N responses. threshold None: t is fitted
    (maximal accuracy) on a random ``fit_fraction`` of the responses and the metrics are reported on
    the others, so they are not in-sample; AUC is threshold-free and uses all N.
    """
    r, y = M._vector(rewards, "rewards"), M._vector(labels, "labels")
    M._same_length(rewards=r, labels=y)
    if threshold is not None:
        out = M.label_metrics(r, y, threshold)
        out["threshold_source"] = "given"
    else:
        fit, ev = split_indices(len(r), fit_fraction, seed)
        if len(fit) < 2 or len(ev) < 1:
            raise ValueError(f"{len(r)} labelled responses are too few to fit a threshold on a split; give a threshold")
        t = M.label_metrics(r[fit], y[fit])["threshold"]
        out = M.label_metrics(r[ev], y[ev], t)
        out.update({"threshold_source": "fitted on a split", "threshold_fitted": True, "n_fit": int(len(fit)),
                    "n_eval": int(len(ev))})
    out["auc"] = M.roc_auc(r, y)
    out["n_total"] = int(len(r))
    out["rewards"] = {"good": M.reward_stats(r[y == 1]) if (y == 1).any() else None,
                      "bad": M.reward_stats(r[y == 0]) if (y == 0).any() else None}
    return out


# --------------------------------------------------------------------------- RewardBench


def rewardbench_v1(subsets: Sequence[str], correct) -> dict:
    """RewardBench v1 section scores (``rewardbench.section_scores``) from per-pair subset names and 0/1 results."""
    per_example = list(zip([str(s) for s in subsets], np.asarray(correct, float)))
    return {"subsets": RB.subset_accuracies(per_example), **RB.section_scores(per_example)}


def rewardbench_v2(subsets: Sequence[str], ids: Sequence, chosen_scores: Sequence, rejected_scores: Sequence) -> dict:
    """RewardBench 2 scores (``rewardbench.rewardbench2_scores``), or, without a subset column, the overall
    RB2 accuracy: the mean prompt credit 1[chosen at the max]/(number tied at the max)."""
    if subsets is None:
        return {"Score": RB.rewardbench2_accuracy(chosen_scores, rejected_scores)}
    rows = [{"subset": s, "id": i, "chosen_scores": list(c), "rejected_scores": list(r)}
            for s, i, c, r in zip(subsets, ids, chosen_scores, rejected_scores)]
    return RB.rewardbench2_scores(rows)


# --------------------------------------------------------------------------- comparisons


def paired_differences(correct_by_model: Mapping[str, np.ndarray], n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """``metrics.paired_difference`` for every pair of models (a, b), in the given order, on the same examples.

    correct_by_model: model name → per-example correctness (B,) (0/1, or RB2's 1/k credit).
    Returns a list of {"a", "b", "accuracy_a", "accuracy_b", "difference", "ci_low", "ci_high", "n",
    "n_a_only", "n_b_only", "mcnemar_p"}; ci_low / ci_high are None when n_boot = 0.
    """
    names = list(correct_by_model)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = M.paired_difference(correct_by_model[a], correct_by_model[b], n_boot=max(n_boot, 1), seed=seed)
            if n_boot <= 0:  # no resamples asked for: no interval (one resample would fake one)
                d["ci_low"] = d["ci_high"] = None
            out.append({"a": a, "b": b, **d})
    return out
