"""Scale-out: ``rewardlab serve --replicas N`` runs the same app N times on Ray Serve, one model per replica.

Each replica is a Ray actor that loads its own :class:`~rewardlab.serve.app.Scorer` and serves ``build_app`` through
``serve.ingress``: the same endpoints, limits, API key and JSON errors as the plain server, and its own dynamic
batcher. Ray Serve's proxy binds --host/--port and its router sends each request to the replica with the shorter
queue (of two picked at random). /health and the ``X-Rewardlab-Replica`` header name the replica that answered;
/metrics counts that replica only.

Ray runs as a local cluster started here: no cluster address, loopback only, no dashboard, no usage statistics.
The machine's CPUs (and GPUs when serving on cuda) are split evenly so that the N replicas fit. SIGTERM/SIGINT:
the app is deleted first, so Ray Serve routes nothing new (its proxy answers 404 meanwhile) while each replica
finishes its requests in flight (up to --request-timeout-s) and drains its batcher; then Serve and the local
cluster stop, and the command returns.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading

from rewardlab.config import ServeConfig
from rewardlab.runtime import resolve_device
from rewardlab.serve.app import Scorer, build_app

# Requests one replica holds at once; more wait in Ray's router. Ray's default (5) would cap each batch of the
# replica's batcher at 5 requests, whatever --max-batch-tokens allows.
MAX_ONGOING_REQUESTS = 128
# Ray counts resources in steps of 1e-4: shares are cut down to that step so N of them never exceed the total.
RAY_RESOURCE_STEP = 1e-4


def import_ray():
    """(ray, ray.serve), or a ValueError that says how to install them."""
    try:
        import ray
        from ray import serve
    except ImportError as e:
        raise ValueError(f'--replicas needs Ray Serve, which is not installed ({e}): pip install "ray[serve]" '
                         f'(or pip install -e ".[serve]"); or serve one copy without --replicas') from None
    return ray, serve


def replica_resources(replicas: int, cpus: int, gpus: int = 0) -> dict:
    """Ray actor options of one replica such that ``replicas`` of them fit on ``cpus`` CPUs and ``gpus`` GPUs.

    CPUs: an even share, ``cpus / replicas``. GPUs (only when > 0): 1 / ceil(replicas / gpus), so a replica never
    straddles two GPUs (3 replicas on 2 GPUs: 1/2 each, two on one GPU, one on the other)."""
    step = lambda x: math.floor(x / RAY_RESOURCE_STEP) * RAY_RESOURCE_STEP  # noqa: E731
    out = {"num_cpus": step(cpus / replicas)}
    if gpus:
        out["num_gpus"] = step(1 / math.ceil(replicas / gpus))
    return out


def serve_replicas(cfg: ServeConfig, log=print) -> None:
    """Start a local Ray cluster, deploy ``cfg.replicas`` replicas of the app behind Ray Serve's proxy on
    ``cfg.host:cfg.port``, and serve until SIGTERM/SIGINT; then shut Serve and the cluster down and return."""
    ray, ray_serve = import_ray()
    import torch
    from transformers import AutoConfig

    # A wrong --model fails here in a second, not in every replica after Ray's retries (~50 s, Ray's tracebacks).
    AutoConfig.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
    device = resolve_device(cfg.device)
    if device.type == "cuda" and device.index is not None:
        raise ValueError(f"--replicas places each replica on a GPU itself: give --device cuda or auto, not {cfg.device}")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    threads = max(1, cpus // cfg.replicas)  # torch threads per replica: the replicas together use each CPU once

    def build_replica_app():
        """Runs inside each replica: its own model, batcher and app."""
        torch.set_num_threads(threads)
        replica = ray_serve.get_replica_context().replica_id.unique_id
        return build_app(Scorer.load(cfg), cfg, log=lambda m: print(f"{m} (replica {replica})", file=sys.stderr, flush=True), replica=replica)

    deployment = ray_serve.deployment(
        ray_serve.ingress(build_replica_app)(), name="rewardlab", num_replicas=cfg.replicas,
        ray_actor_options=replica_resources(cfg.replicas, cpus, gpus), max_ongoing_requests=MAX_ONGOING_REQUESTS,
        graceful_shutdown_timeout_s=cfg.request_timeout_s, graceful_shutdown_wait_loop_s=0.5)

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # the driver's "started"/"ready" lines; ours says it once
    quiet = {"log_level": "WARNING", "enable_access_log": False}
    ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="WARNING", namespace="rewardlab-serve")
    stop = threading.Event()
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):  # after ray.init, which installs its own SIGTERM handler
            signal.signal(sig, lambda *_: stop.set())
        ray_serve.start(http_options={"host": cfg.host, "port": cfg.port}, logging_config=quiet)
        try:
            ray_serve.run(deployment.bind(), name="rewardlab", route_prefix="/", logging_config=quiet)
        except RuntimeError as e:  # a replica failed to start (e.g. the model did not load): Ray's message says why
            raise ValueError(f"serve --replicas: the replicas did not start: {e}") from None
        log(f"serve: {cfg.model} on http://{cfg.host}:{cfg.port}, {cfg.replicas} replicas on Ray Serve "
            f"({replica_resources(cfg.replicas, cpus, gpus)} and {threads} torch thread(s) each; batching={'on' if cfg.batching else 'off'}, "
            f"max_batch_tokens={cfg.max_batch_tokens}, auth={'on' if cfg.api_key else 'off'})")
        while not stop.wait(1.0):
            pass
        log("serve: stopping: Ray Serve drains the replicas, then the local Ray cluster stops")
        ray_serve.delete("rewardlab")  # replicas finish their requests while the proxy still answers; new ones get 404
    finally:
        ray_serve.shutdown()
        ray.shutdown()
    log("serve: stopped")
