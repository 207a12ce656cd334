"""The bad-input corpus (corpus.py) through the other verbs that read records: `study --data`, `optimize --prompts`
(with each prompt's reference text, read by a metric reward), `tiny-model --corpus`, `explain --input`, and the
bodies of `serve`.

49 kinds × 3 verbs (study, optimize, tiny-model) through the CLI = 147 runs, plus 49 with `study --on-bad-record
skip`; and for serve, every kind's bytes as the body of /score, /get_reward and /classify (46 files × 3 = 138
requests) and every parseable JSONL kind's records as /score items (25 requests). The contract is test_corpus.py's:
no traceback; a valid kind exits 0; any other exits non-zero with an ``error:`` line naming the file (and ``path:1``
where that verb reads the bad field). serve answers a JSON 4xx naming the field, never a 500.

Order is part of the contract: each verb reads its records before it loads any model, so these runs take
milliseconds. The tests check it: study's backbone, optimize's policy and tiny-model's builder are replaced by
stand-ins that record being reached.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from badinput.corpus import LINES, VALID, _kinds, write_corpus
from rewardlab.cli import app

KINDS = sorted(_kinds())
runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    return write_corpus(tmp_path_factory.mktemp("badinput"))


def check(verb: str, kind: str, path, result) -> None:
    """test_corpus.py's contract for one run of ``verb`` on ``kind``."""
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if kind in VALID[verb]:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code != 0, f"{kind}: exit 0 on bad input\n{result.output}"
    assert "error:" in result.output and str(path) in result.output, f"{kind}: the error does not name {path}\n{result.output}"
    if kind in LINES[verb]:
        assert f"{path}:1" in result.output, f"{kind}: the error does not name the line\n{result.output}"


# --------------------------------------------------------------------------- study --data


@pytest.fixture
def no_backbone(monkeypatch):
    """The study's backbone, replaced: reaching it means the data were not checked first."""
    from rewardlab.analysis import features

    def reached(*args, **kwargs):
        raise AssertionError("the backbone was resolved before --data was checked")

    monkeypatch.setattr(features, "resolve_backbone", reached)


@pytest.mark.parametrize("skip", [False, True], ids=["error", "skip"])
@pytest.mark.parametrize("kind", KINDS)
def test_study_data(kind, skip, corpus, tmp_path, no_backbone):
    path = corpus[kind]
    args = ["study", "--data", path, "--output", tmp_path / "study", "--backbone", "tiny", "--losses", "bt", "--flip-rates", "0",
            "--seeds", "0", "--train-sizes", "0", "--workers", "1", "--no-progress"]
    result = runner.invoke(app, [str(a) for a in args] + (["--on-bad-record", "skip"] if skip else []))
    check("study", kind, path, result)
    assert not (tmp_path / "study").exists(), "the study folder was made before --data was checked"
    if kind in VALID["train"]:  # good records, but three of them
        assert "3 records loaded; a study needs at least 4" in result.output, result.output
    if skip and kind in LINES["study"]:
        assert re.search(r"[1-9]\d* skipped", result.output), result.output


# --------------------------------------------------------------------------- optimize --prompts


@pytest.mark.parametrize("kind", KINDS)
def test_optimize_prompts_and_references(kind, corpus, random_policy_dir, tmp_path, monkeypatch):
    """`chosen` is the reference text of a bleu reward; the prompts file is checked before the policy is loaded."""
    import rewardlab.optimize.run as run

    loaded = []
    real = run.load_policy
    monkeypatch.setattr(run, "load_policy", lambda *a, **kw: loaded.append(a) or real(*a, **kw))
    path = corpus[kind]
    args = ["optimize", "bon", "--policy", random_policy_dir, "--output", tmp_path / "bon", "--prompts", path,
            "--reward", "bleu;column=chosen", "--n", 1, "--eval-prompts", 1, "--max-new-tokens", 4, "--no-progress"]
    result = runner.invoke(app, [str(a) for a in args])
    check("optimize", kind, path, result)
    assert bool(loaded) == (kind in VALID["optimize"]), f"{kind}: policy loaded {len(loaded)} time(s)\n{result.output}"


def test_optimize_reference_errors_name_the_reward_and_the_built_in_task_has_none(tmp_path):
    """A reference a metric reward cannot use is named with the reward that reads it; asking for a metric reward
    without --prompts (the built-in task has no references) is refused at once, not after sampling."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Tell me about tea.", "reference": "Tea is warm."}) + "\n"
                       + json.dumps({"prompt": "And coffee?", "reference": ["ok", 3]}) + "\n")
    result = runner.invoke(app, ["optimize", "bon", "--policy", "no-such-policy", "--prompts", str(prompts),
                                 "--reward", "rouge:rouge1", "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and f"{prompts}:2: field 'reference'" in result.output, result.output
    assert "--reward rouge:rouge1" in result.output and "got a list holding int" in result.output
    result = runner.invoke(app, ["optimize", "ppo", "--policy", "no-such-policy", "--reward", "bleu", "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "reads a 'reference' column" in result.output, result.output


# --------------------------------------------------------------------------- tiny-model --corpus


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_model_corpus(kind, corpus, tmp_path, monkeypatch):
    """The tokenizer's corpus is read (and refused) before anything is built; the builder is a stand-in here
    (one real build per --config test in test_misuse.py)."""
    import rewardlab.models.tiny as tiny

    built = []

    def fake_save_tiny(output, arch, texts, size, vocab_size, seed):
        built.append(list(texts))
        Path(output).mkdir(parents=True)
        return Path(output)

    monkeypatch.setattr(tiny, "save_tiny", fake_save_tiny)
    path = corpus[kind]
    result = runner.invoke(app, ["tiny-model", "--output", str(tmp_path / "tiny"), "--corpus", str(path), "--no-progress"])
    check("tiny-model", kind, path, result)
    assert bool(built) == (kind in VALID["tiny-model"])
    if built:
        assert any(t.strip() for t in built[0])


# --------------------------------------------------------------------------- serve: request bodies

ENDPOINTS = ("/score", "/get_reward", "/classify")
SERVE_ITEMS_VALID = {"utf8_bom", "nan_margin", "inf_margin", "string_margin", "chosen_empty_string", "rejected_blank",
                     "chosen_equals_rejected", "tie_string", "rating_string", "score_nan"}  # a response, whatever else


@pytest.fixture(scope="module")
def client(tiny_llama):
    from fastapi.testclient import TestClient

    from rewardlab.config import ServeConfig
    from rewardlab.models.reward_model import load_reward_model
    from rewardlab.serve.app import Scorer, build_app

    model, tok, _ = load_reward_model(str(tiny_llama))
    cfg = ServeConfig(model=str(tiny_llama))
    with TestClient(build_app(Scorer(model, tok, {"max_length": 64}, cfg), cfg)) as c:
        yield c


def check_4xx(response, where: str) -> str:
    assert 400 <= response.status_code < 500, f"{where}: {response.status_code} {response.text[:300]}"
    message = response.json()["error"]["message"]
    assert message and response.json()["error"]["code"] == response.status_code
    return message


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in ("folder_without_data", "missing_file", "directory_named_jsonl")])
def test_serve_bodies(kind, corpus, client):
    """Each corpus file's bytes as a request body: a JSON 4xx from every endpoint. Its JSONL records as /score
    items (chosen → response): scored when the item is valid, else a 4xx naming items[i] and the field."""
    path = corpus[kind]
    raw = path.read_bytes()
    for endpoint in ENDPOINTS:
        check_4xx(client.post(endpoint, content=raw, headers={"content-type": "application/json"}), f"{kind} {endpoint}")
    if not path.name.endswith(".jsonl"):
        return
    try:
        rows = [json.loads(line) for line in raw.decode("utf-8-sig").splitlines() if line.strip()]
    except (ValueError, RecursionError):
        return  # not JSON: the raw body above is the case
    if not rows:
        return  # no records: nothing to send as items
    items = [{("response" if k == "chosen" else k): v for k, v in r.items()} if isinstance(r, dict) else r for r in rows]
    response = client.post("/score", content=json.dumps({"items": items}), headers={"content-type": "application/json"})
    if kind in SERVE_ITEMS_VALID:
        assert response.status_code == 200 and len(response.json()["rewards"]) == len(items), response.text[:300]
    else:
        assert "items[" in check_4xx(response, f"{kind} items"), response.text[:300]


@pytest.mark.parametrize("body, where", [
    ({"items": [{"prompt": [], "response": []}]}, "items: cannot be encoded"),  # a chat template refuses no messages
    ({"items": [{"prompt": None, "response": "x"}]}, "items[0].prompt"),
    ({"items": [{"prompt": "p", "response": "x", "extra": [[[]]]}] * 2}, None),  # other fields are ignored
    ({"query": [["nested"]]}, "query"),
    ({"input": [1]}, "input"),
])
def test_serve_odd_items(client, body, where):
    endpoint = "/score" if "items" in body else "/get_reward" if "query" in body else "/classify"
    response = client.post(endpoint, json=body)
    if where is None:
        assert response.status_code == 200, response.text
    else:
        assert where in check_4xx(response, endpoint), response.text


def test_serve_chat_items_without_a_chat_template_are_a_422(tiny_llama):
    """A model whose tokenizer has no chat template cannot score chat messages: the client's error (422), not a 500."""
    from fastapi.testclient import TestClient

    from rewardlab.config import ServeConfig
    from rewardlab.models.reward_model import load_reward_model
    from rewardlab.serve.app import Scorer, build_app

    model, tok, _ = load_reward_model(str(tiny_llama))
    tok.chat_template = None
    cfg = ServeConfig(model=str(tiny_llama))
    chat = {"items": [{"prompt": [{"role": "user", "content": "hi"}], "response": [{"role": "assistant", "content": "yo"}]}]}
    with TestClient(build_app(Scorer(model, tok, {"max_length": 64}, cfg), cfg)) as c:
        message = check_4xx(c.post("/score", json=chat), "/score")
    assert "no chat template" in message and message.startswith("items:")


# --------------------------------------------------------------------------- explain --input


@pytest.fixture
def no_model(monkeypatch):
    """explain's model loader, replaced: valid input reaches it (and stops there), bad input must not."""
    from rewardlab.models import reward_model

    def reached(*args, **kwargs):
        raise ValueError("the model loader was reached")

    monkeypatch.setattr(reward_model, "load_reward_model", reached)


EXPLAIN_UNREAD = {"rating_string", "score_nan"}
"""Ratings whose score is bad: explain reads (prompt, response) of single responses and never the score."""


@pytest.mark.parametrize("kind", KINDS)
def test_explain_input(kind, corpus, tmp_path, no_model):
    path = corpus[kind]
    result = runner.invoke(app, ["explain", "--model", "m", "--input", str(path), "--output", str(tmp_path / "ex"), "--no-progress"])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code != 0
    if kind in VALID["eval"] | EXPLAIN_UNREAD:
        assert "the model loader was reached" in result.output, result.output
        return
    assert "the model loader was reached" not in result.output, f"{kind}: bad input reached the model\n{result.output}"
    assert "error:" in result.output and str(path) in result.output, f"{kind}: the error does not name {path}\n{result.output}"
    if kind in LINES["eval"]:
        assert f"{path}:1" in result.output, f"{kind}: the error does not name the line\n{result.output}"
    assert not (tmp_path / "ex").exists()
