"""The objective: how a catalogue loss turns a batch's rewards into the number that is minimised.

This is the one place that knows each family's call convention; the trainer, the study's head mode and
the held-out loss of evaluation all call :func:`objective`.

    pairwise   fn(r_c (B,), r_r (B,), [margin (B,)], [tie (B,)], **hp) → (B,); pairs the data marks as ties
               are left out unless the loss models ties (``spec.handles_ties``)
    listwise   fn(r (B, K), ranks (B, K), valid (B, K), **hp) → (B,)
    pointwise  fn(r (B,), target (B,) | (B, A) | (B, 2), **hp) → (B,)

Rewards come flat, as a batch's rows go through the model: a pair batch's B chosen rows then its B rejected
rows (2B,), a ranking batch's B × K rows (B·K,), a rating batch's B rows. The batch gives the other
inputs (``types.PairBatch.margin``/``tie``, ``RankBatch.ranks``/``valid``, ``PointBatch.target``); its
token tensors are not read, so a batch built around precomputed rewards may leave them None.

A run with several data sources (``train --data A --data B``) minimises :func:`mixed_objective`: a
``types.MixedBatch`` holds one batch per source, its rewards are those parts' rows one after another, and
the number minimised is Σ_s w_s · objective(spec_s, r_s, batch_s, hp_s) — each term through
:func:`objective`, as a run on that source alone computes it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from rewardlab.types import MixedBatch, PairBatch, PointBatch, RankBatch


def loss_terms(spec, rewards: torch.Tensor, batch, hp: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(per-example loss (B,), which examples count (B,) bool, or None for all)."""
    if spec.family == "pairwise":
        B = batch.margin.shape[0]
        extra = {k: v for k, v in (("margin", batch.margin), ("tie", batch.tie)) if k in spec.inputs}
        per = spec.fn(rewards[:B], rewards[B:], **extra, **hp)
        return per, None if spec.handles_ties else ~batch.tie  # a loss that does not model ties never sees them
    if spec.family == "listwise":
        return spec.fn(rewards.view(batch.ranks.shape), batch.ranks, batch.valid, **hp), None
    return spec.fn(rewards, batch.target, **hp), None


def masked_mean(per_example: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over ``keep`` (all if None); 0 with a gradient when nothing counts. A masked sum, not boolean
    indexing, so a GPU never waits for the host to learn how many rows were kept."""
    if keep is None:
        return per_example.mean() if per_example.numel() else per_example.sum()
    kept = torch.where(keep, per_example, torch.zeros_like(per_example))
    return kept.sum() / keep.sum().clamp(min=1)


def objective(spec, rewards: torch.Tensor, batch, hp: dict) -> torch.Tensor:
    """The catalogue loss ``spec`` of a batch: the mean over the examples that count (a scalar)."""
    return masked_mean(*loss_terms(spec, rewards, batch, hp))


class Term(NamedTuple):
    """One data source's share of a mixed objective: its catalogue loss, that loss's hyperparameters, its weight."""

    spec: object  # catalogue LossSpec
    hp: dict
    weight: float


def rows_of(batch) -> int:
    """Rows a batch puts through the model: 2B (pairs), B·K (rankings, padding rows included), B (ratings, labels);
    a mixed batch, its parts' sum."""
    if isinstance(batch, PairBatch):
        return 2 * batch.margin.shape[0]
    if isinstance(batch, RankBatch):
        return batch.ranks.numel()
    if isinstance(batch, MixedBatch):
        return sum(rows_of(p) for p in batch.parts)
    return batch.target.shape[0]


def part_rows(batch: MixedBatch) -> list[slice]:
    """Where each part's rows sit among a mixed batch's rows (parts one after another)."""
    out, start = [], 0
    for part in batch.parts:
        out.append(slice(start, start + rows_of(part)))
        start = out[-1].stop
    return out


def weighted_sum(weights, values):
    """Σ_s w_s · v_s: how a run with several sources adds its sources' objectives (tensors or floats)."""
    return sum(w * v for w, v in zip(weights, values, strict=True))


def mixed_objective(terms: list[Term], rewards: torch.Tensor, batch: MixedBatch) -> torch.Tensor:
    """The objective of a run with several data sources, one ``Term`` per part of ``batch`` (same order):

        L = Σ_s w_s · objective(spec_s, r_s, batch_s, hp_s),   r_s = the rewards of part s's rows

    Each term is exactly what a run on that source alone minimises on that batch, so a weight scales its own
    source's term and nothing else, and a source's size does not weigh in (every step holds one batch of each
    source, ``data.batching.mixed_batches``). ``bce_mse`` over a labels source and a ratings source gives
    w_labels · bce_weight · BCE + w_ratings · mse_weight · MSE in every step: both terms, with the weights given.
    """
    if len(terms) != len(batch.parts):
        raise ValueError(f"mixed_objective: {len(terms)} terms for a batch of {len(batch.parts)} parts")
    return weighted_sum([t.weight for t in terms], [objective(t.spec, rewards[rows], part, t.hp)
                                                    for t, part, rows in zip(terms, batch.parts, part_rows(batch))])


def regularizer_inputs(batch, rewards: torch.Tensor, hidden: torch.Tensor | None = None,
                       length_rewards: torch.Tensor | None = None) -> dict:
    """What a regulariser may ask for by name (``LossSpec.inputs``): rewards (N,), per-pair r_chosen/r_rejected,
    pooled hidden states (N, C), lengths in tokens (N,), the length head's rewards (N,). The padding rows of a
    ranking batch are left out. A mixed batch gives its parts' rows one after another (no per-pair inputs: a run
    with several sources takes regularisers of any form only, ``TrainConfig``)."""
    if isinstance(batch, MixedBatch):
        pick = lambda x, rows: None if x is None else x[rows]  # noqa: E731
        parts = [regularizer_inputs(p, rewards[rows], pick(hidden, rows), pick(length_rewards, rows))
                 for p, rows in zip(batch.parts, part_rows(batch))]
        return {k: None if parts[0][k] is None else torch.cat([p[k] for p in parts])
                for k in ("rewards", "hidden", "lengths", "length_rewards")}
    lengths = batch.attention_mask.sum(-1).float()
    if isinstance(batch, RankBatch):
        real = batch.valid.flatten()
        pick = lambda x: None if x is None else x[real]  # noqa: E731
        return {"rewards": rewards[real], "hidden": pick(hidden), "lengths": lengths[real], "length_rewards": pick(length_rewards)}
    out = {"rewards": rewards, "hidden": hidden, "lengths": lengths, "length_rewards": length_rewards}
    if isinstance(batch, PairBatch):
        B = batch.margin.shape[0]
        out.update(r_chosen=rewards[:B], r_rejected=rewards[B:])
    return out


def regularization(regs: list, available: dict) -> torch.Tensor:
    """Σ coef · mean(regulariser) over ``regs`` = [(spec, coef, hp)]; each gets the inputs its entry names."""
    total = next(v for v in available.values() if v is not None).new_zeros(())
    for spec, coef, hp in regs:
        missing = [k for k in spec.inputs if available.get(k) is None]
        if missing:
            raise ValueError(f"regulariser {spec.name!r} needs {', '.join(missing)}, which {spec.data_form} data of this loss does not provide")
        total = total + coef * spec.fn(**{k: available[k] for k in spec.inputs}, **hp).mean()
    return total


def batch_accuracy(rewards: torch.Tensor, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(correct, counted), scalars on the rewards' device. Pairs: chosen above rejected, over pairs not marked
    ties. Rankings: over the ordered pairs i, j of valid responses with rank_i < rank_j. Ratings: 0, 0. A mixed
    batch: the sums over its parts."""
    if isinstance(batch, MixedBatch):
        counts = [batch_accuracy(rewards[rows], p) for p, rows in zip(batch.parts, part_rows(batch))]
        return sum(c for c, _ in counts), sum(n for _, n in counts)
    if isinstance(batch, PairBatch):
        B = batch.margin.shape[0]
        strict = ~batch.tie
        return ((rewards[:B] > rewards[B:]) & strict).sum(), strict.sum()
    if isinstance(batch, RankBatch):
        r = rewards.view(batch.ranks.shape)  # (B, K)
        better = (batch.ranks[:, :, None] < batch.ranks[:, None, :]) & batch.valid[:, :, None] & batch.valid[:, None, :]
        return ((r[:, :, None] > r[:, None, :]) & better).sum(), better.sum()
    assert isinstance(batch, PointBatch), type(batch).__name__
    zero = rewards.new_zeros((), dtype=torch.long)
    return zero, zero
