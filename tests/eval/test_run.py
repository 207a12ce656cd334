"""``run_eval`` end to end: layouts, forms, comparisons and output files.

Most tests swap ``run.load_scorer`` for models with known behaviour (``eval.helpers``), so every number
is derived by hand; one test goes through the CLI with a real tiny Llama checkpoint.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from eval.helpers import LengthRM, WordRM, word_tokenizer, write_jsonl
from rewardlab.cli import app
from rewardlab.config import EvalConfig
from rewardlab.eval import run as R
from rewardlab.eval.layouts import detect_layout, load_eval_data

# RewardBench v1 layout. WordRM: reward = #good − #bad.
RB1_ROWS = [
    {"prompt": "q", "chosen": "good", "rejected": "bad", "subset": "alpacaeval-easy"},  # Δ 2   ✓
    {"prompt": "q", "chosen": "x", "rejected": "good", "subset": "alpacaeval-easy"},  # Δ −1  ✗
    {"prompt": "q", "chosen": "good good", "rejected": "good", "subset": "mt-bench-hard"},  # Δ 1 ✓
    {"prompt": "q", "chosen": "ok", "rejected": "fine", "subset": "math-prm"},  # Δ 0 (tie) ✗
    {"prompt": "q", "chosen": "good", "rejected": "x", "subset": "hep-python"},  # Δ 1   ✓
    {"prompt": "q", "chosen": "good", "rejected": "bad", "subset": "anthropic_helpful"},  # Δ 2 ✓
]
# RewardBench 2 layout: one chosen, three rejected.
RB2_ROWS = [
    {"prompt": "q", "chosen": ["good"], "rejected": ["bad", "x", "good x"], "subset": "Focus", "id": "0"},  # tie at max: ½
    {"prompt": "q", "chosen": ["good good"], "rejected": ["good", "x", "bad"], "subset": "Focus", "id": "1"},  # 1
    {"prompt": "q", "chosen": ["x"], "rejected": ["good", "x y", "bad"], "subset": "Math", "id": "2"},  # 0
]


@pytest.fixture
def fake_models(monkeypatch):
    """Model path "word" → WordRM, "length" → LengthRM, both with the word tokenizer."""
    tok = word_tokenizer()

    def load(path, cfg):
        return {"word": WordRM(tok), "length": LengthRM()}[path], tok, {}

    monkeypatch.setattr(R, "load_scorer", load)


def cfg(**kw) -> EvalConfig:
    return EvalConfig(progress=False, bootstrap=200, **kw)


def test_layout_detection():
    assert detect_layout(RB1_ROWS[0]) == "rewardbench"
    assert detect_layout(RB2_ROWS[0]) == "rewardbench2"
    assert detect_layout({"prompt": "q", "chosen": "a", "rejected": "b"}) == "plain"
    assert detect_layout({"chosen": [{"role": "user", "content": "a"}], "rejected": [{"role": "user", "content": "b"}]}) == "plain"


def test_rewardbench_v1_sections_by_hand(fake_models, tmp_path):
    """Subset accuracies: alpacaeval-easy ½, mt-bench-hard 1, math-prm 0 (a tie is wrong), hep-python 1,
    anthropic_helpful 1. Chat ½, Chat Hard 1, Reasoning (984·0 + 164·1)/(984 + 164) = 1/7, Prior Sets 1,
    no Safety: Score = (2·½ + 2·1 + 2·(1/7) + 1·1)/7 = (4 + 2/7)/7. Overall pairwise accuracy 4/6."""
    data = write_jsonl(tmp_path / "rb.jsonl", RB1_ROWS)
    out = R.run_eval(cfg(model="word", data=str(data), output=str(tmp_path / "out")))
    assert out["layout"] == "rewardbench" and out["accuracy"] == pytest.approx(4 / 6)
    rb = out["rewardbench"]
    assert (rb["Chat"], rb["Chat Hard"], rb["Prior Sets"]) == (0.5, 1.0, 1.0) and "Safety" not in rb
    assert rb["Reasoning"] == pytest.approx(1 / 7) and rb["Score"] == pytest.approx((4 + 2 / 7) / 7)
    assert out["subsets"]["alpacaeval-easy"] == {"accuracy": 0.5, "n": 2}
    page = (tmp_path / "out" / "report.html").read_text()
    assert "RewardBench v1 sections" in page and "Accuracy per subset" in page


def test_unknown_subsets_give_per_subset_accuracy_only(fake_models, tmp_path):
    """A subset column with names RewardBench does not know: no section scores, a note says why;
    with layout given explicitly it is an error listing the known subsets."""
    rows = [{**r, "subset": "mine"} for r in RB1_ROWS[:2]]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    out = R.run_eval(cfg(model="word", data=str(data)))
    assert out["layout"] == "plain" and "rewardbench" not in out and out["subsets"]["mine"]["accuracy"] == 0.5
    assert any("not RewardBench v1 subsets" in n for n in out["notes"])
    with pytest.raises(ValueError, match="known: "):
        R.run_eval(cfg(model="word", data=str(data), layout="rewardbench"))


def test_rewardbench2_by_hand(fake_models, tmp_path):
    """Row 0: chosen 1, rejected [−1, 0, 1] → 2 tied at the max → ½; row 1: 2 vs [1, 0, −1] → 1;
    row 2: 0 vs [1, 0, −1] → 0. Focus (½ + 1)/2 = ¾, Math 0, Score ⅜; accuracy (½ + 1 + 0)/3 = ½."""
    data = write_jsonl(tmp_path / "rb2.jsonl", RB2_ROWS)
    out = R.run_eval(cfg(model="word", data=str(data), output=str(tmp_path / "o")))
    assert out["layout"] == "rewardbench2" and out["form"] == "rankings"
    assert out["rewardbench2"] == {"Focus": 0.75, "Math": 0.0, "Score": 0.375}
    assert out["accuracy"] == 0.5 and out["best_of_k_accuracy"] == 0.5
    rows = [json.loads(x) for x in (tmp_path / "o" / "examples.jsonl").read_text().splitlines()]
    assert [r["n_chosen"] for r in rows] == [1, 1, 1] and rows[0]["rewards"] == [1.0, -1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="rankings"):
        R.run_eval(cfg(model="word", data=str(data), form="pairs"))


def test_compare_two_models_paired_difference(fake_models, tmp_path):
    """LengthRM ties every RB row but row 2 (2 words vs 1) → correct [0, 0, 1, 0, 0, 0]; WordRM
    [1, 0, 1, 0, 1, 1]. word − length = 4/6 − 1/6 = ½; word alone right 3 times, length never →
    McNemar p = 2·(½)³ = ¼. The report has a comparison table and the paired-difference table."""
    data = write_jsonl(tmp_path / "rb.jsonl", RB1_ROWS)
    out = R.run_eval(cfg(model="word", compare=["length"], data=str(data), output=str(tmp_path / "o")))
    comp = out["comparison"]
    assert comp["models"]["word"]["accuracy"] == pytest.approx(4 / 6)
    assert comp["models"]["length"]["accuracy"] == pytest.approx(1 / 6)
    (d,) = comp["paired_differences"]
    assert (d["a"], d["b"], d["n_a_only"], d["n_b_only"]) == ("word", "length", 3, 0)
    assert d["difference"] == pytest.approx(0.5) and d["mcnemar_p"] == pytest.approx(0.25)
    assert out["per_model"]["length"]["reward_ties"] == 5
    page = (tmp_path / "o" / "report.html").read_text()
    assert "<h2>Comparison</h2>" in page and "Paired differences" in page
    row = json.loads((tmp_path / "o" / "examples.jsonl").read_text().splitlines()[2])
    assert row["rewards_by_model"] == {"word": [2.0, 1.0], "length": [3.0, 2.0]}  # "good good" vs "good"


def test_folder_and_file_outputs(fake_models, tmp_path):
    """--output DIR: results.json (metrics, model, data, max length, dtype, truncation, versions),
    examples.jsonl (one row per pair), report.html + PNGs, the config. --output F.json: that file only
    (and its config beside it)."""
    data = write_jsonl(tmp_path / "d.jsonl", [{k: v for k, v in r.items() if k != "subset"} for r in RB1_ROWS])
    out_dir = tmp_path / "res"
    out = R.run_eval(cfg(model="word", data=str(data), output=str(out_dir), max_length=8))
    saved = json.loads((out_dir / "results.json").read_text())
    for key in ("accuracy", "accuracy_ci95", "model", "data", "max_length", "dtype", "truncation", "versions",
                "calibration", "length_bias", "rewards", "outputs"):
        assert key in saved, key
    assert saved["max_length"] == 8 and saved["dtype"] == "float32" and saved["data"]["n_loaded"] == 6
    assert saved["accuracy"] == out["accuracy"] == pytest.approx(4 / 6)
    rows = [json.loads(x) for x in (out_dir / "examples.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["reward_chosen"] == 1.0 and rows[0]["correct"] is True
    for f in ("report.html", "reliability.png", "reward_distributions.png", "margin_histogram.png",
              "reward_vs_length.png", "rewardlab_config.yaml"):
        assert (out_dir / f).is_file(), f
    R.run_eval(cfg(model="word", data=str(data), output=str(tmp_path / "m.json")))
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] == pytest.approx(4 / 6)
    assert (tmp_path / "m.rewardlab_config.yaml").is_file() and not (tmp_path / "examples.jsonl").exists()


def test_strength_buckets_and_annotators(fake_models, tmp_path):
    """margin 1 on rows 0–2 (Δ 2, −1, 1 → ⅔), margin 3 on rows 3–5 (Δ 0, 1, 2 → ⅔).
    votes: three annotators; RM labels [1, 0, 1, 0, 1, 1]; annotator 0 says [1, 1, 1, 1, 1, 1] → 4/6."""
    rows = [{**{k: v for k, v in r.items() if k != "subset"}, "margin": 1 if i < 3 else 3,
             "votes": [1, 1 if i % 2 else 0, None]} for i, r in enumerate(RB1_ROWS)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    out = R.run_eval(cfg(model="word", data=str(data), annotator_column="votes", output=str(tmp_path / "o")))
    assert out["by_strength"]["accuracy"] == pytest.approx([2 / 3, 2 / 3])
    assert out["annotators"]["rm_vs_annotator"][0] == pytest.approx(4 / 6)
    assert (tmp_path / "o" / "accuracy_by_strength.png").is_file()


def test_labels_ratings_rankings_forms(fake_models, tmp_path):
    """Labels with threshold 0.5: rewards [1, −1, 0, 2], labels [1, 0, 1, 1] → predictions [1, 0, 0, 1]:
    accuracy ¾, recall ⅔. Ratings within a prompt: scores follow the rewards → accuracy 1. Rankings:
    best first, rewards [2, 0, −1] → best-of-K 1."""
    labels = write_jsonl(tmp_path / "l.jsonl", [
        {"prompt": "q", "response": "good", "label": 1}, {"prompt": "q", "response": "bad", "label": 0},
        {"prompt": "q", "response": "x", "label": 1}, {"prompt": "q", "response": "good good", "label": 1}])
    out = R.run_eval(cfg(model="word", data=str(labels), form="labels", threshold=0.5, output=str(tmp_path / "l")))
    assert out["accuracy"] == 0.75 and out["recall"] == pytest.approx(2 / 3)
    assert (tmp_path / "l" / "roc_curve.png").is_file() and (tmp_path / "l" / "report.html").is_file()
    ratings = write_jsonl(tmp_path / "r.jsonl", [
        {"prompt": "q", "response": "good", "score": 3}, {"prompt": "q", "response": "bad", "score": 1},
        {"prompt": "q", "response": "x", "score": 2}, {"prompt": "a", "response": "good good", "score": 1},
        {"prompt": "a", "response": "good", "score": 0}])
    out = R.run_eval(cfg(model="word", data=str(ratings), form="ratings", output=str(tmp_path / "r")))
    assert out["within_prompt_pairs"] == {"accuracy": 1.0, "n_pairs": 4, "n_prompts": 2}
    assert (tmp_path / "r" / "report.html").is_file()
    ranks = write_jsonl(tmp_path / "k.jsonl", [{"prompt": "q", "responses": ["good good", "x", "bad"]}])
    out = R.run_eval(cfg(model="word", data=str(ranks), form="rankings"))
    assert out["best_of_k_accuracy"] == 1.0 and out["accuracy"] == 1.0


def test_cli_real_checkpoint_compare_and_report(tiny_llama, toy_data, tmp_path):
    """The CLI on a real tiny Llama: prints JSON with accuracy, n_pairs, mean_margin, loss, reward_ties;
    --compare of the same model twice gives identical accuracies and a zero paired difference."""
    runner = CliRunner()
    res = runner.invoke(app, ["eval", "--model", str(tiny_llama), "--compare", str(tiny_llama), "--data",
                              str(toy_data["test"]), "--limit", "30", "--max-length", "64", "--bootstrap", "100",
                              "--output", str(tmp_path / "o"), "--no-progress"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads([line for line in res.stdout.splitlines() if line.startswith("{")][-1])
    assert {"accuracy", "n_pairs", "mean_margin", "loss", "reward_ties"} <= set(out) and out["n_pairs"] == 30
    (d,) = out["comparison"]["paired_differences"]
    assert d["difference"] == 0.0 and d["mcnemar_p"] == 1.0 and d["b"].endswith("#2")
    assert (tmp_path / "o" / "report.html").is_file()
    r = runner.invoke(app, ["eval", "--model", str(tiny_llama), "--data", str(toy_data["test"]), "--layout", "nope"])
    assert r.exit_code != 0 and "layout must be" in r.output


def test_load_eval_data_errors(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", RB1_ROWS)
    with pytest.raises(ValueError, match="looks like 'rewardbench'"):
        load_eval_data(str(data), layout="rewardbench2")
    with pytest.raises(ValueError, match="scored as pairs"):
        load_eval_data(str(data), form="rankings")
    assert np.array_equal(load_eval_data(str(data), layout="plain").subsets, [r["subset"] for r in RB1_ROWS])


def test_docs_list_every_eval_option():
    """docs/eval.md has a row for every EvalConfig field, by its CLI flag."""
    import dataclasses
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "eval.md").read_text()
    flags = {"columns": "--column"}
    for f in dataclasses.fields(EvalConfig):
        flag = flags.get(f.name, "--" + f.name.replace("_", "-"))
        assert f"| `{flag}` |" in docs, flag
    assert "images/eval-report.png" in docs
    assert (Path(__file__).resolve().parents[2] / "docs" / "images" / "eval-report.png").is_file()


def test_docs_python_snippet_runs(tiny_llama, toy_data, tmp_path):
    """The Python snippet of docs/eval.md, with its placeholder paths swapped for a tiny model and toy pairs."""
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "eval.md").read_text()
    snippet = docs.split("## Python", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    snippet = (snippet.replace('"runs/rm"', repr(str(tiny_llama))).replace('"pairs.jsonl"', repr(str(toy_data["test"])))
               .replace('"eval/"', repr(str(tmp_path / "eval"))))
    scope: dict = {}
    exec(compile(snippet, "docs/eval.md", "exec"), scope)
    assert 0 <= scope["result"]["accuracy"] <= 1 and (tmp_path / "eval" / "report.html").is_file()
