"""Metric rewards against references: BLEU, chrF (sacrebleu), ROUGE (rouge-score), n-gram F1.

Each completion is compared with its own reference(s), read from the column ``reference`` (name
configurable): a string or a list of strings per completion. Values lie in [0, 1]:

    bleu   sacrebleu sentence BLEU / 100 (Papineni et al. 2002; exp smoothing, effective order —
           sacrebleu's sentence-level defaults; Post 2018 "A Call for Clarity in Reporting BLEU")
    chrf   sacrebleu sentence chrF / 100 (Popović 2015; character 6-grams, β = 2; ``word_order=2``
           gives chrF++)
    rouge  rouge-score F-measure of ``rouge_type`` (rouge1, rouge2, rougeL, rougeLsum; Lin 2004),
           Porter stemming on, best over the references
    ngram  F1 of clipped n-gram counts on lower-cased tokens (runs of letters/digits, and each
           punctuation mark on its own), best over the references:
           P = |G(y) ∩ G(ref)| / |G(y)|, R = |G(y) ∩ G(ref)| / |G(ref)|, F1 = 2PR / (P + R) (0 if empty)

These are the sequence-level rewards of "RL for text generation with metric rewards" (e.g. Ranzato
et al. 2016, MIXER; Rennie et al. 2017, self-critical sequence training).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

from rewardlab.rewards.base import check_inputs

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def _references(columns: dict, key: str, n: int) -> list[list[str]]:
    if key not in columns or columns[key] is None:
        raise ValueError(f"metric rewards need a {key!r} column (one reference or a list of references per completion); "
                         f"got columns: {sorted(columns) or 'none'}")
    refs = []
    for i, r in enumerate(columns[key]):
        group = [r] if isinstance(r, str) else list(r)
        if not group or not all(isinstance(x, str) for x in group):
            raise ValueError(f"{key}[{i}] must be a string or a non-empty list of strings, got {r!r}")
        refs.append(group)
    if len(refs) != n:
        raise ValueError(f"column {key!r} has {len(refs)} values for {n} completions")
    return refs


class BLEUReward:
    """sacrebleu sentence BLEU / 100 against the ``reference`` column (see the module docstring)."""

    def __init__(self, reference_column: str = "reference", name: str = "bleu", **bleu_args):
        from sacrebleu.metrics import BLEU

        self.metric = BLEU(effective_order=True, **bleu_args)
        self.reference_column, self.name = reference_column, name

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        n = check_inputs(prompts, completions, columns)
        refs = _references(columns, self.reference_column, n)
        return [self.metric.sentence_score(c, r).score / 100.0 for c, r in zip(completions, refs)]


class ChrFReward:
    """sacrebleu sentence chrF / 100 (``word_order=2``: chrF++) against the ``reference`` column."""

    def __init__(self, reference_column: str = "reference", word_order: int = 0, name: str = "chrf", **chrf_args):
        from sacrebleu.metrics import CHRF

        self.metric = CHRF(word_order=word_order, **chrf_args)
        self.reference_column, self.name = reference_column, name

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        n = check_inputs(prompts, completions, columns)
        refs = _references(columns, self.reference_column, n)
        return [self.metric.sentence_score(c, r).score / 100.0 for c, r in zip(completions, refs)]


class RougeReward:
    """rouge-score F-measure of ``rouge_type`` (best over references) against the ``reference`` column."""

    def __init__(self, rouge_type: str = "rougeL", reference_column: str = "reference", use_stemmer: bool = True,
                 name: str | None = None):
        if rouge_type not in ROUGE_TYPES:
            raise ValueError(f"unknown rouge type {rouge_type!r}; known: {', '.join(ROUGE_TYPES)}")
        from rouge_score.rouge_scorer import RougeScorer

        self.scorer = RougeScorer([rouge_type], use_stemmer=use_stemmer)
        self.rouge_type, self.reference_column, self.name = rouge_type, reference_column, name or rouge_type

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        n = check_inputs(prompts, completions, columns)
        refs = _references(columns, self.reference_column, n)
        return [self.scorer.score_multi(r, c)[self.rouge_type].fmeasure for c, r in zip(completions, refs)]


def ngram_f1(hypothesis: str, reference: str, n: int = 1) -> float:
    """F1 of clipped n-gram counts of lower-cased tokens (\\w+ runs and single punctuation marks; 0 when
    either side has no n-gram).

    >>> round(ngram_f1("the cat sat", "the cat ran", 1), 4)   # P = R = 2/3
    0.6667
    """
    def grams(text: str) -> Counter:
        toks = TOKEN_RE.findall(text.lower())
        return Counter(tuple(toks[i: i + n]) for i in range(len(toks) - n + 1))

    h, r = grams(hypothesis), grams(reference)
    overlap = sum((h & r).values())
    if not overlap:
        return 0.0
    p, rec = overlap / sum(h.values()), overlap / sum(r.values())
    return 2 * p * rec / (p + rec)


class NgramReward:
    """n-gram F1 (see :func:`ngram_f1`), best over the references of each completion."""

    def __init__(self, n: int = 1, reference_column: str = "reference", name: str | None = None):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n, self.reference_column, self.name = n, reference_column, name or f"ngram{n}"

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        k = check_inputs(prompts, completions, columns)
        refs = _references(columns, self.reference_column, k)
        return [max(ngram_f1(c, x, self.n) for x in r) for c, r in zip(completions, refs)]
