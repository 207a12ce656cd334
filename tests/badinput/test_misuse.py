"""Misuse and faults beyond bad records: --progress/--no-progress on the verbs that gained it, `tiny-model --config`,
`eval --output` over earlier results, and a study resumed over damaged stored results. Tiny settings throughout
(nano models, one step, a few records)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from rewardlab.cli import app
from toydata import toy_pairs, write_jsonl

runner = CliRunner()


def ok(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0 and result.exception is None, result.output + repr(result.exception)
    return result.output


# --------------------------------------------------------------------------- --progress / --no-progress

SMALL_OPTIMIZE = ("--eval-prompts", 2, "--max-new-tokens", 4)
PROGRESS = {  # verb → (arguments, what its bar prints)
    "sample-data": (("sample-data", "--n-train", 2, "--n-test", 1, "--forms", "pairs"), "sample-data: 100%"),
    "tiny-model": (("tiny-model", "--corpus", "{corpus}", "--vocab-size", 300), "Writing model shards"),
    "optimize policy": (("optimize", "policy", "--n-examples", 16, "--batch-size", 8, "--epochs", 1, "--size", "nano",
                         "--vocab-size", 300), "policy sft: 100%"),
    "optimize bon": (("optimize", "bon", "--policy", "{policy}", "--n", 2, *SMALL_OPTIMIZE), "optimize bon (N = 2): 100%"),
    "optimize rwr": (("optimize", "rwr", "--policy", "{policy}", "--steps", 1, "--batch-size", 2, "--k", 2, "--n-prompts", 4,
                      *SMALL_OPTIMIZE), "optimize rwr: 100%"),
}


def test_every_verb_with_work_to_show_has_the_progress_flag():
    """Every verb generated from a config has --progress/--no-progress, but serve (a server has no finite work to
    show); the `losses` commands print at once and have neither --config nor bars."""
    from typer.main import get_command

    def commands(group, prefix=""):
        for name, cmd in group.commands.items():
            yield from commands(cmd, f"{prefix}{name} ") if hasattr(cmd, "commands") else [(prefix + name, cmd)]

    verbs = {name: {p.name for p in cmd.params} for name, cmd in commands(get_command(app))}
    lacking = sorted(name for name, params in verbs.items() if "config" in params and "progress" not in params)
    assert lacking == ["serve"], lacking
    assert {"sample-data", "tiny-model", "optimize bon", "optimize policy", "optimize ppo"} <= set(verbs)


@pytest.mark.parametrize("verb", PROGRESS)
def test_progress_flag_takes_effect(verb, tmp_path, random_policy_dir):
    """Each verb draws its bar with --progress (the default) and nothing with --no-progress; the flag is saved."""
    args, bar = PROGRESS[verb]
    corpus = write_jsonl(tmp_path / "corpus.jsonl", toy_pairs(20, seed=0))
    args = [{"{policy}": random_policy_dir, "{corpus}": corpus}.get(a, a) for a in args]
    shown = ok(*args, "--output", tmp_path / "on", "--progress")
    hidden = ok(*args, "--output", tmp_path / "off", "--no-progress")
    assert bar in shown, shown
    assert bar not in hidden and "100%|" not in hidden, hidden
    assert yaml.safe_load((tmp_path / "off" / "rewardlab_config.yaml").read_text())["progress"] is False


# --------------------------------------------------------------------------- tiny-model --config


def test_tiny_model_reads_a_config_file_and_saves_the_resolved_one(tmp_path):
    """tiny-model is generated from TinyModelConfig like every verb: --config FILE.yaml, flags over it, the resolved
    config saved beside the model (and loadable again); its old flags still work; a bad value is a usage error."""
    from transformers import AutoConfig, AutoTokenizer

    from rewardlab.config import TinyModelConfig, load_config

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a small corpus of words for a tokenizer\nanother line of plain text\n")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({"arch": "gpt2", "vocab_size": 280, "corpus": [str(corpus)], "seed": 1}))
    out = tmp_path / "model"
    summary = json.loads(ok("tiny-model", "--config", tmp_path / "tiny.yaml", "--output", out, "--seed", 7, "--no-progress")
                         .strip().splitlines()[-1])
    assert summary == {"output": str(out), "arch": "gpt2", "size": "nano"}
    assert AutoConfig.from_pretrained(out).model_type == "gpt2" and len(AutoTokenizer.from_pretrained(out)) <= 280
    saved = load_config(TinyModelConfig, out / "rewardlab_config.yaml")
    assert saved == TinyModelConfig(output=str(out), arch="gpt2", corpus=[str(corpus)], vocab_size=280, seed=7, progress=False)
    bad = runner.invoke(app, ["tiny-model", "--output", str(tmp_path / "x"), "--size", "huge"])
    assert bad.exit_code == 2 and "unknown size 'huge'" in bad.output and not (tmp_path / "x").exists()
    missing = runner.invoke(app, ["tiny-model", "--corpus", str(corpus)])
    assert missing.exit_code == 2 and "tiny-model needs --output" in missing.output


# --------------------------------------------------------------------------- eval --output over earlier results


def test_eval_refuses_to_overwrite_results_unless_asked(tmp_path, tiny_llama, monkeypatch):
    """An --output holding results (a .json file; a folder with results.json) is refused before the data are read,
    naming it and --overwrite; with --overwrite it is written again."""
    import rewardlab.eval.run as R

    data = write_jsonl(tmp_path / "pairs.jsonl", toy_pairs(6, seed=1))
    common = ("eval", "--model", tiny_llama, "--data", data, "--bootstrap", 0, "--no-progress", "--no-report")
    for out in (tmp_path / "m.json", tmp_path / "folder"):
        ok(*common, "--output", out)
        written = out if out.suffix == ".json" else out / "results.json"
        before = written.stat().st_mtime_ns
        real = R.load_eval_data
        monkeypatch.setattr(R, "load_eval_data", lambda *a, **kw: pytest.fail("the data were read before the refusal"))
        again = runner.invoke(app, [str(a) for a in (*common, "--output", out)])
        assert again.exit_code == 2, again.output
        assert f"error: {out} already" in again.output and "pass --overwrite to replace it" in again.output, again.output
        assert written.stat().st_mtime_ns == before
        monkeypatch.setattr(R, "load_eval_data", real)
        ok(*common, "--output", out, "--overwrite")
        assert written.stat().st_mtime_ns != before
    assert "m.json already exists" in runner.invoke(app, [str(a) for a in (*common, "--output", tmp_path / "m.json")]).output


def test_score_and_sample_data_refuse_to_overwrite_unless_asked(tmp_path, tiny_llama):
    """score's output file and sample-data's folder: refused when they exist (nothing written), replaced with --overwrite."""
    data = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "Hi?", "response": "fine."}])
    out = tmp_path / "scored.jsonl"
    common = ("score", "--model", tiny_llama, "--input", data, "--output", out, "--no-progress")
    ok(*common)
    before = out.stat().st_mtime_ns
    again = runner.invoke(app, [str(a) for a in common])
    assert again.exit_code == 2 and f"error: {out} already exists" in again.output, again.output
    assert out.stat().st_mtime_ns == before
    ok(*common, "--overwrite")
    folder = tmp_path / "sample"
    common = ("sample-data", "--output", folder, "--n-train", 3, "--n-test", 2, "--forms", "pairs", "--no-progress")
    ok(*common)
    again = runner.invoke(app, [str(a) for a in common])
    assert again.exit_code == 2 and "already holds a run (README.md" in again.output and "--overwrite" in again.output
    ok(*common, "--overwrite")


def test_data_that_is_neither_a_path_nor_a_reachable_dataset(tmp_path, tiny_llama):
    """A --data that is no local path is looked up on the Hub; offline (or no such dataset) that is a clear error
    naming it, not the datasets library's traceback."""
    for args in (("train", "--data", "no-such-data", "--model", tiny_llama, "--output", tmp_path / "o"),
                 ("eval", "--data", "no-such-data", "--model", tiny_llama)):
        r = runner.invoke(app, [str(a) for a in (*args, "--no-progress")])
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert "no-such-data: no such local file or folder" in r.output, r.output


# --------------------------------------------------------------------------- a study resumed over damaged results


def test_a_resumed_study_redoes_runs_whose_stored_results_are_damaged(tmp_path, tiny_llama):
    """4 runs; then one run's test_rewards.npy is cut short (its result.json without the sha1 of the file, as results
    stored before the sha1 was: np.load finds the cut), another's has bytes changed (np.load would still read it: the
    sha1 in result.json tells), a third's result.json is cut short, and timing.json is garbage. The rerun names each
    damaged file, redoes those three runs (not the fourth) and writes the report; nothing crashes."""
    from rewardlab.analysis.study import REWARDS, RESULT, run_study, stored_result
    from rewardlab.config import StudyConfig

    out = tmp_path / "study"
    cfg = StudyConfig(output=str(out), backbone=str(tiny_llama), losses=["bt", "hinge"], flip_rates=[0.0], seeds=[0, 1],
                      train_sizes=[32], test_prompts=2, candidates=8, head_epochs=2, workers=1, progress=False)
    run_study(cfg, log=lambda m: None, show=False)
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 4 and all("rewards_sha1" in json.loads((r / RESULT).read_text()) for r in runs)
    cut, changed, broken, intact = runs
    data = (cut / REWARDS).read_bytes()
    (cut / REWARDS).write_bytes(data[: len(data) // 2])
    old = {k: v for k, v in json.loads((cut / RESULT).read_text()).items() if k != "rewards_sha1"}
    (cut / RESULT).write_text(json.dumps(old))
    data = bytearray((changed / REWARDS).read_bytes())
    data[-4:] = b"\x00\x00\xc0\x7f"  # the last reward becomes NaN: still a loadable .npy
    (changed / REWARDS).write_bytes(bytes(data))
    text = (broken / RESULT).read_text()
    (broken / RESULT).write_text(text[: len(text) // 2])
    (out / "timing.json").write_bytes(b"\xff\xfe not json")
    kept = (intact / RESULT).stat().st_mtime_ns

    logs = []
    report = run_study(cfg, log=logs.append, show=False)
    said = "\n".join(logs)
    assert f"run {cut.name}: its stored result is damaged ({REWARDS} unreadable" in said, said
    assert f"run {changed.name}: its stored result is damaged ({REWARDS} is not the file" in said, said
    assert f"run {broken.name}: its stored result is damaged ({RESULT} unreadable" in said, said
    assert "timing.json is damaged" in said and "1 done, 3 to run" in said, said
    assert (intact / RESULT).stat().st_mtime_ns == kept
    assert report["n_runs"] == 4 and all(stored_result(r, json.loads((r / RESULT).read_text())["key"]) for r in runs)
