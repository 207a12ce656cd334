"""Build a reward from a spec string: the one place a reward kind is chosen.

Spec grammar: ``KIND[:ARG][;KEY=VALUE]...`` (values parsed as YAML scalars). Kinds:

    gold                        the built-in task's gold reward
    rm:PATH                     a learned RM (rewardlab checkpoint or HF 1-label classifier); keys: batch_size, max_length, device,
                                allow_pickle (load pytorch_model.bin weights: only files you trust; also for ensemble, lm, adversarial)
    ensemble:PATH1,PATH2,...    ensemble of RMs; keys: agg (mean | min | mean_std | uwo), lam (λ, 0.5), batch_size, max_length, device
    fn:MODULE:FUNCTION          a user function (also FILE.py:FUNCTION)
    bleu | chrf | rouge[:TYPE] | ngram[:N]   metric rewards against the ``reference`` column; key: column
    lm:PATH                     mean log-likelihood of the completion under a causal LM (teacher); keys: batch_size, device
    adversarial:PATH            a discriminator initialised from the RM at PATH, trained online to tell the ``reference``
                                column (real) from the policy's samples; reward form(D) (GAIL / SeqGAN / AIRL);
                                keys: lr (1e-5), steps (per call, 1; 0 = score only), loss (bce | bt), form (logsigmoid |
                                neg_log_one_minus | logit | sigmoid), column (reference), replay (0), batch_size, max_length, device
    http://HOST:PORT            the RM a `rewardlab serve` server serves (also https://), through rewardlab.client; keys:
                                api_key_env (NAME of the environment variable holding the key; default REWARDLAB_API_KEY;
                                never the key itself), timeout (30 s per request), retries (3), max_items (256 per request)

Examples: ``rm:runs/bt``, ``ensemble:runs/a,runs/b;agg=min``, ``rouge:rougeL;column=summary``,
``adversarial:runs/tiny;lr=1e-3;steps=2;loss=bt``, ``http://127.0.0.1:8000;api_key_env=RM_KEY;timeout=60``.
:func:`build_reward` turns several specs with weights into a weighted sum, optionally normalised
(running mean/std) and clipped.
"""

from __future__ import annotations

import os
from typing import Sequence


from rewardlab.rewards.metrics import BLEUReward, ChrFReward, NgramReward, RougeReward
from rewardlab.rewards.rm import EnsembleReward, RMReward
from rewardlab.config import parse_kv
from rewardlab.rewards.simple import Clip, FunctionReward, GoldReward, RunningNorm, WeightedSum


def parse_spec(spec: str) -> tuple[str, str | None, dict]:
    """``"ensemble:a,b;agg=min"`` → ``("ensemble", "a,b", {"agg": "min"})``."""
    head, *opts = [s.strip() for s in spec.split(";")]
    kind, sep, arg = head.partition(":")
    kwargs = parse_kv(opts, f"reward spec {spec!r} (options after ';')")
    return kind.strip(), (arg if sep else None), kwargs


def _need(kind: str, arg: str | None, what: str) -> str:
    if not arg:
        raise ValueError(f"reward kind {kind!r} needs {what} (write {kind}:{what.upper().replace(' ', '_')})")
    return arg


def _keys(kind: str, kwargs: dict, allowed: Sequence[str]) -> dict:
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"reward kind {kind!r}: unknown option(s) {', '.join(unknown)}; known: {', '.join(allowed) or 'none'}")
    return kwargs


def _rm(arg, kw, task):
    kw = _keys("rm", kw, ("batch_size", "max_length", "device", "name", "allow_pickle"))
    return RMReward.load(_need("rm", arg, "path"), **kw)


def _ensemble(arg, kw, task):
    kw = _keys("ensemble", kw, ("agg", "lam", "batch_size", "max_length", "device", "allow_pickle"))
    how, lam = kw.pop("agg", "mean"), kw.pop("lam", 0.5)
    paths = [p for p in _need("ensemble", arg, "paths").split(",") if p]
    return EnsembleReward([RMReward.load(p, **kw) for p in paths], how=how, lam=lam)


def _lm(arg, kw, task):
    from rewardlab.rewards.lm import LMLikelihoodReward

    kw = _keys("lm", kw, ("batch_size", "device", "max_length", "allow_pickle"))
    return LMLikelihoodReward.load(_need("lm", arg, "path"), **kw)


def _adversarial(arg, kw, task):
    from rewardlab.rewards.adversarial import DiscriminatorReward

    kw = _keys("adversarial", kw, ("lr", "steps", "loss", "form", "column", "replay", "batch_size", "max_length", "device",
                                   "allow_pickle"))
    return DiscriminatorReward.load(_need("adversarial", arg, "path"), **kw)


def _http(scheme: str):
    """The builder of ``http://…`` or ``https://…``: parse_spec reads the scheme as the kind, ``//HOST:PORT`` as its arg."""
    def build(arg, kw, task):
        from rewardlab.rewards.remote import HTTPReward

        if "api_key" in kw:
            raise ValueError(f"reward kind {scheme!r}: no api_key in a spec (specs are saved in rewardlab_config.yaml); "
                             "give api_key_env=NAME of an environment variable that holds it (default REWARDLAB_API_KEY)")
        kw = _keys(scheme, kw, ("api_key_env", "timeout", "retries", "max_items"))
        env = kw.pop("api_key_env", None)
        if env is not None and not os.environ.get(env):
            raise ValueError(f"reward kind {scheme!r}: api_key_env={env} but the environment variable {env} is not set")
        return HTTPReward(f"{scheme}:{_need(scheme, arg, '//host:port')}", api_key=os.environ[env] if env else None, **kw)
    return build


KINDS = {
    "gold": lambda arg, kw, task: GoldReward(task, **_keys("gold", kw, ())),
    "rm": _rm,
    "ensemble": _ensemble,
    "fn": lambda arg, kw, task: FunctionReward(_need("fn", arg, "module:function"), **_keys("fn", kw, ("name",))),
    "bleu": lambda arg, kw, task: BLEUReward(reference_column=_keys("bleu", kw, ("column",)).get("column", "reference")),
    "chrf": lambda arg, kw, task: ChrFReward(reference_column=_keys("chrf", kw, ("column", "word_order")).get("column", "reference"),
                                              word_order=kw.get("word_order", 0)),
    "rouge": lambda arg, kw, task: RougeReward(arg or "rougeL", reference_column=_keys("rouge", kw, ("column",)).get("column", "reference")),
    "ngram": lambda arg, kw, task: NgramReward(int(arg or 1), reference_column=_keys("ngram", kw, ("column",)).get("column", "reference")),
    "lm": _lm,
    "adversarial": _adversarial,
    "http": _http("http"),
    "https": _http("https"),
}
"""Reward kind → builder(arg, options, task)."""


def reward_from_spec(spec: str, task=None, device: str | None = None, allow_pickle: bool = False):
    """One reward from a spec string (see the module docstring); unknown kinds list the known ones.
    ``device`` is the default device of model-based kinds (rm, ensemble, lm, adversarial); ``allow_pickle`` lets them
    load pickle weights (``--allow-pickle``)."""
    kind, arg, kwargs = parse_spec(spec)
    if kind in ("rm", "ensemble", "lm", "adversarial") and device is not None:
        kwargs.setdefault("device", device)
    if kind in ("rm", "ensemble", "lm", "adversarial") and allow_pickle:
        kwargs.setdefault("allow_pickle", True)
    if kind not in KINDS:
        raise ValueError(f"unknown reward kind {kind!r} in {spec!r}; known: {', '.join(KINDS)}")
    reward = KINDS[kind](arg, kwargs, task)
    if kind in ("rm", "ensemble", "lm", "adversarial", "rouge", "ngram"):
        reward.name = spec.split(";")[0]
    return reward


def build_reward(specs: Sequence[str], weights: Sequence[float] | None = None, normalize: bool = False,
                 clip: float | None = None, task=None, device: str | None = None, allow_pickle: bool = False):
    """Specs → one reward: a single reward, or the weighted sum of several; then normalised and clipped to [−clip, clip]."""
    if not specs:
        raise ValueError(f"give at least one reward spec; known kinds: {', '.join(KINDS)}")
    parts = [reward_from_spec(s, task, device, allow_pickle) for s in specs]
    if len(parts) == 1 and (weights is None or list(weights) in ([], [1.0], [1])):
        reward = parts[0]
    else:
        reward = WeightedSum(parts, weights or None)
    if normalize:
        reward = RunningNorm(reward)
    if clip is not None:
        if clip <= 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        reward = Clip(reward, -clip, clip)
    return reward
