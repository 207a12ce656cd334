"""Metrics of one study run on held-out data, and their aggregation across seeds.

Notation: M test prompts × C candidates; R rewards (M, C), G gold (M, C), ℓ lengths in words (M, C);
held-out pairs are the candidates (0, 1), (2, 3), … of each prompt; Δ = r_first − r_second.

Per run (built-in task):
    accuracy_gold     mean 1[Δ > 0] over held-out pairs ordered by the gold (better first)
    accuracy_labels   the same against the study's labeler (ε, λ) on the same pairs
    spearman_gold     Spearman ρ(R, G) over all M·C test responses
    ece_gold, brier_gold       calibration of σ(Δ) that the gold-better response wins (symmetrised,
                               ``eval.metrics.pairwise_calibration``; 10 equal-width bins)
    ece_labels, brier_labels   the same against the labeler's choices (what a BT model claims to predict)
    length_corr       Pearson ρ(R, ℓ); the gold's own ρ(G, ℓ) is reported beside it
    reward_std        std of R (the reward's scale)
    bon_N             gold of best-of-N, exact expectation (``eval.metrics.best_of_n_expectation``), mean over prompts
On user data the gold metrics are absent and ``*_labels`` use the held-out human labels.

Across seeds (``mean_ci``): mean and the Student-t 95% interval mean ± t_{0.975, n−1}·sd/√n;
paired differences against the baseline loss use the per-seed differences d_s = m_loss,s − m_base,s
(same seed = same training texts and the same test set), and for accuracy also a paired bootstrap
over all (seed, test pair) rows (``eval.metrics.paired_difference``, with McNemar's test).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from rewardlab.eval.analyze import correlations
from rewardlab.eval.metrics import best_of_n_expectation, correct_pairs, pairwise_calibration, paired_difference

RUN_METRICS = ("accuracy_gold", "accuracy_labels", "spearman_gold", "ece_gold", "brier_gold", "ece_labels",
               "brier_labels", "length_corr", "reward_std")
"""Scalar metrics of a run besides best-of-N (``bon_N``), in report order."""
DIFF_METRICS = ("accuracy_gold", "accuracy_labels", "spearman_gold", "ece_labels", "length_corr")
"""Metrics whose paired difference against the baseline is reported."""


def n_grid(candidates: int) -> list[int]:
    """Best-of-N sizes 1, 2, 4, … up to ``candidates`` (and ``candidates`` itself)."""
    out, n = [], 1
    while n < candidates:
        out.append(n)
        n *= 2
    return out + [candidates]


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    return correlations(x, y)["pearson"]


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    return correlations(x, y)["spearman"]


def pair_metrics(rewards_flat: np.ndarray, pairs: np.ndarray, prefix: str) -> dict:
    """accuracy, ECE and Brier of σ(Δ) on pairs (B, 2) [first should win, second] of flat rewards."""
    rc, rr = rewards_flat[pairs[:, 0]], rewards_flat[pairs[:, 1]]  # (B,)
    cal = pairwise_calibration(rc, rr)
    return {f"accuracy_{prefix}": float(correct_pairs(rc, rr).mean()), f"ece_{prefix}": cal["ece"], f"brier_{prefix}": cal["brier"]}


def gold_run_metrics(rewards: np.ndarray, gold: np.ndarray, n_words: np.ndarray, pairs: dict, ns: list[int]) -> dict:
    """Every metric of a run on the built-in test pool (see the module docstring).

    rewards, gold, n_words: (M, C); pairs: {"gold": (B, 2), "labels": (B, 2)} flat indices.
    """
    r, g, ln = rewards.ravel(), gold.ravel(), n_words.ravel().astype(float)
    out = {**pair_metrics(r, pairs["gold"], "gold"), **pair_metrics(r, pairs["labels"], "labels")}
    out.update({"spearman_gold": _spearman(r, g), "length_corr": _pearson(r, ln), "reward_std": float(r.std())})
    out["bon"] = {str(n): best_of_n_expectation(rewards, gold, n) for n in ns}
    return out


def user_run_metrics(rewards_flat: np.ndarray, pairs: np.ndarray, n_words: np.ndarray) -> dict:
    """Metrics on held-out human pairs (B, 2) [chosen, rejected]: no gold."""
    out = {"accuracy_gold": None, "spearman_gold": None, "ece_gold": None, "brier_gold": None, "bon": {}}
    out.update(pair_metrics(rewards_flat, pairs, "labels"))
    out.update({"length_corr": _pearson(rewards_flat, n_words), "reward_std": float(rewards_flat.std())})
    return out


def correct_vector(rewards_flat: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Per-pair correctness 1[r_first > r_second] (B,) as floats (``eval.metrics.correct_pairs``)."""
    return correct_pairs(rewards_flat[pairs[:, 0]], rewards_flat[pairs[:, 1]])


# --------------------------------------------------------------------------- aggregation


def mean_ci(values, level: float = 0.95) -> dict:
    """Mean and Student-t interval of values across seeds: mean ± t_{(1+level)/2, n−1} · sd/√n.

    None entries are left out. n = 1: the interval is None (one seed says nothing of the spread).
    Example: [1, 2, 3] → mean 2, sd 1, t_{0.975, 2} = 4.303 → 2 ± 4.303/√3 = [−0.484, 4.484].
    """
    x = np.array([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))], dtype=float)
    if len(x) == 0:
        return {"mean": None, "sd": None, "n": 0, "ci_low": None, "ci_high": None}
    if len(x) == 1:
        return {"mean": float(x[0]), "sd": None, "n": 1, "ci_low": None, "ci_high": None}
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1)) * sd / math.sqrt(len(x))
    m = float(x.mean())
    return {"mean": m, "sd": sd, "n": int(len(x)), "ci_low": m - half, "ci_high": m + half}


def paired_seed_difference(a: dict, b: dict, level: float = 0.95) -> dict:
    """Differences a_s − b_s over the seeds s present (with a value) in both; ``mean_ci`` of them."""
    seeds = sorted(s for s in a if s in b and a[s] is not None and b[s] is not None)
    return {**mean_ci([a[s] - b[s] for s in seeds], level), "seeds": seeds}


def pooled_paired_accuracy(correct_a: dict, correct_b: dict, n_boot: int = 1000) -> dict | None:
    """Paired bootstrap + McNemar over all (seed, pair) rows of two losses' correctness vectors by seed."""
    seeds = sorted(s for s in correct_a if s in correct_b)
    if not seeds:
        return None
    return paired_difference(np.concatenate([correct_a[s] for s in seeds]), np.concatenate([correct_b[s] for s in seeds]),
                             n_boot=n_boot)


def flatten_run(result: dict) -> dict:
    """One row of results.csv: the run's grid coordinates, scalar metrics and bon_N columns."""
    row = {k: result[k] for k in ("run_id", "loss", "family", "data_form", "flip_rate", "length_bias", "train_size", "seed")}
    m = result["metrics"]
    row.update({k: m.get(k) for k in RUN_METRICS})
    row.update({f"bon_{n}": v for n, v in m.get("bon", {}).items()})
    row.update({"label_agreement": result.get("label_agreement"), "n_train_examples": result.get("n_train_examples"),
                "train_seconds": result.get("train_seconds")})
    return row


GROUP_KEYS = ("loss", "flip_rate", "length_bias", "train_size")


def aggregate(rows: list[dict], baseline: str | None, correct: dict | None = None, level: float = 0.95) -> list[dict]:
    """summary.csv: one row per (loss, ε, λ, n) with mean / CI of every metric across seeds, and the
    paired difference against ``baseline`` (per seed; accuracy also pooled over test pairs).

    rows: ``flatten_run`` rows; correct: {run_id: correctness vector (B,)} against the gold (or the
    human labels), for the pooled paired test.
    """
    metric_cols = [k for k in rows[0] if k in RUN_METRICS or k.startswith("bon_") or k in ("label_agreement", "train_seconds")] if rows else []
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in GROUP_KEYS), []).append(r)
    out = []
    for key, members in groups.items():
        row = dict(zip(GROUP_KEYS, key))
        row["family"], row["data_form"] = members[0]["family"], members[0]["data_form"]
        row["n_seeds"] = len(members)
        for col in metric_cols:
            s = mean_ci([m.get(col) for m in members], level)
            row[col], row[f"{col}_ci_low"], row[f"{col}_ci_high"] = s["mean"], s["ci_low"], s["ci_high"]
        if baseline is not None and key[0] != baseline:
            base = groups.get((baseline, *key[1:]), [])
            for col in DIFF_METRICS:
                d = paired_seed_difference({m["seed"]: m.get(col) for m in members}, {m["seed"]: m.get(col) for m in base}, level)
                row[f"diff_{col}"], row[f"diff_{col}_ci_low"], row[f"diff_{col}_ci_high"] = d["mean"], d["ci_low"], d["ci_high"]
            if correct is not None:
                acc_col = "accuracy_gold" if members[0].get("accuracy_gold") is not None else "accuracy_labels"
                pooled = pooled_paired_accuracy({m["seed"]: correct[m["run_id"]] for m in members if m["run_id"] in correct},
                                                {m["seed"]: correct[m["run_id"]] for m in base if m["run_id"] in correct})
                if pooled is not None:
                    row[f"pooled_diff_{acc_col}"] = pooled["difference"]
                    row[f"pooled_diff_{acc_col}_ci_low"], row[f"pooled_diff_{acc_col}_ci_high"] = pooled["ci_low"], pooled["ci_high"]
                    row["mcnemar_p"] = pooled["mcnemar_p"]
        out.append(row)
    order = {name: i for i, name in enumerate(dict.fromkeys(r["loss"] for r in rows))}
    out.sort(key=lambda r: (r["length_bias"], r["train_size"], r["flip_rate"], order[r["loss"]]))
    return out
