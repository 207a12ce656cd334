"""Every loss of the catalogue trains a tiny RM end to end through `rewardlab train --loss NAME` on
data of its form, and beats chance on held-out data of the toy task."""

from __future__ import annotations

import json

import pytest
from toydata import toy_forms, write_jsonl
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.losses.catalogue import LOSSES

runner = CliRunner()
FORM_OF = {"any": "ratings"}


@pytest.fixture(scope="module")
def form_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("forms")
    train, test = toy_forms(160, seed=5), toy_forms(60, seed=6)
    return {form: (write_jsonl(d / f"{form}-train.jsonl", train[form]), write_jsonl(d / f"{form}-test.jsonl", test[form]))
            for form in train}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_trains_and_beats_chance(name, form_files, tiny_llama, tmp_path):
    spec = LOSSES[name]
    form = FORM_OF.get(spec.data_form, spec.data_form)
    train_file, test_file = form_files[form]
    out = tmp_path / "rm"
    args = ["train", "--data", train_file, "--eval-data", test_file, "--model", tiny_llama, "--output", out, "--loss", name,
            "--form", form, "--epochs", 4, "--lr", 3e-3, "--batch-size", 16, "--max-length", 48, "--no-progress"]
    r = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "rewardlab.json").read_text())["metrics"]
    if form in ("pairs", "rankings", "labels"):
        assert metrics["accuracy"] > 0.75, metrics  # chance: 0.5
    else:
        assert metrics["spearman"] > 0.5, metrics  # chance: 0


@pytest.mark.parametrize("reg", ["center", "l2_reward", "triplet", "length_decorrelation", "odin"])
def test_regularizers_train(reg, form_files, tiny_llama, tmp_path):
    train_file, test_file = form_files["pairs"]
    out = tmp_path / "rm"
    args = ["train", "--data", train_file, "--eval-data", test_file, "--model", tiny_llama, "--output", out, "--loss", "bt",
            "--regularizer", f"{reg}=0.1", "--epochs", 3, "--lr", 3e-3, "--batch-size", 16, "--max-length", 48, "--no-progress"]
    r = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "rewardlab.json").read_text())
    assert meta["regularizers"] == {reg: 0.1} and meta["metrics"]["accuracy"] > 0.75
