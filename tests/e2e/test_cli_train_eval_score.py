"""End to end through the CLI: tiny model → train → eval → score → plain transformers load → resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from rewardlab.cli import app
from rewardlab.checkpoint import checkpoint_steps

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def last_json(out: str) -> dict:
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, toy_data):
    root = tmp_path_factory.mktemp("e2e")
    run("tiny-model", "--output", root / "tiny", "--corpus", toy_data["train"], "--vocab-size", 400)
    out = root / "rm"
    run("train", "--data", toy_data["train"], "--model", root / "tiny", "--output", out, "--loss", "bt",
        "--epochs", 3, "--lr", 3e-3, "--batch-size", 16, "--max-length", 64, "--eval-split", 0.1, "--no-progress")
    return out


def test_train_writes_hf_checkpoint_and_metadata(trained):
    assert (trained / "model.safetensors").is_file() and (trained / "config.json").is_file()
    assert (trained / "tokenizer.json").is_file() and (trained / "rewardlab_config.yaml").is_file()
    meta = json.loads((trained / "rewardlab.json").read_text())
    assert meta["loss"] == "bt" and meta["pooling"] == "last_token" and meta["max_length"] == 64
    assert meta["data"]["train"]["n_loaded"] == 400 and meta["data"]["eval"]["n_loaded"] == 40
    assert meta["metrics"]["accuracy"] >= 0.9
    assert {"torch", "transformers", "rewardlab"} <= set(meta["versions"])
    # the sequence convention (a decoder: EOS appended, as TRL) and the training-reward statistics are recorded
    assert meta["sequence"]["append_eos"] is True and meta["sequence"]["eos_token"] == "</s>"
    stats = meta["reward_stats"]
    assert stats["n_records"] == 256 and stats["n_sequences"] == 512 and stats["std"] > 0  # a sample of the 360
    config = json.loads((trained / "config.json").read_text())
    assert config["mean"] == stats["mean"] and config["std"] == stats["std"]  # where OpenRLHF keeps them


def test_normalize_uses_saved_statistics(trained, toy_data, tmp_path):
    meta = json.loads((trained / "rewardlab.json").read_text())
    rows = [{"prompt": "What do you think of rain?", "response": " it seems quite great."},
            {"prompt": "What do you think of chess?", "response": " the answer is rude."}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run("score", "--model", trained, "--input", src, "--output", tmp_path / "raw.jsonl", "--no-progress")
    out = last_json(run("score", "--model", trained, "--input", src, "--output", tmp_path / "norm.jsonl", "--normalize",
                        "--no-progress"))
    assert out["normalized"] is True and out["append_eos"] is True
    raw = [json.loads(x)["reward"] for x in (tmp_path / "raw.jsonl").read_text().splitlines()]
    norm = [json.loads(x)["reward"] for x in (tmp_path / "norm.jsonl").read_text().splitlines()]
    st = meta["reward_stats"]
    for r, n in zip(raw, norm):
        assert n == pytest.approx((r - st["mean"]) / st["std"], abs=1e-6)
    # the saved statistics describe the training rewards: normalised, they have mean ~0 and std ~1 there
    res = last_json(run("eval", "--model", trained, "--data", toy_data["test"], "--output", tmp_path / "e.json", "--normalize",
                        "--no-progress", "--bootstrap", "0"))
    assert res["normalized"] is True and res["reward_stats"]["mean"] == st["mean"]
    assert res["sequence"] == {**meta["sequence"], "source": "checkpoint"}


def test_eval_on_held_out_pairs(trained, toy_data, tmp_path):
    out = last_json(run("eval", "--model", trained, "--data", toy_data["test"], "--output", tmp_path / "m.json"))
    assert out["accuracy"] >= 0.9 and out["n_pairs"] == 100
    assert {"mean_margin", "loss", "reward_ties"} <= set(out)
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] == out["accuracy"]
    shared = last_json(run("eval", "--model", trained, "--data", toy_data["test"], "--output", tmp_path / "s.json",
                           "--shared-prompt"))
    assert shared["accuracy"] == out["accuracy"] and abs(shared["mean_margin"] - out["mean_margin"]) < 1e-4


def test_score_matches_plain_transformers(trained, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rows = [{"prompt": "What do you think of rain?", "response": " it seems quite great and kind."},
            {"prompt": "What do you think of chess?", "response": " the answer is rude."},
            {"prompt": "What do you think of bread?", "response": " so."}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run("score", "--model", trained, "--input", src, "--output", tmp_path / "out.jsonl")
    scored = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [s["prompt"] for s in scored] == [r["prompt"] for r in rows]

    model = AutoModelForSequenceClassification.from_pretrained(trained).eval()
    tok = AutoTokenizer.from_pretrained(trained)
    # the text as TRL's RewardTrainer builds it: prompt + response + EOS (rewardlab's convention for a decoder)
    batch = tok([r["prompt"] + r["response"] + tok.eos_token for r in rows], padding=True, return_tensors="pt")
    with torch.no_grad():
        plain = model(**batch).logits.squeeze(-1).tolist()
    for s, p in zip(scored, plain):
        assert abs(s["reward"] - p) < 1e-5

    # --compile (torch.compile, dynamic shapes) gives the same rewards
    run("score", "--model", trained, "--input", src, "--output", tmp_path / "compiled.jsonl", "--compile")
    compiled = [json.loads(line) for line in (tmp_path / "compiled.jsonl").read_text().splitlines()]
    for s, c in zip(scored, compiled):
        assert abs(s["reward"] - c["reward"]) < 1e-5


@pytest.mark.parametrize("content, expected", [
    (b'{"prompt": "a", "response": "b"}\n{"prompt": "\xff", "response": "x"}\n', ":2: not UTF-8 text (byte 0xff"),
    (b"", "no records"),
    (b"\n\n", "no records"),
    (b'{"prompt": 3, "response": "x"}\n', ":1: field 'prompt': expected a string or chat messages, got int"),
    (b'{"prompt": "a", "response": null}\n', ":1: field 'response': expected a string or chat messages, got NoneType"),
    (b'{"prompt": "a"}\n', ":1: field 'response': missing"),
    (b'[1, 2]\n', ":1: expected a JSON object, got list"),
    (b'{"prompt": "a", "response": "b"\n', ":1: invalid JSON"),
])
def test_score_bad_input_is_a_clear_error(trained, tmp_path, content, expected):
    """Bad input to `score`: exit 2 with file, line and field; no traceback, nothing written."""
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    r = runner.invoke(app, ["score", "--model", str(trained), "--input", str(src), "--output", str(tmp_path / "o.jsonl")])
    assert r.exit_code == 2 and expected in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "o.jsonl").exists()


def test_normalize_without_saved_statistics_is_refused(tiny_llama, toy_data, tmp_path):
    """A folder rewardlab did not train has no reward statistics: --normalize stops before scoring, naming the folder."""
    for verb, args in (("eval", ["--data", toy_data["test"], "--bootstrap", "0"]),
                       ("score", ["--input", toy_data["test"], "--output", tmp_path / "o.jsonl"])):
        r = runner.invoke(app, [verb, "--model", str(tiny_llama), "--normalize", "--no-progress", *map(str, args)])
        assert r.exit_code == 2 and "no saved reward statistics" in r.output and str(tiny_llama) in r.output, r.output
    assert not (tmp_path / "o.jsonl").exists()


def test_data_error_names_the_flag_on_the_command_line(tiny_llama, tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"prompt": "a", "chosen": 5, "rejected": "b"}\n')
    r = runner.invoke(app, ["train", "--data", str(src), "--model", str(tiny_llama), "--output", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--on-bad-record skip" in r.output and "on_bad_record=" not in r.output


def test_help_lists_verbs():
    out = runner.invoke(app, ["--help"]).stdout
    for verb in ("train", "eval", "score", "tiny-model", "losses", "study", "demo", "optimize"):
        assert verb in out
    for verb in ("train", "eval", "score", "tiny-model", "study", "demo", "optimize", "losses"):
        r = runner.invoke(app, [verb, "--help"])
        assert r.exit_code == 0 and "--" in r.stdout


def test_train_config_file_and_errors(toy_data, tiny_llama, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {toy_data['train']}\nmodel: {tiny_llama}\nloss: nope\n")
    r = runner.invoke(app, ["train", "--config", str(cfg), "--output", str(tmp_path / "o")])
    assert r.exit_code != 0 and "unknown loss 'nope'" in r.output and "bt" in r.output
    cfg.write_text("data: x\nbogus: 1\n")
    r = runner.invoke(app, ["train", "--config", str(cfg)])
    assert r.exit_code != 0 and "bogus" in r.output


def _train_cmd(data, model, out, *extra):
    return [sys.executable, "-m", "rewardlab", "train", "--data", str(data), "--model", str(model), "--output", str(out),
            "--epochs", "2", "--lr", "3e-3", "--batch-size", "8", "--max-length", "64", "--eval-split", "0",
            "--save-every", "5", "--no-progress", *extra]


def test_kill_and_resume_gives_same_weights(toy_data, tiny_llama, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(toy_data["train"], tiny_llama, straight), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(toy_data["train"], tiny_llama, killed), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and max(checkpoint_steps(killed), default=0) < 30:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "checkpoints").is_dir() and not (killed / "model.safetensors").exists(), "run was not interrupted"
    subprocess.run(_train_cmd(toy_data["train"], tiny_llama, killed, "--resume"), check=True, env=env, capture_output=True)

    a, b = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
