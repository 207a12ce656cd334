"""Dynamic batching across concurrent requests: one worker thread, batches budgeted in padded tokens.

A request hands over its token-id sequences and gets a ``concurrent.futures.Future`` of their rewards. The
worker takes the oldest waiting request, then keeps taking requests until the batch holds
``max_batch_tokens`` padded tokens or ``max_wait_ms`` have passed since that request arrived. The gathered
sequences are sorted by length and cut into forwards of at most ``max_batch_tokens`` padded tokens
(rows × longest row), so a long sequence never pads many short ones. Each request's rewards go back to
its future in its own order.

With ``batching=False`` each request is scored on its own (still length-sorted within it): the baseline the
benchmark compares against.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

_STOP = object()


@dataclass
class Work:
    seqs: list  # token ids per item
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.perf_counter)

    @property
    def cost(self) -> int:
        """Padded tokens if scored alone: items × longest item."""
        return len(self.seqs) * max((len(s) for s in self.seqs), default=0)


def plan_forwards(lengths: list[int], max_batch_tokens: int) -> list[list[int]]:
    """Indices of sequences grouped into forwards: longest first, each forward at most ``max_batch_tokens``
    padded tokens (rows × its longest row; a single longer sequence goes alone)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * lengths[cur[0]] > max_batch_tokens:
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


class DynamicBatcher:
    """``submit(seqs) → Future[np.ndarray]``; ``forward(list of seqs) → rewards`` runs on the worker thread only.

    ``observe(name, value)`` (optional) receives ``queue_seconds`` per request, ``batch_items``,
    ``batch_tokens`` (padded) and ``forward_seconds`` per forward, for the server's metrics.
    """

    def __init__(self, forward, max_batch_tokens: int = 8192, max_wait_ms: float = 5.0, batching: bool = True,
                 observe=lambda name, value: None):
        if max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        self.forward, self.max_batch_tokens, self.max_wait = forward, max_batch_tokens, max_wait_ms / 1000
        self.batching, self.observe = batching, observe
        self.queue: queue.Queue = queue.Queue()
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="rewardlab-batcher", daemon=True)
        self.thread.start()

    def submit(self, seqs: list) -> Future:
        if self.closed:
            raise RuntimeError("the batcher is closed")
        work = Work(seqs)
        if not seqs:
            work.future.set_result(np.zeros(0))
        else:
            self.queue.put(work)
        return work.future

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work; what was submitted before is still scored; wait for the worker to finish it."""
        self.closed = True
        self.queue.put(_STOP)
        self.thread.join(timeout)

    # ------------------------------------------------------------------ the worker

    def _gather(self, first: Work) -> tuple[list[Work], bool]:
        """``first`` plus the requests that fit the budget or arrive in time; True when a stop was seen."""
        batch, tokens = [first], first.cost
        deadline = first.arrived + self.max_wait
        while self.batching and tokens < self.max_batch_tokens:
            try:
                item = self.queue.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
            tokens += item.cost
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop or not self.queue.empty():
            item = self.queue.get()
            if item is _STOP:
                stop = True
                continue
            batch, saw_stop = self._gather(item)
            stop = stop or saw_stop
            self._score(batch)

    def _score(self, batch: list[Work]) -> None:
        batch = [w for w in batch if w.future.set_running_or_notify_cancel()]  # a timed-out request is dropped
        if not batch:
            return
        now = time.perf_counter()
        for w in batch:
            self.observe("queue_seconds", now - w.arrived)
        seqs = [s for w in batch for s in w.seqs]
        rewards = np.empty(len(seqs))
        try:
            for idx in plan_forwards([len(s) for s in seqs], self.max_batch_tokens):
                t0 = time.perf_counter()
                rewards[idx] = self.forward([seqs[i] for i in idx])
                self.observe("forward_seconds", time.perf_counter() - t0)
                self.observe("batch_items", len(idx))
                self.observe("batch_tokens", len(idx) * len(seqs[idx[0]]))
        except Exception as exc:  # every request of the batch gets the error; the worker goes on
            for w in batch:
                w.future.set_exception(exc)
            return
        start = 0
        for w in batch:
            w.future.set_result(rewards[start: start + len(w.seqs)])
            start += len(w.seqs)
