"""`rewardlab serve`'s app in-process: the three request shapes, rewards equal to offline scoring, every limit and
error code, auth, metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rewardlab.config import ServeConfig
from rewardlab.models.scoring import score_texts
from rewardlab.serve.app import Scorer, build_app

ITEMS = [{"prompt": "Say hi.", "response": "Hello there, friend."}, {"prompt": "2+2?", "response": "4"},
         {"prompt": "", "response": "A response with no prompt at all, somewhat longer than the others are."}]


def _client(served_model, **kw) -> TestClient:
    path, model, tok = served_model
    cfg = ServeConfig(model=path, **kw)
    return TestClient(build_app(Scorer(model, tok, {"max_length": 64}, cfg), cfg))


def test_score_equals_offline_scoring_in_request_order(served_model):
    _, model, tok = served_model
    offline, _ = score_texts(model, tok, [i["prompt"] for i in ITEMS], [i["response"] for i in ITEMS], 16, 64, "left")
    with _client(served_model) as c:
        r = c.post("/score", json={"items": ITEMS})
        assert r.status_code == 200, r.text
        body = r.json()
        assert np.allclose(body["rewards"], offline, atol=1e-5, rtol=0) and body["normalized"] is False
        reversed_ = c.post("/score", json={"items": ITEMS[::-1]}).json()["rewards"]
        assert np.allclose(reversed_, offline[::-1], atol=1e-5, rtol=0)


def test_get_reward_and_classify_score_full_texts_as_an_empty_prompt_record(served_model):
    _, model, tok = served_model
    texts = [i["prompt"] + "\n" + i["response"] if i["prompt"] else i["response"] for i in ITEMS]
    offline, _ = score_texts(model, tok, [""] * 3, texts, 16, 64, "left")
    with _client(served_model) as c:
        got = c.post("/get_reward", json={"query": texts}).json()["rewards"]
        assert np.allclose(got, offline, atol=1e-5, rtol=0)
        # OpenRLHF sends queries ending in EOS text: stripped, so the EOS is not doubled
        eos = tok.eos_token
        assert np.allclose(c.post("/get_reward", json={"query": [t + eos for t in texts]}).json()["rewards"], offline, atol=1e-5, rtol=0)
        cls = c.post("/classify", json={"model": "x", "input": texts}).json()
        assert cls["object"] == "list" and [d["index"] for d in cls["data"]] == [0, 1, 2]
        assert np.allclose([d["probs"][0] for d in cls["data"]], offline, atol=1e-5, rtol=0) and cls["usage"]["prompt_tokens"] > 0
        sig = c.post("/classify", json={"input": texts[0], "activation": True}).json()["data"][0]["probs"][0]
        assert sig == pytest.approx(1 / (1 + np.exp(-offline[0])), abs=1e-6)


def test_classify_without_special_tokens_scores_the_text_as_it_stands(served_model):
    path, model, tok = served_model
    from rewardlab.models.scoring import score_ids

    text = "already templated text"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    expected = score_ids(model, [ids], tok.pad_token_id)[0]
    with _client(served_model) as c:
        got = c.post("/classify", json={"input": [text], "add_special_tokens": False}).json()["data"][0]["probs"][0]
    assert got == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("body,code,where", [
    ("{not json", 422, "not valid JSON"),
    ("[1, 2]", 422, "expected a JSON object"),
    (json.dumps({"items": "x"}), 422, '"items"'),
    (json.dumps({"items": [{"prompt": "a", "response": 3}]}), 422, "items[0].response"),
    (json.dumps({"items": [7]}), 422, "items[0]"),
    (json.dumps({"items": [{"prompt": [{"content": "hi"}], "response": [{"role": "assistant", "content": "x"}]}]}), 422,
     "items[0].prompt[0].role: expected a string"),
    (json.dumps({"items": [{"prompt": "a", "response": "b"}] * 5}), 413, "limit is 4"),
    (json.dumps({"items": [{"prompt": "a", "response": "b" * 300}]}), 413, "items[0]: 301 characters"),
])
def test_malformed_and_oversize_requests_are_refused_with_json_errors(served_model, body, code, where):
    with _client(served_model, max_items=4, max_chars=300) as c:
        r = c.post("/score", content=body, headers={"content-type": "application/json"})
        assert r.status_code == code, r.text
        assert r.json()["error"]["code"] == code and where in r.json()["error"]["message"]


def test_body_limit_and_text_endpoints_limits(served_model):
    with _client(served_model, max_body_mb=0.001, max_items=2, max_chars=50) as c:  # ~1 KiB
        r = c.post("/score", json={"items": [{"prompt": "p", "response": "r" * 40}] * 40})
        assert r.status_code == 413 and "--max-body-mb" in r.json()["error"]["message"]
        assert c.post("/get_reward", json={"query": ["a", "b", "c"]}).status_code == 413
        assert c.post("/classify", json={"input": "x" * 51}).status_code == 413
        assert c.post("/get_reward", json={"query": [1]}).status_code == 422
        assert c.post("/classify", json={"input": ["a"], "activation": "yes"}).status_code == 422


def test_oversize_work_is_refused_before_any_scoring(served_model):
    with _client(served_model, max_items=2) as c:
        calls = []
        scorer = c.app.state.scorer
        real = scorer.forward
        scorer.forward = lambda seqs: calls.append(len(seqs)) or real(seqs)
        c.app.state.batcher.forward = scorer.forward
        assert c.post("/score", json={"items": ITEMS}).status_code == 413
        assert calls == []
        assert c.post("/score", json={"items": ITEMS[:2]}).status_code == 200 and sum(calls) == 2


def test_api_key_is_required_when_set(served_model):
    with _client(served_model, api_key="s3cret") as c:
        assert c.post("/score", json={"items": ITEMS}).status_code == 401
        r = c.post("/score", json={"items": ITEMS}, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.get("/metrics").status_code == 401
        assert c.post("/score", json={"items": ITEMS}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/health").status_code == 200  # health stays open for load balancers


def test_binding_a_public_address_without_a_key_is_refused():
    with pytest.raises(ValueError, match="without --api-key"):
        ServeConfig(model="m", host="0.0.0.0")
    assert ServeConfig(model="m", host="0.0.0.0", insecure=True).insecure
    assert ServeConfig(model="m", host="0.0.0.0", api_key="k").api_key == "k"


def test_timeout_is_504_and_the_worker_survives_a_failing_forward(served_model):
    import time

    with _client(served_model, request_timeout_s=0.2) as c:
        scorer = c.app.state.scorer
        real = scorer.forward
        c.app.state.batcher.forward = lambda seqs: time.sleep(0.5) or real(seqs)
        r = c.post("/score", json={"items": ITEMS})
        assert r.status_code == 504 and "--request-timeout-s" in r.json()["error"]["message"]
        time.sleep(0.5)  # the worker finishes the slow batch (its result goes nowhere)
        c.app.state.batcher.forward = lambda seqs: 1 / 0
        r = c.post("/score", json={"items": ITEMS})
        assert r.status_code == 500 and "ZeroDivisionError" in r.json()["error"]["message"]
        c.app.state.batcher.forward = real
        assert c.post("/score", json={"items": ITEMS}).status_code == 200


def test_metrics_count_requests_items_and_errors(served_model):
    with _client(served_model) as c:
        c.post("/score", json={"items": ITEMS})
        c.post("/score", content="{", headers={"content-type": "application/json"})
        text = c.get("/metrics").text
    assert 'rewardlab_requests_total{code="200",endpoint="/score"} 1.0' in text
    assert 'rewardlab_items_total{endpoint="/score"} 3.0' in text
    assert 'rewardlab_errors_total{code="422"} 1.0' in text
    assert "rewardlab_batch_items_bucket" in text and "rewardlab_queue_seconds_count 1.0" in text
