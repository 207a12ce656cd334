"""Dynamic batching (rewardlab.serve.batcher): forwards planned by padded tokens, requests gathered across threads,
results back in each request's order, draining on close."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from rewardlab.serve.batcher import DynamicBatcher, plan_forwards


def test_plan_forwards_longest_first_within_the_token_budget():
    # lengths 5, 1, 3, 4 with 10 padded tokens per forward: [5 (idx 0), 4 (idx 3)] = 2 × 5 = 10; [3, 1] = 2 × 3
    assert plan_forwards([5, 1, 3, 4], 10) == [[0, 3], [2, 1]]
    assert plan_forwards([50, 2], 10) == [[0], [1]]  # a sequence longer than the budget goes alone
    assert plan_forwards([], 10) == []


def _fake_forward(calls, delay=0.0):
    def forward(seqs):
        calls.append([len(s) for s in seqs])
        time.sleep(delay)
        return np.array([float(sum(s)) for s in seqs])  # reward = sum of ids: easy to check per sequence
    return forward


def test_concurrent_requests_share_forwards_and_get_their_own_rewards_in_order():
    calls = []
    b = DynamicBatcher(_fake_forward(calls, 0.02), max_batch_tokens=10_000, max_wait_ms=50)
    requests = [[[i, j] for j in range(i % 3 + 1)] for i in range(24)]
    results = [None] * len(requests)

    def send(k):
        results[k] = b.submit(requests[k]).result(timeout=10)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(len(requests))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    b.close()
    for req, got in zip(requests, results):
        assert got.tolist() == [float(sum(s)) for s in req]
    assert len(calls) < len(requests)  # gathered: fewer forwards than requests
    assert sum(len(c) for c in calls) == sum(len(r) for r in requests)


def test_batching_off_scores_each_request_on_its_own():
    calls = []
    b = DynamicBatcher(_fake_forward(calls, 0.01), max_batch_tokens=10_000, max_wait_ms=50, batching=False)
    futures = [b.submit([[1, 2], [3]]) for _ in range(5)]
    assert [f.result(timeout=10).tolist() for f in futures] == [[3.0, 3.0]] * 5
    b.close()
    assert calls == [[2, 1]] * 5


def test_close_finishes_what_was_submitted_and_refuses_new_work():
    calls = []
    b = DynamicBatcher(_fake_forward(calls, 0.05), max_batch_tokens=4, max_wait_ms=0)
    futures = [b.submit([[k, k]]) for k in range(6)]
    b.close()
    assert [f.result(timeout=0).tolist() for f in futures] == [[2.0 * k] for k in range(6)]
    with pytest.raises(RuntimeError, match="closed"):
        b.submit([[1]])


def test_a_cancelled_request_is_not_scored_and_errors_reach_every_waiter():
    calls, gate = [], threading.Event()

    def forward(seqs):
        gate.wait(5)
        calls.append(len(seqs))
        if any(s == [0] for s in seqs):
            raise ValueError("bad batch")
        return np.ones(len(seqs))

    b = DynamicBatcher(forward, max_batch_tokens=1, max_wait_ms=0)
    first = b.submit([[1]])  # the worker holds it at the gate
    time.sleep(0.05)
    dropped = b.submit([[2]])
    assert dropped.cancel()  # not started yet: cancelled, never scored
    bad = b.submit([[0]])
    gate.set()
    assert first.result(timeout=5).tolist() == [1.0]
    with pytest.raises(ValueError, match="bad batch"):
        bad.result(timeout=5)
    b.close()
    assert calls == [1, 1]
