"""The command line generated from the typed configs (rewardlab.config.add_config_command): one rule for
list and NAME=VALUE options on every verb, `rewardlab optimize` included, and one name for saved configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from rewardlab import config as C
from rewardlab.cli import app

runner = CliRunner()


@pytest.fixture
def captured(monkeypatch) -> dict:
    """The config each verb would run with, caught before any training or sampling."""
    import rewardlab.analysis.study as study
    import rewardlab.optimize.run as optimize_run
    import rewardlab.train.loop as loop

    seen: dict = {}
    monkeypatch.setattr(loop, "train", lambda cfg, log: seen.update(train=cfg) or {"metrics": {}})
    monkeypatch.setattr(study, "run_study", lambda cfg: seen.update(study=cfg))
    monkeypatch.setattr(optimize_run, "optimize", lambda cfg, log: seen.update(optimize=cfg) or {})
    return seen


def invoke(*args) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)


def test_a_list_option_reads_alike_on_study_and_optimize(captured, tmp_path):
    """Repeat the flag or join items with commas, or both: `--seeds 1,2 --seeds 4` on study is [1, 2, 4],
    and so is `--n 1,2 --n 4` on optimize bon; float items the same (--flip-rates, --reward-weight)."""
    invoke("study", "--output", tmp_path / "s", "--seeds", "1,2", "--seeds", 4, "--flip-rates", "0, 0.3")
    invoke("optimize", "bon", "--output", tmp_path / "b", "--n", "1,2", "--n", 4, "--reward", "gold", "--reward", "bleu",
           "--reward-weight", "1,0.5")
    study, bon = captured["study"], captured["optimize"]
    assert study.seeds == bon.n == [1, 2, 4]
    assert study.flip_rates == [0.0, 0.3] and bon.reward_weight == [1.0, 0.5]
    assert bon.method == "bon" and bon.reward == ["gold", "bleu"]


def test_a_reward_spec_keeps_its_commas(captured, tmp_path):
    """--reward takes one spec per flag: the commas of an ensemble spec belong to it."""
    invoke("optimize", "ppo", "--output", tmp_path / "p", "--reward", "ensemble:runs/a,runs/b;agg=min", "--reward", "gold")
    assert captured["optimize"].reward == ["ensemble:runs/a,runs/b;agg=min", "gold"]


def test_name_value_options_on_train_and_overopt(captured, tmp_path):
    """One NAME=VALUE per flag, never split at commas; VALUE read as the field's value type (YAML for a
    plain dict): --loss-arg weights=[1,2] is a list, --regularizer a float, --column and --bon-run strings."""
    invoke("train", "--data", "d.jsonl", "--model", "m", "--output", tmp_path / "t", "--loss-arg", "weights=[1,2]",
           "--loss-arg", "model=davidson", "--regularizer", "center=0.01", "--column", "prompt=010")
    cfg = captured["train"]
    assert cfg.loss_args == {"weights": [1, 2], "model": "davidson"}
    assert cfg.regularizers == {"center": 0.01} and cfg.columns == {"prompt": "010"}
    # overopt's NAME=DIR options go through the same reader (the field type is dict[str, str])
    got = {}
    local = typer.Typer()  # two commands, so that typer keeps the command name as an argument
    C.add_config_command(local, "overopt", "test", C.fields_of(C.OveroptConfig), lambda path, values: got.update(values))
    C.add_config_command(local, "train", "test", C.fields_of(C.TrainConfig), lambda path, values: got.update(values))
    result = runner.invoke(local, ["overopt", "--bon-run", "a=runs/x,y", "--bon-run", "b=010", "--rm", "A,B"])
    assert result.exit_code == 0, result.output
    assert got == {"bon_run": {"a": "runs/x,y", "b": "010"}, "rm": ["A,B"]}


@pytest.mark.parametrize("args, message", [
    (["study", "--output", "s", "--seeds", "0,x"], "--seeds: expected int items"),
    (["optimize", "bon", "--n", "1,two"], "--n: expected int items"),
    (["train", "--regularizer", "center"], "--regularizer: expected NAME=VALUE"),
    (["train", "--loss-arg", "alpha=0.1", "--loss-arg", "alpha=0.2"], "--loss-arg: alpha is given twice"),
])
def test_a_value_against_the_rule_is_a_usage_error_naming_the_flag(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output


def test_every_generated_list_option_states_its_rule_in_help():
    rules = (C.LIST_SYNTAX, C.WHOLE_ITEM_SYNTAX, C.PAIR_SYNTAX)

    def commands(group):
        for cmd in group.commands.values():
            yield from commands(cmd) if hasattr(cmd, "commands") else [cmd]

    checked = 0
    for cmd in commands(get_command(app)):
        if "config" not in {p.name for p in cmd.params}:
            continue  # not generated from a config (tiny-model, losses …)
        for p in cmd.params:
            if p.multiple:
                assert any(rule in " ".join(p.help.split()) for rule in rules), (cmd.name, p.name)
                checked += 1
    assert checked >= 20


def test_one_name_for_saved_configs():
    assert C.CONFIG_FILE == "rewardlab_config.yaml"
    assert C.config_beside("out/scored.jsonl") == Path("out/scored.rewardlab_config.yaml")
    assert C.config_beside(Path("m.json")) == Path("m.rewardlab_config.yaml")


def test_a_config_given_paths_saves_them_as_text(tmp_path):
    """The Python API takes ``Path`` objects where the CLI gives strings (e.g. a packaged model's ``get_model_path()``):
    the saved YAML holds them as plain strings, and loads back to the same values."""
    cfg = C.TrainConfig(data=tmp_path / "pairs.jsonl", model=tmp_path / "model", output=str(tmp_path / "out"))
    saved = C.save_config(cfg, tmp_path / "cfg.yaml")
    assert "!!python" not in saved.read_text()
    back = C.load_config(C.TrainConfig, saved)
    assert (back.data, back.model) == ([str(tmp_path / "pairs.jsonl")], str(tmp_path / "model"))
