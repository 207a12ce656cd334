"""Loading untrusted files runs nothing: pickle weights, a model's own code and YAML tags are refused unless asked.

- Weights: safetensors only; a folder with only ``pytorch_model.bin`` is refused by every verb with a message
  naming ``--allow-pickle``, and loads with it (the same rewards as the safetensors copy).
- Remote code: ``auto_map`` code beside a model is never imported without ``--trust-remote-code`` (a marker file
  its import would write stays absent); with the flag it is (so the refusal is what kept it out).
- YAML: configs and NAME=VALUE options are read with ``yaml.safe_load``; a ``!!python/object`` tag is a clear
  error and is not executed.
- Contracts: every loader passes ``trust_remote_code`` and ``use_safetensors`` explicitly, and no rewardlab module
  calls ``from_pretrained`` or a non-safe YAML loader around ``rewardlab.models.loading``.
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import rewardlab
from rewardlab.cli import app
from rewardlab.models.loading import UnsafeModelError

runner = CliRunner()
ROOT = Path(rewardlab.__file__).parent


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def refused(result, *words: str) -> str:
    """A usage-style refusal: exit code 2, the words in the message, no traceback."""
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    text = " ".join(result.output.replace("│", " ").split())
    squeezed = "".join(text.split())  # rich boxes and wraps a usage error's message, even inside a path
    for w in words:
        assert "".join(w.split()) in squeezed, (w, result.output)
    return text


@pytest.fixture(scope="module")
def pickle_model(tiny_llama, tmp_path_factory) -> Path:
    """The tiny model with its weights as pytorch_model.bin only (transformers 5 saves safetensors whatever it is
    asked, so the pickle file is written with torch.save, as older transformers did)."""
    out = tmp_path_factory.mktemp("pickle") / "rm"
    shutil.copytree(tiny_llama, out)
    torch.save(load_file(out / "model.safetensors"), out / "pytorch_model.bin")
    (out / "model.safetensors").unlink()
    return out


@pytest.fixture(scope="module")
def score_input(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("score") / "in.jsonl"
    rows = [{"prompt": "What do you think of rain?", "response": " it seems quite great."},
            {"prompt": "What do you think of chess?", "response": " the answer is rude."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rewards(path: Path) -> list[float]:
    return [json.loads(line)["reward"] for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------- pickle weights


def test_score_refuses_pickle_weights_and_loads_them_with_allow_pickle(pickle_model, tiny_llama, score_input, tmp_path):
    text = refused(invoke("score", "--model", pickle_model, "--input", score_input, "--output", tmp_path / "x.jsonl", "--no-progress"),
                   "only PyTorch pickle weights (pytorch_model.bin)", "--allow-pickle", "only")
    assert not (tmp_path / "x.jsonl").exists() and str(pickle_model) in text
    ok = invoke("score", "--model", pickle_model, "--input", score_input, "--output", tmp_path / "p.jsonl", "--no-progress",
                "--allow-pickle")
    assert ok.exit_code == 0, ok.output
    assert invoke("score", "--model", tiny_llama, "--input", score_input, "--output", tmp_path / "s.jsonl", "--no-progress").exit_code == 0
    assert rewards(tmp_path / "p.jsonl") == pytest.approx(rewards(tmp_path / "s.jsonl"), abs=1e-6)


def test_every_loader_refuses_pickle_weights_unless_allowed(pickle_model):
    from rewardlab.analysis.features import load_encoder
    from rewardlab.eval.implicit import load_implicit_reward_model
    from rewardlab.models.reward_model import load_backbone, load_reward_model
    from rewardlab.optimize.policy import load_policy
    from rewardlab.rewards import build_reward
    from rewardlab.rewards.lm import LMLikelihoodReward

    loaders = {"load_reward_model": lambda **kw: load_reward_model(str(pickle_model), **kw),
               "load_implicit_reward_model": lambda **kw: load_implicit_reward_model(str(pickle_model), "avg_logprob", **kw),
               "load_backbone": lambda **kw: load_backbone(str(pickle_model), **kw),
               "load_policy": lambda **kw: load_policy(str(pickle_model), **kw),
               "load_encoder": lambda **kw: load_encoder(str(pickle_model), **kw),
               "LMLikelihoodReward.load": lambda **kw: LMLikelihoodReward.load(str(pickle_model), **kw),
               "rm: reward": lambda **kw: build_reward([f"rm:{pickle_model}"], **kw),
               "rm: reward, allow_pickle=false": lambda: build_reward([f"rm:{pickle_model};allow_pickle=false"])}
    for name, load in loaders.items():
        with pytest.raises(UnsafeModelError, match="--allow-pickle"):
            load()
    assert load_reward_model(str(pickle_model), allow_pickle=True)[0].pooling == "last_token"
    assert build_reward([f"rm:{pickle_model}"], allow_pickle=True).model is not None
    assert build_reward([f"rm:{pickle_model};allow_pickle=true"]).model is not None
    assert load_encoder(str(pickle_model), allow_pickle=True)[0] is not None


@pytest.mark.parametrize("verb", ["train", "eval", "optimize", "study"])
def test_every_verb_refuses_pickle_weights_naming_the_flag(verb, pickle_model, toy_data, tmp_path):
    args = {"train": ["train", "--data", toy_data["train"], "--model", pickle_model, "--output", tmp_path / "o", "--limit", 20,
                      "--no-progress"],
            "eval": ["eval", "--model", pickle_model, "--data", toy_data["test"], "--limit", 10, "--no-progress"],
            "optimize": ["optimize", "bon", "--policy", pickle_model, "--output", tmp_path / "o"],
            "study": ["study", "--backbone", pickle_model, "--output", tmp_path / "o", "--losses", "bt", "--baseline", "bt", "--seeds", 0,
                      "--flip-rates", 0, "--train-sizes", 8, "--test-prompts", 1, "--candidates", 2, "--workers", 1, "--no-progress"]}[verb]
    refused(invoke(*args), "pytorch_model.bin", "--allow-pickle")


# --------------------------------------------------------------------------- remote code


def with_custom_code(tiny_llama: Path, out: Path, model_type: str) -> tuple[Path, Path]:
    """A copy of the tiny model whose config.json names code beside it (auto_map → evil.py); importing evil.py
    writes the returned marker file."""
    shutil.copytree(tiny_llama, out)
    marker = out.parent / f"{out.name}-code-ran"
    (out / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('the model folder ran its code')\n"
        "from transformers import LlamaConfig, LlamaForSequenceClassification\n\n\n"
        f"class EvilConfig(LlamaConfig):\n    model_type = {model_type!r}\n\n\n"
        "class EvilModel(LlamaForSequenceClassification):\n    config_class = EvilConfig\n")
    config = json.loads((out / "config.json").read_text())
    config.update(model_type=model_type, auto_map={"AutoConfig": "evil.EvilConfig", "AutoModelForSequenceClassification": "evil.EvilModel"})
    (out / "config.json").write_text(json.dumps(config))
    return out, marker


def test_model_code_runs_only_with_trust_remote_code(tiny_llama, score_input, tmp_path, monkeypatch):
    import transformers.dynamic_module_utils as dynamic

    model, marker = with_custom_code(tiny_llama, tmp_path / "custom", "evil-llama")
    refused(invoke("score", "--model", model, "--input", score_input, "--output", tmp_path / "x.jsonl", "--no-progress"),
            "ships its own model code", "--trust-remote-code")
    from rewardlab.models.reward_model import load_reward_model

    with pytest.raises(UnsafeModelError, match="--trust-remote-code"):
        load_reward_model(str(model))
    assert not marker.exists()
    # a known architecture (llama) whose config also names custom code: transformers' own class, the code unread
    known, known_marker = with_custom_code(tiny_llama, tmp_path / "known", "llama")
    assert invoke("score", "--model", known, "--input", score_input, "--output", tmp_path / "k.jsonl", "--no-progress").exit_code == 0
    assert not known_marker.exists()
    # with the flag the code is imported (from a modules cache in tmp_path, not ~/.cache): the refusal is what kept it
    # out. (This toy class then fails to load in transformers' tokenizer lookup; whether it loads does not matter here.)
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    invoke("score", "--model", model, "--input", score_input, "--output", tmp_path / "t.jsonl", "--no-progress", "--trust-remote-code")
    assert marker.read_text() == "the model folder ran its code"


def test_loaders_pass_trust_remote_code_and_use_safetensors_explicitly(tiny_llama, monkeypatch):
    """Each loader's from_pretrained calls, recorded: trust_remote_code is always given (False unless asked; None
    would make transformers ask on a terminal) and model weights are asked as safetensors unless allow_pickle."""
    import transformers

    from rewardlab.analysis.features import load_encoder
    from rewardlab.eval.implicit import load_implicit_reward_model
    from rewardlab.models.reward_model import load_reward_model
    from rewardlab.optimize.policy import load_policy
    from rewardlab.rewards.lm import LMLikelihoodReward

    calls = []

    class Stop(Exception):
        pass

    def recorder(name, original=None):
        def from_pretrained(cls, path, *args, **kwargs):
            calls.append((name, kwargs))
            if original is None:
                raise Stop
            return original.__func__(cls, path, *args, **kwargs)
        return classmethod(from_pretrained)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        recorder("tokenizer", transformers.AutoTokenizer.__dict__["from_pretrained"]))
    for auto in ("AutoModel", "AutoModelForCausalLM", "AutoModelForSequenceClassification"):
        monkeypatch.setattr(getattr(transformers, auto), "from_pretrained", recorder(auto))
    loaders = [lambda **kw: load_reward_model(str(tiny_llama), **kw), lambda **kw: load_policy(str(tiny_llama), **kw),
               lambda **kw: load_encoder(str(tiny_llama), allow_pickle=kw.get("allow_pickle", False)),
               lambda **kw: LMLikelihoodReward.load(str(tiny_llama), allow_pickle=kw.get("allow_pickle", False)),
               lambda **kw: load_implicit_reward_model(str(tiny_llama), "avg_logprob", **kw)]
    for load in loaders:
        for asked in ({}, {"allow_pickle": True}):
            calls.clear()
            with pytest.raises(Stop):
                load(**asked)
            models = [kw for name, kw in calls if name != "tokenizer"]
            assert len(models) == 1 and all(kw["trust_remote_code"] is False for _, kw in calls), calls
            assert models[0].get("use_safetensors") is (None if asked else True), calls
    calls.clear()
    with pytest.raises(Stop):
        load_reward_model(str(tiny_llama), trust_remote_code=True)
    assert [kw["trust_remote_code"] for _, kw in calls] == [True, True]


def test_no_module_loads_around_the_safe_loader():
    """rewardlab calls from_pretrained only in models/loading.py (KNOWN: the calls left as they are, and why), and
    never a YAML loader that can build Python objects."""
    known = {"rewardlab/serve/replicas.py": "AutoConfig only (no weights), trust_remote_code passed"}
    direct, unsafe_yaml = set(), []
    for path in sorted(ROOT.rglob("*.py")):
        rel = str(path.relative_to(ROOT.parent))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "from_pretrained" and rel != "rewardlab/models/loading.py":
                direct.add(rel)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "yaml" and node.attr in (
                    "load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all", "Loader", "UnsafeLoader",
                    "FullLoader"):
                unsafe_yaml.append(f"{rel}:{node.lineno} yaml.{node.attr}")
    assert direct <= set(known), sorted(direct - set(known))
    assert unsafe_yaml == []


# --------------------------------------------------------------------------- YAML


def test_yaml_config_with_a_python_tag_is_refused_not_run(score_input, tmp_path):
    marker = tmp_path / "yaml-ran"
    config = tmp_path / "evil.yaml"
    config.write_text(f"model: !!python/object/apply:os.system ['touch {marker}']\ninput: {score_input}\n")
    text = refused(invoke("score", "--config", config, "--output", tmp_path / "x.jsonl"),
                   "evil.yaml, line 1", "python/object/apply:os.system", "yaml.safe_load", "never Python objects")
    assert not marker.exists() and "Traceback" not in text
    # a NAME=VALUE option's value is YAML too
    bad = invoke("train", "--data", "d.jsonl", "--model", "m", "--output", tmp_path / "o",
                 "--loss-arg", f"beta=!!python/object/apply:os.system ['touch {marker}']")
    refused(bad, "python/object/apply:os.system", "yaml.safe_load")
    assert not marker.exists()
    # the Python API: a ValueError naming the file, for every verb's config
    from rewardlab.config import TrainConfig, load_config

    with pytest.raises(ValueError, match=r"evil\.yaml, line 1: could not determine a constructor"):
        load_config(TrainConfig, config)
