"""A multi-attribute RM end to end through the CLI on a tiny model: train --attributes → score → eval → plain
transformers → serve; and on SQuALITY's attribute ratings (../shared/data, skipped when absent)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewardlab.cli import app
from toydata import BAD, FILLER, GOOD, TOPICS, write_jsonl

runner = CliRunner()
NAMES = ["helpfulness", "correctness", "verbosity"]
WEIGHTS = [1.0, 0.5, -0.25]
SQ = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "squality-human-eval-all-responses.jsonl"


def run(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def last_json(out: str) -> dict:
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def rated(n: int, seed: int) -> list[dict]:
    """Toy responses rated on three attributes: helpfulness = #praise − #insults, correctness = 1 without insults
    else 0, verbosity = words / 10. Every 4th record leaves verbosity out, every 5th rates correctness null."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        good, bad = rng.randint(0, 2), rng.randint(0, 2)
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 10))] + [rng.choice(GOOD) for _ in range(good)] \
            + [rng.choice(BAD) for _ in range(bad)]
        rng.shuffle(words)
        scores = {"helpfulness": good - bad, "correctness": None if i % 5 == 0 else float(bad == 0), "verbosity": len(words) / 10}
        if i % 4 == 0:
            del scores["verbosity"]
        rows.append({"prompt": f"What do you think of {rng.choice(TOPICS)}?", "response": " ".join(words) + ".", "scores": scores})
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_llama):
    root = tmp_path_factory.mktemp("attributes")
    data = {"train": write_jsonl(root / "train.jsonl", rated(300, 1)), "test": write_jsonl(root / "test.jsonl", rated(60, 2))}
    out = root / "rm"
    run("train", "--data", data["train"], "--model", tiny_llama, "--output", out, "--loss", "mse", "--form", "ratings",
        "--attributes", ",".join(NAMES), "--attribute-weights", ",".join(map(str, WEIGHTS)), "--epochs", 3, "--lr", 3e-3,
        "--batch-size", 16, "--max-length", 64, "--eval-split", 0.1, "--no-progress")
    return out, data


def test_train_saves_a_k_label_classifier_with_names_and_weights(trained):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out, _ = trained
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): n for i, n in enumerate(NAMES)} and config["attribute_weights"] == WEIGHTS
    meta = json.loads((out / "rewardlab.json").read_text())
    # 270 training records (30 held out): verbosity missing from every 4th, correctness null in every 5th
    assert meta["attributes"]["names"] == NAMES and meta["attributes"]["weights"] == WEIGHTS
    n = meta["attributes"]["n_rated"]
    assert n["helpfulness"] == 270 and 200 <= n["verbosity"] < 270 and 200 <= n["correctness"] < 270
    held = meta["metrics"]["attribute_outputs"]
    assert set(held) == set(NAMES) and held["helpfulness"]["pearson"] > 0.2  # praise vs insults: learnt (0.63 when written)
    plain = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert plain.config.num_labels == 3 and plain.config.label2id == {n: i for i, n in enumerate(NAMES)}
    tok = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        logits = plain(**tok(["What do you think of rain? great." + tok.eos_token], return_tensors="pt")).logits
    assert logits.shape == (1, 3)


def test_score_writes_the_weighted_reward_and_the_attributes(trained, tmp_path):
    out, _ = trained
    rows = [{"prompt": "What do you think of rain?", "response": "it is great and clear."},
            {"prompt": "What do you think of chess?", "chosen": "superb.", "rejected": "rude and wrong."}]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    summary = last_json(run("score", "--model", out, "--input", src, "--output", tmp_path / "out.jsonl", "--no-progress"))
    assert summary["attributes"] == {"names": NAMES, "weights": WEIGHTS}
    got = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    for reward, values in ((got[0]["reward"], got[0]["rewards"]), (got[1]["reward_chosen"], got[1]["rewards_chosen"]),
                           (got[1]["reward_rejected"], got[1]["rewards_rejected"])):
        assert list(values) == NAMES
        assert reward == pytest.approx(sum(w * values[n] for w, n in zip(WEIGHTS, NAMES)), abs=1e-5)
    run("score", "--model", out, "--input", src, "--output", tmp_path / "plain.jsonl", "--no-attributes", "--no-progress")
    assert "rewards" not in json.loads((tmp_path / "plain.jsonl").read_text().splitlines()[0])


def test_eval_reports_per_attribute_metrics(trained, tmp_path):
    out, data = trained
    res = last_json(run("eval", "--model", out, "--data", data["test"], "--form", "ratings", "--output", tmp_path / "e",
                        "--no-report", "--bootstrap", "0", "--no-progress"))
    fit = res["attribute_outputs"]
    assert set(fit) == set(NAMES) and all({"rmse", "pearson", "spearman", "n"} <= set(v) for v in fit.values())
    assert fit["helpfulness"]["n"] == 60 and fit["verbosity"]["n"] == 45 and fit["correctness"]["n"] == 48
    assert fit["helpfulness"]["pearson"] > 0.2  # 0.37 when written
    row = json.loads((tmp_path / "e" / "examples.jsonl").read_text().splitlines()[0])
    assert list(row["rewards"]) == NAMES
    assert row["reward"] == pytest.approx(sum(w * row["rewards"][n] for w, n in zip(WEIGHTS, NAMES)), abs=1e-5)


def test_serve_returns_the_weighted_reward(trained):
    from fastapi.testclient import TestClient

    from rewardlab.config import ServeConfig
    from rewardlab.models.scoring import score_texts
    from rewardlab.serve.app import Scorer, build_app

    out, _ = trained
    cfg = ServeConfig(model=str(out))
    scorer = Scorer.load(cfg)
    items = [{"prompt": "What do you think of rain?", "response": "it is great."}, {"prompt": "", "response": "rude."}]
    rewards, _, values = score_texts(scorer.model, scorer.tokenizer, [i["prompt"] for i in items], [i["response"] for i in items],
                                     attributes=True, max_length=64)
    with TestClient(build_app(scorer, cfg)) as c:
        body = c.post("/score", json={"items": items}).json()
        assert np.allclose(body["rewards"], values @ np.array(WEIGHTS), atol=1e-5)
        assert np.allclose(body["rewards"], rewards, atol=1e-5)
        assert c.get("/health").json()["attributes"] == {"names": NAMES, "weights": WEIGHTS}


def test_squality_attribute_ratings_train_score_eval(tmp_path, tiny_llama):
    """SQuALITY's 300 responses rated 0–100 on correctness, selection and overall: a 3-output RM trains on 90%,
    scores, and eval reports each output against its ratings on the 30 held out."""
    if not SQ.exists():
        pytest.skip(f"real data {SQ.name} not found in {SQ.parent} (a clone without the shared data folder)")
    names = ["correctness", "selection", "overall"]
    out = tmp_path / "rm"
    meta = last_json(run("train", "--data", SQ, "--model", tiny_llama, "--output", out, "--loss", "mse", "--form", "ratings",
                         "--attributes", ",".join(names), "--epochs", 1, "--lr", 3e-3, "--batch-size", 16, "--max-length", 64,
                         "--eval-split", 0.1, "--no-progress"))
    assert set(meta["attribute_outputs"]) == set(names)
    info = json.loads((out / "rewardlab.json").read_text())["attributes"]
    assert info["n_rated"] == {n: 270 for n in names} and info["weights"] == pytest.approx([1 / 3] * 3)
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "SQuALITY passage 1, question 0", "response": "A short summary."}])
    run("score", "--model", out, "--input", src, "--output", tmp_path / "s.jsonl", "--no-progress")
    row = json.loads((tmp_path / "s.jsonl").read_text())
    assert list(row["rewards"]) == names and row["reward"] == pytest.approx(np.mean(list(row["rewards"].values())), abs=1e-5)
    res = last_json(run("eval", "--model", out, "--data", SQ, "--form", "ratings", "--output", tmp_path / "e.json",
                        "--bootstrap", "0", "--no-progress"))
    assert {n: v["n"] for n, v in res["attribute_outputs"].items()} == {n: 300 for n in names}
    assert all(v["rmse"] is not None for v in res["attribute_outputs"].values())
