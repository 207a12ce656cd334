"""Real human-preference data from <repo>/../shared/data (skipped when absent): pinned record counts."""

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from rewardlab.data import load_records, rankings_to_pairs, ratings_to_pairs
from rewardlab.data.records import DataError

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
HH = DATA / "hh-rlhf-harmless-base-test.jsonl.gz"
FGR = DATA / "finegrainedrlhf-qa-feedback-dev.json"
SQ = DATA / "squality-human-eval-all-responses.jsonl"


def need(path: Path) -> str:
    if not path.exists():
        pytest.skip(f"real data {path.name} not found in {DATA} (a clone without the shared data folder)")
    return str(path)


def test_hh_rlhf_harmless_test_split():
    """2,312 rows: 2,303 load. 4 have an empty last assistant turn in 'chosen' (lines 87, 517, 926, 1104);
    5 have transcripts that differ before the last assistant turn (lines 1255, 1689, 1951, 1953, 2037:
    turn markers without the blank line, or two assistant turns in a row)."""
    path = need(HH)
    with pytest.raises(DataError, match=":87: field 'chosen': expected a non-empty last assistant turn"):
        load_records(path)
    records, report = load_records(path, on_bad_record="skip")
    assert (report.n_read, report.n_loaded, report.n_skipped) == (2312, 2303, 9)
    assert report.detected == "hh-rlhf transcripts"
    lines = [int(m.split(":")[1]) for m in (s.replace(path, "") for s in report.skipped)]
    assert lines == [87, 517, 926, 1104, 1255, 1689, 1951, 1953, 2037]
    assert sum("empty last assistant turn" in s for s in report.skipped) == 4
    assert sum("share every turn but the last" in s for s in report.skipped) == 5
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f]
    for r in records:  # prompt + response gives back each original transcript
        row = rows[int(r.source.rsplit(":", 1)[1]) - 1]
        assert r.prompt.endswith("\n\nAssistant:")
        assert (r.prompt + r.chosen, r.prompt + r.rejected) == (row["chosen"], row["rejected"])


def test_finegrainedrlhf_pairs_and_rankings():
    """500 questions × 6 comparisons = 3,000 pairs, 384 ties (as published). Rankings by win count: 500;
    22 questions have outcomes no ranking reproduces (inconsistent ties), so converting the ranks back to
    pairs gives 2,670 strict pairs and 330 equal-rank pairs instead of 2,616 and 384."""
    path = need(FGR)
    records, report = load_records(path)
    assert report.detected == "finegrainedrlhf"
    assert (report.n_read, report.n_loaded, report.n_skipped) == (500, 3000, 0)
    assert sum(r.tie for r in records) == 384
    ranked, report = load_records(path, form="rankings")
    assert len(ranked) == 500 and all(len(r.responses) == 4 for r in ranked)
    assert "22 question(s)" in report.notes[-1]
    assert len(rankings_to_pairs(ranked)) == 2670
    assert len(rankings_to_pairs(ranked, ties="keep")) == 3000
    with_passages, _ = load_records(path, include_passages=True, limit=6)
    assert with_passages[0].prompt.startswith(records[0].prompt + "\n\nPassages:\n[1] ")


def test_squality_ratings_and_rankings():
    """20 passages × 5 questions × 3 systems = 300 ratings and 100 rankings. By mean overall rating the
    human summary beats both BART systems on every question; bart-dpr beats bart on 70, bart wins 29,
    1 tie. Mean overall ranks tie on 2 questions."""
    path = need(SQ)
    ratings, report = load_records(path, form="ratings")
    assert (report.n_read, report.n_loaded, report.detected) == (20, 300, "squality")
    assert Counter(r.source.rsplit(" ", 1)[1] for r in ratings) == {"bart": 100, "bart-dpr": 100, "human": 100}
    assert all(set(r.scores) == {"correctness", "selection", "overall"} for r in ratings)
    assert all(0 <= r.score <= 100 for r in ratings)
    system = {(r.prompt, r.response): r.source.rsplit(" ", 1)[1] for r in ratings}
    pairs = ratings_to_pairs(ratings)
    assert len(pairs) == 299 and len(ratings_to_pairs(ratings, ties="keep")) == 300
    assert Counter((system[p.prompt, p.chosen], system[p.prompt, p.rejected]) for p in pairs) == {
        ("human", "bart"): 100, ("human", "bart-dpr"): 100, ("bart-dpr", "bart"): 70, ("bart", "bart-dpr"): 29}
    ranked, _ = load_records(path, form="rankings")
    assert len(ranked) == 100 and sum(len(set(r.ranks)) < 3 for r in ranked) == 2
