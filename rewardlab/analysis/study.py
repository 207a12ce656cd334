"""Loss studies: train many reward models over a grid and compare them against the gold (``rewardlab study``).

    cfg ─► plan (losses × ε × λ × n × seeds) ─► [head mode] features of every text, once, cached
        ─► runs in worker processes (or Ray), each: data of its form ─► train ─► score the test pool
           ─► metrics ─► runs/<id>/result.json (a finished run is not redone)
        ─► aggregate (mean, CI, paired differences) ─► results.json/csv, summary.csv, plots, report.md/html

``run_demo`` is the main job: a small study on the built-in task, offline, on a CPU, in minutes.
Data (budget rule, noise model) are in :mod:`rewardlab.analysis.study_data`, metrics in
:mod:`~rewardlab.analysis.study_metrics`, training in :mod:`~rewardlab.analysis.study_train`,
outputs in :mod:`~rewardlab.analysis.study_report`; docs/study.md explains the whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rewardlab.analysis import study_data as D
from rewardlab.analysis import study_metrics as M
from rewardlab.analysis import study_report as R
from rewardlab.config import CONFIG_FILE, DemoConfig, StudyConfig, save_config, to_dict, tracker_config, tracker_scalars
from rewardlab.eval.metrics import best_of_n_expectation, pair_probabilities, reliability_curve
from rewardlab.losses.catalogue import get_loss, resolve_hparams

RESULT = "result.json"
REWARDS = "test_rewards.npy"


class StudyError(RuntimeError):
    """Some runs of a study failed; the message names them and the first error."""


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid × one seed."""

    loss: str
    flip_rate: float
    length_bias: float
    train_size: int
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.loss}_eps{self.flip_rate:g}_lam{self.length_bias:g}_n{self.train_size}_seed{self.seed}"


def plan_runs(cfg: StudyConfig) -> list[RunSpec]:
    """Every run of the grid, ordered size, λ, ε, seed, loss (so early results cover whole cells)."""
    return [RunSpec(loss, eps, lam, n, seed) for n in cfg.train_sizes for lam in cfg.length_biases for eps in cfg.flip_rates
            for seed in cfg.seeds for loss in cfg.losses]


def shard_of(runs: list[RunSpec], shard: str | None) -> list[RunSpec]:
    """Runs i, i + N, i + 2N, … of the plan for shard "i/N" (all runs for None)."""
    if shard is None:
        return runs
    i, n = (int(x) for x in str(shard).split("/"))
    return runs[i::n]


def run_hparams(cfg: StudyConfig, loss: str, flip_rate: float) -> dict:
    """The loss's hyperparameters for a cell: catalogue defaults ← cfg.loss_args, with `noise` → ε."""
    given = {k: (flip_rate if v == "noise" else v) for k, v in cfg.loss_args.get(loss, {}).items()}
    return resolve_hparams(get_loss(loss), given)


def data_form_of(loss: str) -> str:
    return get_loss(loss).data_form


_RUN_FIELDS = ("data", "data_form", "columns", "test_fraction", "ranking_k", "margin", "test_prompts", "candidates", "test_seed",
               "mode", "backbone", "pooling", "normalize", "max_length")
_MODE_FIELDS = {"head": ("head", "head_hidden", "head_epochs", "head_lr", "head_weight_decay", "head_batch_size"),
                "full": ("epochs", "lr", "batch_size"), "lora": ("epochs", "lr", "batch_size", "lora_r", "lora_alpha")}


def run_key(cfg: StudyConfig, spec: RunSpec) -> str:
    """Hash of everything a run's result depends on; a stored result with another key is redone."""
    ident = {"spec": dataclasses.asdict(spec), "hp": run_hparams(cfg, spec.loss, spec.flip_rate),
             **{k: getattr(cfg, k) for k in _RUN_FIELDS + _MODE_FIELDS[cfg.mode]}}
    return hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


_RESULT_FIELDS = ("run_id", "key", "loss", "family", "data_form", "flip_rate", "length_bias", "train_size", "seed", "metrics")
"""What the report reads from every result.json (``study_metrics.flatten_run``)."""


def stored_result(folder: Path, key: str, say=None) -> dict | None:
    """The finished result in ``folder`` if its key matches and its files are whole, else None: the run is (re)done.

    A run stored under another key (a changed config) is redone without a word. A damaged one — result.json
    unreadable, not JSON, or lacking fields; test_rewards.npy missing, truncated, or not the bytes whose sha1
    result.json records — is named through ``say`` (with what is wrong) and redone, never read."""
    path = folder / RESULT
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as e:  # ValueError: bytes that are not UTF-8, or not JSON
        problem, result = f"{RESULT} unreadable ({type(e).__name__}: {e})", None
    else:
        if not isinstance(result, dict):
            problem = f"{RESULT} holds {type(result).__name__}, not a run's result"
        elif result.get("key") not in (None, key):
            return None
        elif missing := [k for k in _RESULT_FIELDS if k not in result]:
            problem = f"{RESULT} lacks {', '.join(missing)}"
        else:
            problem = _rewards_problem(folder / REWARDS, result.get("rewards_sha1"))
    if problem is None:
        return result
    if say is not None:
        say(f"run {folder.name}: its stored result is damaged ({problem}); running it again")
    return None


def _rewards_problem(path: Path, sha1: str | None) -> str | None:
    """Why the stored test rewards of a run cannot be used (missing, truncated, corrupt), or None."""
    try:
        data = path.read_bytes()
        if sha1 is not None and hashlib.sha1(data).hexdigest() != sha1:
            return f"{REWARDS} is not the file its {RESULT} was written with (sha1 differs)"
        np.load(io.BytesIO(data), allow_pickle=False)
    except FileNotFoundError:
        return f"{REWARDS} missing"
    except (OSError, ValueError, EOFError) as e:
        return f"{REWARDS} unreadable ({type(e).__name__}: {e})"
    return None


# --------------------------------------------------------------------------- data of a run (main process and workers)


def normalize_of(cfg: StudyConfig) -> bool:
    from rewardlab.analysis.features import default_normalize

    return default_normalize(cfg.backbone) if cfg.normalize is None else bool(cfg.normalize)


_USER_CACHE: dict = {}


def user_data(cfg: StudyConfig) -> D.UserData:
    key = (cfg.data, cfg.data_form, json.dumps(cfg.columns, sort_keys=True), cfg.test_fraction, cfg.test_seed, cfg.on_bad_record)
    if key not in _USER_CACHE:
        _USER_CACHE[key] = D.load_user_data(cfg.data, cfg.data_form, cfg.columns, cfg.test_fraction, cfg.test_seed,
                                            cfg.on_bad_record)
    return _USER_CACHE[key]


def train_data(cfg: StudyConfig, spec: RunSpec) -> D.FormData:
    """The run's labelled training data in its loss's form (see ``study_data``)."""
    form = data_form_of(spec.loss)
    if cfg.data is not None:
        return D.user_train_data(user_data(cfg), form, spec.train_size, spec.flip_rate, spec.seed)
    pool = D.task_pool(spec.train_size // cfg.ranking_k, cfg.ranking_k, spec.seed)
    return D.label_pool(pool, form, spec.flip_rate, spec.length_bias, spec.seed, margin=cfg.margin)


def test_texts(cfg: StudyConfig) -> list[tuple]:
    """(prompt, response) of every test response: the test pool (built-in) or the held-out pairs' texts."""
    if cfg.data is not None:
        return D.user_held_out_pairs(user_data(cfg)).texts
    return D.task_pool(cfg.test_prompts, cfg.candidates, cfg.test_seed).pairs_of_texts()


def all_texts(cfg: StudyConfig, runs: list[RunSpec]) -> list[tuple]:
    """Every (prompt, response) the runs read: training texts of each (n, seed) and the test texts."""
    texts = list(test_texts(cfg))
    seen = set()
    for spec in runs:
        if cfg.data is None:
            key = (spec.train_size, spec.seed)
            if key not in seen:
                seen.add(key)
                texts += D.task_pool(spec.train_size // cfg.ranking_k, cfg.ranking_k, spec.seed).pairs_of_texts()
        else:
            key = (spec.train_size, spec.seed, spec.flip_rate, data_form_of(spec.loss))
            if key not in seen:
                seen.add(key)
                texts += train_data(cfg, spec).texts
    return texts


# --------------------------------------------------------------------------- one run (runs in a worker)

_FEATURES: dict = {}


def _features(folder: str, rendered: list[str]) -> np.ndarray:
    from rewardlab.analysis.features import FeatureCache

    cache = _FEATURES.get(folder)
    if cache is None:
        cache = _FEATURES[folder] = FeatureCache(folder)
    if cache.missing(rendered):
        cache.refresh()
    return cache.lookup(rendered)


def _rewards_of(cfg: StudyConfig, ctx: dict, spec: RunSpec, data: D.FormData, texts: list[tuple], run_dir: Path) -> tuple[np.ndarray, float]:
    """Train the run's reward model and return (rewards of ``texts``, training seconds)."""
    from rewardlab.analysis import study_train as T

    hp = run_hparams(cfg, spec.loss, spec.flip_rate)
    loss_spec = get_loss(spec.loss)
    if cfg.mode == "head":
        x_train = _features(ctx["feature_dir"], D.rendered(data.texts))
        head, seconds = T.timed(T.train_head, x_train, data, loss_spec, hp, kind=cfg.head, hidden=cfg.head_hidden, epochs=cfg.head_epochs,
                                lr=cfg.head_lr, weight_decay=cfg.head_weight_decay, batch_size=cfg.head_batch_size, seed=spec.seed)
        return T.head_rewards(head, _features(ctx["feature_dir"], D.rendered(texts))), seconds
    out = run_dir / "model"  # full and LoRA modes: the trainer's own loop (LoRA adapters merged into the saved model)
    (model, tok), seconds = T.timed(T.train_full, ctx["backbone_path"], data.records, spec.loss, hp, out, epochs=cfg.epochs,
                                    lr=cfg.lr, batch_size=cfg.batch_size, max_length=cfg.max_length, seed=spec.seed,
                                    lora_r=cfg.lora_r if cfg.mode == "lora" else 0, lora_alpha=cfg.lora_alpha,
                                    allow_pickle=cfg.allow_pickle)
    rewards = T.score_pairs_of_texts(model, tok, texts, cfg.max_length)
    if not cfg.keep_models:
        shutil.rmtree(run_dir / "model", ignore_errors=True)
    return rewards, seconds


def execute_run(job: dict) -> dict:
    """Train and evaluate one run; writes runs/<id>/test_rewards.npy and result.json (last, atomically).

    ``job``: {"cfg": StudyConfig as a dict, "spec": RunSpec as a dict, "ctx": paths from the main process}.
    Picklable in and out, so it runs the same inline, in a process pool or as a Ray task.
    """
    t0 = time.perf_counter()
    cfg, spec, ctx = StudyConfig(**job["cfg"]), RunSpec(**job["spec"]), job["ctx"]
    run_dir = Path(ctx["output"]) / "runs" / spec.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    data = train_data(cfg, spec)
    texts = test_texts(cfg)
    rewards, seconds = _rewards_of(cfg, ctx, spec, data, texts, run_dir)
    if cfg.data is None:
        pool = D.task_pool(cfg.test_prompts, cfg.candidates, cfg.test_seed)
        r = rewards.reshape(pool.shape)  # (M, C)
        metrics = M.gold_run_metrics(r, pool.gold, pool.n_words, D.held_out_pairs(pool, spec.flip_rate, spec.length_bias, cfg.test_seed),
                                     M.n_grid(cfg.candidates))
    else:
        test = D.user_held_out_pairs(user_data(cfg))
        r = rewards
        metrics = M.user_run_metrics(rewards, test.index, test.extra["n_words"])
    np.save(run_dir / REWARDS, r.astype(np.float32))
    result = {"run_id": spec.run_id, "key": job["key"], "rewards_sha1": hashlib.sha1((run_dir / REWARDS).read_bytes()).hexdigest(),
              **dataclasses.asdict(spec), "family": _family(spec.loss),
              "data_form": data_form_of(spec.loss), "hparams": run_hparams(cfg, spec.loss, spec.flip_rate),
              "n_train_examples": len(data), "n_train_responses": int(np.unique(data.index).size),
              "label_agreement": data.agreement, "metrics": metrics, "train_seconds": seconds,
              "seconds": time.perf_counter() - t0, "mode": cfg.mode, "backbone": cfg.backbone}
    R.write_json(run_dir / RESULT, result)
    return result


def _family(loss: str) -> str:
    return get_loss(loss).family


def _init_worker(threads: int) -> None:
    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(threads)


def _safe_execute(job: dict) -> dict:
    """``execute_run`` that returns {"error": traceback} instead of raising (so one failure does not stop the others)."""
    try:
        return execute_run(job)
    except Exception:  # noqa: BLE001 - reported, with its traceback, by run_study
        return {"run_id": job["spec_id"], "error": traceback.format_exc()}


# --------------------------------------------------------------------------- executors


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def start_method(mode: str) -> str:
    """How worker processes start: ``fork`` for head mode on Linux (the children inherit the loaded
    modules, so they start at once, and run 1 torch thread each: their tensors are small, and one
    thread never enters an OpenMP region the fork could have broken); ``spawn`` otherwise (fresh
    interpreters, safe for full / LoRA training with several threads, and on macOS / Windows)."""
    import sys

    return "fork" if mode == "head" and sys.platform.startswith("linux") else "spawn"


def run_local(jobs: list[dict], workers: int, progress: bool, method: str = "spawn"):
    """Yield results as runs finish: inline for one worker, else a process pool started by ``method``
    (``start_method``); spawned workers share the CPUs' threads, forked ones run 1 thread each."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="runs", unit="run", disable=not progress, dynamic_ncols=True)
    try:
        if workers == 1 or len(jobs) <= 1:
            for job in jobs:
                res = _safe_execute(job)
                bar.update(1)
                yield res
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = 1 if method == "fork" else max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method), initializer=_init_worker,
                                 initargs=(threads,)) as pool:
            futures = [pool.submit(_safe_execute, job) for job in jobs]
            for fut in as_completed(futures):
                bar.update(1)
                yield fut.result()
    finally:
        bar.close()


def ray_init_args(address: str | None, num_cpus: int | None) -> dict:
    """``ray.init``'s arguments. A cluster named by ``address`` (``auto``, ``HOST:6379``, ``ray://HOST:10001``) or by
    ``RAY_ADDRESS`` is joined as it is. Without one a new local cluster starts in this process (``"local"``: not the
    cluster a `ray start` on this machine left, live or stale, which ``ray.init()`` would try): ``num_cpus`` CPUs
    (default: all), no dashboard, and the workers' output kept in Ray's session logs (/tmp/ray/session_latest/logs)
    instead of the study's console; a failed run's traceback comes back in its result (runs/<run>/error.txt) anyway."""
    import logging

    if address or os.environ.get("RAY_ADDRESS"):
        return {"address": address}
    return {"address": "local", "num_cpus": num_cpus, "include_dashboard": False, "log_to_driver": False,
            "logging_level": logging.WARNING}


def run_ray(jobs: list[dict], address: str | None, progress: bool, num_cpus: int | None = None):
    """Yield results of the runs as Ray tasks (1 CPU each). Needs ``ray`` and a study folder every node can
    read and write at the same path (shared storage): the features are computed before, by the driver.

    A Ray already initialised in this process is used as it is; otherwise ``ray_init_args`` says how it starts,
    and a Ray started here is shut down here. A task whose worker died (out of memory, a lost node) is reported
    like a failed run, so the others still finish."""
    try:
        import ray
    except ImportError:
        raise StudyError("executor 'ray' needs the ray package (pip install 'ray[default]'); or use --executor local") from None
    from tqdm.auto import tqdm

    started = not ray.is_initialized()
    if started:
        try:
            ray.init(**ray_init_args(address, num_cpus))
        except ConnectionError as e:
            raise StudyError(f"{e} (the cause is above). A cluster from `ray start` checks a token (Ray 2.60 does by default): "
                             "with an explicit address set RAY_AUTH_MODE=token and give the cluster's token (RAY_AUTH_TOKEN, or "
                             "~/.ray/auth_token as on the head node); on the head node --ray-address auto finds both") from e
    bar = tqdm(total=len(jobs), desc="runs (ray)", unit="run", disable=not progress, dynamic_ncols=True)
    try:
        remote = ray.remote(num_cpus=1)(_safe_execute)
        run_of = {remote.remote(job): job["spec_id"] for job in jobs}
        pending = list(run_of)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayError:  # the task never returned: its worker or node is gone
                result = {"run_id": run_of[done[0]], "error": traceback.format_exc()}
            bar.update(1)
            yield result
    finally:
        bar.close()
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------- the study


def prepare(cfg: StudyConfig, runs: list[RunSpec], log=print) -> dict:
    """Main-process work before the runs: resolve the backbone; in head mode, cache the features of every text."""
    from rewardlab.analysis import features as F

    out = Path(cfg.output)
    ctx = {"output": str(out.resolve())}
    ctx["backbone_path"] = F.resolve_backbone(cfg.backbone, out)
    if cfg.mode == "head":
        normalize = normalize_of(cfg)
        folder = F.cache_dir(out, cfg.backbone, cfg.pooling, normalize, cfg.max_length)
        ctx["feature_dir"] = str(folder.resolve())
        cache = F.FeatureCache(folder)
        for what in cache.damaged:
            log(f"features: a damaged cache chunk was moved aside (*.damaged) and its texts are computed again: {what}")
        texts = D.rendered(all_texts(cfg, runs))
        t0 = time.perf_counter()
        n = F.extract_features(cache, ctx["backbone_path"], texts, pooling=cfg.pooling, normalize=normalize, max_length=cfg.max_length,
                               batch_size=cfg.feature_batch_size, progress=cfg.progress, desc=f"features ({cfg.backbone})",
                               allow_pickle=cfg.allow_pickle)
        ctx["feature_seconds"] = time.perf_counter() - t0
        ctx["n_texts_computed"] = n
        log(f"features: {len(set(texts))} texts, {n} computed ({ctx['feature_seconds']:.0f} s), cached in {folder}")
    return ctx


def run_study(cfg: StudyConfig, log=print, show: bool = True) -> dict:
    """Run (or continue) the study ``cfg`` describes; returns {"summary", "findings", "paths", "table", ...}.

    Finished runs (result.json with the same key) are read, not redone; a killed study run again
    continues where it stopped. Failed runs are reported after the others finish (StudyError).
    ``show`` prints the summary table (rich) at the end.
    """
    if not cfg.output:
        raise ValueError("study needs --output (the study folder)")
    t_start = time.perf_counter()
    if cfg.data is not None:  # read and checked first: a bad record stops the study before any folder or model
        data = user_data(cfg)
        if data.n_skipped:
            log(f"{cfg.data}: {data.n_skipped} bad record(s) skipped, {data.n_loaded} loaded; first: {data.skipped[0]}")
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / CONFIG_FILE)
    plan = plan_runs(cfg)
    mine = shard_of(plan, cfg.shard)
    keys = {s.run_id: run_key(cfg, s) for s in plan}
    todo = [s for s in mine if stored_result(out / "runs" / s.run_id, keys[s.run_id], say=log) is None]
    log(f"study {out}: {len(plan)} runs in the grid" + (f", {len(mine)} in shard {cfg.shard}" if cfg.shard else "")
        + f"; {len(mine) - len(todo)} done, {len(todo)} to run")
    ctx = prepare(cfg, todo, log) if todo else {"output": str(out.resolve())}
    jobs = [{"cfg": to_dict(cfg), "spec": dataclasses.asdict(s), "spec_id": s.run_id, "key": keys[s.run_id], "ctx": ctx} for s in todo]
    workers = cfg.workers or default_workers()
    t_runs = time.perf_counter()
    results = run_ray(jobs, cfg.ray_address, cfg.progress, cfg.workers) if cfg.executor == "ray" else run_local(jobs, workers, cfg.progress, start_method(cfg.mode))
    failures = [r for r in track_runs(cfg, results) if "error" in r]
    runs_seconds = time.perf_counter() - t_runs
    for f in failures:
        (out / "runs" / f["run_id"]).mkdir(parents=True, exist_ok=True)
        (out / "runs" / f["run_id"] / "error.txt").write_text(f["error"])
    finished = [stored_result(out / "runs" / s.run_id, keys[s.run_id]) for s in plan]
    done = [r for r in finished if r is not None]
    timing = accumulate_timing(out, {"features_seconds": ctx.get("feature_seconds", 0.0), "runs_seconds": runs_seconds},
                               {"workers": workers, "runs_trained_now": len(todo) - len(failures)}, say=log)
    report = None
    if cfg.shard is not None:
        log(f"shard {cfg.shard}: {len(todo) - len(failures)} run(s) trained; {len(done)} of {len(plan)} runs of the study are done — "
            f"run the study without --shard to write the report")
    elif done:
        report = write_outputs(cfg, done, len(plan), timing, t_start)
        if show:
            print_summary(report)
        log(f"report: {Path(report['paths']['report.html']).resolve()}")
    if failures:
        first = failures[0]["error"].strip().splitlines()[-1]
        raise StudyError(f"{len(failures)} of {len(todo)} runs failed ({', '.join(f['run_id'] for f in failures[:5])}"
                         f"{' …' if len(failures) > 5 else ''}); first error: {first}; tracebacks in runs/<run>/error.txt")
    return report or {"summary": [], "findings": [], "paths": {}, "n_runs": 0}


def accumulate_timing(folder: Path, seconds: dict, extra: dict, say=print) -> dict:
    """This invocation's seconds, plus their totals over every invocation of the study (timing.json; a damaged one is
    named through ``say`` and its totals start again)."""
    path = folder / "timing.json"
    try:
        total = json.loads(path.read_bytes()) if path.is_file() else {}
        total = {k: float(total.get(k, 0.0)) + float(v) for k, v in seconds.items()}
    except (OSError, ValueError, TypeError, AttributeError) as e:  # not JSON, not an object of numbers
        say(f"{path} is damaged ({type(e).__name__}: {e}); the study's time totals start again from this invocation")
        total = {k: float(v) for k, v in seconds.items()}
    R.write_json(path, total)
    return {**seconds, **extra, "cumulative": total}


def reference_values(cfg: StudyConfig) -> dict:
    """Task-level reference numbers: the gold's own correlation with length, oracle and random best-of-N."""
    if cfg.data is not None:
        return {}
    pool = D.task_pool(cfg.test_prompts, cfg.candidates, cfg.test_seed)
    g, ln = pool.gold.ravel(), pool.n_words.ravel().astype(float)
    return {"gold_length_corr": M._pearson(g, ln), "bon_oracle": {str(n): best_of_n_expectation(pool.gold, pool.gold, n)
                                                                  for n in M.n_grid(cfg.candidates)},
            "gold_mean": float(g.mean()), "gold_std": float(g.std()), "n_test_pairs": int(len(D.held_out_pairs(pool, 0.0, 0.0, cfg.test_seed)["gold"]))}


def _correctness(cfg: StudyConfig, results: list[dict], folder: Path) -> dict:
    """{run_id: 1[r_first > r_second] (B,)} on the held-out pairs in gold order (user data: human order)."""
    out = {}
    if cfg.data is None:
        pool = D.task_pool(cfg.test_prompts, cfg.candidates, cfg.test_seed)
        pairs = D.held_out_pairs(pool, 0.0, 0.0, cfg.test_seed)["gold"]
    else:
        pairs = D.user_held_out_pairs(user_data(cfg)).index
    for r in results:
        out[r["run_id"]] = M.correct_vector(np.load(folder / "runs" / r["run_id"] / REWARDS).ravel().astype(float), pairs)
    return out


def _reliability(cfg: StudyConfig, results: list[dict], folder: Path, summary: list[dict]) -> dict:
    """Per loss: reliability curve of σ(Δ) against the labels at the highest ε (main λ, n), seeds pooled."""
    lam, n = R.main_cell(summary)
    eps = max(cfg.flip_rates)
    out = {}
    for loss in cfg.losses:
        ps, ys = [], []
        for r in results:
            if (r["loss"], r["flip_rate"], r["length_bias"], r["train_size"]) != (loss, eps, lam, n):
                continue
            flat = np.load(folder / "runs" / r["run_id"] / REWARDS).ravel().astype(float)
            if cfg.data is None:
                pool = D.task_pool(cfg.test_prompts, cfg.candidates, cfg.test_seed)
                pairs = D.held_out_pairs(pool, eps, lam, cfg.test_seed)["labels"]
            else:
                pairs = D.user_held_out_pairs(user_data(cfg)).index
            p, y = pair_probabilities(flat[pairs[:, 0]], flat[pairs[:, 1]])
            ps.append(p)
            ys.append(y)
        if ps:
            out[loss] = reliability_curve(np.concatenate(ps), np.concatenate(ys))
    return out


def write_outputs(cfg: StudyConfig, results: list[dict], n_planned: int, timing: dict, t_start: float) -> dict:
    """results.json / .csv, summary.csv, the plots, report.md and report.html in the study folder."""
    folder = Path(cfg.output)
    baseline = None if cfg.baseline == "none" else cfg.baseline
    has_gold = cfg.data is None
    rows = [M.flatten_run(r) for r in results]
    summary = M.aggregate(rows, baseline, _correctness(cfg, results, folder))
    reference = reference_values(cfg)
    per_seed_bon: dict = {}
    for r in results:
        per_seed_bon.setdefault((r["loss"], r["flip_rate"], r["length_bias"], r["train_size"]), {})[r["seed"]] = r["metrics"].get("bon", {})
    found = R.findings(summary, baseline, per_seed_bon, reference)
    plots = R.make_plots(folder, summary, reference, _reliability(cfg, results, folder, summary), has_gold)
    timing = {**timing, "total_seconds": time.perf_counter() - t_start}
    meta = study_meta(cfg, results, n_planned, reference, timing)
    blocks = R.report_blocks(meta, summary, found, plots, has_gold, baseline)
    paths = {"results.json": folder / "results.json", "results.csv": folder / "results.csv", "summary.csv": folder / "summary.csv",
             "report.md": folder / "report.md", "report.html": folder / "report.html", "rewardlab_config.yaml": folder / "rewardlab_config.yaml",
             **{f"{k}.png": Path(v) for k, v in plots.items()}}
    R.write_csv(paths["results.csv"], rows)
    R.write_csv(paths["summary.csv"], summary)
    R.write_json(paths["results.json"], {"config": to_dict(cfg), "n_runs": len(results), "n_planned": n_planned, "reference": reference,
                                         "timing": timing, "runs": results, "summary": summary, "findings": found})
    paths["report.md"].write_text(R.render_md(blocks))
    paths["report.html"].write_text(R.render_html(blocks, folder))
    return {"summary": summary, "findings": found, "reference": reference, "timing": timing, "n_runs": len(results),
            "n_planned": n_planned, "paths": {k: str(v) for k, v in paths.items()},
            "table": R.summary_table(summary, has_gold, baseline)}


def study_meta(cfg: StudyConfig, results: list[dict], n_planned: int, reference: dict, timing: dict) -> dict:
    """Title, setup paragraph and detail bullets of the report."""
    task = "the built-in gold task" if cfg.data is None else f"{cfg.data} ({cfg.data_form}; no gold: held-out human labels)"
    mode = {"head": f"head-only ({cfg.head} head on frozen {cfg.backbone} features, {cfg.pooling} pooling)",
            "full": f"full fine-tuning of {cfg.backbone}", "lora": f"LoRA (r = {cfg.lora_r}) on {cfg.backbone}"}[cfg.mode]
    setup = (f"{len(results)} of {n_planned} runs on {task}: losses {', '.join(cfg.losses)} × flip rates {cfg.flip_rates} × length "
             f"biases {cfg.length_biases} × training sizes {cfg.train_sizes} × seeds {cfg.seeds}; {mode}.")
    details = []
    if cfg.data is None:
        details += [f"Budget: n labelled responses per run — n/2 pairs, n/{cfg.ranking_k} rankings of {cfg.ranking_k}, n ratings, n labels — "
                    "all drawn from the same pool of responses for a given seed and labelled from the same gold.",
                    "Noise ε: share of the label-implied comparisons flipped (pairs: labels flipped; rankings: random permutation "
                    "with probability 2ε; ratings: score resampled with probability 1 − √(1 − 2ε); labels: flipped).",
                    f"Test set: {cfg.test_prompts} held-out prompts × {cfg.candidates} candidates ({reference.get('n_test_pairs')} test "
                    f"pairs of consecutive candidates); best-of-N is the exact expectation over random N-subsets.",
                    f"Gold on the test responses: mean {fmt_num(reference.get('gold_mean'))}, std {fmt_num(reference.get('gold_std'))}, "
                    f"correlation with length {fmt_num(reference.get('gold_length_corr'))}."]
        agree = {}
        for r in results:
            agree.setdefault((r["data_form"], r["flip_rate"]), []).append(r.get("label_agreement"))
        details.append("Training labels' agreement with the gold (mean over runs): " + "; ".join(
            f"{form} at ε = {eps:g}: {fmt_num(np.mean([a for a in v if a is not None]))}" for (form, eps), v in sorted(agree.items())))
    hps = []
    for loss in cfg.losses:
        hp = {k: ("ε (the cell's flip rate)" if cfg.loss_args.get(loss, {}).get(k) == "noise" else v)
              for k, v in run_hparams(cfg, loss, 0.0).items()}
        if hp:
            hps.append(f"{loss} " + ", ".join(f"{k} = {v}" for k, v in hp.items()))
    if hps:
        details.append("Loss hyperparameters: " + "; ".join(hps) + ".")
    cum = timing["cumulative"]
    details.append(f"Time: features {cum['features_seconds']:.0f} s and runs {cum['runs_seconds']:.0f} s over all invocations of "
                   f"this study; this invocation trained {timing['runs_trained_now']} run(s) on {timing['workers']} worker(s) "
                   f"in {timing['total_seconds']:.0f} s in all (sum of the runs' own training time: "
                   f"{sum(r.get('train_seconds') or 0.0 for r in results):.0f} s).")
    return {"title": task, "setup": setup, "details": details}


def fmt_num(x) -> str:
    return R.fmt(None if x is None else float(x))


# --------------------------------------------------------------------------- experiment tracker (--report-to)


def track_runs(cfg: StudyConfig, results):
    """``results`` passed through as they come; each finished run is logged to ``cfg.report_to`` on the way
    (:func:`log_run`), so the tracker fills while the study runs."""
    for result in results:
        if cfg.report_to != "none" and "error" not in result:
            log_run(cfg, result)
        yield result


def log_run(cfg: StudyConfig, result: dict) -> None:
    """One study run as one tracker run named by its run id, through Accelerate's trackers (as ``train`` logs):

    - config: the study folder's name, the grid cell (loss, flip_rate, length_bias, train_size, seed), family,
      data form, mode, backbone and the loss's hyperparameters as ``hp/NAME``;
    - step 0: ``test/METRIC`` for every number in result.json's ``metrics``, with ``train_seconds``,
      ``n_train_examples`` and ``label_agreement``;
    - step N: ``test/bon_gold``, the expected gold of best-of-N (built-in task only).

    TensorBoard writes OUTPUT/rewardlab/RUN_ID/ (a redone run replaces its old events); wandb logs to the project
    ``rewardlab``, the run grouped by the study folder's name."""
    from accelerate.tracking import TensorBoardTracker, WandBTracker

    out, run_id = Path(cfg.output), result["run_id"]
    if cfg.report_to == "tensorboard":
        shutil.rmtree(out / "rewardlab" / run_id, ignore_errors=True)
        tracker = TensorBoardTracker(run_id, str(out / "rewardlab"))
    else:
        tracker = WandBTracker("rewardlab", name=run_id, group=out.name)
    tracker.start()
    try:
        cell = {k: result[k] for k in ("run_id", "loss", "flip_rate", "length_bias", "train_size", "seed", "family", "data_form",
                                      "mode", "backbone")}
        tracker.store_init_configuration(tracker_config({"study": out.name, **cell, **{f"hp/{k}": v for k, v in result["hparams"].items()}}))
        metrics = {k: v for k, v in result["metrics"].items() if k != "bon"}
        numbers = {k: result.get(k) for k in ("train_seconds", "n_train_examples", "label_agreement")}
        tracker.log(tracker_scalars({**metrics, **numbers}, "test/"), step=0)
        for n, gold in sorted((int(n), v) for n, v in (result["metrics"].get("bon") or {}).items()):
            tracker.log(tracker_scalars({"bon_gold": gold}, "test/"), step=n)
    finally:
        tracker.finish()


# --------------------------------------------------------------------------- demo


def print_summary(report: dict, console=None) -> None:
    """The summary table (rich) and the findings' verdicts."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=220)
    header, rows = report["table"]
    table = Table(*header, title="rewardlab study: summary (mean over seeds, 95% CI)", show_lines=False)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for f in report["findings"]:
        if f["verdicts"]:
            console.print(f"[bold]{f['title']}[/bold]: " + "; ".join(f"{k}: {v}" for k, v in f["verdicts"].items()))


def run_demo(cfg: DemoConfig) -> dict:
    """The main job: a small study on the built-in task (head-only on MiniLM by default), its table and report path."""
    from rich.console import Console

    console = Console(width=220)
    study = cfg.to_study()
    t0 = time.perf_counter()
    report = run_study(study, log=lambda m: console.print(m), show=False)
    print_summary(report, console)
    console.print(f"wall time {time.perf_counter() - t0:.0f} s — report: {Path(report['paths']['report.html']).resolve()}")
    return report
