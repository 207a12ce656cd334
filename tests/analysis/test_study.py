"""Loss studies: data forms and noise, best-of-N, aggregation by hand, the CLI end to end, resuming, configs, demo.

Everything runs on a tiny random backbone (head mode: features cached once) with a few dozen
texts, so the whole file takes well under a minute on a shared 2-core CPU.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from rewardlab.analysis import study_data as D
from rewardlab.analysis import study_metrics as M
from rewardlab.analysis.study import RunSpec, StudyError, plan_runs, run_hparams, run_ray, run_study
from rewardlab.cli import app
from rewardlab.config import StudyConfig, load_config
from rewardlab.eval.metrics import best_of_n_expectation, best_of_n_weights

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
PNGS = ("accuracy_vs_noise.png", "calibration.png", "best_of_n.png", "length.png")
TINY = dict(train_sizes=[32], test_prompts=2, candidates=8, head_epochs=2, workers=1, progress=False)


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    """The study's `tiny` backbone, built once for the module (a folder path works as a backbone)."""
    from rewardlab.analysis.features import resolve_backbone

    return resolve_backbone("tiny", tmp_path_factory.mktemp("tiny-backbone"))


def cli(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# --------------------------------------------------------------------------- data: budget rule and noise


def test_every_form_labels_the_same_responses_with_the_same_noise_rate():
    """Budget: 2000 responses (500 prompts × 4) → 1000 pairs, 500 rankings, 2000 ratings, 2000 labels,
    all over the same 2000 texts. At ε = 0 every form agrees with the gold exactly (T = 0, λ = 0).
    At ε = 0.3 each form misorders a share ≈ ε of its implied comparisons: pairs are binomial with
    sd √(0.3·0.7/1000) = 0.0145, so ±0.04 is ~3 sd; rankings flip 2ε = 60 % of 500 rankings whose
    6 pairs are then ½ wrong (sd ≈ 0.015); ratings use p = 2 − √(4 − 6ε) = 0.517 (derivation in
    study_data), labels are 2000 Bernoulli(0.3) flips (sd 0.010).
    """
    pool = D.task_pool(500, 4, 0)
    assert pool.shape == (500, 4)
    sizes = {"pairs": 1000, "rankings": 500, "ratings": 2000, "labels": 2000}
    for form, size in sizes.items():
        clean = D.label_pool(pool, form, 0.0, 0.0, seed=0)
        noisy = D.label_pool(pool, form, 0.3, 0.0, seed=0)
        assert len(clean) == len(clean.records) == size
        assert sorted(np.unique(clean.index).tolist()) == list(range(2000))  # every response, once or more
        assert clean.agreement == 1.0
        assert abs(noisy.agreement - 0.7) < 0.04, (form, noisy.agreement)
    assert math.isclose(D.ratings_replace_rate(0.3), 2 - math.sqrt(2.2))
    assert D.ratings_replace_rate(0.0) == 0.0 and math.isclose(D.ratings_replace_rate(0.5), 1.0)


def test_data_is_deterministic_by_seed_and_length_bias_favours_long_answers():
    """Same (seed, ε, λ) → identical records; another seed → other texts. With λ = 2 (20 words per
    gold unit … i.e. 5 words = one gold std) the labeler's chosen responses are longer on average
    than with λ = 0, where (gold ∝ −0.4 length) the chosen are shorter."""
    a = D.label_pool(D.task_pool(100, 4, 3), "pairs", 0.1, 0.0, seed=3)
    b = D.label_pool(D.task_pool(100, 4, 3), "pairs", 0.1, 0.0, seed=3)
    c = D.task_pool(100, 4, 4)
    assert a.records == b.records and c.responses != D.task_pool(100, 4, 3).responses
    pool = D.task_pool(300, 4, 5)
    words = pool.n_words.ravel()
    for lam, sign in ((0.0, -1), (2.0, 1)):
        fd = D.label_pool(pool, "pairs", 0.0, lam, seed=5)
        diff = words[fd.index[:, 0]] - words[fd.index[:, 1]]  # chosen − rejected length
        assert np.sign(diff.mean()) == sign, (lam, diff.mean())


def test_held_out_pairs_are_gold_ordered_and_labels_flip_at_the_rate():
    """Test pairs are consecutive candidates; 'gold' puts the better first (always), 'labels' is the
    labeler at ε: 40 prompts × 32 pairs = 1280 pairs less gold ties (identical short responses; 1
    here), flipped share 0.3 ± 0.04 (sd 0.0128)."""
    pool = D.task_pool(40, 64, 10000)
    pairs = D.held_out_pairs(pool, 0.3, 0.0, 10000)
    g = pool.gold.ravel()
    assert 1270 <= len(pairs["gold"]) <= 1280 and np.all(g[pairs["gold"][:, 0]] > g[pairs["gold"][:, 1]])
    flipped = np.mean(pairs["labels"][:, 0] != pairs["gold"][:, 0])
    assert abs(flipped - 0.3) < 0.04


# --------------------------------------------------------------------------- metrics by hand


def test_best_of_n_expectation_by_hand_and_by_enumeration():
    """rewards [3, 1, 2], gold [0, 3, 6]: sorted by reward the gold is (0, 6, 3); w(c=3, n=2) =
    (C(2,1), C(1,1), C(0,1)) / C(3,2) = (2/3, 1/3, 0) → E = 2. n = 1 → mean gold 3; n = 3 → the top
    reward's gold 0. Then on random data E_n equals the average over all C(6, n) subsets."""
    assert np.allclose(best_of_n_weights(3, 2), [2 / 3, 1 / 3, 0])
    r, g = np.array([[3.0, 1.0, 2.0]]), np.array([[0.0, 3.0, 6.0]])
    assert math.isclose(best_of_n_expectation(r, g, 2), 2.0)
    assert math.isclose(best_of_n_expectation(r, g, 1), 3.0)
    assert math.isclose(best_of_n_expectation(r, g, 3), 0.0)
    rng = np.random.default_rng(0)
    r, g = rng.normal(size=(1, 6)), rng.normal(size=(1, 6))
    for n in (1, 2, 4, 6):
        brute = np.mean([g[0, list(s)][np.argmax(r[0, list(s)])] for s in itertools.combinations(range(6), n)])
        assert math.isclose(best_of_n_expectation(r, g, n), brute)
    assert M.n_grid(64) == [1, 2, 4, 8, 16, 32, 64] and M.n_grid(12) == [1, 2, 4, 8, 12]


def test_mean_ci_and_paired_seed_difference_by_hand():
    """[1, 2, 3]: mean 2, sd 1, t_{0.975,2} = 4.3027 → 2 ± 4.3027/√3 = 2 ± 2.4841.
    Paired: a = (0.8, 0.7, 0.9), b = (0.7, 0.7, 0.7) → d = (0.1, 0, 0.2): mean 0.1, sd 0.1 →
    0.1 ± 4.3027·0.1/√3 = [−0.1484, 0.3484]. One value: no interval; None values are skipped."""
    s = M.mean_ci([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["sd"] == 1.0 and s["n"] == 3
    assert math.isclose(s["ci_low"], 2 - 2.48414, abs_tol=1e-4) and math.isclose(s["ci_high"], 2 + 2.48414, abs_tol=1e-4)
    assert M.mean_ci([0.5, None])["ci_low"] is None and M.mean_ci([0.5, None])["mean"] == 0.5
    d = M.paired_seed_difference({0: 0.8, 1: 0.7, 2: 0.9}, {0: 0.7, 1: 0.7, 2: 0.7, 3: 0.1})
    assert d["seeds"] == [0, 1, 2] and math.isclose(d["mean"], 0.1)
    assert math.isclose(d["ci_low"], -0.14841, abs_tol=1e-4) and math.isclose(d["ci_high"], 0.34841, abs_tol=1e-4)


def test_aggregate_on_hand_made_runs():
    """Two losses × 3 seeds at one cell. bt accuracy (0.7, 0.7, 0.7), ls (0.8, 0.7, 0.9): summary
    means 0.7 and 0.8, ls's diff 0.1 with the interval above; bt's own interval has width 0 (sd 0).
    Pooled paired test on correctness vectors: ls right on 4 pairs where bt is wrong, never the
    other way → difference 4/12 = 0.333 on 12 rows, McNemar p = 2·0.5⁴ = 0.125."""
    rows = []
    for loss, accs in (("bt", (0.7, 0.7, 0.7)), ("label_smoothing", (0.8, 0.7, 0.9))):
        for seed, acc in enumerate(accs):
            rows.append({"run_id": f"{loss}-{seed}", "loss": loss, "family": "pairwise", "data_form": "pairs", "flip_rate": 0.3,
                         "length_bias": 0.0, "train_size": 100, "seed": seed, "accuracy_gold": acc, "accuracy_labels": acc,
                         "ece_labels": 0.1, "bon_1": 0.0, "bon_2": acc})
    correct = {f"bt-{s}": np.array([1, 0, 0, 1.0]) for s in range(3)}
    correct.update({"label_smoothing-0": np.array([1, 1, 1, 1.0]), "label_smoothing-1": np.array([1, 0, 0, 1.0]),
                    "label_smoothing-2": np.array([1, 1, 1, 1.0])})
    out = {r["loss"]: r for r in M.aggregate(rows, "bt", correct)}
    bt, ls = out["bt"], out["label_smoothing"]
    assert bt["n_seeds"] == 3 and math.isclose(bt["accuracy_gold"], 0.7) and math.isclose(bt["accuracy_gold_ci_low"], 0.7)
    assert math.isclose(ls["accuracy_gold"], 0.8) and math.isclose(ls["diff_accuracy_gold"], 0.1)
    assert math.isclose(ls["diff_accuracy_gold_ci_low"], -0.14841, abs_tol=1e-4)
    assert math.isclose(ls["pooled_diff_accuracy_gold"], 4 / 12) and math.isclose(ls["mcnemar_p"], 0.125)
    assert "diff_accuracy_gold" not in bt and math.isclose(ls["bon_2"], 0.8)


# --------------------------------------------------------------------------- config


def test_config_validation_and_noise_substitution():
    """Unknown losses list the known ones; ε must lie in [0, 0.5); loss_args must name a listed loss
    and a real hyperparameter; `noise` becomes the cell's ε."""
    with pytest.raises(ValueError, match="known: .*bt"):
        StudyConfig(output="x", losses=["bt", "nope"])
    with pytest.raises(ValueError, match="flip_rates"):
        StudyConfig(output="x", flip_rates=[0.5])
    with pytest.raises(ValueError, match="not among the losses"):
        StudyConfig(output="x", losses=["bt"], loss_args={"robust.flip_rate": 0.1})
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        StudyConfig(output="x", losses=["bt", "robust"], loss_args={"robust.alpha": 0.1})
    with pytest.raises(ValueError, match="multiples of ranking_k"):
        StudyConfig(output="x", train_sizes=[30])
    with pytest.raises(ValueError, match="built-in task only"):
        StudyConfig(output="x", data="d.jsonl", losses=["bt"], length_biases=[1.0])
    cfg = StudyConfig(output="x", losses=["bt", "robust"], loss_args=["robust.flip_rate=noise"], flip_rates=[0, 0.3], seeds=[0, 1])
    assert cfg.loss_args == {"robust": {"flip_rate": "noise"}}
    assert run_hparams(cfg, "robust", 0.3) == {"flip_rate": 0.3} and run_hparams(cfg, "bt", 0.3) == {}
    assert len(plan_runs(cfg)) == 2 * 2 * 1 * 1 * 2 and RunSpec("bt", 0.3, 0.0, 2000, 1).run_id == "bt_eps0.3_lam0_n2000_seed1"


def test_ray_executor_without_ray_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError, whether ray is installed or not
    with pytest.raises(StudyError, match="pip install"):
        list(run_ray([], None, False))


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def mini_study(tmp_path_factory, tiny_backbone):
    """2 losses × 2 seeds × 2 flip rates = 8 runs through the CLI, in 2 worker processes."""
    out = tmp_path_factory.mktemp("study")
    log = cli("study", "--output", out, "--backbone", tiny_backbone, "--losses", "bt,label_smoothing", "--seeds", "0,1",
              "--flip-rates", "0,0.3", "--train-sizes", 48, "--test-prompts", 3, "--candidates", 8, "--head-epochs", 3,
              "--workers", 2, "--no-progress")
    return out, log


def test_cli_mini_study_writes_every_output(mini_study):
    out, log = mini_study
    assert "8 runs in the grid; 0 done, 8 to run" in log and "report:" in log and "summary" in log
    res = json.loads((out / "results.json").read_text())
    assert set(res) >= {"config", "runs", "summary", "findings", "reference", "timing", "n_runs"}
    assert res["n_runs"] == res["n_planned"] == 8 and len(res["runs"]) == 8
    for run in res["runs"]:
        m = run["metrics"]
        for k in ("accuracy_gold", "accuracy_labels", "ece_gold", "brier_gold", "ece_labels", "brier_labels", "reward_std"):
            assert isinstance(m[k], float) and (0.0 <= m[k] <= 1.0 or k == "reward_std"), (k, m[k])
        assert set(m["bon"]) == {"1", "2", "4", "8"} and m["spearman_gold"] is not None and m["length_corr"] is not None
        assert run["n_train_examples"] == 24 and run["n_train_responses"] == 48 and run["family"] == "pairwise"
        assert (run["label_agreement"] == 1.0) == (run["flip_rate"] == 0.0)
        assert (out / "runs" / run["run_id"] / "test_rewards.npy").is_file()
        # best-of-1 is the mean gold of the candidates, the same for every RM
        assert math.isclose(m["bon"]["1"], res["reference"]["bon_oracle"]["1"], abs_tol=1e-9)
    assert res["reference"]["n_test_pairs"] == 12 and -1 < res["reference"]["gold_length_corr"] < 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 8 and {"run_id", "loss", "flip_rate", "seed", "accuracy_gold", "ece_labels", "bon_8", "length_corr"} <= set(rows[0])
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert len(summary) == 4 and all(r["n_seeds"] == "2" for r in summary)
    ls = [r for r in summary if r["loss"] == "label_smoothing"]
    assert all(r["diff_accuracy_gold"] != "" and r["accuracy_gold_ci_low"] != "" and r["mcnemar_p"] != "" for r in ls)
    # the summary mean is the mean of the two seeds' values in results.csv
    bt0 = [float(r["accuracy_gold"]) for r in rows if r["loss"] == "bt" and float(r["flip_rate"]) == 0.0]
    s_bt0 = [r for r in summary if r["loss"] == "bt" and float(r["flip_rate"]) == 0.0][0]
    assert math.isclose(float(s_bt0["accuracy_gold"]), np.mean(bt0))
    md = (out / "report.md").read_text()
    for part in ("## Findings", "Label smoothing / robust BT vs BT under 30% flipped labels", "Verdict:", "## Summary",
                 "## Paired differences against bt", "Best-of-N", "McNemar p"):
        assert part in md, part
    assert re.search(r"accuracy vs gold 0\.\d{3} against bt 0\.\d{3}", md)
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4 and "http" not in page.split("<body>")[1].replace("https://", "")
    for name in PNGS:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000 and name in md
    saved = load_config(StudyConfig, out / "rewardlab_config.yaml")
    assert saved.losses == ["bt", "label_smoothing"] and saved.seeds == [0, 1] and saved.flip_rates == [0.0, 0.3]


def test_rerun_does_not_redo_finished_runs_and_config_file_reproduces(mini_study):
    """Running the saved rewardlab_config.yaml again trains nothing (same run keys) and leaves the
    results untouched; a deleted result is redone alone."""
    out, _ = mini_study
    files = sorted((out / "runs").glob("*/result.json"))
    before = {p: p.stat().st_mtime_ns for p in files}
    log = cli("study", "--config", out / "rewardlab_config.yaml", "--no-progress")
    assert "8 done, 0 to run" in log
    assert {p: p.stat().st_mtime_ns for p in files} == before
    victim = out / "runs" / "label_smoothing_eps0.3_lam0_n48_seed1" / "result.json"
    victim.unlink()
    log = cli("study", "--config", out / "rewardlab_config.yaml", "--no-progress", "--workers", 1)
    assert "7 done, 1 to run" in log and victim.is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in before.items() if p != victim)


def test_a_damaged_feature_chunk_is_moved_aside_and_recomputed(mini_study):
    """A cache chunk cut short (a full disk, a killed copy) does not stop the study: it is renamed *.damaged (kept),
    the log names it, its texts' features are computed again, and a run redone on them gives the same result."""
    out, _ = mini_study
    chunk = sorted((out / "features").glob("*/chunk-*.npz"))[0]
    chunk.write_bytes(chunk.read_bytes()[:100])
    victim = out / "runs" / "label_smoothing_eps0.3_lam0_n48_seed1" / "result.json"
    before = json.loads(victim.read_text())
    victim.unlink()
    log = cli("study", "--config", out / "rewardlab_config.yaml", "--no-progress", "--workers", 1)
    assert "damaged cache chunk" in log and chunk.name in log and "7 done, 1 to run" in log
    assert chunk.with_name(chunk.name + ".damaged").is_file() and not chunk.exists()
    after = json.loads(victim.read_text())
    assert {k: v for k, v in after.items() if "seconds" not in k} == {k: v for k, v in before.items() if "seconds" not in k}


def test_user_data_study_has_no_gold(tmp_path, tiny_backbone):
    """--data: held-out human pairs replace the gold; gold metrics and best-of-N are absent."""
    from conftest import toy_pairs, write_jsonl

    data = write_jsonl(tmp_path / "pairs.jsonl", toy_pairs(60, seed=1))
    cfg = StudyConfig(output=str(tmp_path / "s"), data=str(data), backbone=tiny_backbone, losses=["bt", "hinge"], flip_rates=[0.0],
                      seeds=[0], train_sizes=[0], head_epochs=2, workers=1, progress=False)
    report = run_study(cfg, log=lambda m: None, show=False)
    (run,) = [r for r in json.loads((tmp_path / "s" / "results.json").read_text())["runs"] if r["loss"] == "bt"]
    assert run["metrics"]["accuracy_gold"] is None and run["metrics"]["bon"] == {} and run["label_agreement"] is None
    assert 0 <= run["metrics"]["accuracy_labels"] <= 1 and run["n_train_examples"] == 48  # 60 − 12 held out
    assert "best_of_n.png" not in report["paths"] and "acc labels" in report["table"][0]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("study-*.yaml")), ids=lambda p: p.name)
def test_shipped_config_loads_and_runs_tiny(path, tmp_path, tiny_backbone):
    """Every shipped study config loads; shrunk (2 losses, ≤ 2 flip rates (1 in full / LoRA mode), one
    length bias and seed, 32 responses, tiny backbone) it runs in its own mode and writes a report."""
    cfg = load_config(StudyConfig, path, output=str(tmp_path))
    k = 2 if cfg.mode == "head" else 1  # full / LoRA runs load, train and score a model each: one loss, one ε
    shrunk = load_config(StudyConfig, path, output=str(tmp_path), backbone=tiny_backbone, losses=cfg.losses[:2],
                         loss_args={k: v for k, v in cfg.loss_args.items() if k in cfg.losses[:2]}, flip_rates=cfg.flip_rates[-k:],
                         length_biases=cfg.length_biases[-1:], seeds=cfg.seeds[:1], epochs=0.5, max_length=64, **TINY)
    report = run_study(shrunk, log=lambda m: None, show=False)
    assert report["n_runs"] == len(shrunk.losses) * len(shrunk.flip_rates) and Path(report["paths"]["report.html"]).is_file()


def test_demo_runs_with_a_tiny_backbone(tmp_path, tiny_backbone):
    """`rewardlab demo` (tiny, shrunk): prints the table and the report path; ≥ 4 losses from 3 families."""
    log = cli("demo", "--output", tmp_path / "demo", "--backbone", tiny_backbone, "--train-size", 32, "--test-prompts", 2,
              "--seeds", "0", "--workers", 1, "--no-progress")
    assert "summary" in log and "report:" in log and "plackett_luce" in log and "wall time" in log
    res = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert res["n_runs"] == 6 * 2 and {r["family"] for r in res["runs"]} == {"pairwise", "listwise", "pointwise"}
    assert yaml.safe_load((tmp_path / "demo" / "rewardlab_config.yaml").read_text())["mode"] == "head"


def test_shards_run_their_share_and_a_failed_run_is_reported(tmp_path, tiny_backbone, monkeypatch):
    """--shard i/N trains runs i, i + N, … and writes no report; the plain invocation then trains
    nothing and reports. A run that raises does not stop the others: its traceback lands in
    runs/<run>/error.txt, the report covers the rest, and the study ends with a StudyError naming it."""
    from rewardlab.analysis import study_train

    base = dict(backbone=tiny_backbone, losses=["bt", "hinge"], flip_rates=[0.0], seeds=[0], **TINY)
    out = tmp_path / "sharded"
    logs = []
    run_study(StudyConfig(output=str(out), shard="1/2", **base), log=logs.append, show=False)
    assert (out / "runs" / "hinge_eps0_lam0_n32_seed0" / "result.json").is_file()
    assert not (out / "runs" / "bt_eps0_lam0_n32_seed0").exists() and not (out / "report.md").exists()
    assert "1 of 2 runs of the study are done" in logs[-1]
    report = run_study(StudyConfig(output=str(out), **base), log=logs.append, show=False)
    assert report["n_runs"] == 2 and (out / "report.md").is_file()

    real = study_train.train_head

    def flaky(features, data, spec, hp, **kw):
        if spec.name == "hinge":
            raise RuntimeError("boom")
        return real(features, data, spec, hp, **kw)

    monkeypatch.setattr(study_train, "train_head", flaky)
    out = tmp_path / "failing"
    with pytest.raises(StudyError, match=r"1 of 2 runs failed \(hinge_eps0_lam0_n32_seed0\).*boom"):
        run_study(StudyConfig(output=str(out), **base), log=lambda m: None, show=False)
    assert "RuntimeError: boom" in (out / "runs" / "hinge_eps0_lam0_n32_seed0" / "error.txt").read_text()
    assert json.loads((out / "results.json").read_text())["n_runs"] == 1
