"""The training loop's evaluation of a reward model on held-out records: headline metrics of one data form.

Scoring itself lives beside the model (:mod:`rewardlab.models.scoring`); the full evaluation (CIs, calibration,
length bias, reports) is ``eval.run.run_eval``.
"""

from __future__ import annotations

import numpy as np
import torch

from rewardlab.data.batching import COLLATORS, Encoded, example_fields
from rewardlab.eval import analyze
from rewardlab.losses.objective import objective
from rewardlab.models.scoring import score_dataset
from rewardlab.types import LabelRecord, PairRecord, RankRecord, RatingRecord

FORM_OF = {PairRecord: "pairs", RankRecord: "rankings", RatingRecord: "ratings", LabelRecord: "labels"}


@torch.no_grad()
def held_out_objective(spec, hp: dict, records: list, rewards: list, attributes: list | None = None,
                       values: list | None = None) -> float:
    """The training objective (:func:`rewardlab.losses.objective.objective`, regularisers aside) on records'
    rewards (``ScoredRecords.rewards``): what the trainer minimises, on data it did not train on. A multi-attribute
    RM is trained on its attribute values: give their names (``attributes``) and ``ScoredRecords.attributes``."""
    label_and_score = spec.data_form == "any" and spec.family == "pointwise"
    examples = [Encoded([[0]] * len(r), **example_fields(rec, attributes, label_and_score=label_and_score))
                for rec, r in zip(records, rewards)]
    batch = COLLATORS[FORM_OF[type(records[0])]](examples, 0)  # margins, ties, ranks or targets, as in training
    if isinstance(records[0], PairRecord):
        flat = np.concatenate([[r[0] for r in rewards], [r[1] for r in rewards]])  # chosen rows, then rejected rows
    elif isinstance(records[0], RankRecord):
        flat = np.zeros(tuple(batch.ranks.shape))  # (B, K), padding rows 0 (not valid)
        for b, r in enumerate(rewards):
            flat[b, : len(r)] = r
    elif attributes:
        return float(objective(spec, torch.as_tensor(np.concatenate(values), dtype=torch.float32), batch, hp))  # (N, A)
    else:
        flat = np.concatenate(rewards)
    return float(objective(spec, torch.as_tensor(flat, dtype=torch.float32).flatten(), batch, hp))


# --------------------------------------------------------------------------- basic metrics (used by training)


def evaluate_records(model, tokenizer, records: list, batch_size: int = 16, max_length: int = 512,
                     truncation_side: str = "left", form: str | None = None, progress: bool = False,
                     loss: tuple | None = None) -> dict:
    """Headline metrics of a reward model on records of one form (the training loop's evaluation).

    Each number is computed by the same function as in ``rewardlab eval`` (``eval.analyze``), so it
    means the same there:
        pairs     ``analyze.pair_headline``: accuracy 1[Δ > 0] (a reward tie is wrong), reward ties,
                  mean margin, BT loss on the strict pairs; data-tie pairs counted apart
        rankings  ``analyze.rank_table``: pooled pairwise accuracy (``accuracy``) and best-of-K accuracy
        ratings   ``analyze.rating_analysis``: Pearson / Spearman of reward with score; a multi-attribute RM also
                  ``attribute_outputs``: RMSE, Pearson, Spearman of each of its outputs (``analyze.attribute_analysis``)
        labels    ``analyze.label_analysis`` at the fixed threshold 0: accuracy of 1[reward ≥ 0] against
                  the label (σ(r) ≥ ½ for the pointwise losses; ``rewardlab eval --threshold 0``)
    ``loss`` = (catalogue spec, hyperparameters): ``loss`` is then the training objective on these records
    (``held_out_objective``; for ``bt`` the same number as the BT loss above), as TRL's ``eval_loss`` is.
    The full evaluation (CIs, calibration, length bias, reports) is ``eval.run.run_eval``.
    """
    first = records[0] if records else None
    names = getattr(model, "attributes", None) if isinstance(first, RatingRecord) else None
    scored = score_dataset(model, tokenizer, records, batch_size, max_length, truncation_side, progress=progress,
                           attributes=bool(names))
    rewards = scored.rewards
    if isinstance(first, PairRecord):
        r = np.stack(rewards)  # (B, 2)
        metrics = analyze.pair_headline(r[:, 0], r[:, 1], tie=np.array([x.tie for x in records], bool))
    elif isinstance(first, RankRecord):
        ra = analyze.rank_table(rewards, [np.asarray(x.ranks, float) for x in records])
        metrics = {"accuracy": ra["pairwise_accuracy_micro"], "best_of_k_accuracy": ra["best_of_k_accuracy"],
                   "n_pairs": ra["n_pairs"], "n_prompts": len(records)}
    elif isinstance(first, RatingRecord):
        target = np.array([analyze.rating_target(x) for x in records], float)
        ra = analyze.rating_analysis(np.concatenate(rewards), target)
        metrics = {"pearson": ra["pearson"], "spearman": ra["spearman"], "n": ra["n"]}
        if names:
            metrics["attribute_outputs"] = analyze.attribute_analysis(np.concatenate(scored.attributes),
                                                                      analyze.attribute_targets(records, names), names)
    elif isinstance(first, LabelRecord):
        la = analyze.label_analysis(np.concatenate(rewards), np.array([x.label for x in records], float), threshold=0.0)
        metrics = {"accuracy": la["accuracy"], "n": la["n"]}
    else:
        metrics = {"n": 0}
    if loss is not None and records:
        metrics["loss"] = held_out_objective(*loss, records, rewards, names, scored.attributes)
    metrics["truncation"] = scored.truncation
    return metrics
