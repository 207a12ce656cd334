"""`rewardlab.client.RewardClient` against a real `rewardlab serve` process (rewards equal POST /score and offline
scoring, chunks in order, a wrong key fails at once, a dead address after its retries), its retry rule on
hand-made answers (httpx.MockTransport), and `--reward http://…` in `rewardlab optimize bon` equal to `rm:PATH`."""

from __future__ import annotations

import ast
import json
import sys

import httpx
import numpy as np
import pytest

from optimize.conftest import tiny_policy  # noqa: F401  (fixture: the tiny SFT policy)
from optimize.test_cli import SMALL, invoke
from rewardlab.client import RewardClient, RewardServerError
from rewardlab.models.scoring import score_texts
from serve.conftest import free_port, start_server

KEY = "s3cret"
PROMPTS = ["Say hi.", "2+2?", "", "What do you think of coffee?", "Tell me about tea."]
RESPONSES = ["Hello there, friend.", "4", "A response with no prompt at all, somewhat longer than the others are.",
             "great and kind.", "awful."]

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class Counting(httpx.HTTPTransport):
    """The real transport, remembering the JSON body of every request it sends."""

    def __init__(self):
        super().__init__()
        self.bodies: list = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content) if request.content else None)
        return super().handle_request(request)


def answers(*replies: tuple[int, dict]):
    """A MockTransport giving ``replies`` (status, JSON body) in turn; ``.calls`` counts the requests."""
    def handle(request: httpx.Request) -> httpx.Response:
        status, body = replies[min(handle.calls, len(replies) - 1)]
        handle.calls += 1
        return httpx.Response(status, json=body)

    handle.calls = 0
    return httpx.MockTransport(handle), handle


@pytest.fixture(scope="module")
def server(served_model):
    """The tiny Llama served with an API key: its base url; the process is always killed."""
    proc, url = start_server(served_model[0], "--api-key", KEY)
    try:
        yield url
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def offline(served_model):
    _, model, tok = served_model
    return score_texts(model, tok, PROMPTS, RESPONSES, 16, 512, "left")[0]


def test_client_equals_post_score_and_offline_scoring(server, offline):
    with RewardClient(server, api_key=KEY) as client:
        got = client.score(PROMPTS, RESPONSES)
        assert client.health()["status"] == "ok"
        assert client.score([], []) == []
    raw = httpx.post(f"{server}/score", json={"items": [{"prompt": p, "response": r} for p, r in zip(PROMPTS, RESPONSES)]},
                     headers={"Authorization": f"Bearer {KEY}"}).json()["rewards"]
    assert got == raw
    assert np.allclose(got, offline, atol=1e-5, rtol=0)


def test_chunks_of_max_items_keep_the_order(server, offline):
    transport = Counting()
    with RewardClient(server, api_key=KEY, max_items=2, transport=transport) as client:
        got = client.score(PROMPTS, RESPONSES)
    assert [len(b["items"]) for b in transport.bodies] == [2, 2, 1]
    assert [i["response"] for b in transport.bodies for i in b["items"]] == RESPONSES
    assert np.allclose(got, offline, atol=1e-5, rtol=0)


def test_a_wrong_key_fails_at_once_with_the_servers_message(server, monkeypatch):
    transport = Counting()
    client = RewardClient(server, api_key="wrong", retries=3, backoff=0, transport=transport)
    with pytest.raises(RewardServerError, match="answered 401: missing or wrong API key") as e:
        client.score(PROMPTS, RESPONSES)
    assert e.value.status == 401 and len(transport.bodies) == 1
    monkeypatch.setenv("REWARDLAB_API_KEY", KEY)  # the key from the environment when none is given
    assert len(RewardClient(server).score(PROMPTS[:1], RESPONSES[:1])) == 1


def test_a_dead_address_is_retried_then_named():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    transport = Counting()
    with pytest.raises(RewardServerError, match=f"{url}/score: could not reach the reward server after 3 attempt") as e:
        RewardClient(url, retries=2, backoff=0, transport=transport).score(["p"], ["r"])
    assert e.value.status is None and len(transport.bodies) == 3


def test_busy_answers_are_retried_until_one_succeeds():
    transport, handle = answers((503, {"error": {"code": 503, "message": "busy"}}), (429, {}), (200, {"rewards": [0.5, -1.0]}))
    assert RewardClient("http://rm", backoff=0, transport=transport).score(["a", "b"], ["c", "d"]) == [0.5, -1.0]
    assert handle.calls == 3
    transport, handle = answers((504, {"error": {"code": 504, "message": "not scored within 60 s"}}))
    with pytest.raises(RewardServerError, match="answered 504: not scored within 60 s"):
        RewardClient("http://rm", retries=2, backoff=0, transport=transport).score(["a"], ["b"])
    assert handle.calls == 3


@pytest.mark.parametrize("status", [401, 413, 422, 500])
def test_other_errors_are_not_retried(status):
    transport, handle = answers((status, {"error": {"code": status, "message": f"refused with {status}"}}))
    with pytest.raises(RewardServerError, match=f"answered {status}: refused with {status}") as e:
        RewardClient("http://rm", backoff=0, transport=transport).get_reward(["a full text"])
    assert e.value.status == status and handle.calls == 1


def test_the_client_imports_only_the_standard_library_and_httpx():
    import rewardlab.client

    tree = ast.parse(open(rewardlab.client.__file__).read())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names - set(sys.stdlib_module_names) - {"__future__"} == {"httpx"}


def scored(url: str) -> float:
    """Items the server has scored at /score (its Prometheus counter)."""
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith('rewardlab_items_total{endpoint="/score"}')), 0.0)


def test_optimize_bon_with_a_served_rm_equals_the_rm_spec(server, served_model, tiny_policy, tmp_path, monkeypatch):  # noqa: F811
    """Same seed, same samples: the served RM's proxy rewards equal rm:PATH's (the key read from api_key_env)."""
    monkeypatch.setenv("TINY_RM_KEY", KEY)
    common = ["bon", "--policy", tiny_policy, "--n", 1, "--n", 4, *SMALL]
    local = invoke([*common, "--output", tmp_path / "rm", "--reward", f"rm:{served_model[0]}"])
    before = scored(server)
    served = invoke([*common, "--output", tmp_path / "http", "--reward", f"{server};api_key_env=TINY_RM_KEY;timeout=60"])
    assert scored(server) - before == 8 * 4  # every sample of the 8 eval prompts went to the server
    for a, b in zip(local["curve"], served["curve"]):
        assert a["n"] == b["n"] and b["proxy"] == pytest.approx(a["proxy"], abs=1e-4) and b["gold"] == pytest.approx(a["gold"])
    assert served["proxy_std"] == pytest.approx(local["proxy_std"], abs=1e-4)
