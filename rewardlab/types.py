"""Records (one example of preference data) and batches (tensors with their shapes).

Notation used across rewardlab:
    B  pairs / prompts in a batch        K  responses per prompt (listwise)
    T  tokens per sequence               A  rating attributes (pointwise, multi-attribute)
    Δ  r(chosen) − r(rejected)

A *record* is plain Python data as read from a file; a *batch* is tensors ready for a model.
Records carry ``source`` ("file:line") so that any later error can name where the example came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Union

import torch

# A turn of a conversation: {"role": "user" | "assistant" | "system", "content": str}.
Message = dict
# Text is either a plain string or a list of chat messages (rendered with the tokenizer's chat template).
Text = Union[str, list]


@dataclass(frozen=True)
class PairRecord:
    """One preference: ``chosen`` is preferred over ``rejected`` for ``prompt``.

    ``margin`` is an optional preference strength (Llama 2's rating gap); ``tie`` marks pairs the
    labeler rated equal (then chosen/rejected order carries no preference).
    """

    prompt: Text
    chosen: Text
    rejected: Text
    margin: float | None = None
    tie: bool = False
    source: str | None = None


@dataclass(frozen=True)
class RankRecord:
    """K responses to one prompt with their ranks: lower rank = better, equal ranks = tie."""

    prompt: Text
    responses: tuple
    ranks: tuple
    source: str | None = None


@dataclass(frozen=True)
class RatingRecord:
    """A response with a scalar ``score`` and/or a dict of attribute ``scores``."""

    prompt: Text
    response: Text
    score: float | None = None
    scores: dict | None = None
    source: str | None = None


@dataclass(frozen=True)
class LabelRecord:
    """A response labelled good (1) or bad (0)."""

    prompt: Text
    response: Text
    label: int
    source: str | None = None


Record = Union[PairRecord, RankRecord, RatingRecord, LabelRecord]


class PairBatch(NamedTuple):
    """Chosen rows first, then rejected rows, so both go through the model in one forward."""

    input_ids: torch.Tensor  # (2B, T)
    attention_mask: torch.Tensor  # (2B, T)
    margin: torch.Tensor  # (B,) 0 where the data has none
    tie: torch.Tensor  # (B,) bool


class RankBatch(NamedTuple):
    """B prompts × K responses flattened row-major; missing responses are padding rows (mask False)."""

    input_ids: torch.Tensor  # (B*K, T)
    attention_mask: torch.Tensor  # (B*K, T)
    ranks: torch.Tensor  # (B, K) float, lower = better
    valid: torch.Tensor  # (B, K) bool


class PointBatch(NamedTuple):
    """One response per row with a scalar / multi-attribute target (ratings) or a 0/1 label."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    target: torch.Tensor  # (B,) or (B, A)


class MixedBatch(NamedTuple):
    """One batch of each data source of a run with several (``train --data`` given more than once), forwarded
    together: the rows of ``parts[0]``, then those of ``parts[1]``, …, right-padded to the longest."""

    input_ids: torch.Tensor  # (N, T), N = the parts' rows: 2B for pairs, B*K for rankings, B for points
    attention_mask: torch.Tensor  # (N, T)
    parts: tuple  # a PairBatch / RankBatch / PointBatch per source, in --data order, each with its own tensors


class RewardOutput(NamedTuple):
    rewards: torch.Tensor  # (N,) one scalar per sequence
    hidden: torch.Tensor | None = None  # (N, C) pooled features under the head, for embedding losses
    attributes: torch.Tensor | None = None  # (N, A) a multi-attribute RM's head outputs (rewards = their weighted sum)
