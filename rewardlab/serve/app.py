"""The HTTP app: three request shapes onto one scorer, limits checked before any work, Prometheus metrics.

    POST /score       {"items": [{"prompt": str | messages, "response": str | messages}, ...]}
                      → {"rewards": [...], "model": ..., "normalized": bool}
    POST /get_reward  OpenRLHF's remote RM: {"query": [full text, ...]} → {"rewards": [...]}
    POST /classify    vLLM's pooling /classify: {"input": str | [str, ...], "add_special_tokens": bool = true,
                      "activation": bool = false} → {"object": "list", "data": [{"index", "label", "probs": [score],
                      "num_classes": 1}], "usage": {...}}; ``probs`` holds the raw reward unless activation is true (sigmoid)
    GET  /health      {"status": "ok", "model": ..., "attributes": ...} (and "replica" under --replicas)
    GET  /metrics     Prometheus text (under --replicas: of the replica that answers)

Rewards come back in request order and equal ``rewardlab score`` on the same model (same sequence convention,
same scoring path ``models.scoring.score_ids``): an item of /score is scored as a record {prompt, response};
a full text of /get_reward or /classify as a record with an empty prompt; /classify with
``"add_special_tokens": false`` (what verl sends with chat-templated text) is tokenised as it stands, nothing
added, as a chat template's text is. A multi-attribute RM serves its reward, the weighted sum of its attributes with
the weights saved with it (``RewardModel.head_rewards``); /health names the attributes and weights. Errors are JSON {"error": {"code", "message"}}: 401 (API key), 413 (body,
items, characters), 422 (malformed body, with the field), 504 (not scored within the request timeout), 500.
"""

from __future__ import annotations

import asyncio
import os
import hmac
import json
import threading
import time

from contextlib import asynccontextmanager

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from rewardlab.config import ServeConfig
from rewardlab.data.batching import Encoder
from rewardlab.data.records import DataError, check_text
from rewardlab.data.sequence import is_chat
from rewardlab.models.reward_model import check_reward_stats, load_reward_model, normalize_rewards
from rewardlab.models.scoring import score_ids
from rewardlab.runtime import resolve_device
from rewardlab.serve.batcher import DynamicBatcher


class Scorer:
    """The model side: encode requests under the model's sequence convention, score batches of token ids."""

    def __init__(self, model, tokenizer, meta: dict, cfg: ServeConfig):
        self.model, self.tokenizer, self.meta, self.cfg = model, tokenizer, meta, cfg
        self.name = cfg.model
        self.max_length = cfg.max_length or meta.get("max_length", 512)
        self.encoder = Encoder(tokenizer, self.max_length, cfg.truncation_side, model.append_eos)
        self.stats = meta.get("reward_stats") if cfg.normalize else None
        self.lock = threading.Lock()  # a Rust tokenizer must not be used by two threads at once

    @classmethod
    def load(cls, cfg: ServeConfig) -> "Scorer":
        model, tokenizer, meta = load_reward_model(cfg.model, trust_remote_code=cfg.trust_remote_code, append_eos=cfg.append_eos,
                                                   allow_pickle=cfg.allow_pickle)
        if cfg.normalize:
            check_reward_stats(meta["reward_stats"], cfg.model)  # a model without statistics is refused before serving
        return cls(model.to(resolve_device(cfg.device)).eval(), tokenizer, meta, cfg)

    def encode(self, prompts: list, responses: list) -> list[list[int]]:
        with self.lock:
            return [self.encoder.encode_example(p, [r], ["response"])[0] for p, r in zip(prompts, responses)]

    def encode_raw(self, texts: list[str]) -> list[list[int]]:
        """Text tokenised as it stands, no special tokens, nothing appended (chat-templated text), cut as any sequence."""
        with self.lock:
            ids = self.tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
            return [self.encoder.cut(list(s), "input") for s in ids]

    def forward(self, seqs: list[list[int]]) -> np.ndarray:
        """Raw rewards of one batch: one forward (the batcher sized it), through ``score_ids``."""
        r = score_ids(self.model, seqs, self.tokenizer.pad_token_id, batch_size=len(seqs))
        return normalize_rewards(r, self.stats, self.name) if self.stats else r


class HTTPError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _items(body: dict, limit_items: int, limit_chars: int) -> tuple[list, list]:
    items = body.get("items")
    if not isinstance(items, list):
        raise HTTPError(422, 'body: expected {"items": [{"prompt": ..., "response": ...}, ...]}')
    if len(items) > limit_items:
        raise HTTPError(413, f"items: {len(items)} items, the limit is {limit_items} (--max-items)")
    prompts, responses = [], []
    for i, it in enumerate(items):
        if not isinstance(it, dict):
            raise HTTPError(422, f"items[{i}]: expected an object with prompt and response, got {type(it).__name__}")
        prompt, response = it.get("prompt", ""), it.get("response")
        try:  # the records' own check: a string, or chat messages each with a role and a content
            for name, v in (("prompt", prompt), ("response", response)):
                check_text(v, f"items[{i}]", name, allow_empty=True)
        except DataError as e:
            raise HTTPError(422, f"{e.where}.{e.field}: {e.problem}") from None
        if is_chat(prompt, response) and isinstance(prompt, str) and prompt:
            raise HTTPError(422, f"items[{i}].prompt: a plain-string prompt with a chat-message response; give the prompt as messages")
        size = len(json.dumps([prompt, response], ensure_ascii=False)) if is_chat(prompt, response) else len(prompt) + len(response)
        if size > limit_chars:
            raise HTTPError(413, f"items[{i}]: {size} characters, the limit is {limit_chars} (--max-chars)")
        prompts.append(prompt)
        responses.append(response)
    return prompts, responses


def _texts(value, field: str, limit_items: int, limit_chars: int) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise HTTPError(422, f"{field}: expected a string or a list of strings")
    if len(texts) > limit_items:
        raise HTTPError(413, f"{field}: {len(texts)} texts, the limit is {limit_items} (--max-items)")
    for i, t in enumerate(texts):
        if len(t) > limit_chars:
            raise HTTPError(413, f"{field}[{i}]: {len(t)} characters, the limit is {limit_chars} (--max-chars)")
    return texts


def _strip_specials(text: str, tokenizer) -> str:
    """A full text without trailing/leading EOS and pad token *text* (OpenRLHF's serve_rm does this before
    appending EOS), so a query sent with its EOS is not given a second one."""
    marks = [t for t in (tokenizer.eos_token, tokenizer.pad_token) if t]
    changed = True
    while changed and marks:
        changed = False
        for m in marks:
            if text.endswith(m):
                text, changed = text[: -len(m)], True
            if text.startswith(m):
                text, changed = text[len(m):], True
    return text


class Metrics:
    """Prometheus metrics of one app, on their own registry (tests start several apps in one process)."""

    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("rewardlab_requests_total", "Requests by endpoint and status code", ["endpoint", "code"], registry=r)
        self.items = Counter("rewardlab_items_total", "Sequences scored", ["endpoint"], registry=r)
        self.latency = Histogram("rewardlab_request_seconds", "Request latency", ["endpoint"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.queue = Histogram("rewardlab_queue_seconds", "Time a request waited for its batch", registry=r,
                               buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.forward = Histogram("rewardlab_forward_seconds", "Model forward time per batch", registry=r,
                                 buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.batch_items = Histogram("rewardlab_batch_items", "Sequences per forward", registry=r,
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
        self.batch_tokens = Histogram("rewardlab_batch_tokens", "Padded tokens per forward", registry=r,
                                      buckets=(64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536))
        self.errors = Counter("rewardlab_errors_total", "Error responses by code", ["code"], registry=r)

    def observe(self, name: str, value: float) -> None:
        {"queue_seconds": self.queue, "forward_seconds": self.forward, "batch_items": self.batch_items,
         "batch_tokens": self.batch_tokens}[name].observe(value)


def build_app(scorer: Scorer, cfg: ServeConfig, log=lambda message: None, replica: str | None = None):
    """The FastAPI app around ``scorer``; the batcher starts with the app and is drained when it stops.

    ``replica`` names this copy when several serve one model (``--replicas``, serve/replicas.py): /health reports
    it and every response carries it in the ``X-Rewardlab-Replica`` header. None (the plain server): neither."""
    metrics = Metrics()
    batcher = DynamicBatcher(scorer.forward, cfg.max_batch_tokens, cfg.max_wait_ms, cfg.batching, metrics.observe)
    max_body = int(cfg.max_body_mb * 2**20)

    @asynccontextmanager
    async def lifespan(app):
        yield
        await asyncio.get_running_loop().run_in_executor(None, batcher.close)  # in-flight work finishes first
        log("serve: stopped: in-flight requests answered, batcher drained")

    app = FastAPI(title="rewardlab serve", lifespan=lifespan)
    app.state.batcher, app.state.metrics, app.state.scorer = batcher, metrics, scorer
    if replica is not None:
        @app.middleware("http")
        async def name_replica(request: Request, call_next):
            response = await call_next(request)
            response.headers["X-Rewardlab-Replica"] = replica
            return response

    def error(code: int, message: str, endpoint: str) -> JSONResponse:
        metrics.errors.labels(str(code)).inc()
        metrics.requests.labels(endpoint, str(code)).inc()
        headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=code, headers=headers)

    def authorize(request: Request) -> None:
        if cfg.api_key is None:
            return
        sent = request.headers.get("authorization", "")
        if not (sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].encode(), cfg.api_key.encode())):
            raise HTTPError(401, "missing or wrong API key: send the header Authorization: Bearer KEY")

    async def read_json(request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise HTTPError(413, f"body: {int(declared)} bytes, the limit is {max_body} (--max-body-mb)")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                raise HTTPError(413, f"body: more than {max_body} bytes (--max-body-mb)")
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HTTPError(422, f"body: not valid JSON ({e})") from None
        except RecursionError:
            raise HTTPError(422, "body: JSON nested too deeply") from None
        if not isinstance(data, dict):
            raise HTTPError(422, f"body: expected a JSON object, got {type(data).__name__}")
        return data

    async def score(seqs_fn, endpoint: str) -> tuple[np.ndarray, int]:
        """(rewards, tokens scored): encode off the event loop, then wait for the batcher."""
        try:
            seqs = await asyncio.get_running_loop().run_in_executor(None, seqs_fn)
        except ValueError as e:  # what was sent cannot be encoded for this model (chat messages and no chat template, …)
            field = {"/score": "items", "/get_reward": "query", "/classify": "input"}[endpoint]
            raise HTTPError(422, f"{field}: cannot be encoded for {scorer.name}: {e}") from None
        future = batcher.submit(seqs)
        try:
            rewards = await asyncio.wait_for(asyncio.wrap_future(future), cfg.request_timeout_s)
        except asyncio.TimeoutError:
            future.cancel()  # dropped if its batch has not started
            raise HTTPError(504, f"not scored within {cfg.request_timeout_s} s (--request-timeout-s)") from None
        metrics.items.labels(endpoint).inc(len(seqs))
        return rewards, sum(len(x) for x in seqs)

    def endpoint(path: str):
        """POST ``path``: auth, body limits, the handler, metrics; HTTPError → its JSON error, anything else → 500."""
        def register(handler):
            async def route(request: Request):
                t0 = time.perf_counter()
                try:
                    authorize(request)
                    out = await handler(await read_json(request))
                except HTTPError as e:
                    return error(e.code, e.message, path)
                except Exception as e:  # noqa: BLE001 — the client gets a JSON 500, the server keeps serving
                    return error(500, f"{type(e).__name__}: {e}", path)
                metrics.requests.labels(path, "200").inc()
                metrics.latency.labels(path).observe(time.perf_counter() - t0)
                return JSONResponse(out)

            app.post(path)(route)
            return handler
        return register

    @endpoint("/score")
    async def score_items(body: dict) -> dict:
        prompts, responses = _items(body, cfg.max_items, cfg.max_chars)
        rewards, _ = await score(lambda: scorer.encode(prompts, responses), "/score")
        return {"rewards": rewards.tolist(), "model": scorer.name, "normalized": scorer.stats is not None}

    @endpoint("/get_reward")
    async def get_reward(body: dict) -> dict:
        texts = [_strip_specials(t, scorer.tokenizer) for t in _texts(body.get("query"), "query", cfg.max_items, cfg.max_chars)]
        rewards, _ = await score(lambda: scorer.encode([""] * len(texts), texts), "/get_reward")
        return {"rewards": rewards.tolist()}

    @endpoint("/classify")
    async def classify(body: dict) -> dict:
        texts = _texts(body.get("input"), "input", cfg.max_items, cfg.max_chars)
        special, activation = body.get("add_special_tokens", True), body.get("activation", False)
        if not isinstance(special, bool) or not isinstance(activation, bool):
            raise HTTPError(422, "add_special_tokens and activation: expected true or false")
        encode = (lambda: scorer.encode([""] * len(texts), texts)) if special else (lambda: scorer.encode_raw(texts))
        rewards, n_tokens = await score(encode, "/classify")
        values = 1.0 / (1.0 + np.exp(-rewards)) if activation else rewards
        return {"id": f"classify-{time.time_ns()}", "object": "list", "created": int(time.time()), "model": scorer.name,
                "data": [{"index": i, "label": "LABEL_0", "probs": [float(v)], "num_classes": 1} for i, v in enumerate(values)],
                "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens, "completion_tokens": 0}}

    @app.get("/health")
    async def health():
        out = {"status": "ok", "model": scorer.name, "batching": cfg.batching, "sequence": scorer.meta.get("sequence"),
               "attributes": scorer.meta.get("attributes")}  # a multi-attribute RM: names and weights of its reward
        return out if replica is None else {**out, "replica": replica}

    @app.get("/metrics")
    async def prometheus(request: Request):
        try:
            authorize(request)
        except HTTPError as e:
            return error(e.code, e.message, "/metrics")
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def serve(cfg: ServeConfig, log=print) -> None:
    """Load the model, then serve it with uvicorn until SIGINT/SIGTERM: it stops accepting, finishes the requests in
    flight (up to ``request_timeout_s``), drains the batcher, and exits with the signal's status, as uvicorn does.
    ``--replicas N`` (N >= 2): the same app N times on Ray Serve instead, serve/replicas.py."""
    if cfg.replicas >= 2:
        from rewardlab.serve.replicas import serve_replicas

        return serve_replicas(cfg, log)
    import uvicorn

    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 2) // 2))  # the other half: HTTP and tokenisation
    scorer = Scorer.load(cfg)
    log(f"serve: {cfg.model} on http://{cfg.host}:{cfg.port} (append_eos={scorer.model.append_eos}, "
        f"batching={'on' if cfg.batching else 'off'}, max_batch_tokens={cfg.max_batch_tokens}, torch threads={torch.get_num_threads()}, "
        f"auth={'on' if cfg.api_key else 'off'})")
    uvicorn.run(build_app(scorer, cfg, log), host=cfg.host, port=cfg.port, log_level="warning", timeout_graceful_shutdown=cfg.request_timeout_s)
