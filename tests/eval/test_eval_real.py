"""``rewardlab eval`` on real human-preference files in ../shared/data (skipped when the folder is absent).

A tiny random model and ``--limit`` keep these fast; they check that real files go through the whole
path (loading with skips, scoring, metrics, outputs), not what a random model scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
HH = SHARED_DATA / "hh-rlhf-harmless-base-test.jsonl.gz"
FG = SHARED_DATA / "finegrainedrlhf-qa-feedback-dev.json"
ABSENT = "not present (../shared/data is not part of a user's clone)"


def eval_cli(*args) -> dict:
    res = CliRunner().invoke(app, ["eval", *map(str, args), "--no-progress", "--bootstrap", "200"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads([line for line in res.stdout.splitlines() if line.startswith("{")][-1])


@pytest.mark.skipif(not HH.is_file(), reason=f"{HH} {ABSENT}")
def test_eval_hh_rlhf_skips_malformed_records(tiny_llama, tmp_path):
    """HH-RLHF harmless-base: its first malformed record is line 87 (an empty last assistant turn in
    ``chosen``). With --limit 100 and --on-bad-record skip, 101 rows are read, 1 skipped, 100 pairs scored;
    without skip, the error names that line. HH conversations exceed 64 tokens: the cuts are counted."""
    out = eval_cli("--model", tiny_llama, "--data", HH, "--on-bad-record", "skip", "--limit", "100",
                   "--max-length", "64", "--output", tmp_path / "hh")
    assert out["n_pairs"] == 100 and out["data"]["detected"] == "hh-rlhf transcripts"
    assert (out["data"]["n_read"], out["data"]["n_skipped"]) == (101, 1)
    assert out["truncation"]["n_truncated_sequences"] > 0 and out["max_length"] == 64
    assert 0 <= out["accuracy_ci95"][0] <= out["accuracy"] <= out["accuracy_ci95"][1] <= 1
    rows = (tmp_path / "hh" / "examples.jsonl").read_text().splitlines()
    assert len(rows) == 100 and (tmp_path / "hh" / "report.html").is_file()
    res = CliRunner().invoke(app, ["eval", "--model", str(tiny_llama), "--data", str(HH), "--limit", "100"])
    assert res.exit_code != 0 and "jsonl.gz:87" in res.output and "--on-bad-record skip" in res.output


@pytest.mark.skipif(not FG.is_file(), reason=f"{FG} {ABSENT}")
def test_eval_finegrainedrlhf_rankings_with_ties(tiny_llama, tmp_path):
    """FineGrainedRLHF as rankings: 4 responses per question, ranks from the 6 pairwise outcomes with
    ties. Pairs inside a ranking are only those with different ranks, so n_pairs equals the count of
    rank_i < rank_j over the loaded questions; best-of-K chance is the share of best-ranked responses."""
    from rewardlab.data.formats import load_records

    limit = 12
    out = eval_cli("--model", tiny_llama, "--data", FG, "--form", "rankings", "--limit", limit, "--max-length", "64",
                   "--output", tmp_path / "fg")
    records, _ = load_records(str(FG), form="rankings", limit=limit)
    strict = sum(a < b for r in records for a in r.ranks for b in r.ranks)
    tied = sum(len(set(r.ranks)) < len(r.ranks) for r in records)
    assert tied > 0  # the data really has ties
    assert out["form"] == "rankings" and out["data"]["detected"] == "finegrainedrlhf"
    assert out["n_pairs"] == strict and out["n_groups"] + out["n_groups_skipped"] == limit
    assert 0.25 <= out["chance_best_of_k"] <= 1 and 0 <= out["best_of_k_accuracy"] <= 1
    assert (tmp_path / "fg" / "report.html").is_file()
