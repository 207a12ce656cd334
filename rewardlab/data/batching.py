"""Tokenise records and build batches: length-grouped, dynamically padded, one forward per batch.

Pairs put chosen rows first and rejected rows second in one (2B, T) tensor, so both go through the
model in a single forward pass. Truncation is explicit: ``truncate`` cuts a sequence from the side
the caller names and every cut is counted in a ``TruncationReport``.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np
import torch

from rewardlab.data.sequence import encode_pairs
from rewardlab.types import LabelRecord, MixedBatch, PairBatch, PairRecord, PointBatch, RankBatch, RankRecord, RatingRecord

TRUNCATION_SIDES = ("left", "right")


@dataclass
class TruncationReport:
    """How many sequences were cut to ``max_length``, and from which side."""

    max_length: int
    side: str
    n_examples: int = 0
    n_truncated_examples: int = 0  # examples (pairs, rankings, …) with at least one sequence cut
    n_sequences: int = 0
    n_truncated_sequences: int = 0
    by_field: dict = field(default_factory=dict)  # e.g. {"chosen": 3, "rejected": 5}

    def summary(self) -> dict:
        return dict(self.__dict__)

    def message(self) -> str:
        if not self.n_truncated_examples:
            return f"no sequence longer than max_length={self.max_length}"
        fields = ", ".join(f"{k}: {v}" for k, v in self.by_field.items())
        return (f"{self.n_truncated_examples}/{self.n_examples} examples cut to max_length={self.max_length} "
                f"from the {self.side} ({fields})")


def truncate(ids: list[int], max_length: int, side: str, keep_first: bool, keep_last: bool) -> list[int]:
    """Cut ``ids`` to ``max_length`` from ``side``, keeping a leading BOS/CLS and a trailing EOS/SEP if asked."""
    if len(ids) <= max_length:
        return ids
    head = ids[:1] if keep_first else []
    tail = ids[-1:] if keep_last else []
    body = ids[len(head): len(ids) - len(tail)]
    room = max_length - len(head) - len(tail)
    body = body[len(body) - room:] if side == "left" else body[:room]
    return head + body + tail


class Encoder:
    """Turns (prompt, response) into token ids of at most ``max_length`` and counts truncation.

    ``side="left"`` (default) cuts the start of the text, so the response — where a decoder reads the
    reward — survives; ``side="right"`` cuts the end. Token ids follow the sequence convention
    (:mod:`rewardlab.data.sequence`; ``append_eos`` as there).
    """

    def __init__(self, tokenizer, max_length: int, side: str = "left", append_eos: bool = False):
        if side not in TRUNCATION_SIDES:
            raise ValueError(f"unknown truncation side {side!r}; known: {', '.join(TRUNCATION_SIDES)}")
        if max_length < 4:
            raise ValueError(f"max_length must be at least 4, got {max_length}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.side = side
        self.append_eos = append_eos
        self.report = TruncationReport(max_length, side)
        specials = {tokenizer.bos_token_id, tokenizer.cls_token_id} - {None}
        self._first = specials
        self._last = {tokenizer.eos_token_id, tokenizer.sep_token_id} - {None}

    def cut(self, ids: list[int], name: str) -> list[int]:
        """``ids`` at most ``max_length`` long (a leading BOS/CLS and a trailing EOS/SEP kept), counted in the report."""
        self.report.n_sequences += 1
        if len(ids) <= self.max_length:
            return ids
        self.report.n_truncated_sequences += 1
        self.report.by_field[name] = self.report.by_field.get(name, 0) + 1
        return truncate(ids, self.max_length, self.side, ids[0] in self._first, ids[-1] in self._last)

    def encode_example(self, prompt, responses: list, names: list[str]) -> list[list[int]]:
        """Encode several responses to one prompt; counts the example once if any of them is cut."""
        seqs = encode_pairs(self.tokenizer, [prompt] * len(responses), responses, self.append_eos)
        out = [self.cut(ids, name) for ids, name in zip(seqs, names)]
        self.report.n_examples += 1
        self.report.n_truncated_examples += any(len(a) != len(b) for a, b in zip(out, seqs))
        return out


@dataclass
class Encoded:
    """Token ids of one example: ``seqs`` is [chosen, rejected] for pairs, K responses for rankings, one for points."""

    seqs: list
    margin: float = 0.0
    tie: bool = False
    ranks: tuple = ()
    target: object = None

    def __post_init__(self):
        # int32 arrays, not lists of Python ints: ~9× less memory for a training set held for the whole run
        self.seqs = [s if isinstance(s, array) else array("i", s) for s in self.seqs]

    @property
    def length(self) -> int:
        return max(len(s) for s in self.seqs)


def record_parts(record) -> tuple:
    """(prompt, responses, field names) of a record: [chosen, rejected] for pairs, K for rankings, 1 otherwise."""
    if isinstance(record, PairRecord):
        return record.prompt, [record.chosen, record.rejected], ["chosen", "rejected"]
    if isinstance(record, RankRecord):
        return record.prompt, list(record.responses), [f"response_{i}" for i in range(len(record.responses))]
    if isinstance(record, (RatingRecord, LabelRecord)):
        return record.prompt, [record.response], ["response"]
    raise TypeError(f"cannot use {type(record).__name__}; expected PairRecord, RankRecord, RatingRecord or LabelRecord")


def example_fields(record, attributes: list[str] | None = None, label_and_score: bool = False) -> dict:
    """What a batch holds of a record besides its tokens (``Encoded``'s fields): margin and tie of a pair, the
    ranks of a ranking, the target of a rating or label.

    ``attributes`` orders a ratings ``scores`` dict into a target vector. ``label_and_score``: pointwise targets
    become [label, score] with NaN for the missing one, so label records and rating records can train one head
    together (the ``bce_mse`` loss).
    """
    nan = float("nan")
    if isinstance(record, PairRecord):
        return {"margin": 0.0 if record.margin is None else float(record.margin), "tie": bool(record.tie)}
    if isinstance(record, RankRecord):
        return {"ranks": tuple(float(x) for x in record.ranks)}
    if isinstance(record, RatingRecord):
        if attributes:  # NaN: not rated, masked out of the loss (losses/pointwise.py)
            target = [float((record.scores or {}).get(a, nan)) for a in attributes]
        else:
            target = float(record.score) if record.score is not None else float(sum(record.scores.values()) / len(record.scores))
        return {"target": [nan, target] if label_and_score else target}
    return {"target": [float(record.label), nan] if label_and_score else float(record.label)}


def encode_records(records: list, encoder: Encoder, attributes: list[str] | None = None,
                   label_and_score: bool = False) -> list[Encoded]:
    """Encode records of one form: their token ids (``encoder``) and batch fields (``example_fields``)."""
    out = []
    for r in records:
        prompt, responses, names = record_parts(r)
        out.append(Encoded(encoder.encode_example(prompt, responses, names), **example_fields(r, attributes, label_and_score)))
    return out


def length_grouped_batches(lengths, batch_size: int, seed: int, epoch: int = 0, group: int = 50,
                           stream: tuple = ()) -> list[list[int]]:
    """Shuffled batches of similar length, deterministic in (seed, epoch, *stream).

    Shuffle, cut into mega-batches of ``batch_size * group`` examples, sort each by length, cut into
    batches, shuffle the batches. Padding then costs little and the order is still random. ``stream``
    (source, pass) gives each source of a mixed run, and each of its passes, its own order.
    """
    rng = np.random.default_rng([seed, epoch, *stream])
    lengths = np.asarray(lengths)
    perm = rng.permutation(len(lengths))
    batches = []
    mega = batch_size * group
    for start in range(0, len(perm), mega):
        chunk = perm[start: start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i: i + batch_size].tolist() for i in range(0, len(chunk), batch_size)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def mixed_batches(lengths: list, batch_size: int, seed: int, epoch: int = 0) -> list[list[int]]:
    """The batches of a run with several sources (``lengths``: one list per source), as indices into the sources'
    concatenation: step k takes the k-th length-grouped batch of every source, source by source.

    One batch of each source per step, not batches drawn from the pooled records: the loss of a step then holds
    every source's term with the weight it was given (``losses.objective.mixed_objective``), whatever the
    sources' sizes, and each source keeps its own collation (pairs, rankings, points). An epoch is one pass
    over the source with the most batches; a source that runs out first starts another pass in a new order
    (``stream=(source, pass)``), so its records come round more than once an epoch.
    """
    n_steps = max(-(-len(x) // batch_size) for x in lengths)
    offset, steps = 0, [[] for _ in range(n_steps)]
    for s, source_lengths in enumerate(lengths):
        plan, n_pass = [], 0
        while len(plan) < n_steps:
            plan += length_grouped_batches(source_lengths, batch_size, seed, epoch, stream=(s, n_pass))
            n_pass += 1
        for k in range(n_steps):
            steps[k] += [offset + i for i in plan[k]]
        offset += len(source_lengths)
    return steps


PADDING_SIDES = ("right", "left")


def pad(seqs: list[list[int]], pad_id: int, multiple: int = 1, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) of shape (N, T): padded on ``side`` to the longest, rounded up to a ``multiple``. An empty
    sequence becomes one pad token with mask 1."""
    if side not in PADDING_SIDES:
        raise ValueError(f"unknown padding side {side!r}; known: {', '.join(PADDING_SIDES)}")
    seqs = [s if s else [pad_id] for s in seqs]
    T = max(len(s) for s in seqs)
    T += -T % multiple
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        span = slice(0, len(s)) if side == "right" else slice(T - len(s), T)
        ids[i, span] = torch.tensor(s, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def collate_pairs(examples: list[Encoded], pad_id: int) -> PairBatch:
    ids, mask = pad([e.seqs[0] for e in examples] + [e.seqs[1] for e in examples], pad_id)  # (2B, T)
    margin = torch.tensor([e.margin for e in examples], dtype=torch.float32)  # (B,)
    tie = torch.tensor([e.tie for e in examples], dtype=torch.bool)  # (B,)
    return PairBatch(ids, mask, margin, tie)


def collate_rankings(examples: list[Encoded], pad_id: int) -> RankBatch:
    K = max(len(e.seqs) for e in examples)
    seqs, ranks, valid = [], [], []
    for e in examples:
        k = len(e.seqs)
        seqs += e.seqs + [[pad_id]] * (K - k)  # padding rows: one token, ignored through `valid`
        ranks.append(list(e.ranks) + [0.0] * (K - k))
        valid.append([True] * k + [False] * (K - k))
    ids, mask = pad(seqs, pad_id)  # (B*K, T)
    return RankBatch(ids, mask, torch.tensor(ranks, dtype=torch.float32), torch.tensor(valid))


def collate_points(examples: list[Encoded], pad_id: int) -> PointBatch:
    ids, mask = pad([e.seqs[0] for e in examples], pad_id)  # (B, T)
    return PointBatch(ids, mask, torch.tensor([e.target for e in examples], dtype=torch.float32))


COLLATORS = {"pairs": collate_pairs, "rankings": collate_rankings, "ratings": collate_points, "labels": collate_points}


def collate_mixed(examples: list[tuple[int, Encoded]], forms: list[str], pad_id: int) -> MixedBatch:
    """A step of a run with several sources: ``examples`` are (source, example) pairs; each source's examples are
    collated by its form's collator, and their rows are stacked, right-padded to the longest, for one forward."""
    parts = tuple(COLLATORS[form]([e for s, e in examples if s == k], pad_id) for k, form in enumerate(forms))
    T = max(p.input_ids.shape[1] for p in parts)
    widen = lambda x, value: torch.nn.functional.pad(x, (0, T - x.shape[1]), value=value)  # noqa: E731
    ids = torch.cat([widen(p.input_ids, pad_id) for p in parts])  # (N, T)
    mask = torch.cat([widen(p.attention_mask, 0) for p in parts])  # (N, T)
    return MixedBatch(ids, mask, parts)
