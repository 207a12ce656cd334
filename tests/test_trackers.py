"""``--report-to tensorboard|wandb`` of train, optimize (every method) and study, read back from the tracker's own files.

TensorBoard: the event files, read with TensorBoard's ``EventAccumulator``. wandb: an offline run
(WANDB_MODE=offline, WANDB_DIR=tmp_path), read back with ``wandb leet inspect --json`` (wandb's reader of the
run's ``.wandb`` log; an offline run writes no wandb-summary.json). Each logged number must equal what the run
itself reports: rewardlab.json's history for train, log.jsonl for optimize, results.json for study.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rewardlab.cli import app

runner = CliRunner()
METHODS = ("bon", "rwr", "raft", "reinforce", "rloo", "ppo")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def cli(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + (repr(result.exception) if result.exception else "")
    return result.output


def tensorboard_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of the event files in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def wandb_runs(root: Path) -> list[dict]:
    """Every offline wandb run under ``root``: {"project", "name", "group", "config", "history": {step: {key: value}}}."""
    runs = []
    for log in sorted(root.glob("wandb/offline-run-*/run-*.wandb")):
        out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)], capture_output=True, text=True,
                             timeout=120, check=True).stdout
        run = {"config": {}, "history": {}}
        for line in out.splitlines():
            rec = json.loads(line)
            if rec["type"] == "run":
                run.update(project=rec["run"]["project"], name=rec["run"].get("display_name"), group=rec["run"].get("run_group"))
            if rec["type"] in ("run", "config"):  # the config given to init, then config.update()s
                run["config"].update((rec["run"].get("config", {}) if rec["type"] == "run" else rec["config"]).get("update", {}))
            if rec["type"] == "history":
                run["history"].setdefault(int(rec["history"]["step"].get("num", 0)), {}).update(rec["history"]["item"])
        runs.append(run)
    return runs


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch) -> Path:
    """wandb offline, its files under the returned folder. wandb reads its settings once per process (a singleton),
    so it is torn down around each test: each one gets its own WANDB_DIR."""
    import wandb

    root = tmp_path / "wandb-root"
    root.mkdir()
    for k, v in {"WANDB_MODE": "offline", "WANDB_DIR": str(root), "WANDB_SILENT": "true"}.items():
        monkeypatch.setenv(k, v)
    wandb.teardown()
    yield root
    wandb.teardown()


def series(rows: list[dict], key: str) -> dict[int, float]:
    return {r["step"]: r[key] for r in rows if r.get(key) is not None}


# --------------------------------------------------------------------------- train


def train_args(data, model, out, tracker: str) -> list:
    return ["train", "--data", data, "--model", model, "--output", out, "--limit", 80, "--eval-split", 0.2, "--max-steps", 4,
            "--log-every", 1, "--eval-every", 2, "--batch-size", 8, "--max-length", 48, "--lr", 3e-3, "--no-progress",
            "--report-to", tracker]


@pytest.mark.parametrize("tracker", ["tensorboard", "wandb"])
def test_train_logs_loss_and_eval_metrics(tracker, toy_data, tiny_llama, tmp_path, request):
    """Every update's loss, lr and train accuracy (log_every 1) and the held-out metrics at updates 2 and 4 are the
    tracker's scalars; the final metrics are rewardlab.json's."""
    root = request.getfixturevalue("wandb_offline") if tracker == "wandb" else None
    out = tmp_path / "rm"
    cli(*train_args(toy_data["train"], tiny_llama, out, tracker))
    meta = json.loads((out / "rewardlab.json").read_text())
    history = [{"step": h["update"], **h} for h in meta["train"]["history_tail"]]
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    if tracker == "tensorboard":
        logged = tensorboard_scalars(out / "rewardlab")
        hparams = yaml.safe_load(next((out / "rewardlab").glob("*/hparams.yml")).read_text())
        assert hparams["loss"] == "bt" and hparams["report_to"] == "tensorboard"
    else:
        (run,) = wandb_runs(root)
        assert (run["project"], run["name"], run["config"]["loss"]) == ("rewardlab", "rm", "bt")
        logged = {}
        for step, item in run["history"].items():
            for k, v in item.items():
                logged.setdefault(k, {})[step] = v
    for key in ("loss", "lr", "train_accuracy"):
        assert logged[key] == pytest.approx(series(history, key), rel=1e-6), key
    assert set(logged["eval_accuracy"]) == {2, 4}
    assert logged["eval_accuracy"][4] == pytest.approx(meta["metrics"]["accuracy"], rel=1e-6)
    assert logged["eval_loss"][4] == pytest.approx(meta["metrics"]["loss"], rel=1e-6)


def test_report_to_is_checked_with_the_config():
    from rewardlab.config import OptimizeConfig, StudyConfig, TrainConfig

    for cls in (TrainConfig, OptimizeConfig, StudyConfig):
        with pytest.raises(ValueError, match="report_to must be none, tensorboard, wandb, got 'mlflow'"):
            cls(report_to="mlflow")
    bad = runner.invoke(app, ["train", "--report-to", "comet"])
    assert bad.exit_code == 2 and "report_to must be" in bad.output


def test_a_tracker_whose_package_is_missing_is_an_error_not_silence(monkeypatch):
    """Accelerate drops a tracker whose package is missing with a debug log only; the config says so instead."""
    import importlib.util

    from rewardlab.config import StudyConfig

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("wandb", "tensorboard", "tensorboardX") else real(name, *a))
    with pytest.raises(ValueError, match="--report-to wandb needs the wandb package: pip install wandb"):
        StudyConfig(report_to="wandb")
    with pytest.raises(ValueError, match="--report-to tensorboard needs the tensorboard package"):
        StudyConfig(report_to="tensorboard")


# --------------------------------------------------------------------------- optimize


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("policy")
    cli("optimize", "policy", "--output", out, "--n-examples", 64, "--epochs", 1, "--size", "nano", "--vocab-size", 400)
    return out


def optimize_args(method: str, policy: Path, out: Path, tracker: str) -> list:
    common = ["--policy", policy, "--output", out, "--eval-prompts", 4, "--max-new-tokens", 8, "--seed", 1, "--report-to", tracker]
    if method == "bon":
        return ["optimize", "bon", *common, "--n", 1, "--n", 2, "--n", 4]
    extra = ["--ppo-epochs", 1, "--minibatch-size", 8] if method == "ppo" else []
    return ["optimize", method, *common, "--steps", 2, "--batch-size", 4, "--k", 2, "--lr", 1e-3, "--eval-every", 1, "--no-progress",
            *extra]


def log_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method", METHODS)
def test_optimize_logs_every_log_line_to_tensorboard(method, policy, tmp_path):
    """Each number of each log.jsonl line is the scalar SPLIT/NAME at the line's step (train, eval; bon at step N)."""
    out = tmp_path / method
    cli(*optimize_args(method, policy, out, "tensorboard"))
    lines = log_lines(out)
    logged = tensorboard_scalars(out / "rewardlab")
    splits = {r["split"] for r in lines}
    assert splits == ({"bon"} if method == "bon" else {"train", "eval"})
    for split in splits:
        rows = [r for r in lines if r["split"] == split]
        numbers = {k for r in rows for k, v in r.items() if isinstance(v, float) and k not in ("step", "seconds")}
        assert numbers >= {"proxy", "gold", "kl_k1" if method != "bon" else "kl"}
        for key in numbers:
            assert logged[f"{split}/{key}"] == pytest.approx(series(rows, key), rel=1e-6), (split, key)
    if method == "bon":
        assert set(logged["bon/gold"]) == {1, 2, 4}
    else:
        assert set(logged["train/proxy"]) == {1, 2} and set(logged["eval/gold"]) == {0, 1, 2}
    hparams = yaml.safe_load(next((out / "rewardlab").glob("*/hparams.yml")).read_text())
    assert hparams["method"] == method and json.loads(hparams["reward"]) == ["gold"]


@pytest.mark.parametrize("method", ["ppo", "bon"])
def test_optimize_logs_to_an_offline_wandb_run(method, policy, tmp_path, wandb_offline):
    out = tmp_path / method
    cli(*optimize_args(method, policy, out, "wandb"))
    (run,) = wandb_runs(wandb_offline)
    assert (run["project"], run["name"], run["config"]["method"]) == ("rewardlab", method, method)
    lines = log_lines(out)
    for r in lines:
        item = run["history"][r["step"]]
        for k, v in r.items():
            if isinstance(v, float) and k != "seconds":
                assert item[f"{r['split']}/{k}"] == pytest.approx(v, rel=1e-9), (r["step"], r["split"], k)
    assert sorted(run["history"]) == sorted({r["step"] for r in lines})


# --------------------------------------------------------------------------- study


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    from rewardlab.analysis.features import resolve_backbone

    return resolve_backbone("tiny", tmp_path_factory.mktemp("tiny-backbone"))


def study_args(backbone: str, out: Path, tracker: str) -> list:
    return ["study", "--output", out, "--backbone", backbone, "--losses", "bt,hinge", "--seeds", 0, "--flip-rates", 0,
            "--train-sizes", 32, "--test-prompts", 2, "--candidates", 8, "--head-epochs", 2, "--workers", 1, "--no-progress",
            "--report-to", tracker]


def check_study_run(run: dict, logged: dict[str, dict[int, float]]) -> None:
    """A run of results.json against its tracker scalars: test metrics at step 0, best-of-N gold at step N."""
    m = run["metrics"]
    for key in ("accuracy_gold", "accuracy_labels", "ece_gold", "brier_labels", "spearman_gold", "length_corr", "reward_std"):
        assert logged[f"test/{key}"] == pytest.approx({0: m[key]}, rel=1e-6), key
    assert logged["test/n_train_examples"] == {0: run["n_train_examples"]}
    assert logged["test/bon_gold"] == pytest.approx({int(n): v for n, v in m["bon"].items()}, rel=1e-6)
    assert set(logged["test/bon_gold"]) == {1, 2, 4, 8}


def test_study_logs_each_run_to_tensorboard(tiny_backbone, tmp_path):
    out = tmp_path / "study"
    cli(*study_args(tiny_backbone, out, "tensorboard"))
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert sorted(p.name for p in (out / "rewardlab").iterdir()) == sorted(r["run_id"] for r in runs) == [
        "bt_eps0_lam0_n32_seed0", "hinge_eps0_lam0_n32_seed0"]
    for run in runs:
        check_study_run(run, tensorboard_scalars(out / "rewardlab" / run["run_id"]))
        hparams = yaml.safe_load(next((out / "rewardlab" / run["run_id"]).glob("*/hparams.yml")).read_text())
        assert (hparams["loss"], hparams["seed"], hparams["study"]) == (run["loss"], 0, "study")
    # a finished study run again trains nothing and logs nothing twice
    before = sorted(p.stat().st_mtime_ns for p in (out / "rewardlab").rglob("events.*"))
    cli(*study_args(tiny_backbone, out, "tensorboard"))
    assert sorted(p.stat().st_mtime_ns for p in (out / "rewardlab").rglob("events.*")) == before


def test_study_logs_each_run_to_an_offline_wandb_run(tiny_backbone, tmp_path, wandb_offline):
    out = tmp_path / "study"
    cli(*study_args(tiny_backbone, out, "wandb"))
    runs = {r["run_id"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    logged_runs = wandb_runs(wandb_offline)
    assert sorted(r["name"] for r in logged_runs) == sorted(runs)
    for logged in logged_runs:
        run = runs[logged["name"]]
        assert (logged["project"], logged["group"], logged["config"]["loss"]) == ("rewardlab", "study", run["loss"])
        scalars = {}
        for step, item in logged["history"].items():
            for k, v in item.items():
                scalars.setdefault(k, {})[step] = v
        check_study_run(run, scalars)
