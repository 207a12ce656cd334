"""Score data with a reward model: length-sorted batches for speed, original order restored.

Rewards do not depend on the batch size or the padding: sequences are scored in batches of
similar length, pooled at their own last real token, and put back in input order.
"""

from __future__ import annotations

import numpy as np
import torch

from rewardlab.data.batching import Encoder, encode_records, pad
from rewardlab.data.render import render
from rewardlab.types import LabelRecord, PairRecord, RankRecord, RatingRecord


@torch.inference_mode()
def score_ids(model, seqs: list[list[int]], pad_id: int, batch_size: int = 16, progress: bool = False) -> np.ndarray:
    """Rewards (N,) for token-id sequences, in input order."""
    model.eval()
    order = np.argsort([-len(s) for s in seqs], kind="stable")
    out = np.empty(len(seqs), dtype=np.float64)
    device = next(model.parameters()).device
    starts = range(0, len(seqs), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="score", unit="batch")
    for start in starts:
        idx = order[start: start + batch_size]
        ids, mask = pad([seqs[i] for i in idx], pad_id)  # (b, T)
        rewards = model(ids.to(device), mask.to(device)).rewards  # (b,)
        out[idx] = rewards.float().cpu().numpy()
    return out


def score_texts(model, tokenizer, prompts: list, responses: list, batch_size: int = 16, max_length: int = 512,
                truncation_side: str = "left", progress: bool = False) -> tuple[np.ndarray, dict]:
    """Rewards for (prompt, response) pairs of text or chat messages; also the truncation report."""
    encoder = Encoder(tokenizer, max_length, truncation_side)
    seqs = [encoder.encode_example(p, [r], ["response"])[0] for p, r in zip(prompts, responses)]
    return score_ids(model, seqs, tokenizer.pad_token_id, batch_size, progress), encoder.report.summary()


def _bt_loss(delta: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, -delta))) if delta.size else float("nan")


def score_records(model, tokenizer, records: list, batch_size: int = 16, max_length: int = 512, truncation_side: str = "left",
                  progress: bool = False) -> tuple[list[np.ndarray], dict]:
    """Rewards per record: [chosen, rejected] for pairs, K for rankings, 1 for ratings/labels."""
    encoder = Encoder(tokenizer, max_length, truncation_side)
    encoded = encode_records(records, encoder)
    flat = [s for e in encoded for s in e.seqs]
    rewards = score_ids(model, flat, tokenizer.pad_token_id, batch_size, progress)
    out, i = [], 0
    for e in encoded:
        out.append(rewards[i: i + len(e.seqs)])
        i += len(e.seqs)
    return out, encoder.report.summary()


def pair_metrics(r_chosen: np.ndarray, r_rejected: np.ndarray, tie: np.ndarray | None = None) -> dict:
    """Accuracy on strict pairs (a reward tie counts wrong and is also counted apart), mean margin, BT loss."""
    tie = np.zeros(len(r_chosen), bool) if tie is None else tie
    strict = ~tie
    delta = (r_chosen - r_rejected)[strict]
    return {"accuracy": float(np.mean(delta > 0)) if delta.size else float("nan"), "reward_ties": int(np.sum(delta == 0)),
            "mean_margin": float(np.mean(delta)) if delta.size else float("nan"), "loss": _bt_loss(delta),
            "n_pairs": int(strict.sum()), "n_tie_pairs_in_data": int(tie.sum())}


def evaluate_records(model, tokenizer, records: list, batch_size: int = 16, max_length: int = 512,
                     truncation_side: str = "left", form: str | None = None, progress: bool = False) -> dict:
    """Metrics of a reward model on records of one form."""
    rewards, truncation = score_records(model, tokenizer, records, batch_size, max_length, truncation_side, progress)
    first = records[0] if records else None
    if isinstance(first, PairRecord):
        r = np.stack(rewards)  # (N, 2)
        metrics = pair_metrics(r[:, 0], r[:, 1], np.array([x.tie for x in records], bool))
    elif isinstance(first, RankRecord):
        correct = total = 0
        top = []
        for rw, rec in zip(rewards, records):
            ranks = np.asarray(rec.ranks, float)
            better = ranks[:, None] < ranks[None, :]
            correct += int(((rw[:, None] > rw[None, :]) & better).sum())
            total += int(better.sum())
            best = np.flatnonzero(rw == rw.max())
            top.append(np.mean(ranks[best] == ranks.min()))
        metrics = {"accuracy": correct / total if total else float("nan"), "best_of_k_accuracy": float(np.mean(top)),
                   "n_pairs": total, "n_prompts": len(records)}
    elif isinstance(first, RatingRecord):
        from scipy.stats import pearsonr, spearmanr

        pred = np.concatenate(rewards)
        target = np.array([x.score if x.score is not None else np.mean(list(x.scores.values())) for x in records], float)
        metrics = {"pearson": float(pearsonr(pred, target)[0]), "spearman": float(spearmanr(pred, target)[0]), "n": len(records)}
    elif isinstance(first, LabelRecord):
        pred = np.concatenate(rewards)
        labels = np.array([x.label for x in records])
        metrics = {"accuracy": float(np.mean((pred > 0) == (labels == 1))), "n": len(records)}
    else:
        metrics = {"n": 0}
    metrics["truncation"] = truncation
    return metrics
