"""The training loop's evaluation of a reward model on held-out records: headline metrics of one data form.

Scoring itself lives beside the model (:mod:`rewardlab.models.scoring`); the full evaluation (CIs, calibration,
length bias, reports) is ``eval.run.run_eval``.
"""

from __future__ import annotations

import numpy as np

from rewardlab.models.scoring import score_dataset
from rewardlab.types import LabelRecord, PairRecord, RankRecord, RatingRecord


# --------------------------------------------------------------------------- basic metrics (used by training)


def _bt_loss(delta: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, -delta))) if delta.size else float("nan")


def pair_metrics(r_chosen: np.ndarray, r_rejected: np.ndarray, tie: np.ndarray | None = None) -> dict:
    """Accuracy on strict pairs (a reward tie counts wrong and is also counted apart), mean margin, BT loss.

    Pairs the data marks as ties (``tie``) are left out of every number here and counted in
    ``n_tie_pairs_in_data``.
    """
    tie = np.zeros(len(r_chosen), bool) if tie is None else np.asarray(tie, bool)
    strict = ~tie
    delta = (np.asarray(r_chosen) - np.asarray(r_rejected))[strict]
    return {"accuracy": float(np.mean(delta > 0)) if delta.size else float("nan"), "reward_ties": int(np.sum(delta == 0)),
            "mean_margin": float(np.mean(delta)) if delta.size else float("nan"), "loss": _bt_loss(delta),
            "n_pairs": int(strict.sum()), "n_tie_pairs_in_data": int(tie.sum())}


def evaluate_records(model, tokenizer, records: list, batch_size: int = 16, max_length: int = 512,
                     truncation_side: str = "left", form: str | None = None, progress: bool = False) -> dict:
    """Headline metrics of a reward model on records of one form (the training loop's evaluation).

    pairs: ``pair_metrics``; rankings: pooled pairwise accuracy and best-of-K accuracy
    (``metrics.rank_accuracy``); ratings: Pearson / Spearman of reward with score; labels: accuracy of
    1[reward > 0]. The full evaluation (CIs, calibration, length bias, reports) is ``eval.run.run_eval``.
    """
    from rewardlab.eval import analyze

    scored = score_dataset(model, tokenizer, records, batch_size, max_length, truncation_side, progress=progress)
    rewards = scored.rewards
    first = records[0] if records else None
    if isinstance(first, PairRecord):
        r = np.stack(rewards)  # (B, 2)
        metrics = pair_metrics(r[:, 0], r[:, 1], np.array([x.tie for x in records], bool))
    elif isinstance(first, RankRecord):
        ra = analyze.rank_table(rewards, [np.asarray(x.ranks, float) for x in records])
        metrics = {"accuracy": ra["pairwise_accuracy_micro"], "best_of_k_accuracy": ra["best_of_k_accuracy"],
                   "n_pairs": ra["n_pairs"], "n_prompts": len(records)}
    elif isinstance(first, RatingRecord):
        pred = np.concatenate(rewards)
        target = np.array([analyze.rating_target(x) for x in records], float)
        corr = analyze.correlations(pred, target)
        metrics = {"pearson": corr["pearson"], "spearman": corr["spearman"], "n": len(records)}
    elif isinstance(first, LabelRecord):
        pred = np.concatenate(rewards)
        labels = np.array([x.label for x in records])
        metrics = {"accuracy": float(np.mean((pred > 0) == (labels == 1))), "n": len(records)}
    else:
        metrics = {"n": 0}
    metrics["truncation"] = scored.truncation
    return metrics
