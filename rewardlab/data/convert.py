"""Conversions between data forms: rankings → pairs, ratings → pairs, pairwise outcomes → ranks.

Why there is no ``pairs_to_labels``: a pair says only that ``chosen`` is better than ``rejected`` for one
prompt, a *relative* judgment. Bradley–Terry (1952) models it through r(chosen) − r(rejected), which is
unchanged when a constant is added to every reward, so a pair carries no information about the absolute
level a "good"/"bad" label needs: both responses can be bad (HH-RLHF harmless often pairs two harmful
answers) or both good. Labelling chosen = 1 and rejected = 0 would invent that information, so rewardlab
does not offer it. Going the other way (ratings → pairs, rankings → pairs) only drops information.
"""

from __future__ import annotations

import json

from rewardlab.types import PairRecord, RankRecord, RatingRecord

TIES = ("skip", "keep")


def _check_ties(ties: str) -> None:
    if ties not in TIES:
        raise ValueError(f"unknown ties option {ties!r}; known: {', '.join(TIES)}")


def rankings_to_pairs(records: list[RankRecord], ties: str = "skip") -> list[PairRecord]:
    """All C(K, 2) pairs of each ranking; the better-ranked (lower rank) response is ``chosen``.

    margin = rank(rejected) − rank(chosen) ≥ 0, the rank gap (Llama 2's margin idea, Touvron et al. 2023,
    applied to ranks). Pairs with equal ranks are dropped (``ties="skip"``, default) or kept with
    ``tie=True`` and margin 0 (``ties="keep"``), in the order the responses appear. Pairs come in record
    order, then i < j; ``source`` is "<record source> pair i-j" (0-based response positions).
    """
    _check_ties(ties)
    out = []
    for rec in records:
        if not isinstance(rec, RankRecord):
            raise TypeError(f"rankings_to_pairs needs RankRecords, got {type(rec).__name__}")
        K = len(rec.responses)
        for i in range(K):
            for j in range(i + 1, K):
                gap = rec.ranks[j] - rec.ranks[i]  # > 0: i is better
                if gap == 0 and ties == "skip":
                    continue
                a, b = (i, j) if gap >= 0 else (j, i)
                out.append(PairRecord(rec.prompt, rec.responses[a], rec.responses[b], margin=float(abs(gap)),
                                      tie=gap == 0, source=_join(rec.source, f"pair {i}-{j}")))
    return out


def _join(source: str | None, what: str) -> str:
    return f"{source} {what}" if source else what


def _prompt_key(prompt) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def ratings_to_pairs(records: list[RatingRecord], min_gap: float = 0.0, ties: str = "skip",
                     attribute: str | None = None) -> list[PairRecord]:
    """Pairs of rated responses to the same prompt; the higher-scored response is ``chosen``.

    Records are grouped by prompt (equal strings or equal message lists), groups in order of first
    appearance, pairs i < j within a group in record order. For each pair, gap = s_i − s_j with s the
    ``score`` (or ``scores[attribute]`` when ``attribute`` is given); margin = |gap|.

    * gap = 0: a tie; dropped (``ties="skip"``, default) or kept with ``tie=True``, margin 0 (``ties="keep"``).
    * 0 < |gap| < ``min_gap`` (default 0.0: keep all): too close to call, dropped.
    * two identical responses carry no preference and are dropped.

    A record without the score asked for is an error (nothing is filled in).
    """
    _check_ties(ties)
    if min_gap < 0:
        raise ValueError(f"min_gap must be >= 0, got {min_gap}")
    groups: dict[str, list[tuple[RatingRecord, float]]] = {}
    for rec in records:
        if not isinstance(rec, RatingRecord):
            raise TypeError(f"ratings_to_pairs needs RatingRecords, got {type(rec).__name__}")
        if attribute is None:
            if rec.score is None:
                raise ValueError(f"{rec.source}: no 'score' (it has scores {sorted(rec.scores or {})}); "
                                 f"pass attribute=NAME to use one of them")
            s = rec.score
        else:
            if not rec.scores or attribute not in rec.scores:
                raise ValueError(f"{rec.source}: no score for attribute {attribute!r}; known: "
                                 f"{', '.join(sorted(rec.scores or {})) or 'none'}")
            s = rec.scores[attribute]
        groups.setdefault(_prompt_key(rec.prompt), []).append((rec, float(s)))
    out = []
    for group in groups.values():
        for i in range(len(group)):
            for j in range(i + 1, len(group)):
                (ri, si), (rj, sj) = group[i], group[j]
                gap = si - sj
                if ri.response == rj.response or (gap == 0 and ties == "skip") or 0 < abs(gap) < min_gap:
                    continue
                a, b = (ri, rj) if gap >= 0 else (rj, ri)
                out.append(PairRecord(ri.prompt, a.response, b.response, margin=abs(gap), tie=gap == 0,
                                      source=f"{a.source} {'>' if gap else '='} {b.source}"
                                      if a.source or b.source else None))
    return out


def pairwise_to_ranks(k: int, outcomes: dict[tuple[int, int], int]) -> tuple[float, ...]:
    """Ranks (1 = best, ties share the better rank) of ``k`` items from pairwise outcomes, by win count.

    ``outcomes[(i, j)]`` for i < j: 1 = i preferred, 2 = j preferred, 0 = tie (FineGrainedRLHF's coding).
    Each item scores wins + ½·ties (the Copeland score), and rank_i = 1 + #{j : score_j > score_i}
    (competition ranking: scores 2.5, 2.5, 1, 0 → ranks 1, 1, 3, 4).

    When the outcomes are a consistent weak order (transitive, ties consistent) these ranks reproduce every
    outcome exactly. When they are not (a cycle a > b > c > a, or a = b, b = c but a > c) no ranking can;
    the win count is then the usual compromise and :func:`ranks_agree` reports the disagreement.
    Items with no outcome given score nothing against each other.
    """
    score = [0.0] * k
    for (i, j), v in outcomes.items():
        if not 0 <= i < j < k:
            raise ValueError(f"outcome key {(i, j)} must satisfy 0 <= i < j < {k}")
        if v == 1:
            score[i] += 1.0
        elif v == 2:
            score[j] += 1.0
        elif v == 0:
            score[i] += 0.5
            score[j] += 0.5
        else:
            raise ValueError(f"outcome {v!r} for {(i, j)}: expected 1 (first preferred), 2 (second) or 0 (tie)")
    return tuple(float(1 + sum(s > mine for s in score)) for mine in score)


def ranks_agree(ranks, outcomes: dict[tuple[int, int], int]) -> bool:
    """True when ``ranks`` reproduce every pairwise outcome (1: i ranked better, 2: j better, 0: equal)."""
    want = {1: lambda a, b: a < b, 2: lambda a, b: a > b, 0: lambda a, b: a == b}
    return all(want[v](ranks[i], ranks[j]) for (i, j), v in outcomes.items())
