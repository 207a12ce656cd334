"""Real transcripts: HH-RLHF harmless-base test split from ../shared/data (skipped when absent)."""

import json

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

HH = SHARED_DATA / "hh-rlhf-harmless-base-test.jsonl.gz"
runner = CliRunner()


@pytest.mark.skipif(not HH.is_file(), reason=f"{HH} not present (the shared data folder is not part of a user's clone)")
def test_train_and_eval_on_hh_rlhf(tmp_path, tiny_llama):
    from rewardlab.data.formats import load_records

    records, report = load_records(str(HH), form="pairs", on_bad_record="skip")
    assert report.n_read == 2312 and len(records) == 2303 and report.n_skipped == 9
    assert records[0].prompt.startswith("\n\nHuman:") and records[0].prompt.endswith("\n\nAssistant:")
    out = tmp_path / "rm"
    r = runner.invoke(app, ["train", "--data", str(HH), "--model", str(tiny_llama), "--output", str(out), "--limit", "300",
                            "--max-length", "48", "--batch-size", "16", "--lr", "1e-3", "--max-steps", "6", "--eval-split", "0.2",
                            "--on-bad-record", "skip", "--no-progress"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "rewardlab.json").read_text())
    trunc = meta["truncation"]
    assert trunc["max_length"] == 48 and trunc["side"] == "left"
    assert trunc["n_truncated_examples"] > 0 and trunc["by_field"]  # real transcripts are longer than 48 tokens
    assert "cut to max_length=48" in r.output
    r = runner.invoke(app, ["eval", "--model", str(out), "--data", str(HH), "--limit", "200", "--on-bad-record", "skip"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    metrics = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])
    assert metrics["n_pairs"] == 200 and 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["truncation"]["n_truncated_examples"] > 0


FGR = SHARED_DATA / "finegrainedrlhf-qa-feedback-dev.json"
SQ = SHARED_DATA / "squality-human-eval-all-responses.jsonl"


@pytest.mark.parametrize("path,form,loss", [(FGR, "rankings", "plackett_luce"), (FGR, "pairs", "ties"), (SQ, "ratings", "mse")])
def test_train_on_real_rankings_ties_and_ratings(path, form, loss, tmp_path, tiny_llama):
    if not path.is_file():
        pytest.skip(f"{path} not present (the shared data folder is not part of a user's clone)")
    out = tmp_path / "rm"
    r = runner.invoke(app, ["train", "--data", str(path), "--form", form, "--model", str(tiny_llama), "--output", str(out), "--loss", loss,
                            "--limit", "80", "--max-length", "48", "--batch-size", "8", "--lr", "1e-3", "--max-steps", "4",
                            "--eval-split", "0.25", "--no-progress"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "rewardlab.json").read_text())
    assert meta["data_form"] == form and meta["data"]["train"]["n_loaded"] == 80
    assert meta["data"]["train"]["detected"].lower().startswith(("finegrained", "squality"))
    key = "spearman" if form == "ratings" else "accuracy"
    assert meta["metrics"][key] is not None
