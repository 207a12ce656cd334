"""A client of ``rewardlab serve``: rewards of (prompt, response) pairs over HTTP, with retries.

    >>> with RewardClient("http://127.0.0.1:8000") as rm:  # doctest: +SKIP
    ...     rm.score(["Say hi."], ["Hello there, friend."])
    [0.8125]

Requests (rewardlab/serve/app.py):

    score(prompts, responses)  POST /score       {"items": [{"prompt", "response"}, ...]} → {"rewards": [...]}
    get_reward(queries)        POST /get_reward  {"query": [full text, ...]}              → {"rewards": [...]}
    health()                   GET  /health      → {"status": "ok", "model": ..., ...}

Lists longer than ``max_items`` go in chunks of at most ``max_items`` (one request each, on one keep-alive
connection); the rewards come back in input order. Scoring is idempotent, so a failed attempt is simply sent
again: transport errors (connection refused or reset, timeouts) and the answers 429, 502, 503, 504 are retried
up to ``retries`` times, attempt k (0, 1, …) waiting backoff·2^k·(1 + U(0, 0.1)) seconds, or the server's
``Retry-After`` when that is longer. Any other error (401 wrong key, 413 too large, 422 malformed, 500)
raises :class:`RewardServerError` at once, with the status code and the server's message.

Layer 0: only the standard library and httpx, so every layer may use it.
"""

from __future__ import annotations

import os
import random
import time

import httpx

RETRY_STATUS = (429, 502, 503, 504)
"""Answers worth sending again: rate limited, a proxy without a backend, overloaded, not scored in time."""


def wait_until_healthy(url: str, timeout: float = 120.0, exited=lambda: None) -> None:
    """Poll ``GET url/health`` until it answers 200 (a server starting: loading its model takes seconds).
    ``exited()`` returns a message once the server's process has died (then RuntimeError at once);
    TimeoutError after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (why := exited()) is not None:
            raise RuntimeError(f"{url}: the server exited: {why}")
        try:
            if httpx.get(f"{url.rstrip('/')}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url}: no healthy answer within {timeout} s")


class RewardServerError(RuntimeError):
    """A request that failed for good: ``status`` is the HTTP code (None when the server never answered),
    ``message`` the server's ``error.message`` (or the transport error), ``url`` the address asked."""

    def __init__(self, url: str, status: int | None, message: str):
        self.url, self.status, self.message = url, status, message
        super().__init__(f"{url}: {message}" if status is None else f"{url} answered {status}: {message}")


def _error_message(response: httpx.Response) -> str:
    """The server's ``{"error": {"message"}}``, else the start of the body (a proxy's HTML page, say)."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300].strip() or response.reason_phrase


class RewardClient:
    """Rewards from a ``rewardlab serve`` server at ``url`` (http:// or https://, no path).

    ``api_key``: sent as ``Authorization: Bearer KEY``; default the ``REWARDLAB_API_KEY`` environment variable.
    ``timeout``: seconds per request (connect, read, write). ``retries``: attempts after the first.
    ``backoff``: seconds before the first retry, doubled each time. ``max_items``: items per request
    (the server refuses more than its ``--max-items``, 1024 by default).
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0, retries: int = 3,
                 backoff: float = 0.5, *, max_items: int = 256, transport: httpx.BaseTransport | None = None):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"reward server url must start with http:// or https://, got {url!r}")
        if retries < 0 or backoff < 0 or timeout <= 0 or max_items < 1:
            raise ValueError(f"need retries >= 0, backoff >= 0, timeout > 0 and max_items >= 1; got retries={retries}, "
                             f"backoff={backoff}, timeout={timeout}, max_items={max_items}")
        self.url = url.rstrip("/")
        self.retries, self.backoff, self.max_items = retries, backoff, max_items
        api_key = api_key or os.environ.get("REWARDLAB_API_KEY") or None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(headers=headers, timeout=timeout, transport=transport)

    # ------------------------------------------------------------------ requests

    def score(self, prompts: list, responses: list) -> list[float]:
        """One reward per (prompt, response); each a string or a list of chat messages ({"role", "content"})."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        items = [{"prompt": p, "response": r} for p, r in zip(prompts, responses)]
        return self._rewards("/score", "items", items)

    def get_reward(self, queries: list[str]) -> list[float]:
        """One reward per full text (prompt and response together), OpenRLHF's remote-RM request."""
        return self._rewards("/get_reward", "query", list(queries))

    def health(self) -> dict:
        """The server's /health answer: {"status": "ok", "model": ..., ...}."""
        return self._request("GET", "/health").json()

    def _rewards(self, path: str, field: str, values: list) -> list[float]:
        out: list[float] = []
        for start in range(0, len(values), self.max_items):
            chunk = values[start: start + self.max_items]
            url = self.url + path
            try:
                rewards = [float(r) for r in self._request("POST", path, {field: chunk}).json()["rewards"]]
            except (ValueError, KeyError, TypeError) as e:
                raise RewardServerError(url, 200, f"expected {{\"rewards\": [numbers]}}, got an answer that is not ({e})") from None
            if len(rewards) != len(chunk):
                raise RewardServerError(url, 200, f"{len(rewards)} rewards for {len(chunk)} items")
            out += rewards
        return out

    def _request(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        """The answer of the first attempt that succeeds; retried as the module docstring says."""
        url = self.url + path
        for attempt in range(self.retries + 1):
            wait = self.backoff * 2**attempt * (1 + random.uniform(0, 0.1))
            try:
                response = self._http.request(method, url, json=body)
            except httpx.TransportError as e:
                failure = RewardServerError(url, None, f"could not reach the reward server after {attempt + 1} attempt(s) "
                                                       f"({type(e).__name__}: {e}); is `rewardlab serve` running there?")
            else:
                if response.status_code < 400:
                    return response
                failure = RewardServerError(url, response.status_code, _error_message(response))
                if response.status_code not in RETRY_STATUS:
                    raise failure
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = max(wait, float(retry_after))
            if attempt == self.retries:
                raise failure
            time.sleep(wait)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RewardClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
