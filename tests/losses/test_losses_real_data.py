"""Losses on real human preferences with ties: FineGrainedRLHF QA-feedback (dev), 500 questions × 4
responses, 6 comparisons per question (1 = first preferred, 2 = second, 0 = tie).

A "model" that scores each response by its Copeland score (wins − losses among the 4) agrees with
the labels far better than chance, so every loss must be lower for it than for the reversed scores,
and the tie-aware loss must prefer equal rewards on tie pairs. Values must be finite throughout.
"""

import json
from pathlib import Path

import pytest
import torch

from rewardlab.losses import LOSSES

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "finegrainedrlhf-qa-feedback-dev.json"
PAIRS = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]

pytestmark = pytest.mark.skipif(not DATA.exists(), reason=f"real data not found at {DATA} (shared/data is absent)")


@pytest.fixture(scope="module")
def comparisons():
    """(question, i, j, outcome) for the first 200 questions; outcome 1: i ≻ j, 2: j ≻ i, 0: tie."""
    rows = json.loads(DATA.read_text())[:200]
    out = []
    for q, row in enumerate(rows):
        pref = row["preference"]
        pref = [int(c) for c in pref] if isinstance(pref, (list, tuple)) else [int(c) for c in str(pref).split(",")]
        out += [(q, i, j, o) for (i, j), o in zip(PAIRS, pref)]
    return out


def copeland(comparisons, n_questions=200):
    score = torch.zeros(n_questions, 4, dtype=torch.float64)
    for q, i, j, o in comparisons:
        if o == 1:
            score[q, i] += 1
            score[q, j] -= 1
        elif o == 2:
            score[q, j] += 1
            score[q, i] -= 1
    return score


def test_pairwise_losses_prefer_consistent_rewards(comparisons):
    score = copeland(comparisons)
    strict = [(q, i, j) if o == 1 else (q, j, i) for q, i, j, o in comparisons if o != 0]
    q, c, r = (torch.tensor(x) for x in zip(*strict))
    ties = [(q_, i, j) for q_, i, j, o in comparisons if o == 0]
    assert len(strict) > 500 and len(ties) > 50  # the file has ties, as its README says
    for name, spec in LOSSES.items():
        if spec.family != "pairwise":
            continue
        kw = {"margin": torch.zeros(len(strict), dtype=torch.float64)} if "margin" in spec.inputs else {}
        good = spec.fn(score[q, c], score[q, r], **kw, **spec.defaults).mean()
        bad = spec.fn(score[q, r], score[q, c], **kw, **spec.defaults).mean()
        assert torch.isfinite(good) and good < bad, name
    tq, ti, tj = (torch.tensor(x) for x in zip(*ties))
    tie = torch.ones(len(ties), dtype=torch.bool)
    equal = LOSSES["ties"].fn(score[tq, ti] * 0, score[tq, tj] * 0, tie=tie).mean()
    apart = LOSSES["ties"].fn(score[tq, ti] * 0 + 3, score[tq, tj] * 0, tie=tie).mean()
    assert equal < apart


def test_listwise_losses_on_copeland_rankings(comparisons):
    """Ranks from the Copeland score (ties where scores are equal): the scores themselves fit better than
    their negation under every listwise loss."""
    score = copeland(comparisons)
    ranks = -score  # lower = better, equal = tie
    valid = torch.ones_like(score, dtype=torch.bool)
    for name, spec in LOSSES.items():
        if spec.family != "listwise":
            continue
        good, bad = spec.fn(score, ranks, valid).mean(), spec.fn(-score, ranks, valid).mean()
        assert torch.isfinite(good) and good < bad, name
