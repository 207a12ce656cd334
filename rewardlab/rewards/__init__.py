"""Reward functions: plain callables ``(prompts, completions, **columns) -> list[float]``.

    >>> from rewardlab.rewards import build_reward
    >>> reward = build_reward(["gold"])                        # the built-in task's gold
    >>> reward(["Question: What do you think of coffee?\\nAnswer:"], ["I love the coffee."])  # doctest: +SKIP

See :mod:`rewardlab.rewards.catalogue` for the spec strings (``rm:PATH``, ``ensemble:A,B;agg=min``, ``bleu``,
``adversarial:PATH``, ``http://HOST:PORT`` …).
"""

from rewardlab.rewards.adversarial import DiscriminatorReward
from rewardlab.rewards.base import Reward, reward_name
from rewardlab.rewards.catalogue import KINDS, build_reward, parse_spec, reward_from_spec
from rewardlab.rewards.metrics import BLEUReward, ChrFReward, NgramReward, RougeReward, ngram_f1
from rewardlab.rewards.rm import AGGREGATIONS, EnsembleReward, RMReward, aggregate
from rewardlab.rewards.simple import Clip, FunctionReward, GoldReward, RunningNorm, WeightedSum, load_function

__all__ = [
    "AGGREGATIONS", "BLEUReward", "ChrFReward", "Clip", "DiscriminatorReward", "EnsembleReward", "FunctionReward", "GoldReward", "KINDS",
    "NgramReward", "RMReward", "Reward", "RougeReward", "RunningNorm", "WeightedSum", "aggregate", "build_reward",
    "load_function", "ngram_f1", "parse_spec", "reward_from_spec", "reward_name",
]
