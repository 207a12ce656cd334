"""The built-in task's gold reward, a user's function ``module:function``, and wrappers that combine
rewards: weighted sum, running mean/std normalisation, clipping.

    weighted sum   r = Σ_j w_j r_j
    normalise      r' = (r − μ) / (σ + ε), μ, σ² running mean and variance of every reward seen so far
                   (batches merged with Chan et al. 1979's parallel update), the current batch included
                   before it is normalised; ε = 1e-8
    clip           r' = min(max(r, low), high)
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from rewardlab.rewards.base import check_inputs, check_output, reward_name


class GoldReward:
    """g(prompt, completion) of the built-in task (:mod:`rewardlab.tasks.gold`); std ≈ 1 over random responses."""

    def __init__(self, task=None, name: str = "gold"):
        from rewardlab.tasks.gold import GoldTask

        self.task = task if task is not None else GoldTask()
        self.name = name

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        check_inputs(prompts, completions, columns)
        return self.task.gold_many(list(prompts), list(completions)).tolist()


def load_function(spec: str):
    """The callable named by ``module:function`` (importable module) or ``path/to/file.py:function``."""
    if ":" not in spec:
        raise ValueError(f"expected MODULE:FUNCTION or FILE.py:FUNCTION, got {spec!r}")
    where, _, attr = spec.rpartition(":")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        name = f"rewardlab_user_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    fn = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            known = [k for k in dir(module) if not k.startswith("_") and callable(getattr(module, k))]
            raise ValueError(f"{where} has no attribute {attr!r}; its callables: {', '.join(known) or 'none'}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise ValueError(f"{spec} is not callable")
    return fn


class FunctionReward:
    """A user's function ``fn(prompts, completions, **columns) -> N numbers``, with its output checked."""

    def __init__(self, fn, name: str | None = None):
        self.fn = load_function(fn) if isinstance(fn, str) else fn
        self.name = name or (fn if isinstance(fn, str) else reward_name(fn))

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        n = check_inputs(prompts, completions, columns)
        return check_output(self.name, self.fn(list(prompts), list(completions), **columns), n)


class WeightedSum:
    """r = Σ_j w_j r_j over rewards r_j; ``last_parts`` keeps the (J, N) parts of the latest call for logging."""

    def __init__(self, rewards: Sequence, weights: Sequence[float] | None = None, name: str = "sum"):
        if not rewards:
            raise ValueError("a weighted sum needs at least one reward")
        weights = [1.0] * len(rewards) if weights is None else list(weights)
        if len(weights) != len(rewards):
            raise ValueError(f"{len(rewards)} rewards but {len(weights)} weights")
        self.rewards, self.weights, self.name = list(rewards), [float(w) for w in weights], name
        self.last_parts: dict[str, list[float]] = {}

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        n = check_inputs(prompts, completions, columns)
        total = np.zeros(n)  # (N,)
        self.last_parts = {}
        for r, w in zip(self.rewards, self.weights):
            part = check_output(reward_name(r), r(prompts, completions, **columns), n)
            self.last_parts[reward_name(r)] = part
            total += w * np.asarray(part)
        return total.tolist()


class RunningNorm:
    """(r − μ) / (σ + ε) with μ, σ the running mean and std of all rewards seen (current batch included).

    ``update=False`` freezes the statistics (evaluation). ``state_dict`` / ``load_state_dict`` carry
    them across a resume.
    """

    def __init__(self, reward, eps: float = 1e-8, name: str | None = None):
        self.reward, self.eps = reward, eps
        self.name = name or f"norm({reward_name(reward)})"
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.update = True

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else 1.0

    def observe(self, values: np.ndarray) -> None:
        """Merge a batch into (count, mean, M2) with the parallel update of Chan, Golub & LeVeque 1979."""
        values = np.asarray(values, dtype=float)
        n_b = values.size
        if n_b == 0:
            return
        mean_b, m2_b = float(values.mean()), float(((values - values.mean()) ** 2).sum())
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta**2 * self.count * n_b / n
        self.count = n

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        n = check_inputs(prompts, completions, columns)
        raw = np.asarray(check_output(reward_name(self.reward), self.reward(prompts, completions, **columns), n))
        if self.update:
            self.observe(raw)
        return ((raw - self.mean) / (self.std + self.eps)).tolist()

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict) -> None:
        self.count, self.mean, self.m2 = int(state["count"]), float(state["mean"]), float(state["m2"])


class Clip:
    """min(max(r, low), high); either bound may be None (no bound on that side)."""

    def __init__(self, reward, low: float | None = None, high: float | None = None, name: str | None = None):
        if low is not None and high is not None and low > high:
            raise ValueError(f"clip needs low <= high, got {low} > {high}")
        self.reward, self.low, self.high = reward, low, high
        self.name = name or f"clip({reward_name(reward)})"

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **columns) -> list[float]:
        n = check_inputs(prompts, completions, columns)
        raw = np.asarray(check_output(reward_name(self.reward), self.reward(prompts, completions, **columns), n))
        return np.clip(raw, self.low, self.high).tolist()
